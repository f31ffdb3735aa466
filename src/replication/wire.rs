//! The change feed's wire format: newline-delimited JSON, one object per line.
//!
//! An entry line carries the log entry's fields, the stored values base64-encoded exactly as
//! stored (still compressed), and a SHA-256 checksum over the entry's binary encoding and the
//! values. A status line carries the leader's `last_seq` and term: it ends every response and
//! is the heartbeat of the continuous mode.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::v3::hex;
use crate::error::{Error, Result};
use crate::store::committer::ReplicatedEntry;
use crate::store::{LogEntry, LogOp};

/// One line of the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedLine {
    /// A log entry with its values.
    Entry {
        /// Sequence number.
        seq: u64,
        /// Term that wrote it.
        term: u64,
        /// `put_report` or `put_user`.
        op: LogOp,
        /// Report or user id.
        id: Uuid,
        /// Content hash (hex).
        content_sha256: String,
        /// Leader commit time, Unix ms.
        committed_at_ms: i64,
        /// The stored value (base64).
        value: String,
        /// The stored fact (base64), for Metabase reports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fact: Option<String>,
        /// SHA-256 (hex) of [`entry_checksum`]'s input.
        checksum: String,
    },
    /// The leader's position; ends each response and serves as heartbeat.
    Status {
        /// The leader's durable last seq.
        last_seq: u64,
        /// The leader's term.
        term: u64,
    },
}

/// SHA-256 over the entry's binary encoding, then each value with a length prefix.
pub fn entry_checksum(entry: &ReplicatedEntry) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(entry.entry.encode());
    digest.update((entry.value.len() as u64).to_be_bytes());
    digest.update(&entry.value);
    match &entry.fact {
        Some(fact) => {
            digest.update((fact.len() as u64).to_be_bytes());
            digest.update(fact);
        }
        None => digest.update(u64::MAX.to_be_bytes()),
    }
    digest.finalize().into()
}

impl FeedLine {
    /// The line for an entry.
    pub fn from_entry(entry: &ReplicatedEntry) -> FeedLine {
        FeedLine::Entry {
            seq: entry.entry.seq,
            term: entry.entry.term,
            op: entry.entry.op,
            id: entry.entry.id,
            content_sha256: hex(&entry.entry.content_sha256),
            committed_at_ms: entry.entry.committed_at_ms,
            value: BASE64.encode(&entry.value),
            fact: entry.fact.as_ref().map(|fact| BASE64.encode(fact)),
            checksum: hex(&entry_checksum(entry)),
        }
    }

    /// Serialises the line with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("feed lines serialise");
        line.push(b'\n');
        line
    }

    /// Turns an entry line back into a [`ReplicatedEntry`], verifying its checksum. A
    /// mismatch is [`Error::DataCorruption`]: the follower must stop, never skip.
    pub fn into_entry(self) -> Result<Option<ReplicatedEntry>> {
        let FeedLine::Entry {
            seq,
            term,
            op,
            id,
            content_sha256,
            committed_at_ms,
            value,
            fact,
            checksum,
        } = self
        else {
            return Ok(None);
        };
        let corrupt = |detail: String| Error::corruption(format!("feed entry {seq}"), detail);
        let content_sha256 =
            parse_hex32(&content_sha256).ok_or_else(|| corrupt("bad content hash".into()))?;
        let entry = ReplicatedEntry {
            entry: LogEntry {
                seq,
                term,
                op,
                id,
                content_sha256,
                committed_at_ms,
            },
            value: BASE64
                .decode(value)
                .map_err(|error| corrupt(format!("value is not base64: {error}")))?,
            fact: fact
                .map(|fact| BASE64.decode(fact))
                .transpose()
                .map_err(|error| corrupt(format!("fact is not base64: {error}")))?,
        };
        if hex(&entry_checksum(&entry)) != checksum {
            return Err(corrupt(
                "checksum mismatch: the entry was damaged in transit or at the source".into(),
            ));
        }
        Ok(Some(entry))
    }
}

/// Parses 64 hex digits.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReplicatedEntry {
        ReplicatedEntry {
            entry: LogEntry {
                seq: 7,
                term: 2,
                op: LogOp::PutReport,
                id: Uuid::from_u128(99),
                content_sha256: [3; 32],
                committed_at_ms: 1234,
            },
            value: vec![1, 2, 3],
            fact: Some(vec![4, 5]),
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let line = FeedLine::from_entry(&sample()).to_line();
        let parsed: FeedLine = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed.into_entry().unwrap().unwrap(), sample());

        let mut damaged: serde_json::Value = serde_json::from_slice(&line).unwrap();
        damaged["value"] = serde_json::Value::from(BASE64.encode([1, 2, 4]));
        let damaged: FeedLine = serde_json::from_value(damaged).unwrap();
        assert!(matches!(
            damaged.into_entry(),
            Err(Error::DataCorruption { .. })
        ));
    }
}
