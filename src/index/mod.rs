//! Full-text search over report output: a tantivy index derived from the replication log.
//!
//! The index is a *consumer of the log*, never a source of truth:
//!
//! * [`SearchIndex::open`] opens (or creates) the index in its own directory and returns the
//!   shared, read-only [`SearchIndex`] handle plus the [`Indexer`], the only owner of the
//!   `IndexWriter`. An index that does not open, was written with another schema
//!   ([`schema::SCHEMA_VERSION`]) or belongs to another store is rebuilt from the store.
//! * The [`Indexer`] runs on its own thread ([`Indexer::spawn`]) and tails the log up to the
//!   committer's durable seq; each commit carries `{"seq": N, "schema": V, "entry": H}` as its
//!   payload, and after a restart indexing resumes from that seq ([`indexer`]).
//! * [`SearchIndex::search`] answers a validated [`SearchRequest`] ([`query`]) from one reader
//!   snapshot in one collector pass ([`collector`]): exact total, facet counts, the page of hits
//!   after the cursor; hits and snippets are read back from sled ([`search`]). It all runs on
//!   the search threads ([`threads`]).
//! * [`reindex`] rebuilds the whole index offline into a new directory and swaps it in.
//!
//! The text field uses a tokenizer made for Perl output ([`tokenizer`]) so that `Foo::Bar`,
//! `t/02-basic.t` and `Can't locate` are found as written.

pub mod collector;
pub mod indexer;
pub mod query;
pub mod schema;
pub mod search;
pub mod threads;
pub mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tantivy::schema::Schema;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher, TantivyError};

pub use indexer::{DEFAULT_INDEXER_NICE, Indexer, IndexerConfig, IndexerHandle};
pub use query::{ExactField, SearchRequest, SortOrder};
pub use schema::{IndexFields, SCHEMA_VERSION};
pub use search::{SearchHit, SearchResponse};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::committer::now_ms;
use tokenizer::{PERL_OUTPUT_TOKENIZER, PerlOutputTokenizer};

/// Maps a tantivy error to [`Error::Index`] with what we were doing.
pub(crate) fn index_error(context: &'static str) -> impl FnOnce(TantivyError) -> Error {
    move |source| Error::Index { context, source }
}

/// The payload of every index commit: where indexing resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CommitPayload {
    /// The last log seq the commit contains.
    pub seq: u64,
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema: u32,
    /// The first 8 bytes (hex) of the SHA-256 of the log entry at `seq`: tells whether the
    /// store is still the one the index was built from.
    #[serde(default)]
    pub entry: String,
}

impl CommitPayload {
    /// Reads a payload; a missing one (a new index) is seq 0.
    pub fn parse(payload: Option<&str>) -> CommitPayload {
        payload
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(CommitPayload {
                seq: 0,
                schema: SCHEMA_VERSION,
                entry: String::new(),
            })
    }

    /// The JSON text stored in the commit.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Counters the indexer publishes for `/health` and searches.
#[derive(Debug, Default)]
pub(crate) struct IndexProgress {
    /// The seq of the last commit visible to searches.
    pub indexed_seq: AtomicU64,
    /// Reports indexed by this process.
    pub documents_indexed: AtomicU64,
    /// Reports that could not be read and were left out.
    pub skipped_reports: AtomicU64,
    /// Commits by this process.
    pub commits: AtomicU64,
    /// When the last commit finished, Unix ms (0 before the first).
    pub last_commit_at_ms: AtomicI64,
    /// Duration of the last commit and reload, microseconds.
    pub last_commit_micros: AtomicU64,
    /// Age of the oldest report in the last commit when it became searchable, ms.
    pub last_freshness_ms: AtomicU64,
    /// Segments in the current reader.
    pub segments: AtomicU64,
    /// Whether the indexer thread runs.
    pub indexer_running: AtomicBool,
    /// The last indexing error, until the next successful commit.
    pub last_error: Mutex<Option<String>>,
}

pub(crate) struct SharedIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: IndexFields,
    pub path: PathBuf,
    pub progress: IndexProgress,
    /// Searches running at once: each one keeps a core busy, so more would only queue
    /// inside the blocking pool.
    pub search_permits: Arc<tokio::sync::Semaphore>,
    /// Facet value ids and per-segment ordinal tables (see `collector`).
    pub facet_interner: collector::FacetInterner,
}

/// The search side of the index: cheap to clone, safe to share between requests. Searches
/// must run off the async runtime (`api::blocking`).
#[derive(Clone)]
pub struct SearchIndex {
    pub(crate) shared: Arc<SharedIndex>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SearchIndex")
            .field("path", &self.shared.path)
            .field("indexed_seq", &self.indexed_seq())
            .finish()
    }
}

/// The index's state for `/health` and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexStatus {
    /// The last log seq searches see.
    pub indexed_seq: u64,
    /// Durable log entries not yet searchable.
    pub lag_entries: u64,
    /// Age of the oldest durable entry not yet searchable, seconds (0 when caught up).
    pub lag_seconds: f64,
    /// Reports in the index.
    pub documents: u64,
    /// Segments in the current reader.
    pub segments: u64,
    /// Commits since the process started.
    pub commits: u64,
    /// Reports indexed since the process started.
    pub reports_indexed: u64,
    /// Reports left out because they could not be read.
    pub skipped_reports: u64,
    /// When the last commit finished (RFC 3339).
    pub last_commit_at: Option<String>,
    /// Duration of the last commit plus reader reload, milliseconds.
    pub last_commit_ms: f64,
    /// How old the oldest report of the last commit was when it became searchable, ms.
    pub last_freshness_ms: u64,
    /// Whether the indexer thread runs.
    pub indexer_running: bool,
    /// The last indexing error since the last good commit.
    pub last_error: Option<String>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
}

fn is_tantivy_file(name: &str) -> bool {
    if name.starts_with(".tantivy") || name == "meta.json" || name == ".managed.json" {
        return true;
    }
    let stem = name.split('.').next().unwrap_or_default();
    stem.len() == 32 && stem.chars().all(|character| character.is_ascii_hexdigit())
}

/// Removes an index directory's files so a new index can be created there. Refuses when the
/// directory holds anything that is not a tantivy file (a wrong `--data-dir` must not cost data).
fn clear_index_directory(directory: &Path) -> Result<()> {
    let io_error = |source| Error::Io {
        path: directory.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(directory).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(io_error)?.is_file();
        if !is_file || !is_tantivy_file(&name) {
            return Err(Error::Io {
                path: entry.path(),
                source: std::io::Error::other(
                    "the search index directory holds something that is not part of a search index; \
                     move it away (the index is rebuilt from the store)",
                ),
            });
        }
    }
    for entry in std::fs::read_dir(directory).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        std::fs::remove_file(entry.path()).map_err(|source| Error::Io {
            path: entry.path(),
            source,
        })?;
    }
    Ok(())
}

/// Opens the index in `directory`, or creates an empty one when there is none, it does not
/// open, or it was written with another schema.
fn open_or_create_index(directory: &Path, schema: &Schema) -> Result<Index> {
    std::fs::create_dir_all(directory).map_err(|source| Error::Io {
        path: directory.to_path_buf(),
        source,
    })?;
    if directory.join("meta.json").exists() {
        match Index::open_in_dir(directory) {
            Ok(index) => {
                let payload = index
                    .load_metas()
                    .map(|metas| CommitPayload::parse(metas.payload.as_deref()))
                    .map_err(index_error("reading index metas"))?;
                if index.schema() == *schema && payload.schema == SCHEMA_VERSION {
                    return Ok(index);
                }
                tracing::warn!(
                    path = %directory.display(),
                    index_schema_version = payload.schema,
                    schema_version = SCHEMA_VERSION,
                    "search index has another schema, rebuilding it from the store"
                );
            }
            Err(error) => {
                tracing::warn!(path = %directory.display(), %error, "search index does not open, rebuilding it from the store");
            }
        }
    }
    clear_index_directory(directory)?;
    Index::create_in_dir(directory, schema.clone()).map_err(index_error("creating the index"))
}

fn concurrent_searches() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |cores| cores.get())
        .max(2)
}

fn perl_output_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(PerlOutputTokenizer::default())
}

impl SearchIndex {
    /// Opens (or creates, or rebuilds) the index in `directory` and takes its writer lock.
    /// Returns the search handle and the [`Indexer`] that owns the writer; start it with
    /// [`Indexer::spawn`]. Fails when another writer holds the lock (a second process on the
    /// same index).
    pub fn open(directory: &Path, config: IndexerConfig) -> Result<(SearchIndex, Indexer)> {
        let (schema, fields) = schema::build_schema();
        let index = open_or_create_index(directory, &schema)?;
        index
            .tokenizers()
            .register(PERL_OUTPUT_TOKENIZER, perl_output_analyzer());
        let writer = index
            .writer_with_options(config.writer_options())
            .map_err(index_error("taking the index writer lock"))?;
        let metas = index
            .load_metas()
            .map_err(index_error("reading index metas"))?;
        let payload = CommitPayload::parse(metas.payload.as_deref());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error("opening the index reader"))?;
        let shared = SharedIndex {
            index,
            reader,
            fields,
            path: directory.to_path_buf(),
            progress: IndexProgress::default(),
            search_permits: Arc::new(tokio::sync::Semaphore::new(concurrent_searches())),
            facet_interner: collector::FacetInterner::default(),
        };
        shared
            .progress
            .indexed_seq
            .store(payload.seq, Ordering::Release);
        let search_index = SearchIndex {
            shared: Arc::new(shared),
        };
        search_index.refresh_segment_count();
        tracing::info!(
            path = %directory.display(),
            indexed_seq = payload.seq,
            documents = search_index.searcher().num_docs(),
            "search index opened"
        );
        let indexer = Indexer::new(search_index.clone(), writer, config, &payload);
        Ok((search_index, indexer))
    }

    /// Waits for a slot to run a search (at most one per core run at once).
    pub async fn search_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.shared.search_permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("search semaphore closed".to_string()))
    }

    /// The last log seq searches see.
    pub fn indexed_seq(&self) -> u64 {
        self.shared.progress.indexed_seq.load(Ordering::Acquire)
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The schema's fields.
    pub fn fields(&self) -> IndexFields {
        self.shared.fields
    }

    /// A snapshot of the index as of the last commit.
    pub fn searcher(&self) -> Searcher {
        self.shared.reader.searcher()
    }

    /// The state of the index. Reads one log entry to age the lag: call it off the runtime.
    pub fn status(&self, store: &Store, durable_seq: u64) -> Result<IndexStatus> {
        let progress = &self.shared.progress;
        let indexed_seq = self.indexed_seq();
        let lag_entries = durable_seq.saturating_sub(indexed_seq);
        let lag_seconds = if lag_entries == 0 {
            0.0
        } else {
            store
                .log_entries(indexed_seq, 1)?
                .first()
                .map_or(0.0, |entry| {
                    ((now_ms() - entry.committed_at_ms).max(0) as f64) / 1000.0
                })
        };
        let last_commit_at_ms = progress.last_commit_at_ms.load(Ordering::Relaxed);
        let last_commit_at =
            (last_commit_at_ms > 0).then(|| schema::format_unix_seconds(last_commit_at_ms / 1000));
        let last_error = progress
            .last_error
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        Ok(IndexStatus {
            indexed_seq,
            lag_entries,
            lag_seconds,
            documents: self.searcher().num_docs(),
            segments: progress.segments.load(Ordering::Relaxed),
            commits: progress.commits.load(Ordering::Relaxed),
            reports_indexed: progress.documents_indexed.load(Ordering::Relaxed),
            skipped_reports: progress.skipped_reports.load(Ordering::Relaxed),
            last_commit_at,
            last_commit_ms: progress.last_commit_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            last_freshness_ms: progress.last_freshness_ms.load(Ordering::Relaxed),
            indexer_running: progress.indexer_running.load(Ordering::Acquire),
            last_error,
            schema_version: SCHEMA_VERSION,
        })
    }

    pub(crate) fn refresh_segment_count(&self) {
        let segments = self.searcher().segment_readers().len() as u64;
        self.shared
            .progress
            .segments
            .store(segments, Ordering::Relaxed);
        metrics::gauge!("reportstore_index_segments").set(segments as f64);
    }

    pub(crate) fn record_commit(
        &self,
        indexed_seq: u64,
        reports: u64,
        commit_micros: u64,
        freshness_ms: Option<i64>,
    ) {
        let progress = &self.shared.progress;
        progress
            .documents_indexed
            .fetch_add(reports, Ordering::Relaxed);
        progress.commits.fetch_add(1, Ordering::Relaxed);
        progress
            .last_commit_micros
            .store(commit_micros, Ordering::Relaxed);
        progress
            .last_commit_at_ms
            .store(now_ms(), Ordering::Relaxed);
        if let Some(freshness_ms) = freshness_ms {
            progress
                .last_freshness_ms
                .store(freshness_ms as u64, Ordering::Relaxed);
            metrics::histogram!("reportstore_index_freshness_seconds")
                .record(freshness_ms as f64 / 1000.0);
        }
        // Published after the reload, so a search that reads this seq sees these reports.
        progress.indexed_seq.store(indexed_seq, Ordering::Release);
        if let Ok(mut last_error) = progress.last_error.lock() {
            *last_error = None;
        }
        self.refresh_segment_count();
        metrics::counter!("reportstore_index_reports_total").increment(reports);
        metrics::histogram!("reportstore_index_commit_seconds").record(commit_micros as f64 / 1e6);
        metrics::gauge!("reportstore_index_indexed_seq").set(indexed_seq as f64);
    }

    pub(crate) fn record_error(&self, error: &Error) {
        if let Ok(mut last_error) = self.shared.progress.last_error.lock() {
            *last_error = Some(error.to_string());
        }
        metrics::counter!("reportstore_index_errors_total").increment(1);
    }

    pub(crate) fn publish_lag(&self, durable_seq: u64) {
        metrics::gauge!("reportstore_index_lag_entries")
            .set(durable_seq.saturating_sub(self.indexed_seq()) as f64);
    }
}

/// What [`reindex`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReindexSummary {
    /// The store's last seq, now the index's.
    pub indexed_seq: u64,
    /// Reports in the new index.
    pub documents: u64,
    /// Seconds the rebuild took.
    pub seconds: f64,
    /// Bytes of the new index on disk.
    pub size_on_disk_bytes: u64,
}

/// Bytes of the files in `directory` (not recursive: an index directory is flat).
pub fn directory_size(directory: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len())
        .sum()
}

/// Rebuilds the index of `store` from scratch, offline: into a new directory next to
/// `index_directory`, then swapped in by renames. Never opens a second writer on a live index;
/// the caller holds the store (sled's lock), so no server runs on this data directory.
pub fn reindex(
    store: &Store,
    index_directory: &Path,
    config: IndexerConfig,
) -> Result<ReindexSummary> {
    let started = std::time::Instant::now();
    let file_name = index_directory
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".to_string());
    let parent = index_directory.parent().unwrap_or_else(|| Path::new("."));
    let rebuild_directory = parent.join(format!("{file_name}.rebuild"));
    let retired_directory = parent.join(format!("{file_name}.retired"));
    for leftover in [&rebuild_directory, &retired_directory] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(|source| Error::Io {
                path: leftover.clone(),
                source,
            })?;
        }
    }
    let up_to = store.last_seq()?;
    let (search_index, mut indexer) = SearchIndex::open(&rebuild_directory, config)?;
    tracing::info!(up_to, path = %rebuild_directory.display(), "rebuilding the search index");
    indexer.catch_up(store, up_to)?;
    indexer.finish()?;
    let documents = search_index.searcher().num_docs();
    drop(indexer);
    drop(search_index);
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| Error::Io {
            path: from.to_path_buf(),
            source,
        })
    };
    if index_directory.exists() {
        rename(index_directory, &retired_directory)?;
    }
    rename(&rebuild_directory, index_directory)?;
    if retired_directory.exists() {
        std::fs::remove_dir_all(&retired_directory).map_err(|source| Error::Io {
            path: retired_directory.clone(),
            source,
        })?;
    }
    Ok(ReindexSummary {
        indexed_seq: up_to,
        documents,
        seconds: started.elapsed().as_secs_f64(),
        size_on_disk_bytes: directory_size(index_directory),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_defaults_to_zero() {
        let payload = CommitPayload {
            seq: 42,
            schema: SCHEMA_VERSION,
            entry: "00ff".to_string(),
        };
        assert_eq!(CommitPayload::parse(Some(&payload.to_json())), payload);
        assert_eq!(CommitPayload::parse(None).seq, 0);
        assert_eq!(CommitPayload::parse(Some("garbage")).seq, 0);
    }

    #[test]
    fn only_tantivy_files_are_cleared() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("meta.json"), b"{}").unwrap();
        std::fs::write(
            directory
                .path()
                .join("0123456789abcdef0123456789abcdef.idx"),
            b"",
        )
        .unwrap();
        clear_index_directory(directory.path()).unwrap();
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
        std::fs::write(directory.path().join("precious.txt"), b"x").unwrap();
        assert!(clear_index_directory(directory.path()).is_err());
        assert!(directory.path().join("precious.txt").exists());
    }
}
