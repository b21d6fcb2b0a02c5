//! Parser directives: `# syntax=`, `# escape=` and `# check=` comment lines at the very top of
//! a Dockerfile.
//!
//! Directives are only recognised until the first line that is not one: an instruction, a blank
//! line or an ordinary comment ends the scan for good. Names are case-insensitive; each may be
//! given once.

use super::ast::Directives;
use super::error::ParseErrorKind;

/// Scans lines for directives until the first line that is not one.
#[derive(Debug, Default)]
pub(super) struct DirectiveScanner {
    done: bool,
    seen: Vec<String>,
}

/// A directive found on a line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Directive {
    pub name: String,
    pub value: String,
}

impl DirectiveScanner {
    /// Looks at the next physical line (newline removed). Returns the directive on it, if the
    /// scan is still open and the line is one.
    pub(super) fn scan(&mut self, line: &str) -> Result<Option<Directive>, ParseErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some(after_hash) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some(directive) = parse_directive(after_hash.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        if self.seen.contains(&directive.name) {
            return Err(ParseErrorKind::RepeatedDirective {
                name: directive.name,
            });
        }
        self.seen.push(directive.name.clone());
        Ok(Some(directive))
    }
}

/// `name = value` with a known name; the value has surrounding whitespace removed.
fn parse_directive(text: &str) -> Option<Directive> {
    let name_len = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = text[..name_len].to_ascii_lowercase();
    if !matches!(name.as_str(), "syntax" | "escape" | "check") {
        return None;
    }
    let value = text[name_len..]
        .trim_start_matches(is_regex_space)
        .strip_prefix('=')?
        .trim_matches(is_regex_space);
    if value.is_empty() {
        return None;
    }
    Some(Directive {
        name,
        value: value.to_string(),
    })
}

/// The characters `\s` matches in Go's regular expressions.
fn is_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Records `directive` in `directives`; `escape` must be `\` or `` ` ``.
pub(super) fn apply(
    directives: &mut Directives,
    directive: Directive,
) -> Result<(), ParseErrorKind> {
    match directive.name.as_str() {
        "escape" => match directive.value.as_str() {
            "\\" => directives.escape = '\\',
            "`" => directives.escape = '`',
            _ => {
                return Err(ParseErrorKind::InvalidEscapeToken {
                    token: directive.value,
                });
            }
        },
        "syntax" => directives.syntax = Some(directive.value),
        _ => directives.check = Some(directive.value),
    }
    Ok(())
}

/// A warning when `# syntax=` names a frontend other than Docker's official Dockerfile frontend,
/// which this parser stands in for.
pub(super) fn syntax_warning(value: &str) -> Option<String> {
    let reference = value.split(' ').next().unwrap_or_default();
    let repository = reference.split('@').next().unwrap_or_default();
    let repository = match repository.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => repository,
    };
    let repository = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"))
        .unwrap_or(repository);
    if matches!(
        repository,
        "docker/dockerfile" | "docker/dockerfile-upstream"
    ) {
        return None;
    }
    Some(format!(
        "`# syntax={value}` asks for a frontend kiln does not run; parsing with the built-in \
         docker/dockerfile:1 parser instead"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_directives_until_the_first_other_line() {
        let mut scanner = DirectiveScanner::default();
        let d = scanner
            .scan("# Syntax = docker/dockerfile:1 ")
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.name.as_str(), d.value.as_str()),
            ("syntax", "docker/dockerfile:1")
        );
        let d = scanner.scan("#escape=`").unwrap().unwrap();
        assert_eq!(d.value, "`");
        assert_eq!(scanner.scan("# just a comment").unwrap(), None);
        assert_eq!(scanner.scan("# check=skip=all").unwrap(), None);
    }

    #[test]
    fn unknown_names_end_the_scan() {
        let mut scanner = DirectiveScanner::default();
        assert_eq!(scanner.scan("# foo=bar").unwrap(), None);
        assert_eq!(scanner.scan("# escape=`").unwrap(), None);
    }

    #[test]
    fn repeated_directive_is_an_error() {
        let mut scanner = DirectiveScanner::default();
        scanner.scan("# escape=`").unwrap();
        let err = scanner.scan("# ESCAPE=\\").unwrap_err();
        assert_eq!(
            err.to_string(),
            "only one escape parser directive can be used"
        );
    }

    #[test]
    fn docker_dockerfile_frontends_are_accepted_silently() {
        for ok in [
            "docker/dockerfile:1",
            "docker/dockerfile",
            "docker.io/docker/dockerfile:1.7",
            "docker/dockerfile:1.7-labs@sha256:abc",
            "docker/dockerfile-upstream:master",
        ] {
            assert_eq!(syntax_warning(ok), None, "{ok}");
        }
        assert!(syntax_warning("example.com/my/frontend:1").is_some());
        assert!(syntax_warning("docker/dockerfile-evil").is_some());
    }
}
