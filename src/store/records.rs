//! Binary encodings of the values the store keeps per report and per log entry.
//!
//! Both start with a format byte so a later layout can be told apart. They are small fixed
//! headers followed (for reports) by the compressed document: the replication feed ships these
//! bytes unchanged, so a follower stores exactly what the leader stored.

use uuid::Uuid;

const REPORT_RECORD_FORMAT: u8 = 1;
const REPORT_HEADER_LEN: usize = 1 + 8 + 8 + 1 + 1 + 32;
const LOG_ENTRY_FORMAT: u8 = 1;
const LOG_ENTRY_LEN: usize = 1 + 8 + 8 + 1 + 16 + 32 + 8;

/// How a report arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `POST /v3/report`.
    V3,
    /// The legacy Metabase API (`/api/v1/submit/CPAN-Testers-Report`).
    Metabase,
    /// The collector's `POST /v1/report/{uuid}`.
    Collector,
}

impl Protocol {
    fn to_byte(self) -> u8 {
        match self {
            Protocol::V3 => 1,
            Protocol::Metabase => 2,
            Protocol::Collector => 3,
        }
    }
    fn from_byte(byte: u8) -> Option<Protocol> {
        match byte {
            1 => Some(Protocol::V3),
            2 => Some(Protocol::Metabase),
            3 => Some(Protocol::Collector),
            _ => None,
        }
    }
    /// The lowercase name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V3 => "v3",
            Protocol::Metabase => "metabase",
            Protocol::Collector => "collector",
        }
    }
}

/// The value stored under `d` + report id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    /// The log sequence number that created this report.
    pub seq: u64,
    /// Server receive time, Unix milliseconds (the document's `created` may be the client's clock).
    pub received_at_ms: i64,
    /// How it arrived.
    pub protocol: Protocol,
    /// Whether an original Metabase fact is stored under `f` + id.
    pub has_fact: bool,
    /// SHA-256 of the canonical submitted content: equal hashes mean "the same report".
    pub content_sha256: [u8; 32],
    /// The zstd frame of the canonical v3 document (`codec::compress_document`).
    pub document_frame: Vec<u8>,
}

impl ReportRecord {
    /// Serialises the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(REPORT_HEADER_LEN + self.document_frame.len());
        bytes.push(REPORT_RECORD_FORMAT);
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.received_at_ms.to_be_bytes());
        bytes.push(self.protocol.to_byte());
        bytes.push(u8::from(self.has_fact));
        bytes.extend_from_slice(&self.content_sha256);
        bytes.extend_from_slice(&self.document_frame);
        bytes
    }

    /// Parses a record; the error says what is damaged.
    pub fn decode(bytes: &[u8]) -> Result<ReportRecord, String> {
        if bytes.len() < REPORT_HEADER_LEN {
            return Err(format!(
                "report record of {} bytes is too short",
                bytes.len()
            ));
        }
        if bytes[0] != REPORT_RECORD_FORMAT {
            return Err(format!("unknown report record format {}", bytes[0]));
        }
        let protocol = Protocol::from_byte(bytes[17])
            .ok_or_else(|| format!("unknown protocol byte {}", bytes[17]))?;
        Ok(ReportRecord {
            seq: u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes")),
            received_at_ms: i64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes")),
            protocol,
            has_fact: bytes[18] == 1,
            content_sha256: bytes[19..51].try_into().expect("32 bytes"),
            document_frame: bytes[REPORT_HEADER_LEN..].to_vec(),
        })
    }

    /// Reads only the hash and seq, for the committer's duplicate check.
    pub fn decode_identity(bytes: &[u8]) -> Result<(u64, [u8; 32]), String> {
        if bytes.len() < REPORT_HEADER_LEN || bytes[0] != REPORT_RECORD_FORMAT {
            return Err("damaged report record".to_string());
        }
        Ok((
            u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes")),
            bytes[19..51].try_into().expect("32 bytes"),
        ))
    }
}

/// What a log entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogOp {
    /// A report was stored under `d`/`f` + id.
    PutReport,
    /// A Metabase user was registered or updated under `u` + id.
    PutUser,
}

/// One entry of the replication log, the value under `l` + seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Gap-free, strictly increasing, assigned by the committer.
    pub seq: u64,
    /// The leadership term that wrote it.
    pub term: u64,
    /// What changed.
    pub op: LogOp,
    /// The report or user id.
    pub id: Uuid,
    /// For reports the content hash; for users the SHA-256 of the stored user record.
    pub content_sha256: [u8; 32],
    /// Server time of the commit, Unix milliseconds.
    pub committed_at_ms: i64,
}

impl LogEntry {
    /// Serialises the entry.
    pub fn encode(&self) -> [u8; LOG_ENTRY_LEN] {
        let mut bytes = [0u8; LOG_ENTRY_LEN];
        bytes[0] = LOG_ENTRY_FORMAT;
        bytes[1..9].copy_from_slice(&self.seq.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.term.to_be_bytes());
        bytes[17] = match self.op {
            LogOp::PutReport => 1,
            LogOp::PutUser => 2,
        };
        bytes[18..34].copy_from_slice(self.id.as_bytes());
        bytes[34..66].copy_from_slice(&self.content_sha256);
        bytes[66..74].copy_from_slice(&self.committed_at_ms.to_be_bytes());
        bytes
    }

    /// Parses an entry; the error says what is damaged.
    pub fn decode(bytes: &[u8]) -> Result<LogEntry, String> {
        if bytes.len() != LOG_ENTRY_LEN || bytes[0] != LOG_ENTRY_FORMAT {
            return Err(format!("damaged log entry of {} bytes", bytes.len()));
        }
        let op = match bytes[17] {
            1 => LogOp::PutReport,
            2 => LogOp::PutUser,
            other => return Err(format!("unknown log op {other}")),
        };
        Ok(LogEntry {
            seq: u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes")),
            term: u64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes")),
            op,
            id: Uuid::from_bytes(bytes[18..34].try_into().expect("16 bytes")),
            content_sha256: bytes[34..66].try_into().expect("32 bytes"),
            committed_at_ms: i64::from_be_bytes(bytes[66..74].try_into().expect("8 bytes")),
        })
    }
}

/// A registered Metabase profile, stored as JSON under `u` + user id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// The profile (and Basic-auth user) GUID, lower case.
    pub guid: Uuid,
    /// Display name from the `Metabase-User-FullName` fact, decoded leniently.
    pub name: String,
    /// From the `Metabase-User-EmailAddress` fact.
    pub email: String,
    /// Argon2id PHC string of the secret's bytes (see `ingest::auth`).
    pub secret_hash: String,
    /// Server time of the registration, RFC 3339.
    pub registered_at: String,
}

/// Builds a compact binary value: LEB128 varints and length-prefixed strings. The derived rows
/// (`store::derived`) use it; every such value starts with its own format byte.
#[derive(Debug, Default)]
pub(crate) struct ValueWriter {
    bytes: Vec<u8>,
}

impl ValueWriter {
    pub(crate) fn with_format(format: u8, capacity: usize) -> ValueWriter {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.push(format);
        ValueWriter { bytes }
    }
    pub(crate) fn byte(&mut self, byte: u8) {
        self.bytes.push(byte);
    }
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }
    /// A signed value, zigzag-encoded so small negatives stay small.
    pub(crate) fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }
    pub(crate) fn text(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads what [`ValueWriter`] wrote; every error names what is damaged.
#[derive(Debug)]
pub(crate) struct ValueReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ValueReader<'a> {
    /// Checks the format byte and positions the reader after it.
    pub(crate) fn with_format(bytes: &'a [u8], format: u8, what: &str) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&found, rest)) if found == format => Ok(ValueReader { bytes: rest }),
            Some((&found, _)) => Err(format!("unknown {what} format {found}")),
            None => Err(format!("empty {what}")),
        }
    }
    pub(crate) fn byte(&mut self) -> Result<u8, String> {
        let (&byte, rest) = self.bytes.split_first().ok_or("value ends early")?;
        self.bytes = rest;
        Ok(byte)
    }
    pub(crate) fn raw(&mut self, length: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < length {
            return Err("value ends early".to_string());
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }
    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_string())
    }
    pub(crate) fn signed(&mut self) -> Result<i64, String> {
        let zigzag = self.varint()?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }
    pub(crate) fn text(&mut self) -> Result<String, String> {
        let length = usize::try_from(self.varint()?).map_err(|_| "text too long".to_string())?;
        let bytes = self.raw(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8".to_string())
    }
    /// Fails unless everything was read.
    pub(crate) fn end(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes left over", self.bytes.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_writer_and_reader_round_trip() {
        let mut writer = ValueWriter::with_format(7, 16);
        for value in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            writer.varint(value);
        }
        for value in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            writer.signed(value);
        }
        writer.text("caf\u{e9}");
        writer.text("");
        writer.byte(9);
        writer.raw(&[1, 2, 3]);
        let bytes = writer.finish();
        let mut reader = ValueReader::with_format(&bytes, 7, "test").unwrap();
        for value in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(reader.varint().unwrap(), value);
        }
        for value in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(reader.signed().unwrap(), value);
        }
        assert_eq!(reader.text().unwrap(), "caf\u{e9}");
        assert_eq!(reader.text().unwrap(), "");
        assert_eq!(reader.byte().unwrap(), 9);
        assert_eq!(reader.raw(3).unwrap(), &[1, 2, 3]);
        reader.end().unwrap();
        assert!(reader.byte().is_err());
        assert!(ValueReader::with_format(&bytes, 8, "test").is_err());
        assert!(ValueReader::with_format(&[], 7, "test").is_err());
        // 0, 1, 127, then the first byte of 128's two.
        let mut truncated = ValueReader::with_format(&bytes[..5], 7, "test").unwrap();
        for _ in 0..3 {
            assert!(truncated.varint().is_ok());
        }
        assert!(truncated.varint().is_err());
    }

    #[test]
    fn report_record_round_trips() {
        let record = ReportRecord {
            seq: 42,
            received_at_ms: 1_700_000_000_123,
            protocol: Protocol::Metabase,
            has_fact: true,
            content_sha256: [7; 32],
            document_frame: vec![1, 2, 3],
        };
        let bytes = record.encode();
        assert_eq!(ReportRecord::decode(&bytes).unwrap(), record);
        assert_eq!(
            ReportRecord::decode_identity(&bytes).unwrap(),
            (42, [7; 32])
        );
        assert!(ReportRecord::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn log_entry_round_trips() {
        let entry = LogEntry {
            seq: u64::MAX - 1,
            term: 3,
            op: LogOp::PutUser,
            id: Uuid::from_u128(0x1234),
            content_sha256: [9; 32],
            committed_at_ms: -5,
        };
        assert_eq!(LogEntry::decode(&entry.encode()).unwrap(), entry);
        assert!(LogEntry::decode(&[1, 2, 3]).is_err());
    }
}
