//! Shell patterns of `${V#p}`, `${V%p}` and `${V/p/r}`, matched as BuildKit matches them.
//!
//! A pattern knows `*` (any run of characters), `?` (one character) and `\` escapes, and no
//! bracket classes. BuildKit evaluates a pattern as a Go regular expression (leftmost-first
//! matching, `.` not matching a newline); the `regex` crate has the same semantics, so patterns
//! are compiled into one rather than matched by hand. That keeps results identical in the
//! corner cases, e.g. which match "longest" picks when several stars compete.
//!
//! The escape character here is always `\`, whatever the Dockerfile escape character is:
//! the word reaches this module with its escapes kept.

use regex::Regex;

use super::unicode::{is_digit, is_letter};

/// A pattern that cannot be used, reported with the pattern text BuildKit shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InvalidPattern {
    pub(super) pattern: String,
    pub(super) reason: String,
}

/// How a `*` behaves when several lengths would match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Star {
    Shortest,
    Longest,
}

fn compile(pattern: &str, star: Star, anchored: bool) -> Result<Regex, InvalidPattern> {
    let invalid = |reason: String| InvalidPattern {
        pattern: pattern.to_owned(),
        reason,
    };
    let any_run = match star {
        Star::Shortest => ".*?",
        Star::Longest => ".*",
    };
    let mut regex = String::with_capacity(pattern.len() + 4);
    if anchored {
        regex.push('^');
    }
    // Go's text scanner, which BuildKit reads the pattern with, skips a leading BOM.
    let mut chars = pattern
        .strip_prefix('\u{feff}')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' => regex.push_str(any_run),
            '?' => regex.push('.'),
            '\\' => match chars.peek() {
                // `\}` and `\/` only kept the character from ending the `${…}` part; the
                // character itself is taken literally on the next turn.
                Some('}' | '/') => {}
                _ => match chars.next() {
                    Some(escaped @ ('*' | '?' | '\\')) => push_literal(&mut regex, escaped),
                    other => {
                        return Err(invalid(format!(
                            "invalid escape '\\{}'",
                            super::error::rune_text(other)
                        )));
                    }
                },
            },
            _ => push_literal(&mut regex, ch),
        }
    }
    Regex::new(&regex).map_err(|err| invalid(err.to_string()))
}

fn push_literal(regex: &mut String, ch: char) {
    regex.push_str(&regex::escape(ch.encode_utf8(&mut [0; 4])));
}

/// `${V#p}` (`longest` false) and `${V##p}` (`longest` true).
pub(super) fn trim_prefix(
    value: &str,
    pattern: &str,
    longest: bool,
) -> Result<String, InvalidPattern> {
    let star = if longest {
        Star::Longest
    } else {
        Star::Shortest
    };
    let regex = compile(pattern, star, true)?;
    Ok(match regex.find(value) {
        Some(found) => value[found.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${V%p}` (`longest` false) and `${V%%p}` (`longest` true).
///
/// A regular expression finds the leftmost match, not the rightmost, so the value and the
/// pattern are both reversed and the prefix of the reversal is trimmed. Errors therefore show
/// the reversed pattern, as BuildKit's do.
pub(super) fn trim_suffix(
    value: &str,
    pattern: &str,
    longest: bool,
) -> Result<String, InvalidPattern> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_value, &reverse_pattern(pattern), longest)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern character by character, keeping each escape in front of the character
/// it escapes (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let mut units: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(first) = rest.chars().next() {
        let mut len = first.len_utf8();
        if first == '\\'
            && let Some(escaped) = rest[len..].chars().next()
        {
            len += escaped.len_utf8();
        }
        let (unit, tail) = rest.split_at(len);
        units.push(unit);
        rest = tail;
    }
    units.into_iter().rev().collect()
}

/// `${V/p/r}` (`all` false) and `${V//p/r}` (`all` true).
///
/// The first form inserts `replacement` as is. The second, like Go's `ReplaceAllString`
/// that BuildKit uses, expands `$0`/`${0}` in it to the matched text, `$$` to `$`, and other
/// `$name` references to nothing; an empty match right after a match is not replaced.
pub(super) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, InvalidPattern> {
    let regex = compile(pattern, Star::Longest, false)?;
    if !all {
        return Ok(match regex.find(value) {
            Some(found) => {
                let mut out = String::with_capacity(value.len() + replacement.len());
                out.push_str(&value[..found.start()]);
                out.push_str(replacement);
                out.push_str(&value[found.end()..]);
                out
            }
            None => value.to_owned(),
        });
    }

    let mut out = String::with_capacity(value.len());
    let mut copied_up_to = 0;
    let mut search_from = 0;
    while search_from <= value.len() {
        let Some(found) = regex.find_at(value, search_from) else {
            break;
        };
        out.push_str(&value[copied_up_to..found.start()]);
        let right_after_previous = found.end() <= copied_up_to && found.start() != 0;
        if !right_after_previous {
            expand_template(&mut out, replacement, found.as_str());
        }
        copied_up_to = found.end();
        let next_char_len = value[search_from..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        search_from = if search_from + next_char_len > found.end() {
            search_from + next_char_len
        } else if search_from + 1 > found.end() {
            search_from + 1
        } else {
            found.end()
        };
    }
    out.push_str(&value[copied_up_to..]);
    Ok(out)
}

/// Appends `template` with Go's `Regexp.Expand` rules for a regex without groups.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        match group_reference(after) {
            Some((name, tail)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// Splits `name` or `{name}` off the front of `text`; `None` when there is no valid reference.
fn group_reference(text: &str) -> Option<(&str, &str)> {
    let (body, braced) = match text.strip_prefix('{') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let name_len: usize = body
        .chars()
        .take_while(|&ch| is_letter(ch) || is_digit(ch) || ch == '_')
        .map(char::len_utf8)
        .sum();
    if name_len == 0 {
        return None;
    }
    let (name, tail) = body.split_at(name_len);
    if braced {
        return tail.strip_prefix('}').map(|tail| (name, tail));
    }
    Some((name, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_pattern_keeps_escapes_in_front() {
        // Cases from BuildKit's TestReversePattern.
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn invalid_escapes_are_rejected() {
        // Invalid patterns from BuildKit's TestConvertShellPatternToRegex.
        for pattern in ["\\", "\\x", "\\\\\\"] {
            assert!(
                compile(pattern, Star::Longest, true).is_err(),
                "{pattern:?}"
            );
        }
        let err = compile("a\\x", Star::Longest, true).unwrap_err();
        assert_eq!(err.reason, "invalid escape '\\x'");
        let err = compile("a\\", Star::Longest, true).unwrap_err();
        assert_eq!(err.reason, "invalid escape '\\\u{fffd}'");
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let regex = compile("(()[]{\\}^$.\\*\\?|\\\\", Star::Longest, true).unwrap();
        assert!(regex.is_match("(()[]{}^$.*?|\\"));
        assert!(!regex.is_match("(()[]{}^$x*?|\\"));
    }

    #[test]
    fn stars_pick_shortest_or_longest() {
        assert_eq!(trim_prefix("a/b/c", "*/", false).unwrap(), "b/c");
        assert_eq!(trim_prefix("a/b/c", "*/", true).unwrap(), "c");
        assert_eq!(trim_suffix("a/b/c", "/*", false).unwrap(), "a/b");
        assert_eq!(trim_suffix("a/b/c", "/*", true).unwrap(), "a");
        assert_eq!(trim_suffix("file.tar.gz", ".*", false).unwrap(), "file.tar");
    }

    #[test]
    fn star_does_not_cross_newlines() {
        assert_eq!(trim_prefix("a\nb", "*b", false).unwrap(), "a\nb");
    }

    #[test]
    fn replace_all_skips_empty_match_after_match() {
        assert_eq!(replace("abc", "*", "R", true).unwrap(), "R");
        assert_eq!(replace("ab", "", "-", true).unwrap(), "-a-b-");
        assert_eq!(replace("ab", "", "-", false).unwrap(), "-ab");
    }

    #[test]
    fn replace_all_expands_group_zero_only() {
        assert_eq!(replace("ab", "b", "[$0]", true).unwrap(), "a[b]");
        assert_eq!(replace("ab", "b", "[${0}]", true).unwrap(), "a[b]");
        assert_eq!(replace("ab", "b", "[$1x$$ $]", true).unwrap(), "a[$ $]");
        assert_eq!(replace("ab", "b", "[$00]", true).unwrap(), "a[]");
        assert_eq!(replace("ab", "b", "[${0]", true).unwrap(), "a[${0]");
        assert_eq!(replace("ab", "b", "[$0]", false).unwrap(), "a[$0]");
    }
}
