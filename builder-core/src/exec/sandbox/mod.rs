//! Running a RUN step in an isolated root and capturing what it changed as layer entries.
//!
//! # Brief overview
//!
//! Two isolations give the same layer for the same step:
//!
//! - [`Isolation::Namespace`] (where the kernel allows it): the step's root is an overlay of the
//!   image's extracted layers ([`Rootfs::Overlay`]) with a fresh upper dir. A helper process
//!   unshares mount, PID, IPC and UTS namespaces (network too for [`Network::None`], and a user
//!   namespace when not root), mounts the overlay, `/proc`, a minimal `/dev`, the host's
//!   `/etc/resolv.conf` and `/etc/hosts` (copies), the volumes, pivots into the root and execs.
//!   The layer is the upper dir: [`upper_to_entries`].
//! - [`Isolation::Chroot`] (where namespaces or mounts are forbidden): an extracted root
//!   directory ([`Rootfs::Chroot`]), `chroot`, device nodes by `mknod` where allowed, no
//!   `/proc`. The layer is the difference from a [`Snapshot`] taken before the step.
//!
//! ```text
//! run(spec, Rootfs::Overlay{lowers, upper, work}, Namespace) ──► upper_to_entries(upper)
//! Snapshot::take(dir); run(spec, Rootfs::Chroot{dir}, Chroot) ──► snapshot.diff(dir)
//! ```
//!
//! Mount points and the files mounted on them (`/proc`, `/dev`, `/sys`, resolv.conf, hosts,
//! volume targets) never reach the layer: targets the sandbox had to create are removed from
//! the upper dir (and from the chroot root) before [`run`] returns.
//!
//! # The helper process
//!
//! [`run`] re-executes the current program (`/proc/self/exe`) with a marker argument: user
//! namespaces cannot be entered from a multi-threaded process, and only a fresh process can be
//! PID 1 of a new PID namespace and mount its `/proc`. So every program that calls [`run`] must
//! call [`run_helper_if_requested`] first thing in `main`, before starting any thread (the
//! `kiln` binary included); an integration test that runs steps needs `harness = false` and a
//! `main` that does (see `tests/sandbox_run.rs`). Forking inside the caller (`pre_exec`) was not chosen: only allocation-free,
//! async-signal-safe code may run there, which rules out the mount setup and a second fork for
//! the PID namespace.
//!
//! Each [`run`] is synchronous; the command's stdout and stderr reach the `output` callback
//! line by line on the calling thread. Call it from a blocking thread in async code. The
//! helper is killed when the thread that started it exits (parent-death signal), and its
//! namespaces and mounts go with it.

mod chroot_prep;
mod disk;
mod error;
mod helper;
mod mounts;
mod protocol;
mod resolve;
mod snapshot;
mod spawn;
mod stubs;
mod upper;
mod userns;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use error::SandboxError;
pub use helper::run_helper_if_requested;
pub use snapshot::Snapshot;
pub use upper::upper_to_entries;
pub use userns::{IdMapping, IdRange, Privilege, enter_user_namespace, ownership_tag, privilege};

use protocol::{BindPlan, CommandPlan, HelperPlan, OverlayPlan};

/// How a step is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces plus overlayfs: the default where the kernel allows both.
    Namespace,
    /// `chroot` into an extracted root; for containers that forbid namespaces and mounts.
    Chroot,
}

impl Isolation {
    /// The name users pass to `--isolation`.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Namespace => "namespace",
            Isolation::Chroot => "chroot",
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isolation {
    type Err = SandboxError;

    /// Parses `--isolation namespace|chroot`.
    fn from_str(s: &str) -> Result<Isolation, SandboxError> {
        match s {
            "namespace" => Ok(Isolation::Namespace),
            "chroot" => Ok(Isolation::Chroot),
            other => Err(SandboxError::Invalid(format!(
                "isolation `{other}`: expected `namespace` or `chroot`"
            ))),
        }
    }
}

/// The network a step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (the default, as kaniko and buildah do).
    #[default]
    Host,
    /// A new network namespace: no interfaces but a loopback that is down.
    None,
}

/// A host path mounted into every RUN step (`--volume HOST:CTR[:ro]`); never part of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host file or directory.
    pub host: PathBuf,
    /// Absolute path inside the root (resolved inside it, symlinks included).
    pub target: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// What to run and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The program and its arguments (`["/bin/sh", "-c", "…"]` for the shell form).
    pub args: Vec<String>,
    /// The whole environment (ENV plus the build args in scope); nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Absolute working directory, created (as root, mode 0755) when missing.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// The network.
    pub network: Network,
    /// Volumes.
    pub mounts: Vec<BindMount>,
    /// The hostname (namespace isolation only; empty keeps the host's).
    pub hostname: String,
}

/// The root filesystem a step runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rootfs {
    /// For [`Isolation::Namespace`]: extracted layers (overlay format: whiteouts as 0:0
    /// character devices, opaque dirs by xattr) stacked under a writable upper dir.
    Overlay {
        /// Extracted layer directories, **base first** (the image's layer order).
        lowers: Vec<PathBuf>,
        /// An empty directory that receives the step's changes; read it with
        /// [`upper_to_entries`] afterwards.
        upper: PathBuf,
        /// An empty directory on the same file system as `upper`, for overlayfs's own use;
        /// emptied again when the step ends.
        work: PathBuf,
    },
    /// For [`Isolation::Chroot`]: an extracted root directory the step modifies in place.
    Chroot {
        /// The root directory.
        dir: PathBuf,
    },
}

/// One line of the command's output, without its line ending (lossy UTF-8; lines longer than
/// 64 KiB arrive in pieces). Standard output and standard error share one pipe, as `2>&1`
/// would, so lines arrive in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The text.
    pub text: String,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code; 128 + N when killed by signal N.
    pub exit_code: i32,
    /// The last lines of output (both streams, at most [`LAST_LINES`]), for error messages.
    pub last_lines: Vec<String>,
}

/// How many output lines [`RunOutcome::last_lines`] keeps.
pub const LAST_LINES: usize = 10;

/// The isolation this machine supports: [`Isolation::Namespace`] when a helper can unshare its
/// namespaces and mount an overlay (checked once per process, in the temp dir), else
/// [`Isolation::Chroot`].
pub fn detect_isolation() -> Isolation {
    static DETECTED: OnceLock<Isolation> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        if spawn::probe_namespace().unwrap_or(false) {
            Isolation::Namespace
        } else {
            Isolation::Chroot
        }
    })
}

/// Runs `spec` in `rootfs`, streaming its output to `output`, and waits for it.
///
/// A command that exits non-zero is an `Ok` outcome; errors are for steps that could not be
/// run (a missing program, a failed mount). Every mount lives in the helper's private mount
/// namespace and dies with it; the temporary directory and the mount targets created in the
/// root are removed before returning, on success and on failure.
pub fn run(
    spec: &RunSpec,
    rootfs: &Rootfs,
    isolation: Isolation,
    output: &mut dyn FnMut(OutputLine),
) -> Result<RunOutcome, SandboxError> {
    validate(spec)?;
    let command = CommandPlan {
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        uid: spec.uid,
        gid: spec.gid,
        // A helper that maps only the caller has `setgroups` denied (the kernel's condition
        // for an unprivileged map), so its steps run without supplementary groups.
        groups: if privilege() == Privilege::Unprivileged {
            Vec::new()
        } else {
            spec.additional_gids.clone()
        },
    };
    match (isolation, rootfs) {
        (
            Isolation::Namespace,
            Rootfs::Overlay {
                lowers,
                upper,
                work,
            },
        ) => run_namespace(spec, command, lowers, upper, work, output),
        (Isolation::Chroot, Rootfs::Chroot { dir }) => run_chroot(spec, command, dir, output),
        (isolation, _) => Err(SandboxError::Invalid(format!(
            "{} isolation needs {} root",
            isolation.name(),
            match isolation {
                Isolation::Namespace => "an overlay",
                Isolation::Chroot => "a chroot",
            }
        ))),
    }
}

fn validate(spec: &RunSpec) -> Result<(), SandboxError> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err(SandboxError::Invalid("no program to run".into()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(SandboxError::Invalid(format!(
            "working directory `{}` is not absolute",
            spec.cwd
        )));
    }
    let strings = spec
        .args
        .iter()
        .chain(spec.env.iter().flat_map(|(k, v)| [k, v]))
        .chain([&spec.cwd, &spec.hostname]);
    if strings.into_iter().any(|s| s.contains('\0')) {
        return Err(SandboxError::Invalid("a NUL byte in the command".into()));
    }
    if let Some((k, _)) = spec
        .env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('='))
    {
        return Err(SandboxError::Invalid(format!(
            "environment variable name `{k}`"
        )));
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') || m.target.split('/').any(|p| p == "..") {
            return Err(SandboxError::Invalid(format!(
                "volume target `{}` must be absolute, without `..`",
                m.target
            )));
        }
    }
    Ok(())
}

fn run_namespace(
    spec: &RunSpec,
    command: CommandPlan,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    output: &mut dyn FnMut(OutputLine),
) -> Result<RunOutcome, SandboxError> {
    let control = spawn::ControlDir::new()?;
    let merged = control.path().join("merged");
    std::fs::create_dir(&merged).map_err(|e| SandboxError::io("create", &merged, e))?;
    let mut binds = Vec::new();
    for name in ["resolv.conf", "hosts"] {
        let host = Path::new("/etc").join(name);
        if host.is_file() {
            let copy = control.path().join(name);
            std::fs::copy(&host, &copy).map_err(|e| SandboxError::io("copy", &host, e))?;
            binds.push(BindPlan {
                source: copy,
                target: format!("/etc/{name}"),
                read_only: false,
            });
        }
    }
    binds.extend(spec.mounts.iter().map(|m| BindPlan {
        source: m.host.clone(),
        target: m.target.clone(),
        read_only: m.read_only,
    }));
    let plan = HelperPlan {
        command,
        overlay: Some(OverlayPlan {
            lowers_top_first: lowers.iter().rev().cloned().collect(),
            upper: upper.to_path_buf(),
            work: work.to_path_buf(),
            merged,
        }),
        chroot: None,
        binds,
        hostname: spec.hostname.clone(),
        rootless: privilege().uses_user_xattr(),
        own_user_namespace: privilege() == Privilege::Unprivileged,
        network_none: spec.network == Network::None,
        report_dir: control.path().to_path_buf(),
    };
    let result = spawn::run_helper("namespace", &plan, output);
    let cleaned = stubs::remove_stubs(upper, &control.read_stubs());
    let emptied = stubs::empty_dir(work);
    let outcome = control.outcome(result)?;
    cleaned?;
    emptied?;
    Ok(outcome)
}

fn run_chroot(
    spec: &RunSpec,
    command: CommandPlan,
    dir: &Path,
    output: &mut dyn FnMut(OutputLine),
) -> Result<RunOutcome, SandboxError> {
    let control = spawn::ControlDir::new()?;
    let root = std::fs::canonicalize(dir).map_err(|e| SandboxError::io("open", dir, e))?;
    let mut injections = chroot_prep::Injections::new(&root);
    injections.prepare(&spec.mounts)?;
    let plan = HelperPlan {
        command,
        overlay: None,
        chroot: Some(root),
        binds: Vec::new(),
        hostname: String::new(),
        rootless: privilege().uses_user_xattr(),
        own_user_namespace: privilege() == Privilege::Unprivileged,
        network_none: spec.network == Network::None,
        report_dir: control.path().to_path_buf(),
    };
    let result = spawn::run_helper("chroot", &plan, output);
    let restored = injections.undo();
    let outcome = control.outcome(result)?;
    restored?;
    Ok(outcome)
}
