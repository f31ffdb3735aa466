//! The index schema and how a stored v3 document becomes an index document.
//!
//! The index holds no copy of a report: the full text is indexed (with positions, for phrases)
//! but not stored, and the exact-value fields are fast columns for filters, facets and sorting.
//! Stored are the report id and a [`HitPreview`] (what a hit shows: its display fields and the
//! start of its text, a few hundred bytes), so that a page with nothing to highlight is
//! answered from the index alone; a hit that highlights words is read back from sled.
//!
//! | field | kind | from the v3 document |
//! |---|---|---|
//! | `id` | raw string, indexed and stored | `id` (lower-case) |
//! | `seq` | u64 fast | the report's log sequence number |
//! | `text` | [`PERL_OUTPUT_TOKENIZER`], positions | every `result.output` section |
//! | `dist`, `version`, `author` | raw string, indexed and fast | `distribution.{name,version,author}` |
//! | `grade` | raw string, indexed and fast | `result.grade` (lower-case) |
//! | `osname`, `osversion` | raw string, indexed and fast | `environment.system.*` |
//! | `perl` | raw string, indexed and fast | `environment.language.version` |
//! | `perl_series` | raw string, indexed | `5.38` of `5.38.0` (so `perl=5.38` selects a series) |
//! | `arch` | raw string, indexed and fast | `environment.language.archname` |
//! | `reporter` | raw string, indexed and fast, two values | `reporter.email` and `reporter.name` |
//! | `created` | date fast, seconds | `created`, else the receive time |
//! | `preview` | bytes, stored only | [`HitPreview::encode`] of the fields above and the leading text |
//!
//! [`SCHEMA_VERSION`] goes into every commit payload; an index written with another version is
//! rebuilt.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use tantivy::schema::{
    BytesOptions, DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, STORED,
    Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, TantivyDocument};
use uuid::Uuid;

use super::search::SNIPPET_MAX_BYTES;
use super::tokenizer::PERL_OUTPUT_TOKENIZER;

/// Version of the schema, the document mapping and the tokenizer. Bump it when any of them
/// changes: indexes with another version are rebuilt from the store. 2: `-MFoo` switches.
/// 3: the stored hit preview.
pub const SCHEMA_VERSION: u32 = 3;

/// Text beyond this many bytes of a report's output is not indexed (real reports exceed 10 MB;
/// the first megabytes carry the diagnostics).
pub const MAX_INDEXED_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Exact values longer than this are cut (on a character boundary) before indexing.
const MAX_EXACT_VALUE_BYTES: usize = 512;

/// The fields of the index schema.
#[derive(Debug, Clone, Copy)]
pub struct IndexFields {
    /// The report id, lower-case hyphenated.
    pub id: Field,
    /// The report's log sequence number.
    pub seq: Field,
    /// The full output text.
    pub text: Field,
    /// `distribution.name`.
    pub dist: Field,
    /// `distribution.version`.
    pub version: Field,
    /// `distribution.author`.
    pub author: Field,
    /// `result.grade`.
    pub grade: Field,
    /// `environment.system.osname`.
    pub osname: Field,
    /// `environment.system.osversion`.
    pub osversion: Field,
    /// `environment.language.version`.
    pub perl: Field,
    /// The `major.minor` series of the perl version.
    pub perl_series: Field,
    /// `environment.language.archname`.
    pub arch: Field,
    /// `reporter.email` and `reporter.name`.
    pub reporter: Field,
    /// `created`.
    pub created: Field,
    /// The stored [`HitPreview`].
    pub preview: Field,
}

fn exact_options(fast: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let options = TextOptions::default().set_indexing_options(indexing);
    if fast {
        options.set_fast("raw")
    } else {
        options
    }
}

/// Builds the schema and returns it with its fields.
pub fn build_schema() -> (Schema, IndexFields) {
    let mut builder = Schema::builder();
    let id_indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let id = builder.add_text_field(
        "id",
        TextOptions::default().set_indexing_options(id_indexing) | STORED,
    );
    let seq = builder.add_u64_field("seq", NumericOptions::default().set_fast());
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(PERL_OUTPUT_TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
        .set_fieldnorms(true);
    let text = builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(text_indexing),
    );
    let dist = builder.add_text_field("dist", exact_options(true));
    let version = builder.add_text_field("version", exact_options(true));
    let author = builder.add_text_field("author", exact_options(true));
    let grade = builder.add_text_field("grade", exact_options(true));
    let osname = builder.add_text_field("osname", exact_options(true));
    let osversion = builder.add_text_field("osversion", exact_options(true));
    let perl = builder.add_text_field("perl", exact_options(true));
    let perl_series = builder.add_text_field("perl_series", exact_options(false));
    let arch = builder.add_text_field("arch", exact_options(true));
    let reporter = builder.add_text_field("reporter", exact_options(true));
    let created = builder.add_date_field(
        "created",
        DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Seconds),
    );
    let preview = builder.add_bytes_field("preview", BytesOptions::default().set_stored());
    let fields = IndexFields {
        id,
        seq,
        text,
        dist,
        version,
        author,
        grade,
        osname,
        osversion,
        perl,
        perl_series,
        arch,
        reporter,
        created,
        preview,
    };
    (builder.build(), fields)
}

/// The searchable facts of one report, read from its canonical v3 document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFields {
    /// The report id, lower-case hyphenated.
    pub id: String,
    /// `distribution.name`.
    pub dist: String,
    /// `distribution.version`.
    pub version: String,
    /// `distribution.author`.
    pub author: String,
    /// `result.grade`, lower-case.
    pub grade: String,
    /// `environment.system.osname`.
    pub osname: String,
    /// `environment.system.osversion`.
    pub osversion: String,
    /// `environment.language.version`.
    pub perl: String,
    /// `environment.language.archname`.
    pub arch: String,
    /// `reporter.name`.
    pub reporter_name: String,
    /// `reporter.email`.
    pub reporter_email: String,
    /// `created` as Unix seconds (the receive time when absent or unreadable).
    pub created_unix_seconds: i64,
    /// `created` as written in the document (RFC 3339), or the receive time formatted so.
    pub created: String,
}

/// A string value read leniently: a JSON string (borrowed from the input when it has no escapes),
/// and anything else (a number, an object, null) as absent.
#[derive(Debug, Clone, Default)]
pub struct LenientString<'a>(pub Option<Cow<'a, str>>);

impl LenientString<'_> {
    /// The trimmed text, empty when absent.
    pub fn text(&self) -> &str {
        self.0.as_deref().map_or("", str::trim)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LenientString<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LenientVisitor<'a> {
            type Value = LenientString<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(LenientString(Some(Cow::Borrowed(text))))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(LenientString(Some(Cow::Owned(text.to_string()))))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(LenientString(Some(Cow::Owned(text))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                LenientString::deserialize(deserializer)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut sequence: A,
            ) -> Result<Self::Value, A::Error> {
                while sequence.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(LenientString(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(LenientString(None))
            }
        }
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

/// The parts of a stored v3 document that search needs, parsed without building a
/// `serde_json::Value` (the rest, like `perl -V` output and toolchain maps, is skipped).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredDocument<'a> {
    #[serde(borrow)]
    id: LenientString<'a>,
    #[serde(borrow)]
    created: LenientString<'a>,
    #[serde(borrow)]
    reporter: DocumentReporter<'a>,
    #[serde(borrow)]
    environment: DocumentEnvironment<'a>,
    #[serde(borrow)]
    distribution: DocumentDistribution<'a>,
    #[serde(borrow)]
    result: DocumentResult<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentReporter<'a> {
    #[serde(borrow)]
    name: LenientString<'a>,
    #[serde(borrow)]
    email: LenientString<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentEnvironment<'a> {
    #[serde(borrow)]
    language: DocumentLanguage<'a>,
    #[serde(borrow)]
    system: DocumentSystem<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentLanguage<'a> {
    #[serde(borrow)]
    version: LenientString<'a>,
    #[serde(borrow)]
    archname: LenientString<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentSystem<'a> {
    #[serde(borrow)]
    osname: LenientString<'a>,
    #[serde(borrow)]
    osversion: LenientString<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentDistribution<'a> {
    #[serde(borrow)]
    name: LenientString<'a>,
    #[serde(borrow)]
    version: LenientString<'a>,
    #[serde(borrow)]
    author: LenientString<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentResult<'a> {
    #[serde(borrow)]
    grade: LenientString<'a>,
    #[serde(borrow)]
    output: DocumentOutput<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DocumentOutput<'a> {
    #[serde(borrow)]
    uncategorized: LenientString<'a>,
    #[serde(borrow)]
    configure: LenientString<'a>,
    #[serde(borrow)]
    build: LenientString<'a>,
    #[serde(borrow)]
    test: LenientString<'a>,
    #[serde(borrow)]
    install: LenientString<'a>,
}

impl<'a> StoredDocument<'a> {
    /// Parses the canonical v3 document bytes of a stored report.
    pub fn parse(bytes: &'a [u8]) -> Result<StoredDocument<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The searchable fields. `received_at_ms` stands in for a missing or unreadable
    /// `created`.
    pub fn fields(&self, received_at_ms: i64) -> ReportFields {
        let created_text = self.created.text();
        let parsed_created = time::OffsetDateTime::parse(
            created_text,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        let (created_unix_seconds, created) = match parsed_created {
            Some(moment) => (moment.unix_timestamp(), created_text.to_string()),
            None => {
                let seconds = received_at_ms.div_euclid(1000);
                (seconds, format_unix_seconds(seconds))
            }
        };
        let id_text = self.id.text();
        let id = Uuid::parse_str(id_text)
            .map(|uuid| uuid.hyphenated().to_string())
            .unwrap_or_else(|_| id_text.to_ascii_lowercase());
        ReportFields {
            id,
            dist: self.distribution.name.text().to_string(),
            version: self.distribution.version.text().to_string(),
            author: self.distribution.author.text().to_string(),
            grade: self.result.grade.text().to_ascii_lowercase(),
            osname: self.environment.system.osname.text().to_string(),
            osversion: self.environment.system.osversion.text().to_string(),
            perl: self.environment.language.version.text().to_string(),
            arch: self.environment.language.archname.text().to_string(),
            reporter_name: self.reporter.name.text().to_string(),
            reporter_email: self.reporter.email.text().to_string(),
            created_unix_seconds,
            created,
        }
    }

    /// The full text of the report: every non-empty `result.output` section (`uncategorized`,
    /// then `configure`, `build`, `test`, `install`), joined by blank lines. Snippets are cut
    /// from the same text, so highlights agree with what was indexed.
    pub fn full_text(&self) -> Cow<'_, str> {
        let output = &self.result.output;
        let sections: Vec<&str> = [
            &output.uncategorized,
            &output.configure,
            &output.build,
            &output.test,
            &output.install,
        ]
        .into_iter()
        .filter_map(|section| section.0.as_deref())
        .filter(|section| !section.trim().is_empty())
        .collect();
        match sections.as_slice() {
            [] => Cow::Borrowed(""),
            [single] => Cow::Borrowed(single),
            several => Cow::Owned(several.join("\n\n")),
        }
    }
}

/// Formats Unix seconds as RFC 3339 (`2024-03-01T12:34:56Z`).
pub fn format_unix_seconds(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The `major.minor` series of a perl version (`5.38` of `5.38.0 RC1`), when it has one.
pub fn perl_series(version: &str) -> Option<String> {
    let numeric_part = version.trim().trim_start_matches('v');
    let mut components = numeric_part.split(|character: char| !character.is_ascii_digit());
    let major = components.next().filter(|part| !part.is_empty())?;
    let minor = components.next().filter(|part| !part.is_empty())?;
    Some(format!("{major}.{minor}"))
}

/// `text` cut to at most `limit` bytes on a character boundary.
pub fn truncate_on_char_boundary(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The start of a report's text as a snippet shows it when nothing in it is highlighted.
pub fn leading_fragment(text: &str) -> &str {
    truncate_on_char_boundary(text.trim_start(), SNIPPET_MAX_BYTES)
}

/// Encoded previews longer than this are not stored; their hits are read back from sled.
/// Real reports' previews are 300-600 bytes; the v3 schema sets no length on the fields, and a
/// report with a 10 KB `osversion` should not put 10 KB into the index's doc store.
pub const MAX_PREVIEW_BYTES: usize = 2048;

/// First byte of an encoded [`HitPreview`]; a preview in another format is not used.
const PREVIEW_FORMAT: u8 = 1;

/// What a search hit shows of a report, kept in the index's doc store so that a page with
/// nothing to highlight (newest first, filters only) needs no read from sled, no zstd and no
/// JSON parse: at about 15 us a hit, those were most of such a page's cost after collection.
///
/// Its values are the ones [`StoredDocument::fields`] reads (not the truncated index values),
/// so a hit made from it equals one made from the stored document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitPreview<'a> {
    /// `distribution.name`.
    pub dist: &'a str,
    /// `distribution.version`.
    pub version: &'a str,
    /// `distribution.author`.
    pub author: &'a str,
    /// `result.grade`, lower-case.
    pub grade: &'a str,
    /// `environment.system.osname`.
    pub osname: &'a str,
    /// `environment.system.osversion`.
    pub osversion: &'a str,
    /// `environment.language.version`.
    pub perl: &'a str,
    /// `environment.language.archname`.
    pub arch: &'a str,
    /// `reporter.name`.
    pub reporter_name: &'a str,
    /// `reporter.email`.
    pub reporter_email: &'a str,
    /// `created` as [`ReportFields::created`] gives it.
    pub created: &'a str,
    /// [`leading_fragment`] of the full text.
    pub leading_text: &'a str,
}

/// How many strings an encoded preview holds.
const PREVIEW_VALUES: usize = 12;

impl<'a> HitPreview<'a> {
    /// The preview of a report with `fields` and full text `text`.
    pub fn of(fields: &'a ReportFields, text: &'a str) -> HitPreview<'a> {
        HitPreview {
            dist: &fields.dist,
            version: &fields.version,
            author: &fields.author,
            grade: &fields.grade,
            osname: &fields.osname,
            osversion: &fields.osversion,
            perl: &fields.perl,
            arch: &fields.arch,
            reporter_name: &fields.reporter_name,
            reporter_email: &fields.reporter_email,
            created: &fields.created,
            leading_text: leading_fragment(text),
        }
    }

    fn values(&self) -> [&'a str; PREVIEW_VALUES] {
        [
            self.dist,
            self.version,
            self.author,
            self.grade,
            self.osname,
            self.osversion,
            self.perl,
            self.arch,
            self.reporter_name,
            self.reporter_email,
            self.created,
            self.leading_text,
        ]
    }

    /// The format byte, then each value as a little-endian `u16` length and its bytes; `None`
    /// when that is longer than [`MAX_PREVIEW_BYTES`].
    pub fn encode(&self) -> Option<Vec<u8>> {
        let values = self.values();
        let length = 1 + values.iter().map(|value| 2 + value.len()).sum::<usize>();
        if length > MAX_PREVIEW_BYTES {
            return None;
        }
        let mut encoded = Vec::with_capacity(length);
        encoded.push(PREVIEW_FORMAT);
        for value in values {
            encoded.extend_from_slice(&(value.len() as u16).to_le_bytes());
            encoded.extend_from_slice(value.as_bytes());
        }
        Some(encoded)
    }

    /// The preview in `encoded`; `None` for anything [`HitPreview::encode`] did not write
    /// (another format, a cut or overlong buffer, a value that is not UTF-8).
    pub fn decode(encoded: &'a [u8]) -> Option<HitPreview<'a>> {
        let (&format, mut rest) = encoded.split_first()?;
        if format != PREVIEW_FORMAT {
            return None;
        }
        let mut next_value = || -> Option<&'a str> {
            let (length, after_length) = rest.split_first_chunk::<2>()?;
            let length = usize::from(u16::from_le_bytes(*length));
            if after_length.len() < length {
                return None;
            }
            let (bytes, after_value) = after_length.split_at(length);
            rest = after_value;
            std::str::from_utf8(bytes).ok()
        };
        // Fields of a struct expression are evaluated in the order written: the order of
        // `values`, which `encode` wrote.
        let preview = HitPreview {
            dist: next_value()?,
            version: next_value()?,
            author: next_value()?,
            grade: next_value()?,
            osname: next_value()?,
            osversion: next_value()?,
            perl: next_value()?,
            arch: next_value()?,
            reporter_name: next_value()?,
            reporter_email: next_value()?,
            created: next_value()?,
            leading_text: next_value()?,
        };
        rest.is_empty().then_some(preview)
    }
}

/// Builds the index document of a report.
pub fn index_document(
    fields: &IndexFields,
    report: &ReportFields,
    seq: u64,
    text: &str,
) -> TantivyDocument {
    let mut document = TantivyDocument::default();
    document.add_text(fields.id, &report.id);
    document.add_u64(fields.seq, seq);
    document.add_text(
        fields.text,
        truncate_on_char_boundary(text, MAX_INDEXED_TEXT_BYTES),
    );
    let exact_values = [
        (fields.dist, &report.dist),
        (fields.version, &report.version),
        (fields.author, &report.author),
        (fields.grade, &report.grade),
        (fields.osname, &report.osname),
        (fields.osversion, &report.osversion),
        (fields.perl, &report.perl),
        (fields.arch, &report.arch),
        (fields.reporter, &report.reporter_email),
        (fields.reporter, &report.reporter_name),
    ];
    for (field, value) in exact_values {
        if !value.is_empty() {
            document.add_text(
                field,
                truncate_on_char_boundary(value, MAX_EXACT_VALUE_BYTES),
            );
        }
    }
    if let Some(series) = perl_series(&report.perl) {
        document.add_text(fields.perl_series, &series);
    }
    document.add_date(
        fields.created,
        DateTime::from_timestamp_secs(report.created_unix_seconds),
    );
    if let Some(preview) = HitPreview::of(report, text).encode() {
        document.add_bytes(fields.preview, &preview);
    }
    document
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_from_a_v3_document() {
        let bytes = serde_json::to_vec(&json!({
            "id": "7C1E2A9E-5B3D-4F60-9A7B-2D4E6F801234",
            "created": "2024-03-01T12:34:56Z",
            "reporter": {"name": "Fixture Tester", "email": "t@example.invalid"},
            "environment": {
                "language": {"name": "Perl 5", "version": "5.38.0 RC1", "archname": "x86_64-linux", "build": "x"},
                "system": {"osname": "linux", "osversion": 6, "variables": {"PATH": "/bin"}}
            },
            "distribution": {"name": "Net-Quux", "version": "0.01_03", "author": "ZBACKER", "prerequisites": [{"name": "perl"}]},
            "result": {"grade": "FAIL", "output": {"uncategorized": "head", "test": "Failed test", "build": " "}, "tests": 4}
        }))
        .unwrap();
        let document = StoredDocument::parse(&bytes).unwrap();
        let fields = document.fields(0);
        assert_eq!(fields.id, "7c1e2a9e-5b3d-4f60-9a7b-2d4e6f801234");
        assert_eq!(fields.grade, "fail");
        assert_eq!(fields.perl, "5.38.0 RC1");
        assert_eq!(fields.osversion, "", "a number is not a string");
        assert_eq!(fields.created_unix_seconds, 1_709_296_496);
        assert_eq!(document.full_text(), "head\n\nFailed test");
        assert_eq!(perl_series(&fields.perl).as_deref(), Some("5.38"));
    }

    #[test]
    fn a_missing_created_falls_back_to_the_receive_time() {
        let document =
            StoredDocument::parse(br#"{"id": "x", "result": {"output": {"test": "only"}}}"#)
                .unwrap();
        let fields = document.fields(1_700_000_000_999);
        assert_eq!(fields.created_unix_seconds, 1_700_000_000);
        assert_eq!(fields.created, "2023-11-14T22:13:20Z");
        assert!(matches!(document.full_text(), Cow::Borrowed("only")));
    }

    #[test]
    fn perl_series_needs_two_numbers() {
        assert_eq!(perl_series("v5.36.0").as_deref(), Some("5.36"));
        assert_eq!(perl_series("6.d"), None);
        assert_eq!(perl_series(""), None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_on_char_boundary("élève", 2), "é");
        assert_eq!(truncate_on_char_boundary("abc", 10), "abc");
    }

    fn sample_fields() -> ReportFields {
        ReportFields {
            id: "7c1e2a9e-5b3d-4f60-9a7b-2d4e6f801234".to_string(),
            dist: "Foo-Bar".to_string(),
            version: "1.02_01".to_string(),
            author: "ÉLÈVE".to_string(),
            grade: "fail".to_string(),
            osname: "linux".to_string(),
            osversion: String::new(),
            perl: "5.40.0".to_string(),
            arch: "x86_64-linux-thread-multi".to_string(),
            reporter_name: "Fixture Tester".to_string(),
            reporter_email: "t@example.invalid".to_string(),
            created_unix_seconds: 1_709_296_496,
            created: "2024-03-01T12:34:56.5+01:00".to_string(),
        }
    }

    #[test]
    fn a_preview_decodes_to_what_was_encoded_and_its_text_is_the_leading_fragment() {
        let fields = sample_fields();
        let text = format!("\n\n  {}", "Can't locate Foo/Bar.pm in @INC ".repeat(20));
        let preview = HitPreview::of(&fields, &text);
        assert_eq!(preview.leading_text, leading_fragment(&text));
        assert!(preview.leading_text.starts_with("Can't locate"));
        assert!(preview.leading_text.len() <= SNIPPET_MAX_BYTES);
        let encoded = preview.encode().unwrap();
        assert_eq!(HitPreview::decode(&encoded), Some(preview));
        assert_eq!(HitPreview::decode(&encoded).unwrap().osversion, "");
        assert_eq!(HitPreview::decode(&encoded).unwrap().author, "ÉLÈVE");
    }

    #[test]
    fn an_overlong_preview_is_not_encoded() {
        let mut fields = sample_fields();
        fields.osversion = "x".repeat(MAX_PREVIEW_BYTES);
        assert_eq!(HitPreview::of(&fields, "text").encode(), None);
        let (_, index_fields) = build_schema();
        let document = index_document(&index_fields, &fields, 7, "text");
        assert!(document.get_first(index_fields.preview).is_none());
        let document = index_document(&index_fields, &sample_fields(), 7, "text");
        assert!(document.get_first(index_fields.preview).is_some());
    }

    #[test]
    fn anything_but_an_encoded_preview_decodes_to_none() {
        let fields = sample_fields();
        let encoded = HitPreview::of(&fields, "some text").encode().unwrap();
        // Every cut of it, and it with a byte more: lengths no longer add up.
        for cut in 0..encoded.len() {
            assert_eq!(HitPreview::decode(&encoded[..cut]), None, "cut at {cut}");
        }
        let mut longer = encoded.clone();
        longer.push(b'x');
        assert_eq!(HitPreview::decode(&longer), None);
        let mut other_format = encoded.clone();
        other_format[0] = PREVIEW_FORMAT + 1;
        assert_eq!(HitPreview::decode(&other_format), None);
        // The first value's first byte made invalid UTF-8.
        let mut not_utf8 = encoded;
        not_utf8[3] = 0xFF;
        assert_eq!(HitPreview::decode(&not_utf8), None);
    }
}
