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

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::{DateTime, DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use super::query::{SortKey, SortOrder};

/// The facet fields, in the order of [`SearchFruit::facets`].
pub const FACET_FIELDS: [&str; 4] = ["grade", "osname", "perl", "dist"];

/// FNV-1a: facet value ids are merged by the thousand per search, where the standard SipHash
/// (built to resist collision attacks on untrusted keys) costs more than the merge itself. The
/// keys here are the interner's own ids.
#[derive(Default)]
struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FacetMap = HashMap<u32, u64, BuildHasherDefault<FnvHasher>>;

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
    keep: usize,
    after: Option<SortKey>,
    snapshot_seq: u64,
    seq_column: Column<u64>,
    created_column: Column<DateTime>,
    facet_columns: Vec<Option<Column<u64>>>,
    facet_tables: Option<Arc<SegmentFacetTables>>,
    facet_counts: Vec<Vec<u32>>,
    /// A min-heap of the best hits so far: its top is the worst kept hit.
    best: BinaryHeap<Reverse<RankedDoc>>,
    seq_buffer: Vec<Option<u64>>,
    created_buffer: Vec<Option<DateTime>>,
    ordinal_buffers: Vec<Vec<Option<u64>>>,
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
                zeroed_count_buffer(values)
            } else {
                Vec::new()
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
            keep: self.keep,
            after: self.after,
            snapshot_seq: self.snapshot_seq,
            seq_column,
            created_column,
            facet_columns,
            facet_tables,
            facet_counts,
            best: BinaryHeap::with_capacity(self.keep + 1),
            seq_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            created_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            ordinal_buffers: vec![
                Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN);
                FACET_FIELDS.len()
            ],
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
        let mut fruit = SearchFruit::default();
        let mut facet_maps: Vec<FacetMap> = (0..FACET_FIELDS.len())
            .map(|field_index| {
                let largest = segment_fruits
                    .iter()
                    .map(|fruit| fruit.facets.get(field_index).map_or(0, Vec::len))
                    .max();
                FacetMap::with_capacity_and_hasher(largest.unwrap_or(0) * 2, Default::default())
            })
            .collect();
        for segment_fruit in segment_fruits {
            fruit.total += segment_fruit.total;
            fruit.after_cursor += segment_fruit.after_cursor;
            fruit.top.extend(segment_fruit.top);
            for (map, values) in facet_maps.iter_mut().zip(segment_fruit.facets) {
                for (value, count) in values {
                    *map.entry(value).or_default() += count;
                }
            }
        }
        fruit
            .top
            .sort_by(|left, right| right.0.rank_cmp(&left.0).then(left.1.cmp(&right.1)));
        fruit.top.truncate(self.keep);
        fruit.facets = facet_maps
            .into_iter()
            .map(|map| map.into_iter().collect())
            .collect();
        Ok(fruit)
    }
}

thread_local! {
    /// Facet count arrays of finished segment collections, for the next search on this thread:
    /// a `dist` array has thousands of entries per segment, and fresh zeroed memory for every
    /// segment of every search cost more than counting a small result.
    static COUNT_BUFFERS: std::cell::RefCell<Vec<Vec<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread, and the largest one kept (entries).
const KEPT_COUNT_BUFFERS: usize = 32;
const KEPT_COUNT_BUFFER_LENGTH: usize = 1 << 20;

fn zeroed_count_buffer(length: usize) -> Vec<u32> {
    let mut buffer = COUNT_BUFFERS
        .with(|buffers| buffers.borrow_mut().pop())
        .unwrap_or_default();
    buffer.clear();
    buffer.resize(length, 0);
    buffer
}

fn return_count_buffer(buffer: Vec<u32>) {
    if buffer.capacity() == 0 || buffer.capacity() > KEPT_COUNT_BUFFER_LENGTH {
        return;
    }
    COUNT_BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        if buffers.len() < KEPT_COUNT_BUFFERS {
            buffers.push(buffer);
        }
    });
}

fn count_ordinal(counts: &mut [u32], ordinal: u64) {
    if let Some(count) = counts.get_mut(ordinal as usize) {
        *count += 1;
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
    fn collect_docs(&mut self, docs: &[DocId], scores: Option<&[Score]>) {
        let block_length = docs.len();
        self.seq_buffer.resize(block_length, None);
        self.seq_column
            .first_vals(docs, &mut self.seq_buffer[..block_length]);
        for (column, (counts, ordinals)) in self.facet_columns.iter().zip(
            self.facet_counts
                .iter_mut()
                .zip(self.ordinal_buffers.iter_mut()),
        ) {
            let Some(column) = column else { continue };
            ordinals.resize(block_length, None);
            column.first_vals(docs, &mut ordinals[..block_length]);
            for (ordinal, seq) in ordinals.iter().zip(&self.seq_buffer) {
                if let Some(ordinal) = ordinal
                    && seq.unwrap_or(0) <= self.snapshot_seq
                {
                    count_ordinal(counts, *ordinal);
                }
            }
        }
        let newest_first = self.sort == SortOrder::Newest;
        if newest_first {
            self.created_buffer.resize(block_length, None);
            self.created_column
                .first_vals(docs, &mut self.created_buffer[..block_length]);
        }
        for (index, doc) in docs.iter().enumerate() {
            let seq = self.seq_buffer[index].unwrap_or(0);
            if seq > self.snapshot_seq {
                continue;
            }
            self.total += 1;
            let primary = match scores {
                _ if newest_first => created_seconds(self.created_buffer[index]),
                Some(scores) => f64::from(scores[index]),
                None => 0.0,
            };
            self.rank(*doc, SortKey { primary, seq });
        }
    }

    /// Keeps `doc` if it ranks after the cursor and among the best so far.
    fn rank(&mut self, doc: DocId, key: SortKey) {
        if let Some(after) = &self.after
            && key.rank_cmp(after) != Ordering::Less
        {
            return;
        }
        self.after_cursor += 1;
        if self.keep == 0 {
            return;
        }
        let candidate = RankedDoc { key, doc };
        if self.best.len() < self.keep {
            self.best.push(Reverse(candidate));
            return;
        }
        if let Some(mut worst) = self.best.peek_mut()
            && candidate > worst.0
        {
            *worst = Reverse(candidate);
        }
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
            .into_iter()
            .map(|Reverse(ranked)| (ranked.key, DocAddress::new(segment_ord, ranked.doc)))
            .collect();
        let mut facets = Vec::with_capacity(self.facet_counts.len());
        if let Some(tables) = &self.facet_tables {
            for (counts, ids) in self.facet_counts.iter().zip(&tables.ids) {
                let mut values = Vec::new();
                for (ordinal, count) in counts.iter().enumerate() {
                    if *count == 0 {
                        continue;
                    }
                    match ids.get(ordinal) {
                        Some(id) if *id != NO_FACET_ID => values.push((*id, u64::from(*count))),
                        _ => tracing::warn!(segment_ord, ordinal, "a facet ordinal has no value"),
                    }
                }
                facets.push(values);
            }
        }
        for counts in self.facet_counts.drain(..) {
            return_count_buffer(counts);
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
    use tantivy::query::AllQuery;
    use tantivy::schema::{FAST, STRING, Schema};
    use tantivy::{Index, TantivyDocument};

    use super::*;

    /// Three segments whose dictionaries share some values and not others: the merged counts
    /// are per value, whatever each segment's ordinals are.
    #[test]
    fn facet_counts_merge_across_segments_by_value() {
        let mut builder = Schema::builder();
        let seq = builder.add_u64_field("seq", FAST);
        let created = builder.add_date_field("created", FAST);
        let facet_fields: Vec<_> = FACET_FIELDS
            .iter()
            .map(|name| builder.add_text_field(name, STRING | FAST))
            .collect();
        let index = Index::create_in_ram(builder.build());
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
}
