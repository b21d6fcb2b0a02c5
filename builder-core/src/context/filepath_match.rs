//! Go's `path/filepath.Match` shell patterns, as used for `COPY`/`ADD` source wildcards.
//!
//! The syntax (Unix flavour, where `\` escapes):
//!
//! * `*` matches any run of characters other than `/`;
//! * `?` matches one character other than `/`;
//! * `[...]` matches one character from a non-empty class of characters and `lo-hi` ranges,
//!   negated by a leading `^`; inside a class `\` escapes, and an unescaped `-` or `]` where a
//!   character is expected is an error. A class *can* match `/`, as in Go;
//! * `\c` matches `c` literally; every other character matches itself. Braces are not special.
//!
//! The pattern must match the whole name. A malformed pattern is always reported, even when the
//! name already failed to match, so `filepath_match(p, ".")` doubles as a syntax check (this is
//! how `.dockerignore` patterns are validated).
//!
//! Matching follows Go's strategy: the pattern is split into chunks at each star, and each chunk is
//! placed at the leftmost position the preceding star allows. Positions are counted in characters,
//! not bytes.

use thiserror::Error;

/// A pattern that `filepath.Match` would reject with `ErrBadPattern`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error in pattern `{pattern}`")]
pub struct BadPattern {
    pattern: String,
}

impl BadPattern {
    pub(crate) fn new(pattern: &str) -> Self {
        BadPattern {
            pattern: pattern.to_owned(),
        }
    }

    /// The rejected pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// Reports whether `name` matches the shell pattern `pattern`, with Go's `filepath.Match` rules.
///
/// The only error is a malformed pattern; it is reported whatever `name` is.
pub fn filepath_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    Ok(FilepathPattern::new(pattern)?.matches(name))
}

/// Reports whether a path component contains an unescaped wildcard (`*`, `?` or `[`).
///
/// BuildKit uses this rule to split a `COPY` source into a literal directory prefix and a part
/// that is expanded by walking.
pub fn contains_wildcards(component: &str) -> bool {
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A parsed `filepath.Match` pattern, for matching many names without re-parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilepathPattern {
    chunks: Vec<Chunk>,
}

/// A run of single-character tokens, optionally preceded by a star.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    after_star: bool,
    tokens: Vec<Token>,
}

/// Something that matches exactly one character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyButSlash,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(expected) => *expected == c,
            Token::AnyButSlash => c != '/',
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl FilepathPattern {
    /// Parses `pattern`, rejecting it as Go would.
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        let bad = || BadPattern::new(pattern);
        let mut chunks = vec![Chunk {
            after_star: false,
            tokens: Vec::new(),
        }];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    let current = chunks.last();
                    let fresh = current.is_some_and(|chunk| chunk.tokens.is_empty());
                    if fresh {
                        if let Some(chunk) = chunks.last_mut() {
                            chunk.after_star = true;
                        }
                    } else {
                        chunks.push(Chunk {
                            after_star: true,
                            tokens: Vec::new(),
                        });
                    }
                    continue;
                }
                '?' => Token::AnyButSlash,
                '\\' => Token::Literal(chars.next().ok_or_else(bad)?),
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                            break;
                        }
                        let lo = class_char(&mut chars).ok_or_else(bad)?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(&mut chars).ok_or_else(bad)?
                        } else {
                            lo
                        };
                        // Go requires something (at least the closing `]`) after each range.
                        if chars.peek().is_none() {
                            return Err(bad());
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                other => Token::Literal(other),
            };
            if let Some(chunk) = chunks.last_mut() {
                chunk.tokens.push(token);
            }
        }
        Ok(FilepathPattern { chunks })
    }

    /// Reports whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut rest = name;
        let count = self.chunks.len();
        for (index, chunk) in self.chunks.iter().enumerate() {
            let is_last = index + 1 == count;
            if chunk.after_star && chunk.tokens.is_empty() {
                // A trailing star takes the rest of the name, unless that crosses a `/`.
                return !rest.contains('/');
            }
            match chunk.place(rest, is_last) {
                Some(after) => rest = after,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

impl Chunk {
    /// Finds where this chunk matches in `name`: at the start, or, after a star, at the leftmost
    /// position reachable without skipping a `/`. The last chunk must also reach the end.
    fn place<'n>(&self, name: &'n str, is_last: bool) -> Option<&'n str> {
        let fits = |candidate: &'n str| {
            self.match_prefix(candidate)
                .filter(|rest| !is_last || rest.is_empty())
        };
        if let Some(rest) = fits(name) {
            return Some(rest);
        }
        if !self.after_star {
            return None;
        }
        for (offset, c) in name.char_indices() {
            if c == '/' {
                break;
            }
            if let Some(rest) = fits(&name[offset + c.len_utf8()..]) {
                return Some(rest);
            }
        }
        None
    }

    /// Matches the tokens against the start of `name`, returning what is left.
    fn match_prefix<'n>(&self, name: &'n str) -> Option<&'n str> {
        let mut chars = name.chars();
        for token in &self.tokens {
            let c = chars.next()?;
            if !token.accepts(c) {
                return None;
            }
        }
        Some(chars.as_str())
    }
}

/// Reads one possibly escaped class character; `-`, `]` and the end of the pattern are errors.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '-' | ']' => None,
        '\\' => chars.next(),
        c => Some(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_do_not_cross_slash() {
        assert_eq!(filepath_match("a*", "ab/c"), Ok(false));
        assert_eq!(filepath_match("a*/b", "abc/b"), Ok(true));
        assert_eq!(filepath_match("a?b", "a/b"), Ok(false));
    }

    #[test]
    fn class_may_match_slash_as_in_go() {
        assert_eq!(filepath_match("a[^x]b", "a/b"), Ok(true));
    }

    #[test]
    fn malformed_pattern_is_reported_after_a_mismatch() {
        assert!(filepath_match("x[", "y").is_err());
        assert!(filepath_match("*x\\", "y").is_err());
        assert!(filepath_match("[Local-Only]", ".").is_ok());
    }

    #[test]
    fn detects_wildcards_in_components() {
        assert!(contains_wildcards("*.txt"));
        assert!(contains_wildcards("a[bc]"));
        assert!(!contains_wildcards("a\\*b"));
        assert!(!contains_wildcards("a{b}"));
    }
}
