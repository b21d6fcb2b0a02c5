//! `kiln parse`: print a Dockerfile as parsed, as JSON or in BuildKit's dump format.

use builder_core::build::read_dockerfile;
use builder_core::dockerfile;

use crate::cli::{ParseArgs, ParseFormat};
use crate::render;
use crate::{Exit, Failure};

/// Runs `kiln parse`.
pub fn run(args: ParseArgs) -> Result<(), Failure> {
    let fail = |message: String| Failure {
        message,
        exit: Exit::Failure,
    };
    let source = read_dockerfile(&args.file).map_err(|e| fail(render::error(&e, None)))?;
    let warn = |line: usize, message: &str| {
        eprintln!("warning: {}:{line}: {message}", args.file.display());
    };
    match args.format {
        ParseFormat::Json => {
            let parsed =
                dockerfile::parse(source).map_err(|e| fail(render::error(&e, e.location())))?;
            for w in &parsed.warnings {
                warn(w.line, &w.message);
            }
            let json = serde_json::to_string_pretty(&parsed)
                .map_err(|e| fail(format!("error: failed to serialise the Dockerfile: {e}\n")))?;
            crate::stdout(&format!("{json}\n"))
        }
        ParseFormat::Buildkit => {
            // BuildKit's dump is of its line-level parse only: instruction checks (flags,
            // argument counts) come later, so files that fail them still dump.
            let raw =
                dockerfile::parse_raw(source).map_err(|e| fail(render::error(&e, e.location())))?;
            for w in &raw.warnings {
                warn(w.line, &w.message);
            }
            crate::stdout(&dockerfile::dump_buildkit(&raw))
        }
    }
}
