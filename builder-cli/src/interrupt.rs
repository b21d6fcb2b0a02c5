//! Ctrl-C and SIGTERM: a build that is interrupted removes its temporary directories, as one
//! that fails or finishes does.
//!
//! Everything kiln creates while building (the build's scratch directory, each RUN step's
//! control directory and overlay upper dir) goes under the system temporary directory. At
//! startup, before any thread exists, kiln points `TMPDIR` at a directory of its own; on
//! SIGINT or SIGTERM a watcher thread removes that directory and exits with 128 + the signal,
//! as a shell reports it. RUN helpers die with kiln (parent-death signal), and their mounts
//! with their namespaces.

use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The process's private temporary directory, removed on drop and on SIGINT/SIGTERM.
pub struct PrivateTemp {
    dir: Option<PathBuf>,
}

impl PrivateTemp {
    /// Makes the directory and points `TMPDIR` at it. Must run before any thread is started.
    /// When anything fails, kiln goes on with the ordinary temporary directory.
    pub fn install() -> PrivateTemp {
        let dir = match tempfile::Builder::new().prefix("kiln-").tempdir() {
            Ok(d) => d.keep(),
            Err(_) => return PrivateTemp { dir: None },
        };
        // SAFETY: called first thing in `main`, before any thread exists (the sandbox helper
        // check before it starts none), so nothing can read the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("TMPDIR", &dir);
        }
        if let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) {
            let watched = dir.clone();
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let _ = std::fs::remove_dir_all(&watched);
                    std::process::exit(128 + signal);
                }
            });
        }
        PrivateTemp { dir: Some(dir) }
    }
}

impl Drop for PrivateTemp {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
