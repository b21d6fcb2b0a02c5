//! Go's `strconv.Quote` (`%q`), so that dumps and messages match BuildKit's byte for byte.

use std::fmt::Write as _;

use super::shell::unicode::is_printable;

/// Quotes `text` as Go's `strconv.Quote` (and `%q`) does, so that messages match BuildKit's.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            _ if is_printable(ch) => out.push(ch),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ if ch < ' ' || ch == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(ch));
            }
            _ if u32::from(ch) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            _ => {
                let _ = write!(out, "\\U{:08x}", u32::from(ch));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\u{7f}\n\t"), r#""\x00\x7f\n\t""#);
        assert_eq!(go_quote("♥☃"), "\"♥☃\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
        assert_eq!(go_quote("\u{10fffe}"), r#""\U0010fffe""#);
    }
}
