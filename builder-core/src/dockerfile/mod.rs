//! The Dockerfile front end: text → typed [`Dockerfile`], with BuildKit's `dockerfile:1`
//! semantics.
//!
//! Parsing happens in two stages, as in BuildKit. [`parse_raw`] handles what is common to every
//! line: parser directives, comments, line continuations, here-document bodies, `--flags`, and
//! the keyword-specific way arguments are split (JSON or text, quoted words, `key=value`).
//! [`parse`] then checks each instruction (argument counts, allowed flags, stage names, ...) and
//! builds the typed [`Instruction`]s. Words stay unexpanded; `$VARS` are left for the build.
//!
//! Error messages are BuildKit's, so that they match what users find in documentation and bug
//! reports; each carries the lines of the instruction it is about.

pub mod ast;
mod directives;
mod dump;
mod duration;
mod error;
mod flags;
mod go_quote;
mod heredoc;
mod heredoc_lex;
mod instructions;
mod line_parsers;
mod parser;
mod raw;
pub mod shell;
mod suggest;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

pub use ast::*;
pub use dump::dump_buildkit;
pub use duration::parse_go_duration;
pub use error::{ParseError, ParseErrorKind};
pub use parser::parse_raw;
pub use raw::{RawDockerfile, RawInstruction};

use crate::diag::{Location, SourceFile};

/// Parses and validates a Dockerfile.
///
/// Fails on the first problem, in file order: first anything the line-level parse finds, then
/// the first instruction that does not validate. Instructions other than `ARG` before the first
/// `FROM` are an error, as in BuildKit.
pub fn parse(file: Arc<SourceFile>) -> Result<Dockerfile, ParseError> {
    let raw = parse_raw(file.clone())?;
    let mut instructions = Vec::with_capacity(raw.instructions.len());
    let mut seen_from = false;
    for node in &raw.instructions {
        let at_node = |kind| {
            let location = Location::new(file.clone(), node.start_line, node.end_line);
            ParseError::new(kind, Some(location))
        };
        let instruction = instructions::to_instruction(node).map_err(at_node)?;
        match instruction.command {
            Command::From { .. } => seen_from = true,
            Command::Arg { .. } => {}
            _ if !seen_from => {
                let kind = ParseErrorKind::Invalid("no build stage in current context".into());
                return Err(at_node(kind));
            }
            _ => {}
        }
        instructions.push(instruction);
    }
    Ok(Dockerfile {
        source: file,
        directives: raw.directives,
        instructions,
        warnings: raw.warnings,
    })
}
