//! What a build or push prints while it runs: one line per step, per-blob byte progress on a
//! terminal, one line per blob in CI logs.

use std::io::{IsTerminal, Write};

use builder_core::build::{BuildEvent, BuildReport, StepCache};

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
                cache,
                duration,
            } => {
                let secs = duration.as_secs_f64();
                let how = match cache {
                    StepCache::Hit { .. } => "CACHED",
                    _ => "done",
                };
                match layer {
                    Some(l) => writeln!(
                        err,
                        "#{number} {how} {secs:.2}s, layer {} ({} bytes)",
                        l.digest, l.size
                    ),
                    None => writeln!(err, "#{number} {how} {secs:.2}s"),
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

/// The line every build ends with: steps, hits, misses, hit rate, bytes reused and built, time.
pub fn summary(report: &BuildReport) -> String {
    let c = &report.cache;
    format!(
        "{} steps: {} cached, {} built ({:.0}% hit rate); {} reused, {} built; {:.2}s",
        report.steps.len(),
        c.hits,
        c.misses,
        c.hit_rate() * 100.0,
        bytes(c.bytes_reused),
        bytes(c.bytes_built),
        report.duration.as_secs_f64()
    )
}

/// One line per step that makes a layer: hit (and from where) or miss and why.
pub fn explain(report: &BuildReport) -> String {
    let mut out = String::new();
    for s in &report.steps {
        let what = match &s.cache {
            StepCache::Hit { source } => format!("hit ({})", source_name(*source)),
            StepCache::Miss { reason } => format!("miss: {reason}"),
            StepCache::NotApplicable => continue,
        };
        out.push_str(&format!(
            "#{} [{} line {}] {}: {what}\n",
            s.number, s.stage, s.line, s.instruction
        ));
    }
    out
}

fn source_name(source: builder_core::build::CacheSource) -> &'static str {
    match source {
        builder_core::build::CacheSource::Local => "local",
        builder_core::build::CacheSource::Remote => "remote",
    }
}

/// Bytes in the largest unit that keeps a number of at least 1 (`48.2 MB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
