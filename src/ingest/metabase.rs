//! The legacy Metabase submission and registration formats, and their conversion to the v3
//! document (`../shared/protocol/metabase.md` §3–§4, `cpantesters-api.md` §4).
//!
//! A submission is JSON three levels deep: the body's `content` is a *string* holding an array
//! of facts, and each fact's `content` is again a string holding an object. Each level is
//! parsed with `serde_path_to_error`, so a client gets told which field at which level is wrong.
//! `content` given as an already-decoded array or object is accepted too.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{canonical_json_with_capacity, canonical_sha256, format_timestamp, parse_timestamp};
use crate::codec;
use crate::distinfo;
use crate::error::{Error, Result};
use crate::store::Protocol;
use crate::store::committer::PreparedReport;
use crate::store::derived::ReportSummary;

/// The only fact type these clients submit, and the only one accepted.
pub const REPORT_FACT_TYPE: &str = "CPAN-Testers-Report";
const LEGACY_REPORT_FACT_TYPE: &str = "CPAN-Testers-Fact-LegacyReport";
const GRADES: [&str; 4] = ["pass", "fail", "na", "unknown"];

#[derive(Debug, Deserialize)]
struct Fact {
    metadata: FactMetadata,
    content: Value,
}

#[derive(Debug, Deserialize)]
struct FactMetadata {
    core: CoreMetadata,
}

#[derive(Debug, Deserialize)]
struct CoreMetadata {
    guid: String,
    creator: String,
    resource: String,
    #[serde(rename = "type")]
    fact_type: String,
    creation_time: String,
}

#[derive(Debug, Deserialize)]
struct LegacyReportContent {
    grade: String,
    osname: String,
    osversion: String,
    archname: String,
    perl_version: String,
    textreport: String,
}

/// Who a report is attributed to: the profile of the fact's `creator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// The parts of a submission the server needs before it can convert it (to look up users).
#[derive(Debug, Clone)]
pub struct SubmissionHeader {
    /// The report GUID.
    pub guid: Uuid,
    /// The creator's user GUID (`metabase:user:<guid>`).
    pub creator: Uuid,
}

/// A parsed, checked submission, ready to convert.
pub struct ParsedSubmission {
    header: SubmissionHeader,
    /// [`canonical_sha256`] of the submission with every level decoded: the level-1 fields,
    /// `content` as the array of inner facts, each reduced to its identifying core metadata
    /// and its decoded content. Computed while parsing, so the decoded tree is never kept.
    content_sha256: [u8; 32],
    resource: distinfo::DistInfo,
    creation_time: time::OffsetDateTime,
    report: LegacyReportContent,
}

impl ParsedSubmission {
    /// GUIDs of the report and its creator.
    pub fn header(&self) -> &SubmissionHeader {
        &self.header
    }
}

fn invalid(detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!("invalid submission data: {detail}"), "")
}

/// Deserializes `value` (owned or borrowed: `&Value` deserializes without cloning it), naming
/// the level and path of the first problem.
fn parse_at<'de, T, D>(value: D, level: &str) -> Result<T>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let location = if path == "." {
            level.to_string()
        } else {
            format!("{level}{path}")
        };
        invalid(format!("{location}: {}", error.inner()))
    })
}

/// Decodes a fact's `content`: a JSON string holding JSON (what the clients send) or the
/// decoded value itself.
fn decode_content(content: Value, location: &str) -> Result<Value> {
    match content {
        Value::String(text) => serde_json::from_str(&text)
            .map_err(|error| invalid(format!("{location} is not valid JSON: {error}"))),
        other => Ok(other),
    }
}

/// Parses a user GUID out of `metabase:user:<guid>`.
pub fn parse_user_resource(text: &str) -> Option<Uuid> {
    text.strip_prefix("metabase:user:")
        .and_then(|guid| Uuid::parse_str(guid).ok())
}

/// Parses and checks a `submit/CPAN-Testers-Report` body. `url_fact_type` is the type named in
/// the URL; it must match the body's.
pub fn parse_submission(body: &[u8], url_fact_type: &str) -> Result<ParsedSubmission> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("request body is empty"));
    }
    let level_one: Value = serde_json::from_slice(body)
        .map_err(|error| invalid(format!("body is not valid JSON: {error}")))?;
    let Value::Object(mut level_one_fields) = level_one else {
        return Err(invalid(
            "body must be a JSON object with metadata and content",
        ));
    };
    let metadata = level_one_fields
        .remove("metadata")
        .ok_or_else(|| invalid("metadata: missing field"))?;
    let core: FactMetadata = parse_at(&metadata, "metadata")?;
    let core = core.core;
    if core.fact_type != url_fact_type {
        return Err(invalid(format!(
            "fact type {:?} does not match the type {url_fact_type:?} in the URL",
            core.fact_type
        )));
    }
    if core.fact_type != REPORT_FACT_TYPE {
        return Err(invalid(format!(
            "fact type {:?} is not accepted; only {REPORT_FACT_TYPE} is",
            core.fact_type
        )));
    }
    let guid = Uuid::parse_str(&core.guid)
        .map_err(|_| invalid(format!("metadata.core.guid {:?} is not a GUID", core.guid)))?;
    let creator = parse_user_resource(&core.creator).ok_or_else(|| {
        invalid(format!(
            "metadata.core.creator {:?} is not metabase:user:<guid>",
            core.creator
        ))
    })?;
    let resource = distinfo::parse_distfile_resource(&core.resource)
        .map_err(|error| invalid(format!("metadata.core.resource: {error}")))?;
    let creation_time = parse_timestamp(&core.creation_time).ok_or_else(|| {
        invalid(format!(
            "metadata.core.creation_time {:?} is not an ISO 8601 UTC time",
            core.creation_time
        ))
    })?;

    let content = level_one_fields
        .remove("content")
        .ok_or_else(|| invalid("content: missing field"))?;
    let level_two = decode_content(content, "content")?;
    let Value::Array(inner_facts) = level_two else {
        return Err(invalid("content must hold a JSON array of facts"));
    };
    let mut decoded_facts = Vec::with_capacity(inner_facts.len());
    let mut legacy_report = None;
    for (index, inner) in inner_facts.into_iter().enumerate() {
        let location = format!("content[{index}]");
        let fact: Fact = parse_at(inner, &location)?;
        let inner_content = decode_content(fact.content, &format!("{location}.content"))?;
        if fact.metadata.core.fact_type == LEGACY_REPORT_FACT_TYPE {
            if legacy_report.is_some() {
                return Err(invalid("more than one CPAN-Testers-Fact-LegacyReport fact"));
            }
            legacy_report = Some(parse_at::<LegacyReportContent, _>(
                &inner_content,
                &format!("{location}.content"),
            )?);
        }
        let mut canonical_inner = Map::new();
        canonical_inner.insert(
            "metadata".to_string(),
            serde_json::to_value(CanonicalCore::from(&fact.metadata.core)).expect("plain struct"),
        );
        canonical_inner.insert("content".to_string(), inner_content);
        decoded_facts.push(Value::Object(canonical_inner));
    }
    let mut report = legacy_report
        .ok_or_else(|| invalid("no CPAN-Testers-Fact-LegacyReport fact in content"))?;
    report.grade = report.grade.to_ascii_lowercase();
    if !GRADES.contains(&report.grade.as_str()) {
        return Err(invalid(format!(
            "grade {:?} is not one of pass, fail, na, unknown",
            report.grade
        )));
    }

    level_one_fields.insert("metadata".to_string(), metadata);
    level_one_fields.insert("content".to_string(), Value::Array(decoded_facts));
    let content_sha256 = canonical_sha256(&Value::Object(level_one_fields));
    Ok(ParsedSubmission {
        header: SubmissionHeader { guid, creator },
        content_sha256,
        resource,
        creation_time,
        report,
    })
}

/// Only the core fields that identify an inner fact go into the canonical form, so the hash
/// does not depend on representation details such as `valid` being `1` or `"1"`.
#[derive(serde::Serialize)]
struct CanonicalCore<'a> {
    guid: &'a str,
    creator: &'a str,
    resource: &'a str,
    #[serde(rename = "type")]
    fact_type: &'a str,
    creation_time: &'a str,
}

impl<'a> From<&'a CoreMetadata> for CanonicalCore<'a> {
    fn from(core: &'a CoreMetadata) -> Self {
        CanonicalCore {
            guid: &core.guid,
            creator: &core.creator,
            resource: &core.resource,
            fact_type: &core.fact_type,
            creation_time: &core.creation_time,
        }
    }
}

/// Converts a parsed submission into the v3 document and prepares it for the committer.
///
/// `reporter` is the creator's registered profile; `None` gives the "Unknown" reporter of the
/// legacy pipeline. `original_body` is stored byte for byte beside the document.
pub fn prepare_submission(
    submission: &ParsedSubmission,
    reporter: Option<&Reporter>,
    original_body: &[u8],
    received_at: time::OffsetDateTime,
) -> Result<PreparedReport> {
    let document = to_v3_document(submission, reporter);
    let canonical = canonical_json_with_capacity(&document, original_body.len());
    let document_frame = codec::compress_document(&canonical)?;
    let fact_frame = codec::compress_fact(original_body, &submission.report.textreport)?;
    Ok(PreparedReport {
        id: submission.header.guid,
        protocol: Protocol::Metabase,
        content_sha256: submission.content_sha256,
        received_at_ms: (received_at.unix_timestamp_nanos() / 1_000_000) as i64,
        document_frame,
        fact_frame: Some(fact_frame),
        summary: ReportSummary::from_document(&document, 0)?,
        received_bytes: original_body.len() as u64,
    })
}

/// The v3 document of a submission (`cpantesters-api.md` §4).
pub fn to_v3_document(submission: &ParsedSubmission, reporter: Option<&Reporter>) -> Value {
    let report = &submission.report;
    let resource = &submission.resource;
    let (name, email) = match reporter {
        Some(reporter) => (reporter.name.clone(), reporter.email.clone()),
        None => ("Unknown".to_string(), String::new()),
    };
    let author = resource.cpan_id.clone().unwrap_or_default();
    let mut distribution = json!({
        "name": resource.dist.clone().unwrap_or_default(),
        // The legacy ETL used "0" for a distfile without a version; keep that convention.
        "version": resource.version.clone().unwrap_or_else(|| "0".to_string()),
    });
    if !author.is_empty() {
        distribution["author"] = Value::String(author.clone());
        distribution["path"] = Value::String(format!("{author}/{}", resource.filename));
    }
    json!({
        "id": submission.header.guid.hyphenated().to_string(),
        "created": format_timestamp(submission.creation_time),
        "reporter": { "name": name, "email": email },
        "environment": {
            "language": {
                "name": "Perl 5",
                "version": report.perl_version.trim_start_matches(['v', 'V']),
                "archname": report.archname,
            },
            "system": {
                "osname": report.osname,
                "osversion": report.osversion,
            },
        },
        "distribution": distribution,
        "result": {
            "grade": report.grade,
            "output": { "uncategorized": report.textreport },
        },
    })
}

/// A parsed `POST register` body: the profile and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The profile (user) GUID.
    pub guid: Uuid,
    /// Full name, decoded leniently (see [`decode_string_fact`]).
    pub name: String,
    /// E-mail address, decoded leniently.
    pub email: String,
    /// The secret as the client will present it in Basic auth: each character of the id
    /// file's string as one byte (the client never UTF-8-decodes it).
    pub secret_bytes: Vec<u8>,
}

/// Parses a `POST register` body: `[Metabase-User-Profile, Metabase-User-Secret]` (a single
/// object or either order is accepted).
pub fn parse_registration(body: &[u8]) -> Result<Registration> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("request body is empty"));
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|error| invalid(format!("body is not valid JSON: {error}")))?;
    let facts = match parsed {
        Value::Array(facts) => facts,
        object @ Value::Object(_) => vec![object],
        _ => return Err(invalid("body must be an array of facts")),
    };
    let mut profile = None;
    let mut secret = None;
    for (index, raw) in facts.into_iter().enumerate() {
        let location = format!("[{index}]");
        let fact: Fact = parse_at(raw, &location)?;
        match fact.metadata.core.fact_type.as_str() {
            "Metabase-User-Profile" => {
                let guid = Uuid::parse_str(&fact.metadata.core.guid)
                    .map_err(|_| invalid(format!("{location}.metadata.core.guid is not a GUID")))?;
                if parse_user_resource(&fact.metadata.core.resource) != Some(guid) {
                    return Err(invalid(format!(
                        "{location}: profile guid and resource name different users"
                    )));
                }
                let parts = decode_content(fact.content, &format!("{location}.content"))?;
                let Value::Array(parts) = parts else {
                    return Err(invalid(format!(
                        "{location}.content must be a list of facts"
                    )));
                };
                let mut name = None;
                let mut email = None;
                for (part_index, part) in parts.into_iter().enumerate() {
                    let part_location = format!("{location}.content[{part_index}]");
                    let part: Fact = parse_at(part, &part_location)?;
                    let Value::String(text) = part.content else {
                        return Err(invalid(format!("{part_location}.content must be a string")));
                    };
                    match part.metadata.core.fact_type.as_str() {
                        "Metabase-User-FullName" => name = Some(decode_string_fact(&text)),
                        "Metabase-User-EmailAddress" => email = Some(decode_string_fact(&text)),
                        _ => {}
                    }
                }
                profile = Some((guid, name.unwrap_or_default(), email.unwrap_or_default()));
            }
            "Metabase-User-Secret" => {
                let owner = parse_user_resource(&fact.metadata.core.resource).ok_or_else(|| {
                    invalid(format!(
                        "{location}.metadata.core.resource is not metabase:user:<guid>"
                    ))
                })?;
                let Value::String(text) = fact.content else {
                    return Err(invalid(format!("{location}.content must be a string")));
                };
                secret = Some((owner, text));
            }
            other => {
                return Err(invalid(format!(
                    "{location}: unexpected fact type {other:?}"
                )));
            }
        }
    }
    let (guid, name, email) =
        profile.ok_or_else(|| invalid("no Metabase-User-Profile fact in the body"))?;
    let (owner, secret) =
        secret.ok_or_else(|| invalid("no Metabase-User-Secret fact in the body"))?;
    if owner != guid {
        return Err(invalid(
            "the secret belongs to a different user than the profile",
        ));
    }
    if secret.is_empty() {
        return Err(invalid("the secret is empty"));
    }
    Ok(Registration {
        guid,
        name,
        email,
        secret_bytes: string_fact_bytes(&secret),
    })
}

/// The bytes a Metabase "String fact" stands for: each character is one byte (the id file is
/// written after a UTF-8 *encode*). Characters above U+00FF cannot come from that encoding; such
/// a string is taken as already-decoded text and its UTF-8 bytes are used.
pub fn string_fact_bytes(text: &str) -> Vec<u8> {
    if text.chars().all(|c| (c as u32) <= 0xff) {
        text.chars().map(|c| c as u32 as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// Decodes a String fact's text for display: map characters to bytes and UTF-8-decode, as long
/// as that gives valid UTF-8 and changes something. Repeats (at most 3 times), because
/// `metabase-profile` encodes typed input twice ("Zoë" arrives as `Zo\u00c3\u0083\u00c2\u00ab`).
pub fn decode_string_fact(text: &str) -> String {
    let mut current = text.to_string();
    for _ in 0..3 {
        if current.is_ascii() || current.chars().any(|c| (c as u32) > 0xff) {
            break;
        }
        let bytes: Vec<u8> = current.chars().map(|c| c as u32 as u8).collect();
        match String::from_utf8(bytes) {
            Ok(decoded) if decoded != current => current = decoded,
            _ => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_facts_decode_leniently() {
        assert_eq!(decode_string_fact("Fixture Tester"), "Fixture Tester");
        assert_eq!(decode_string_fact("Zo\u{c3}\u{83}\u{c2}\u{ab}"), "Zo\u{eb}");
        assert_eq!(decode_string_fact("caf\u{c3}\u{a9}"), "caf\u{e9}");
        // not valid UTF-8 once mapped to bytes: kept as received
        assert_eq!(decode_string_fact("Zo\u{eb}"), "Zo\u{eb}");
        assert_eq!(decode_string_fact("\u{263a}"), "\u{263a}");
    }

    #[test]
    fn secret_bytes_map_characters_to_bytes() {
        assert_eq!(string_fact_bytes("two words"), b"two words");
        assert_eq!(string_fact_bytes("\u{e9}"), vec![0xe9]);
        assert_eq!(string_fact_bytes("\u{263a}"), "\u{263a}".as_bytes());
    }
}
