//! BuildKit's `Node.Dump()` text for a [`RawDockerfile`]: the format of BuildKit's parser
//! corpus (`testfiles/*/result`), one parenthesised line per instruction.

use std::fmt::Write;

use super::go_quote::go_quote;
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
