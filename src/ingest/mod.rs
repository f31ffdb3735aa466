//! The ingest path before the committer: authenticate, parse, validate, convert to the v3
//! document, hash and compress. Everything here is synchronous CPU work; the HTTP layer runs
//! it under `spawn_blocking` so handlers never block the runtime.
//!
//! The output is a [`crate::store::committer::PreparedReport`]: the committer only writes.

pub mod auth;
pub mod metabase;
pub mod v3;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` as compact JSON with object keys sorted, whatever serde_json's map type is,
/// so equal documents always give equal bytes (and equal hashes) regardless of the key order
/// a client happened to send.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (position, key) in keys.into_iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

/// SHA-256 of the canonical form of `value`.
pub fn canonical_sha256(value: &Value) -> [u8; 32] {
    Sha256::digest(canonical_json(value)).into()
}

/// Formats a time as the CPAN Testers API does: RFC 3339, UTC, whole seconds, `Z`.
pub fn format_timestamp(time: time::OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// Parses an RFC 3339 timestamp (`2024-03-01T12:34:56Z`, offsets and fractions allowed).
pub fn parse_timestamp(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            br#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#
        );
    }

    #[test]
    fn timestamps_format_as_the_api_does() {
        let parsed = parse_timestamp("2026-11-22T22:47:15+01:00").unwrap();
        assert_eq!(format_timestamp(parsed), "2026-11-22T21:47:15Z");
        assert!(parse_timestamp("yesterday").is_none());
    }
}
