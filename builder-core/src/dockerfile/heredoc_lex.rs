//! The shell-word splitting BuildKit uses to *find* here-documents, before any build args exist.
//!
//! Variables are never expanded here (there is no environment yet): `$X`, `${X:-y}` and friends
//! come back as written, but they still group characters into words and can still be malformed.
//! Besides quotes and escapes, the one special rule is that `<<` followed by blanks sticks to the
//! next word, so `<< EOF` is a single word. The escape character is always `\` here, whatever the
//! `# escape=` directive says, as in BuildKit.

use std::iter::Peekable;
use std::str::Chars;

const ESCAPE: char = '\\';

/// How quotes and escapes appear in the words.
#[derive(Debug, Clone, Copy)]
pub(super) struct LexMode {
    /// Keep quote characters in the words.
    pub raw_quotes: bool,
    /// Keep escape characters in the words.
    pub raw_escapes: bool,
}

/// Splits `input` into words; the error is the lexer's message (an unbalanced quote or brace).
pub(super) fn lex_words(input: &str, mode: LexMode) -> Result<Vec<String>, String> {
    let mut lexer = Lexer {
        chars: input.chars().peekable(),
        raw_quotes: mode.raw_quotes,
        raw_escapes: mode.raw_escapes,
    };
    lexer
        .process_until(None, mode.raw_escapes)
        .map(|(_, words)| words)
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    raw_quotes: bool,
    raw_escapes: bool,
}

/// Accumulates characters into whitespace-separated words.
#[derive(Default)]
struct Words {
    current: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.current.is_empty() {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

impl Lexer<'_> {
    /// Reads up to `stop` (consumed) or the end; returns the text and its words.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut text = String::new();
        let mut words = Words::default();
        while let Some(&c) = self.chars.peek() {
            if Some(c) == stop {
                self.chars.next();
                return Ok((text, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    text.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let value = self.possible_heredoc();
                    text.push_str(&value);
                    words.add_raw_string(&value);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    text.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.double_quoted()?;
                    text.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.chars.next();
                    let mut c = c;
                    if c == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            text.push(c);
                        }
                        let Some(next) = self.chars.next() else {
                            break;
                        };
                        c = next;
                        words.add_raw_char(c);
                    } else {
                        words.add_char(c);
                    }
                    text.push(c);
                }
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((text, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.chars.next();
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.chars.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    );
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.chars.next();
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.chars.peek().copied() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    );
                }
                Some('"') => {
                    self.chars.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.chars.next();
                    if c == ESCAPE {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.chars.peek().copied() {
                            None => continue,
                            Some(next @ ('"' | '$' | ESCAPE)) => {
                                self.chars.next();
                                c = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}`, `${NAME<op>word}`: returned as written, since nothing is set.
    fn dollar(&mut self) -> Result<String, String> {
        self.chars.next();
        if self.chars.peek() != Some(&'{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.chars.next();
        match self.chars.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        match self.chars.next() {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':') => {
                let op = self.chars.next();
                if matches!(op, Some('#' | '%')) {
                    let op = op.map(String::from).unwrap_or_default();
                    return Err(format!("unsupported modifier (:{op}) in substitution"));
                }
                let word = self.braced_word(false)?;
                let op = op.map_or_else(|| "\u{fffd}".to_string(), String::from);
                Ok(format!("${{{name}:{op}{word}}}"))
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => {
                let word = self.braced_word(op == '#' || op == '%')?;
                Ok(format!("${{{name}{op}{word}}}"))
            }
            Some('/') => {
                if self.chars.peek() == Some(&'/') {
                    self.chars.next();
                }
                let pattern = match self.process_until(Some('/'), true) {
                    Ok((text, _)) => text,
                    Err(_) if self.chars.peek().is_none() => {
                        return Err("syntax error: missing '/' in ${}".to_string());
                    }
                    Err(e) => return Err(e),
                };
                let replacement = self.braced_word(true)?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            other => {
                let op = other.map_or_else(|| "\u{fffd}".to_string(), String::from);
                Err(format!("unsupported modifier ({op}) in substitution"))
            }
        }
    }

    /// The word of a `${NAME<op>word}` form, up to the closing brace.
    fn braced_word(&mut self, raw_escapes: bool) -> Result<String, String> {
        match self.process_until(Some('}'), raw_escapes) {
            Ok((text, _)) => Ok(text),
            Err(_) if self.chars.peek().is_none() => Err("syntax error: missing '}'".to_string()),
            Err(e) => Err(e),
        }
    }

    /// A variable name: letters, digits and `_`, or all digits, or one special parameter.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(&d) = self.chars.peek() {
                    if !d.is_numeric() {
                        break;
                    }
                    name.push(d);
                    self.chars.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.chars.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        name
    }

    /// `<` alone, or `<<` plus any blanks after it (which then belong to the next word).
    fn possible_heredoc(&mut self) -> String {
        self.chars.next();
        if self.chars.peek() != Some(&'<') {
            return "<".to_string();
        }
        self.chars.next();
        let mut out = "<<".to_string();
        while let Some(&c) = self.chars.peek() {
            if !matches!(c, '\t' | '\r' | ' ') {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: LexMode = LexMode {
        raw_quotes: true,
        raw_escapes: true,
    };

    #[test]
    fn keeps_quotes_escapes_and_variables_in_raw_mode() {
        let words = lex_words(r#"RUN <<'EOF' "a b" c\ d $X ${Y:-1 2}"#, RAW).unwrap();
        assert_eq!(
            words,
            vec!["RUN", "<<'EOF'", "\"a b\"", "c\\ d", "$X", "${Y:-1", "2}"]
        );
    }

    #[test]
    fn heredoc_operator_sticks_to_the_next_word() {
        let words = lex_words("RUN <<  EOF  > foo", RAW).unwrap();
        assert_eq!(words, vec!["RUN", "<<  EOF", ">", "foo"]);
    }

    #[test]
    fn reports_unbalanced_quotes() {
        assert!(lex_words("'EOF", RAW).is_err());
        assert!(lex_words("${X", RAW).is_err());
    }
}
