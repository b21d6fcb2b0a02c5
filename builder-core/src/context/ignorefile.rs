//! Reading a `.dockerignore` file into patterns (moby's `ignorefile.ReadAll`).
//!
//! The rules are Docker's, including the ones that surprise: a line is a comment only when `#`
//! is its very first character (`  # x` is the pattern `# x`), and a UTF-8 byte order mark is
//! removed from the first line only. Patterns come out relative to the context root: `/foo` and
//! `foo` are the same pattern.

use super::cleanpath;

/// Splits the text of an ignore file into its patterns, in order.
///
/// Lines are split on `\n` (a trailing `\r` is dropped), trimmed, and blank lines and comments are
/// skipped. A leading `!` is kept and whitespace after it removed; the rest is lexically cleaned and
/// one leading `/` removed. A bare `!` is returned as is; [`super::PatternMatcher::new`] rejects it.
pub fn read_all(text: &str) -> Vec<String> {
    let mut patterns = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = if index == 0 {
            line.strip_prefix('\u{FEFF}').unwrap_or(line)
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (invert, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut pattern = String::new();
        if invert {
            pattern.push('!');
        }
        if !body.is_empty() {
            let cleaned = cleanpath::clean(body);
            let relative = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest,
                _ => cleaned.as_str(),
            };
            pattern.push_str(relative);
        }
        patterns.push(pattern);
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_bom_on_first_line_only() {
        assert_eq!(read_all("\u{FEFF}a\n\u{FEFF}b"), ["a", "\u{FEFF}b"]);
    }

    #[test]
    fn comment_only_in_first_column() {
        assert_eq!(read_all("# x\n  # y\r\n/"), ["# y", "/"]);
    }
}
