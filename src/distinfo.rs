//! Names and versions of CPAN distributions, and the maturity rules built on them.
//!
//! This module owns every rule that turns a CPAN file name or a reported version string into
//! facts the store indexes:
//!
//! * [`parse_cpan_path`] and [`distname_info`]: a port of Perl's `CPAN::DistnameInfo` 0.12, the
//!   heuristics the whole CPAN toolchain (PAUSE, MetaCPAN, CPAN Testers) uses to split
//!   `Foo-Bar-1.23.tar.gz` into dist `Foo-Bar` and version `1.23`. The regular expressions and the
//!   order of the steps follow the Perl source so that our dist names agree with everybody else's.
//! * [`parse_distfile_resource`]: `Metabase::Resource::cpan::distfile`, i.e. the
//!   `cpan:///distfile/AUTHOR/Dist-1.0.tar.gz` resource every legacy Metabase report carries.
//! * [`classify_perl_version`] and [`is_dev_dist_version`]: the CPAN Testers `perl_version` table
//!   and the `release_data` maturity flags (`perlmat`, `patched`, `distmat`).
//!
//! Nothing here panics on hostile input: regex engine errors (the backtrack limit) are treated as
//! "no match", and the one pattern that could backtrack exponentially is written so it cannot.

use std::sync::LazyLock;

use fancy_regex::{Captures, Regex};

/// Whether a distribution file is a normal release or a developer (trial) release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maturity {
    /// A normal release; `CPAN::DistnameInfo`'s `released`.
    Released,
    /// A developer release (`0.01_03`, `1.0-TRIAL`, odd-minor perls, perl RCs);
    /// `CPAN::DistnameInfo`'s `developer`.
    Developer,
}

/// What `CPAN::DistnameInfo` knows about one distribution file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistInfo {
    /// PAUSE id of the uploader, upper case (e.g. `EXAMPLE`); `None` when the path did not contain
    /// a recognisable `X/XY/XYZ/` author directory.
    pub cpan_id: Option<String>,
    /// The path below the author directory (e.g. `Text-Widget-0.07.tar.gz`, possibly with
    /// sub-directories such as `sub/Foo-1.0.tar.gz`); the whole path when no author was found.
    pub filename: String,
    /// The file name without directories and archive extension (e.g. `Text-Widget-0.07`);
    /// `None` when the file has no recognised archive extension.
    pub distvname: Option<String>,
    /// The archive extension as written in the path, without the dot (`tar.gz`, `zip`,
    /// `tar.bz2`, `tgz`, `tar.Z`, or `TAR.GZ` if that is how it was spelled).
    pub extension: Option<String>,
    /// The distribution name (e.g. `Text-Widget`); `None` only when there is no `distvname`.
    pub dist: Option<String>,
    /// The version (e.g. `0.07`, `0.01_03`, `1.0-TRIAL`, `v1.2.3`); `None` when the name carries
    /// none.
    pub version: Option<String>,
    /// Developer or normal release, by `CPAN::DistnameInfo`'s rules.
    pub maturity: Maturity,
}

/// Why a Metabase `cpan:///distfile/...` resource could not be understood.
///
/// Every variant carries the resource (shortened to a few hundred characters, since it is client
/// input) so the message can be returned to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The resource is not a `cpan:///<type>/...` URI at all.
    #[error("resource {resource:?} is not a cpan:///distfile/ uri")]
    NotCpanUri {
        /// The offending resource (shortened).
        resource: String,
    },
    /// A `cpan:` URI of a type other than `distfile`.
    #[error("resource {resource:?} has type {kind:?}, but only cpan:///distfile/ is supported")]
    UnsupportedType {
        /// The offending resource (shortened).
        resource: String,
        /// The type segment that was found (shortened).
        kind: String,
    },
    /// The resource contains a line break or another control character.
    #[error("resource {resource:?} contains a control character")]
    ControlCharacter {
        /// The offending resource (shortened, control characters escaped).
        resource: String,
    },
    /// There is no `AUTHOR/` directory before the file name.
    #[error(
        "resource {resource:?} has no author (expected cpan:///distfile/AUTHOR/Dist-1.0.tar.gz)"
    )]
    MissingAuthor {
        /// The offending resource (shortened).
        resource: String,
    },
    /// The author part is not shaped like a PAUSE id.
    #[error(
        "resource {resource:?} has an invalid author {author:?} (expected a pause id such as EXAMPLE)"
    )]
    InvalidAuthor {
        /// The offending resource (shortened).
        resource: String,
        /// The author segment that was found (shortened).
        author: String,
    },
    /// Nothing follows the author directory.
    #[error("resource {resource:?} has no file name after the author")]
    MissingFile {
        /// The offending resource (shortened).
        resource: String,
    },
    /// The file does not end in `.tar.gz`, `.tar.bz2`, `.tar.z`, `.tgz` or `.zip`.
    #[error(
        "file {file:?} in resource {resource:?} has no recognised archive extension \
         (tar.gz, tar.bz2, tar.z, tgz or zip)"
    )]
    NoArchiveExtension {
        /// The offending resource (shortened).
        resource: String,
        /// The file part below the author (shortened).
        file: String,
    },
    /// The file name yields an empty distribution name (e.g. `.pm-1.0.tar.gz` or `0.tar.gz`).
    #[error("no distribution name can be derived from file {file:?} in resource {resource:?}")]
    NoDistName {
        /// The offending resource (shortened).
        resource: String,
        /// The file part below the author (shortened).
        file: String,
    },
}

/// How CPAN Testers classifies a reported perl version (the `perl_version` table and the
/// `perlmat` / `patched` flags of `release_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerlVersionInfo {
    /// The `x.y.z` part without a leading `v` (e.g. `5.36.0` from `v5.36.0 RC1`). When the string
    /// has no `x.y.z` prefix, the first word of it with any leading `v` removed.
    pub perl: String,
    /// A development perl: odd minor version of at least 7 (`5.7.x`, `5.37.x`), or a release
    /// candidate (`5.38.0 RC1`).
    pub devel: bool,
    /// A perl that is not a plain release: the string mentions `patch` or an `RC<n>`.
    pub patched: bool,
}

/// Splits a CPAN path the way `CPAN::DistnameInfo->new($path)` does.
///
/// Accepts paths such as `authors/id/E/EX/EXAMPLE/Foo-1.0.tar.gz`, `id/E/EX/EXAMPLE/Foo-1.0.tar.gz`,
/// `E/EX/EXAMPLE/Foo-1.0.tar.gz` or a bare `Foo-1.0.tar.gz`. `cpan_id` is only set when the path
/// contains the three-level author directory; `dist`/`version` are only set when the file has a
/// recognised archive extension. Never fails: unknown shapes simply leave fields empty.
pub fn parse_cpan_path(path: &str) -> DistInfo {
    let distfile = collapse_slashes(path);
    let (filename, cpan_id) = match captures(&AUTHOR_DIR, &distfile) {
        Some(caps) => {
            let end = caps.get(0).map_or(0, |m| m.end());
            (
                distfile[end..].to_string(),
                Some(group(&caps, 6).to_string()),
            )
        }
        None => (distfile.clone(), None),
    };
    build(cpan_id, filename, &distfile)
}

/// `CPAN::DistnameInfo::distname_info`: splits a distvname such as `Foo-Bar-1.23_01` into
/// `(dist, version, is_dev)`.
///
/// When the name does not look like `Name-Version` at all, the whole input is the dist and the
/// version is `None`, as in Perl. Perl returns an empty list for an empty (or `"0"`) input; here
/// that comes back as `(input, None, false)`, and [`parse_cpan_path`] maps it to `dist: None`.
pub fn distname_info(distvname: &str) -> (String, Option<String>, bool) {
    let file = distvname;
    let Some(caps) = captures(&DISTNAME, file) else {
        return (file.to_string(), None, false);
    };
    let mut dist = group(&caps, 1).to_string();
    let mut version = group(&caps, 2).to_string();

    if version.is_empty() && dist.ends_with("-undef") {
        dist.truncate(dist.len() - "-undef".len());
    }

    // Old uploads were re-released with this suffix after PAUSE refused world-writable files.
    remove_first(&mut version, &WITHOUT_WORLD_WRITEABLES);

    // Unicode-Collate-Standard-V3_1_1-0.1: the V3_1_1 belongs to the name.
    if let Some(caps) = captures(&V_NAME_PART, &version) {
        let (name_part, rest) = (group(&caps, 1).to_string(), group(&caps, 2).to_string());
        dist.push_str(&name_part);
        version = rest;
    }

    // Task-Deprecations5_14-1.00: the 5_14 belongs to the name, while libao-perl_0.03-1 keeps
    // 0.03-1 as its version because nothing precedes the underscore.
    if let Some(caps) = captures(&UNDERSCORE_NAME_PART, &version) {
        let (name_part, rest) = (group(&caps, 1).to_string(), group(&caps, 2).to_string());
        dist.push_str(&name_part);
        version = rest;
    }

    // CGI.pm-3.59 and a few others name the dist after the module file.
    remove_first(&mut dist, &PM_SUFFIX);

    if version.is_empty()
        && let Some(tail) = remove_first(&mut dist, &DIGITS_WORD_TAIL)
    {
        version = tail;
    }

    if is_match(&ALL_DIGITS, &version)
        && let Some(tail) = remove_first(&mut dist, &WORD_TAIL)
    {
        version = tail + &version;
    }

    // A leading dot is only separator noise when the version is dotted (Foo-.1 stays ".1").
    let separators: &[char] = if is_match(&DIGIT_DOT_DIGIT, &version) {
        &['-', '_', '.']
    } else {
        &['-', '_']
    };
    let version = version.trim_start_matches(separators).to_string();

    if version.is_empty() {
        return (dist, None, false);
    }

    let dev = match captures(&PERL_RELEASE, file) {
        // perl itself: odd minors are blead, x.y.50+ were trial builds, -RC/-TRIAL are candidates.
        // An `if` that matched the perl pattern never falls through to the generic rule.
        Some(caps) => {
            let minor = perl_uint(group(&caps, 1)).unwrap_or(u64::MAX);
            // Perl numifies a too-large number to a float and `&` clamps it to UV_MAX (odd).
            let sub = caps
                .get(2)
                .map(|m| perl_uint(m.as_str()).unwrap_or(u64::MAX));
            (minor > 6 && minor & 1 == 1) || sub.is_some_and(|s| s >= 50) || caps.get(3).is_some()
        }
        None => is_match(&DEV_VERSION, &version) || version.contains("-TRIAL"),
    };
    (dist, Some(version), dev)
}

/// `Metabase::Resource::cpan::distfile`: parses `cpan:///distfile/AUTHOR/Dist-1.0.tar.gz`.
///
/// `cpan_id` is the author (upper-cased), `filename` everything after it. Unlike Metabase, a file
/// name without a version is accepted (`version: None`); callers decide what to store instead.
///
/// # Errors
///
/// [`ResourceError`] when the scheme or type is not `cpan:///distfile/`, the author or file part
/// is missing or malformed, the file has no recognised archive extension, or no dist name can be
/// derived from it.
pub fn parse_distfile_resource(resource: &str) -> Result<DistInfo, ResourceError> {
    let short = || excerpt(resource);
    let rest = resource
        .strip_prefix("cpan:///")
        .ok_or_else(|| ResourceError::NotCpanUri { resource: short() })?;
    let (kind, distfile) = rest.split_once('/').unwrap_or((rest, ""));
    if kind.is_empty() {
        return Err(ResourceError::NotCpanUri { resource: short() });
    }
    if kind != "distfile" {
        return Err(ResourceError::UnsupportedType {
            resource: short(),
            kind: excerpt(kind),
        });
    }
    // Metabase matched the path with `(.+)\z`, which already refuses line breaks; no other control
    // character can appear in a PAUSE file name either.
    if distfile.chars().any(char::is_control) {
        return Err(ResourceError::ControlCharacter { resource: short() });
    }

    let distfile = collapse_slashes(distfile);
    let Some((author, file)) = distfile.split_once('/') else {
        return Err(
            if distfile.is_empty() || split_archive(&distfile).is_some() {
                ResourceError::MissingAuthor { resource: short() }
            } else {
                ResourceError::MissingFile { resource: short() }
            },
        );
    };
    if author.is_empty() {
        return Err(ResourceError::MissingAuthor { resource: short() });
    }
    if !is_pause_id(author) {
        return Err(ResourceError::InvalidAuthor {
            resource: short(),
            author: excerpt(author),
        });
    }
    if file.is_empty() {
        return Err(ResourceError::MissingFile { resource: short() });
    }

    let info = build(Some(author.to_ascii_uppercase()), file.to_string(), file);
    if info.distvname.is_none() {
        return Err(ResourceError::NoArchiveExtension {
            resource: short(),
            file: excerpt(file),
        });
    }
    if info.dist.as_deref().is_none_or(str::is_empty) {
        return Err(ResourceError::NoDistName {
            resource: short(),
            file: excerpt(file),
        });
    }
    Ok(info)
}

/// Classifies a perl version as reported by a tester (`5.36.0`, `v5.37.2`, `5.38.0 RC1`,
/// `5.36.0 patch 1234`) by the rules of the CPAN Testers `perl_version` table
/// (`CPAN::Testers::Schema::Result::PerlVersion`) and the `patched` flag of `release_data`.
pub fn classify_perl_version(version: &str) -> PerlVersionInfo {
    let perl = match captures(&PERL_XYZ, version) {
        Some(caps) => group(&caps, 1).to_string(),
        // The table stores NULL here; a best-effort word is more useful to callers than nothing.
        None => {
            let word = version.split_whitespace().next().unwrap_or("");
            word.trim_start_matches('v').to_string()
        }
    };
    let odd_minor = captures(&PERL_MINOR, version)
        .and_then(|caps| perl_uint(group(&caps, 1)))
        // A minor too large for an integer becomes a float in Perl, and `% 2` of such a float is 0.
        .is_some_and(|minor| minor >= 7 && minor % 2 == 1);
    let devel = odd_minor || is_match(&PERL_RC, version);
    let patched = is_match(&PERL_PATCHED, version);
    PerlVersionInfo {
        perl,
        devel,
        patched,
    }
}

/// True when a dist version is a developer release: it contains `_` or ends with `-TRIAL`, as the
/// `distmat` flag of `release_data` is computed.
pub fn is_dev_dist_version(version: &str) -> bool {
    // `/-TRIAL$/` in Perl also matches before a final newline.
    version.contains('_') || version.ends_with("-TRIAL") || version.ends_with("-TRIAL\n")
}

// Perl's `$` (without /m) also matches just before a final "\n"; fancy-regex's `$` does not, so
// every Perl `$` below is spelled `(?=\n?\z)`.

/// The main `distname_info` pattern: `(dist)(version)`.
///
/// Perl's original repeats `(?:[A-Za-z0-9]+|(?<=\D)_|_(?=\D))*`, which backtracks exponentially
/// on names like `1111…1!x`: Perl's engine copes, but fancy-regex gives up at its backtrack limit
/// from about 20 digits on. Here each repetition takes exactly one character and the two
/// underscore alternatives are made disjoint; this accepts the same strings, and a backtracking
/// engine visits the possible end positions in the same order, so the captures are identical.
static DISTNAME: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?s)^(",
        r"(?:[-+.]*",
        r"(?:[A-Za-z0-9]|(?<=\D)_|(?<!\D)_(?=\D))*",
        r"(?:[A-Za-z](?=[^A-Za-z]|\n?\z)|\d(?=-))",
        r"(?<![._-][vV])",
        r")+)(.*)\z",
    ))
});
static WITHOUT_WORLD_WRITEABLES: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-withoutworldwriteables(?=\n?\z)"));
static V_NAME_PART: LazyLock<Regex> = LazyLock::new(|| compile(r"^(-[Vv].*)-(\d.*)"));
static UNDERSCORE_NAME_PART: LazyLock<Regex> = LazyLock::new(|| compile(r"(.+_.*)-(\d.*)"));
static PM_SUFFIX: LazyLock<Regex> = LazyLock::new(|| compile(r"\.pm(?=\n?\z)"));
static DIGITS_WORD_TAIL: LazyLock<Regex> = LazyLock::new(|| compile(r"-(\d+\w)(?=\n?\z)"));
static ALL_DIGITS: LazyLock<Regex> = LazyLock::new(|| compile(r"^\d+(?=\n?\z)"));
static WORD_TAIL: LazyLock<Regex> = LazyLock::new(|| compile(r"-(\w+)(?=\n?\z)"));
static DIGIT_DOT_DIGIT: LazyLock<Regex> = LazyLock::new(|| compile(r"\d\.\d"));
static PERL_RELEASE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^perl-?\d+\.(\d+)(?:\D(\d+))?(-(?:TRIAL|RC)\d+)?(?=\n?\z)"));
static DEV_VERSION: LazyLock<Regex> = LazyLock::new(|| compile(r"\d\D\d+_\d"));
/// `CPAN::DistnameInfo->new`'s author directory: `[[…/]authors/]id/` then `A/AB/ABC…/`.
static AUTHOR_DIR: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^(((.*?/)?authors/)?id/)?([A-Z])/(\4[A-Z])/(\5[-A-Z0-9]*)/"));
static ARCHIVE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)([^/]+)\.(tar\.(?:g?z|bz2)|zip|tgz)(?=\n?\z)"));
static PERL_XYZ: LazyLock<Regex> = LazyLock::new(|| compile(r"^v?(\d+\.\d+\.\d+)"));
static PERL_MINOR: LazyLock<Regex> = LazyLock::new(|| compile(r"^v?\d+\.(\d+)"));
static PERL_RC: LazyLock<Regex> = LazyLock::new(|| compile(r"^v?\d+\.\d+\.\d+ RC\d+"));
static PERL_PATCHED: LazyLock<Regex> = LazyLock::new(|| compile(r"RC\d+|patch"));

fn compile(pattern: &str) -> Regex {
    // The patterns are constants exercised by the unit tests, so this cannot fail at run time.
    Regex::new(pattern).expect("constant pattern must compile")
}

fn captures<'t>(re: &Regex, text: &'t str) -> Option<Captures<'t, str>> {
    // The only run-time error is the backtrack limit; for parsing names that means "no match".
    re.captures(text).ok().flatten()
}

fn is_match(re: &Regex, text: &str) -> bool {
    re.is_match(text).unwrap_or(false)
}

fn group<'t>(caps: &Captures<'t, str>, index: usize) -> &'t str {
    caps.get(index).map_or("", |m| m.as_str())
}

/// Perl's `s/re//` on the first match; returns capture group 1 (or "") when something was removed.
fn remove_first(text: &mut String, re: &Regex) -> Option<String> {
    let caps = captures(re, text)?;
    let whole = caps.get(0)?;
    let (start, end) = (whole.start(), whole.end());
    let first = group(&caps, 1).to_string();
    text.replace_range(start..end, "");
    Some(first)
}

/// The integer Perl sees when it numifies a `\d+` capture: the leading ASCII digits (Unicode
/// digits numify to 0). `None` when it does not fit in 64 bits, where Perl switches to a float.
fn perl_uint(digits: &str) -> Option<u64> {
    digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
}

/// `s,//+,/,g`.
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// The `(distvname, extension)` of the last path segment, if it is a recognised archive.
fn split_archive(path: &str) -> Option<(String, String)> {
    let caps = captures(&ARCHIVE, path)?;
    Some((group(&caps, 1).to_string(), group(&caps, 2).to_string()))
}

fn build(cpan_id: Option<String>, filename: String, path: &str) -> DistInfo {
    let (distvname, extension) = match split_archive(path) {
        Some((name, ext)) => (Some(name), Some(ext)),
        None => (None, None),
    };
    let (dist, version, dev) = match distvname.as_deref() {
        // distname_info starts with `my $file = shift or return;`, and "0" is false in Perl.
        Some(name) if name != "0" => {
            let (dist, version, dev) = distname_info(name);
            (Some(dist), version, dev)
        }
        _ => (None, None, false),
    };
    DistInfo {
        cpan_id,
        filename,
        distvname,
        extension,
        dist,
        version,
        maturity: if dev {
            Maturity::Developer
        } else {
            Maturity::Released
        },
    }
}

/// PAUSE ids are upper-case letters, digits and dashes starting with a letter; lower case is
/// tolerated here because the id is upper-cased afterwards.
fn is_pause_id(author: &str) -> bool {
    let mut chars = author.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Client input quoted in an error message, cut to a readable length.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(dist, version, maturity)` of a bare file name.
    fn dv(file: &str) -> (Option<String>, Option<String>, Maturity) {
        let info = parse_cpan_path(file);
        (info.dist, info.version, info.maturity)
    }

    fn expect(file: &str, dist: &str, version: Option<&str>, maturity: Maturity) {
        assert_eq!(
            dv(file),
            (
                Some(dist.to_string()),
                version.map(str::to_string),
                maturity
            ),
            "{file}"
        );
    }

    use Maturity::{Developer, Released};

    #[test]
    fn all_patterns_compile() {
        for re in [
            &DISTNAME,
            &WITHOUT_WORLD_WRITEABLES,
            &V_NAME_PART,
            &UNDERSCORE_NAME_PART,
            &PM_SUFFIX,
            &DIGITS_WORD_TAIL,
            &ALL_DIGITS,
            &WORD_TAIL,
            &DIGIT_DOT_DIGIT,
            &PERL_RELEASE,
            &DEV_VERSION,
            &AUTHOR_DIR,
            &ARCHIVE,
            &PERL_XYZ,
            &PERL_MINOR,
            &PERL_RC,
            &PERL_PATCHED,
        ] {
            LazyLock::force(re);
        }
    }

    #[test]
    fn full_author_path() {
        let info = parse_cpan_path("authors/id/E/EX/EXAMPLE/Text-Widget-0.07.tar.gz");
        assert_eq!(
            info,
            DistInfo {
                cpan_id: Some("EXAMPLE".into()),
                filename: "Text-Widget-0.07.tar.gz".into(),
                distvname: Some("Text-Widget-0.07".into()),
                extension: Some("tar.gz".into()),
                dist: Some("Text-Widget".into()),
                version: Some("0.07".into()),
                maturity: Released,
            }
        );
    }

    #[test]
    fn author_directory_variants() {
        for path in [
            "E/EX/EXAMPLE/Foo-1.0.tar.gz",
            "id/E/EX/EXAMPLE/Foo-1.0.tar.gz",
            "CPAN/authors/id/E/EX/EXAMPLE/Foo-1.0.tar.gz",
            "/srv/cpan/authors/id/E/EX/EXAMPLE/Foo-1.0.tar.gz",
            "authors//id/E/EX//EXAMPLE/Foo-1.0.tar.gz",
        ] {
            let info = parse_cpan_path(path);
            assert_eq!(info.cpan_id.as_deref(), Some("EXAMPLE"), "{path}");
            assert_eq!(info.filename, "Foo-1.0.tar.gz", "{path}");
            assert_eq!(info.dist.as_deref(), Some("Foo"), "{path}");
        }
        // Two-letter ids and ids with dashes (from DistnameInfo's own tests).
        let info = parse_cpan_path("id/J/JV/JV/PostScript-Font-1.09.tar.gz");
        assert_eq!(info.cpan_id.as_deref(), Some("JV"));
        let info = parse_cpan_path("id/N/NI/NI-S/Tk400.202.tar.gz");
        assert_eq!(info.cpan_id.as_deref(), Some("NI-S"));
        assert_eq!(
            (info.dist.as_deref(), info.version.as_deref()),
            (Some("Tk"), Some("400.202"))
        );
    }

    #[test]
    fn path_without_author_directory() {
        // 0.12 only recognises the X/XY/XYZ layout, so AUTHOR/file keeps the author in filename.
        let info = parse_cpan_path("JWILLIAMS/MasonX-Lexer-MSP-0.02.tar.gz");
        assert_eq!(info.cpan_id, None);
        assert_eq!(info.filename, "JWILLIAMS/MasonX-Lexer-MSP-0.02.tar.gz");
        assert_eq!(info.distvname.as_deref(), Some("MasonX-Lexer-MSP-0.02"));
        assert_eq!(info.dist.as_deref(), Some("MasonX-Lexer-MSP"));
        // Lower-case directories are not author directories.
        let info = parse_cpan_path("e/ex/example/Foo-1.0.tar.gz");
        assert_eq!(info.cpan_id, None);
        assert_eq!(info.filename, "e/ex/example/Foo-1.0.tar.gz");
    }

    #[test]
    fn subdirectory_below_author() {
        let info = parse_cpan_path("authors/id/E/EX/EXAMPLE/sub/dir/Foo-Bar-2.01.tar.gz");
        assert_eq!(info.cpan_id.as_deref(), Some("EXAMPLE"));
        assert_eq!(info.filename, "sub/dir/Foo-Bar-2.01.tar.gz");
        assert_eq!(info.distvname.as_deref(), Some("Foo-Bar-2.01"));
        assert_eq!(info.dist.as_deref(), Some("Foo-Bar"));
        assert_eq!(info.version.as_deref(), Some("2.01"));
    }

    #[test]
    fn brief_examples() {
        expect(
            "Text-Widget-0.07.tar.gz",
            "Text-Widget",
            Some("0.07"),
            Released,
        );
        expect(
            "Net-Quux-0.01_03.tar.bz2",
            "Net-Quux",
            Some("0.01_03"),
            Developer,
        );
        expect(
            "Foo-Bar-1.0-TRIAL.tar.gz",
            "Foo-Bar",
            Some("1.0-TRIAL"),
            Developer,
        );
        expect("Foo-v1.2.3.tar.gz", "Foo", Some("v1.2.3"), Released);
        expect("Some-Dist-0.5.zip", "Some-Dist", Some("0.5"), Released);
        expect("Foo-Bar-1.23.tgz", "Foo-Bar", Some("1.23"), Released);
        expect("CGI.pm-3.59.tar.gz", "CGI", Some("3.59"), Released);
        expect(
            "Unicode-Collate-Standard-V3_1_1-0.1.tar.gz",
            "Unicode-Collate-Standard-V3_1_1",
            Some("0.1"),
            Released,
        );
        expect(
            "Task-Deprecations5_14-1.00.tar.gz",
            "Task-Deprecations5_14",
            Some("1.00"),
            Released,
        );
        expect(
            "libao-perl_0.03-1.tar.gz",
            "libao-perl",
            Some("0.03-1"),
            Released,
        );
        expect("perl-5.37.2.tar.gz", "perl", Some("5.37.2"), Developer);
        expect("perl-5.36.0.tar.gz", "perl", Some("5.36.0"), Released);
    }

    #[test]
    fn extensions() {
        let info = parse_cpan_path("Some-Dist-0.5.zip");
        assert_eq!(info.extension.as_deref(), Some("zip"));
        let info = parse_cpan_path("Net-Quux-0.01_03.tar.bz2");
        assert_eq!(info.extension.as_deref(), Some("tar.bz2"));
        let info = parse_cpan_path("Foo-Bar-1.23.tgz");
        assert_eq!(info.extension.as_deref(), Some("tgz"));
        let info = parse_cpan_path("Old-Thing-1.0.tar.Z");
        assert_eq!(info.extension.as_deref(), Some("tar.Z"));
        assert_eq!(info.dist.as_deref(), Some("Old-Thing"));
        // Unrecognised archives leave everything but the filename empty.
        for file in [
            "Foo-1.0.tar.xz",
            "Foo-1.0.tar",
            "Foo-1.0.tbz",
            "Foo-1.0.gz",
            "README",
        ] {
            let info = parse_cpan_path(file);
            assert_eq!(info.filename, file);
            assert_eq!(
                (info.distvname, info.extension, info.dist, info.version),
                (None, None, None, None),
                "{file}"
            );
            assert_eq!(info.maturity, Released);
        }
    }

    #[test]
    fn upper_and_mixed_case_extension() {
        let info = parse_cpan_path("authors/id/E/EX/EXAMPLE/Foo-Bar-1.0.TAR.GZ");
        assert_eq!(info.extension.as_deref(), Some("TAR.GZ"));
        assert_eq!(info.distvname.as_deref(), Some("Foo-Bar-1.0"));
        assert_eq!(info.dist.as_deref(), Some("Foo-Bar"));
        assert_eq!(info.version.as_deref(), Some("1.0"));
        let info = parse_cpan_path("Foo-Bar-1.0.tar.gz");
        assert_eq!(info.extension.as_deref(), Some("tar.gz"));
        let info = parse_cpan_path("Foo-Bar-1.0.Zip");
        assert_eq!(info.extension.as_deref(), Some("Zip"));
    }

    #[test]
    fn no_version() {
        let info = parse_cpan_path("authors/id/E/EX/EXAMPLE/Foo-Bar.tar.gz");
        assert_eq!(info.distvname.as_deref(), Some("Foo-Bar"));
        assert_eq!(info.dist.as_deref(), Some("Foo-Bar"));
        assert_eq!(info.version, None);
        assert_eq!(info.maturity, Released);
        assert_eq!(distname_info("Foo"), ("Foo".into(), None, false));
        // -undef only goes when nothing follows it.
        assert_eq!(distname_info("Foo-undef"), ("Foo".into(), None, false));
    }

    #[test]
    fn distname_info_steps() {
        let released = |d: &str, v: &str| (d.to_string(), Some(v.to_string()), false);
        let dev = |d: &str, v: &str| (d.to_string(), Some(v.to_string()), true);
        assert_eq!(
            distname_info("Bio-ASN1-EntrezGene-1.10-withoutworldwriteables"),
            released("Bio-ASN1-EntrezGene", "1.10")
        );
        assert_eq!(distname_info("ngb-101"), released("ngb", "101"));
        assert_eq!(distname_info("Tk400.202"), released("Tk", "400.202"));
        assert_eq!(
            distname_info("Test-Simple-0.48_01"),
            dev("Test-Simple", "0.48_01")
        );
        assert_eq!(
            distname_info("Dist-Zilla-2.100860-TRIAL"),
            dev("Dist-Zilla", "2.100860-TRIAL")
        );
        assert_eq!(distname_info("CGI.pm-2.34"), released("CGI", "2.34"));
        // -(\d+\w)$ when the main pattern leaves no version.
        assert_eq!(distname_info("foo-55r"), released("foo", "55r"));
        assert_eq!(distname_info("Foo-Bar-1a"), released("Foo-Bar", "1a"));
        // A digits-only version is re-joined with the word before it...
        assert_eq!(distname_info("Foo-Bar1"), released("Foo", "Bar1"));
        // ...but not once the main pattern has left a separator in front of it.
        assert_eq!(distname_info("Foo-2x-10"), released("Foo-2x", "10"));
        // Leading separators: dots only go when the version is dotted.
        assert_eq!(distname_info("Foo-.5"), released("Foo", ".5"));
        assert_eq!(distname_info("Foo_1.5"), released("Foo", "1.5"));
        assert_eq!(
            distname_info("Foo-Bar-v1.2.3"),
            released("Foo-Bar", "v1.2.3")
        );
        assert_eq!(distname_info("Foo-1.2_3"), dev("Foo", "1.2_3"));
        // Not shaped like Name-Version at all.
        assert_eq!(distname_info("1.0"), ("1.0".into(), None, false));
        assert_eq!(distname_info(""), (String::new(), None, false));
    }

    #[test]
    fn perl_releases() {
        expect("perl5.005_03.tar.gz", "perl", Some("5.005_03"), Released);
        expect(
            "perl-5.12.0-RC0.tar.gz",
            "perl",
            Some("5.12.0-RC0"),
            Developer,
        );
        expect(
            "perl-5.6.1-TRIAL3.tar.gz",
            "perl",
            Some("5.6.1-TRIAL3"),
            Developer,
        );
        expect("perl-5.8.0.tar.gz", "perl", Some("5.8.0"), Released);
        expect("perl-5.7.3.tar.gz", "perl", Some("5.7.3"), Developer);
        expect("perl5.004_50.tar.gz", "perl", Some("5.004_50"), Developer);
        expect("perl-5.40.0.tar.bz2", "perl", Some("5.40.0"), Released);
        expect("perl-5.41.10.tar.gz", "perl", Some("5.41.10"), Developer);
        // Perl clamps an overflowing minor to UV_MAX, which is odd.
        expect(
            "perl-5.99999999999999999999.0.tar.gz",
            "perl",
            Some("5.99999999999999999999.0"),
            Developer,
        );
    }

    #[test]
    fn filename_zero_has_no_dist() {
        let info = parse_cpan_path("authors/id/E/EX/EXAMPLE/0.tar.gz");
        assert_eq!(info.distvname.as_deref(), Some("0"));
        assert_eq!((info.dist, info.version), (None, None));
    }

    #[test]
    fn pathological_names_do_not_blow_up() {
        let digits = "1".repeat(5000);
        for name in [
            format!("{digits}!x"),
            format!("{digits}.tar.gz"),
            format!("a{}", "_b".repeat(3000)),
            format!("{}-1.0", "a1".repeat(3000)),
            "-".repeat(5000),
            "é_ü-1.0".to_string(),
        ] {
            let (dist, _, _) = distname_info(&name);
            assert!(!dist.is_empty() || name.is_empty());
            let _ = parse_cpan_path(&format!("authors/id/E/EX/EXAMPLE/{name}.tar.gz"));
        }
        assert_eq!(distname_info(&format!("{digits}!x")).1, None);
    }

    #[test]
    fn trailing_newline_behaves_like_perl_dollar() {
        // Perl's `$` matches before a final newline; the archive pattern relies on that.
        let info = parse_cpan_path("Foo-1.0.tar.gz\n");
        assert_eq!(info.extension.as_deref(), Some("tar.gz"));
        assert_eq!(info.distvname.as_deref(), Some("Foo-1.0"));
    }

    /// Every resource in the captured client fixtures (tests/data/metabase), as literals so the
    /// test does not depend on those files.
    const FIXTURE_RESOURCES: &[(&str, &str, &str, &str)] = &[
        (
            "cpan:///distfile/EXAMPLE/Text-Widget-0.07.tar.gz",
            "EXAMPLE",
            "Text-Widget",
            "0.07",
        ),
        (
            "cpan:///distfile/EXAMPLE/Text-Widget-0.08.tar.gz",
            "EXAMPLE",
            "Text-Widget",
            "0.08",
        ),
        (
            "cpan:///distfile/EXAMPLE/Unicode-Thing-1.000.tar.gz",
            "EXAMPLE",
            "Unicode-Thing",
            "1.000",
        ),
        (
            "cpan:///distfile/MBHARNESS/Acme-MBHarness-Fail-0.02.tar.gz",
            "MBHARNESS",
            "Acme-MBHarness-Fail",
            "0.02",
        ),
        (
            "cpan:///distfile/MBHARNESS/Acme-MBHarness-NA-0.03.tar.gz",
            "MBHARNESS",
            "Acme-MBHarness-NA",
            "0.03",
        ),
        (
            "cpan:///distfile/MBHARNESS/Acme-MBHarness-NoTests-0.04.tar.gz",
            "MBHARNESS",
            "Acme-MBHarness-NoTests",
            "0.04",
        ),
        (
            "cpan:///distfile/MBHARNESS/Acme-MBHarness-Pass-0.01.tar.gz",
            "MBHARNESS",
            "Acme-MBHarness-Pass",
            "0.01",
        ),
    ];

    #[test]
    fn fixture_resources() {
        for &(resource, author, dist, version) in FIXTURE_RESOURCES {
            let info = parse_distfile_resource(resource).unwrap();
            let file = resource.rsplit('/').next().unwrap();
            assert_eq!(info.cpan_id.as_deref(), Some(author), "{resource}");
            assert_eq!(info.filename, file, "{resource}");
            assert_eq!(info.extension.as_deref(), Some("tar.gz"), "{resource}");
            assert_eq!(info.dist.as_deref(), Some(dist), "{resource}");
            assert_eq!(info.version.as_deref(), Some(version), "{resource}");
            assert_eq!(info.maturity, Released, "{resource}");
        }
    }

    #[test]
    fn protocol_doc_resources() {
        let info =
            parse_distfile_resource("cpan:///distfile/ZBACKER/Net-Quux-0.01_03.tar.bz2").unwrap();
        assert_eq!(info.cpan_id.as_deref(), Some("ZBACKER"));
        assert_eq!(info.extension.as_deref(), Some("tar.bz2"));
        assert_eq!(info.version.as_deref(), Some("0.01_03"));
        assert_eq!(info.maturity, Developer);
        let info = parse_distfile_resource("cpan:///distfile/RJBS/URI-cpan-1.000.tar.gz").unwrap();
        assert_eq!(
            (info.dist.as_deref(), info.version.as_deref()),
            (Some("URI-cpan"), Some("1.000"))
        );
        let info = parse_distfile_resource("cpan:///distfile/EXAMPLE/Foo-v1.2.3.tar.gz").unwrap();
        assert_eq!(info.version.as_deref(), Some("v1.2.3"));
    }

    #[test]
    fn resource_variants_accepted() {
        // Two-letter ids, ids whose second character is a digit, lower case (upper-cased here).
        let info =
            parse_distfile_resource("cpan:///distfile/JV/PostScript-Font-1.09.tar.gz").unwrap();
        assert_eq!(info.cpan_id.as_deref(), Some("JV"));
        let info = parse_distfile_resource("cpan:///distfile/A1B/Foo-1.0.zip").unwrap();
        assert_eq!(info.cpan_id.as_deref(), Some("A1B"));
        let info = parse_distfile_resource("cpan:///distfile/example/Foo-1.0.zip").unwrap();
        assert_eq!(info.cpan_id.as_deref(), Some("EXAMPLE"));
        // Sub-directories and doubled slashes, as CPAN::DistnameInfo collapses them.
        let info =
            parse_distfile_resource("cpan:///distfile/EXAMPLE/sub//Foo-Bar-1.0.tar.gz").unwrap();
        assert_eq!(info.filename, "sub/Foo-Bar-1.0.tar.gz");
        assert_eq!(info.dist.as_deref(), Some("Foo-Bar"));
        // A missing version is tolerated.
        let info = parse_distfile_resource("cpan:///distfile/EXAMPLE/Foo-Bar.tar.gz").unwrap();
        assert_eq!(
            (info.dist.as_deref(), info.version),
            (Some("Foo-Bar"), None)
        );
        let info = parse_distfile_resource("cpan:///distfile/EXAMPLE/Foo-1.0.TAR.GZ").unwrap();
        assert_eq!(info.extension.as_deref(), Some("TAR.GZ"));
    }

    #[test]
    fn bad_resources_are_errors() {
        let err = |r: &str| parse_distfile_resource(r).unwrap_err();
        assert!(matches!(
            err("http://example.com/Foo-1.0.tar.gz"),
            ResourceError::NotCpanUri { .. }
        ));
        assert!(matches!(
            err("metabase:user:49a9794f-6587-4900-8387-d8cae73865ce"),
            ResourceError::NotCpanUri { .. }
        ));
        assert!(matches!(
            err("cpan://distfile/EXAMPLE/Foo-1.0.tar.gz"),
            ResourceError::NotCpanUri { .. }
        ));
        assert!(matches!(
            err("CPAN:///distfile/EXAMPLE/Foo-1.0.tar.gz"),
            ResourceError::NotCpanUri { .. }
        ));
        assert!(matches!(err(""), ResourceError::NotCpanUri { .. }));
        assert_eq!(
            err("cpan:///module/Foo::Bar"),
            ResourceError::UnsupportedType {
                resource: "cpan:///module/Foo::Bar".into(),
                kind: "module".into()
            }
        );
        assert!(matches!(err("cpan:///"), ResourceError::NotCpanUri { .. }));
        assert!(matches!(
            err("cpan:///distfile"),
            ResourceError::MissingAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/"),
            ResourceError::MissingAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/Foo-1.0.tar.gz"),
            ResourceError::MissingAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile//Foo-1.0.tar.gz"),
            ResourceError::MissingAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE"),
            ResourceError::MissingFile { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/"),
            ResourceError::MissingFile { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EX AMPLE/Foo-1.0.tar.gz"),
            ResourceError::InvalidAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/1EXAMPLE/Foo-1.0.tar.gz"),
            ResourceError::InvalidAuthor { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/Foo-1.0"),
            ResourceError::NoArchiveExtension { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/Foo-1.0.tar.xz"),
            ResourceError::NoArchiveExtension { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/sub/"),
            ResourceError::NoArchiveExtension { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/.tar.gz"),
            ResourceError::NoArchiveExtension { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/0.tar.gz"),
            ResourceError::NoDistName { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/.pm-1.0.tar.gz"),
            ResourceError::NoDistName { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/-undef.tar.gz"),
            ResourceError::NoDistName { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/Foo-1.0.tar.gz\n"),
            ResourceError::ControlCharacter { .. }
        ));
        assert!(matches!(
            err("cpan:///distfile/EXAMPLE/Foo\t-1.0.tar.gz"),
            ResourceError::ControlCharacter { .. }
        ));
    }

    #[test]
    fn resource_error_messages() {
        let message = err_text("cpan:///distfile/EXAMPLE/Foo-1.0");
        assert!(
            message.contains("no recognised archive extension"),
            "{message}"
        );
        assert!(message.contains("Foo-1.0"), "{message}");
        let message = err_text("cpan:///distfile/Foo-1.0.tar.gz");
        assert!(
            message.starts_with("resource \"cpan:///distfile/Foo-1.0.tar.gz\" has no author"),
            "{message}"
        );
        for message in [
            err_text("x"),
            err_text("cpan:///module/X"),
            err_text("cpan:///distfile/EXAMPLE"),
            err_text("cpan:///distfile/EXAMPLE/0.tar.gz"),
            err_text("cpan:///distfile/EXAMPLE/\u{7}.tar.gz"),
            err_text("cpan:///distfile/E_X/Foo-1.0.tar.gz"),
        ] {
            let first = message.chars().next().unwrap();
            assert!(first.is_lowercase(), "{message}");
        }
        // Huge client input is shortened in messages.
        let long = format!("cpan:///distfile/EXAMPLE/{}", "x".repeat(100_000));
        assert!(err_text(&long).len() < 1_000);
    }

    fn err_text(resource: &str) -> String {
        parse_distfile_resource(resource).unwrap_err().to_string()
    }

    #[test]
    fn resources_never_panic() {
        let samples = [
            "cpan:///distfile/EXAMPLE/é-1.0.tar.gz",
            "cpan:///distfile/ÉX/Foo-1.0.tar.gz",
            "cpan:///distfile/EXAMPLE/////",
            "cpan:///distfile/EXAMPLE/a/b/c/.zip",
            "cpan:///distfile/EXAMPLE/-.zip",
            "cpan:///distfile/EXAMPLE/_.zip",
            "cpan:///distfile/EXAMPLE/v1.zip",
            "cpan:///distfile/EXAMPLE/1.zip",
            "cpan:///distfile/EXAMPLE/1-2.zip",
            "cpan:",
            "cpan:/",
            "cpan://",
        ];
        for resource in samples {
            let _ = parse_distfile_resource(resource);
        }
    }

    #[test]
    fn perl_version_classification() {
        let c = |v: &str| {
            let info = classify_perl_version(v);
            (info.perl, info.devel, info.patched)
        };
        let t = |p: &str, d: bool, x: bool| (p.to_string(), d, x);
        assert_eq!(c("5.36.0"), t("5.36.0", false, false));
        assert_eq!(c("v5.36.0"), t("5.36.0", false, false));
        assert_eq!(c("v5.37.2"), t("5.37.2", true, false));
        assert_eq!(c("5.38.0 RC1"), t("5.38.0", true, true));
        assert_eq!(c("v5.24.0 RC0"), t("5.24.0", true, true));
        assert_eq!(c("5.36.0 patch 1234"), t("5.36.0", false, true));
        assert_eq!(c("5.31.0 patch 1231"), t("5.31.0", true, true));
        assert_eq!(c("5.23.5 patch 12"), t("5.23.5", true, true));
        assert_eq!(c("5.5.1"), t("5.5.1", false, false));
        assert_eq!(c("5.7.1"), t("5.7.1", true, false));
        assert_eq!(c("5.9.5"), t("5.9.5", true, false));
        assert_eq!(c("5.10.1"), t("5.10.1", false, false));
        assert_eq!(c("5.11.2"), t("5.11.2", true, false));
        assert_eq!(c("5.41.10"), t("5.41.10", true, false));
        assert_eq!(c("5.100.0"), t("5.100.0", false, false));
        assert_eq!(c("5.101.0"), t("5.101.0", true, false));
        // The RC rule is anchored to "x.y.z RC<n>"; the patched rule is not.
        assert_eq!(c("5.38.0-RC1"), t("5.38.0", false, true));
        assert_eq!(c("5.38.0 rc1"), t("5.38.0", false, false));
        // Without an x.y.z prefix the best effort is the first word.
        assert_eq!(c("v5.36"), t("5.36", false, false));
        assert_eq!(c("5.7"), t("5.7", true, false));
        assert_eq!(c(""), t("", false, false));
        assert_eq!(c("  v5.36.0 "), t("5.36.0", false, false));
        assert_eq!(
            c("5.99999999999999999999.0"),
            t("5.99999999999999999999.0", false, false)
        );
    }

    #[test]
    fn dist_version_maturity() {
        assert!(is_dev_dist_version("0.01_03"));
        assert!(is_dev_dist_version("1.0-TRIAL"));
        assert!(is_dev_dist_version("1.0-TRIAL\n"));
        assert!(!is_dev_dist_version("1.0-TRIAL2"));
        assert!(!is_dev_dist_version("1.0-trial"));
        assert!(!is_dev_dist_version("0.07"));
        assert!(!is_dev_dist_version("v1.2.3"));
        assert!(!is_dev_dist_version(""));
    }
}
