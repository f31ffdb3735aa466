//! Compression of stored documents: zstd with dictionaries.
//!
//! Two kinds of frames are written:
//!
//! * **Document frames** hold the canonical v3 JSON, compressed with a dictionary trained on
//!   report text and shipped in `data/dictionaries/`. zstd writes the dictionary id into every
//!   frame; [`decompress_document`] reads it back and picks the matching dictionary. Every
//!   dictionary ever shipped stays embedded in the binary ([`SHIPPED_DICTIONARIES`]): removing
//!   one makes the documents written with it unreadable.
//! * **Fact frames** hold the original Metabase submission byte for byte. Its text is the same
//!   test report as the document's, escaped three times; compressing it against a raw-content
//!   dictionary made from the document (the text escaped the same way) costs little more than
//!   its metadata. The dictionary is recomputed from the document on read, so the document
//!   must be decoded first. Both sides of that contract live in this file.
//!
//! Compression runs on the caller's thread; callers on the async runtime use
//! `spawn_blocking` (it is CPU work of tens to hundreds of microseconds per report).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::error::{Error, Result};

/// zstd level for documents. Levels above ~10 cost ingest CPU for little gain on reports.
pub const COMPRESSION_LEVEL: i32 = 3;

/// Upper bound for a decompressed value. Bodies are limited to 32 MiB by default and the
/// document is never larger than its submission by more than a few bytes, so anything above
/// this is damage, not data.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// The dictionaries this binary can read, newest last. The last one is used for new frames.
/// Never remove an entry: documents compressed with it would become unreadable.
pub const SHIPPED_DICTIONARIES: &[&[u8]] =
    &[include_bytes!("../data/dictionaries/reports-1.zdict")];

const ZSTD_DICT_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];

struct DictionarySet {
    encoder: EncoderDictionary<'static>,
    current_id: u32,
    decoders: HashMap<u32, DecoderDictionary<'static>>,
}

fn dictionary_set() -> &'static DictionarySet {
    static SET: OnceLock<DictionarySet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut decoders = HashMap::new();
        let mut current_id = 0;
        for bytes in SHIPPED_DICTIONARIES {
            let id =
                dictionary_id(bytes).expect("a shipped dictionary has a zstd dictionary header");
            decoders.insert(id, DecoderDictionary::copy(bytes));
            current_id = id;
        }
        let newest = SHIPPED_DICTIONARIES
            .last()
            .expect("at least one dictionary is shipped");
        DictionarySet {
            encoder: EncoderDictionary::copy(newest, COMPRESSION_LEVEL),
            current_id,
            decoders,
        }
    })
}

/// The dictionary id written in a zstd dictionary's header, or `None` for raw content.
pub fn dictionary_id(dictionary: &[u8]) -> Option<u32> {
    if dictionary.len() < 8 || dictionary[..4] != ZSTD_DICT_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(dictionary[4..8].try_into().ok()?))
}

/// The id of the dictionary new documents are compressed with.
pub fn current_dictionary_id() -> u32 {
    dictionary_set().current_id
}

thread_local! {
    static DOCUMENT_COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses a canonical v3 document with the newest shipped dictionary.
pub fn compress_document(document: &[u8]) -> Result<Vec<u8>> {
    DOCUMENT_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let compressor = Compressor::with_prepared_dictionary(&dictionary_set().encoder)
                .map_err(|error| Error::Internal(format!("zstd compressor setup: {error}")))?;
            *slot = Some(compressor);
        }
        let compressor = slot.as_mut().expect("initialised above");
        compressor
            .compress(document)
            .map_err(|error| Error::Internal(format!("zstd compression: {error}")))
    })
}

/// Decompresses a document frame written by [`compress_document`] with any shipped dictionary.
pub fn decompress_document(frame: &[u8]) -> Result<Vec<u8>> {
    let capacity = frame_content_size(frame)?;
    let set = dictionary_set();
    let dictionary_id = zstd::zstd_safe::get_dict_id_from_frame(frame).map(|id| id.get());
    let mut decompressor = match dictionary_id {
        Some(id) => {
            let dictionary = set.decoders.get(&id).ok_or_else(|| {
                Error::corruption(
                    "document frame",
                    format!("frame needs zstd dictionary {id}, which this binary does not ship"),
                )
            })?;
            Decompressor::with_prepared_dictionary(dictionary)
        }
        None => Decompressor::new(),
    }
    .map_err(|error| Error::Internal(format!("zstd decompressor setup: {error}")))?;
    decompressor
        .decompress(frame, capacity)
        .map_err(|error| Error::corruption("document frame", error.to_string()))
}

/// Compresses the original Metabase fact against a raw dictionary derived from its document.
pub fn compress_fact(fact: &[u8], document_textreport: &str) -> Result<Vec<u8>> {
    let dictionary = fact_dictionary(document_textreport);
    let mut compressor = Compressor::with_dictionary(COMPRESSION_LEVEL, &dictionary)
        .map_err(|error| Error::Internal(format!("zstd compressor setup: {error}")))?;
    compressor
        .compress(fact)
        .map_err(|error| Error::Internal(format!("zstd compression: {error}")))
}

/// Decompresses a frame written by [`compress_fact`]; `document_textreport` must be the text
/// stored in the report's document (`result.output.uncategorized`).
pub fn decompress_fact(frame: &[u8], document_textreport: &str) -> Result<Vec<u8>> {
    let capacity = frame_content_size(frame)?;
    let dictionary = fact_dictionary(document_textreport);
    let mut decompressor = Decompressor::with_dictionary(&dictionary)
        .map_err(|error| Error::Internal(format!("zstd decompressor setup: {error}")))?;
    decompressor
        .decompress(frame, capacity)
        .map_err(|error| Error::corruption("fact frame", error.to_string()))
}

/// The text as it appears inside a Metabase submission: escaped for JSON three times (level 3
/// inside level 2 inside level 1), ASCII-only as Perl's JSON with `->ascii` writes it.
fn fact_dictionary(textreport: &str) -> Vec<u8> {
    let once = json_escape_ascii(textreport);
    let twice = json_escape_ascii(&once);
    json_escape_ascii(&twice).into_bytes()
}

/// Escapes `text` as the inside of a JSON string the way Perl's `JSON::PP->ascii` does:
/// `\"`, `\\`, the short escapes for control characters, `\u00xx` for other controls and
/// lower-case `\uxxxx` (surrogate pairs above the BMP) for everything outside ASCII.
pub fn json_escape_ascii(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 8);
    for character in text.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{08}' => escaped.push_str("\\b"),
            '\u{0c}' => escaped.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    escaped.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}

fn frame_content_size(frame: &[u8]) -> Result<usize> {
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size as usize <= MAX_DECOMPRESSED_BYTES => Ok(size as usize),
        Ok(Some(size)) => Err(Error::corruption(
            "zstd frame",
            format!("declared content size {size} exceeds the {MAX_DECOMPRESSED_BYTES} byte limit"),
        )),
        Ok(None) => Err(Error::corruption(
            "zstd frame",
            "frame does not declare its content size",
        )),
        Err(_) => Err(Error::corruption("zstd frame", "not a zstd frame")),
    }
}

/// Trains a zstd dictionary of `dictionary_size` bytes from sample documents.
///
/// zstd recommends about 100 times the dictionary size in samples; fewer still work but the
/// dictionary overfits.
pub fn train_dictionary(samples: &[Vec<u8>], dictionary_size: usize) -> Result<Vec<u8>> {
    zstd::dict::from_samples(samples, dictionary_size)
        .map_err(|error| Error::Internal(format!("dictionary training failed: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_round_trips_and_names_its_dictionary() {
        let document =
            br#"{"result":{"grade":"pass","output":{"uncategorized":"All tests successful."}}}"#;
        let frame = compress_document(document).unwrap();
        let id = zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|id| id.get());
        assert_eq!(id, Some(current_dictionary_id()));
        assert_eq!(decompress_document(&frame).unwrap(), document);
    }

    #[test]
    fn fact_round_trips_against_its_document_text() {
        let text = "Dear AUTHOR,\n\"quoted\" caf\u{e9} \\ back\tslash \u{1F600}";
        let fact = format!(
            "{{\"content\":\"[{{\\\"content\\\":\\\"{}\\\"}}]\"}}",
            json_escape_ascii(&json_escape_ascii(&json_escape_ascii(text)))
        );
        let frame = compress_fact(fact.as_bytes(), text).unwrap();
        assert_eq!(decompress_fact(&frame, text).unwrap(), fact.as_bytes());
        assert!(
            decompress_fact(&frame, "other text").is_err()
                || decompress_fact(&frame, "other text").unwrap() != fact.as_bytes()
        );
    }

    #[test]
    fn escaping_matches_perl_ascii_json() {
        assert_eq!(
            json_escape_ascii("a\"b\\c\nd\u{1}"),
            "a\\\"b\\\\c\\nd\\u0001"
        );
        assert_eq!(json_escape_ascii("caf\u{e9}"), "caf\\u00e9");
        assert_eq!(json_escape_ascii("\u{1F600}"), "\\ud83d\\ude00");
        assert_eq!(json_escape_ascii("a/b\u{7f}"), "a/b\u{7f}");
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        assert!(decompress_document(b"not zstd").is_err());
        let mut frame = compress_document(b"{\"a\":1}").unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        assert!(
            decompress_document(&frame).is_err()
                || decompress_document(&frame).unwrap() != b"{\"a\":1}"
        );
    }
}
