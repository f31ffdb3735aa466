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
    text: &'a str,
    /// Byte offset where scanning resumes.
    cursor: usize,
    /// A joiner found after the last word, emitted before the next word.
    pending_joiner: Option<(usize, usize)>,
    token: &'a mut Token,
}

impl Tokenizer for PerlOutputTokenizer {
    type TokenStream<'a> = PerlOutputTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> PerlOutputTokenStream<'a> {
        self.token.reset();
        PerlOutputTokenStream {
            text,
            cursor: 0,
            pending_joiner: None,
            token: &mut self.token,
        }
    }
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

impl PerlOutputTokenStream<'_> {
    fn set_token(&mut self, from: usize, to: usize) {
        let slice = &self.text[from..to];
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

    /// The end of the word starting at `start`.
    fn word_end(&self, start: usize) -> usize {
        self.text[start..]
            .char_indices()
            .find(|(_, character)| !is_word_char(*character))
            .map_or(self.text.len(), |(offset, _)| start + offset)
    }

    /// The joiner run after a word ending at `word_end`, when it is followed by another word.
    fn joiner_after(&self, word_end: usize) -> Option<(usize, usize)> {
        let rest = &self.text[word_end..];
        let run_length = rest
            .char_indices()
            .find(|(_, character)| !is_joiner_char(*character))
            .map_or(rest.len(), |(offset, _)| offset);
        if run_length == 0 || run_length > MAX_JOINER_BYTES {
            return None;
        }
        let next_is_word = rest[run_length..].chars().next().is_some_and(is_word_char);
        next_is_word.then_some((word_end, word_end + run_length))
    }
}

impl TokenStream for PerlOutputTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if let Some((from, to)) = self.pending_joiner.take() {
            self.set_token(from, to);
            return true;
        }
        loop {
            let Some(start_offset) = self.text[self.cursor..]
                .char_indices()
                .find(|(_, character)| is_word_char(*character))
                .map(|(offset, _)| self.cursor + offset)
            else {
                self.cursor = self.text.len();
                return false;
            };
            let end = self.word_end(start_offset);
            if end - start_offset > MAX_WORD_BYTES {
                // Too long to be useful: skip it and whatever joins it to the next word.
                self.cursor = end;
                continue;
            }
            self.pending_joiner = self.joiner_after(end);
            self.cursor = self
                .pending_joiner
                .map_or(end, |(_, joiner_end)| joiner_end);
            self.set_token(start_offset, end);
            return true;
        }
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
    fn very_long_words_are_skipped() {
        let blob = "a".repeat(MAX_WORD_BYTES + 1);
        assert_eq!(token_texts(&format!("x {blob}/y z")), ["x", "y", "z"]);
    }
}
