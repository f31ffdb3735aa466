//! Derived rows, written by the committer in the same atomic batch as the report they come
//! from, so they never lag the documents and "changed since" is a range scan, not a join.
//!
//! | key | value |
//! |---|---|
//! | `S` + seq | [`ReportSummary`], binary: the cpanstats row of the report stored at that seq |
//! | `s` + dist 0x00 version 0x00 seq | empty: index of summaries by release |
//! | `r` + dist 0x00 version | [`ReleaseCounters`], binary: pass/fail/na/unknown by category, last change |
//! | `c` + last-change seq + dist 0x00 version | a copy of the `r` value (empty in stores written before it): releases ordered by their last change |
//! | `a` + author 0x00 dist 0x00 version | empty: releases of a PAUSE author |
//! | `t` + day (YYYYMMDD) 0x00 dimension 0x00 value | u64 BE: reports per day by grade, OS, perl |
//!
//! A release's `c` key moves (delete old, insert new) whenever its counters change, so
//! `/v3/release?since=` reads exactly the releases changed after a sequence number. The `c`
//! row carries the counters too: the key is rewritten with every change anyway, and a
//! `since` read then is one sequential scan instead of one random `r` lookup per release.
//!
//! The `S` and `r` values are compact binary records (a format byte, varints, length-prefixed
//! strings; see [`ReportSummary::encode`], [`ReleaseCounters::encode`]), not JSON: a summary
//! row is written for every report and a release row is rewritten with every report of that
//! release, and sled keeps (and, for rewritten rows, re-copies) every byte of them. Whatever
//! is implied by the key (the seq of a summary, the name of a release) or derivable from
//! another field (a summary's `date` from `created`, a path of the usual
//! `AUTHOR/dist-version.tar.gz` shape) is not stored twice. serde stays for API output.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::records::{ValueReader, ValueWriter};
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

const SUMMARY_FORMAT: u8 = 1;
const RELEASE_FORMAT: u8 = 1;

/// Distribution file extensions of a path stored in its short form (`AUTHOR/dist-version` +
/// one of these). Append only: the index is stored.
const PATH_EXTENSIONS: [&str; 7] = [
    ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz", ".tar", ".tbz",
];

/// `date` of a summary: `created` to the minute, or `created` itself when it does not parse.
fn summary_date(created: &str) -> String {
    crate::ingest::parse_timestamp(created)
        .map(|time| {
            let minute = time
                .to_offset(time::UtcOffset::UTC)
                .replace_second(0)
                .and_then(|time| time.replace_nanosecond(0))
                .unwrap_or(time);
            crate::ingest::format_timestamp(minute)
        })
        .unwrap_or_else(|| created.to_string())
}

/// The Unix time of `text` if `text` is exactly how [`crate::ingest::format_timestamp`] writes
/// it (UTC, whole seconds, `Z`), so that the time alone gives the text back.
fn canonical_timestamp(text: &str) -> Option<i64> {
    let time = crate::ingest::parse_timestamp(text)?;
    (crate::ingest::format_timestamp(time) == text).then(|| time.unix_timestamp())
}

fn format_unix_timestamp(seconds: i64) -> std::result::Result<String, String> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(crate::ingest::format_timestamp)
        .map_err(|_| format!("timestamp {seconds} out of range"))
}

fn write_timestamp_text(writer: &mut ValueWriter, text: &str) {
    match canonical_timestamp(text) {
        Some(seconds) => {
            writer.byte(1);
            writer.signed(seconds);
        }
        None => {
            writer.byte(0);
            writer.text(text);
        }
    }
}

fn read_timestamp_text(reader: &mut ValueReader<'_>) -> std::result::Result<String, String> {
    match reader.byte()? {
        0 => reader.text(),
        1 => format_unix_timestamp(reader.signed()?),
        other => Err(format!("unknown timestamp form {other}")),
    }
}

fn read_guid(reader: &mut ValueReader<'_>) -> std::result::Result<Uuid, String> {
    Ok(Uuid::from_bytes(
        reader.raw(16)?.try_into().expect("16 bytes"),
    ))
}

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
        let date = summary_date(&created);
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

    /// The `S` row value. The seq is the row's key and is not repeated.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = ValueWriter::with_format(SUMMARY_FORMAT, 128);
        writer.raw(self.guid.as_bytes());
        write_timestamp_text(&mut writer, &self.created);
        if self.date == summary_date(&self.created) {
            writer.byte(0);
        } else {
            writer.byte(1);
            writer.text(&self.date);
        }
        match self.grade_index() {
            Some(index) => writer.byte(index as u8),
            None => {
                writer.byte(0xff);
                writer.text(&self.grade);
            }
        }
        writer.text(&self.reporter);
        writer.text(&self.dist);
        writer.text(&self.version);
        match &self.author {
            Some(author) => {
                writer.byte(1);
                writer.text(author);
            }
            None => writer.byte(0),
        }
        match (&self.path, &self.author) {
            (None, _) => writer.byte(0),
            (Some(path), author) => {
                let short = author.as_deref().and_then(|author| {
                    let rest = path
                        .strip_prefix(author)?
                        .strip_prefix('/')?
                        .strip_prefix(self.dist.as_str())?
                        .strip_prefix('-')?
                        .strip_prefix(self.version.as_str())?;
                    PATH_EXTENSIONS
                        .iter()
                        .position(|extension| *extension == rest)
                });
                match short {
                    Some(extension) => writer.byte(2 + extension as u8),
                    None => {
                        writer.byte(1);
                        writer.text(path);
                    }
                }
            }
        }
        writer.text(&self.platform);
        writer.text(&self.perl);
        writer.text(&self.osname);
        writer.text(&self.osvers);
        writer.finish()
    }

    /// Reads an `S` row value written by [`ReportSummary::encode`]; `seq` is the row's key.
    pub fn decode(seq: u64, bytes: &[u8]) -> std::result::Result<ReportSummary, String> {
        let mut reader = ValueReader::with_format(bytes, SUMMARY_FORMAT, "summary")?;
        let guid = read_guid(&mut reader)?;
        let created = read_timestamp_text(&mut reader)?;
        let date = match reader.byte()? {
            0 => summary_date(&created),
            1 => reader.text()?,
            other => return Err(format!("unknown date form {other}")),
        };
        let grade = match reader.byte()? {
            0xff => reader.text()?,
            index => GRADES
                .get(usize::from(index))
                .ok_or_else(|| format!("unknown grade code {index}"))?
                .to_string(),
        };
        let reporter = reader.text()?;
        let dist = reader.text()?;
        let version = reader.text()?;
        let author = match reader.byte()? {
            0 => None,
            1 => Some(reader.text()?),
            other => return Err(format!("unknown author form {other}")),
        };
        let path = match reader.byte()? {
            0 => None,
            1 => Some(reader.text()?),
            code => {
                let extension = PATH_EXTENSIONS
                    .get(usize::from(code - 2))
                    .ok_or_else(|| format!("unknown path form {code}"))?;
                let author = author.as_deref().ok_or("short path without an author")?;
                Some(format!("{author}/{dist}-{version}{extension}"))
            }
        };
        let summary = ReportSummary {
            guid,
            seq,
            date,
            created,
            grade,
            reporter,
            dist,
            version,
            author,
            path,
            platform: reader.text()?,
            perl: reader.text()?,
            osname: reader.text()?,
            osvers: reader.text()?,
        };
        reader.end()?;
        Ok(summary)
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
    /// The `r` row value. The release's name is the row's key and is only repeated when the
    /// key cannot give it back (a name holding a 0x00 byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = ValueWriter::with_format(RELEASE_FORMAT, 64);
        let names_in_value = self.dist.contains('\0');
        let flags = u8::from(self.dev_dist)
            | u8::from(self.author.is_some()) << 1
            | u8::from(names_in_value) << 2;
        writer.byte(flags);
        if names_in_value {
            writer.text(&self.dist);
            writer.text(&self.version);
        }
        if let Some(author) = &self.author {
            writer.text(author);
        }
        for count in self.by_perl.iter().flatten().flatten() {
            writer.varint(*count);
        }
        writer.varint(self.last_seq);
        writer.raw(self.last_guid.as_bytes());
        write_timestamp_text(&mut writer, &self.last_date);
        writer.finish()
    }

    /// Reads an `r` row value written by [`ReleaseCounters::encode`]; `dist` and `version` are
    /// the names in the row's key.
    pub fn decode(
        dist: &str,
        version: &str,
        bytes: &[u8],
    ) -> std::result::Result<ReleaseCounters, String> {
        let mut reader = ValueReader::with_format(bytes, RELEASE_FORMAT, "release counters")?;
        let flags = reader.byte()?;
        if flags > 0b111 {
            return Err(format!("unknown release flags {flags:#x}"));
        }
        let (dist, version) = if flags & 0b100 != 0 {
            (reader.text()?, reader.text()?)
        } else {
            (dist.to_string(), version.to_string())
        };
        let author = if flags & 0b10 != 0 {
            Some(reader.text()?)
        } else {
            None
        };
        let mut by_perl = [[[0u64; 4]; 2]; 2];
        for count in by_perl.iter_mut().flatten().flatten() {
            *count = reader.varint()?;
        }
        let counters = ReleaseCounters {
            dist,
            version,
            author,
            dev_dist: flags & 1 != 0,
            by_perl,
            last_seq: reader.varint()?,
            last_guid: read_guid(&mut reader)?,
            last_date: read_timestamp_text(&mut reader)?,
        };
        reader.end()?;
        Ok(counters)
    }

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
        let summary_bytes = summary.encode();
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
        let counters = decode_release(&summary.dist, &summary.version, &bytes)?;
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
            let encoded = counters.encode();
            batch.insert(
                release_changed_key(counters.last_seq, &counters.dist, &counters.version),
                encoded.clone(),
            );
            batch.insert(key, encoded);
        }
        for (key, count) in self.stats {
            batch.insert(key, &count.to_be_bytes()[..]);
        }
        Ok(())
    }
}

/// Reads (and drops) the rows that committing a report of `summary`'s release reads or
/// rewrites, so that their pages are in memory when the committer gets to them. Best effort:
/// a failed read is left for the committer to meet.
///
/// The committer stages reports one after another on one thread. On a store larger than
/// memory each of a report's rows in random places (its release's counters and change marker,
/// its release and author index rows) can be a disk read, and one thread's reads in a row
/// cap ingest. Done on the ingest threads, many at once, before the report is queued, the
/// reads overlap.
pub(crate) fn warm_rows_for_report(tree: &sled::Db, summary: &ReportSummary) {
    let (dist, version) = (summary.dist.as_str(), summary.version.as_str());
    if let Ok(Some(bytes)) = tree.get(release_key(dist, version))
        && let Ok(counters) = decode_release(dist, version, &bytes)
    {
        let _ = tree.get(release_changed_key(counters.last_seq, dist, version));
    }
    // The report's own row goes after the release's others: where `u64::MAX` would go.
    let _ = tree.get(summary_release_key(dist, version, u64::MAX));
    if let Some(author) = &summary.author {
        let _ = tree.get(author_release_key(author, dist, version));
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
        decode_release(dist, version, &bytes).map(Some)
    }

    /// Checks the `c` index against the `r` rows: each release has exactly one `c` row, at
    /// its last-change seq, and a non-empty `c` value equals the `r` value. Problems are
    /// appended to `problems`.
    pub(crate) fn check_release_change_index(&self, problems: &mut Vec<String>) -> Result<()> {
        let db = self.db();
        let mut change_rows = 0usize;
        for item in scan_prefix(db, vec![PREFIX_RELEASE_CHANGED]) {
            let (key, value) = item.map_err(|e| Error::storage("scanning releases", e))?;
            change_rows += 1;
            let Some((dist, version)) = key.get(9..).and_then(split_release_name) else {
                problems.push(format!(
                    "release change row {:?} is malformed",
                    key.as_ref()
                ));
                continue;
            };
            let seq = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"));
            let Some(release_value) = db
                .get(release_key(&dist, &version))
                .map_err(|e| Error::storage("reading release", e))?
            else {
                problems.push(format!(
                    "release {dist}/{version}: a change row at seq {seq} but no counters"
                ));
                continue;
            };
            let counters = decode_release(&dist, &version, &release_value)?;
            if counters.last_seq != seq {
                problems.push(format!(
                    "release {dist}/{version}: change row at seq {seq} but last change at seq {}",
                    counters.last_seq
                ));
            }
            if !value.is_empty() && value != release_value {
                problems.push(format!(
                    "release {dist}/{version}: the change row's counters differ from the release row"
                ));
            }
        }
        let release_rows = scan_prefix(db, vec![PREFIX_RELEASE]).count();
        if change_rows != release_rows {
            problems.push(format!(
                "{change_rows} release change rows but {release_rows} release rows"
            ));
        }
        Ok(())
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
                    let (key, value) = item.map_err(|e| Error::storage("scanning releases", e))?;
                    let Some((dist, version)) = split_release_name(&key[9..]) else {
                        continue;
                    };
                    let counters = if value.is_empty() {
                        // Written before `c` rows carried the counters.
                        self.release(&dist, &version)?
                    } else {
                        Some(decode_release(&dist, &version, &value)?)
                    };
                    if let Some(counters) = counters
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
                    let (key, value) = item.map_err(|e| Error::storage("scanning releases", e))?;
                    let (dist, version) = split_release_name(&key[1..]).ok_or_else(|| {
                        Error::corruption(
                            format!("release key {:?}", key.as_ref()),
                            "no 0x00 separator",
                        )
                    })?;
                    let counters = decode_release(&dist, &version, &value)?;
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
        ReportSummary::decode(seq, &bytes)
            .map(Some)
            .map_err(|detail| Error::corruption(format!("summary at seq {seq}"), detail))
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
                    let summary = decode_summary_row(&key, &value)?;
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
            summaries.push(decode_summary_row(&key, &value)?);
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

fn decode_release(dist: &str, version: &str, bytes: &[u8]) -> Result<ReleaseCounters> {
    ReleaseCounters::decode(dist, version, bytes)
        .map_err(|detail| Error::corruption(format!("release {dist}/{version}"), detail))
}

/// A summary row read by a scan: the seq comes from its `S` key.
fn decode_summary_row(key: &[u8], value: &[u8]) -> Result<ReportSummary> {
    let seq = key
        .get(1..9)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::corruption(format!("summary key {key:?}"), "not S + seq"))?;
    ReportSummary::decode(seq, value)
        .map_err(|detail| Error::corruption(format!("summary at seq {seq}"), detail))
}

fn split_release_name(bytes: &[u8]) -> Option<(String, String)> {
    let separator = bytes.iter().position(|byte| *byte == 0)?;
    Some((
        String::from_utf8_lossy(&bytes[..separator]).to_string(),
        String::from_utf8_lossy(&bytes[separator + 1..]).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> ReportSummary {
        ReportSummary {
            guid: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            seq: 77,
            date: "2026-11-22T21:47:00Z".to_string(),
            created: "2026-11-22T21:47:15Z".to_string(),
            grade: "fail".to_string(),
            reporter: "\"Zo\u{eb} Tester\" <zoe@example.org>".to_string(),
            dist: "Acme-Foo".to_string(),
            version: "1.02_03".to_string(),
            author: Some("AUTHOR".to_string()),
            path: Some("AUTHOR/Acme-Foo-1.02_03.tar.gz".to_string()),
            platform: "x86_64-linux".to_string(),
            perl: "5.40.0".to_string(),
            osname: "linux".to_string(),
            osvers: "6.1.0".to_string(),
        }
    }

    /// Commits `rows` as one group the way the committer does.
    fn commit_group(store: &super::super::Store, rows: &[ReportSummary]) {
        let mut group = DerivedGroup::default();
        let mut batch = sled::Batch::default();
        for row in rows {
            group.add_report(store.db(), &mut batch, row).unwrap();
        }
        group.finish(&mut batch).unwrap();
        store.db().apply_batch(batch).unwrap();
    }

    /// Warming reads only: for a release not stored yet and for one stored, the store holds
    /// exactly what it held, and committing afterwards counts as before.
    #[test]
    fn warming_a_report_writes_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let store =
            super::super::Store::open(directory.path(), &super::super::StoreConfig::default())
                .unwrap();
        let contents = |store: &super::super::Store| -> Vec<(Vec<u8>, Vec<u8>)> {
            store
                .db()
                .iter()
                .map(|entry| {
                    let (key, value) = entry.unwrap();
                    (key.to_vec(), value.to_vec())
                })
                .collect()
        };
        let opened = contents(&store);
        let first = summary();
        store.warm_for_report(&first.guid, &first, true);
        assert_eq!(
            contents(&store),
            opened,
            "a warm read of a new release wrote"
        );
        commit_group(&store, std::slice::from_ref(&first));
        let committed = contents(&store);
        let mut second = summary();
        second.guid = Uuid::from_u128(2);
        second.seq = 78;
        store.warm_for_report(&second.guid, &second, true);
        assert_eq!(
            contents(&store),
            committed,
            "a warm read of a stored release wrote"
        );
        commit_group(&store, std::slice::from_ref(&second));
        let counters = store
            .release(&second.dist, &second.version)
            .unwrap()
            .unwrap();
        assert_eq!(counters.last_seq, 78);
        assert_eq!(counters.totals().iter().sum::<u64>(), 2);
    }

    #[test]
    fn since_reads_counters_from_the_change_index_and_check_catches_drift() {
        let directory = tempfile::tempdir().unwrap();
        let store =
            super::super::Store::open(directory.path(), &super::super::StoreConfig::default())
                .unwrap();
        let mut seq = 0;
        for group_size in [3usize, 1, 4] {
            let rows: Vec<ReportSummary> = (0..group_size)
                .map(|index| {
                    seq += 1;
                    let mut row = summary();
                    row.seq = seq;
                    row.version = format!("1.{}", (seq + index as u64) % 3);
                    row.path = None;
                    row
                })
                .collect();
            commit_group(&store, &rows);
        }
        let collect = |since_seq: u64| {
            let mut seen = Vec::new();
            store
                .visit_releases(&ReleaseSelection::All, since_seq, &mut |counters| {
                    seen.push(counters);
                    Ok(true)
                })
                .unwrap();
            seen
        };
        // The change index gives the same counters as the release rows, in change order.
        let changed = collect(2);
        assert_eq!(changed.len(), 3);
        assert!(
            changed
                .windows(2)
                .all(|pair| pair[0].last_seq < pair[1].last_seq)
        );
        for counters in &changed {
            let stored = store
                .release(&counters.dist, &counters.version)
                .unwrap()
                .unwrap();
            assert_eq!(&stored, counters);
        }
        let mut problems = Vec::new();
        store.check_release_change_index(&mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");

        // A change row written before rows carried counters (empty) still reads.
        let oldest = &changed[0];
        let oldest_key = release_changed_key(oldest.last_seq, &oldest.dist, &oldest.version);
        store.db().insert(&oldest_key, &[][..]).unwrap();
        assert_eq!(collect(2), changed);
        store.check_release_change_index(&mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");

        // Counters that drifted from the release row, and a stale duplicate, are reported.
        let mut drifted = oldest.clone();
        drifted.by_perl[0][0][0] += 1;
        store.db().insert(&oldest_key, drifted.encode()).unwrap();
        store
            .db()
            .insert(
                release_changed_key(oldest.last_seq - 1, &oldest.dist, &oldest.version),
                &[][..],
            )
            .unwrap();
        store.check_release_change_index(&mut problems).unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|problem| problem.contains("differ")));
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("but last change"))
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("4 release change rows but 3"))
        );
    }

    #[test]
    fn summaries_round_trip_in_every_form() {
        let mut cases = vec![summary()];
        let mut odd = summary();
        odd.created = "2026-11-22T22:47:15.25+01:00".to_string();
        odd.date = summary_date(&odd.created);
        odd.grade = "splendid".to_string();
        odd.author = None;
        odd.path = Some("SOMEONE/Acme-Foo-1.02_03.tar.gz".to_string());
        cases.push(odd);
        let mut unparsable = summary();
        unparsable.created = "yesterday".to_string();
        unparsable.date = "not derived".to_string();
        unparsable.path = None;
        cases.push(unparsable);
        let mut other_extension = summary();
        other_extension.path = Some("AUTHOR/Acme-Foo-1.02_03.zip".to_string());
        cases.push(other_extension);
        let mut unusual_path = summary();
        unusual_path.path = Some("AUTHOR/sub/Acme-Foo-1.02_03.tar.gz".to_string());
        cases.push(unusual_path);
        let mut empty = summary();
        for field in [
            &mut empty.reporter,
            &mut empty.dist,
            &mut empty.version,
            &mut empty.platform,
            &mut empty.perl,
            &mut empty.osname,
            &mut empty.osvers,
        ] {
            field.clear();
        }
        empty.created = String::new();
        empty.date = String::new();
        empty.author = Some(String::new());
        empty.path = Some("/-.tar.gz".to_string());
        cases.push(empty);
        for case in cases {
            let bytes = case.encode();
            assert_eq!(ReportSummary::decode(case.seq, &bytes).unwrap(), case);
            assert!(ReportSummary::decode(case.seq, &bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(ReportSummary::decode(case.seq, &longer).is_err());
        }
        assert!(
            summary().encode().len() < 120,
            "{}",
            summary().encode().len()
        );
        assert!(ReportSummary::decode(1, b"{\"guid\":1}").is_err());
    }

    #[test]
    fn release_counters_round_trip() {
        let mut counters = ReleaseCounters {
            dist: "Acme-Foo".to_string(),
            version: "1.02_03".to_string(),
            author: Some("AUTHOR".to_string()),
            dev_dist: true,
            by_perl: [
                [[1, 2, 3, 4], [5, 6, 7, 8]],
                [[9, 10, 11, 12], [13, 14, 15, u64::MAX]],
            ],
            last_seq: 1 << 40,
            last_guid: Uuid::from_u128(42),
            last_date: "2026-11-22T21:47:00Z".to_string(),
        };
        let bytes = counters.encode();
        assert_eq!(
            ReleaseCounters::decode("Acme-Foo", "1.02_03", &bytes).unwrap(),
            counters
        );
        counters.author = None;
        counters.dev_dist = false;
        counters.last_date = "odd".to_string();
        counters.dist = "with\0zero".to_string();
        counters.version = "v\0".to_string();
        let bytes = counters.encode();
        // The key splits such a name wrongly; the value carries it.
        assert_eq!(
            ReleaseCounters::decode("with", "zero\0v\0", &bytes).unwrap(),
            counters
        );
        assert!(ReleaseCounters::decode("a", "b", &bytes[..bytes.len() - 1]).is_err());
    }
}
