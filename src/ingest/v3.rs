//! `POST /v3/report` and the collector's `POST /v1/report/{uuid}`: JSON Schema validation of
//! the CPAN Testers v3 document (`schema/v3-report.schema.json`, compiled into the binary),
//! server-assigned `id` and `created`, canonical form, hash and compression.

use serde_json::Value;
use uuid::Uuid;

use super::{canonical_json_with_capacity, canonical_sha256, format_timestamp, parse_timestamp};
use crate::codec;
use crate::error::{Error, FieldError, Result};
use crate::store::Protocol;
use crate::store::committer::PreparedReport;
use crate::store::derived::ReportSummary;

/// The v3 report schema, as shipped in `schema/`.
pub const V3_REPORT_SCHEMA: &str = include_str!("../../schema/v3-report.schema.json");

/// At most this many schema violations are reported for one document.
const MAX_REPORTED_VIOLATIONS: usize = 20;

/// The compiled schema. Build once and share: compiling is far slower than validating.
pub struct V3Validator {
    validator: jsonschema::Validator,
}

impl V3Validator {
    /// Compiles the shipped schema.
    pub fn new() -> Result<V3Validator> {
        let schema: Value = serde_json::from_str(V3_REPORT_SCHEMA)
            .map_err(|error| Error::Internal(format!("shipped v3 schema is not JSON: {error}")))?;
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|error| {
                Error::Internal(format!("shipped v3 schema does not compile: {error}"))
            })?;
        Ok(V3Validator { validator })
    }

    /// Checks `document` against the schema; every violation (up to a limit) with its path.
    pub fn validate(&self, document: &Value) -> Result<()> {
        let violations: Vec<FieldError> = self
            .validator
            .iter_errors(document)
            .take(MAX_REPORTED_VIOLATIONS)
            .map(|error| {
                let path = match error.instance_path().as_str() {
                    "" => "/".to_string(),
                    path => path.to_string(),
                };
                let message = if path == "/result/output"
                    && matches!(error.kind(), jsonschema::error::ValidationErrorKind::AnyOf { .. })
                {
                    "result.output needs at least one of uncategorized, configure, build, test, install"
                        .to_string()
                } else {
                    // masked: never echo a 10 MB report text back into an error message
                    error.masked().to_string()
                };
                FieldError { message, path }
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(violations))
        }
    }
}

/// Parses, validates and prepares a v3 report body for the committer.
///
/// `path_id` is the collector's `/v1/report/{uuid}`: it wins over any `id` in the body.
/// `created` is kept when the client sent it and set to `received_at` otherwise; it is not
/// part of the content hash when the server set it, so a resubmission is still a duplicate.
pub fn prepare_v3_report(
    validator: &V3Validator,
    body: &[u8],
    path_id: Option<Uuid>,
    protocol: Protocol,
    received_at: time::OffsetDateTime,
) -> Result<PreparedReport> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid("request body is empty", ""));
    }
    let mut document: Value = serde_json::from_slice(body)
        .map_err(|error| Error::invalid(format!("request body is not valid JSON: {error}"), ""))?;
    if !document.is_object() {
        return Err(Error::invalid("the report must be a JSON object", ""));
    }
    validator.validate(&document)?;
    let fields = document.as_object_mut().expect("checked above");

    let id = match (path_id, fields.get("id")) {
        (Some(id), _) => id,
        (None, Some(Value::String(text))) => Uuid::parse_str(text)
            .map_err(|_| Error::invalid(format!("id {text:?} is not a UUID"), "/id"))?,
        (None, Some(_)) => return Err(Error::invalid("id must be a string", "/id")),
        (None, None) => Uuid::now_v7(),
    };
    fields.insert("id".to_string(), Value::String(id.hyphenated().to_string()));

    match fields.get("created") {
        Some(Value::String(text)) if parse_timestamp(text).is_none() => {
            return Err(Error::invalid(
                format!("created {text:?} is not an RFC 3339 date-time"),
                "/created",
            ));
        }
        Some(Value::String(_)) | None => {}
        Some(_) => return Err(Error::invalid("created must be a string", "/created")),
    }
    let content_sha256 = canonical_sha256(&document);
    let fields = document.as_object_mut().expect("checked above");
    if !fields.contains_key("created") {
        fields.insert(
            "created".to_string(),
            Value::String(format_timestamp(received_at)),
        );
    }

    let canonical = canonical_json_with_capacity(&document, body.len() + 64);
    let document_frame = codec::compress_document(&canonical)?;
    Ok(PreparedReport {
        id,
        protocol,
        content_sha256,
        received_at_ms: (received_at.unix_timestamp_nanos() / 1_000_000) as i64,
        document_frame,
        fact_frame: None,
        summary: ReportSummary::from_document(&document, 0)?,
        received_bytes: body.len() as u64,
    })
}
