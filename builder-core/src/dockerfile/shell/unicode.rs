//! Character classes as Go's `unicode` package defines them.
//!
//! BuildKit decides what may be part of a variable name with `unicode.IsLetter` (category L)
//! and `unicode.IsDigit` (category Nd), and Go quotes by `unicode.IsPrint`. Rust's
//! `is_alphabetic`/`is_numeric` are wider (marks, letter-like and other numbers), so the
//! general categories are taken from `regex`'s Unicode tables instead.

use std::sync::LazyLock;

use regex::Regex;

fn category_matcher(class: &str) -> Option<Regex> {
    Regex::new(&format!("^{class}$")).ok()
}

static LETTER: LazyLock<Option<Regex>> = LazyLock::new(|| category_matcher(r"\p{L}"));
static DECIMAL_DIGIT: LazyLock<Option<Regex>> = LazyLock::new(|| category_matcher(r"\p{Nd}"));
static GRAPHIC: LazyLock<Option<Regex>> =
    LazyLock::new(|| category_matcher(r"[\p{L}\p{M}\p{N}\p{P}\p{S}]"));

fn in_category(matcher: &LazyLock<Option<Regex>>, ch: char, fallback: fn(char) -> bool) -> bool {
    match matcher.as_ref() {
        Some(regex) => regex.is_match(ch.encode_utf8(&mut [0; 4])),
        None => fallback(ch),
    }
}

/// Go's `unicode.IsLetter`: general category L.
pub(super) fn is_letter(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphabetic();
    }
    in_category(&LETTER, ch, char::is_alphabetic)
}

/// Go's `unicode.IsDigit`: general category Nd.
pub(super) fn is_digit(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_digit();
    }
    in_category(&DECIMAL_DIGIT, ch, char::is_numeric)
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
pub(crate) fn is_printable(ch: char) -> bool {
    if ch.is_ascii() {
        return (' '..='~').contains(&ch);
    }
    in_category(&GRAPHIC, ch, |c| !c.is_control() && !c.is_whitespace())
}
