//! Source locations for errors.
//!
//! Errors about a Dockerfile (or a `.dockerignore`) carry a [`Location`] so that the front end can
//! print `Dockerfile:7` and quote the offending lines. The library never renders; it only keeps the
//! whole source text around (cheaply, behind an `Arc`) so a renderer can.

use std::fmt;
use std::sync::Arc;

/// A text file that instructions or patterns were read from, kept whole for error snippets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps `text` read from the file called `name` (as the user should see it, e.g. `Dockerfile`).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Arc::new(SourceFile {
            name: name.into(),
            text,
            line_starts,
        })
    }

    /// The name errors use for this file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line `n` (1-based) without its line terminator, or `None` past the end.
    pub fn line(&self, n: usize) -> Option<&str> {
        let start = *self.line_starts.get(n.checked_sub(1)?)?;
        let end = self
            .line_starts
            .get(n)
            .map_or(self.text.len(), |next| next - 1);
        if start > self.text.len() {
            return None;
        }
        let line = &self.text[start..end.max(start)];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// The number of lines (a trailing newline does not start a new line).
    pub fn line_count(&self) -> usize {
        if self.text.ends_with('\n') {
            self.line_starts.len() - 1
        } else {
            self.line_starts.len()
        }
    }
}

/// A 1-based, inclusive range of lines in a [`SourceFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the lines are in.
    pub file: Arc<SourceFile>,
    /// The first line.
    pub start_line: usize,
    /// The last line (equal to `start_line` for a one-line instruction).
    pub end_line: usize,
}

impl Location {
    /// The lines `start..=end` of `file`.
    pub fn new(file: Arc<SourceFile>, start_line: usize, end_line: usize) -> Self {
        Location {
            file,
            start_line,
            end_line: end_line.max(start_line),
        }
    }

    /// The quoted lines with their numbers, for renderers.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        (self.start_line..=self.end_line).filter_map(|n| self.file.line(n).map(|l| (n, l)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.name(), self.start_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_strip_crlf() {
        let f = SourceFile::new("Dockerfile", "FROM a\r\nRUN b\n");
        assert_eq!(f.line(1), Some("FROM a"));
        assert_eq!(f.line(2), Some("RUN b"));
        assert_eq!(f.line_count(), 2);
        let loc = Location::new(f, 2, 2);
        assert_eq!(loc.to_string(), "Dockerfile:2");
        assert_eq!(loc.lines().collect::<Vec<_>>(), vec![(2, "RUN b")]);
    }
}
