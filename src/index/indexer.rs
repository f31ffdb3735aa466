//! The indexer: the only owner of the `IndexWriter`, tailing the replication log on its own
//! OS thread.
//!
//! It reads log entries after its cursor, never past the committer's durable seq, turns each
//! `PutReport` into an index document (reading the report from sled), skips `PutUser`, and
//! commits at least every [`IndexerConfig::commit_interval`] with the last indexed seq as the
//! commit payload, then reloads the reader itself (`ReloadPolicy::Manual`) so the new reports
//! are searchable as soon as the commit returns. After a crash, work since the last commit is
//! simply redone from the payload's seq: the index needs no durability of its own.
//!
//! Nothing here runs on the async runtime: `add_document` may block when tantivy's queue is
//! full, and commits take tens of milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::IndexWriter;
use tantivy::indexer::IndexWriterOptions;
use tokio::sync::{Notify, watch};

use super::schema::{SCHEMA_VERSION, StoredDocument, index_document};
use super::{CommitPayload, SearchIndex, index_error};
use crate::error::{Error, Result};
use crate::store::committer::now_ms;
use crate::store::{LogEntry, LogOp, Store};

/// tantivy refuses budgets below 15 MB per thread.
const MINIMUM_MEMORY_BUDGET_BYTES: usize = 15_000_000;

/// Settings of the indexer.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Longest time between a report becoming durable and the commit that makes it
    /// searchable (plus the commit itself). Commits only happen when something was indexed.
    pub commit_interval: Duration,
    /// The commit interval while the indexer is far behind (a rebuild): fewer, larger
    /// segments, still committed at least every second.
    pub catch_up_commit_interval: Duration,
    /// tantivy's indexing memory budget (one worker thread). A segment is flushed when it
    /// fills; tantivy may briefly use about twice this.
    pub memory_budget_bytes: usize,
    /// Merge threads (tantivy's default of 4 is too many for a 2-core box).
    pub merge_threads: usize,
    /// Log entries read from sled per batch.
    pub batch_entries: usize,
    /// Longest an idle indexer waits before it looks around again (publishing its lag). It
    /// wakes as soon as the durable seq moves or a commit is due; this only bounds the wait.
    pub idle_wait: Duration,
    /// The nice value of the indexer thread and of tantivy's indexing workers (0: same
    /// priority as ingest). See [`lower_thread_priority`] for the trade-off.
    pub nice: i32,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            commit_interval: Duration::from_millis(500),
            catch_up_commit_interval: Duration::from_secs(1),
            memory_budget_bytes: 96 * 1024 * 1024,
            merge_threads: 1,
            batch_entries: 256,
            idle_wait: Duration::from_secs(1),
            nice: DEFAULT_INDEXER_NICE,
        }
    }
}

impl IndexerConfig {
    pub(crate) fn writer_options(&self) -> IndexWriterOptions {
        IndexWriterOptions::builder()
            .num_worker_threads(1)
            .num_merge_threads(self.merge_threads.max(1))
            .memory_budget_per_thread(self.memory_budget_bytes.max(MINIMUM_MEMORY_BUDGET_BYTES))
            .build()
    }
}

/// Owns the index writer. Created by [`SearchIndex::open`]; run it on its own thread with
/// [`Indexer::spawn`], or drive it directly with [`Indexer::catch_up`] (offline rebuilds,
/// benchmarks).
pub struct Indexer {
    index: SearchIndex,
    writer: Option<IndexWriter>,
    config: IndexerConfig,
    /// The last seq handed to the writer (committed or not).
    cursor: u64,
    /// The seq in the last commit's payload.
    committed_seq: u64,
    /// SHA-256 (hex, 16 digits) of the entry at `cursor`, for the payload.
    cursor_entry_sha256: String,
    /// Reports added since the last commit.
    pending_reports: u64,
    /// Commit time of the oldest entry not yet committed, for the freshness measure.
    oldest_pending_committed_at_ms: Option<i64>,
    last_commit: Instant,
}

/// A running indexer thread.
pub struct IndexerHandle {
    stop: Arc<AtomicBool>,
    /// Wakes the indexer from an idle wait, so that it sees `stop` at once.
    wake: Arc<Notify>,
    thread: JoinHandle<Result<()>>,
}

impl IndexerHandle {
    /// Asks the indexer to commit what it has indexed, wait for merges and stop, and waits for
    /// it. Blocking: call it from a blocking context, after the committer has stopped.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        // A permit is kept if the indexer is not waiting yet: its next wait returns at once.
        self.wake.notify_one();
        self.thread
            .join()
            .map_err(|_| Error::Internal("the indexer thread panicked".to_string()))?
    }
}

/// How a caught-up indexer waits: until the committer sends a newer durable seq, the handle
/// asks it to stop, or a timeout passes.
///
/// It used to sleep 10 ms and look again: 100 wake-ups a second of an idle server, each one
/// landing on whichever core a search was using, and up to 10 ms added to every report's way
/// to being searchable. The durable seq is a tokio `watch`, so the wait runs on a one-thread
/// runtime of the indexer's own (timers only; nothing else runs on it).
struct IdleWaiter {
    runtime: Option<tokio::runtime::Runtime>,
}

/// The poll interval when the waiting runtime cannot be built.
const FALLBACK_IDLE_POLL: Duration = Duration::from_millis(10);

impl IdleWaiter {
    fn new() -> IdleWaiter {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .inspect_err(|error| {
                tracing::warn!(%error, "indexer wait runtime not built, polling the durable seq");
            })
            .ok();
        IdleWaiter { runtime }
    }

    fn wait(&self, durable_seq: &mut watch::Receiver<u64>, wake: &Notify, timeout: Duration) {
        let Some(runtime) = &self.runtime else {
            std::thread::sleep(timeout.min(FALLBACK_IDLE_POLL));
            return;
        };
        runtime.block_on(async {
            let durable_seq_moved = async {
                if durable_seq.changed().await.is_err() {
                    // The committer is gone: only a stop or the timeout ends the wait.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = durable_seq_moved => {}
                () = wake.notified() => {}
                () = tokio::time::sleep(timeout) => {}
            }
        });
    }
}

/// The default nice value of the indexer thread (and of tantivy's indexing workers, which each
/// commit starts afresh from this thread and which inherit it).
pub const DEFAULT_INDEXER_NICE: i32 = 10;

/// Lowers the calling thread's CPU scheduling priority to `nice` (nothing for 0).
///
/// Indexing is background work that can always catch up (it replays the log from its last
/// commit), while ingest holds clients waiting for their 201. On a small machine the indexer
/// (sled reads, zstd, tokenizing ~10 KB of text per report) competes with ingest for the same
/// cores; at nice 10 the kernel gives it about a tenth of a contended core's time, so
/// under load ingest wins and the index lags, and when ingest is idle the indexer gets
/// every spare cycle. The trap: on a machine that is saturated for long stretches the index
/// then lags by minutes; set it to 0 where search freshness matters more than peak ingest.
/// A failure (e.g. a seccomp filter) is logged and ignored.
fn lower_thread_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
        // SAFETY: gettid and setpriority take plain integers and touch no Rust memory.
        let result = unsafe {
            let thread_id = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, thread_id as libc::id_t, nice)
        };
        if result != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not lower the indexer thread's priority"
            );
        }
    }
}

fn entry_sha256_prefix(entry: &LogEntry) -> String {
    entry.content_sha256[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Indexer {
    pub(crate) fn new(
        index: SearchIndex,
        writer: IndexWriter,
        config: IndexerConfig,
        payload: &CommitPayload,
    ) -> Indexer {
        Indexer {
            index,
            writer: Some(writer),
            config,
            cursor: payload.seq,
            committed_seq: payload.seq,
            cursor_entry_sha256: payload.entry.clone(),
            pending_reports: 0,
            oldest_pending_committed_at_ms: None,
            last_commit: Instant::now(),
        }
    }

    /// The seq of the last commit (what searches see).
    pub fn committed_seq(&self) -> u64 {
        self.committed_seq
    }

    /// Makes sure the index belongs to this store: its cursor must not be past the store's last
    /// seq, and the entry at the cursor must have the hash the payload recorded. Otherwise (the
    /// store was replaced or re-seeded) every document is deleted and indexing starts over.
    pub fn verify_against_store(&mut self, store: &Store) -> Result<()> {
        if self.cursor == 0 {
            return Ok(());
        }
        let entry_at_cursor = store.log_entries(self.cursor - 1, 1)?.into_iter().next();
        let matches = entry_at_cursor.as_ref().is_some_and(|entry| {
            entry.seq == self.cursor && entry_sha256_prefix(entry) == self.cursor_entry_sha256
        });
        if matches {
            return Ok(());
        }
        tracing::warn!(
            index_seq = self.cursor,
            store_last_seq = store.last_seq()?,
            "search index does not match the store, rebuilding it"
        );
        let writer = self.writer_mut()?;
        writer
            .delete_all_documents()
            .map_err(index_error("deleting all documents"))?;
        self.cursor = 0;
        self.cursor_entry_sha256.clear();
        self.commit()?;
        Ok(())
    }

    fn writer_mut(&mut self) -> Result<&mut IndexWriter> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::Internal("the index writer is gone".to_string()))
    }

    /// Starts the indexer thread over `store`, following `durable_seq`.
    pub fn spawn(
        mut self,
        store: Arc<Store>,
        durable_seq: watch::Receiver<u64>,
    ) -> Result<IndexerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_requested = Arc::clone(&stop);
        let wake = Arc::new(Notify::new());
        let woken = Arc::clone(&wake);
        let thread = std::thread::Builder::new()
            .name("indexer".to_string())
            .spawn(move || {
                lower_thread_priority(self.config.nice);
                self.run(&store, durable_seq, &stop_requested, &woken)
            })
            .map_err(|source| Error::Io {
                path: "indexer thread".into(),
                source,
            })?;
        Ok(IndexerHandle { stop, wake, thread })
    }

    fn run(
        &mut self,
        store: &Store,
        mut durable_seq: watch::Receiver<u64>,
        stop: &AtomicBool,
        wake: &Notify,
    ) -> Result<()> {
        let waiter = IdleWaiter::new();
        let index = self.index.clone();
        let progress = &index.shared.progress;
        progress.indexer_running.store(true, Ordering::Release);
        tracing::info!(indexed_seq = self.committed_seq, "indexer started");
        if let Err(error) = self.verify_against_store(store) {
            tracing::error!(%error, "could not check the search index against the store");
            self.index.record_error(&error);
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let stopping = stop.load(Ordering::Acquire);
            // Marked seen: the idle wait below returns once a newer seq is sent.
            let durable = *durable_seq.borrow_and_update();
            let mut caught_up = self.cursor >= durable;
            if !caught_up && !stopping {
                match self.index_batch(store, durable) {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        caught_up = self.cursor >= durable;
                    }
                    Err(error) => {
                        tracing::error!(%error, cursor = self.cursor, "indexing failed, retrying");
                        self.index.record_error(&error);
                        self.recover_after_failure();
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let has_uncommitted = self.cursor != self.committed_seq;
            let far_behind =
                durable.saturating_sub(self.cursor) > 4 * self.config.batch_entries as u64;
            let interval = if far_behind {
                self.config.catch_up_commit_interval
            } else {
                self.config.commit_interval
            };
            let commit_due =
                has_uncommitted && (stopping || self.last_commit.elapsed() >= interval);
            if commit_due && let Err(error) = self.commit() {
                tracing::error!(%error, cursor = self.cursor, "index commit failed, retrying");
                self.index.record_error(&error);
                self.recover_after_failure();
                if stopping {
                    break;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            self.index.publish_lag(durable);
            if stopping {
                break;
            }
            if caught_up {
                let until_commit_due = if has_uncommitted && !commit_due {
                    interval.saturating_sub(self.last_commit.elapsed())
                } else {
                    self.config.idle_wait
                };
                waiter.wait(
                    &mut durable_seq,
                    wake,
                    until_commit_due.min(self.config.idle_wait),
                );
            }
        }
        let result = self.finish();
        progress.indexer_running.store(false, Ordering::Release);
        tracing::info!(indexed_seq = self.committed_seq, "indexer stopped");
        result
    }

    /// After a failed write or commit, the writer may have lost documents: start a new writer
    /// and redo everything after the last commit.
    fn recover_after_failure(&mut self) {
        drop(self.writer.take());
        match self
            .index
            .shared
            .index
            .writer_with_options(self.config.writer_options())
        {
            Ok(writer) => {
                self.writer = Some(writer);
                self.cursor = self.committed_seq;
                self.pending_reports = 0;
                self.oldest_pending_committed_at_ms = None;
                if let Err(error) = self.refresh_cursor_hash_from_payload() {
                    tracing::warn!(%error, "could not reread the index commit payload");
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not reopen the index writer");
            }
        }
    }

    fn refresh_cursor_hash_from_payload(&mut self) -> Result<()> {
        let metas = self
            .index
            .shared
            .index
            .load_metas()
            .map_err(index_error("reading index metas"))?;
        let payload = CommitPayload::parse(metas.payload.as_deref());
        self.cursor = payload.seq;
        self.committed_seq = payload.seq;
        self.cursor_entry_sha256 = payload.entry;
        Ok(())
    }

    /// Indexes the entries up to `up_to` (never past it) in one batch of at most
    /// `batch_entries`.
    fn index_batch(&mut self, store: &Store, up_to: u64) -> Result<()> {
        if self.writer.is_none() {
            self.recover_after_failure();
        }
        let wanted = (up_to - self.cursor).min(self.config.batch_entries as u64) as usize;
        let entries = store.log_entries(self.cursor, wanted)?;
        for entry in entries {
            if entry.seq > up_to {
                break;
            }
            if entry.seq != self.cursor + 1 {
                tracing::error!(
                    expected = self.cursor + 1,
                    found = entry.seq,
                    "gap in the replication log"
                );
            }
            if entry.op == LogOp::PutReport {
                self.add_report(store, &entry)?;
            }
            self.oldest_pending_committed_at_ms
                .get_or_insert(entry.committed_at_ms);
            self.cursor = entry.seq;
            self.cursor_entry_sha256 = entry_sha256_prefix(&entry);
        }
        Ok(())
    }

    fn add_report(&mut self, store: &Store, entry: &LogEntry) -> Result<()> {
        let stored = match store.report(&entry.id) {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::error!(seq = entry.seq, id = %entry.id, "log entry names a report that is missing, not indexed");
                self.index
                    .shared
                    .progress
                    .skipped_reports
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(error @ Error::DataCorruption { .. }) => {
                tracing::error!(seq = entry.seq, id = %entry.id, %error, "report does not decode, not indexed");
                self.index
                    .shared
                    .progress
                    .skipped_reports
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let document = match StoredDocument::parse(&stored.document) {
            Ok(document) => document,
            Err(error) => {
                tracing::error!(seq = entry.seq, id = %entry.id, %error, "stored document does not parse, not indexed");
                self.index
                    .shared
                    .progress
                    .skipped_reports
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let mut fields = document.fields(stored.record.received_at_ms);
        // The log entry names the report: its id is the one sled keys it by.
        fields.id = entry.id.hyphenated().to_string();
        let text = document.full_text();
        let index_fields = self.index.shared.fields;
        let tantivy_document = index_document(&index_fields, &fields, entry.seq, &text);
        self.writer_mut()?
            .add_document(tantivy_document)
            .map_err(index_error("adding a document"))?;
        self.pending_reports += 1;
        Ok(())
    }

    /// Commits with the cursor as payload and reloads the reader.
    fn commit(&mut self) -> Result<()> {
        let started = Instant::now();
        let payload = CommitPayload {
            seq: self.cursor,
            schema: SCHEMA_VERSION,
            entry: self.cursor_entry_sha256.clone(),
        }
        .to_json();
        let writer = self.writer_mut()?;
        let mut prepared = writer
            .prepare_commit()
            .map_err(index_error("preparing a commit"))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(index_error("committing"))?;
        self.index
            .shared
            .reader
            .reload()
            .map_err(index_error("reloading the reader"))?;
        let commit_micros = started.elapsed().as_micros() as u64;
        let reports = self.pending_reports;
        self.committed_seq = self.cursor;
        self.pending_reports = 0;
        self.last_commit = Instant::now();
        let freshness_ms = self
            .oldest_pending_committed_at_ms
            .take()
            .map(|committed_at_ms| (now_ms() - committed_at_ms).max(0));
        self.index
            .record_commit(self.committed_seq, reports, commit_micros, freshness_ms);
        tracing::debug!(
            indexed_seq = self.committed_seq,
            reports,
            commit_micros,
            "index committed"
        );
        Ok(())
    }

    /// Indexes synchronously until the index holds everything up to `up_to`, committing at the
    /// configured interval and at the end. Returns the number of reports added.
    pub fn catch_up(&mut self, store: &Store, up_to: u64) -> Result<u64> {
        let reports_before = self
            .index
            .shared
            .progress
            .documents_indexed
            .load(Ordering::Relaxed);
        while self.cursor < up_to {
            self.index_batch(store, up_to)?;
            if self.last_commit.elapsed() >= self.config.catch_up_commit_interval {
                self.commit()?;
            }
        }
        if self.cursor != self.committed_seq {
            self.commit()?;
        }
        Ok(self
            .index
            .shared
            .progress
            .documents_indexed
            .load(Ordering::Relaxed)
            - reports_before)
    }

    /// Commits anything pending and waits for the merges in flight; consumes the writer.
    pub fn finish(&mut self) -> Result<()> {
        if self.cursor != self.committed_seq && self.writer.is_some() {
            self.commit()?;
        }
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        writer
            .wait_merging_threads()
            .map_err(index_error("waiting for merges"))?;
        self.index.refresh_segment_count();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound on waits that must end early: far beyond any scheduling delay, far below it.
    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn an_idle_wait_ends_when_the_seq_moves_or_a_stop_is_asked_and_not_before() {
        let waiter = IdleWaiter::new();
        let (sender, mut durable_seq) = watch::channel(0u64);
        let wake = Notify::new();
        let short = Duration::from_millis(30);

        let started = Instant::now();
        waiter.wait(&mut durable_seq, &wake, short);
        assert!(
            started.elapsed() >= short,
            "nothing happened: the timeout ends it"
        );

        // Sent before the wait starts: not lost.
        sender.send(1).unwrap();
        let started = Instant::now();
        waiter.wait(&mut durable_seq, &wake, LONG);
        assert!(started.elapsed() < LONG / 2, "a new durable seq ends it");
        assert_eq!(*durable_seq.borrow_and_update(), 1);

        // Asked before the wait starts: the permit is kept.
        wake.notify_one();
        let started = Instant::now();
        waiter.wait(&mut durable_seq, &wake, LONG);
        assert!(started.elapsed() < LONG / 2, "a stop ends it");

        let sending_thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.send(2).unwrap();
            sender
        });
        let started = Instant::now();
        waiter.wait(&mut durable_seq, &wake, LONG);
        assert!(
            started.elapsed() < LONG / 2,
            "sent from another thread meanwhile"
        );
        let sender = sending_thread.join().unwrap();

        // The committer gone: the wait does not spin, it waits for the timeout.
        durable_seq.borrow_and_update();
        drop(sender);
        let started = Instant::now();
        waiter.wait(&mut durable_seq, &wake, short);
        assert!(
            started.elapsed() >= short,
            "a closed channel does not end it"
        );
    }
}
