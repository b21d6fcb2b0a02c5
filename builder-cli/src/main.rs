//! `kiln`: build OCI images from Dockerfiles without a daemon.

fn main() {}
