//! BuildKit's `Node.Dump()` text for a [`RawDockerfile`]: the format of BuildKit's parser
//! corpus (`testfiles/*/result`), one parenthesised line per instruction.

use std::fmt::Write;

use super::raw::{RawDockerfile, RawInstruction};

/// The AST dump BuildKit's parser tests compare against, with the trailing newline its test
/// driver appends.
pub fn dump_buildkit(raw: &RawDockerfile) -> String {
    let mut out = String::new();
    for instruction in &raw.instructions {
        out.push('(');
        out.push_str(&dump_instruction(instruction));
        out.push_str(")\n");
    }
    out
}

/// One instruction without the surrounding parentheses: `copy ["--from=a"] "x" "/y"`.
pub(super) fn dump_instruction(instruction: &RawInstruction) -> String {
    let mut out = instruction.keyword.to_lowercase();
    if !instruction.flags.is_empty() {
        let quoted: Vec<String> = instruction.flags.iter().map(|f| go_quote(f)).collect();
        // Infallible: writing to a String.
        let _ = write!(out, " [{}]", quoted.join(" "));
    }
    if let Some(trigger) = &instruction.trigger {
        out.push_str(" (");
        out.push_str(&dump_instruction(trigger));
        out.push(')');
    }
    for arg in &instruction.args {
        out.push(' ');
        out.push_str(&go_quote(arg));
    }
    out.trim().to_string()
}

/// `s` as Go's `strconv.Quote` writes it: double quotes, backslash escapes, and printable
/// Unicode left as is.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
///
/// Without the Unicode category tables this rejects what is certainly not printable (controls,
/// format characters, separators other than U+0020, private use, non-characters) and accepts
/// the rest, so unassigned code points print raw where Go would escape them.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_or_private = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
        | 0xFDD0..=0xFDEF);
    let non_character = u & 0xFFFE == 0xFFFE;
    !(format_or_private || non_character)
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
