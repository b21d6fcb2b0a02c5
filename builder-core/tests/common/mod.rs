//! Helpers shared by the integration tests (each test file includes this with `mod common;`).

use std::path::PathBuf;

/// `shared/conformance/<name>`: under `$KILN_SHARED_DIR` when set, otherwise under the first
/// ancestor of this crate that has `shared/conformance` (the team's shared material sits beside
/// the project's root, in CI as on a developer's machine).
pub fn conformance_dir(name: &str) -> PathBuf {
    let shared = match std::env::var_os("KILN_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("shared"))
            .find(|dir| dir.join("conformance").is_dir())
            .expect("no shared/conformance directory above the crate; set KILN_SHARED_DIR"),
    };
    shared.join("conformance").join(name)
}
