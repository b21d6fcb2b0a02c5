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
    let parsed = dockerfile::parse(source).map_err(|e| fail(render::error(&e, e.location())))?;
    for w in &parsed.warnings {
        eprintln!("warning: {}:{}: {}", args.file.display(), w.line, w.message);
    }
    match args.format {
        ParseFormat::Json => {
            let json = serde_json::to_string_pretty(&parsed)
                .map_err(|e| fail(format!("error: failed to serialise the Dockerfile: {e}\n")))?;
            println!("{json}");
        }
        ParseFormat::Buildkit => {
            let raw = dockerfile::parse_raw(parsed.source.clone())
                .map_err(|e| fail(render::error(&e, e.location())))?;
            print!("{}", dockerfile::dump_buildkit(&raw));
        }
    }
    Ok(())
}
