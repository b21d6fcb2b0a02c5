//! End-to-end tests of the `kiln` binary. Images are checked with independent readers (skopeo,
//! umoci, tar) rather than with kiln's own code, so a test passes only when other tools agree
//! with what kiln wrote. `scripts/install-test-deps.sh` installs those tools. The tests run as
//! root, as CI does: they give context files other owners and unpack images with their owners.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;
#[path = "../../../builder-core/tests/support/mod.rs"]
mod support;

mod cache;
mod cache_cmd;
mod cache_registry;
mod context;
mod differential;
mod errors;
mod flask;
mod images;
mod multistage;
mod outputs;
mod parse;
mod registry;
mod reproducible;
mod rootless;
mod run;
