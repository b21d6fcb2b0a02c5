//! `kiln push SRC [DEST]`: push an image from the local store.

use builder_core::build;
use builder_core::export::store::default_store_dir;
use builder_core::oci::Reference;

use super::client_options;
use super::progress::Progress;
use crate::cli::PushArgs;
use crate::render;
use crate::{Exit, Failure};

/// Runs `kiln push`.
pub fn run(args: PushArgs) -> Result<(), Failure> {
    let parse = |s: &str| {
        s.parse::<Reference>()
            .map_err(|e| Failure::usage(format!("invalid image reference: {e}")))
    };
    let source = parse(&args.source)?;
    let dest = match &args.destination {
        Some(d) => parse(d)?,
        None => source.clone(),
    };
    let store = args.store.clone().unwrap_or_else(default_store_dir);
    let progress = Progress::new(false);
    let report = build::push(
        &store,
        &source,
        std::slice::from_ref(&dest),
        &client_options(&args.registry),
        &|e| progress.show(e),
    )
    .map_err(|e| Failure {
        message: render::error(&e, None),
        exit: Exit::Failure,
    })?;
    crate::stdout(&format!("{}\n", report.digest))
}
