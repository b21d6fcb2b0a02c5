//! kiln's library: turn a Dockerfile and a build context into an OCI image, with no daemon.
//!
//! # Brief overview
//!
//! A build flows one way through one module per stage:
//!
//! ```text
//! dockerfile ──► context ──► plan ──► exec ──► layer ──► export
//!  parse,        .dockerignore, stages,   COPY/ADD/   tar, gzip,   OCI layout,
//!  expand words  file selection ARG scope, WORKDIR     digests      OCI tar,
//!                               configs    layers                   docker-archive
//! ```
//!
//! Beside them, [`oci`] holds the image types every stage shares (digests, the image config,
//! layouts, the lazy [`oci::Image`] trait), [`diag`] the source locations errors carry, and
//! [`build`] is the only module that knows every stage and wires them together. When an earlier
//! stage needs a later one, it defines a trait and `build` passes the implementation in
//! ([`plan::ImageResolver`], [`exec::ArchiveExtractor`]).
//!
//! Everything is synchronous: tar, gzip and sha256 are CPU-bound streaming work, and a layer is
//! written in one pass from the files it contains straight into the content store, never held
//! in memory.
//!
//! # Example
//!
//! ```no_run
//! use builder_core::build::{BuildEvent, BuildOptions, build};
//! use builder_core::export::Output;
//!
//! let mut options = BuildOptions::new("testdata/example");
//! options.tags.push("example:1.0".parse()?);
//! options.outputs.push("type=oci,dest=out/example".parse::<Output>()?);
//! options.source_date_epoch = Some(1_700_000_000);
//! let report = build(&options, &|event: BuildEvent| eprintln!("{event:?}"))?;
//! println!("{}", report.digest);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod build;
pub mod cache;
pub mod context;
pub mod diag;
pub mod dockerfile;
pub mod exec;
pub mod export;
pub mod layer;
pub mod oci;
pub mod plan;
pub mod registry;
