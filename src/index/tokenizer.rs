//! The tokenizer of the full-text field, made for Perl build and test output.
//!
//! Failure output is full of module names (`Foo::Bar`), file paths (`t/02-basic.t`,
//! `/usr/lib/perl5/Foo/Bar.pm`), version strings (`5.036001`, `v5.38.0`) and Perl diagnostics
//! (`Can't locate`). A text tokenizer that drops punctuation would make `Foo::Bar` the same as
//! `Foo Bar` or `Foo-Bar`; one that keeps whole compounds would not find `Foo/Bar.pm` inside
//! `lib/Foo/Bar.pm`.
//!
//! This tokenizer does neither. It emits every *word* (a run of letters, digits and `_`,
//! lower-cased) and, between two words, the *joiner* that glues them when it is a short run of
//! `: / \ . - ' @` (at most three characters): `Foo::Bar` is `foo` `::` `bar`, and
//! `t/02-basic.t` is `t` `/` `02` `-` `basic` `.` `t`. Punctuation that does not sit between two
//! words (`(`, `"`, a sentence's final `.`, ` .. `) is dropped.
//!
//! A perl command-line switch glued to a module name (`"-MExtUtils::Command::MM"`,
//! `-mFoo::Bar`, as every `make test` line prints) loses its switch letter: it is `extutils ::
//! command :: mm`, not `mextutils ...`, so the module name is found there too.
//!
//! Because queries go through the same tokenizer, a search for `Foo::Bar` becomes the phrase
//! `foo :: bar`, which matches `Foo::Bar` and `Foo::Bar::Baz` but not `Foo Bar`; a search for
//! `Foo/Bar.pm` matches `/usr/lib/Foo/Bar.pm`; a search for `foo` alone still finds all of them.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name this tokenizer is registered under in the index's tokenizer manager.
pub const PERL_OUTPUT_TOKENIZER: &str = "perl_output";

/// Longest joiner run kept as a token (`::`, `://`); longer runs of punctuation are dropped.
const MAX_JOINER_BYTES: usize = 3;

/// Words longer than this (base64 blobs, hex dumps) are skipped: they are never searched for
/// and would bloat the term dictionary.
pub const MAX_WORD_BYTES: usize = 100;

/// Splits Perl output into words and the joiners between them (see the module docs).
#[derive(Clone, Default)]
pub struct PerlOutputTokenizer {
    token: Token,
}

/// The token stream of [`PerlOutputTokenizer`].
pub struct PerlOutputTokenStream<'a> {
    spans: TokenSpans<'a>,
    token: &'a mut Token,
}

impl Tokenizer for PerlOutputTokenizer {
    type TokenStream<'a> = PerlOutputTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> PerlOutputTokenStream<'a> {
        self.token.reset();
        PerlOutputTokenStream {
            spans: TokenSpans::new(text),
            token: &mut self.token,
        }
    }
}

/// Where the tokens of a text are, as byte ranges, without building their (lower-cased) text:
/// the scanner behind [`PerlOutputTokenStream`], also used to find matches for snippets.
pub struct TokenSpans<'a> {
    text: &'a str,
    /// Byte offset where scanning resumes.
    cursor: usize,
    /// A joiner found after the last word, returned before the next word.
    pending_joiner: Option<(usize, usize)>,
}

impl<'a> TokenSpans<'a> {
    /// The spans of `text`.
    pub fn new(text: &'a str) -> TokenSpans<'a> {
        TokenSpans::starting_at(text, 0)
    }

    /// The spans of `text` from byte `offset` on, the same as [`TokenSpans::new`] gives there.
    ///
    /// The trap: that holds only where no token runs across `offset`. Pass 0 or an offset from
    /// [`restart_offset_before`]; from anywhere else the first tokens may be cut or a joiner
    /// lost.
    pub fn starting_at(text: &'a str, offset: usize) -> TokenSpans<'a> {
        TokenSpans {
            text,
            cursor: offset.min(text.len()),
            pending_joiner: None,
        }
    }

    /// The byte offset scanning resumes at: every token that starts before it has been
    /// returned, except a pending joiner.
    pub fn position(&self) -> usize {
        self.cursor
    }
}

/// The last offset at or before `position` where [`TokenSpans::starting_at`] may start: an
/// ASCII character that is neither a word nor a joiner character, so no token (word, joiner,
/// or the joiner between two words) runs across it. 0 when there is none.
pub fn restart_offset_before(text: &str, position: usize) -> usize {
    let bytes = text.as_bytes();
    let mut offset = position.min(bytes.len());
    while offset > 0 {
        if let Some(&byte) = bytes.get(offset)
            && byte.is_ascii()
            && !is_word_char(char::from(byte))
            && !is_joiner_char(char::from(byte))
        {
            return offset;
        }
        offset -= 1;
    }
    0
}

/// Whether the token at `span` of `text` is `lowercase_token` (a token as the tokenizer
/// emits it), without allocating for ASCII text.
pub fn span_equals_token(text: &str, span: (usize, usize), lowercase_token: &str) -> bool {
    let slice = &text[span.0..span.1];
    if slice.is_ascii() {
        return slice.len() == lowercase_token.len() && slice.eq_ignore_ascii_case(lowercase_token);
    }
    slice
        .chars()
        .flat_map(char::to_lowercase)
        .eq(lowercase_token.chars())
}

/// Whether `character` belongs to a word.
pub fn is_word_char(character: char) -> bool {
    character.is_alphanumeric() || character == '_'
}

/// Whether `character` may glue two words together.
pub fn is_joiner_char(character: char) -> bool {
    matches!(character, ':' | '/' | '\\' | '.' | '-' | '\'' | '@')
}

/// Whether a token is a joiner (punctuation between words) rather than a word. Joiners make
/// phrases precise but are not worth highlighting on their own.
pub fn is_joiner_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_joiner_char)
}

/// The character at byte `index` of `text` (a character boundary) and its length in bytes.
/// ASCII, by far the most common case, is read without decoding.
#[inline]
fn char_at(text: &str, index: usize) -> (char, usize) {
    let byte = text.as_bytes()[index];
    if byte.is_ascii() {
        return (char::from(byte), 1);
    }
    let character = text[index..]
        .chars()
        .next()
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    (character, character.len_utf8())
}

impl TokenSpans<'_> {
    /// 1 when the word at `start..end` is a perl `-M`/`-m` switch glued to a module name
    /// (`-MFoo`: a `-` that does not join two words, then `M` or `m`, then a capital), so the
    /// word starts after the switch letter; otherwise 0.
    fn switch_letter_length(&self, start: usize, end: usize) -> usize {
        let bytes = self.text.as_bytes();
        let is_switch = end - start >= 2
            && matches!(bytes[start], b'M' | b'm')
            && bytes[start + 1].is_ascii_uppercase()
            && start >= 1
            && bytes[start - 1] == b'-'
            && (start == 1
                || !is_word_char(char::from(bytes[start - 2])) && bytes[start - 2].is_ascii());
        usize::from(is_switch)
    }

    /// The joiner run after a word ending at `word_end`, when it is followed by another word.
    /// Joiner characters are ASCII, so the run is measured in bytes.
    fn joiner_after(&self, word_end: usize) -> Option<(usize, usize)> {
        let bytes = self.text.as_bytes();
        let mut end = word_end;
        while end < bytes.len()
            && end - word_end <= MAX_JOINER_BYTES
            && is_joiner_char(char::from(bytes[end]))
        {
            end += 1;
        }
        let run_length = end - word_end;
        if run_length == 0 || run_length > MAX_JOINER_BYTES || end >= bytes.len() {
            return None;
        }
        is_word_char(char_at(self.text, end).0).then_some((word_end, end))
    }
}

impl Iterator for TokenSpans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if let Some(joiner) = self.pending_joiner.take() {
            return Some(joiner);
        }
        let length = self.text.len();
        loop {
            let mut index = self.cursor;
            while index < length {
                let (character, width) = char_at(self.text, index);
                if is_word_char(character) {
                    break;
                }
                index += width;
            }
            if index >= length {
                self.cursor = length;
                return None;
            }
            let start = index;
            while index < length {
                let (character, width) = char_at(self.text, index);
                if !is_word_char(character) {
                    break;
                }
                index += width;
            }
            let end = index;
            let start = start + self.switch_letter_length(start, end);
            if end - start > MAX_WORD_BYTES {
                // Too long to be useful: skip it and whatever joins it to the next word.
                self.cursor = end;
                continue;
            }
            self.pending_joiner = self.joiner_after(end);
            self.cursor = self
                .pending_joiner
                .map_or(end, |(_, joiner_end)| joiner_end);
            return Some((start, end));
        }
    }
}

impl PerlOutputTokenStream<'_> {
    fn set_token(&mut self, from: usize, to: usize) {
        let slice = &self.spans.text[from..to];
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        self.token.position_length = 1;
        self.token.text.clear();
        if slice.is_ascii() {
            self.token.text.push_str(slice);
            self.token.text.make_ascii_lowercase();
        } else {
            for character in slice.chars() {
                self.token.text.extend(character.to_lowercase());
            }
        }
    }
}

impl TokenStream for PerlOutputTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some((from, to)) = self.spans.next() else {
            return false;
        };
        self.set_token(from, to);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// The texts of the tokens of `text`, in order (for queries and tests).
pub fn token_texts(text: &str) -> Vec<String> {
    let mut tokenizer = PerlOutputTokenizer::default();
    let mut stream = tokenizer.token_stream(text);
    let mut texts = Vec::new();
    while stream.advance() {
        texts.push(stream.token().text.clone());
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_keep_their_separator() {
        assert_eq!(
            token_texts("Can't locate Foo::Bar"),
            ["can", "'", "t", "locate", "foo", "::", "bar"]
        );
        assert_eq!(token_texts("Foo Bar"), ["foo", "bar"]);
    }

    #[test]
    fn paths_and_versions_are_split_at_their_joiners() {
        assert_eq!(
            token_texts("t/02-basic.t .. ok"),
            ["t", "/", "02", "-", "basic", ".", "t", "ok"]
        );
        assert_eq!(
            token_texts("(/usr/lib/Foo/Bar.pm)."),
            ["usr", "/", "lib", "/", "foo", "/", "bar", ".", "pm"]
        );
        assert_eq!(
            token_texts("perl v5.38.0"),
            ["perl", "v5", ".", "38", ".", "0"]
        );
    }

    #[test]
    fn perl_switches_do_not_hide_module_names() {
        assert_eq!(
            token_texts(r#""/usr/bin/perl" "-MExtUtils::Command::MM" -mFoo::Bar -MTest"#),
            [
                "usr", "/", "bin", "/", "perl", "extutils", "::", "command", "::", "mm", "foo",
                "::", "bar", "test"
            ]
        );
        // Only a switch: a word joined by `-`, or not followed by a capital, keeps its letter.
        assert_eq!(
            token_texts("Test-MMore -Mstrict MFoo"),
            ["test", "-", "mmore", "mstrict", "mfoo"]
        );
    }

    #[test]
    fn stray_punctuation_is_dropped() {
        assert_eq!(
            token_texts("line 12. got: '1' -- ok ..."),
            ["line", "12", "got", "1", "ok"]
        );
        assert_eq!(token_texts("a....b"), ["a", "b"]);
        assert!(token_texts(" @ .. -- ").is_empty());
    }

    #[test]
    fn offsets_point_into_the_text_and_positions_count_tokens() {
        let text = "Élève Foo::Bar";
        let mut tokenizer = PerlOutputTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut seen = Vec::new();
        while stream.advance() {
            let token = stream.token();
            seen.push((
                token.position,
                token.text.clone(),
                &text[token.offset_from..token.offset_to],
            ));
        }
        assert_eq!(
            seen,
            [
                (0, "élève".to_string(), "Élève"),
                (1, "foo".to_string(), "Foo"),
                (2, "::".to_string(), "::"),
                (3, "bar".to_string(), "Bar"),
            ]
        );
    }

    #[test]
    fn joiners_need_a_word_on_both_sides() {
        assert_eq!(token_texts("Foo::"), ["foo"]);
        assert_eq!(token_texts("Foo::Bär-ß"), ["foo", "::", "bär", "-", "ß"]);
        assert_eq!(token_texts("x::😀"), ["x"]);
    }

    #[test]
    fn spans_compare_to_tokens_without_case() {
        let text = "Élève Foo::BAR";
        let spans: Vec<(usize, usize)> = TokenSpans::new(text).collect();
        assert_eq!(spans.len(), 4);
        assert!(span_equals_token(text, spans[0], "élève"));
        assert!(span_equals_token(text, spans[3], "bar"));
        assert!(!span_equals_token(text, spans[3], "ba"));
        assert!(span_equals_token(text, spans[2], "::"));
    }

    #[test]
    fn very_long_words_are_skipped() {
        let blob = "a".repeat(MAX_WORD_BYTES + 1);
        assert_eq!(token_texts(&format!("x {blob}/y z")), ["x", "y", "z"]);
    }
}
