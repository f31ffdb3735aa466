//! One pass over the matching documents that yields everything a search page needs: the exact
//! total, the facet counts and the top hits after the cursor (search-after).
//!
//! Doing it in one collector instead of `(TopDocs, Count, aggregations)` reads each document's
//! `seq` once (the tie-breaker and the snapshot filter), keeps facet counts as plain per-segment
//! arrays indexed by term ordinal (exact, never sampled per segment like a terms aggregation's
//! shard size), and resolves only the ordinals that were hit to strings at the end.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use super::query::{SortKey, SortOrder};

/// The facet fields, in the order of [`SearchFruit::facets`].
pub const FACET_FIELDS: [&str; 4] = ["grade", "osname", "perl", "dist"];

/// FNV-1a: facet values are short strings merged by the thousand per search, where the
/// standard SipHash (built to resist collision attacks on untrusted keys) costs more than the
/// merge itself. The keys here come from the index's own dictionaries.
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

type FacetMap = HashMap<String, u64, BuildHasherDefault<FnvHasher>>;

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
    /// Whether to count facets.
    pub with_facets: bool,
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
    /// Per facet field (see [`FACET_FIELDS`]): every value with its count, unordered.
    pub facets: Vec<Vec<(String, u64)>>,
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
    facet_columns: Vec<Option<StrColumn>>,
    facet_counts: Vec<Vec<u32>>,
    /// A min-heap of the best hits so far: its top is the worst kept hit.
    best: BinaryHeap<Reverse<RankedDoc>>,
    seq_buffer: Vec<Option<u64>>,
    created_buffer: Vec<Option<DateTime>>,
    ordinal_buffers: Vec<Vec<Option<u64>>>,
    total: u64,
    after_cursor: u64,
}

/// What one segment yields.
pub struct SegmentFruit {
    total: u64,
    after_cursor: u64,
    top: Vec<(SortKey, DocAddress)>,
    facets: Vec<Vec<(String, u64)>>,
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
        let mut facet_columns = Vec::with_capacity(FACET_FIELDS.len());
        let mut facet_counts = Vec::with_capacity(FACET_FIELDS.len());
        for field_name in FACET_FIELDS {
            let column = if self.with_facets {
                fast_fields.str(field_name)?
            } else {
                None
            };
            facet_counts.push(vec![
                0u32;
                column
                    .as_ref()
                    .map_or(0, |column| column.dictionary().num_terms())
            ]);
            facet_columns.push(column);
        }
        Ok(SearchSegmentCollector {
            segment_ord,
            sort: self.sort,
            keep: self.keep,
            after: self.after,
            snapshot_seq: self.snapshot_seq,
            seq_column: fast_fields.u64("seq")?,
            created_column: fast_fields.date("created")?,
            facet_columns,
            facet_counts,
            best: BinaryHeap::with_capacity(self.keep + 1),
            seq_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            created_buffer: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            ordinal_buffers: vec![
                Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN);
                FACET_FIELDS.len()
            ],
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

    fn collect(&mut self, doc: DocId, score: Score) {
        let seq = self.seq_column.first(doc).unwrap_or(0);
        if seq > self.snapshot_seq {
            return;
        }
        self.total += 1;
        for (column, counts) in self.facet_columns.iter().zip(self.facet_counts.iter_mut()) {
            let Some(column) = column else { continue };
            if let Some(ordinal) = column.ords().first(doc) {
                count_ordinal(counts, ordinal);
            }
        }
        let primary = match self.sort {
            SortOrder::Relevance => f64::from(score),
            SortOrder::Newest => created_seconds(self.created_column.first(doc)),
        };
        self.rank(doc, SortKey { primary, seq });
    }

    /// Without scores (newest first), tantivy hands over blocks of documents: their columns
    /// are read in batches.
    fn collect_block(&mut self, docs: &[DocId]) {
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
            column
                .ords()
                .first_vals(docs, &mut ordinals[..block_length]);
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
            let primary = if newest_first {
                created_seconds(self.created_buffer[index])
            } else {
                0.0
            };
            self.rank(*doc, SortKey { primary, seq });
        }
    }

    fn harvest(self) -> SegmentFruit {
        let segment_ord = self.segment_ord;
        let top = self
            .best
            .into_iter()
            .map(|Reverse(ranked)| (ranked.key, DocAddress::new(segment_ord, ranked.doc)))
            .collect();
        let mut facets = Vec::with_capacity(self.facet_counts.len());
        for (column, counts) in self.facet_columns.iter().zip(&self.facet_counts) {
            let mut values = Vec::new();
            if let Some(column) = column {
                let hit_ordinals: Vec<u64> = counts
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(ordinal, _)| ordinal as u64)
                    .collect();
                let mut next_count = hit_ordinals.iter().map(|ordinal| counts[*ordinal as usize]);
                let resolved =
                    column
                        .dictionary()
                        .sorted_ords_to_term_cb(&hit_ordinals, |term_bytes| {
                            let count = next_count.next().unwrap_or(0);
                            values.push((
                                String::from_utf8_lossy(term_bytes).into_owned(),
                                u64::from(count),
                            ));
                        });
                if !matches!(resolved, Ok(true)) {
                    tracing::warn!(segment_ord, "facet ordinals could not all be resolved");
                }
            }
            facets.push(values);
        }
        SegmentFruit {
            total: self.total,
            after_cursor: self.after_cursor,
            top,
            facets,
        }
    }
}
