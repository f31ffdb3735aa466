//! The index schema and how a stored v3 document becomes an index document.
//!
//! The index holds no copy of a report: the full text is indexed (with positions, for phrases)
//! but not stored, and the exact-value fields are fast columns for filters, facets and sorting.
//! Only the report id is stored; hits are read back from sled.
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
//!
//! [`SCHEMA_VERSION`] goes into every commit payload; an index written with another version is
//! rebuilt.

use serde_json::Value;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, STORED, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, TantivyDocument};
use uuid::Uuid;

use super::tokenizer::PERL_OUTPUT_TOKENIZER;

/// Version of the schema and of the document mapping. Bump it when either changes: indexes
/// with another version are rebuilt from the store.
pub const SCHEMA_VERSION: u32 = 1;

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

fn string_at(document: &Value, pointer: &str) -> String {
    document
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(|text| text.trim().to_string())
        .unwrap_or_default()
}

impl ReportFields {
    /// Reads the fields of a parsed v3 document. `received_at_ms` stands in for a missing or
    /// unreadable `created`.
    pub fn from_document(document: &Value, received_at_ms: i64) -> ReportFields {
        let created_text = string_at(document, "/created");
        let parsed_created = time::OffsetDateTime::parse(
            &created_text,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        let (created_unix_seconds, created) = match parsed_created {
            Some(moment) => (moment.unix_timestamp(), created_text),
            None => {
                let seconds = received_at_ms.div_euclid(1000);
                (seconds, format_unix_seconds(seconds))
            }
        };
        let id_text = string_at(document, "/id");
        let id = Uuid::parse_str(&id_text)
            .map(|uuid| uuid.hyphenated().to_string())
            .unwrap_or_else(|_| id_text.to_ascii_lowercase());
        ReportFields {
            id,
            dist: string_at(document, "/distribution/name"),
            version: string_at(document, "/distribution/version"),
            author: string_at(document, "/distribution/author"),
            grade: string_at(document, "/result/grade").to_ascii_lowercase(),
            osname: string_at(document, "/environment/system/osname"),
            osversion: string_at(document, "/environment/system/osversion"),
            perl: string_at(document, "/environment/language/version"),
            arch: string_at(document, "/environment/language/archname"),
            reporter_name: string_at(document, "/reporter/name"),
            reporter_email: string_at(document, "/reporter/email"),
            created_unix_seconds,
            created,
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

/// The full text of a report: every non-empty `result.output` section (`uncategorized`, then
/// `configure`, `build`, `test`, `install`), joined by blank lines. Snippets are cut from the
/// same text, so highlight offsets agree with what was indexed.
pub fn full_text(document: &Value) -> String {
    let Some(output) = document
        .pointer("/result/output")
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let mut text = String::new();
    for section in ["uncategorized", "configure", "build", "test", "install"] {
        let Some(section_text) = output.get(section).and_then(Value::as_str) else {
            continue;
        };
        if section_text.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(section_text);
    }
    text
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
    document
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_from_a_v3_document() {
        let document = json!({
            "id": "7C1E2A9E-5B3D-4F60-9A7B-2D4E6F801234",
            "created": "2024-03-01T12:34:56Z",
            "reporter": {"name": "Fixture Tester", "email": "t@example.invalid"},
            "environment": {
                "language": {"name": "Perl 5", "version": "5.38.0 RC1", "archname": "x86_64-linux"},
                "system": {"osname": "linux", "osversion": "6.1.0"}
            },
            "distribution": {"name": "Net-Quux", "version": "0.01_03", "author": "ZBACKER"},
            "result": {"grade": "FAIL", "output": {"uncategorized": "head", "test": "Failed test", "build": " "}}
        });
        let fields = ReportFields::from_document(&document, 0);
        assert_eq!(fields.id, "7c1e2a9e-5b3d-4f60-9a7b-2d4e6f801234");
        assert_eq!(fields.grade, "fail");
        assert_eq!(fields.perl, "5.38.0 RC1");
        assert_eq!(fields.created_unix_seconds, 1_709_296_496);
        assert_eq!(full_text(&document), "head\n\nFailed test");
        assert_eq!(perl_series(&fields.perl).as_deref(), Some("5.38"));
    }

    #[test]
    fn a_missing_created_falls_back_to_the_receive_time() {
        let fields = ReportFields::from_document(&json!({"id": "x"}), 1_700_000_000_999);
        assert_eq!(fields.created_unix_seconds, 1_700_000_000);
        assert_eq!(fields.created, "2023-11-14T22:13:20Z");
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
}
