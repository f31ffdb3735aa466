//! Derived rows, written by the committer in the same atomic batch as the report they come
//! from, so they never lag the documents and "changed since" is a range scan, not a join.
//!
//! | key | value |
//! |---|---|
//! | `S` + seq | [`ReportSummary`] JSON: the cpanstats row of the report stored at that seq |
//! | `s` + dist 0x00 version 0x00 seq | empty: index of summaries by release |
//! | `r` + dist 0x00 version | [`ReleaseCounters`] JSON: pass/fail/na/unknown by category, last change |
//! | `c` + last-change seq + dist 0x00 version | empty: releases ordered by their last change |
//! | `a` + author 0x00 dist 0x00 version | empty: releases of a PAUSE author |
//! | `t` + day (YYYYMMDD) 0x00 dimension 0x00 value | u64 BE: reports per day by grade, OS, perl |
//!
//! A release's `c` key moves (delete old, insert new) whenever its counters change, so
//! `/v3/release?since=` reads exactly the releases changed after a sequence number.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::distinfo;
use crate::error::{Error, Result};

pub(crate) const PREFIX_SUMMARY_BY_SEQ: u8 = b'S';
pub(crate) const PREFIX_SUMMARY_BY_RELEASE: u8 = b's';
pub(crate) const PREFIX_RELEASE: u8 = b'r';
pub(crate) const PREFIX_RELEASE_CHANGED: u8 = b'c';
pub(crate) const PREFIX_AUTHOR_RELEASE: u8 = b'a';
pub(crate) const PREFIX_STATS: u8 = b't';

/// The four grades, in the order counters are kept.
pub const GRADES: [&str; 4] = ["pass", "fail", "na", "unknown"];

/// One report reduced to the cpanstats fields (`cpantesters-api.md` §1a ReportSummary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Report id.
    pub guid: Uuid,
    /// Log sequence number of the report.
    pub seq: u64,
    /// `created`, to the minute: `YYYY-MM-DDTHH:MM:00Z`.
    pub date: String,
    /// `created` as stored (to the second).
    pub created: String,
    /// pass, fail, na or unknown.
    pub grade: String,
    /// `"Name" <email>`, as cpanstats' `tester`.
    pub reporter: String,
    /// Distribution name.
    pub dist: String,
    /// Distribution version.
    pub version: String,
    /// PAUSE id of the release's author, when the report names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `AUTHOR/filename` of the release, when the report names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `archname`.
    pub platform: String,
    /// Perl version without leading `v`.
    pub perl: String,
    /// `$^O`.
    pub osname: String,
    /// `osvers`.
    pub osvers: String,
}

impl ReportSummary {
    /// Reads the summary fields out of a canonical v3 document.
    pub fn from_document(document: &Value, seq: u64) -> Result<ReportSummary> {
        let text = |pointer: &str| -> String {
            document
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let guid = Uuid::parse_str(&text("/id"))
            .map_err(|_| Error::invalid("document has no valid id", "/id"))?;
        let created = text("/created");
        let date = crate::ingest::parse_timestamp(&created)
            .map(|time| {
                let minute = time
                    .to_offset(time::UtcOffset::UTC)
                    .replace_second(0)
                    .and_then(|time| time.replace_nanosecond(0))
                    .unwrap_or(time);
                crate::ingest::format_timestamp(minute)
            })
            .unwrap_or_else(|| created.clone());
        let name = text("/reporter/name");
        let email = text("/reporter/email");
        let reporter = match (name.is_empty(), email.is_empty()) {
            (false, false) => format!("\"{name}\" <{email}>"),
            (true, false) => email,
            (false, true) => name,
            (true, true) => "Unknown".to_string(),
        };
        let author = document
            .pointer("/distribution/author")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                document
                    .pointer("/distribution/path")
                    .and_then(Value::as_str)
                    .and_then(|path| path.split('/').next())
                    .filter(|author| !author.is_empty())
                    .map(str::to_string)
            });
        let path = document
            .pointer("/distribution/path")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(ReportSummary {
            guid,
            seq,
            date,
            created,
            path,
            grade: text("/result/grade"),
            reporter,
            dist: text("/distribution/name"),
            version: text("/distribution/version"),
            author,
            platform: text("/environment/language/archname"),
            perl: text("/environment/language/version")
                .trim_start_matches(['v', 'V'])
                .to_string(),
            osname: text("/environment/system/osname"),
            osvers: text("/environment/system/osversion"),
        })
    }

    fn grade_index(&self) -> Option<usize> {
        GRADES.iter().position(|grade| *grade == self.grade)
    }
}

/// Counters of one release (dist + version), split the way `release_summary` splits them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCounters {
    /// Distribution name.
    pub dist: String,
    /// Distribution version.
    pub version: String,
    /// PAUSE author, when any report named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Whether the version is a developer release (`_` or `-TRIAL`).
    pub dev_dist: bool,
    /// `[perl devel?][patched?][grade]`: pass, fail, na, unknown per perl category.
    pub by_perl: [[[u64; 4]; 2]; 2],
    /// Sequence number of the last report folded in.
    pub last_seq: u64,
    /// Id of the last report folded in.
    pub last_guid: Uuid,
    /// `date` of the last report folded in.
    pub last_date: String,
}

impl ReleaseCounters {
    /// pass, fail, na, unknown over every category.
    pub fn totals(&self) -> [u64; 4] {
        let mut totals = [0; 4];
        for devel in &self.by_perl {
            for patched in devel {
                for (grade, count) in patched.iter().enumerate() {
                    totals[grade] += count;
                }
            }
        }
        totals
    }
}

fn join_key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|part| part.len() + 1).sum::<usize>());
    key.push(prefix);
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

/// `r` key of a release.
pub fn release_key(dist: &str, version: &str) -> Vec<u8> {
    join_key(PREFIX_RELEASE, &[dist.as_bytes(), version.as_bytes()])
}

/// `c` key of a release changed at `seq`.
pub fn release_changed_key(seq: u64, dist: &str, version: &str) -> Vec<u8> {
    let mut key = vec![PREFIX_RELEASE_CHANGED];
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(dist.as_bytes());
    key.push(0);
    key.extend_from_slice(version.as_bytes());
    key
}

/// `S` key of the summary at `seq`.
pub fn summary_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = PREFIX_SUMMARY_BY_SEQ;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// `s` index key of a summary.
pub fn summary_release_key(dist: &str, version: &str, seq: u64) -> Vec<u8> {
    let mut key = join_key(
        PREFIX_SUMMARY_BY_RELEASE,
        &[dist.as_bytes(), version.as_bytes()],
    );
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `a` key of an author's release.
pub fn author_release_key(author: &str, dist: &str, version: &str) -> Vec<u8> {
    join_key(
        PREFIX_AUTHOR_RELEASE,
        &[author.as_bytes(), dist.as_bytes(), version.as_bytes()],
    )
}

/// `t` key of a per-day statistics counter.
pub fn stats_key(day: &str, dimension: &str, value: &str) -> Vec<u8> {
    join_key(
        PREFIX_STATS,
        &[day.as_bytes(), dimension.as_bytes(), value.as_bytes()],
    )
}

/// The statistics dimensions counted per day.
pub const STATS_DIMENSIONS: [&str; 3] = ["grade", "osname", "perl"];

/// Accumulates the derived writes of one committer group: release counters are read once
/// from sled, updated in memory for every report of the group, and written once.
#[derive(Default)]
pub(crate) struct DerivedGroup {
    releases: HashMap<Vec<u8>, (ReleaseCounters, Option<u64>)>,
    stats: HashMap<Vec<u8>, u64>,
}

impl DerivedGroup {
    /// Stages the rows of one report into `batch`. All-or-nothing: every fallible read
    /// happens before anything is staged or counted, so an error leaves `batch` and the group
    /// as they were.
    pub(crate) fn add_report(
        &mut self,
        tree: &sled::Db,
        batch: &mut sled::Batch,
        summary: &ReportSummary,
    ) -> Result<()> {
        let summary_bytes = serde_json::to_vec(summary)
            .map_err(|error| Error::Internal(format!("serialising summary: {error}")))?;
        let perl = distinfo::classify_perl_version(&summary.perl);
        let day: String = summary
            .date
            .chars()
            .filter(char::is_ascii_digit)
            .take(8)
            .collect();
        let stats_keys: Vec<Vec<u8>> = [
            ("grade", summary.grade.as_str()),
            ("osname", summary.osname.as_str()),
            ("perl", perl.perl.as_str()),
        ]
        .iter()
        .map(|(dimension, value)| stats_key(&day, dimension, value))
        .collect();

        let release = release_key(&summary.dist, &summary.version);
        if !self.releases.contains_key(&release) {
            let loaded = self.load_release(tree, &release, summary)?;
            self.releases.insert(release.clone(), loaded);
        }
        for key in &stats_keys {
            if !self.stats.contains_key(key) {
                let current = tree
                    .get(key)
                    .map_err(|e| Error::storage("reading statistics", e))?
                    .map(|bytes| read_counter(&bytes))
                    .unwrap_or(0);
                self.stats.insert(key.clone(), current);
            }
        }

        // Nothing below fails.
        batch.insert(&summary_key(summary.seq), summary_bytes);
        batch.insert(
            summary_release_key(&summary.dist, &summary.version, summary.seq),
            &[][..],
        );
        let (counters, _) = self.releases.get_mut(&release).expect("loaded above");
        if let Some(grade) = summary.grade_index() {
            counters.by_perl[usize::from(perl.devel)][usize::from(perl.patched)][grade] += 1;
        }
        counters.last_seq = summary.seq;
        counters.last_guid = summary.guid;
        counters.last_date = summary.date.clone();
        if counters.author.is_none()
            && let Some(author) = &summary.author
        {
            counters.author = Some(author.clone());
            batch.insert(
                author_release_key(author, &summary.dist, &summary.version),
                &[][..],
            );
        }
        for key in stats_keys {
            *self.stats.get_mut(&key).expect("loaded above") += 1;
        }
        Ok(())
    }

    fn load_release(
        &self,
        tree: &sled::Db,
        key: &[u8],
        summary: &ReportSummary,
    ) -> Result<(ReleaseCounters, Option<u64>)> {
        let stored = tree
            .get(key)
            .map_err(|e| Error::storage("reading release counters", e))?;
        let Some(bytes) = stored else {
            return Ok((
                ReleaseCounters {
                    dist: summary.dist.clone(),
                    version: summary.version.clone(),
                    dev_dist: distinfo::is_dev_dist_version(&summary.version),
                    ..ReleaseCounters::default()
                },
                None,
            ));
        };
        let counters: ReleaseCounters = serde_json::from_slice(&bytes).map_err(|error| {
            Error::corruption(
                format!("release {}/{}", summary.dist, summary.version),
                error.to_string(),
            )
        })?;
        let previous_seq = counters.last_seq;
        Ok((counters, Some(previous_seq)))
    }

    /// Writes the accumulated counters into `batch`.
    pub(crate) fn finish(self, batch: &mut sled::Batch) -> Result<()> {
        for (key, (counters, previous_seq)) in self.releases {
            if let Some(previous_seq) = previous_seq {
                batch.remove(release_changed_key(
                    previous_seq,
                    &counters.dist,
                    &counters.version,
                ));
            }
            batch.insert(
                release_changed_key(counters.last_seq, &counters.dist, &counters.version),
                &[][..],
            );
            let bytes = serde_json::to_vec(&counters).map_err(|error| {
                Error::Internal(format!("serialising release counters: {error}"))
            })?;
            batch.insert(key, bytes);
        }
        for (key, count) in self.stats {
            batch.insert(key, &count.to_be_bytes()[..]);
        }
        Ok(())
    }
}

/// Reads a big-endian u64 counter value (0 when damaged).
pub fn read_counter(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Which releases a release read returns.
#[derive(Debug, Clone)]
pub enum ReleaseSelection {
    /// Every release, ordered by dist and version.
    All,
    /// Every version of one distribution.
    Dist(String),
    /// One release.
    DistVersion(String, String),
    /// The releases of a PAUSE author.
    Author(String),
}

/// Which summaries a summary read returns.
#[derive(Debug, Clone)]
pub enum SummarySelection {
    /// Every report.
    All,
    /// Every report of a distribution.
    Dist(String),
    /// Every report of a release.
    DistVersion(String, String),
}

fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn scan_prefix(db: &sled::Db, prefix: Vec<u8>) -> sled::Iter {
    match prefix_end(&prefix) {
        Some(end) => db.range(prefix..end),
        None => db.range(prefix..),
    }
}

impl super::Store {
    /// The first sequence number committed at or after `time_ms` (`last_seq + 1` when none):
    /// a binary search over the log's commit times, which the committer keeps non-decreasing.
    pub fn first_seq_at_or_after(&self, time_ms: i64) -> Result<u64> {
        let last_seq = self.last_seq()?;
        let (mut low, mut high) = (1u64, last_seq + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            let committed_at = self
                .log_entries(middle - 1, 1)?
                .first()
                .map_or(i64::MAX, |entry| entry.committed_at_ms);
            if committed_at >= time_ms {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(low)
    }

    /// Counters of one release.
    pub fn release(&self, dist: &str, version: &str) -> Result<Option<ReleaseCounters>> {
        let Some(bytes) = self
            .db()
            .get(release_key(dist, version))
            .map_err(|e| Error::storage("reading release", e))?
        else {
            return Ok(None);
        };
        decode_release(&bytes).map(Some)
    }

    /// Visits releases in `selection` whose last change has `seq >= since_seq`, in key order
    /// (or in change order when `selection` is `All` and `since_seq > 1`), until `visit`
    /// returns false. Streams: memory does not grow with the number of releases.
    pub fn visit_releases(
        &self,
        selection: &ReleaseSelection,
        since_seq: u64,
        visit: &mut dyn FnMut(ReleaseCounters) -> Result<bool>,
    ) -> Result<()> {
        let db = self.db();
        match selection {
            ReleaseSelection::All if since_seq > 1 => {
                let mut start = vec![PREFIX_RELEASE_CHANGED];
                start.extend_from_slice(&since_seq.to_be_bytes());
                for item in db.range(start..vec![PREFIX_RELEASE_CHANGED + 1]) {
                    let (key, _) = item.map_err(|e| Error::storage("scanning releases", e))?;
                    let Some((dist, version)) = split_release_name(&key[9..]) else {
                        continue;
                    };
                    if let Some(counters) = self.release(&dist, &version)?
                        && !visit(counters)?
                    {
                        return Ok(());
                    }
                }
                Ok(())
            }
            ReleaseSelection::All | ReleaseSelection::Dist(_) => {
                let prefix = match selection {
                    ReleaseSelection::Dist(dist) => {
                        let mut prefix = vec![PREFIX_RELEASE];
                        prefix.extend_from_slice(dist.as_bytes());
                        prefix.push(0);
                        prefix
                    }
                    _ => vec![PREFIX_RELEASE],
                };
                for item in scan_prefix(db, prefix) {
                    let (_, value) = item.map_err(|e| Error::storage("scanning releases", e))?;
                    let counters = decode_release(&value)?;
                    if counters.last_seq >= since_seq && !visit(counters)? {
                        return Ok(());
                    }
                }
                Ok(())
            }
            ReleaseSelection::DistVersion(dist, version) => {
                if let Some(counters) = self.release(dist, version)?
                    && counters.last_seq >= since_seq
                {
                    visit(counters)?;
                }
                Ok(())
            }
            ReleaseSelection::Author(author) => {
                let mut prefix = vec![PREFIX_AUTHOR_RELEASE];
                prefix.extend_from_slice(author.as_bytes());
                prefix.push(0);
                let prefix_length = prefix.len();
                for item in scan_prefix(db, prefix) {
                    let (key, _) =
                        item.map_err(|e| Error::storage("scanning author releases", e))?;
                    let Some((dist, version)) = split_release_name(&key[prefix_length..]) else {
                        continue;
                    };
                    if let Some(counters) = self.release(&dist, &version)?
                        && counters.last_seq >= since_seq
                        && !visit(counters)?
                    {
                        return Ok(());
                    }
                }
                Ok(())
            }
        }
    }

    /// The summary row of the report stored at `seq`.
    pub fn summary_at(&self, seq: u64) -> Result<Option<ReportSummary>> {
        let Some(bytes) = self
            .db()
            .get(summary_key(seq))
            .map_err(|e| Error::storage("reading summary", e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| Error::corruption(format!("summary at seq {seq}"), error.to_string()))
    }

    /// Visits summaries in `selection` with `seq >= since_seq`, in seq order for `All` and in
    /// release-then-seq order otherwise, until `visit` returns false.
    pub fn visit_summaries(
        &self,
        selection: &SummarySelection,
        since_seq: u64,
        visit: &mut dyn FnMut(ReportSummary) -> Result<bool>,
    ) -> Result<()> {
        let db = self.db();
        let prefix = match selection {
            SummarySelection::All => {
                let mut start = vec![PREFIX_SUMMARY_BY_SEQ];
                start.extend_from_slice(&since_seq.max(1).to_be_bytes());
                for item in db.range(start..vec![PREFIX_SUMMARY_BY_SEQ + 1]) {
                    let (key, value) = item.map_err(|e| Error::storage("scanning summaries", e))?;
                    let summary: ReportSummary =
                        serde_json::from_slice(&value).map_err(|error| {
                            Error::corruption(
                                format!("summary {:?}", key.as_ref()),
                                error.to_string(),
                            )
                        })?;
                    if !visit(summary)? {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            SummarySelection::Dist(dist) => {
                join_key(PREFIX_SUMMARY_BY_RELEASE, &[dist.as_bytes(), b""])
            }
            SummarySelection::DistVersion(dist, version) => join_key(
                PREFIX_SUMMARY_BY_RELEASE,
                &[dist.as_bytes(), version.as_bytes(), b""],
            ),
        };
        for item in scan_prefix(db, prefix) {
            let (key, _) = item.map_err(|e| Error::storage("scanning summaries", e))?;
            let Some(seq_bytes) = key.len().checked_sub(8).map(|start| &key[start..]) else {
                continue;
            };
            let seq = u64::from_be_bytes(seq_bytes.try_into().expect("8 bytes"));
            if seq < since_seq {
                continue;
            }
            if let Some(summary) = self.summary_at(seq)?
                && !visit(summary)?
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The newest `count` summaries, newest first.
    pub fn latest_summaries(&self, count: usize) -> Result<Vec<ReportSummary>> {
        let mut summaries = Vec::with_capacity(count.min(4096));
        for item in self
            .db()
            .range(vec![PREFIX_SUMMARY_BY_SEQ]..vec![PREFIX_SUMMARY_BY_SEQ + 1])
            .rev()
            .take(count)
        {
            let (key, value) = item.map_err(|e| Error::storage("scanning summaries", e))?;
            summaries.push(serde_json::from_slice(&value).map_err(|error| {
                Error::corruption(format!("summary {:?}", key.as_ref()), error.to_string())
            })?);
        }
        Ok(summaries)
    }

    /// Per-day counters from `first_day` to `last_day` (inclusive, `YYYYMMDD`):
    /// `(day, dimension, value, count)` in key order.
    pub fn daily_stats(
        &self,
        first_day: &str,
        last_day: &str,
    ) -> Result<Vec<(String, String, String, u64)>> {
        let start = join_key(PREFIX_STATS, &[first_day.as_bytes()]);
        let end = join_key(PREFIX_STATS, &[format!("{last_day}\u{1}").as_bytes()]);
        let mut rows = Vec::new();
        for item in self.db().range(start..end) {
            let (key, value) = item.map_err(|e| Error::storage("scanning statistics", e))?;
            let mut parts = key[1..].split(|byte| *byte == 0);
            let (Some(day), Some(dimension), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            rows.push((
                String::from_utf8_lossy(day).to_string(),
                String::from_utf8_lossy(dimension).to_string(),
                String::from_utf8_lossy(name).to_string(),
                read_counter(&value),
            ));
        }
        Ok(rows)
    }

    /// Recomputes every release counter from the summary rows, for consistency checks:
    /// `(dist, version) -> totals`.
    pub fn recount_releases(&self) -> Result<HashMap<(String, String), [u64; 4]>> {
        let mut totals: HashMap<(String, String), [u64; 4]> = HashMap::new();
        self.visit_summaries(&SummarySelection::All, 1, &mut |summary| {
            if let Some(grade) = summary.grade_index() {
                totals
                    .entry((summary.dist.clone(), summary.version.clone()))
                    .or_default()[grade] += 1;
            }
            Ok(true)
        })?;
        Ok(totals)
    }
}

fn decode_release(bytes: &[u8]) -> Result<ReleaseCounters> {
    serde_json::from_slice(bytes)
        .map_err(|error| Error::corruption("release counters", error.to_string()))
}

fn split_release_name(bytes: &[u8]) -> Option<(String, String)> {
    let separator = bytes.iter().position(|byte| *byte == 0)?;
    Some((
        String::from_utf8_lossy(&bytes[..separator]).to_string(),
        String::from_utf8_lossy(&bytes[separator + 1..]).to_string(),
    ))
}
