//! The sled store: key layout, record encodings, opening, reads and the consistency check.
//!
//! Everything lives in sled's default tree, under one-byte key prefixes, so that a group of
//! reports, their replication-log entries and `last_seq` go to disk in one atomic
//! `apply_batch` (sled's most tested path; a fixed, small number of trees also avoids sled's
//! space blow-ups with many trees).
//!
//! | key | value |
//! |---|---|
//! | `d` + report uuid (16 bytes) | [`ReportRecord`]: seq, receive time, protocol, content hash, compressed document |
//! | `f` + report uuid | the original Metabase fact, compressed against its document (`codec`) |
//! | `l` + seq (u64 big-endian) | [`LogEntry`]: the replication log |
//! | `u` + user uuid | [`UserRecord`] (JSON): Metabase profile and secret hash |
//! | `m/...` | meta: `m/format`, `m/last_seq`, `m/term` |
//!
//! Only the committer ([`committer`]) writes; this module's reads may run on any thread but
//! touch the disk, so async callers use `spawn_blocking`.

pub mod committer;
pub mod derived;
mod records;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

pub use records::{LogEntry, LogOp, Protocol, ReportRecord, UserRecord};

use crate::codec;
use crate::error::{Error, Result};

/// The on-disk format this binary writes and reads.
pub const STORE_FORMAT_VERSION: u32 = 1;

pub(crate) const META_FORMAT: &[u8] = b"m/format";
pub(crate) const META_LAST_SEQ: &[u8] = b"m/last_seq";
pub(crate) const META_TERM: &[u8] = b"m/term";
pub(crate) const META_LOGICAL_BYTES: &[u8] = b"m/logical_bytes";

pub(crate) const PREFIX_REPORT: u8 = b'd';
pub(crate) const PREFIX_FACT: u8 = b'f';
pub(crate) const PREFIX_LOG: u8 = b'l';
pub(crate) const PREFIX_USER: u8 = b'u';

pub(crate) fn report_key(id: &Uuid) -> [u8; 17] {
    prefixed_uuid(PREFIX_REPORT, id)
}
pub(crate) fn fact_key(id: &Uuid) -> [u8; 17] {
    prefixed_uuid(PREFIX_FACT, id)
}
pub(crate) fn user_key(id: &Uuid) -> [u8; 17] {
    prefixed_uuid(PREFIX_USER, id)
}
pub(crate) fn log_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = PREFIX_LOG;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}
fn prefixed_uuid(prefix: u8, id: &Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

/// Settings for opening the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// sled's page cache size in bytes. sled's default is 1 GiB and it measures on-disk page
    /// size, not RSS: real memory use is a multiple of it, so keep it modest.
    pub cache_capacity_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_capacity_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A report read back from the store.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// Its record (seq, hash, protocol...).
    pub record: ReportRecord,
    /// The canonical v3 document, decompressed.
    pub document: Vec<u8>,
}

/// The opened sled database. Cheap to share behind an `Arc`.
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    users: Mutex<UserCache>,
}

/// Parsed Metabase profiles, read through by [`Store::user`]: every legacy submission looks
/// its submitter up, and a lookup from memory needs no trip to the blocking pool.
///
/// Coherent because only the committer writes users and it calls
/// [`Store::forget_cached_users`] after applying such a write. A reader that read sled before
/// that call inserts only if `generation` is unchanged, so a stale record is never cached.
#[derive(Default)]
struct UserCache {
    generation: u64,
    records: HashMap<Uuid, UserRecord>,
}

/// Profiles kept in [`UserCache`] at most; it is emptied when full (CPAN Testers has a few
/// thousand active testers).
const USER_CACHE_CAPACITY: usize = 50_000;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

const OPEN_HINT: &str = "nothing was changed or deleted. If another reportstore process uses this \
directory, stop it first. If the store is damaged, move the directory aside and re-seed it from a \
follower (see README, \"When the store does not open\")";

impl Store {
    /// Opens (or creates) the store in `path`.
    ///
    /// A store that sled cannot open, that another process holds, or that was written by a newer
    /// format is refused with [`Error::StoreOpen`]; nothing is ever deleted or reset here. sled
    /// 0.34 has been seen to panic on damaged files, so the panic is caught and reported the same way.
    pub fn open(path: &Path, config: &StoreConfig) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let sled_config = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .mode(sled::Mode::LowSpace)
            // A safety net only: acknowledged writes never depend on it (the committer flushes).
            .flush_every_ms(Some(1000));
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| sled_config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(error)) => {
                return Err(Error::StoreOpen {
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                    hint: OPEN_HINT,
                });
            }
            Err(panic) => {
                let reason = crate::error::panic_message(panic.as_ref())
                    .unwrap_or_else(|| "no message".to_string());
                return Err(Error::StoreOpen {
                    path: path.to_path_buf(),
                    reason: format!("sled panicked while opening: {reason}"),
                    hint: OPEN_HINT,
                });
            }
        };
        let store = Store {
            db,
            path: path.to_path_buf(),
            users: Mutex::default(),
        };
        store.check_format()?;
        Ok(store)
    }

    fn check_format(&self) -> Result<()> {
        let refuse = |reason: String| Error::StoreOpen {
            path: self.path.clone(),
            reason,
            hint: OPEN_HINT,
        };
        match self
            .db
            .get(META_FORMAT)
            .map_err(|e| Error::storage("reading format", e))?
        {
            Some(bytes) => {
                let version = u32::from_be_bytes(
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| refuse("the format marker is damaged".to_string()))?,
                );
                if version > STORE_FORMAT_VERSION {
                    return Err(refuse(format!(
                        "store format {version} is newer than this binary's {STORE_FORMAT_VERSION}"
                    )));
                }
                Ok(())
            }
            None if self.db.is_empty() => {
                self.db
                    .insert(META_FORMAT, &STORE_FORMAT_VERSION.to_be_bytes())
                    .map_err(|e| Error::storage("writing format", e))?;
                self.db
                    .flush()
                    .map_err(|e| Error::storage("writing format", e))?;
                Ok(())
            }
            None => Err(refuse(
                "the directory holds a sled database that is not a reportstore store".to_string(),
            )),
        }
    }

    /// The data directory of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The sequence number of the last entry written to the replication log (0 when empty).
    pub fn last_seq(&self) -> Result<u64> {
        read_u64(&self.db, META_LAST_SEQ)
    }

    /// Bytes of JSON received for the reports stored (what the store would hold uncompressed).
    pub fn logical_bytes(&self) -> Result<u64> {
        read_u64(&self.db, META_LOGICAL_BYTES)
    }

    /// The current leadership term (0 until the first promotion).
    pub fn term(&self) -> Result<u64> {
        read_u64(&self.db, META_TERM)
    }

    /// The record of report `id`, without decompressing it.
    pub fn report_record(&self, id: &Uuid) -> Result<Option<ReportRecord>> {
        let Some(bytes) = self
            .db
            .get(report_key(id))
            .map_err(|e| Error::storage("reading report", e))?
        else {
            return Ok(None);
        };
        ReportRecord::decode(&bytes)
            .map(Some)
            .map_err(|detail| Error::corruption(format!("report {id}"), detail))
    }

    /// Report `id` with its document decompressed.
    pub fn report(&self, id: &Uuid) -> Result<Option<StoredReport>> {
        let Some(record) = self.report_record(id)? else {
            return Ok(None);
        };
        let document = codec::decompress_document(&record.document_frame)?;
        Ok(Some(StoredReport { record, document }))
    }

    /// Reads the rows that committing report `id` (of `summary`) will read or rewrite, so
    /// that the committer finds them in memory; nothing is written. Call it where the report
    /// is prepared, off the async runtime: on a cold store it waits for the disk.
    ///
    /// Without it, a store larger than memory held ingest to one thread's random reads: a
    /// run at 1,000 reports/s on a 5 GB store whose pages had left the page cache was
    /// answered 503 232,000 times in 26 s, all "too many reports in flight".
    /// `with_fact`: the report brings an original Metabase fact (its row is written too).
    pub fn warm_for_report(&self, id: &Uuid, summary: &derived::ReportSummary, with_fact: bool) {
        let _ = self.db.get(report_key(id));
        if with_fact {
            let _ = self.db.get(fact_key(id));
        }
        derived::warm_rows_for_report(&self.db, summary);
    }

    /// The original Metabase submission of report `id`, byte for byte, if it came that way.
    pub fn report_fact(&self, id: &Uuid, stored: &StoredReport) -> Result<Option<Vec<u8>>> {
        let Some(frame) = self
            .db
            .get(fact_key(id))
            .map_err(|e| Error::storage("reading fact", e))?
        else {
            return Ok(None);
        };
        let text = document_textreport(&stored.document)
            .map_err(|detail| Error::corruption(format!("document {id}"), detail))?;
        codec::decompress_fact(&frame, &text).map(Some)
    }

    /// The Metabase user `id`, if registered. Reads through the in-memory profile cache, so
    /// it touches the disk only on a miss.
    pub fn user(&self, id: &Uuid) -> Result<Option<UserRecord>> {
        let generation = {
            let users = self.users.lock().expect("user cache lock");
            if let Some(user) = users.records.get(id) {
                return Ok(Some(user.clone()));
            }
            users.generation
        };
        let Some(bytes) = self
            .db
            .get(user_key(id))
            .map_err(|e| Error::storage("reading user", e))?
        else {
            return Ok(None);
        };
        let user: UserRecord = serde_json::from_slice(&bytes)
            .map_err(|error| Error::corruption(format!("user {id}"), error.to_string()))?;
        let mut users = self.users.lock().expect("user cache lock");
        if users.generation == generation {
            if users.records.len() >= USER_CACHE_CAPACITY {
                users.records.clear();
            }
            users.records.insert(*id, user.clone());
        }
        Ok(Some(user))
    }

    /// The Metabase user `id` if [`Store::user`] has it in memory: never touches the disk, so
    /// async code may call it directly and fall back to `user` on the blocking pool.
    pub fn cached_user(&self, id: &Uuid) -> Option<UserRecord> {
        let users = self.users.lock().expect("user cache lock");
        users.records.get(id).cloned()
    }

    /// Empties the profile cache. The committer calls it after every applied batch that wrote
    /// a user; a writer that skipped it would leave readers with the old profile.
    pub(crate) fn forget_cached_users(&self) {
        let mut users = self.users.lock().expect("user cache lock");
        users.generation += 1;
        users.records.clear();
    }

    /// Up to `limit` log entries with `seq > after`, in order.
    pub fn log_entries(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let start = log_key(after.saturating_add(1));
        let end = log_key(u64::MAX);
        let mut entries = Vec::new();
        for item in self.db.range(start..=end).take(limit) {
            let (key, value) = item.map_err(|e| Error::storage("reading log", e))?;
            let entry = LogEntry::decode(&value).map_err(|detail| {
                Error::corruption(format!("log entry {:?}", key.as_ref()), detail)
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Up to `max_entries` log entries after `after` with the values they name, as stored,
    /// stopping early once `max_bytes` of values are collected (at least one entry is
    /// returned when there is one). What the change feed ships.
    pub fn replicated_entries(
        &self,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<committer::ReplicatedEntry>> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for entry in self.log_entries(after, max_entries)? {
            let (value_key, fact) = match entry.op {
                LogOp::PutReport => (
                    report_key(&entry.id),
                    self.db
                        .get(fact_key(&entry.id))
                        .map_err(|e| Error::storage("reading fact", e))?
                        .map(|value| value.to_vec()),
                ),
                LogOp::PutUser => (user_key(&entry.id), None),
            };
            let value = self
                .db
                .get(value_key)
                .map_err(|e| Error::storage("reading replicated value", e))?
                .ok_or_else(|| {
                    Error::corruption(format!("log entry {}", entry.seq), "its value is missing")
                })?
                .to_vec();
            bytes += value.len() + fact.as_ref().map_or(0, Vec::len);
            entries.push(committer::ReplicatedEntry { entry, value, fact });
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(entries)
    }

    /// Bytes sled occupies on disk (all files).
    pub fn size_on_disk(&self) -> Result<u64> {
        self.db
            .size_on_disk()
            .map_err(|e| Error::storage("measuring size", e))
    }

    /// Whether an existing database was opened (sled's `was_recovered`), as opposed to a new
    /// one created. It says nothing about whether the last stop was clean.
    pub fn was_recovered(&self) -> bool {
        self.db.was_recovered()
    }

    /// Flushes sled's buffers to disk. Only the committer and shutdown call it; never call it
    /// from many threads at once (sled 0.34 flush races are a known source of deadlocks).
    pub(crate) fn flush(&self) -> Result<usize> {
        self.db.flush().map_err(|e| Error::storage("flush", e))
    }

    /// Walks the whole replication log and verifies the store's invariants: the log is gap-free
    /// from 1 to `last_seq`, every entry's value exists, report hashes match their records,
    /// every document and fact decompresses, every summary row matches its document and every
    /// release counter equals a recount from the documents. Reads everything: an
    /// offline/operator tool.
    pub fn check(&self) -> Result<CheckReport> {
        let last_seq = self.last_seq()?;
        let mut report = CheckReport {
            last_seq,
            ..CheckReport::default()
        };
        let mut expected = 1u64;
        let mut after = 0u64;
        let mut recount: std::collections::HashMap<(String, String), [u64; 4]> =
            std::collections::HashMap::new();
        loop {
            let entries = self.log_entries(after, 1024)?;
            if entries.is_empty() {
                break;
            }
            for entry in &entries {
                if entry.seq != expected {
                    report.problems.push(format!(
                        "gap in the log: expected seq {expected}, found {}",
                        entry.seq
                    ));
                }
                expected = entry.seq + 1;
                report.entries += 1;
                match self.check_entry(entry) {
                    Ok(Some(summary)) => {
                        if let Some(grade) = derived::GRADES
                            .iter()
                            .position(|grade| *grade == summary.grade)
                        {
                            recount.entry((summary.dist, summary.version)).or_default()[grade] += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(problem) => report.problems.push(problem),
                }
                match entry.op {
                    LogOp::PutReport => report.reports += 1,
                    LogOp::PutUser => report.users += 1,
                }
            }
            after = entries.last().map(|entry| entry.seq).unwrap_or(after);
        }
        if report.entries != last_seq {
            report.problems.push(format!(
                "last_seq is {last_seq} but the log holds {} entries",
                report.entries
            ));
        }
        self.check_release_counters(&recount, &mut report)?;
        Ok(report)
    }

    fn check_release_counters(
        &self,
        recount: &std::collections::HashMap<(String, String), [u64; 4]>,
        report: &mut CheckReport,
    ) -> Result<()> {
        let mut seen = 0usize;
        self.visit_releases(&derived::ReleaseSelection::All, 1, &mut |counters| {
            seen += 1;
            report.releases += 1;
            let key = (counters.dist.clone(), counters.version.clone());
            let expected = recount.get(&key).copied().unwrap_or_default();
            if counters.totals() != expected {
                report.problems.push(format!(
                    "release {}/{}: counters {:?} but the documents count {:?}",
                    key.0,
                    key.1,
                    counters.totals(),
                    expected
                ));
            }
            Ok(true)
        })?;
        if seen != recount.len() {
            report.problems.push(format!(
                "{seen} release rows but the documents name {} releases",
                recount.len()
            ));
        }
        self.check_release_change_index(&mut report.problems)
    }

    /// Checks one entry; for a report, returns the summary recomputed from its document.
    fn check_entry(
        &self,
        entry: &LogEntry,
    ) -> std::result::Result<Option<derived::ReportSummary>, String> {
        match entry.op {
            LogOp::PutReport => {
                let stored = self
                    .report(&entry.id)
                    .map_err(|e| format!("seq {}: {e}", entry.seq))?
                    .ok_or_else(|| format!("seq {}: report {} is missing", entry.seq, entry.id))?;
                if stored.record.seq != entry.seq {
                    return Err(format!(
                        "seq {}: report {} claims seq {}",
                        entry.seq, entry.id, stored.record.seq
                    ));
                }
                if stored.record.content_sha256 != entry.content_sha256 {
                    return Err(format!(
                        "seq {}: report {} hash differs from its log entry",
                        entry.seq, entry.id
                    ));
                }
                if stored.record.has_fact {
                    self.report_fact(&entry.id, &stored)
                        .map_err(|e| format!("seq {}: {e}", entry.seq))?
                        .ok_or_else(|| {
                            format!("seq {}: fact of {} is missing", entry.seq, entry.id)
                        })?;
                }
                let document: serde_json::Value = serde_json::from_slice(&stored.document)
                    .map_err(|e| format!("seq {}: document is not JSON: {e}", entry.seq))?;
                let recomputed = derived::ReportSummary::from_document(&document, entry.seq)
                    .map_err(|e| format!("seq {}: {e}", entry.seq))?;
                let stored_summary = self
                    .summary_at(entry.seq)
                    .map_err(|e| format!("seq {}: {e}", entry.seq))?
                    .ok_or_else(|| format!("seq {}: summary row is missing", entry.seq))?;
                if stored_summary != recomputed {
                    return Err(format!(
                        "seq {}: summary row differs from the document",
                        entry.seq
                    ));
                }
                Ok(Some(recomputed))
            }
            LogOp::PutUser => {
                self.user(&entry.id)
                    .map_err(|e| format!("seq {}: {e}", entry.seq))?
                    .ok_or_else(|| format!("seq {}: user {} is missing", entry.seq, entry.id))?;
                Ok(None)
            }
        }
    }
}

/// What [`Store::check`] found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CheckReport {
    /// `m/last_seq`.
    pub last_seq: u64,
    /// Log entries walked.
    pub entries: u64,
    /// Report entries among them.
    pub reports: u64,
    /// User entries among them.
    pub users: u64,
    /// Release counter rows checked against a recount from the documents.
    pub releases: u64,
    /// Every violated invariant, empty when the store is consistent.
    pub problems: Vec<String>,
}

fn read_u64(db: &sled::Db, key: &[u8]) -> Result<u64> {
    match db.get(key).map_err(|e| Error::storage("reading meta", e))? {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| Error::corruption(String::from_utf8_lossy(key), "not a u64"))?;
            Ok(u64::from_be_bytes(array))
        }
    }
}

/// `result.output.uncategorized` of a stored document: the text a fact frame is compressed
/// against. Empty when absent (v3 documents may carry phases instead).
pub fn document_textreport(document: &[u8]) -> std::result::Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        result: Option<DocResult>,
    }
    #[derive(serde::Deserialize)]
    struct DocResult {
        output: Option<DocOutput>,
    }
    #[derive(serde::Deserialize)]
    struct DocOutput {
        uncategorized: Option<String>,
    }
    let doc: Doc = serde_json::from_slice(document).map_err(|e| e.to_string())?;
    Ok(doc
        .result
        .and_then(|r| r.output)
        .and_then(|o| o.uncategorized)
        .unwrap_or_default())
}
