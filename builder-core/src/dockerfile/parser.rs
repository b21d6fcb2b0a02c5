//! Text → [`RawDockerfile`]: directives, comments, line continuations, here-document bodies,
//! and each joined line split by its keyword's splitter.

use std::sync::Arc;

use super::ast::{Directives, Warning};
use super::directives::{self, DirectiveScanner};
use super::error::{ParseError, ParseErrorKind};
use super::heredoc::heredocs_from_line;
use super::line_parsers::{self as lp, SplitArgs};
use super::raw::{RawDockerfile, RawInstruction};
use crate::diag::{Location, SourceFile};

/// The longest physical line accepted, as BuildKit's line scanner.
pub(super) const MAX_LINE_LENGTH: usize = 65535;

/// Parses `file` into instructions without validating them.
pub fn parse_raw(file: Arc<SourceFile>) -> Result<RawDockerfile, ParseError> {
    let mut parser = Parser {
        lines: PhysicalLines {
            rest: file.text(),
            number: 0,
        },
        file: file.clone(),
        directives: Directives::default(),
        scanner: DirectiveScanner::default(),
        instructions: Vec::new(),
        warnings: Vec::new(),
    };
    parser.run()?;
    if parser.instructions.is_empty() {
        return Err(ParseError::new(ParseErrorKind::NoInstructions, None));
    }
    Ok(RawDockerfile {
        directives: parser.directives,
        instructions: parser.instructions,
        warnings: parser.warnings,
    })
}

/// The physical lines of the text, each with its line terminator, counted as they are read.
struct PhysicalLines<'a> {
    rest: &'a str,
    /// The 1-based number of the line last returned.
    number: usize,
}

impl<'a> PhysicalLines<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.number += 1;
        Some(line)
    }
}

struct Parser<'a> {
    lines: PhysicalLines<'a>,
    file: Arc<SourceFile>,
    directives: Directives,
    scanner: DirectiveScanner,
    instructions: Vec<RawInstruction>,
    warnings: Vec<Warning>,
}

/// `line` without its trailing `\r`/`\n` characters.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl<'a> Parser<'a> {
    fn error(&self, kind: ParseErrorKind, start: usize, end: usize) -> ParseError {
        ParseError::new(kind, Some(Location::new(self.file.clone(), start, end)))
    }

    /// The next physical line, refusing lines longer than BuildKit accepts.
    fn next_line(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(line) = self.lines.next_line() else {
            return Ok(None);
        };
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_LINE_LENGTH {
            let n = self.lines.number;
            let kind = ParseErrorKind::LineTooLong {
                max: MAX_LINE_LENGTH,
            };
            return Err(self.error(kind, n, n));
        }
        Ok(Some(line))
    }

    /// Strips the newline (and, for an instruction's first line, leading whitespace), records a
    /// directive if the line is one, and blanks out comment lines.
    fn process_line<'l>(&mut self, line: &'l str, first: bool) -> Result<&'l str, ParseError> {
        let mut text = trim_newline(line);
        if first {
            text = text.trim_start();
        }
        let n = self.lines.number;
        let found = self.scanner.scan(text).map_err(|k| self.error(k, n, n))?;
        if let Some(directive) = found {
            if directive.name == "syntax"
                && let Some(message) = directives::syntax_warning(&directive.value)
            {
                self.warnings.push(Warning { message, line: n });
            }
            directives::apply(&mut self.directives, directive).map_err(|k| self.error(k, n, n))?;
        }
        Ok(if is_comment(text) { "" } else { text })
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(line) = self.next_line()? {
            let line = if self.lines.number == 1 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            let text = self.process_line(line, true)?;
            let start = self.lines.number;
            let (text, mut complete) = trim_continuation(text, self.directives.escape);
            if complete && text.is_empty() {
                continue;
            }
            let mut joined = text.to_string();
            let mut first_empty_line = None;
            while !complete {
                let Some(line) = self.next_line()? else {
                    break;
                };
                let text = self.process_line(line, false)?;
                if is_comment(line) {
                    continue;
                }
                if text.trim_start().is_empty() {
                    first_empty_line.get_or_insert(self.lines.number);
                    continue;
                }
                let (text, done) = trim_continuation(text, self.directives.escape);
                joined.push_str(text);
                complete = done;
            }
            if let Some(line) = first_empty_line {
                self.warnings.push(Warning {
                    message: format!(
                        "empty continuation line found in: {joined}; empty continuation lines \
                         will become errors in a future release"
                    ),
                    line,
                });
            }
            let escape = self.directives.escape;
            let mut instruction = new_instruction(&joined, escape)
                .map_err(|k| self.error(k, start, self.lines.number))?;
            if instruction.can_contain_heredoc() && joined.contains("<<") {
                self.read_heredocs(&mut instruction, start)?;
            }
            instruction.set_lines(start, self.lines.number);
            self.instructions.push(instruction);
        }
        Ok(())
    }

    /// Reads the bodies of the here-documents opened on `instruction`'s line, one after another.
    fn read_heredocs(
        &mut self,
        instruction: &mut RawInstruction,
        start: usize,
    ) -> Result<(), ParseError> {
        let heredocs = heredocs_from_line(&instruction.original)
            .map_err(|k| self.error(k, start, self.lines.number))?;
        for mut heredoc in heredocs {
            let mut terminated = false;
            while let Some(line) = self.next_line()? {
                let mut candidate = trim_newline(line);
                if heredoc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == heredoc.name {
                    terminated = true;
                    break;
                }
                heredoc.content.push_str(line);
            }
            if !terminated {
                let kind = ParseErrorKind::UnterminatedHeredoc;
                return Err(self.error(kind, start, self.lines.number));
            }
            instruction.heredocs.push(heredoc);
        }
        Ok(())
    }
}

/// Removes a trailing line-continuation `escape` (and the blanks after it). Returns the text and
/// whether the logical line is complete. An escaped escape character (`\\`) does not continue.
fn trim_continuation(text: &str, escape: char) -> (&str, bool) {
    let body = text.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (text, true);
    };
    if before.ends_with(escape) {
        return (text, true);
    }
    (before, false)
}

/// Splits one joined line into keyword, flags and arguments.
pub(super) fn new_instruction(line: &str, escape: char) -> Result<RawInstruction, ParseErrorKind> {
    let (keyword, flags, rest) = lp::split_command(line, escape);
    let mut trigger = None;
    let split = match keyword.to_lowercase().as_str() {
        "add" | "copy" | "volume" => lp::parse_maybe_json_to_list(&rest)?,
        "arg" => lp::parse_name_or_name_val(&rest, escape),
        "cmd" | "entrypoint" | "run" | "shell" => lp::parse_maybe_json(&rest)?,
        "env" => lp::parse_name_val(&rest, "ENV", escape)?,
        "label" => lp::parse_name_val(&rest, "LABEL", escape)?,
        "expose" | "from" => lp::parse_blank_separated(&rest),
        "healthcheck" => lp::parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => lp::parse_string(&rest),
        "onbuild" => {
            if !rest.is_empty() {
                trigger = Some(Box::new(new_instruction(&rest, escape)?));
            }
            SplitArgs::default()
        }
        _ => SplitArgs {
            args: vec![String::new()],
            json: false,
        },
    };
    Ok(RawInstruction {
        keyword,
        flags,
        args: split.args,
        trigger,
        json: split.json,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_needs_an_unescaped_escape_at_the_end() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\  \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }
}
