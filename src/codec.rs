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
//!   A stored fact is one format byte and a zstd frame. Format [`FACT_FORMAT_ENVELOPE`]'s
//!   dictionary is [`FACT_ENVELOPE_TEMPLATE_1`] (the constant parts of a Metabase submission:
//!   key names, fact types and resource prefixes at each escaping level, about 1 KB) followed
//!   by the escaped text; the template alone saves about a third of a fact frame. The template
//!   of a format never changes: a better one is a new format byte, and readers keep the old.
//!
//! Compression runs on the caller's thread; callers on the async runtime use
//! `spawn_blocking` (it is CPU work of tens to hundreds of microseconds per report).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{CCtx, DCtx};

use crate::error::{Error, Result};

/// zstd level for documents. Levels above ~10 cost ingest CPU for little gain on reports.
pub const COMPRESSION_LEVEL: i32 = 3;

/// zstd level for fact frames.
pub const FACT_COMPRESSION_LEVEL: i32 = 3;

/// Fact format: a zstd frame whose raw dictionary is [`FACT_ENVELOPE_TEMPLATE_1`] followed by
/// the document's text escaped three times.
pub const FACT_FORMAT_ENVELOPE: u8 = 1;

/// The start of the dictionary of a [`FACT_FORMAT_ENVELOPE`] fact: what every Metabase
/// submission of a CPAN-Testers-Report spells out besides its values (`metabase.md` §3; the key
/// order is Perl's hash order, so zstd finds the pieces wherever they are). Part of the stored
/// format: never edit it, add a new format instead.
pub const FACT_ENVELOPE_TEMPLATE_1: &str = r#"{"metadata":{"core":{"guid":"","schema_version":1,"update_time":"","type":"CPAN-Testers-Report","resource":"cpan:///distfile/","creation_time":"","valid":1,"creator":"metabase:user:"}},"content":"[{\"content\":\"{\\\"grade\\\":\\\"fail\\\",\\\"grade\\\":\\\"unknown\\\",\\\"grade\\\":\\\"na\\\",\\\"osname\\\":\\\"linux\\\",\\\"osversion\\\":\\\"\\\",\\\"archname\\\":\\\"x86_64-linux-gnu-thread-multi\\\",\\\"perl_version\\\":\\\"v5.\\\"}\",\"metadata\":{\"core\":{\"creation_time\":\"\",\"valid\":1,\"creator\":\"metabase:user:\",\"guid\":\"\",\"schema_version\":1,\"update_time\":\"\",\"type\":\"CPAN-Testers-Fact-TestSummary\",\"resource\":\"cpan:///distfile/\"}}},{\"metadata\":{\"core\":{\"creation_time\":\"\",\"valid\":1,\"creator\":\"metabase:user:\",\"guid\":\"\",\"schema_version\":1,\"update_time\":\"\",\"type\":\"CPAN-Testers-Fact-LegacyReport\",\"resource\":\"cpan:///distfile/\"}},\"content\":\"{\\\"grade\\\":\\\"pass\\\",\\\"textreport\\\":\\\""#;

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
    /// One compression and one decompression context per thread, reused for every frame: a
    /// context's tables are allocated and sized once instead of per report.
    static COMPRESSION_CONTEXT: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSION_CONTEXT: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    /// The scratch buffer a fact dictionary is built in (see [`with_fact_dictionary`]).
    static FACT_DICTIONARY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The scratch buffer frames are compressed into (zstd wants room for the worst case,
    /// about the input's size; the frame is a tenth of it and is copied out at its size).
    static FRAME_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Compresses with `compress` into the per-thread scratch buffer sized for `input_length`,
/// and returns `prefix` followed by the frame, allocated at its exact size.
fn compress_exact(
    input_length: usize,
    prefix: &[u8],
    compress: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let bound = zstd::zstd_safe::compress_bound(input_length);
    let finish = |scratch: &Vec<u8>| {
        let mut stored = Vec::with_capacity(prefix.len() + scratch.len());
        stored.extend_from_slice(prefix);
        stored.extend_from_slice(scratch);
        stored
    };
    FRAME_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            scratch.reserve(bound);
            compress(&mut scratch)?;
            let stored = finish(&scratch);
            if scratch.capacity() > MAX_KEPT_SCRATCH_BYTES {
                *scratch = Vec::new();
            }
            Ok(stored)
        }
        Err(_) => {
            let mut scratch = Vec::with_capacity(bound);
            compress(&mut scratch)?;
            Ok(finish(&scratch))
        }
    })
}

/// A scratch buffer larger than this is released after use rather than kept for the thread.
const MAX_KEPT_SCRATCH_BYTES: usize = 1024 * 1024;

fn with_compression_context<T>(work: impl FnOnce(&mut CCtx<'static>) -> Result<T>) -> Result<T> {
    COMPRESSION_CONTEXT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let context = match &mut *slot {
                Some(context) => context,
                empty => empty.insert(CCtx::try_create().ok_or_else(|| {
                    Error::Internal("zstd compression context setup failed".to_string())
                })?),
            };
            work(context)
        }
        // Only reachable if `work` itself compressed: use a private context.
        Err(_) => {
            work(&mut CCtx::try_create().ok_or_else(|| {
                Error::Internal("zstd compression context setup failed".to_string())
            })?)
        }
    })
}

fn with_decompression_context<T>(work: impl FnOnce(&mut DCtx<'static>) -> Result<T>) -> Result<T> {
    DECOMPRESSION_CONTEXT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let context = match &mut *slot {
                Some(context) => context,
                empty => empty.insert(DCtx::try_create().ok_or_else(|| {
                    Error::Internal("zstd decompression context setup failed".to_string())
                })?),
            };
            work(context)
        }
        Err(_) => work(&mut DCtx::try_create().ok_or_else(|| {
            Error::Internal("zstd decompression context setup failed".to_string())
        })?),
    })
}

/// Compresses a canonical v3 document with the newest shipped dictionary.
pub fn compress_document(document: &[u8]) -> Result<Vec<u8>> {
    let dictionary = dictionary_set().encoder.as_cdict();
    with_compression_context(|context| {
        compress_exact(document.len(), &[], |frame| {
            context
                .compress_using_cdict(frame, document, dictionary)
                .map(drop)
                .map_err(|code| Error::Internal(format!("zstd compression: {}", error_name(code))))
        })
    })
}

/// Decompresses a document frame written by [`compress_document`] with any shipped dictionary.
pub fn decompress_document(frame: &[u8]) -> Result<Vec<u8>> {
    let capacity = frame_content_size(frame)?;
    let set = dictionary_set();
    let dictionary = match zstd::zstd_safe::get_dict_id_from_frame(frame).map(|id| id.get()) {
        Some(id) => Some(set.decoders.get(&id).ok_or_else(|| {
            Error::corruption(
                "document frame",
                format!("frame needs zstd dictionary {id}, which this binary does not ship"),
            )
        })?),
        None => None,
    };
    with_decompression_context(|context| {
        let mut document = Vec::with_capacity(capacity);
        let result = match dictionary {
            Some(dictionary) => {
                context.decompress_using_ddict(&mut document, frame, dictionary.as_ddict())
            }
            None => context.decompress(&mut document, frame),
        };
        result.map_err(|code| Error::corruption("document frame", error_name(code)))?;
        Ok(document)
    })
}

/// Compresses the original Metabase fact against a raw dictionary derived from its document
/// (format [`FACT_FORMAT_ENVELOPE`]).
pub fn compress_fact(fact: &[u8], document_textreport: &str) -> Result<Vec<u8>> {
    with_fact_dictionary(document_textreport, |dictionary| {
        with_compression_context(|context| {
            compress_exact(fact.len(), &[FACT_FORMAT_ENVELOPE], |frame| {
                // The one-shot "using dict" call loads the raw content straight into the
                // context's tables for this frame only: no dictionary object is built, nothing
                // is retained.
                context
                    .compress_using_dict(frame, fact, dictionary, FACT_COMPRESSION_LEVEL)
                    .map(drop)
                    .map_err(|code| {
                        Error::Internal(format!("zstd compression: {}", error_name(code)))
                    })
            })
        })
    })
}

/// Decompresses a fact written by [`compress_fact`]; `document_textreport` must be the text
/// stored in the report's document (`result.output.uncategorized`).
pub fn decompress_fact(stored: &[u8], document_textreport: &str) -> Result<Vec<u8>> {
    let frame = match stored.split_first() {
        Some((&FACT_FORMAT_ENVELOPE, frame)) => frame,
        Some((&format, _)) => {
            return Err(Error::corruption(
                "fact frame",
                format!("unknown fact format {format}"),
            ));
        }
        None => return Err(Error::corruption("fact frame", "empty")),
    };
    let capacity = frame_content_size(frame)?;
    with_fact_dictionary(document_textreport, |dictionary| {
        with_decompression_context(|context| {
            let mut fact = Vec::with_capacity(capacity);
            context
                .decompress_using_dict(&mut fact, frame, dictionary)
                .map_err(|code| Error::corruption("fact frame", error_name(code)))?;
            Ok(fact)
        })
    })
}

fn error_name(code: usize) -> String {
    zstd::zstd_safe::get_error_name(code).to_string()
}

/// Runs `work` with the raw dictionary of a fact: the text as it appears inside a Metabase
/// submission, escaped for JSON three times (level 3 inside level 2 inside level 1), ASCII-only
/// as Perl's JSON with `->ascii` writes it. Built in a per-thread scratch buffer.
fn with_fact_dictionary<T>(textreport: &str, work: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    FACT_DICTIONARY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            buffer.extend_from_slice(FACT_ENVELOPE_TEMPLATE_1.as_bytes());
            push_json_escaped_ascii(&mut buffer, textreport, 3);
            let result = work(&buffer);
            if buffer.capacity() > MAX_KEPT_SCRATCH_BYTES {
                *buffer = Vec::new();
            }
            result
        }
        Err(_) => {
            let mut buffer = FACT_ENVELOPE_TEMPLATE_1.as_bytes().to_vec();
            push_json_escaped_ascii(&mut buffer, textreport, 3);
            work(&buffer)
        }
    })
}

/// The fact dictionary as one value (tests; the codec builds it in place).
#[cfg(test)]
fn fact_dictionary(textreport: &str) -> Vec<u8> {
    let mut buffer = FACT_ENVELOPE_TEMPLATE_1.as_bytes().to_vec();
    push_json_escaped_ascii(&mut buffer, textreport, 3);
    buffer
}

/// Escapes `text` as the inside of a JSON string the way Perl's `JSON::PP->ascii` does:
/// `\"`, `\\`, the short escapes for control characters, `\u00xx` for other controls and
/// lower-case `\uxxxx` (surrogate pairs above the BMP) for everything outside ASCII.
pub fn json_escape_ascii(text: &str) -> String {
    let mut escaped = Vec::with_capacity(text.len() + text.len() / 8);
    push_json_escaped_ascii(&mut escaped, text, 1);
    String::from_utf8(escaped).expect("the escaped form is ASCII")
}

/// How each ASCII byte looks after escaping it `levels` times (index 1..=3; each level escapes
/// the previous level's output). Escaping works character by character and its output is ASCII,
/// so escaping a text n times is the concatenation of each character escaped n times.
struct EscapeTable {
    /// `expansions[levels - 1][byte]`; empty for bytes that stay as they are at every level.
    expansions: [Vec<Vec<u8>>; 3],
}

fn escape_table() -> &'static EscapeTable {
    static TABLE: OnceLock<EscapeTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let expand = |levels: usize| -> Vec<Vec<u8>> {
            (0u8..0x80)
                .map(|byte| {
                    if !needs_escape(byte) {
                        return Vec::new();
                    }
                    let mut text = vec![byte];
                    for _ in 0..levels {
                        text = escape_one_level_reference(&text);
                    }
                    text
                })
                .collect()
        };
        EscapeTable {
            expansions: [expand(1), expand(2), expand(3)],
        }
    })
}

/// Whether an ASCII byte changes when escaped (control characters, `"` and `\`).
const fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// One level of escaping of ASCII input, the straightforward way; builds [`EscapeTable`].
fn escape_one_level_reference(ascii: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &byte in ascii {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            byte if byte < 0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX_DIGITS[usize::from(byte >> 4)]);
                out.push(HEX_DIGITS[usize::from(byte & 0xf)]);
            }
            byte => out.push(byte),
        }
    }
    out
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` escaped `levels` times (1 to 3) as [`json_escape_ascii`] does, in one pass.
/// A character outside ASCII becomes `\uxxxx` at the first level; each further level doubles
/// the backslash.
fn push_json_escaped_ascii(out: &mut Vec<u8>, text: &str, levels: usize) {
    debug_assert!((1..=3).contains(&levels));
    let table = &escape_table().expansions[levels - 1];
    let backslashes: &[u8] = &b"\\\\\\\\"[..1 << (levels - 1)];
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 4);
    let mut plain_from = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte < 0x80 {
            if needs_escape(byte) {
                out.extend_from_slice(&bytes[plain_from..index]);
                out.extend_from_slice(&table[usize::from(byte)]);
                plain_from = index + 1;
            }
            index += 1;
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..index]);
        let character = text[index..]
            .chars()
            .next()
            .expect("a str holds whole characters");
        let mut units = [0u16; 2];
        for unit in character.encode_utf16(&mut units) {
            out.extend_from_slice(backslashes);
            out.push(b'u');
            for shift in [12, 8, 4, 0] {
                out.push(HEX_DIGITS[usize::from((*unit >> shift) & 0xf)]);
            }
        }
        index += character.len_utf8();
        plain_from = index;
    }
    out.extend_from_slice(&bytes[plain_from..]);
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

    /// The escaping as first written, character by character: the specification the table-driven
    /// escaper must match byte for byte (stored facts depend on it).
    fn json_escape_ascii_reference(text: &str) -> String {
        let mut escaped = String::new();
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

    #[test]
    fn fast_escaping_matches_the_reference_at_every_level() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain text".to_string(),
            "Dear AUTHOR,\n\"quoted\" caf\u{e9} \\ back\tslash \u{1F600}\r\u{1}\u{1f}\u{7f}\u{80}\u{ffff}"
                .to_string(),
            "\u{08}\u{0c}/<>&'".to_string(),
        ];
        // Every character class in every position.
        let alphabet: Vec<char> = (0u32..0x100)
            .filter_map(char::from_u32)
            .chain([
                '\u{100}',
                '\u{263a}',
                '\u{fffd}',
                '\u{10000}',
                '\u{1F600}',
                '\u{10ffff}',
            ])
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let length = (state % 40) as usize;
            let mut text = String::new();
            for _ in 0..length {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            samples.push(text);
        }
        for text in &samples {
            let once = json_escape_ascii_reference(text);
            let twice = json_escape_ascii_reference(&once);
            let thrice = json_escape_ascii_reference(&twice);
            assert_eq!(json_escape_ascii(text), once, "{text:?}");
            for (levels, expected) in [(1, &once), (2, &twice), (3, &thrice)] {
                let mut out = Vec::new();
                push_json_escaped_ascii(&mut out, text, levels);
                assert_eq!(out, expected.as_bytes(), "{text:?} at {levels} levels");
            }
            assert_eq!(
                fact_dictionary(text),
                [FACT_ENVELOPE_TEMPLATE_1.as_bytes(), thrice.as_bytes()].concat()
            );
        }
    }

    #[test]
    fn contexts_are_reused_across_frame_kinds() {
        for round in 0..3 {
            let text = format!("round {round}: All tests successful.\n\"caf\u{e9}\"");
            let fact = format!(
                "{{\"content\":\"{}\"}}",
                json_escape_ascii(&json_escape_ascii(&json_escape_ascii(&text)))
            );
            let fact_frame = compress_fact(fact.as_bytes(), &text).unwrap();
            let document = format!("{{\"round\":{round}}}");
            let document_frame = compress_document(document.as_bytes()).unwrap();
            assert_eq!(
                decompress_fact(&fact_frame, &text).unwrap(),
                fact.as_bytes()
            );
            assert_eq!(
                decompress_document(&document_frame).unwrap(),
                document.as_bytes()
            );
            // A raw frame without a dictionary still decodes.
            let plain = zstd::bulk::compress(document.as_bytes(), 3).unwrap();
            assert_eq!(decompress_document(&plain).unwrap(), document.as_bytes());
        }
    }

    #[test]
    fn the_fact_envelope_template_is_frozen() {
        // Stored facts of format 1 need exactly these bytes to decompress. Never change the
        // template; add a new format with a new one instead.
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(FACT_ENVELOPE_TEMPLATE_1.as_bytes()).into();
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "49d35f411222d60ce710902af7163406b2104eb4080abfa0cd469b72b8daa2b7"
        );
        assert!(FACT_ENVELOPE_TEMPLATE_1.is_ascii());
    }

    #[test]
    fn facts_carry_their_format() {
        let text = "All tests successful.";
        let stored = compress_fact(b"{\"content\":\"x\"}", text).unwrap();
        assert_eq!(stored[0], FACT_FORMAT_ENVELOPE);
        let mut unknown = stored.clone();
        unknown[0] = 0x28;
        assert!(decompress_fact(&unknown, text).is_err());
        assert!(decompress_fact(&[], text).is_err());
        assert!(decompress_fact(&stored[..1], text).is_err());
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
