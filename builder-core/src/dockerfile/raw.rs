//! The untyped parse: each instruction's keyword, flags and arguments split the way BuildKit's
//! `parser` package splits them, before any per-instruction validation.
//!
//! This layer exists for two reasons: it is exactly what BuildKit's parser corpus checks (see
//! [`dump_buildkit`](super::dump_buildkit)), and lint-like tools may want to look at a Dockerfile
//! that does not validate. Builds use the typed [`Dockerfile`](super::Dockerfile).

use serde::Serialize;

use super::ast::{Directives, Heredoc, Warning};

/// A Dockerfile split into instructions, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDockerfile {
    /// Parser directives from the top of the file.
    pub directives: Directives,
    /// Every instruction in file order.
    pub instructions: Vec<RawInstruction>,
    /// Parser warnings (empty continuation lines, unknown `# syntax=` frontends).
    pub warnings: Vec<Warning>,
}

/// One instruction as BuildKit's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawInstruction {
    /// The keyword as written (`from`, `FROM`, `From`, or an unknown word).
    pub keyword: String,
    /// The `--flag[=value]` words after the keyword, quotes removed, `--` prefix kept.
    pub flags: Vec<String>,
    /// The arguments as the keyword's splitter produced them. `ENV`/`LABEL` give
    /// `key, value, separator` triples (separator `=` or empty for the legacy `KEY value` form);
    /// an unknown keyword gives one empty argument.
    pub args: Vec<String>,
    /// `ONBUILD`'s trigger instruction.
    pub trigger: Option<Box<RawInstruction>>,
    /// Whether the arguments came from a JSON array (exec form).
    pub json: bool,
    /// Here-documents, with their bodies as written (leading tabs not yet stripped for `<<-`).
    pub heredocs: Vec<Heredoc>,
    /// The instruction's text after line joining.
    pub original: String,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
}

impl RawInstruction {
    /// Sets the line range of this instruction and of its trigger, which share their lines.
    pub(super) fn set_lines(&mut self, start: usize, end: usize) {
        self.start_line = start;
        self.end_line = end;
        if let Some(trigger) = &mut self.trigger {
            trigger.set_lines(start, end);
        }
    }

    /// Whether BuildKit looks for here-documents on this instruction's line: `RUN`, `COPY` and
    /// `ADD` in shell form, directly or as an `ONBUILD` trigger.
    pub(super) fn can_contain_heredoc(&self) -> bool {
        let target = match &self.trigger {
            Some(trigger) if self.keyword.eq_ignore_ascii_case("onbuild") => trigger,
            _ => self,
        };
        let keyword = target.keyword.to_ascii_lowercase();
        matches!(keyword.as_str(), "run" | "copy" | "add") && !target.json
    }
}
