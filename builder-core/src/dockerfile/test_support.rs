//! Finding the shared conformance corpus from unit tests.

use std::path::PathBuf;

/// The `shared/conformance/buildkit` directory: `KILN_SHARED_DIR` if set, otherwise the first
/// ancestor of the crate that has `shared/conformance`.
pub(crate) fn buildkit_corpus() -> PathBuf {
    let shared = match std::env::var_os("KILN_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("shared"))
            .find(|dir| dir.join("conformance").is_dir())
            .expect("no shared/conformance directory above the crate"),
    };
    shared.join("conformance/buildkit")
}

/// The text of `relative` inside the BuildKit corpus.
pub(crate) fn shared_file(relative: &str) -> String {
    std::fs::read_to_string(buildkit_corpus().join(relative)).unwrap()
}
