//! Recognising here-document words (`<<EOF`, `<<-'EOF'`, `3<<EOF`) and stripping `<<-` tabs.

use super::ast::Heredoc;
use super::error::ParseErrorKind;
use super::heredoc_lex::{LexMode, lex_words};

/// If `word` is a here-document operator with its delimiter, the heredoc it opens (with empty
/// content). `Ok(None)` for anything else; an error when the delimiter is malformed (`<<'EOF`).
pub(super) fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lex = |raw_quotes| {
        let mode = LexMode {
            raw_quotes,
            raw_escapes: false,
        };
        lex_words(rest, mode).map_err(|message| ParseErrorKind::InvalidHeredoc {
            word: rest.to_string(),
            message,
        })
    };
    let words = lex(false)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = lex(true)?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(ParseErrorKind::Invalid(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(Heredoc {
        name: name.clone(),
        file_descriptor: word[..digits].parse().unwrap_or(0),
        expand: quotes(name) == quotes(raw_name),
        chomp,
        content: String::new(),
    }))
}

/// The here-documents opened on an instruction line, in order. A line that does not lex (an
/// unbalanced quote) opens none, as in BuildKit.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let mode = LexMode {
        raw_quotes: true,
        raw_escapes: true,
    };
    let words = lex_words(line, mode).unwrap_or_default();
    let mut heredocs = Vec::new();
    for word in &words {
        if let Some(heredoc) = parse_heredoc_word(word)? {
            heredocs.push(heredoc);
        }
    }
    Ok(heredocs)
}

/// Removes the leading tabs of every line, for `<<-` here-documents.
pub(super) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::test_support::shared_file;

    #[test]
    fn buildkit_heredoc_words() {
        let data: serde_json::Value =
            serde_json::from_str(&shared_file("extracted/heredoc/heredoc-words.json")).unwrap();
        let strings = |key: &str| -> Vec<String> {
            data[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let mut checked = 0;
        for word in strings("ParseHeredoc_valid_all_named_EOF") {
            let heredoc = parse_heredoc_word(&word).unwrap().unwrap();
            assert_eq!(heredoc.name, "EOF", "{word}");
            checked += 1;
        }
        for word in strings("ParseHeredoc_invalid_error") {
            assert!(parse_heredoc_word(&word).is_err(), "{word}");
            checked += 1;
        }
        for word in strings("ParseHeredoc_not_a_heredoc_nil") {
            assert_eq!(parse_heredoc_word(&word).unwrap(), None, "{word}");
            checked += 1;
        }
        for case in data["heredocsFromLine"].as_array().unwrap() {
            let line = case["line"].as_str().unwrap();
            let found = heredocs_from_line(line).unwrap();
            match case["heredoc_names"].as_array() {
                // Upstream only compares the names of the heredocs it found.
                Some(names) => {
                    for (heredoc, name) in found.iter().zip(names) {
                        assert_eq!(heredoc.name, name.as_str().unwrap(), "{line}");
                    }
                }
                None => assert!(found.is_empty(), "{line}"),
            }
            checked += 1;
        }
        for case in data["ChompHeredocContent"].as_array().unwrap() {
            assert_eq!(
                chomp(case["input"].as_str().unwrap()),
                case["expected"].as_str().unwrap()
            );
            checked += 1;
        }
        assert_eq!(checked, 9 + 4 + 7 + 10 + 1);
    }

    #[test]
    fn finds_several_heredocs_anywhere_in_the_line() {
        let found = heredocs_from_line("RUN 3<<A cat && <<-'B' sh").unwrap();
        let summary: Vec<_> = found
            .iter()
            .map(|h| (h.name.as_str(), h.file_descriptor, h.expand, h.chomp))
            .collect();
        assert_eq!(summary, vec![("A", 3, true, false), ("B", 0, false, true)]);
    }
}
