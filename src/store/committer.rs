//! The committer: the only writer to sled.
//!
//! Handlers send prepared (validated, compressed) writes into a bounded queue. One OS thread
//! takes whatever is waiting (a *group*), gives every new item the next sequence number,
//! writes documents, log entries and `m/last_seq` in one atomic `apply_batch`, calls
//! `flush()` once, and only then answers each waiting request. A crash before the flush loses
//! only requests that were never answered; a 201 always means "on disk".
//!
//! While one group is being flushed the next one queues up, so the fsync cost is shared by
//! everything that arrived meanwhile: throughput rises with load instead of collapsing.
//!
//! A full queue is answered at once with [`Error::Unavailable`] (HTTP 503 + `Retry-After`),
//! never by buffering without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::derived::{DerivedGroup, ReportSummary};
use super::{
    LogEntry, LogOp, META_LAST_SEQ, META_LOGICAL_BYTES, META_TERM, Protocol, ReportRecord, Store,
    UserRecord, fact_key, log_key, report_key, user_key,
};
use crate::error::{Error, Result};

/// A report ready to be written: validated, converted and compressed by the ingest path.
#[derive(Debug, Clone)]
pub struct PreparedReport {
    /// The report id (the Metabase GUID for legacy submissions).
    pub id: Uuid,
    /// How it arrived.
    pub protocol: Protocol,
    /// SHA-256 of the canonical submitted content, for idempotency.
    pub content_sha256: [u8; 32],
    /// Server receive time, Unix milliseconds.
    pub received_at_ms: i64,
    /// The compressed canonical v3 document.
    pub document_frame: Vec<u8>,
    /// The compressed original Metabase fact, for legacy submissions.
    pub fact_frame: Option<Vec<u8>>,
    /// The report's summary row. Its `seq` is ignored: the committer assigns it.
    pub summary: ReportSummary,
    /// Size of the JSON as the client sent it: the store's "logical bytes" grow by this.
    pub received_bytes: u64,
}

impl PreparedReport {
    fn approximate_bytes(&self) -> usize {
        self.document_frame.len() + self.fact_frame.as_ref().map_or(0, Vec::len)
    }
}

/// What happened to a report write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutReportOutcome {
    /// Newly stored under this sequence number.
    Stored {
        /// The report's log sequence number.
        seq: u64,
    },
    /// The same id with the same content was already stored: nothing was written.
    AlreadyStored {
        /// The sequence number it was stored under.
        seq: u64,
    },
}

/// What happened to a user registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutUserOutcome {
    /// Stored under this sequence number.
    Stored {
        /// The registration's log sequence number.
        seq: u64,
    },
    /// The user exists and `replace_existing` was false: nothing was written.
    AlreadyExists,
}

enum WriteRequest {
    Report {
        // Boxed: a prepared report is large and the queue holds many requests.
        report: Box<PreparedReport>,
        reply: oneshot::Sender<Result<PutReportOutcome>>,
    },
    User {
        user: UserRecord,
        replace_existing: bool,
        reply: oneshot::Sender<Result<PutUserOutcome>>,
    },
    /// Entries of the leader's log, to apply on a follower in order, atomically.
    Apply {
        entries: Vec<PreparedReplicatedEntry>,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Raise the term (promotion). Entries written afterwards carry it.
    SetTerm {
        term: u64,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Commit what came before, then stop. Writes queued after it are refused.
    Stop,
}

/// One entry of a leader's replication log as the change feed ships it: the log entry and
/// the stored values it names, byte for byte as the leader stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedEntry {
    /// The decoded log entry.
    pub entry: LogEntry,
    /// The value under `d` (report record) or `u` (user record) + id.
    pub value: Vec<u8>,
    /// The value under `f` + id (the original Metabase fact), if any.
    pub fact: Option<Vec<u8>>,
}

/// A replicated entry whose values were checked against its log entry and whose document was
/// decoded into its summary row: what the committer applies. Only [`prepare_replicated`]
/// makes one, so an unchecked entry cannot reach the store. Preparing is CPU work (zstd,
/// JSON) that callers run in parallel, off the committer thread.
#[derive(Debug, Clone)]
pub struct PreparedReplicatedEntry {
    replicated: ReplicatedEntry,
    summary: Option<ReportSummary>,
    document_bytes: u64,
}

impl PreparedReplicatedEntry {
    /// The log entry.
    pub fn entry(&self) -> &LogEntry {
        &self.replicated.entry
    }
}

/// Checks a replicated entry's values against its log entry (seq, content hash), decodes a
/// report's document and computes its summary row.
pub fn prepare_replicated(replicated: ReplicatedEntry) -> Result<PreparedReplicatedEntry> {
    let entry = &replicated.entry;
    match entry.op {
        LogOp::PutReport => {
            let record = ReportRecord::decode(&replicated.value).map_err(|detail| {
                Error::corruption(format!("replicated report at seq {}", entry.seq), detail)
            })?;
            if record.seq != entry.seq || record.content_sha256 != entry.content_sha256 {
                return Err(Error::corruption(
                    format!("replicated report at seq {}", entry.seq),
                    "the record does not match its log entry",
                ));
            }
            let document = crate::codec::decompress_document(&record.document_frame)?;
            let value: serde_json::Value = serde_json::from_slice(&document).map_err(|error| {
                Error::corruption(
                    format!("replicated document at seq {}", entry.seq),
                    error.to_string(),
                )
            })?;
            let summary = ReportSummary::from_document(&value, entry.seq)?;
            Ok(PreparedReplicatedEntry {
                document_bytes: document.len() as u64,
                summary: Some(summary),
                replicated,
            })
        }
        LogOp::PutUser => {
            let digest: [u8; 32] = Sha256::digest(&replicated.value).into();
            if digest != entry.content_sha256 {
                return Err(Error::corruption(
                    format!("replicated user at seq {}", entry.seq),
                    "the record does not match its log entry",
                ));
            }
            Ok(PreparedReplicatedEntry {
                replicated,
                summary: None,
                document_bytes: 0,
            })
        }
    }
}

/// Limits of the committer.
#[derive(Debug, Clone)]
pub struct CommitterConfig {
    /// Writes that may wait in the queue; beyond it clients get 503.
    pub queue_depth: usize,
    /// Most writes in one group (one atomic batch, one fsync).
    pub max_group_writes: usize,
    /// Most compressed bytes in one group; a group stops growing past it.
    pub max_group_bytes: usize,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig {
            queue_depth: 1024,
            max_group_writes: 512,
            max_group_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Counters the committer keeps for `/health` and metrics.
#[derive(Debug, Default)]
pub struct CommitterStats {
    /// Groups committed.
    pub groups: AtomicU64,
    /// Log entries written.
    pub entries_written: AtomicU64,
    /// Writes answered as duplicates.
    pub duplicates: AtomicU64,
    /// Duration of the last `flush()`, microseconds.
    pub last_flush_micros: AtomicU64,
    /// Size of the last group.
    pub last_group_size: AtomicU64,
    /// Groups whose write or flush failed.
    pub failed_groups: AtomicU64,
}

/// The handle handlers use to submit writes. Cheap to clone; when every clone is dropped the
/// committer finishes the group in flight and its thread ends.
#[derive(Clone)]
pub struct CommitterClient {
    sender: mpsc::Sender<WriteRequest>,
    durable_seq: watch::Receiver<u64>,
    queue_depth: usize,
    stats: Arc<CommitterStats>,
}

impl CommitterClient {
    /// Queues a report and waits until it is durable (or found to be a duplicate).
    pub async fn put_report(&self, report: PreparedReport) -> Result<PutReportOutcome> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(WriteRequest::Report {
            report: Box::new(report),
            reply,
        })?;
        answer.await.map_err(|_| committer_gone())?
    }

    /// Queues a user registration and waits until it is durable.
    pub async fn put_user(
        &self,
        user: UserRecord,
        replace_existing: bool,
    ) -> Result<PutUserOutcome> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(WriteRequest::User {
            user,
            replace_existing,
            reply,
        })?;
        answer.await.map_err(|_| committer_gone())?
    }

    fn enqueue(&self, request: WriteRequest) -> Result<()> {
        self.sender.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable {
                message: format!(
                    "the ingest queue is full ({} writes waiting); retry shortly",
                    self.queue_depth
                ),
                retry_after_secs: 1,
            },
            mpsc::error::TrySendError::Closed(_) => committer_gone(),
        })
    }

    /// Writes waiting in the queue now.
    pub fn queue_len(&self) -> usize {
        self.queue_depth - self.sender.capacity()
    }

    /// Applies entries of the leader's log (follower only). Entries at or below the local
    /// `last_seq` must equal the local ones (idempotent re-delivery); the first new entry must
    /// be `last_seq + 1`. Everything is checked before anything is written; a gap, a checksum
    /// or hash mismatch, or a divergent entry refuses the whole batch. Returns the new `last_seq`.
    pub async fn apply_replicated(&self, entries: Vec<PreparedReplicatedEntry>) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(WriteRequest::Apply { entries, reply })?;
        answer.await.map_err(|_| committer_gone())?
    }

    /// Raises the term to `term` (must be higher than the current one), durably.
    pub async fn set_term(&self, term: u64) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(WriteRequest::SetTerm { term, reply })?;
        answer.await.map_err(|_| committer_gone())?
    }

    /// Asks the committer to finish what is queued and stop, and waits until the request is
    /// queued (blocking: call from a blocking context). Later writes are refused with 503.
    pub fn stop_blocking(&self) {
        // An error means the committer is already gone, which is what we want.
        let _ = self.sender.blocking_send(WriteRequest::Stop);
    }

    /// Whether the committer has stopped taking writes.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// The configured queue depth.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth
    }

    /// The highest sequence number known to be flushed to disk. Readers that expose the log
    /// (the change feed, the indexer) must not go past it.
    pub fn durable_seq(&self) -> watch::Receiver<u64> {
        self.durable_seq.clone()
    }

    /// The committer's counters.
    pub fn stats(&self) -> &CommitterStats {
        &self.stats
    }
}

fn committer_gone() -> Error {
    Error::Unavailable {
        message: "the server is shutting down".to_string(),
        retry_after_secs: 5,
    }
}

/// Starts the committer thread over `store`. Returns the client and the thread handle; join the
/// handle after dropping every client to be sure the last group reached the disk.
pub fn spawn(
    store: Arc<Store>,
    config: CommitterConfig,
) -> Result<(CommitterClient, JoinHandle<()>)> {
    let last_seq = store.last_seq()?;
    let term = store.term()?;
    let logical_bytes = store.logical_bytes()?;
    let last_committed_at_ms = store
        .log_entries(last_seq.saturating_sub(1), 1)?
        .first()
        .map_or(0, |entry| entry.committed_at_ms);
    let (sender, receiver) = mpsc::channel(config.queue_depth.max(1));
    let (durable_sender, durable_seq) = watch::channel(last_seq);
    let stats = Arc::new(CommitterStats::default());
    let mut committer = Committer {
        store,
        config: config.clone(),
        last_seq,
        last_committed_at_ms,
        logical_bytes,
        term,
        durable: durable_sender,
        stats: Arc::clone(&stats),
    };
    let thread = std::thread::Builder::new()
        .name("committer".to_string())
        .spawn(move || committer.run(receiver))
        .map_err(|source| Error::Io {
            path: "committer thread".into(),
            source,
        })?;
    Ok((
        CommitterClient {
            sender,
            durable_seq,
            queue_depth: config.queue_depth.max(1),
            stats,
        },
        thread,
    ))
}

struct Committer {
    store: Arc<Store>,
    config: CommitterConfig,
    last_seq: u64,
    last_committed_at_ms: i64,
    logical_bytes: u64,
    term: u64,
    durable: watch::Sender<u64>,
    stats: Arc<CommitterStats>,
}

enum Reply {
    Report(
        oneshot::Sender<Result<PutReportOutcome>>,
        Result<PutReportOutcome>,
    ),
    User(
        oneshot::Sender<Result<PutUserOutcome>>,
        Result<PutUserOutcome>,
    ),
}

/// A flush at least this long is logged: at 1,000 reports/s the 256 ingest permits fill in
/// about this time, and clients start getting 503.
const SLOW_FLUSH_MICROS: u64 = 200_000;

impl Committer {
    fn run(&mut self, mut receiver: mpsc::Receiver<WriteRequest>) {
        tracing::info!(
            last_seq = self.last_seq,
            term = self.term,
            "committer started"
        );
        let mut stopping = false;
        while !stopping {
            let Some(first) = receiver.blocking_recv() else {
                break;
            };
            if matches!(first, WriteRequest::Stop) {
                break;
            }
            let mut group_bytes = request_bytes(&first);
            let mut group = vec![first];
            while group.len() < self.config.max_group_writes
                && group_bytes < self.config.max_group_bytes
            {
                match receiver.try_recv() {
                    Ok(WriteRequest::Stop) => {
                        stopping = true;
                        break;
                    }
                    Ok(request) => {
                        group_bytes += request_bytes(&request);
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            // Replicated batches and term changes are committed on their own: they have their
            // own ordering rules and never share a batch with local writes.
            let (special, local): (Vec<WriteRequest>, Vec<WriteRequest>) =
                group.into_iter().partition(|request| {
                    matches!(
                        request,
                        WriteRequest::Apply { .. } | WriteRequest::SetTerm { .. }
                    )
                });
            if !local.is_empty() {
                self.commit_group(local);
            }
            for request in special {
                match request {
                    WriteRequest::Apply { entries, reply } => {
                        let outcome = self.commit_replicated(entries);
                        let _ = reply.send(outcome);
                    }
                    WriteRequest::SetTerm { term, reply } => {
                        let outcome = self.commit_term(term);
                        let _ = reply.send(outcome);
                    }
                    _ => {}
                }
            }
        }
        // Dropping the receiver refuses whatever is still queued: those clients were never
        // told their report was stored.
        receiver.close();
        tracing::info!(last_seq = self.last_seq, "committer stopped");
    }

    fn commit_group(&mut self, group: Vec<WriteRequest>) {
        let group_size = group.len();
        let mut batch = sled::Batch::default();
        let mut next_seq = self.last_seq;
        let mut replies = Vec::with_capacity(group_size);
        let mut written_in_group: HashMap<Uuid, (u64, [u8; 32])> = HashMap::new();
        let mut derived = DerivedGroup::default();
        let mut group_logical_bytes = 0u64;
        let mut group_writes_users = false;
        // Commit times never go backwards, even if the wall clock does: "changed since T"
        // reads find their starting seq by binary search over them.
        let committed_at_ms = now_ms().max(self.last_committed_at_ms);

        for request in group {
            match request {
                WriteRequest::Report { report, reply } => {
                    let outcome = self.stage_report(
                        &report,
                        &mut batch,
                        &mut derived,
                        &mut next_seq,
                        &mut written_in_group,
                        committed_at_ms,
                    );
                    if matches!(outcome, Ok(PutReportOutcome::Stored { .. })) {
                        group_logical_bytes += report.received_bytes;
                    }
                    replies.push(Reply::Report(reply, outcome));
                }
                // `run` ends the group at a stop request and commits the others on their own.
                WriteRequest::Stop | WriteRequest::Apply { .. } | WriteRequest::SetTerm { .. } => {}
                WriteRequest::User {
                    user,
                    replace_existing,
                    reply,
                } => {
                    let outcome = self.stage_user(
                        &user,
                        replace_existing,
                        &mut batch,
                        &mut next_seq,
                        committed_at_ms,
                    );
                    group_writes_users |= matches!(outcome, Ok(PutUserOutcome::Stored { .. }));
                    replies.push(Reply::User(reply, outcome));
                }
            }
        }

        if next_seq == self.last_seq {
            // Only duplicates or refusals: nothing to write, but answer after any earlier
            // failed flush has been retried so "already stored" also means "on disk".
            if let Err(error) = self.flush_if_behind() {
                fail_all(replies, &error);
                return;
            }
            answer_all(replies);
            return;
        }

        if let Err(error) = derived.finish(&mut batch) {
            self.stats.failed_groups.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, group_size, "derived rows could not be staged");
            fail_all(replies, &error);
            return;
        }
        batch.insert(META_LAST_SEQ, &next_seq.to_be_bytes());
        batch.insert(
            META_LOGICAL_BYTES,
            &(self.logical_bytes + group_logical_bytes).to_be_bytes(),
        );
        if let Err(error) = self.store.db().apply_batch(batch) {
            // The batch is atomic: nothing of it is visible, so the sequence does not advance.
            self.stats.failed_groups.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, group_size, "group commit failed");
            fail_all(replies, &Error::storage("group commit", error));
            return;
        }
        if group_writes_users {
            self.store.forget_cached_users();
        }
        self.last_seq = next_seq;
        self.last_committed_at_ms = committed_at_ms;
        self.logical_bytes += group_logical_bytes;
        let flush_started = Instant::now();
        if let Err(error) = self.store.flush() {
            // The batch is applied in memory; a later successful flush persists it in order.
            // Until then nothing in it is durable, so nobody is told it is.
            self.stats.failed_groups.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, group_size, "flush failed, group not acknowledged");
            fail_all(replies, &error);
            return;
        }
        let flush_micros = flush_started.elapsed().as_micros() as u64;
        self.stats
            .last_flush_micros
            .store(flush_micros, Ordering::Relaxed);
        metrics::histogram!("reportstore_committer_flush_seconds")
            .record(flush_micros as f64 / 1e6);
        metrics::histogram!("reportstore_committer_group_size").record(group_size as f64);
        self.stats
            .last_group_size
            .store(group_size as u64, Ordering::Relaxed);
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.durable.send_replace(self.last_seq);
        if flush_micros >= SLOW_FLUSH_MICROS {
            tracing::warn!(
                last_seq = self.last_seq,
                group_size,
                flush_ms = flush_micros / 1000,
                "slow flush: writes waited behind it, and under load clients got 503"
            );
        }
        tracing::debug!(
            last_seq = self.last_seq,
            group_size,
            flush_micros,
            "group committed"
        );
        answer_all(replies);
    }

    fn commit_term(&mut self, term: u64) -> Result<u64> {
        if term <= self.term {
            return Err(Error::Conflict(format!(
                "term {term} is not above the current term {}",
                self.term
            )));
        }
        let mut batch = sled::Batch::default();
        batch.insert(META_TERM, &term.to_be_bytes());
        self.store
            .db()
            .apply_batch(batch)
            .map_err(|e| Error::storage("writing term", e))?;
        self.store.flush()?;
        self.term = term;
        self.durable.send_replace(self.last_seq);
        tracing::info!(term, last_seq = self.last_seq, "term raised");
        Ok(term)
    }

    fn commit_replicated(&mut self, entries: Vec<PreparedReplicatedEntry>) -> Result<u64> {
        let mut batch = sled::Batch::default();
        let mut derived = DerivedGroup::default();
        let mut next_seq = self.last_seq;
        let mut term = self.term;
        let mut logical_bytes = 0u64;
        let mut writes_users = false;
        for prepared in &entries {
            let replicated = &prepared.replicated;
            let entry = &replicated.entry;
            if entry.seq <= next_seq {
                self.check_already_applied(replicated)?;
                continue;
            }
            if entry.seq != next_seq + 1 {
                return Err(Error::corruption(
                    "replication feed",
                    format!(
                        "gap: expected seq {} but the leader sent {}",
                        next_seq + 1,
                        entry.seq
                    ),
                ));
            }
            match (&entry.op, &prepared.summary) {
                (LogOp::PutReport, Some(summary)) => {
                    derived.add_report(self.store.db(), &mut batch, summary)?;
                    batch.insert(&report_key(&entry.id), replicated.value.as_slice());
                    if let Some(fact) = &replicated.fact {
                        batch.insert(&fact_key(&entry.id), fact.as_slice());
                    }
                    logical_bytes += prepared.document_bytes;
                }
                (LogOp::PutReport, None) => {
                    return Err(Error::Internal(format!(
                        "report at seq {} was not prepared",
                        entry.seq
                    )));
                }
                (LogOp::PutUser, _) => {
                    batch.insert(&user_key(&entry.id), replicated.value.as_slice());
                    writes_users = true;
                }
            }
            batch.insert(&log_key(entry.seq), &entry.encode()[..]);
            next_seq = entry.seq;
            term = term.max(entry.term);
        }
        if next_seq == self.last_seq {
            return Ok(self.last_seq);
        }
        derived.finish(&mut batch)?;
        batch.insert(META_LAST_SEQ, &next_seq.to_be_bytes());
        batch.insert(META_TERM, &term.to_be_bytes());
        batch.insert(
            META_LOGICAL_BYTES,
            &(self.logical_bytes + logical_bytes).to_be_bytes(),
        );
        self.store
            .db()
            .apply_batch(batch)
            .map_err(|e| Error::storage("applying replicated entries", e))?;
        if writes_users {
            self.store.forget_cached_users();
        }
        self.last_seq = next_seq;
        self.term = term;
        self.logical_bytes += logical_bytes;
        if let Some(last) = entries.last() {
            self.last_committed_at_ms = self
                .last_committed_at_ms
                .max(last.replicated.entry.committed_at_ms);
        }
        let flush_started = Instant::now();
        self.store.flush()?;
        metrics::histogram!("reportstore_committer_flush_seconds")
            .record(flush_started.elapsed().as_secs_f64());
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats
            .entries_written
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.durable.send_replace(self.last_seq);
        Ok(self.last_seq)
    }

    /// A re-delivered entry must be exactly the one stored at its seq; anything else means
    /// the two logs diverged, and applying must stop.
    fn check_already_applied(&self, replicated: &ReplicatedEntry) -> Result<()> {
        let seq = replicated.entry.seq;
        let local = self
            .store
            .log_entries(seq - 1, 1)?
            .into_iter()
            .next()
            .filter(|entry| entry.seq == seq);
        match local {
            Some(local) if local == replicated.entry => Ok(()),
            _ => Err(Error::Conflict(format!(
                "the leader's entry at seq {seq} differs from this node's: the logs diverged"
            ))),
        }
    }

    fn flush_if_behind(&mut self) -> Result<()> {
        if *self.durable.borrow() == self.last_seq {
            return Ok(());
        }
        self.store.flush()?;
        self.durable.send_replace(self.last_seq);
        Ok(())
    }

    fn stage_report(
        &mut self,
        report: &PreparedReport,
        batch: &mut sled::Batch,
        derived: &mut DerivedGroup,
        next_seq: &mut u64,
        written_in_group: &mut HashMap<Uuid, (u64, [u8; 32])>,
        committed_at_ms: i64,
    ) -> Result<PutReportOutcome> {
        let existing = match written_in_group.get(&report.id) {
            Some(identity) => Some(*identity),
            None => self.stored_identity(&report.id)?,
        };
        if let Some((seq, content_sha256)) = existing {
            if content_sha256 != report.content_sha256 {
                return Err(Error::Conflict(format!(
                    "report {} already exists with different content; reports are immutable",
                    report.id
                )));
            }
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(PutReportOutcome::AlreadyStored { seq });
        }
        let seq = *next_seq + 1;
        let mut summary = report.summary.clone();
        summary.seq = seq;
        // Derived rows first: they are the only fallible part, and they stage nothing on error.
        derived.add_report(self.store.db(), batch, &summary)?;
        *next_seq = seq;
        let record = ReportRecord {
            seq,
            received_at_ms: report.received_at_ms,
            protocol: report.protocol,
            has_fact: report.fact_frame.is_some(),
            content_sha256: report.content_sha256,
            document_frame: report.document_frame.clone(),
        };
        batch.insert(&report_key(&report.id), record.encode());
        if let Some(fact_frame) = &report.fact_frame {
            batch.insert(&fact_key(&report.id), fact_frame.as_slice());
        }
        let entry = LogEntry {
            seq,
            term: self.term,
            op: LogOp::PutReport,
            id: report.id,
            content_sha256: report.content_sha256,
            committed_at_ms,
        };
        batch.insert(&log_key(seq), &entry.encode()[..]);
        written_in_group.insert(report.id, (seq, report.content_sha256));
        self.stats.entries_written.fetch_add(1, Ordering::Relaxed);
        Ok(PutReportOutcome::Stored { seq })
    }

    fn stored_identity(&self, id: &Uuid) -> Result<Option<(u64, [u8; 32])>> {
        let Some(bytes) = self
            .store
            .db()
            .get(report_key(id))
            .map_err(|e| Error::storage("duplicate check", e))?
        else {
            return Ok(None);
        };
        ReportRecord::decode_identity(&bytes)
            .map(Some)
            .map_err(|detail| Error::corruption(format!("report {id}"), detail))
    }

    fn stage_user(
        &mut self,
        user: &UserRecord,
        replace_existing: bool,
        batch: &mut sled::Batch,
        next_seq: &mut u64,
        committed_at_ms: i64,
    ) -> Result<PutUserOutcome> {
        let exists = self
            .store
            .db()
            .contains_key(user_key(&user.guid))
            .map_err(|e| Error::storage("user lookup", e))?;
        if exists && !replace_existing {
            return Ok(PutUserOutcome::AlreadyExists);
        }
        let bytes = serde_json::to_vec(user)
            .map_err(|error| Error::Internal(format!("serialising user: {error}")))?;
        *next_seq += 1;
        let seq = *next_seq;
        let entry = LogEntry {
            seq,
            term: self.term,
            op: LogOp::PutUser,
            id: user.guid,
            content_sha256: Sha256::digest(&bytes).into(),
            committed_at_ms,
        };
        batch.insert(&user_key(&user.guid), bytes);
        batch.insert(&log_key(seq), &entry.encode()[..]);
        self.stats.entries_written.fetch_add(1, Ordering::Relaxed);
        Ok(PutUserOutcome::Stored { seq })
    }
}

fn request_bytes(request: &WriteRequest) -> usize {
    match request {
        WriteRequest::Report { report, .. } => report.approximate_bytes(),
        WriteRequest::Apply { entries, .. } => entries
            .iter()
            .map(|entry| {
                entry.replicated.value.len() + entry.replicated.fact.as_ref().map_or(0, Vec::len)
            })
            .sum(),
        WriteRequest::User { .. } | WriteRequest::SetTerm { .. } | WriteRequest::Stop => 512,
    }
}

fn answer_all(replies: Vec<Reply>) {
    for reply in replies {
        // A client that went away no longer needs its answer; its write stands.
        match reply {
            Reply::Report(sender, outcome) => {
                let _ = sender.send(outcome);
            }
            Reply::User(sender, outcome) => {
                let _ = sender.send(outcome);
            }
        }
    }
}

fn fail_all(replies: Vec<Reply>, error: &Error) {
    let refusal = || Error::Unavailable {
        message: format!("the report could not be stored: {error}"),
        retry_after_secs: 5,
    };
    for reply in replies {
        match reply {
            Reply::Report(sender, Ok(_)) => {
                let _ = sender.send(Err(refusal()));
            }
            Reply::Report(sender, Err(original)) => {
                let _ = sender.send(Err(original));
            }
            Reply::User(sender, Ok(_)) => {
                let _ = sender.send(Err(refusal()));
            }
            Reply::User(sender, Err(original)) => {
                let _ = sender.send(Err(original));
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
