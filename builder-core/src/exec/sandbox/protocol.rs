//! What the parent tells the helper process (a plan, as JSON on its stdin) and what the helper
//! leaves behind for the parent (files in a report directory on the host).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The program, its environment and identity: the part every isolation shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommandPlan {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A bind mount into the root, resolved inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BindPlan {
    pub source: PathBuf,
    /// Absolute path in the root.
    pub target: String,
    pub read_only: bool,
}

/// The overlay the namespace helper mounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OverlayPlan {
    /// Top first, as overlayfs wants them.
    pub lowers_top_first: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The empty directory the overlay is mounted on.
    pub merged: PathBuf,
}

/// Everything the helper needs, whatever its stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HelperPlan {
    pub command: CommandPlan,
    /// Namespace mode: the overlay. Chroot mode: `None`.
    pub overlay: Option<OverlayPlan>,
    /// Chroot mode: the root directory.
    pub chroot: Option<PathBuf>,
    pub binds: Vec<BindPlan>,
    pub hostname: String,
    /// Not the host's root: mount the overlay with `userxattr`, and accept that host-owned
    /// files (the hostname sysctl) stay read-only.
    pub rootless: bool,
    /// Unshare a user namespace mapping the caller alone to root (when not root at all).
    pub own_user_namespace: bool,
    /// Unshare the network namespace.
    pub network_none: bool,
    /// Where the helper writes [`FAILURE_FILE`] and [`STUBS_FILE`].
    pub report_dir: PathBuf,
}

/// Written when the helper fails before exec.
pub(crate) const FAILURE_FILE: &str = "failure.json";
/// Written just before exec: the command itself is running from then on.
pub(crate) const STARTED_FILE: &str = "started";
/// Written by the namespace helper: the mount targets it had to create in the root.
pub(crate) const STUBS_FILE: &str = "stubs.json";

/// Why the helper stopped before exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// What was being done, with its object (`mount overlay on /tmp/x`).
    pub action: String,
    /// The errno, when a system call failed.
    pub errno: Option<i32>,
    /// Set when the program is missing from the root.
    pub missing_program: Option<String>,
}

/// The mount targets the helper created inside the overlay, and the directories that existed
/// below them (so copy-ups caused only by the stubs can be undone).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Stubs {
    /// Created paths, relative to the root, in creation order.
    pub created: Vec<Stub>,
    /// Directories that existed and received a stub, with their metadata before.
    pub touched: Vec<TouchedDir>,
}

/// One created mount target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stub {
    pub path: String,
    pub dir: bool,
}

/// An existing directory a stub was created in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TouchedDir {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
