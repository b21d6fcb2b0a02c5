//! Executing steps: the filesystem each stage builds up, and the entries each step adds.
//!
//! A step's result is its layer as a list of [`Entry`]s; writing the tar is `layer`'s job.
//! COPY, ADD and WORKDIR are computed from metadata (see [`fs::FsTree`]), so nothing is copied
//! or extracted to work out a layer, and files are only read when the layer is written.

pub mod copy;
pub mod fs;
pub mod sandbox;
pub mod users;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::context::{BuildContext, ContextError};
use crate::oci::Entry;
use fs::FsTree;
use users::{Owner, UserError, resolve_owner_lenient};

/// Recognises and unpacks the local archives that `ADD` extracts. Defined here and implemented
/// by `layer`, which owns tar reading; `build` passes it in.
pub trait ArchiveExtractor {
    /// Whether `path` is a tar archive (plain or compressed), judged by its content.
    fn is_archive(&self, path: &Path) -> Result<bool, Box<dyn std::error::Error + Send + Sync>>;
    /// The archive's entries placed under `dest` (relative), with file contents written into
    /// `scratch` so memory stays flat.
    fn extract(
        &self,
        path: &Path,
        dest: &str,
        scratch: &Path,
    ) -> Result<Vec<Entry>, Box<dyn std::error::Error + Send + Sync>>;
}

/// What a step may read besides the stage's own tree.
pub struct StepEnv<'a> {
    /// The build context.
    pub context: &'a BuildContext,
    /// The trees of the stages built so far, by index (for `COPY --from=<stage>`).
    pub stages: &'a BTreeMap<usize, FsTree>,
    /// The trees of images `COPY --from=<image>` reads, by their full reference
    /// (`docker.io/library/alpine:3.20`).
    pub images: &'a BTreeMap<String, FsTree>,
    /// ADD's archive support.
    pub archives: &'a dyn ArchiveExtractor,
    /// A directory for files the step generates (extracted archive members).
    pub scratch: &'a Path,
    /// The timestamp for things the build creates (new directories, heredoc files).
    pub now: i64,
}

impl StepEnv<'_> {
    fn stage_tree(&self, index: usize) -> Option<&FsTree> {
        self.stages.get(&index)
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A COPY/ADD source could not be found or is not allowed.
    #[error(transparent)]
    Source(ContextError),
    /// A `--from` stage does not have the source.
    #[error("`{path}` not found in the source stage")]
    NotInStage {
        /// The source as written.
        path: String,
    },
    /// Several sources into a destination that is not a directory.
    #[error(
        "when using {keyword} with more than one source file, the destination must be a directory and end with a /, but it is `{dest}`"
    )]
    DestinationNotDirectory {
        /// COPY or ADD.
        keyword: &'static str,
        /// The destination.
        dest: String,
    },
    /// `--chown` or USER could not be resolved.
    #[error(transparent)]
    User(UserError),
    /// ADD could not read an archive.
    #[error("failed to extract archive")]
    Archive(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something this version of kiln cannot do yet.
    #[error("{0}")]
    Unsupported(String),
    /// The step's values do not make sense.
    #[error("{0}")]
    Invalid(String),
    /// A host file could not be read.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The layer of `WORKDIR path`: the directory and its missing parents when it does not exist yet
/// (owned by the current USER, as BuildKit does, or by root when the stage does not know that
/// user), nothing when it does.
pub fn workdir(
    path: &str,
    user: Option<&str>,
    tree: &FsTree,
    now: i64,
) -> Result<Vec<Entry>, ExecError> {
    let resolved = tree
        .resolve(path, true)
        .map_err(|e| ExecError::Invalid(format!("cannot create WORKDIR `{path}`: {e}")))?;
    if tree.is_dir(&resolved) {
        return Ok(Vec::new());
    }
    if tree.get(&resolved).is_some() {
        return Err(ExecError::Invalid(format!(
            "cannot create WORKDIR `{path}`: it exists and is not a directory"
        )));
    }
    let owner = match user {
        Some(u) => resolve_owner_lenient(u, tree).map_err(ExecError::User)?,
        None => Owner::ROOT,
    };
    let mut entries = Vec::new();
    let mut prefix = String::new();
    for part in resolved.split('/') {
        prefix = fs::join(&prefix, part);
        let entry = match tree.get(&prefix) {
            Some(e) => e.clone(),
            None => Entry::dir(&prefix, 0o755, owner.uid, owner.gid, now),
        };
        entries.push(entry);
    }
    Ok(entries)
}
