//! Running a search: one collector pass over a reader snapshot, then the page's hits: from
//! their stored [`HitPreview`] when the query highlights nothing, else read back from sled
//! with highlighted snippets.
//!
//! Snippets are cut from the same full text that was indexed (sled keeps it; the index does
//! not) with the index's tokenizer, so highlights fall exactly where the query matched: a
//! phrase is one highlight where its words appear in a row (`Foo::Bar`, `Segmentation fault`),
//! and its words elsewhere are not highlighted. tantivy's `SnippetGenerator` highlights every
//! occurrence of every term, which for Perl output marks each `Foo` and `Bar` separately.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use aho_corasick::AhoCorasick;
use rayon::prelude::*;

use tantivy::collector::Collector;
use tantivy::query::EnableScoring;
use tantivy::schema::{Field, Value};
use tantivy::{Searcher, TantivyDocument, Term};
use uuid::Uuid;

use super::collector::{FACET_FIELDS, SearchCollector};
use super::query::{Cursor, SearchRequest, SortKey, SortOrder};
use super::schema::{HitPreview, StoredDocument, leading_fragment, truncate_on_char_boundary};
use super::threads::search_pool;
use super::tokenizer::{TokenSpans, is_joiner_token, restart_offset_before, span_equals_token};
use super::{SearchIndex, index_error};
use crate::error::{Error, Result};
use crate::store::Store;

/// Values listed per facet; the rest is summed in [`FacetCounts::other`].
pub const FACET_VALUES_LIMIT: usize = 50;
/// Longest snippet, in bytes of report text.
pub const SNIPPET_MAX_BYTES: usize = 240;
/// Only this much of a report's text is scanned for the snippet (very long reports).
pub const SNIPPET_SCAN_BYTES: usize = 512 * 1024;

/// The answer to a search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResponse {
    /// Every report that matches, exactly (not only this page).
    pub total: u64,
    /// The order of `hits`.
    pub sort: SortOrder,
    /// This page.
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Counts over every matching report: `grade`, `osname`, `perl`, `dist`.
    pub facets: BTreeMap<&'static str, FacetCounts>,
    /// The log seq the answer reflects (reports after it are not included, also on later
    /// pages of the same cursor).
    pub indexed_seq: u64,
    /// Time spent in the search, milliseconds.
    pub took_ms: f64,
}

/// The counts of one facet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FacetCounts {
    /// The most frequent values, most frequent first (ties by value).
    pub values: Vec<FacetValue>,
    /// Matching reports whose value is not listed (beyond [`FACET_VALUES_LIMIT`]).
    pub other: u64,
}

/// One facet value and how many matching reports have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FacetValue {
    /// The value.
    pub value: String,
    /// Matching reports with it.
    pub count: u64,
}

/// One hit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchHit {
    /// The report id (`GET /v3/report/{id}`).
    pub id: String,
    /// Its log seq.
    pub seq: u64,
    /// `distribution.name`.
    pub dist: String,
    /// `distribution.version`.
    pub version: String,
    /// `distribution.author`.
    pub author: String,
    /// `result.grade`.
    pub grade: String,
    /// `environment.system.osname`.
    pub osname: String,
    /// `environment.system.osversion`.
    pub osversion: String,
    /// `environment.language.version`.
    pub perl: String,
    /// `environment.language.archname`.
    pub arch: String,
    /// `reporter.name` and `reporter.email`.
    pub reporter: HitReporter,
    /// `created`.
    pub created: String,
    /// The BM25 score (relevance order only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Where the report matches.
    pub snippet: HitSnippet,
}

/// Who sent a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HitReporter {
    /// `reporter.name`.
    pub name: String,
    /// `reporter.email`.
    pub email: String,
}

/// A fragment of the report text with the matches marked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HitSnippet {
    /// The fragment, as plain text.
    pub text: String,
    /// `[start, end)` of each match in `text`, in characters.
    pub highlights: Vec<[usize; 2]>,
    /// The fragment as HTML-escaped text with `<b>` around each match.
    pub html: String,
}

fn escape_html(text: &str, output: &mut String) {
    for character in text.chars() {
        match character {
            '&' => output.push_str("&amp;"),
            '<' => output.push_str("&lt;"),
            '>' => output.push_str("&gt;"),
            '"' => output.push_str("&quot;"),
            '\'' => output.push_str("&#x27;"),
            other => output.push(other),
        }
    }
}

impl HitSnippet {
    /// A snippet of `fragment` with byte ranges `highlighted` (sorted, not overlapping).
    fn from_fragment(fragment: &str, highlighted: &[Range<usize>]) -> HitSnippet {
        let mut html = String::with_capacity(fragment.len() + 16);
        let mut highlights = Vec::with_capacity(highlighted.len());
        let mut written = 0;
        for range in highlighted {
            if range.start < written || range.end > fragment.len() || range.start >= range.end {
                continue;
            }
            escape_html(&fragment[written..range.start], &mut html);
            html.push_str("<b>");
            escape_html(&fragment[range.clone()], &mut html);
            html.push_str("</b>");
            let start_chars = fragment[..range.start].chars().count();
            let length_chars = fragment[range.clone()].chars().count();
            highlights.push([start_chars, start_chars + length_chars]);
            written = range.end;
        }
        escape_html(&fragment[written..], &mut html);
        HitSnippet {
            text: fragment.to_string(),
            highlights,
            html,
        }
    }
}

/// Sorts ranges and merges the overlapping ones.
fn merge_overlapping(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|range| (range.start, range.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(last) = merged.last_mut()
            && range.start < last.end
        {
            last.end = last.end.max(range.end);
            continue;
        }
        merged.push(range);
    }
    merged
}

/// A term or phrase of the query, as the tokens it must match in a row.
struct HighlightSequence {
    /// The tokens, as indexes into [`SnippetMaker::vocabulary`].
    token_ids: Vec<u32>,
    /// Rarer sequences make better snippets: `1 / (1 + document frequency)` of its rarest word.
    weight: f32,
}

/// One place where a sequence matches the text.
#[derive(Debug, Clone)]
struct TextMatch {
    range: Range<usize>,
    sequence: usize,
}

/// Matches kept per sequence and report: enough to choose a good fragment, and the scan of a
/// long report stops once every sequence has them.
const MAX_MATCHES_PER_SEQUENCE: usize = 16;
/// Up to this many distinct query tokens, text tokens are compared one by one; beyond, hashed.
const LINEAR_VOCABULARY_LIMIT: usize = 12;
/// Bytes of text shown before the first match of a snippet.
const SNIPPET_CONTEXT_BYTES: usize = 48;

/// Cuts snippets around the places where the query's terms and phrases match, using the
/// index's tokenizer: a phrase is highlighted only where its words appear in a row, joiners
/// included (`Foo::Bar`, not the `Foo` of `Foo/Bar.pm`).
///
/// Most of a report's text holds no match, so it is not tokenized: [`SnippetMaker::first_words`]
/// finds where a sequence's first word occurs (a substring search in the ASCII-lowercased
/// text, see [`FirstWordPlaces`]), and
/// only the text from the last token boundary before each such place is tokenized, up to the
/// longest sequence's length of tokens. The matches are the same as tokenizing the whole text
/// (`candidate_scan_finds_what_a_full_scan_finds`).
struct SnippetMaker {
    sequences: Vec<HighlightSequence>,
    /// Every distinct token of every sequence; a token's id is its position here.
    vocabulary: Vec<String>,
    /// The same, hashed, for queries with many tokens.
    vocabulary_index: Option<HashMap<String, u32>>,
    longest: usize,
    /// Finds the first word of every sequence (lowercased) in ASCII-lowercased text. `None`
    /// when some sequence starts with a joiner or a non-ASCII word: then the whole text is
    /// tokenized.
    first_words: Option<AhoCorasick>,
}

/// Whether `text` holds a character whose lower case is ASCII although it is not, so it may
/// hold a token that an ASCII case-insensitive search does not find: the Kelvin sign `K` (`k`)
/// and `İ` (`i̇`), the only two in Unicode. Searched as UTF-8 bytes: decoding the text to look
/// for them cost more than the whole prefiltered match scan.
fn has_non_ascii_with_ascii_lowercase(text: &str) -> bool {
    const KELVIN_SIGN: &[u8] = "\u{212A}".as_bytes();
    const CAPITAL_I_WITH_DOT: &[u8] = "\u{0130}".as_bytes();
    let bytes = text.as_bytes();
    memchr::memchr2_iter(KELVIN_SIGN[0], CAPITAL_I_WITH_DOT[0], bytes).any(|index| {
        bytes[index..].starts_with(KELVIN_SIGN) || bytes[index..].starts_with(CAPITAL_I_WITH_DOT)
    })
}

thread_local! {
    /// The ASCII-lowercased copy of the text being scanned for snippets, reused by the next
    /// hit on this thread.
    static LOWERCASED_TEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A lowercased copy longer than this is not kept for the next hit.
const KEPT_LOWERCASED_TEXT_BYTES: usize = 1 << 20;

/// The offsets where one of the first words occurs, in increasing order, found in the ASCII
/// lowercase copy of the text (same offsets: ASCII lowercasing keeps every byte in place).
///
/// The search is case-sensitive on that copy rather than `ascii_case_insensitive` on the
/// text: aho-corasick has no SIMD searcher for case-insensitive patterns, and its overlapping
/// search over every byte was the largest part of cutting a snippet. Leftmost-first search
/// restarted one byte after each place finds every offset where some word starts, which is
/// all the scan needs (which word matched there does not matter).
struct FirstWordPlaces<'a> {
    words: &'a AhoCorasick,
    lowercased: &'a [u8],
}

impl<'a> FirstWordPlaces<'a> {
    fn new(words: &'a AhoCorasick, lowercased: &'a [u8]) -> FirstWordPlaces<'a> {
        FirstWordPlaces { words, lowercased }
    }

    /// The first place at or after `offset`.
    fn next_at_or_after(&self, offset: usize) -> Option<usize> {
        if offset >= self.lowercased.len() {
            return None;
        }
        let input = aho_corasick::Input::new(self.lowercased).range(offset..);
        self.words.find(input).map(|found| found.start())
    }
}

/// Tokenizes all of `text` into `scan`, until it has all the matches it keeps.
fn scan_whole_text(text: &str, scan: &mut MatchScan) {
    for span in TokenSpans::new(text) {
        if scan.read(text, span) {
            return;
        }
    }
}

/// Collects matches from a stream of token spans, as [`SnippetMaker::find_matches`] describes.
struct MatchScan<'a> {
    maker: &'a SnippetMaker,
    matches: Vec<TextMatch>,
    matches_per_sequence: Vec<usize>,
    sequences_done: usize,
    /// The last tokens read, as (vocabulary id, start offset); a token outside the vocabulary
    /// ends every partial match, so it clears the window.
    window: VecDeque<(u32, usize)>,
}

impl<'a> MatchScan<'a> {
    fn new(maker: &'a SnippetMaker) -> MatchScan<'a> {
        MatchScan {
            maker,
            matches: Vec::new(),
            matches_per_sequence: vec![0; maker.sequences.len()],
            sequences_done: 0,
            window: VecDeque::with_capacity(maker.longest + 1),
        }
    }

    /// Reads the token at `span`; true once every sequence has all the matches it keeps.
    fn read(&mut self, text: &str, span: (usize, usize)) -> bool {
        let maker = self.maker;
        let Some(token_id) = maker.token_id(text, span) else {
            self.window.clear();
            return false;
        };
        self.window.push_back((token_id, span.0));
        if self.window.len() > maker.longest {
            self.window.pop_front();
        }
        for (sequence_index, sequence) in maker.sequences.iter().enumerate() {
            let length = sequence.token_ids.len();
            if self.window.len() < length
                || self.matches_per_sequence[sequence_index] >= MAX_MATCHES_PER_SEQUENCE
            {
                continue;
            }
            let first = self.window.len() - length;
            let matched = self
                .window
                .iter()
                .skip(first)
                .zip(&sequence.token_ids)
                .all(|((id, _), wanted)| id == wanted);
            if !matched {
                continue;
            }
            self.matches.push(TextMatch {
                range: self.window[first].1..span.1,
                sequence: sequence_index,
            });
            self.matches_per_sequence[sequence_index] += 1;
            if self.matches_per_sequence[sequence_index] == MAX_MATCHES_PER_SEQUENCE {
                self.sequences_done += 1;
            }
        }
        self.sequences_done == maker.sequences.len()
    }

    fn finish(mut self) -> Vec<TextMatch> {
        self.matches
            .sort_by_key(|text_match| (text_match.range.start, text_match.range.end));
        self.matches
    }
}

impl SnippetMaker {
    fn new(
        searcher: &Searcher,
        text_field: Field,
        sequences: Vec<Vec<String>>,
    ) -> Result<SnippetMaker> {
        let mut weighted = Vec::with_capacity(sequences.len());
        'sequences: for tokens in sequences {
            let mut weight: f32 = 0.0;
            for token in tokens.iter().filter(|token| !is_joiner_token(token)) {
                let document_frequency = searcher
                    .doc_freq(&Term::from_field_text(text_field, token))
                    .map_err(index_error("reading term frequencies"))?;
                if document_frequency == 0 {
                    // Matches no report: nothing to highlight.
                    continue 'sequences;
                }
                weight = weight.max(1.0 / (1.0 + document_frequency as f32));
            }
            weighted.push((tokens, weight));
        }
        Ok(SnippetMaker::from_weighted_sequences(weighted))
    }

    /// The maker for `sequences` of tokens (as the tokenizer emits them) with their weights.
    fn from_weighted_sequences(weighted: Vec<(Vec<String>, f32)>) -> SnippetMaker {
        let mut vocabulary: Vec<String> = Vec::new();
        let sequences = weighted
            .into_iter()
            .map(|(tokens, weight)| {
                let token_ids = tokens
                    .into_iter()
                    .map(|token| {
                        let position = vocabulary.iter().position(|known| *known == token);
                        position.unwrap_or_else(|| {
                            vocabulary.push(token);
                            vocabulary.len() - 1
                        }) as u32
                    })
                    .collect();
                HighlightSequence { token_ids, weight }
            })
            .collect::<Vec<HighlightSequence>>();
        let longest = sequences
            .iter()
            .map(|sequence| sequence.token_ids.len())
            .max()
            .unwrap_or(0);
        let vocabulary_index = (vocabulary.len() > LINEAR_VOCABULARY_LIMIT).then(|| {
            vocabulary
                .iter()
                .enumerate()
                .map(|(id, token)| (token.clone(), id as u32))
                .collect()
        });
        let first_words: Option<Vec<String>> = sequences
            .iter()
            .map(|sequence| {
                let first = vocabulary.get(*sequence.token_ids.first()? as usize)?;
                (first.is_ascii() && !is_joiner_token(first)).then(|| first.to_ascii_lowercase())
            })
            .collect();
        let first_words = first_words
            .filter(|words| !words.is_empty())
            .and_then(|words| {
                AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(words)
                .inspect_err(|error| {
                    tracing::warn!(%error, "snippet prefilter not built, tokenizing whole texts");
                })
                .ok()
            });
        SnippetMaker {
            sequences,
            vocabulary,
            vocabulary_index,
            longest,
            first_words,
        }
    }

    /// Whether no text can have a match: the query has no words, or none of its words is in
    /// any report. Every snippet is then the [`leading_fragment`] of its text.
    fn highlights_nothing(&self) -> bool {
        self.sequences.is_empty()
    }

    /// The vocabulary id of the token at `span`, if it is one of the query's tokens. The
    /// vocabulary is a handful of tokens: comparing them beats hashing every token of the text.
    fn token_id(&self, text: &str, span: (usize, usize)) -> Option<u32> {
        if let Some(index) = &self.vocabulary_index {
            let token: String = text[span.0..span.1]
                .chars()
                .flat_map(char::to_lowercase)
                .collect();
            return index.get(&token).copied();
        }
        self.vocabulary
            .iter()
            .position(|token| span_equals_token(text, span, token))
            .map(|position| position as u32)
    }

    /// Where the query's sequences match `text`, in text order: at most
    /// [`MAX_MATCHES_PER_SEQUENCE`] per sequence, the first ones.
    fn find_matches(&self, text: &str) -> Vec<TextMatch> {
        if self.sequences.is_empty() {
            return Vec::new();
        }
        let mut scan = MatchScan::new(self);
        match &self.first_words {
            Some(first_words) if !has_non_ascii_with_ascii_lowercase(text) => {
                self.scan_near_first_words(text, first_words, &mut scan);
            }
            _ => scan_whole_text(text, &mut scan),
        }
        scan.finish()
    }

    /// Tokenizes only around the places where a sequence's first word occurs: from the last
    /// restart offset before each, until `longest` tokens starting at or after it were read.
    /// Every match starts with a token at such a place, so it is found; the scan is continuous
    /// from a restart offset, so the tokens read are those of a whole-text scan.
    fn scan_near_first_words(&self, text: &str, first_words: &AhoCorasick, scan: &mut MatchScan) {
        LOWERCASED_TEXT.with(|buffer| {
            let mut lowercased = buffer.borrow_mut();
            lowercased.clear();
            lowercased.extend_from_slice(text.as_bytes());
            lowercased.make_ascii_lowercase();
            self.scan_near_places(text, &FirstWordPlaces::new(first_words, &lowercased), scan);
            if lowercased.capacity() > KEPT_LOWERCASED_TEXT_BYTES {
                *lowercased = Vec::new();
            }
        });
    }

    fn scan_near_places(&self, text: &str, places: &FirstWordPlaces, scan: &mut MatchScan) {
        let mut spans = TokenSpans::new(text);
        let mut upcoming_place = places.next_at_or_after(0);
        // Tokens still to read for the places passed so far; 0 means "go to the next place".
        let mut tokens_left = 0usize;
        loop {
            if tokens_left == 0 {
                let Some(place) = upcoming_place else {
                    return;
                };
                let restart = restart_offset_before(text, place);
                if restart > spans.position() {
                    spans = TokenSpans::starting_at(text, restart);
                    scan.window.clear();
                }
            }
            let Some(span) = spans.next() else {
                return;
            };
            if upcoming_place.is_some_and(|place| place <= span.0) {
                // Places inside tokens already being read need no search of their own.
                upcoming_place = places.next_at_or_after(span.0 + 1);
                tokens_left = self.longest;
            }
            if scan.read(text, span) {
                return;
            }
            tokens_left = tokens_left.saturating_sub(1);
        }
    }

    /// The fragment that shows the most (and the rarest) of the query's sequences.
    fn snippet(&self, text: &str) -> HitSnippet {
        let scanned = truncate_on_char_boundary(text, SNIPPET_SCAN_BYTES);
        let matches = self.find_matches(scanned);
        let Some(first_match) = matches.first() else {
            return HitSnippet::from_fragment(leading_fragment(text), &[]);
        };
        let budget = SNIPPET_MAX_BYTES - SNIPPET_CONTEXT_BYTES;
        let mut best_anchor = first_match.range.start;
        let mut best_score = f32::MIN;
        let mut seen = vec![false; self.sequences.len()];
        for (anchor_index, anchor) in matches.iter().enumerate() {
            seen.iter_mut().for_each(|flag| *flag = false);
            let mut score = 0.0;
            for candidate in &matches[anchor_index..] {
                if candidate.range.end > anchor.range.start + budget {
                    break;
                }
                let weight = self.sequences[candidate.sequence].weight;
                // A new sequence counts fully, a repeat a little.
                score += if seen[candidate.sequence] {
                    weight * 0.1
                } else {
                    weight
                };
                seen[candidate.sequence] = true;
            }
            if score > best_score {
                best_score = score;
                best_anchor = anchor.range.start;
            }
        }
        // Start a little before the anchor, at the first word that begins in the context.
        let mut start = best_anchor.saturating_sub(SNIPPET_CONTEXT_BYTES);
        while !scanned.is_char_boundary(start) {
            start += 1;
        }
        if let Some(space) = scanned[start..best_anchor].find(char::is_whitespace) {
            start += space + 1;
            while !scanned.is_char_boundary(start) {
                start += 1;
            }
        }
        let fragment = truncate_on_char_boundary(&scanned[start..], SNIPPET_MAX_BYTES);
        let end = start + fragment.len();
        let highlighted: Vec<Range<usize>> = matches
            .iter()
            .filter(|text_match| text_match.range.start >= start && text_match.range.end <= end)
            .map(|text_match| text_match.range.start - start..text_match.range.end - start)
            .collect();
        HitSnippet::from_fragment(fragment, &merge_overlapping(highlighted))
    }
}

/// Pages at least this long are read back from sled on several threads.
const PARALLEL_HITS_MINIMUM: usize = 8;

/// Makes the page's hits: from their stored preview when the snippets highlight nothing, else
/// read back from sled with their snippets cut.
struct HitMaker<'a> {
    searcher: &'a Searcher,
    store: &'a Store,
    id_field: Field,
    preview_field: Field,
    snippets: &'a SnippetMaker,
    with_score: bool,
}

impl HitMaker<'_> {
    /// The hits of `page`, in order. Reading, decompressing and parsing a report and cutting
    /// its snippet takes tens of microseconds; a long page is split over the cores.
    ///
    /// Hits made from their previews (a microsecond or two each) are made on this thread: the
    /// hand-off to another would cost more than it saves.
    fn make_all(&self, page: &[(SortKey, tantivy::DocAddress)]) -> Result<Vec<SearchHit>> {
        let parallel = page.len() >= PARALLEL_HITS_MINIMUM && !self.snippets.highlights_nothing();
        let Some(pool) = search_pool().filter(|_| parallel) else {
            return self.make_sequentially(page);
        };
        let made: Vec<Result<Option<SearchHit>>> = pool.install(|| {
            page.par_iter()
                .map(|(key, address)| self.make(key, *address))
                .collect()
        });
        let mut hits = Vec::with_capacity(page.len());
        for hit in made {
            hits.extend(hit?);
        }
        Ok(hits)
    }

    fn make_sequentially(&self, page: &[(SortKey, tantivy::DocAddress)]) -> Result<Vec<SearchHit>> {
        let mut hits = Vec::with_capacity(page.len());
        for (key, address) in page {
            if let Some(hit) = self.make(key, *address)? {
                hits.push(hit);
            }
        }
        Ok(hits)
    }

    /// One hit; `None` (logged) when the report cannot be read back.
    fn make(&self, key: &SortKey, address: tantivy::DocAddress) -> Result<Option<SearchHit>> {
        let stored: TantivyDocument = self
            .searcher
            .doc(address)
            .map_err(index_error("reading a hit"))?;
        let Some(id_text) = stored
            .get_first(self.id_field)
            .and_then(|value| value.as_str())
        else {
            return Ok(None);
        };
        let Ok(id) = Uuid::parse_str(id_text) else {
            tracing::warn!(id = %id_text, "indexed report id is not a uuid");
            return Ok(None);
        };
        if self.snippets.highlights_nothing() {
            let preview = stored
                .get_first(self.preview_field)
                .and_then(|value| value.as_bytes())
                .and_then(HitPreview::decode);
            // No preview (too long to store): the report is read back below.
            if let Some(preview) = preview {
                let snippet = HitSnippet::from_fragment(preview.leading_text, &[]);
                return Ok(Some(self.hit(&id, key, &preview, snippet)));
            }
        }
        let report = match self.store.report(&id) {
            Ok(Some(report)) => report,
            Ok(None) => {
                tracing::warn!(%id, "indexed report is missing from the store");
                return Ok(None);
            }
            Err(error @ Error::DataCorruption { .. }) => {
                tracing::error!(%id, %error, "indexed report does not decode, left out of the hits");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let Ok(document) = StoredDocument::parse(&report.document) else {
            tracing::error!(%id, "stored document does not parse, left out of the hits");
            return Ok(None);
        };
        let report_fields = document.fields(report.record.received_at_ms);
        let text = document.full_text();
        let snippet = self.snippets.snippet(&text);
        Ok(Some(self.hit(
            &id,
            key,
            &HitPreview::of(&report_fields, &text),
            snippet,
        )))
    }

    /// The hit of report `id` ranked at `key`, showing `shown`. Both ways of making a hit end
    /// here, so a hit from the stored preview equals one read back from sled.
    fn hit(&self, id: &Uuid, key: &SortKey, shown: &HitPreview, snippet: HitSnippet) -> SearchHit {
        SearchHit {
            id: id.hyphenated().to_string(),
            seq: key.seq,
            dist: shown.dist.to_string(),
            version: shown.version.to_string(),
            author: shown.author.to_string(),
            grade: shown.grade.to_string(),
            osname: shown.osname.to_string(),
            osversion: shown.osversion.to_string(),
            perl: shown.perl.to_string(),
            arch: shown.arch.to_string(),
            reporter: HitReporter {
                name: shown.reporter_name.to_string(),
                email: shown.reporter_email.to_string(),
            },
            created: shown.created.to_string(),
            score: self.with_score.then_some(key.primary as f32),
            snippet,
        }
    }
}

/// The most frequent [`FACET_VALUES_LIMIT`] values (ties by value), and the sum of the rest.
/// Only the values shown are copied into strings.
fn top_facet_values<S: AsRef<str>>(counts: Vec<(S, u64)>) -> FacetCounts {
    let mut values: Vec<(S, u64)> = counts.into_iter().filter(|(_, count)| *count > 0).collect();
    let order = |left: &(S, u64), right: &(S, u64)| {
        right
            .1
            .cmp(&left.1)
            .then_with(|| left.0.as_ref().cmp(right.0.as_ref()))
    };
    let mut other = 0;
    if values.len() > FACET_VALUES_LIMIT {
        values.select_nth_unstable_by(FACET_VALUES_LIMIT, order);
        other = values[FACET_VALUES_LIMIT..]
            .iter()
            .map(|(_, count)| count)
            .sum();
        values.truncate(FACET_VALUES_LIMIT);
    }
    values.sort_by(order);
    FacetCounts {
        values: values
            .into_iter()
            .map(|(value, count)| FacetValue {
                value: value.as_ref().to_string(),
                count,
            })
            .collect(),
        other,
    }
}

impl SearchIndex {
    /// Answers `request` from the current snapshot (or the cursor's), reading hits from
    /// `store`. Blocking: run it off the async runtime.
    pub fn search(&self, store: &Store, request: &SearchRequest) -> Result<SearchResponse> {
        let started = Instant::now();
        let fields = self.fields();
        let snapshot_seq = request
            .cursor
            .as_ref()
            .map_or_else(|| self.indexed_seq(), |cursor| cursor.snapshot_seq);
        // The seq is read before the searcher: the snapshot may hold more, never less.
        let searcher = self.searcher();
        let query = request.to_query(&fields);
        let interner = &self.shared.facet_interner;
        let facet_tables = interner
            .tables_for(&searcher)
            .map_err(index_error("reading the facet dictionaries"))?;
        let fixed_facet_values: Vec<Option<&str>> = FACET_FIELDS
            .iter()
            .map(|field_name| request.single_facet_value(field_name))
            .collect();
        let collector = SearchCollector {
            sort: request.sort,
            keep: request.offset + request.limit,
            after: request.cursor.as_ref().map(|cursor| cursor.after),
            snapshot_seq,
            facet_tables,
            counted_facets: std::array::from_fn(|field_index| {
                fixed_facet_values[field_index].is_none()
            }),
        };
        let collect = || {
            // Made here: `EnableScoring` is not `Sync`, so it cannot be shared with the join.
            let scoring = if collector.requires_scoring() {
                EnableScoring::enabled_from_searcher(&searcher)
            } else {
                EnableScoring::disabled_from_searcher(&searcher)
            };
            let weight = query.weight(scoring).map_err(index_error("searching"))?;
            collector
                .collect_in_pieces(&searcher, weight.as_ref(), search_pool().map(Arc::as_ref))
                .map_err(index_error("searching"))
        };
        // The snippet maker needs only the query (its words' frequencies and an automaton,
        // tens of microseconds): a thread that runs out of segments builds it meanwhile.
        let make_snippets =
            || SnippetMaker::new(&searcher, fields.text, request.highlight_sequences());
        let (fruit, snippets) = match search_pool() {
            Some(pool) => pool.install(|| rayon::join(collect, make_snippets)),
            None => (collect(), make_snippets()),
        };
        let (fruit, snippets) = (fruit?, snippets?);
        let page: Vec<(SortKey, tantivy::DocAddress)> =
            fruit.top.into_iter().skip(request.offset).collect();
        let hit_maker = HitMaker {
            searcher: &searcher,
            store,
            id_field: fields.id,
            preview_field: fields.preview,
            snippets: &snippets,
            with_score: request.sort == SortOrder::Relevance,
        };
        let hits = hit_maker.make_all(&page)?;
        let shown = (request.offset + page.len()) as u64;
        let next_cursor = match page.last() {
            Some((last_key, _)) if fruit.after_cursor > shown => Some(
                Cursor {
                    after: *last_key,
                    snapshot_seq,
                    returned: request.cursor.as_ref().map_or(0, |cursor| cursor.returned) + shown,
                }
                .encode(&request.fingerprint()),
            ),
            _ => None,
        };
        let mut facets = BTreeMap::new();
        let mut counted = fruit.facets.into_iter();
        for (field_index, field_name) in FACET_FIELDS.into_iter().enumerate() {
            let counts = counted.next().unwrap_or_default();
            if let Some(value) = fixed_facet_values[field_index] {
                facets.insert(field_name, top_facet_values(vec![(value, fruit.total)]));
                continue;
            }
            let top = interner.with_values(field_index, |values| {
                top_facet_values(
                    counts
                        .into_iter()
                        .map(|(id, count)| (values.value(id), count))
                        .collect(),
                )
            });
            facets.insert(field_name, top);
        }
        let took = started.elapsed();
        metrics::histogram!("reportstore_search_seconds").record(took.as_secs_f64());
        Ok(SearchResponse {
            total: fruit.total,
            sort: request.sort,
            hits,
            next_cursor,
            facets,
            indexed_seq: snapshot_seq,
            took_ms: took.as_secs_f64() * 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_highlights_are_merged() {
        assert_eq!(
            merge_overlapping(vec![12..15, 7..15, 20..23, 7..10]),
            vec![7..15, 20..23]
        );
        let snippet = HitSnippet::from_fragment("locate Foo::Bar in @INC", &[7..15, 20..23]);
        assert_eq!(snippet.html, "locate <b>Foo::Bar</b> in @<b>INC</b>");
        assert_eq!(snippet.highlights, vec![[7, 15], [20, 23]]);
    }

    #[test]
    fn phrases_match_words_in_a_row_only() {
        let tokens = |words: &[&str]| words.iter().map(|word| word.to_string()).collect();
        let maker = SnippetMaker::from_weighted_sequences(vec![
            (tokens(&["foo", "::", "bar"]), 1.0),
            (tokens(&["inc"]), 0.5),
        ]);
        assert!(maker.first_words.is_some());
        let text = "Can't locate Foo/Bar.pm in @INC (you may need to install the Foo::Bar module)";
        let snippet = maker.snippet(text);
        let marked: Vec<String> = snippet
            .highlights
            .iter()
            .map(|[start, end]| {
                snippet
                    .text
                    .chars()
                    .skip(*start)
                    .take(end - start)
                    .collect()
            })
            .collect();
        assert_eq!(marked, ["INC", "Foo::Bar"]);
        let far = format!("{}\nFoo::Bar here", "filler words ".repeat(100));
        let snippet = maker.snippet(&far);
        assert!(
            snippet.text.ends_with("Foo::Bar here") && snippet.text.len() > 40,
            "{:?}",
            snippet.text
        );
        assert!(
            snippet.text.starts_with("filler") || snippet.text.starts_with("words"),
            "{:?}",
            snippet.text
        );
        assert!(snippet.html.contains("<b>Foo::Bar</b> here"));
    }

    fn full_scan_matches(maker: &SnippetMaker, text: &str) -> Vec<(Range<usize>, usize)> {
        let mut scan = MatchScan::new(maker);
        scan_whole_text(text, &mut scan);
        let matches = scan.finish();
        matches.into_iter().map(|m| (m.range, m.sequence)).collect()
    }

    #[test]
    fn candidate_scan_finds_what_a_full_scan_finds() {
        use crate::generator::ReportGenerator;
        use crate::index::tokenizer::token_texts;

        let mut texts: Vec<String> = Vec::new();
        let mut generator = ReportGenerator::new(17);
        for _ in 0..60 {
            texts.push(generator.next_report().textreport);
        }
        texts.push("PERL_DL_NONLAZY=1 \"/usr/bin/perl\" \"-MExtUtils::Command::MM\" \"-MTest::Harness\" -e 1".to_string());
        texts.push(format!(
            "{}Foo::Bar {}-Foo::Bar ..Foo::Bar",
            "x".repeat(150),
            "y".repeat(120)
        ));
        texts.push(
            "caf\u{e9}Foo::Bar \u{212A}ey Key KEY \u{e9}l\u{e8}ve Foo::Bar::Baz FOO::bar"
                .to_string(),
        );
        texts.push(
            "Foo:::Bar Foo::::Bar Foo :: Bar foo::bar\nFoo\n::Bar t/02-basic.t ok".to_string(),
        );

        let mut compared = 0;
        let mut with_matches = 0;
        for (text_index, text) in texts.iter().enumerate() {
            let tokens = token_texts(text);
            if tokens.is_empty() {
                continue;
            }
            // Queries made of the text's own tokens: single words, runs of two to four tokens
            // (joiners included), a run starting with a joiner, and a word absent from the text.
            let pick = |salt: usize| (text_index * 7919 + salt * 104_729) % tokens.len();
            let mut queries: Vec<Vec<Vec<String>>> = Vec::new();
            for salt in 0..6 {
                let start = pick(salt);
                let length = 1 + salt % 4;
                let run: Vec<String> = tokens[start..(start + length).min(tokens.len())].to_vec();
                queries.push(vec![run.clone()]);
                queries.push(vec![run, vec![tokens[pick(salt + 11)].clone()]]);
            }
            queries.push(vec![vec!["::".to_string(), "bar".to_string()]]);
            queries.push(vec![vec!["key".to_string()]]);
            queries.push(vec![vec![
                "foo".to_string(),
                "::".to_string(),
                "bar".to_string(),
            ]]);
            queries.push(vec![vec!["zzyzx".to_string()], vec!["the".to_string()]]);
            for query in queries {
                let maker = SnippetMaker::from_weighted_sequences(
                    query.iter().map(|tokens| (tokens.clone(), 1.0)).collect(),
                );
                let candidate: Vec<(Range<usize>, usize)> = maker
                    .find_matches(text)
                    .into_iter()
                    .map(|m| (m.range, m.sequence))
                    .collect();
                let full = full_scan_matches(&maker, text);
                assert_eq!(candidate, full, "query {query:?} on text {text_index}");
                compared += 1;
                with_matches += usize::from(!full.is_empty());
            }
        }
        assert!(
            compared > 500 && with_matches > 300,
            "{compared} compared, {with_matches} with matches"
        );
    }

    #[test]
    fn snippets_count_characters_and_escape_html() {
        let snippet = HitSnippet::from_fragment("élève <fail>", &[Range { start: 9, end: 13 }]);
        assert_eq!(snippet.highlights, vec![[7, 11]]);
        assert_eq!(snippet.html, "élève &lt;<b>fail</b>&gt;");
    }

    #[test]
    fn facet_values_are_ordered_and_capped() {
        let mut counts: Vec<(String, u64)> =
            (0..60).map(|index| (format!("v{index:02}"), 1)).collect();
        counts.push(("top".to_string(), 5));
        let facet = top_facet_values(counts);
        assert_eq!(
            facet.values[0],
            FacetValue {
                value: "top".to_string(),
                count: 5
            }
        );
        assert_eq!(facet.values[1].value, "v00");
        assert_eq!(facet.values.len(), FACET_VALUES_LIMIT);
        assert_eq!(facet.other, 11);
    }
}
