//! How errors and progress look on a terminal: errors name the file and line, quote it, and list
//! their causes once each.

use std::error::Error;
use std::fmt::Write as _;

use builder_core::diag::Location;

/// Renders an error with its Dockerfile location (when it has one) and its cause chain:
///
/// ```text
/// error: COPY at Dockerfile:3 failed
///   --> Dockerfile:3
///    |
///  3 | COPY missing.txt /app/
///    |
///   caused by: `missing.txt` not found in the build context
/// ```
pub fn error(err: &(dyn Error + 'static), location: Option<&Location>) -> String {
    let mut out = format!("error: {err}\n");
    if let Some(loc) = location {
        let width = loc.end_line.to_string().len();
        let _ = writeln!(out, "{:width$}--> {loc}", "", width = width + 1);
        let _ = writeln!(out, "{:width$} |", "", width = width + 1);
        for (n, line) in loc.lines() {
            let _ = writeln!(out, " {n:>width$} | {line}");
        }
        let _ = writeln!(out, "{:width$} |", "", width = width + 1);
    }
    let mut source = err.source();
    let mut last = err.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !last.contains(&text) {
            let _ = writeln!(out, "  caused by: {text}");
        }
        last = text;
        source = cause.source();
    }
    out
}
