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
    canonical_json_with_capacity(value, 1024)
}

/// [`canonical_json`] into a buffer of `capacity` bytes to start with (the size of the JSON
/// it came from is a good guess, and saves growing a 10 KB buffer by doubling).
pub fn canonical_json_with_capacity(value: &Value, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
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

/// SHA-256 of a canonical encoding of `value`: the content hash that tells "the same report"
/// from "a different report with the same id".
///
/// Like [`canonical_json`] it does not depend on object key order, and two values hash equal
/// exactly when their canonical JSON is equal; but it is fed to the hasher directly, without
/// building or escaping a JSON text (reports are mostly one long string). The encoding is
/// self-delimiting: a type tag, lengths as u64 big-endian, strings as their UTF-8 bytes,
/// numbers as serde_json prints them, object members sorted by key.
pub fn canonical_sha256(value: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hash_canonical(value, &mut hasher);
    hasher.finalize().into()
}

fn hash_length(length: usize, hasher: &mut Sha256) {
    hasher.update((length as u64).to_be_bytes());
}

fn hash_text(text: &str, hasher: &mut Sha256) {
    hash_length(text.len(), hasher);
    hasher.update(text.as_bytes());
}

fn hash_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Null => hasher.update(b"z"),
        Value::Bool(false) => hasher.update(b"f"),
        Value::Bool(true) => hasher.update(b"t"),
        Value::Number(number) => {
            hasher.update(b"n");
            hash_text(&number.to_string(), hasher);
        }
        Value::String(text) => {
            hasher.update(b"s");
            hash_text(text, hasher);
        }
        Value::Array(items) => {
            hasher.update(b"a");
            hash_length(items.len(), hasher);
            for item in items {
                hash_canonical(item, hasher);
            }
        }
        Value::Object(map) => {
            hasher.update(b"o");
            hash_length(map.len(), hasher);
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, member) in members {
                hash_text(key, hasher);
                hash_canonical(member, hasher);
            }
        }
    }
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
    fn canonical_hash_ignores_key_order_and_tells_values_apart() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_sha256(&a), canonical_sha256(&b));
        // Values whose canonical JSON differs hash differently, including look-alikes.
        let distinct = [
            r#"{"a":"1"}"#,
            r#"{"a":1}"#,
            r#"{"a":1.0}"#,
            r#"{"a":[1]}"#,
            r#"{"a":null}"#,
            r#"{"a":"null"}"#,
            r#"{"a":true}"#,
            r#"{"a":"ab","b":"c"}"#,
            r#"{"a":"a","b":"bc"}"#,
            r#"{"ab":"c"}"#,
            r#"{"a":["b","c"]}"#,
            r#"{"a":["bc"]}"#,
            r#"{"a":[["b"],"c"]}"#,
            r#"{"a":[["b","c"]]}"#,
            r#"{"a":{}}"#,
            r#"{"a":[]}"#,
            r#"{}"#,
            r#"[]"#,
            r#""""#,
        ];
        let hashes: std::collections::HashSet<[u8; 32]> = distinct
            .iter()
            .map(|text| canonical_sha256(&serde_json::from_str(text).unwrap()))
            .collect();
        assert_eq!(hashes.len(), distinct.len());
    }

    #[test]
    fn timestamps_format_as_the_api_does() {
        let parsed = parse_timestamp("2026-11-22T22:47:15+01:00").unwrap();
        assert_eq!(format_timestamp(parsed), "2026-11-22T21:47:15Z");
        assert!(parse_timestamp("yesterday").is_none());
    }
}
