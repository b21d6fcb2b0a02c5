//! What a build or push prints while it runs: one line per step, per-blob byte progress on a
//! terminal, one line per blob in CI logs.

use std::io::{IsTerminal, Write};

use builder_core::build::BuildEvent;

/// Prints [`BuildEvent`]s on stderr.
pub struct Progress {
    quiet: bool,
    terminal: bool,
}

impl Progress {
    /// Progress on stderr; nothing when `quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Prints one event.
    pub fn show(&self, event: BuildEvent) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match event {
            BuildEvent::StepStarted {
                stage,
                number,
                total,
                instruction,
            } => writeln!(err, "#{number} [{stage} {number}/{total}] {instruction}"),
            BuildEvent::StepFinished {
                number,
                layer,
                duration,
            } => {
                let secs = duration.as_secs_f64();
                match layer {
                    Some(l) => writeln!(
                        err,
                        "#{number} done {secs:.2}s, layer {} ({} bytes)",
                        l.digest, l.size
                    ),
                    None => writeln!(err, "#{number} done {secs:.2}s"),
                }
            }
            BuildEvent::Warning(w) => writeln!(err, "warning: {w}"),
            BuildEvent::Exported(to) => writeln!(err, "wrote image to {to}"),
            BuildEvent::BlobProgress { digest, sent, size } if self.terminal => {
                write!(
                    err,
                    "\r\x1b[2K{}: pushing {}/{}",
                    short(&digest.to_string()),
                    sent,
                    size
                )
            }
            BuildEvent::BlobProgress { .. } => Ok(()),
            BuildEvent::BlobPushed { digest, outcome } => {
                let clear = if self.terminal { "\r\x1b[2K" } else { "" };
                writeln!(err, "{clear}{}: {outcome}", short(&digest.to_string()))
            }
            BuildEvent::Pushed(line) => writeln!(err, "{line}"),
            BuildEvent::RunOutput { number, line } => writeln!(err, "#{number} {line}"),
        };
    }
}

/// The first 12 hex characters, as docker shows layer ids.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}
