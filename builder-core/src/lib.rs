//! kiln's library: turn a Dockerfile and a build context into an OCI image, with no daemon.
#![deny(missing_docs)]

pub mod build;
pub mod context;
pub mod diag;
pub mod dockerfile;
pub mod exec;
pub mod export;
pub mod layer;
pub mod oci;
pub mod plan;
