//! The expansion engine: one left-to-right pass over a word, recursing into `${…}` parts.

use super::error::{Failure, ShellError, rune_text};
use super::fields::Fields;
use super::unicode::{is_digit, is_letter};
use super::{Lexer, Matches, VarLookup, pattern};

/// The outcome of expanding one word.
pub(super) struct Expanded {
    /// The word as one string (`process_word`).
    pub(super) text: String,
    /// The word split into fields (`process_words`).
    pub(super) fields: Vec<String>,
    /// The variables referred to, when requested.
    pub(super) matches: Option<Matches>,
}

/// Expands one word against one environment.
pub(super) struct Expander<'a> {
    options: &'a Lexer,
    env: &'a dyn VarLookup,
    matches: Option<Matches>,
    input: &'a str,
    pos: usize,
}

impl<'a> Expander<'a> {
    pub(super) fn new(options: &'a Lexer, env: &'a dyn VarLookup, record_matches: bool) -> Self {
        Expander {
            options,
            env,
            matches: record_matches.then(Matches::default),
            input: "",
            pos: 0,
        }
    }

    pub(super) fn expand_word(mut self, word: &'a str) -> Result<Expanded, ShellError> {
        // BuildKit reads the word with Go's text scanner, which drops a leading BOM.
        self.input = word.strip_prefix('\u{feff}').unwrap_or(word);
        self.pos = 0;
        let mut fields = Fields::default();
        let text = self
            .expand_until(None, self.options.raw_escapes, &mut fields)
            .map_err(|failure| failure.in_word(word))?;
        Ok(Expanded {
            text,
            fields: fields.finish(),
            matches: self.matches,
        })
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let value = self.env.lookup(name);
        if let Some(matches) = &mut self.matches {
            let set = if value.is_some() {
                &mut matches.matched
            } else {
                &mut matches.unmatched
            };
            set.insert(name.to_owned());
        }
        value
    }

    /// Expands up to `stop` (consumed), or to the end of the word when `stop` is `None`.
    ///
    /// With `keep_escapes`, escape characters stay in the output: pattern parts need them to
    /// tell `\*` from `*` later.
    fn expand_until(
        &mut self,
        stop: Option<char>,
        keep_escapes: bool,
        fields: &mut Fields,
    ) -> Result<String, Failure> {
        let process_quotes = !self.options.skip_process_quotes;
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next_char();
                return Ok(out);
            }
            match ch {
                '$' => {
                    let value = self.expand_dollar()?;
                    fields.push_splittable(&value);
                    out.push_str(&value);
                }
                '<' => {
                    let marker = self.heredoc_marker();
                    fields.push_literal(&marker);
                    out.push_str(&marker);
                }
                '\'' if process_quotes => {
                    let text = self.single_quoted()?;
                    fields.push_literal(&text);
                    out.push_str(&text);
                }
                '"' if process_quotes => {
                    let text = self.double_quoted(keep_escapes)?;
                    fields.push_literal(&text);
                    out.push_str(&text);
                }
                _ => {
                    self.next_char();
                    if ch != self.options.escape {
                        fields.push_splittable_char(ch);
                        out.push(ch);
                        continue;
                    }
                    if keep_escapes {
                        fields.push_literal_char(ch);
                        out.push(ch);
                    }
                    // An escape character at the very end escapes nothing and is dropped.
                    let Some(escaped) = self.next_char() else {
                        break;
                    };
                    fields.push_literal_char(escaped);
                    out.push(escaped);
                }
            }
        }
        match stop {
            // Callers report the missing terminator in their own terms.
            Some(_) => Err(Failure::MissingClosingBrace),
            None => Ok(out),
        }
    }

    /// Expands a `${…}` part ending at `stop`. A part that runs into the end of the word, for
    /// whatever reason (even an unclosed quote inside it), is reported as `at_end`.
    fn expand_part(
        &mut self,
        stop: char,
        keep_escapes: bool,
        at_end: Failure,
    ) -> Result<String, Failure> {
        let mut ignored = Fields::default();
        match self.expand_until(Some(stop), keep_escapes, &mut ignored) {
            Err(_) if self.at_end() => Err(at_end),
            result => result,
        }
    }

    /// `'…'`: everything literal up to the next `'`; there is no way to escape a `'`.
    fn single_quoted(&mut self) -> Result<String, Failure> {
        let quote = self.next_char();
        let mut out = String::new();
        if self.options.raw_quotes {
            out.extend(quote);
        }
        loop {
            match self.next_char() {
                None => return Err(Failure::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.options.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(ch) => out.push(ch),
            }
        }
    }

    /// `"…"`: `$` expands, and the escape character escapes only `"`, `$` and itself; before
    /// any other character it stays (and with `keep_escapes` it then appears twice, once kept
    /// and once as the literal character, as in BuildKit).
    fn double_quoted(&mut self, keep_escapes: bool) -> Result<String, Failure> {
        let quote = self.next_char();
        let mut out = String::new();
        if self.options.raw_quotes {
            out.extend(quote);
        }
        loop {
            match self.peek() {
                None => return Err(Failure::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next_char();
                    if self.options.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.expand_dollar()?),
                Some(ch) => {
                    self.next_char();
                    if ch != self.options.escape {
                        out.push(ch);
                        continue;
                    }
                    if keep_escapes {
                        out.push(ch);
                    }
                    match self.peek() {
                        Some(next) if next == '"' || next == '$' || next == self.options.escape => {
                            self.next_char();
                            out.push(next);
                        }
                        // A trailing escape is dropped; the missing `"` is reported next turn.
                        None => {}
                        Some(_) => out.push(ch),
                    }
                }
            }
        }
    }

    /// `<` or `<<` plus the blanks after it, kept together so that `<< EOF` stays one field.
    fn heredoc_marker(&mut self) -> String {
        self.next_char();
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.next_char();
        let mut marker = "<<".to_owned();
        while let Some(blank @ (' ' | '\t' | '\r')) = self.peek() {
            self.next_char();
            marker.push(blank);
        }
        marker
    }

    /// A name after `$`: all digits if it starts with one (a positional parameter), a single
    /// special-parameter character, or letters, digits and `_`. May be empty.
    fn read_name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(first) if is_digit(first) => {
                while let Some(digit) = self.peek().filter(|&ch| is_digit(ch)) {
                    self.next_char();
                    name.push(digit);
                }
                return name;
            }
            Some(special @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.next_char();
                name.push(special);
                return name;
            }
            _ => {}
        }
        while let Some(ch) = self
            .peek()
            .filter(|&ch| is_letter(ch) || is_digit(ch) || ch == '_')
        {
            self.next_char();
            name.push(ch);
        }
        name
    }

    fn expand_dollar(&mut self) -> Result<String, Failure> {
        self.next_char();
        if self.peek() != Some('{') {
            return Ok(self.expand_bare_name());
        }
        self.next_char();
        match self.peek() {
            None => return Err(Failure::MissingClosingBrace),
            Some('{' | '}' | ':') => return Err(Failure::BadSubstitution),
            Some(_) => {}
        }
        let name = self.read_name();
        match self.next_char() {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.options.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let operator = self.next_char();
                self.expand_modifier(&name, true, operator)
            }
            operator @ Some('+' | '-' | '?' | '#' | '%') => {
                self.expand_modifier(&name, false, operator)
            }
            Some('/') => self.expand_replacement(&name),
            other => Err(Failure::UnsupportedModifier(rune_text(other))),
        }
    }

    /// `$NAME`, after the `$`.
    fn expand_bare_name(&mut self) -> String {
        let name = self.read_name();
        if name.is_empty() {
            return "$".to_owned();
        }
        match self.lookup(&name) {
            Some(value) => value.to_owned(),
            None if self.options.skip_unset_env => format!("${name}"),
            None => String::new(),
        }
    }

    /// `${NAME` + `operator` (after `:` when `colon`) + word + `}`.
    fn expand_modifier(
        &mut self,
        name: &str,
        colon: bool,
        operator: Option<char>,
    ) -> Result<String, Failure> {
        let modifier = if colon {
            format!(":{}", rune_text(operator))
        } else {
            rune_text(operator)
        };
        let is_trim = matches!(operator, Some('#' | '%'));
        if colon && is_trim {
            return Err(Failure::UnsupportedModifier(modifier));
        }
        let word = self.expand_part('}', is_trim, Failure::MissingClosingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.options.skip_unset_env {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        // With `:`, an empty value counts as unset.
        let usable = value.filter(|value| !(colon && value.is_empty()));
        match operator {
            Some('-') => Ok(match usable {
                Some(value) => value.to_owned(),
                None => word,
            }),
            Some('+') => Ok(match usable {
                Some(_) => word,
                None => String::new(),
            }),
            Some('?') => match (value, usable) {
                (_, Some(value)) => Ok(value.to_owned()),
                (None, None) => Err(required(name, word, "is not allowed to be unset")),
                (Some(_), None) => Err(required(name, word, "is not allowed to be empty")),
            },
            Some(trim @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                let (pattern, longest) = match word.strip_prefix(trim) {
                    Some(pattern) => (pattern, true),
                    None => (word.as_str(), false),
                };
                let trimmed = if trim == '#' {
                    pattern::trim_prefix(value, pattern, longest)
                } else {
                    pattern::trim_suffix(value, pattern, longest)
                };
                trimmed.map_err(invalid_pattern)
            }
            _ => Err(Failure::UnsupportedModifier(modifier)),
        }
    }

    /// `${NAME/pattern/replacement}` or `${NAME//pattern/replacement}`, after the first `/`.
    fn expand_replacement(&mut self, name: &str) -> Result<String, Failure> {
        let all = self.peek() == Some('/');
        if all {
            self.next_char();
        }
        let pattern = self.expand_part('/', true, Failure::MissingPatternSeparator)?;
        let replacement = self.expand_part('}', true, Failure::MissingClosingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.options.skip_unset_env {
            // BuildKit writes `//` back as a single `/`.
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        pattern::replace(value.unwrap_or_default(), &pattern, &replacement, all)
            .map_err(invalid_pattern)
    }
}

fn required(name: &str, message: String, default: &str) -> Failure {
    Failure::RequiredVariable {
        name: name.to_owned(),
        message: if message.is_empty() {
            default.to_owned()
        } else {
            message
        },
    }
}

fn invalid_pattern(err: pattern::InvalidPattern) -> Failure {
    Failure::InvalidPattern {
        pattern: err.pattern,
        reason: err.reason,
    }
}
