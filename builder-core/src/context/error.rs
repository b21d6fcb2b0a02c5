//! Errors from opening and reading the build context.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::filepath_match::BadPattern;
use super::patternmatcher::PatternError;

/// Why the build context could not be opened, a source could not be resolved, or a walk failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A filesystem operation failed.
    #[error("cannot {operation} `{}`", path.display())]
    Io {
        /// What was being done, e.g. `read directory`.
        operation: &'static str,
        /// The host path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: io::Error,
    },
    /// The context root is not a directory.
    #[error("build context `{}` is not a directory", path.display())]
    RootNotDirectory {
        /// The root as given.
        path: PathBuf,
    },
    /// The ignore file has a pattern Docker would reject.
    #[error("invalid pattern in `{}`", file.display())]
    IgnoreFile {
        /// The ignore file.
        file: PathBuf,
        /// What is wrong with the pattern.
        #[source]
        error: PatternError,
    },
    /// Patterns given for a walk are invalid.
    #[error("invalid filter pattern")]
    Filter(#[source] PatternError),
    /// A `COPY`/`ADD` source climbs out of the context (`../x`).
    #[error("`{source_path}` is outside the build context")]
    OutsideContext {
        /// The source as written.
        source_path: String,
    },
    /// A `COPY`/`ADD` source has a malformed wildcard.
    #[error("invalid wildcard in `{source_path}`")]
    BadSource {
        /// The source as written.
        source_path: String,
        /// The pattern error.
        #[source]
        error: BadPattern,
    },
    /// Nothing in the context matches a `COPY`/`ADD` source. When something did match but every
    /// match is excluded, `excluded_by` names the ignore file responsible.
    #[error(
        "`{source_path}` not found in the build context{}",
        excluded_note(excluded_by)
    )]
    NotFound {
        /// The source as written.
        source_path: String,
        /// The ignore file that excluded every match, if that is why nothing was found.
        excluded_by: Option<PathBuf>,
    },
    /// Resolving symbolic links went round in circles.
    #[error("too many levels of symbolic links in `{rel}`")]
    TooManySymlinks {
        /// The context path being resolved.
        rel: String,
    },
    /// A walk was asked to start below a symbolic link, which it must not follow.
    #[error("`{rel}` has a symbolic link in its parent directories")]
    SymlinkInPath {
        /// The context path.
        rel: String,
    },
    /// A file name is not UTF-8; context paths are kept as strings.
    #[error("file name `{}` is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The host path.
        path: PathBuf,
    },
}

fn excluded_note(excluded_by: &Option<PathBuf>) -> String {
    match excluded_by {
        Some(file) => format!(": excluded by `{}`", file.display()),
        None => String::new(),
    }
}

impl ContextError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        ContextError::Io {
            operation,
            path: path.into(),
            error,
        }
    }
}
