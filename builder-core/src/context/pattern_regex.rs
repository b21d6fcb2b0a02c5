//! Turning one `.dockerignore` pattern into the cheapest test that decides it.
//!
//! Docker classifies each pattern: a plain string is compared for equality, `dir/**` is a prefix
//! test, `**/name` a suffix test, and everything else becomes a regular expression in which `*`
//! and `?` stay within one path component, `**` spans any number of them, `.+()|{}$` are literal,
//! `\` escapes the next character and `[...]` classes are handed to the regex engine as written.
//!
//! Docker's expression is written for Go's RE2 dialect, and a few of its corners leak into
//! behaviour (`[Local-Only]` is a valid glob but an invalid regex range, so matching fails; an
//! escaped letter such as `\d` keeps its regex meaning). To keep those corners identical, the
//! expression is first spelled in Go's dialect and then re-read with Go's parsing rules and written
//! out in the `regex` crate's dialect, which nests classes, treats `&&`/`--`/`~~` inside classes and
//! `\<`/`\>` outside them as operators, and makes `\d`, `\w`, `\s` and `\b` Unicode-aware.
//!
//! Docker also tries every pattern against each parent directory of the path. Those parents are
//! the prefixes of the path that end just before a `/`, so "the path or one of its parents
//! matches" is the same as "the path matches the pattern followed by an optional `/…`", and each
//! test also comes in that form to decide it in one pass over the path.

use std::iter::Peekable;
use std::str::Chars;

use regex::Regex;

/// How one cleaned pattern (without its `!`) is tested against a path.
#[derive(Debug, Clone)]
pub(crate) enum PatternTest {
    /// The path must equal the pattern.
    Exact(String),
    /// `dir/**`: the path must start with the pattern minus its trailing `**`.
    Prefix(String),
    /// `**/name` or `**name`: the path must end with what follows the leading `**`, or, when that
    /// starts with `/`, equal the rest.
    Suffix(String),
    /// Anything with wildcards, classes or escapes.
    Regex(RegexTest),
}

/// A pattern that needs a regular expression, with the literal text around its first and last
/// wildcard checked first: most paths fail those cheap checks and never reach the expression.
#[derive(Debug, Clone)]
pub(crate) struct RegexTest {
    /// The pattern's own expression, anchored at both ends.
    own: Regex,
    /// The same followed by an optional `/…`, when no assertion (`\b`, `\z`, …) makes what
    /// follows the pattern matter.
    or_parent: Option<Regex>,
    /// The text before the first character that is not literal: every match starts with it.
    starts_with: String,
    /// The text after the last character that is not literal: every match ends with it.
    ends_with: String,
}

/// Pattern characters after which the expression may not be literal text: wildcards, classes,
/// escapes, and `^`, which Docker leaves as an anchor.
const NOT_LITERAL: &[char] = &['*', '?', '[', ']', '\\', '^'];

/// What the expression for "the pattern or a directory it names" ends with, instead of `$`.
const OR_BELOW: &str = "(?:/(?s:.*))?$";

impl PatternTest {
    /// Builds the test for `pattern`, or `None` when the regular expression does not compile.
    pub(crate) fn compile(pattern: &str) -> Option<PatternTest> {
        let (kind, go_regex) = classify(pattern);
        Some(match kind {
            Kind::Exact => PatternTest::Exact(pattern.to_owned()),
            Kind::Prefix => PatternTest::Prefix(pattern.strip_suffix("**")?.to_owned()),
            Kind::Suffix => PatternTest::Suffix(pattern.strip_prefix("**")?.to_owned()),
            Kind::Regex => {
                let translated = go_to_rust(&go_regex)?;
                let own = Regex::new(&translated.regex).ok()?;
                let or_parent = match translated.composable_end() {
                    Some(body) => Some(Regex::new(&format!("{body}{OR_BELOW}")).ok()?),
                    None => None,
                };
                let prefix_end = pattern.find(NOT_LITERAL).unwrap_or(pattern.len());
                // What follows an escape (`\d`, `\x41`) may belong to it.
                let suffix_start = match pattern.rfind(NOT_LITERAL) {
                    Some(index) if pattern[index..].starts_with('\\') => pattern.len(),
                    Some(index) => index + 1,
                    None => 0,
                };
                PatternTest::Regex(RegexTest {
                    own,
                    or_parent,
                    starts_with: pattern[..prefix_end].to_owned(),
                    ends_with: pattern[suffix_start.max(prefix_end)..].to_owned(),
                })
            }
        })
    }

    /// Tests a cleaned, slash-separated path.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PatternTest::Exact(pattern) => path == pattern,
            PatternTest::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PatternTest::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            PatternTest::Regex(test) => {
                path.starts_with(test.starts_with.as_str())
                    && path.ends_with(test.ends_with.as_str())
                    && test.own.is_match(path)
            }
        }
    }

    /// Tests a cleaned path and the prefixes of it that end just before a `/`: true when any of
    /// them matches.
    pub(crate) fn matches_self_or_prefix(&self, path: &str) -> bool {
        let prefixes = || path.match_indices('/').map(|(index, _)| &path[..index]);
        match self {
            PatternTest::Exact(pattern) => {
                path == pattern
                    || path
                        .strip_prefix(pattern.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            // The path is the longest of the candidates and starts with all of them.
            PatternTest::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PatternTest::Suffix(suffix) => match suffix.strip_prefix('/') {
                // A candidate ending with `/name`, or equal to `name`: `name` as whole components.
                Some(name) => occurs_ending_at_slash(path, name, true),
                None => occurs_ending_at_slash(path, suffix, false),
            },
            PatternTest::Regex(test) => match &test.or_parent {
                // The matching candidate is a prefix of the path that ends at a `/` or the end.
                Some(regex) => {
                    path.starts_with(test.starts_with.as_str())
                        && occurs_ending_at_slash(path, &test.ends_with, false)
                        && regex.is_match(path)
                }
                None => self.matches(path) || prefixes().any(|prefix| self.matches(prefix)),
            },
        }
    }
}

/// Whether `needle` occurs in `path` ending at its end or just before a `/` (that is, some prefix
/// of `path` that ends before a `/`, or `path` itself, ends with it), and, if `from_slash`, also
/// starting at its start or just after a `/`.
fn occurs_ending_at_slash(path: &str, needle: &str, from_slash: bool) -> bool {
    let (path, needle) = (path.as_bytes(), needle.as_bytes());
    (needle.len()..=path.len())
        .filter(|&end| end == path.len() || path[end] == b'/')
        .any(|end| {
            let start = end - needle.len();
            &path[start..end] == needle && (!from_slash || start == 0 || path[start - 1] == b'/')
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Decides the kind of test and spells the Go-dialect expression used when it is a regex.
fn classify(pattern: &str) -> (Kind, String) {
    let mut kind = Kind::Exact;
    let mut regex = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.next_if_eq(&'*').is_some() => {
                // `**/` means the same as `**`.
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if at_start {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    regex.push('\\');
                    regex.push(escaped);
                    kind = Kind::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(c);
                kind = Kind::Regex;
            }
            other => regex.push(other),
        }
        at_start = false;
    }
    regex.push('$');
    (kind, regex)
}

/// An expression in the `regex` crate's dialect, and whether its end can be extended.
struct Translation {
    regex: String,
    /// Whether the expression ends with its closing `$` and has no assertion that would look
    /// past where the pattern ends.
    composable: bool,
}

impl Translation {
    /// The expression without its closing `$`, when something may be appended in its place.
    fn composable_end(&self) -> Option<&str> {
        if self.composable {
            self.regex.strip_suffix('$')
        } else {
            None
        }
    }
}

/// Re-reads an expression with Go's RE2 rules and writes the same language for the `regex` crate,
/// or `None` where Go's compiler would reject it.
fn go_to_rust(go: &str) -> Option<Translation> {
    let mut out = String::with_capacity(go.len() * 2);
    let mut chars = go.chars().peekable();
    let mut assertions = false;
    let mut closing_anchor = false;
    while let Some(c) = chars.next() {
        closing_anchor = false;
        match c {
            '\\' => {
                assertions |= chars.peek().is_some_and(|next| "bBAz".contains(*next));
                out.push_str(&escape_outside_class(&mut chars)?);
            }
            '[' => out.push_str(&class(&mut chars)?),
            '$' => {
                closing_anchor = chars.peek().is_none();
                out.push(c);
            }
            '.' | '*' | '?' | '+' | '(' | ')' | '|' | '^' => out.push(c),
            literal => out.push_str(&regex::escape(literal.encode_utf8(&mut [0; 4]))),
        }
    }
    Some(Translation {
        regex: out,
        composable: closing_anchor && !assertions,
    })
}

/// ASCII Perl classes, as Go defines them (the `regex` crate's are Unicode-aware by default).
fn perl_class_ranges(letter: char) -> Option<(&'static str, bool)> {
    let digits = r"0-9";
    let space = r"\x{9}\x{A}\x{C}\x{D}\x{20}";
    let word = r"0-9A-Za-z_";
    Some(match letter {
        'd' => (digits, false),
        'D' => (digits, true),
        's' => (space, false),
        'S' => (space, true),
        'w' => (word, false),
        'W' => (word, true),
        _ => return None,
    })
}

/// Translates what follows a `\` outside a class.
fn escape_outside_class(chars: &mut Peekable<Chars<'_>>) -> Option<String> {
    let c = *chars.peek()?;
    if let Some((ranges, negated)) = perl_class_ranges(c) {
        chars.next();
        let caret = if negated { "^" } else { "" };
        return Some(format!("[{caret}{ranges}]"));
    }
    match c {
        'b' | 'B' => {
            chars.next();
            Some(format!("(?-u:\\{c})"))
        }
        'A' | 'z' => {
            chars.next();
            Some(format!("\\{c}"))
        }
        'p' | 'P' => unicode_class(chars),
        _ => {
            let literal = escaped_char(chars)?;
            Some(regex::escape(literal.encode_utf8(&mut [0; 4])))
        }
    }
}

/// Copies a `\p{Name}`, `\pL`, `\P{Name}` or `\PL` class (the next char is `p` or `P`).
fn unicode_class(chars: &mut Peekable<Chars<'_>>) -> Option<String> {
    let mut out = String::from("\\");
    out.push(chars.next()?);
    let first = chars.next()?;
    out.push(first);
    if first == '{' {
        loop {
            let c = chars.next()?;
            out.push(c);
            if c == '}' {
                break;
            }
        }
    }
    Some(out)
}

/// Reads a single-character escape (after the `\`): punctuation, control letters, hex, octal.
fn escaped_char(chars: &mut Peekable<Chars<'_>>) -> Option<char> {
    let c = chars.next()?;
    if c.is_ascii_punctuation() {
        return Some(c);
    }
    match c {
        'a' => Some('\x07'),
        'f' => Some('\x0C'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        'v' => Some('\x0B'),
        'x' => hex_escape(chars),
        '0'..='7' => octal_escape(c, chars),
        _ => None,
    }
}

fn hex_escape(chars: &mut Peekable<Chars<'_>>) -> Option<char> {
    let mut digits = String::new();
    if chars.next_if_eq(&'{').is_some() {
        loop {
            let c = chars.next()?;
            if c == '}' {
                break;
            }
            digits.push(c);
        }
        if digits.is_empty() {
            return None;
        }
    } else {
        digits.push(chars.next()?);
        digits.push(chars.next()?);
    }
    if !digits.chars().all(|d| d.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

fn octal_escape(first: char, chars: &mut Peekable<Chars<'_>>) -> Option<char> {
    let is_octal = |c: &char| ('0'..='7').contains(c);
    // A lone non-zero digit would be a backreference, which RE2 does not support.
    if first != '0' && !chars.peek().is_some_and(is_octal) {
        return None;
    }
    let mut value = first.to_digit(8)?;
    for _ in 0..2 {
        match chars.next_if(is_octal) {
            Some(digit) => value = value * 8 + digit.to_digit(8)?,
            None => break,
        }
    }
    char::from_u32(value)
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Translates a bracket class (the `[` is consumed) with RE2's rules: a `]` right after `[` or
/// `[^` is literal, `-` forms a range only between two characters, and `[:name:]` is a POSIX class.
fn class(chars: &mut Peekable<Chars<'_>>) -> Option<String> {
    let mut out = String::from("[");
    if chars.next_if_eq(&'^').is_some() {
        out.push('^');
    }
    let mut first = true;
    loop {
        let c = *chars.peek()?;
        if c == ']' && !first {
            chars.next();
            out.push(']');
            return Some(out);
        }
        first = false;
        if c == '['
            && let Some(named) = posix_class(chars)?
        {
            out.push_str(&named);
            continue;
        }
        if c == '\\' {
            let mut lookahead = chars.clone();
            lookahead.next();
            match lookahead.peek().copied() {
                Some('p' | 'P') => {
                    chars.next();
                    out.push_str(&unicode_class(chars)?);
                    continue;
                }
                Some(letter) => {
                    if let Some((ranges, negated)) = perl_class_ranges(letter) {
                        chars.next();
                        chars.next();
                        if negated {
                            out.push_str(&format!("[^{ranges}]"));
                        } else {
                            out.push_str(ranges);
                        }
                        continue;
                    }
                }
                None => return None,
            }
        }
        let lo = class_char(chars)?;
        let mut lookahead = chars.clone();
        let is_range = lookahead.next() == Some('-') && lookahead.peek().is_some_and(|&n| n != ']');
        if is_range {
            chars.next();
            let hi = class_char(chars)?;
            if hi < lo {
                return None;
            }
            out.push_str(&class_literal(lo));
            out.push('-');
            out.push_str(&class_literal(hi));
        } else {
            out.push_str(&class_literal(lo));
        }
    }
}

/// Reads `[:name:]` or `[:^name:]` if it is there. `Some(None)` means "not a named class",
/// `None` means a malformed one (RE2 rejects unknown names).
fn posix_class(chars: &mut Peekable<Chars<'_>>) -> Option<Option<String>> {
    let rest: String = chars.clone().collect();
    let Some(body) = rest.strip_prefix("[:") else {
        return Some(None);
    };
    let Some(end) = body.find(":]") else {
        return Some(None);
    };
    let name = &body[..end];
    let bare = name.strip_prefix('^').unwrap_or(name);
    if !POSIX_CLASSES.contains(&bare) {
        return None;
    }
    let consumed = 2 + end + 2;
    let text: String = chars.by_ref().take(consumed).collect();
    Some(Some(text))
}

/// Reads one class character, plain or escaped.
fn class_char(chars: &mut Peekable<Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '\\' => escaped_char(chars),
        c => Some(c),
    }
}

/// Writes one character so that it is literal inside a `regex` crate class.
fn class_literal(c: char) -> String {
    if c.is_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", u32::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_for(pattern: &str) -> PatternTest {
        PatternTest::compile(pattern).unwrap()
    }

    #[test]
    fn picks_the_cheapest_test() {
        assert!(matches!(test_for("a/b.c"), PatternTest::Exact(_)));
        assert!(matches!(test_for("dir/**"), PatternTest::Prefix(p) if p == "dir/"));
        assert!(matches!(test_for("**/foo"), PatternTest::Suffix(s) if s == "/foo"));
        assert!(matches!(test_for("**"), PatternTest::Suffix(s) if s.is_empty()));
        assert!(matches!(
            test_for("**/*.txt"),
            PatternTest::Regex(RegexTest {
                or_parent: Some(_),
                ..
            })
        ));
        assert!(matches!(
            test_for("a\\-b"),
            PatternTest::Regex(RegexTest {
                or_parent: Some(_),
                ..
            })
        ));
        assert!(matches!(
            test_for("a\\z"),
            PatternTest::Regex(RegexTest {
                or_parent: None,
                ..
            })
        ));
        assert!(matches!(
            test_for("a\\b"),
            PatternTest::Regex(RegexTest {
                or_parent: None,
                ..
            })
        ));
    }

    #[test]
    fn classes_survive_the_dialect_change() {
        assert!(test_for("a[&&b]c").matches("a&c"));
        assert!(test_for("a[[]c").matches("a[c"));
        assert!(test_for("a[~-~]c").matches("a~c"));
        // Docker writes `?` as `[^/]` even inside a class, so `[?]` reads as the class `[[^/]`
        // followed by a literal `]`.
        assert!(test_for("[?]").matches("[]"));
        assert!(!test_for("[?]").matches("?"));
        assert!(test_for("a\\<b").matches("a<b"));
        assert!(test_for("\\d").matches("5"));
        assert!(!test_for("\\d").matches("٣"));
        assert!(test_for("[[:digit:]x]").matches("7"));
    }

    #[test]
    fn one_pass_test_agrees_with_testing_each_prefix() {
        let patterns = [
            "a", "a/b", "a/**", "**", "**/b", "**b", "b/**/c", "*.md", "**/*.md", "a/*/c", "a?",
            "[ab]/c", "a\\*", "a\\b", "a\\B", "a\\z", "\\Aa", "a/b**", "**/a/**", ".env*", "a[^/]",
            "a\\d", "a/b\\", "[?]", "\\$", "a$b", "**/a/b", "**/r.md", "**.md", "**/é", "**/b/",
            "^b", "a^b", "^b*", "x*.md", "a*\\", "é*é", "[?]x", "a\\*b", "r*/x", "*b/b", "a/*/b/b",
            "a\\x41", "a\\101", "*\\d", "a\\d", "\\d", "a\\\\b", "*\\.md",
        ];
        let paths = [
            "a",
            "ab",
            "a/b",
            "a/b/c",
            "x/a",
            "x/a/b",
            "b",
            "x/b",
            "b/c",
            "b/x/y/c",
            "b/c/d",
            "r.md",
            "x/r.md",
            "r.md/x",
            "a/x/c",
            "a/x/c/d",
            "a*",
            "a*/b",
            "a\nb",
            "a\n/b",
            "x\n/b",
            "a/\nb",
            "a1/x",
            "[]",
            "[]/x",
            "$",
            "$/x",
            "a$b/c",
            ".env",
            ".env.x/y",
            "/a",
            "/a/b",
            "a\\b",
            "a1/\n",
            "r.md/x\ny",
            "a/b/b",
            "bb",
            "xb/y",
            "x/ab",
            "x/a/bc",
            "a/b/a/b",
            "é",
            "xé/y",
            "x/é/y",
            "x/r.md/y",
            "r.mdx",
            ".md",
            "b/",
            "a*b",
            "a*b/c",
            "xr.md",
            "éé",
            "éxé/y",
            "[]x",
            "a^b",
            "^b",
            "rx/x",
            "r/x/y",
            "bb/b",
            "a*\\",
            "a/c/b/b/d",
            "5",
            "5/x",
            "A",
            "A/x",
            "aA",
            "aA/x",
            "a\\b/c",
            "x.md/y",
        ];
        for pattern in patterns {
            let Some(test) = PatternTest::compile(pattern) else {
                continue;
            };
            for path in paths {
                if let PatternTest::Regex(regex) = &test {
                    assert_eq!(
                        test.matches(path),
                        regex.own.is_match(path),
                        "literal checks of {pattern:?} on {path:?}"
                    );
                }
                let each_prefix = test.matches(path)
                    || path
                        .match_indices('/')
                        .any(|(index, _)| test.matches(&path[..index]));
                assert_eq!(
                    test.matches_self_or_prefix(path),
                    each_prefix,
                    "pattern {pattern:?} path {path:?}"
                );
            }
        }
    }

    #[test]
    fn reversed_range_does_not_compile() {
        assert!(PatternTest::compile("[Local-Only]").is_none());
    }
}
