//! One pass over the matching documents that yields everything a search page needs: the exact
//! total, the facet counts and the top hits after the cursor (search-after).
//!
//! Doing it in one collector instead of `(TopDocs, Count, aggregations)` reads each document's
//! `seq` once (the tie-breaker and the snapshot filter) and keeps facet counts as plain
//! per-segment arrays indexed by term ordinal (exact, never sampled per segment like a terms
//! aggregation's shard size).
//!
//! Ordinals are per segment, so counts from different segments meet through [`FacetInterner`]:
//! every facet value in the index gets a small id once, and each segment gets a table from its
//! ordinals to those ids the first time it is searched. Merging the segments' counts is then
//! integer work; only the values shown (the top 50 of a facet) become strings. Resolving every
//! counted ordinal to a string per segment and merging by string cost more than the rest of a
//! large search (a `dist` facet has thousands of values in each of a dozen segments).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column};
use tantivy::index::SegmentId;
use tantivy::query::Weight;
use tantivy::{
    DateTime, DocAddress, DocId, DocSet, Score, Searcher, SegmentOrdinal, SegmentReader,
};

use super::query::{SortKey, SortOrder};

/// The facet fields, in the order of [`SearchFruit::facets`].
pub const FACET_FIELDS: [&str; 4] = ["grade", "osname", "perl", "dist"];

/// An ordinal whose value could not be interned (never expected; counted nowhere).
const NO_FACET_ID: u32 = u32::MAX;

/// Tables of segments no longer in the newest snapshot that are kept before pruning: enough
/// for the searches still paging through an older snapshot, few enough that merged-away
/// segment files are released soon.
const MERGED_AWAY_TABLES_KEPT: usize = 8;

/// The facet values of one field, each with a stable small id.
#[derive(Debug, Default)]
pub struct InternedValues {
    values: Vec<String>,
    ids: HashMap<String, u32>,
}

impl InternedValues {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let Ok(id) = u32::try_from(self.values.len()) else {
            return NO_FACET_ID;
        };
        self.values.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    /// The value of `id` ("" for an unknown id).
    pub fn value(&self, id: u32) -> &str {
        self.values.get(id as usize).map_or("", String::as_str)
    }
}

/// For one segment, per facet field: segment term ordinal -> interned id, and the opened
/// opened columns. Opening a string column reads its dictionary's index; done per segment of
/// every search, it was a large part of a search with few hits, so it is done once per segment.
pub struct SegmentFacetTables {
    ids: Vec<Vec<u32>>,
    ordinal_columns: Vec<Option<Column<u64>>>,
    seq_column: Column<u64>,
    created_column: Column<DateTime>,
}

impl std::fmt::Debug for SegmentFacetTables {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SegmentFacetTables")
            .field("values", &self.ids.iter().map(Vec::len).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Ids for every facet value of the index, and the per-segment ordinal tables (see the module
/// docs). Values are only ever added: a value whose reports are all gone keeps its id, which
/// costs a few bytes (the values are names of distributions, systems and perls).
#[derive(Debug)]
pub struct FacetInterner {
    fields: Vec<RwLock<InternedValues>>,
    segments: Mutex<HashMap<SegmentId, Arc<SegmentFacetTables>>>,
}

impl Default for FacetInterner {
    fn default() -> Self {
        FacetInterner {
            fields: FACET_FIELDS
                .iter()
                .map(|_| RwLock::new(InternedValues::default()))
                .collect(),
            segments: Mutex::new(HashMap::new()),
        }
    }
}

impl FacetInterner {
    /// The ordinal tables of `searcher`'s segments, by segment ordinal; built on first use of
    /// a segment (one pass over its facet dictionaries).
    pub fn tables_for(&self, searcher: &Searcher) -> tantivy::Result<Vec<Arc<SegmentFacetTables>>> {
        let readers = searcher.segment_readers();
        let mut cache = self
            .segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut tables = Vec::with_capacity(readers.len());
        for reader in readers {
            let segment_id = reader.segment_id();
            if let Some(table) = cache.get(&segment_id) {
                tables.push(Arc::clone(table));
                continue;
            }
            let table = Arc::new(self.build_tables(reader)?);
            cache.insert(segment_id, Arc::clone(&table));
            tables.push(table);
        }
        // Merged-away segments: forget them once there are a few (a search on an older
        // snapshot that still needs one rebuilds its table). Their opened columns keep the
        // merged-away files' space from being released, so a few is all that is kept.
        if cache.len() > readers.len() + MERGED_AWAY_TABLES_KEPT {
            let live: HashSet<SegmentId> = readers.iter().map(SegmentReader::segment_id).collect();
            cache.retain(|segment_id, _| live.contains(segment_id));
        }
        Ok(tables)
    }

    fn build_tables(&self, reader: &SegmentReader) -> tantivy::Result<SegmentFacetTables> {
        let fast_fields = reader.fast_fields();
        let mut ids = Vec::with_capacity(FACET_FIELDS.len());
        let mut ordinal_columns = Vec::with_capacity(FACET_FIELDS.len());
        for (field_index, field_name) in FACET_FIELDS.iter().enumerate() {
            let mut field_ids = Vec::new();
            let column = fast_fields.str(field_name)?;
            ordinal_columns.push(column.as_ref().map(|column| column.ords().clone()));
            if let Some(column) = column {
                let dictionary = column.dictionary();
                field_ids.reserve(dictionary.num_terms());
                let mut values = self.fields[field_index]
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut stream = dictionary.stream()?;
                while stream.advance() {
                    let ordinal = stream.term_ord() as usize;
                    if ordinal > field_ids.len() {
                        field_ids.resize(ordinal, NO_FACET_ID);
                    }
                    let id = values.intern(&String::from_utf8_lossy(stream.key()));
                    field_ids.push(id);
                }
            }
            ids.push(field_ids);
        }
        Ok(SegmentFacetTables {
            ids,
            ordinal_columns,
            seq_column: fast_fields.u64("seq")?,
            created_column: fast_fields.date("created")?,
        })
    }

    /// Runs `read` with the interned values of facet field `field_index`.
    pub fn with_values<T>(&self, field_index: usize, read: impl FnOnce(&InternedValues) -> T) -> T {
        let values = self.fields[field_index]
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(&values)
    }
}

/// What the search collects.
pub struct SearchCollector {
    /// Hit order.
    pub sort: SortOrder,
    /// How many of the best hits after the cursor to keep (offset + limit).
    pub keep: usize,
    /// Only hits ranked after this key count as hits (the previous page's last hit).
    pub after: Option<SortKey>,
    /// Documents with a higher seq are ignored entirely (arrived after the first page).
    pub snapshot_seq: u64,
    /// [`FacetInterner::tables_for`] the searcher; empty: facets are not counted.
    pub facet_tables: Vec<Arc<SegmentFacetTables>>,
    /// Per facet field (see [`FACET_FIELDS`]): whether to count it. A field the search filters
    /// to one value need not be read: all its matches have that value.
    pub counted_facets: [bool; FACET_FIELDS.len()],
}

/// The result of a [`SearchCollector`].
#[derive(Debug, Default)]
pub struct SearchFruit {
    /// Every matching document (at or below the snapshot seq), regardless of the cursor.
    pub total: u64,
    /// Matching documents ranked after the cursor (all of them when there is none).
    pub after_cursor: u64,
    /// The best `keep` hits after the cursor, best first.
    pub top: Vec<(SortKey, DocAddress)>,
    /// Per facet field (see [`FACET_FIELDS`]): every value (its [`FacetInterner`] id) with
    /// its count, unordered. Empty when facets were not counted.
    pub facets: Vec<Vec<(u32, u64)>>,
}

#[derive(Debug, Clone, Copy)]
struct RankedDoc {
    key: SortKey,
    doc: DocId,
}

impl PartialEq for RankedDoc {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for RankedDoc {}
impl PartialOrd for RankedDoc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RankedDoc {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.rank_cmp(&other.key).then(other.doc.cmp(&self.doc))
    }
}

/// The per-segment part of [`SearchCollector`].
pub struct SearchSegmentCollector {
    segment_ord: SegmentOrdinal,
    sort: SortOrder,
    after: Option<SortKey>,
    snapshot_seq: u64,
    /// Whether the segment's largest seq is within the snapshot: then no document is left out
    /// for its seq, and a seq is read only to rank a document (see `collect_docs`).
    all_in_snapshot: bool,
    seq_column: Column<u64>,
    created_column: Column<DateTime>,
    facet_columns: Vec<Option<Column<u64>>>,
    facet_tables: Option<Arc<SegmentFacetTables>>,
    facet_counts: Vec<OrdinalCounts>,
    /// The best hits so far (see [`SearchSegmentCollector::rank`]).
    best: TopCandidates,
    seq_buffer: Vec<Option<u64>>,
    created_buffer: Vec<Option<DateTime>>,
    ordinal_buffers: Vec<Vec<Option<u64>>>,
    /// Ordinals of a column every document has a value in (read without the `Option`).
    full_ordinal_buffer: Vec<u64>,
    /// Scored documents waiting to be collected as a block (see `collect`).
    pending_docs: Vec<DocId>,
    pending_scores: Vec<Score>,
    total: u64,
    after_cursor: u64,
}

/// What one segment yields.
pub struct SegmentFruit {
    total: u64,
    after_cursor: u64,
    top: Vec<(SortKey, DocAddress)>,
    facets: Vec<Vec<(u32, u64)>>,
}

impl Collector for SearchCollector {
    type Fruit = SearchFruit;
    type Child = SearchSegmentCollector;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SearchSegmentCollector> {
        let fast_fields = segment.fast_fields();
        let facet_tables = self.facet_tables.get(segment_ord as usize).cloned();
        let mut facet_columns = Vec::with_capacity(FACET_FIELDS.len());
        let mut facet_counts = Vec::with_capacity(FACET_FIELDS.len());
        for field_index in 0..FACET_FIELDS.len() {
            let column = match &facet_tables {
                Some(tables) if self.counted_facets[field_index] => {
                    tables.ordinal_columns[field_index].clone()
                }
                _ => None,
            };
            let values = facet_tables
                .as_ref()
                .map_or(0, |tables| tables.ids[field_index].len());
            facet_counts.push(if column.is_some() {
                OrdinalCounts::zeroed(values)
            } else {
                OrdinalCounts::default()
            });
            facet_columns.push(column);
        }
        let (seq_column, created_column) = match &facet_tables {
            Some(tables) => (tables.seq_column.clone(), tables.created_column.clone()),
            None => (fast_fields.u64("seq")?, fast_fields.date("created")?),
        };
        Ok(SearchSegmentCollector {
            segment_ord,
            sort: self.sort,
            after: self.after,
            snapshot_seq: self.snapshot_seq,
            // The column's statistics hold its largest value: no document is read for it.
            all_in_snapshot: seq_column.max_value() <= self.snapshot_seq,
            seq_column,
            created_column,
            facet_columns,
            facet_tables,
            facet_counts,
            best: TopCandidates::new(self.keep),
            seq_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            created_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            ordinal_buffers: vec![
                Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN);
                FACET_FIELDS.len()
            ],
            full_ordinal_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            pending_docs: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            pending_scores: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            total: 0,
            after_cursor: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == SortOrder::Relevance
    }

    fn merge_fruits(&self, segment_fruits: Vec<SegmentFruit>) -> tantivy::Result<SearchFruit> {
        let mut fruit = SearchFruit {
            facets: (0..FACET_FIELDS.len())
                .map(|field_index| {
                    merge_facet_counts(
                        segment_fruits
                            .iter()
                            .filter_map(|segment_fruit| segment_fruit.facets.get(field_index)),
                    )
                })
                .collect(),
            ..SearchFruit::default()
        };
        for segment_fruit in segment_fruits {
            fruit.total += segment_fruit.total;
            fruit.after_cursor += segment_fruit.after_cursor;
            fruit.top.extend(segment_fruit.top);
        }
        fruit
            .top
            .sort_by(|left, right| right.0.rank_cmp(&left.0).then(left.1.cmp(&right.1)));
        fruit.top.truncate(self.keep);
        Ok(fruit)
    }
}

/// Pieces per search thread when a segment is cut (see [`plan_collection_pieces`]): a thread
/// that finishes early takes another piece rather than wait for a long one.
const PIECES_PER_THREAD: usize = 2;

/// A segment is cut in pieces of about this many documents or more: a piece pays for its own scorer (term dictionary
/// lookups, a phrase's position readers) and its own facet harvest.
const MIN_PIECE_DOCS: DocId = 32 * 1024;

/// Documents `docs` of segment `segment_ord`: what one search thread collects at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionPiece {
    /// The segment.
    pub segment_ord: SegmentOrdinal,
    /// Its documents in this piece.
    pub docs: std::ops::Range<DocId>,
}

/// Cuts the segments (their `max_doc`s, in segment order) into pieces of about equal size for
/// `threads` threads, largest first.
///
/// tantivy collects a search one segment per thread, and a merged index is lopsided: one
/// segment often holds more than half of the documents, and then the other threads sit idle
/// while one thread collects it. Cut in document ranges, each thread gets a fair share of
/// every large segment. A piece's cost follows the matches in its range, not its length, but
/// reports arrive in no order of content, so matches spread evenly enough.
/// Segments of fewer than `min_piece_docs` documents are not cut.
pub fn plan_collection_pieces(
    segment_max_docs: &[DocId],
    threads: usize,
    min_piece_docs: DocId,
) -> Vec<CollectionPiece> {
    let total_docs: u64 = segment_max_docs.iter().map(|docs| u64::from(*docs)).sum();
    let wanted_pieces = (threads * PIECES_PER_THREAD).max(1) as u64;
    let piece_docs = if threads <= 1 {
        DocId::MAX
    } else {
        DocId::try_from(total_docs.div_ceil(wanted_pieces))
            .unwrap_or(DocId::MAX)
            .max(min_piece_docs.max(1))
    };
    let mut pieces = Vec::new();
    for (segment_ord, max_doc) in segment_max_docs.iter().copied().enumerate() {
        if max_doc == 0 {
            continue;
        }
        // Rounded to the nearest count: a segment a little over one piece stays whole.
        let count = ((max_doc + piece_docs / 2) / piece_docs).max(1);
        let length = max_doc.div_ceil(count);
        let mut start = 0;
        while start < max_doc {
            let end = start.saturating_add(length).min(max_doc);
            pieces.push(CollectionPiece {
                segment_ord: segment_ord as SegmentOrdinal,
                docs: start..end,
            });
            start = end;
        }
    }
    pieces.sort_by_key(|piece| std::cmp::Reverse(piece.docs.len()));
    pieces
}

impl SearchCollector {
    /// Collects `weight`'s matches over the searcher's segments, cut into pieces
    /// ([`plan_collection_pieces`]) that the search threads take largest first.
    ///
    /// The same result as `searcher.search(query, self)`: pieces of one segment yield fruits
    /// that merge like those of different segments (totals add up, facet counts are by
    /// interned id, hits keep their segment's address).
    pub fn collect_in_pieces(
        &self,
        searcher: &Searcher,
        weight: &dyn Weight,
        pool: Option<&rayon::ThreadPool>,
    ) -> tantivy::Result<SearchFruit> {
        let segment_max_docs: Vec<DocId> = searcher
            .segment_readers()
            .iter()
            .map(SegmentReader::max_doc)
            .collect();
        let threads = pool.map_or(1, rayon::ThreadPool::current_num_threads);
        let pieces = plan_collection_pieces(&segment_max_docs, threads, MIN_PIECE_DOCS);
        self.collect_pieces(searcher, weight, pool, &pieces)
    }

    /// Collects `pieces` (which must cover every document of every segment once) on `pool`.
    pub fn collect_pieces(
        &self,
        searcher: &Searcher,
        weight: &dyn Weight,
        pool: Option<&rayon::ThreadPool>,
        pieces: &[CollectionPiece],
    ) -> tantivy::Result<SearchFruit> {
        let threads = pool.map_or(1, rayon::ThreadPool::current_num_threads);
        let collect_piece = |piece: &CollectionPiece| {
            let reader = searcher.segment_reader(piece.segment_ord);
            self.collect_piece(weight, piece, reader)
        };
        let Some(pool) = pool.filter(|_| pieces.len() > 1) else {
            let fruits = pieces
                .iter()
                .map(collect_piece)
                .collect::<tantivy::Result<_>>()?;
            return self.merge_fruits(fruits);
        };
        // Each worker takes the next piece until none is left: the largest go first, and a
        // worker that finishes early keeps taking small ones.
        let next_piece = AtomicUsize::new(0);
        let take_pieces = || -> tantivy::Result<Vec<SegmentFruit>> {
            let mut fruits = Vec::new();
            loop {
                let index = next_piece.fetch_add(1, AtomicOrdering::Relaxed);
                let Some(piece) = pieces.get(index) else {
                    return Ok(fruits);
                };
                fruits.push(collect_piece(piece)?);
            }
        };
        let per_worker: Vec<tantivy::Result<Vec<SegmentFruit>>> = pool.install(|| {
            (0..threads.min(pieces.len()))
                .into_par_iter()
                .map(|_| take_pieces())
                .collect()
        });
        let mut fruits = Vec::with_capacity(pieces.len());
        for worker_fruits in per_worker {
            fruits.extend(worker_fruits?);
        }
        self.merge_fruits(fruits)
    }

    /// Collects the matches of one piece. The scorer starts at the piece's first document
    /// (a seek: postings skip whole blocks) and is left once it passes the last.
    fn collect_piece(
        &self,
        weight: &dyn Weight,
        piece: &CollectionPiece,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentFruit> {
        let mut segment_collector = self.for_segment(piece.segment_ord, reader)?;
        let mut scorer = weight.scorer(reader, 1.0)?;
        if scorer.doc() < piece.docs.start {
            scorer.seek(piece.docs.start);
        }
        let alive_bitset = reader.alive_bitset();
        let is_alive = |doc: DocId| alive_bitset.is_none_or(|alive| alive.is_alive(doc));
        if self.requires_scoring() {
            let mut doc = scorer.doc();
            while doc < piece.docs.end {
                if is_alive(doc) {
                    segment_collector.collect(doc, scorer.score());
                }
                doc = scorer.advance();
            }
            return Ok(segment_collector.harvest());
        }
        let mut buffer = [0; tantivy::COLLECT_BLOCK_BUFFER_LEN];
        let mut alive_docs = Vec::new();
        while scorer.doc() < piece.docs.end {
            let filled = scorer.fill_buffer(&mut buffer);
            let in_piece = buffer[..filled].partition_point(|doc| *doc < piece.docs.end);
            let docs = &buffer[..in_piece];
            if alive_bitset.is_none() {
                segment_collector.collect_block(docs);
            } else {
                alive_docs.clear();
                alive_docs.extend(docs.iter().copied().filter(|doc| is_alive(*doc)));
                segment_collector.collect_block(&alive_docs);
            }
            if in_piece < filled {
                break;
            }
        }
        Ok(segment_collector.harvest())
    }
}

thread_local! {
    /// Per interned id, the counts being merged; all zero between searches (see
    /// [`merge_facet_counts`]).
    static MERGED_COUNTS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A merge array longer than this (interned values of one facet) is not kept.
const KEPT_MERGED_COUNTS_LENGTH: usize = 1 << 22;

/// Sums the segments' `(interned id, count)` lists of one facet by id.
///
/// Interned ids are small and dense, so the sums go into an array indexed by id (kept per
/// thread, zeroed entry by entry as it is read) rather than a hash map: merging a `dist`
/// facet's thousands of values from each of a dozen segments was a hash map's worth of
/// lookups per value.
fn merge_facet_counts<'a>(segments: impl Iterator<Item = &'a Vec<(u32, u64)>>) -> Vec<(u32, u64)> {
    MERGED_COUNTS.with(|merged| {
        let mut sums = merged.borrow_mut();
        let mut touched: Vec<u32> = Vec::new();
        for values in segments {
            for (id, count) in values.iter().filter(|(_, count)| *count > 0) {
                let index = *id as usize;
                if index >= sums.len() {
                    sums.resize(index + 1, 0);
                }
                if sums[index] == 0 {
                    touched.push(*id);
                }
                sums[index] += count;
            }
        }
        let summed = touched
            .into_iter()
            .map(|id| (id, std::mem::take(&mut sums[id as usize])))
            .collect();
        if sums.len() > KEPT_MERGED_COUNTS_LENGTH {
            *sums = Vec::new();
        }
        summed
    })
}

thread_local! {
    /// Facet count arrays of finished segment collections (all zero again) with their
    /// touched-ordinal arrays, for the next search on this thread: a `dist` array has
    /// thousands of entries per segment, and fresh zeroed memory for every segment of every
    /// search cost more than counting a small result.
    static COUNT_BUFFERS: std::cell::RefCell<Vec<(Vec<u32>, Vec<u32>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread, and the largest one kept (entries).
const KEPT_COUNT_BUFFERS: usize = 32;
const KEPT_COUNT_BUFFER_LENGTH: usize = 1 << 20;

/// A facet with at most this many values in a segment is counted densely (see
/// [`OrdinalCounts`]): reading all of its counters at harvest costs less than keeping track
/// of the touched ones.
const DENSE_COUNT_MAX_ORDINALS: usize = 256;

/// Counters per ordinal of a densely counted facet: consecutive documents count into
/// different counters (document `i` into lane `i % 4`).
const DENSE_COUNT_LANES: usize = 4;

/// Per-ordinal counts of one facet in one segment.
///
/// Two ways of counting, chosen by the number of values the facet has in the segment:
/// * **Sparse** (many values, like `dist`): one counter per ordinal, and the ordinals counted
///   so far. Only those are read at harvest and zeroed afterwards, so neither reading nor
///   zeroing costs the whole array: a search matching a few thousand reports touches a few
///   hundred of a segment's thousands of `dist` values.
/// * **Dense** (at most [`DENSE_COUNT_MAX_ORDINALS`] values, like `grade` and `perl`):
///   [`DENSE_COUNT_LANES`] counters per ordinal, all read at harvest. The trap this avoids:
///   with one counter, consecutive documents mostly have the same grade, so each increment
///   waits for the previous one's store to the same address, and no touched list is needed
///   for a handful of values. Counting 84,000 grades took 116 µs with one counter and a
///   touched list, 28 µs with four lanes.
#[derive(Default)]
struct OrdinalCounts {
    /// Sparse: indexed by segment term ordinal. Dense: ordinal `o`'s lanes are
    /// `o * DENSE_COUNT_LANES..(o + 1) * DENSE_COUNT_LANES`. All zero when handed out and when
    /// given back.
    counts: Vec<u32>,
    /// Sparse only: the ordinals counted so far, in the order first counted, are its first
    /// `touched_length` entries; the rest is scratch. One entry longer than `counts`, so that
    /// [`OrdinalCounts::count_all`] always has a place to write.
    touched: Vec<u32>,
    touched_length: usize,
    /// The ordinals counted (the facet's values in the segment); counters beyond are ignored.
    values: usize,
    dense: bool,
    /// Something was counted since the last drain (the counters are not all zero).
    counted: bool,
}

impl OrdinalCounts {
    fn zeroed(values: usize) -> OrdinalCounts {
        let (mut counts, mut touched) = COUNT_BUFFERS
            .with(|buffers| buffers.borrow_mut().pop())
            .unwrap_or_default();
        let dense = values <= DENSE_COUNT_MAX_ORDINALS;
        // Kept count arrays are all zero: resizing keeps that (entries past the new length
        // go, new ones are zero). What `touched` holds does not matter.
        if dense {
            counts.resize(values * DENSE_COUNT_LANES, 0);
        } else {
            counts.resize(values, 0);
            touched.resize(values + 1, 0);
        }
        OrdinalCounts {
            counts,
            touched,
            touched_length: 0,
            values,
            dense,
            counted: false,
        }
    }

    /// Counts each of `ordinals` once; ordinals beyond the facet's values are ignored.
    fn count_all(&mut self, ordinals: &[u64]) {
        self.counted |= !ordinals.is_empty();
        if self.dense {
            self.count_all_dense(ordinals);
        } else {
            self.count_all_sparse(ordinals);
        }
    }

    fn count_all_dense(&mut self, ordinals: &[u64]) {
        let values = self.values as u64;
        let counts = &mut self.counts;
        let mut count_in_lane = |ordinal: u64, lane: usize| {
            if ordinal < values {
                counts[ordinal as usize * DENSE_COUNT_LANES + lane] += 1;
            }
        };
        // Four at a time, each into its own lane: the increments do not wait for each other.
        let (quads, rest) = ordinals.as_chunks::<DENSE_COUNT_LANES>();
        for quad in quads {
            for (lane, ordinal) in quad.iter().enumerate() {
                count_in_lane(*ordinal, lane);
            }
        }
        for (lane, ordinal) in rest.iter().enumerate() {
            count_in_lane(*ordinal, lane);
        }
    }

    fn count_all_sparse(&mut self, ordinals: &[u64]) {
        for ordinal in ordinals {
            let Some(count) = self.counts.get_mut(*ordinal as usize) else {
                continue;
            };
            let first_time = *count == 0;
            *count += 1;
            // Written every time and kept only the first time: no branch. On a facet with
            // thousands of values, a value new to the segment is common and unpredictable, and
            // that branch's mispredictions were a fifth of counting a large newest-first search.
            if let Some(slot) = self.touched.get_mut(self.touched_length) {
                *slot = *ordinal as u32;
            }
            self.touched_length += usize::from(first_time);
        }
    }

    /// At most how many ordinals [`OrdinalCounts::drain`] yields.
    fn drained_at_most(&self) -> usize {
        if self.dense {
            self.values
        } else {
            self.touched_length
        }
    }

    /// Hands `each` the `(ordinal, count)` of every counted ordinal (sparse: in the order
    /// first counted; dense: by ordinal); the counts are zero again afterwards.
    fn drain(&mut self, mut each: impl FnMut(usize, u32)) {
        self.counted = false;
        let counts = &mut self.counts;
        if self.dense {
            for (ordinal, lanes) in counts.chunks_exact_mut(DENSE_COUNT_LANES).enumerate() {
                let count: u32 = lanes.iter().sum();
                if count > 0 {
                    lanes.fill(0);
                    each(ordinal, count);
                }
            }
            return;
        }
        let touched_length = std::mem::take(&mut self.touched_length);
        for ordinal in &self.touched[..touched_length] {
            let ordinal = *ordinal as usize;
            each(ordinal, std::mem::take(&mut counts[ordinal]));
        }
    }

    /// Gives the (all zero) arrays back for the next search on this thread.
    fn give_back(mut self) {
        if self.counted {
            // Not drained: zero it the slow way rather than hand out stale counts.
            self.counts.iter_mut().for_each(|count| *count = 0);
        }
        if self.counts.capacity() == 0 || self.counts.capacity() > KEPT_COUNT_BUFFER_LENGTH {
            return;
        }
        COUNT_BUFFERS.with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            if buffers.len() < KEPT_COUNT_BUFFERS {
                buffers.push((self.counts, self.touched));
            }
        });
    }
}

fn created_seconds(created: Option<DateTime>) -> f64 {
    created.map_or(i64::MIN as f64, |created| {
        created.into_timestamp_secs() as f64
    })
}

impl SearchSegmentCollector {
    /// Collects the buffered scored documents.
    fn flush_pending(&mut self) {
        if self.pending_docs.is_empty() {
            return;
        }
        let docs = std::mem::take(&mut self.pending_docs);
        let scores = std::mem::take(&mut self.pending_scores);
        self.collect_docs(&docs, Some(&scores));
        self.pending_docs = docs;
        self.pending_docs.clear();
        self.pending_scores = scores;
        self.pending_scores.clear();
    }

    /// Counts, filters and ranks a block of documents (with their scores when sorting by
    /// relevance), reading each column once for the block.
    ///
    /// A seq does two things: it leaves out documents newer than the snapshot, and it breaks
    /// ties in the ranking. When the whole segment is within the snapshot (nearly always: only
    /// a segment committed after a cursor's first page is not), the first needs no reads, and
    /// in relevance order the second needs the seq of only the few documents that score as
    /// high as the best so far (`rank`). Newest first, nearly every document is newer than
    /// those before it and reaches the best so far, so the block's seqs are read at once.
    fn collect_docs(&mut self, docs: &[DocId], scores: Option<&[Score]>) {
        let block_length = docs.len();
        let newest_first = self.sort == SortOrder::Newest;
        let seqs_read = newest_first || !self.all_in_snapshot;
        if seqs_read {
            self.seq_buffer.resize(block_length, None);
            self.seq_column
                .first_vals(docs, &mut self.seq_buffer[..block_length]);
        }
        for (column, (counts, ordinals)) in self.facet_columns.iter().zip(
            self.facet_counts
                .iter_mut()
                .zip(self.ordinal_buffers.iter_mut()),
        ) {
            let Some(column) = column else { continue };
            if self.all_in_snapshot && column.get_cardinality() == Cardinality::Full {
                let full_ordinals = &mut self.full_ordinal_buffer;
                full_ordinals.resize(block_length, 0);
                column
                    .values
                    .get_vals(docs, &mut full_ordinals[..block_length]);
                counts.count_all(full_ordinals);
                continue;
            }
            ordinals.resize(block_length, None);
            column.first_vals(docs, &mut ordinals[..block_length]);
            let present_ordinals = &mut self.full_ordinal_buffer;
            present_ordinals.clear();
            if self.all_in_snapshot {
                present_ordinals.extend(ordinals.iter().flatten());
            } else {
                let snapshot_seq = self.snapshot_seq;
                present_ordinals.extend(
                    ordinals
                        .iter()
                        .zip(&self.seq_buffer)
                        .filter(|(_, seq)| seq.unwrap_or(0) <= snapshot_seq)
                        .filter_map(|(ordinal, _)| *ordinal),
                );
            }
            counts.count_all(present_ordinals);
        }
        if newest_first {
            self.created_buffer.resize(block_length, None);
            self.created_column
                .first_vals(docs, &mut self.created_buffer[..block_length]);
        }
        for (index, doc) in docs.iter().enumerate() {
            let known_seq = seqs_read.then(|| self.seq_buffer[index].unwrap_or(0));
            if known_seq.is_some_and(|seq| seq > self.snapshot_seq) {
                continue;
            }
            self.total += 1;
            let primary = match scores {
                _ if newest_first => created_seconds(self.created_buffer[index]),
                Some(scores) => f64::from(scores[index]),
                None => 0.0,
            };
            self.rank(*doc, primary, known_seq);
        }
    }

    /// Keeps `doc` if it ranks after the cursor and among the best so far. Its seq (`None`:
    /// not read yet) is read only when the primary key alone does not decide.
    fn rank(&mut self, doc: DocId, primary: f64, known_seq: Option<u64>) {
        let seq_column = &self.seq_column;
        let mut seq = known_seq;
        let mut read_seq = || *seq.get_or_insert_with(|| seq_column.first(doc).unwrap_or(0));
        if let Some(after) = &self.after {
            match primary.total_cmp(&after.primary) {
                // Ranked before the cursor: shown on an earlier page.
                Ordering::Greater => return,
                Ordering::Equal if read_seq() >= after.seq => return,
                Ordering::Equal | Ordering::Less => {}
            }
        }
        self.after_cursor += 1;
        if !self.best.may_take(primary) {
            return;
        }
        let key = SortKey {
            primary,
            seq: read_seq(),
        };
        self.best.offer(RankedDoc { key, doc });
    }
}

/// The best `keep` of a stream of documents, kept the way tantivy's `TopNComputer` keeps
/// them: candidates go into a buffer of twice `keep`; a full buffer is cut to its best `keep`
/// (a linear selection), and the worst of those becomes the bar later candidates must pass.
///
/// A binary heap of `keep` pays a sift for every candidate that enters it, and in newest-first
/// order nearly every document enters (documents are indexed roughly as they were created, so
/// each is newer than those before it): that sift was a seventh of a large newest-first search.
struct TopCandidates {
    keep: usize,
    buffer: Vec<RankedDoc>,
    /// Only candidates ranked above it can still be among the best.
    bar: Option<RankedDoc>,
}

impl TopCandidates {
    fn new(keep: usize) -> TopCandidates {
        TopCandidates {
            keep,
            buffer: Vec::with_capacity(keep.saturating_mul(2).min(1 << 16)),
            bar: None,
        }
    }

    /// Whether a candidate with this primary key may still be among the best (its seq and
    /// doc decide only a tie with the bar).
    fn may_take(&self, primary: f64) -> bool {
        self.keep > 0
            && self
                .bar
                .is_none_or(|bar| primary.total_cmp(&bar.key.primary) != Ordering::Less)
    }

    fn offer(&mut self, candidate: RankedDoc) {
        if self.keep == 0 {
            return;
        }
        if let Some(bar) = &self.bar
            && candidate <= *bar
        {
            return;
        }
        self.buffer.push(candidate);
        if self.buffer.len() >= self.keep.saturating_mul(2) {
            self.cut_to_keep();
        }
    }

    /// Keeps the best `keep` of the buffer, in no order, and raises the bar to the worst.
    fn cut_to_keep(&mut self) {
        if self.buffer.len() <= self.keep {
            return;
        }
        let (_, worst_kept, _) = self
            .buffer
            .select_nth_unstable_by(self.keep - 1, |left, right| right.cmp(left));
        self.bar = Some(*worst_kept);
        self.buffer.truncate(self.keep);
    }

    /// The best `keep`, best first.
    fn into_sorted(mut self) -> Vec<RankedDoc> {
        self.cut_to_keep();
        self.buffer.sort_unstable_by(|left, right| right.cmp(left));
        self.buffer
    }
}

impl SegmentCollector for SearchSegmentCollector {
    type Fruit = SegmentFruit;

    /// Scored documents come one at a time; they are buffered so that their columns are read
    /// in batches too (a per-document column read costs several times more).
    fn collect(&mut self, doc: DocId, score: Score) {
        self.pending_docs.push(doc);
        self.pending_scores.push(score);
        if self.pending_docs.len() >= tantivy::COLLECT_BLOCK_BUFFER_LEN {
            self.flush_pending();
        }
    }

    /// Without scores (newest first), tantivy hands over blocks of documents.
    fn collect_block(&mut self, docs: &[DocId]) {
        self.collect_docs(docs, None);
    }

    fn harvest(mut self) -> SegmentFruit {
        self.flush_pending();
        let segment_ord = self.segment_ord;
        let top = self
            .best
            .into_sorted()
            .into_iter()
            .map(|ranked| (ranked.key, DocAddress::new(segment_ord, ranked.doc)))
            .collect();
        let mut facets = Vec::with_capacity(self.facet_counts.len());
        let facet_counts = std::mem::take(&mut self.facet_counts);
        for (field_index, mut counts) in facet_counts.into_iter().enumerate() {
            if let Some(tables) = &self.facet_tables {
                let ids = &tables.ids[field_index];
                let mut values = Vec::with_capacity(counts.drained_at_most());
                counts.drain(|ordinal, count| match ids.get(ordinal) {
                    Some(id) if *id != NO_FACET_ID => values.push((*id, u64::from(count))),
                    _ => tracing::warn!(segment_ord, ordinal, "a facet ordinal has no value"),
                });
                facets.push(values);
            }
            counts.give_back();
        }
        SegmentFruit {
            total: self.total,
            after_cursor: self.after_cursor,
            top,
            facets,
        }
    }
}

#[cfg(test)]
mod tests {
    use tantivy::query::{AllQuery, EnableScoring};
    use tantivy::schema::{FAST, STRING, Schema};
    use tantivy::{Index, TantivyDocument, Term};

    use super::*;

    /// The buffer-and-cut top keeps exactly what sorting everything would, in every order the
    /// documents may come in (ascending keys: every candidate enters; descending: almost none).
    #[test]
    fn top_candidates_keep_what_a_full_sort_keeps() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next_random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for keep in [0, 1, 2, 7, 20, 100] {
            for pattern in 0..4 {
                let candidates: Vec<RankedDoc> = (0..2_000u32)
                    .map(|doc| {
                        let primary = match pattern {
                            0 => f64::from(doc),
                            1 => -f64::from(doc),
                            2 => (next_random() % 50) as f64,
                            _ => (next_random() % 1_000_000) as f64 / 7.0,
                        };
                        let seq = next_random() % 100;
                        RankedDoc {
                            key: SortKey { primary, seq },
                            doc,
                        }
                    })
                    .collect();
                let mut top = TopCandidates::new(keep);
                for candidate in &candidates {
                    top.offer(*candidate);
                }
                let mut expected = candidates.clone();
                expected.sort_by(|left, right| right.cmp(left));
                expected.truncate(keep);
                let kept = top.into_sorted();
                assert_eq!(kept.len(), expected.len(), "keep {keep}, pattern {pattern}");
                for (kept, expected) in kept.iter().zip(&expected) {
                    assert_eq!(kept.doc, expected.doc, "keep {keep}, pattern {pattern}");
                }
            }
        }
    }

    /// Every ordinal touched (the touched list full), repeats, an ordinal beyond the values:
    /// exact counts (sparse: in first-counted order, dense: by ordinal), and the buffers come
    /// back zero for the next use, also from one way of counting to the other.
    #[test]
    fn ordinal_counts_are_exact_and_come_back_zero() {
        let drained = |counts: &mut OrdinalCounts| {
            let mut drained = Vec::new();
            counts.drain(|ordinal, count| drained.push((ordinal, count)));
            drained
        };
        let sparse_values = DENSE_COUNT_MAX_ORDINALS + 3;
        for round in 0..3 {
            // Dense: a handful of values, counted in blocks that are not a multiple of the lanes.
            let mut counts = OrdinalCounts::zeroed(4);
            assert!(counts.dense);
            assert!(
                counts.counts.iter().all(|count| *count == 0),
                "handed out zero"
            );
            counts.count_all(&[2, 0, 2, 3, 1]);
            counts.count_all(&[1, 9, 2, 0, 2, 2, 2]);
            assert_eq!(drained(&mut counts), vec![(0, 2), (1, 2), (2, 6), (3, 1)]);
            assert_eq!(drained(&mut counts), vec![], "drained once");
            counts.give_back();
            // Sparse: first-counted order; the last ordinal is counted, the one beyond is not.
            let mut counts = OrdinalCounts::zeroed(sparse_values);
            assert!(!counts.dense);
            assert!(counts.counts.iter().all(|count| *count == 0));
            let last = (sparse_values - 1) as u64;
            counts.count_all(&[last, 0, last, 3, sparse_values as u64, 1, 1, 0]);
            assert_eq!(counts.drained_at_most(), 4);
            assert_eq!(
                drained(&mut counts),
                vec![(sparse_values - 1, 2), (0, 2), (3, 1), (1, 2)],
                "round {round}"
            );
            assert_eq!(counts.drained_at_most(), 0);
            counts.give_back();
        }
        // Given back without draining: zeroed anyway, in both ways.
        for values in [3, sparse_values] {
            let mut counts = OrdinalCounts::zeroed(values);
            counts.count_all(&[1, 1, 2]);
            counts.give_back();
            let counts = OrdinalCounts::zeroed(values);
            assert!(counts.counts.iter().all(|count| *count == 0));
        }
    }

    /// A RAM index with the collector's columns (`seq`, `created`, the facets) and, with
    /// `text`, a scored text field.
    struct TestIndex {
        index: Index,
        seq: tantivy::schema::Field,
        created: tantivy::schema::Field,
        text: Option<tantivy::schema::Field>,
        facet_fields: Vec<tantivy::schema::Field>,
    }

    fn test_index(with_text: bool) -> TestIndex {
        let mut builder = Schema::builder();
        let seq = builder.add_u64_field("seq", FAST);
        let created = builder.add_date_field("created", FAST);
        let text = with_text.then(|| builder.add_text_field("text", tantivy::schema::TEXT));
        let facet_fields = FACET_FIELDS
            .iter()
            .map(|name| builder.add_text_field(name, STRING | FAST))
            .collect();
        TestIndex {
            index: Index::create_in_ram(builder.build()),
            seq,
            created,
            text,
            facet_fields,
        }
    }

    /// Three segments whose dictionaries share some values and not others: the merged counts
    /// are per value, whatever each segment's ordinals are.
    #[test]
    fn facet_counts_merge_across_segments_by_value() {
        let TestIndex {
            index,
            seq,
            created,
            facet_fields,
            ..
        } = test_index(false);
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let segments: [&[(&str, &str)]; 3] = [
            &[("pass", "Acme-B"), ("fail", "Acme-A"), ("pass", "Acme-A")],
            &[("pass", "Zed"), ("na", "Acme-A")],
            &[("unknown", "Acme-C"), ("pass", "Acme-B")],
        ];
        let mut next_seq = 0u64;
        for documents in segments {
            for (grade, dist) in documents {
                next_seq += 1;
                let mut document = TantivyDocument::default();
                document.add_u64(seq, next_seq);
                document.add_date(
                    created,
                    tantivy::DateTime::from_timestamp_secs(next_seq as i64),
                );
                for (field, value) in facet_fields.iter().zip([*grade, "linux", "5.40.0", *dist]) {
                    document.add_text(*field, value);
                }
                writer.add_document(document).unwrap();
            }
            writer.commit().unwrap();
        }
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let interner = FacetInterner::default();
        let search = |snapshot_seq: u64, sort: SortOrder| {
            let collector = SearchCollector {
                sort,
                keep: 2,
                after: None,
                snapshot_seq,
                facet_tables: interner.tables_for(&searcher).unwrap(),
                counted_facets: [true; FACET_FIELDS.len()],
            };
            let fruit = searcher.search(&AllQuery, &collector).unwrap();
            let facets: Vec<std::collections::BTreeMap<String, u64>> = fruit
                .facets
                .iter()
                .enumerate()
                .map(|(field_index, counts)| {
                    interner.with_values(field_index, |values| {
                        counts
                            .iter()
                            .map(|(id, count)| (values.value(*id).to_string(), *count))
                            .collect()
                    })
                })
                .collect();
            (fruit.total, facets)
        };
        let (total, facets) = search(u64::MAX, SortOrder::Newest);
        assert_eq!(total, 7);
        // Scored documents arrive one by one and are collected in blocks: same counts.
        assert_eq!(
            search(u64::MAX, SortOrder::Relevance),
            (total, facets.clone())
        );
        let expected_grades = [("fail", 1), ("na", 1), ("pass", 4), ("unknown", 1)];
        let expected_dists = [("Acme-A", 3), ("Acme-B", 2), ("Acme-C", 1), ("Zed", 1)];
        let as_map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(value, count)| (value.to_string(), *count))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(facets[0], as_map(&expected_grades));
        assert_eq!(facets[1], as_map(&[("linux", 7)]));
        assert_eq!(facets[3], as_map(&expected_dists));
        // The tables are cached per segment and the snapshot filter applies to facets too.
        let (total, facets) = search(3, SortOrder::Newest);
        assert_eq!(search(3, SortOrder::Relevance), (total, facets.clone()));
        assert_eq!(total, 3);
        assert_eq!(facets[3], as_map(&[("Acme-A", 2), ("Acme-B", 1)]));
        // Without tables, nothing is counted.
        let collector = SearchCollector {
            sort: SortOrder::Newest,
            keep: 1,
            after: None,
            snapshot_seq: u64::MAX,
            facet_tables: Vec::new(),
            counted_facets: [true; FACET_FIELDS.len()],
        };
        let fruit = searcher.search(&AllQuery, &collector).unwrap();
        assert_eq!(fruit.total, 7);
        assert!(fruit.facets.iter().all(Vec::is_empty));
    }

    #[test]
    fn pieces_cover_every_document_once_and_only_large_segments_are_cut() {
        let lopsided = [
            600_000, 200_000, 100_000, 50_000, 20_000, 20_000, 9_000, 0, 1,
        ];
        for (max_docs, threads, min_piece_docs) in [
            (&lopsided[..], 2, MIN_PIECE_DOCS),
            (&lopsided[..], 4, MIN_PIECE_DOCS),
            (&lopsided[..], 1, MIN_PIECE_DOCS),
            (&[10, 3, 7][..], 2, 2),
            (&[5][..], 3, 1),
            (&[][..], 2, 1),
        ] {
            let pieces = plan_collection_pieces(max_docs, threads, min_piece_docs);
            for (segment_ord, max_doc) in max_docs.iter().enumerate() {
                let mut ranges: Vec<_> = pieces
                    .iter()
                    .filter(|piece| piece.segment_ord as usize == segment_ord)
                    .map(|piece| piece.docs.clone())
                    .collect();
                ranges.sort_by_key(|range| range.start);
                let mut next = 0;
                for range in &ranges {
                    assert_eq!(
                        range.start, next,
                        "{max_docs:?} on {threads}: gap or overlap"
                    );
                    assert!(range.end > range.start, "{max_docs:?}: an empty piece");
                    next = range.end;
                }
                assert_eq!(
                    next, *max_doc,
                    "{max_docs:?} on {threads}: segment not covered"
                );
            }
            let lengths: Vec<usize> = pieces.iter().map(|piece| piece.docs.len()).collect();
            assert!(
                lengths.windows(2).all(|pair| pair[0] >= pair[1]),
                "largest first"
            );
        }
        let one_thread = plan_collection_pieces(&lopsided, 1, MIN_PIECE_DOCS);
        assert_eq!(
            one_thread.len(),
            8,
            "one thread: one piece per non-empty segment"
        );
        // Two threads: the 600,000-document segment no longer decides the time alone.
        let two_threads = plan_collection_pieces(&lopsided, 2, MIN_PIECE_DOCS);
        let total: usize = lopsided.iter().sum::<u32>() as usize;
        assert!(two_threads[0].docs.len() <= total / 3, "{two_threads:?}");
        let small_segments_whole = two_threads
            .iter()
            .filter(|piece| lopsided[piece.segment_ord as usize] < 100_000)
            .all(|piece| piece.docs.len() == lopsided[piece.segment_ord as usize] as usize);
        assert!(small_segments_whole, "{two_threads:?}");
    }

    /// Cut in pieces of a few documents, collected on two threads, with deleted documents, a
    /// snapshot, a cursor and both orders: exactly what tantivy's collection by segment gives.
    #[test]
    fn collecting_in_pieces_gives_what_collecting_by_segment_gives() {
        use tantivy::query::{Query, TermQuery};
        use tantivy::schema::IndexRecordOption;

        let TestIndex {
            index,
            seq,
            created,
            text,
            facet_fields,
        } = test_index(true);
        let text = text.expect("asked for a text field");
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let grades = ["pass", "fail", "na", "unknown"];
        let mut next_seq = 0u64;
        for segment_length in [97, 41, 13, 1] {
            for _ in 0..segment_length {
                next_seq += 1;
                let mut document = TantivyDocument::default();
                document.add_u64(seq, next_seq);
                // Out of seq order, with ties: the order must come from the keys.
                document.add_date(
                    created,
                    tantivy::DateTime::from_timestamp_secs(((next_seq * 37) % 50) as i64),
                );
                let repeats = 1 + (next_seq % 4) as usize;
                let words = format!(
                    "{} {}",
                    "boom ".repeat(repeats),
                    "filler ".repeat(next_seq as usize % 9)
                );
                document.add_text(text, &words);
                let values = [
                    grades[(next_seq % 4) as usize].to_string(),
                    format!("os{}", next_seq % 3),
                    format!("5.{}", next_seq % 5),
                    format!("Dist-{}", next_seq % 11),
                ];
                for (field, value) in facet_fields.iter().zip(values) {
                    document.add_text(*field, value);
                }
                writer.add_document(document).unwrap();
            }
            writer.commit().unwrap();
        }
        writer.delete_term(Term::from_field_text(facet_fields[3], "Dist-4"));
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 4);
        assert!(
            searcher
                .segment_readers()
                .iter()
                .any(SegmentReader::has_deletes)
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let interner = FacetInterner::default();
        let max_docs: Vec<DocId> = searcher
            .segment_readers()
            .iter()
            .map(SegmentReader::max_doc)
            .collect();
        let queries: [Box<dyn Query>; 2] = [
            Box::new(TermQuery::new(
                Term::from_field_text(text, "boom"),
                IndexRecordOption::WithFreqs,
            )),
            Box::new(TermQuery::new(
                Term::from_field_text(facet_fields[0], "fail"),
                IndexRecordOption::Basic,
            )),
        ];
        let as_maps = |fruit: &SearchFruit| -> Vec<std::collections::BTreeMap<u32, u64>> {
            fruit
                .facets
                .iter()
                .map(|counts| counts.iter().copied().collect())
                .collect()
        };
        let mut compared = 0;
        for query in &queries {
            for sort in [SortOrder::Relevance, SortOrder::Newest] {
                for snapshot_seq in [u64::MAX, 120] {
                    for keep in [0, 1, 10, 500] {
                        let make_collector = |after: Option<SortKey>| SearchCollector {
                            sort,
                            keep,
                            after,
                            snapshot_seq,
                            facet_tables: interner.tables_for(&searcher).unwrap(),
                            counted_facets: [true, true, false, true],
                        };
                        let first_page = searcher
                            .search(query.as_ref(), &make_collector(None))
                            .unwrap();
                        // The next page too: a cursor after the first page's fifth hit.
                        let after = first_page.top.get(4).map(|(key, _)| *key);
                        let collectors = [make_collector(None), make_collector(after)];
                        for collector in &collectors {
                            let expected = searcher.search(query.as_ref(), collector).unwrap();
                            let scoring = if collector.requires_scoring() {
                                EnableScoring::enabled_from_searcher(&searcher)
                            } else {
                                EnableScoring::disabled_from_searcher(&searcher)
                            };
                            let weight = query.weight(scoring).unwrap();
                            for piece_docs in [1, 7, 40, 1_000] {
                                let pieces = plan_collection_pieces(&max_docs, 2, piece_docs);
                                for pool in [Some(&pool), None] {
                                    let pieced = collector
                                        .collect_pieces(&searcher, weight.as_ref(), pool, &pieces)
                                        .unwrap();
                                    let context = format!(
                                        "{sort:?} keep {keep} snapshot {snapshot_seq} pieces of {piece_docs}"
                                    );
                                    assert_eq!(pieced.total, expected.total, "{context}");
                                    assert_eq!(
                                        pieced.after_cursor, expected.after_cursor,
                                        "{context}"
                                    );
                                    assert_eq!(pieced.top, expected.top, "{context}");
                                    assert_eq!(as_maps(&pieced), as_maps(&expected), "{context}");
                                    compared += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 2 * 2 * 4 * 2 * 4 * 2);
        // And the pieces the search itself plans.
        let collector = SearchCollector {
            sort: SortOrder::Newest,
            keep: 20,
            after: None,
            snapshot_seq: u64::MAX,
            facet_tables: interner.tables_for(&searcher).unwrap(),
            counted_facets: [true; FACET_FIELDS.len()],
        };
        let weight = queries[1]
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .unwrap();
        let planned = collector
            .collect_in_pieces(&searcher, weight.as_ref(), Some(&pool))
            .unwrap();
        let expected = searcher.search(queries[1].as_ref(), &collector).unwrap();
        assert_eq!((planned.total, planned.top), (expected.total, expected.top));
    }
}
