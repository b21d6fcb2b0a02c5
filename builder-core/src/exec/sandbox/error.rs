//! Why a RUN step could not be set up, run or captured.

use std::io;
use std::path::PathBuf;

/// An error from the sandbox. A command that runs and exits non-zero is not an error: its code
/// is in [`RunOutcome`](super::RunOutcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The program to run does not exist in the root filesystem (checked before exec, so the
    /// user sees which program is missing rather than a bare exit code 127).
    #[error("{program}: not found in the image; set SHELL or use exec form")]
    ProgramNotFound {
        /// The program as given (`/bin/sh`, `python3`).
        program: String,
    },
    /// The step asks for something the chosen isolation cannot give.
    #[error("{what} is not possible with {isolation} isolation")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// `namespace` or `chroot`.
        isolation: &'static str,
    },
    /// The step's values are unusable (no arguments, a relative path, a NUL byte).
    #[error("invalid RUN step: {0}")]
    Invalid(String),
    /// The helper process failed while preparing the isolated root (a mount, pivot_root,
    /// setuid…). `action` names the operation and its object.
    #[error("sandbox setup failed to {action}")]
    Setup {
        /// What the helper was doing, with the path involved.
        action: String,
        /// The system error, rebuilt from the helper's errno.
        #[source]
        source: io::Error,
    },
    /// The helper process could not be started or talked to.
    #[error("failed to {action} the sandbox helper `{program}`")]
    Helper {
        /// What was being done.
        action: &'static str,
        /// The helper executable.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The helper ended without running the command and without saying why; usually the
    /// embedding program does not call [`run_helper_if_requested`](super::run_helper_if_requested)
    /// at the start of `main`.
    #[error("sandbox helper `{program}` exited with {status} before running the command")]
    HelperDied {
        /// The helper executable.
        program: PathBuf,
        /// How it ended.
        status: String,
    },
    /// A file system operation on the host side failed.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `newuidmap` or `newgidmap` refused the caller's subordinate ids.
    #[error(
        "cannot map this user's subordinate ids into a user namespace: {message}\n\
         check this user's ranges in /etc/subuid and /etc/subgid, or set KILN_USERNS=off to \
         build with only the caller mapped (every file then belongs to root)"
    )]
    IdMap {
        /// What the mapper reported.
        message: String,
    },
    /// A path in the captured tree is not UTF-8, which layer entries need.
    #[error("path `{0}` is not valid UTF-8")]
    NonUtf8Path(PathBuf),
}

impl SandboxError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
