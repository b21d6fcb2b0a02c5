//! The helper process: the embedding program re-executed (`/proc/self/exe`) with a marker
//! argument, so that it starts single-threaded. User namespaces cannot be entered from a
//! multi-threaded process (`unshare` gives `EINVAL`), a new PID namespace only applies to
//! children, and `/proc` must be mounted from inside that namespace; a fresh process per stage
//! gives all three without `fork` in a threaded program.
//!
//! Stages, each a process started by the one before with the plan on its stdin:
//! - `namespace`: unshares the namespaces, maps ids when rootless, makes mounts private, starts
//!   `init` and exits with its status;
//! - `init`: PID 1 of the new PID namespace; mounts the overlay, `/proc`, `/dev`, the binds,
//!   pivots into the root and execs the command (which stays PID 1);
//! - `chroot`: chroots into an extracted root and execs the command;
//! - `probe`: checks that namespaces and overlayfs work here (exit 0).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::process::Signal;
use rustix::thread::UnshareFlags;

use super::mounts;
use super::protocol::{CommandPlan, FAILURE_FILE, Failure, HelperPlan, STARTED_FILE};

/// The first argument that turns the program into the sandbox helper.
pub(crate) const HELPER_ARG: &str = "__kiln-sandbox-helper";
/// The executable re-run as the helper.
pub(crate) const SELF_EXE: &str = "/proc/self/exe";
/// The helper's exit code when it failed before exec (details in [`FAILURE_FILE`]).
pub(crate) const SETUP_FAILED: i32 = 125;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs the sandbox helper and exits when this process was started as one; returns at once
/// otherwise.
///
/// Every program that calls [`run`](super::run) must call this first thing in `main`, before
/// any thread is started (a tokio runtime, a logger thread): [`run`](super::run) re-executes the
/// current executable (`/proc/self/exe`) as its helper. Integration tests that run commands need
/// a test target with `harness = false` whose `main` calls it.
pub fn run_helper_if_requested() {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some(super::userns::MAP_IDS_ARG.as_ref()) {
        std::process::exit(super::userns::mapper_main(args));
    }
    if first.as_deref() != Some(HELPER_ARG.as_ref()) {
        return;
    }
    let stage = args.next().unwrap_or_default();
    std::process::exit(helper_main(&stage));
}

fn helper_main(stage: &OsString) -> i32 {
    let plan: HelperPlan = match read_plan() {
        Ok(plan) => plan,
        Err(_) => return SETUP_FAILED,
    };
    let open = |name: &str| {
        File::options()
            .append(true)
            .open(plan.report_dir.join(name))
    };
    let (Ok(report), Ok(started)) = (open(FAILURE_FILE), open(STARTED_FILE)) else {
        return SETUP_FAILED;
    };
    let result = match stage.to_str() {
        Some("namespace") => namespace_stage(&plan),
        Some("init") => init_stage(&plan, &started),
        Some("chroot") => chroot_stage(&plan, &started),
        Some("probe") => probe_stage(&plan),
        _ => Err(Failure {
            action: "recognise the helper stage".into(),
            errno: None,
            missing_program: None,
        }),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            let _ = serde_json::to_writer(&report, &failure);
            SETUP_FAILED
        }
    }
}

fn read_plan() -> io::Result<HelperPlan> {
    let mut text = String::new();
    io::stdin().read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(io::Error::other)
}

/// A failed action, with the errno of its cause.
pub(crate) fn failed(action: impl Into<String>, err: impl Into<io::Error>) -> Failure {
    let err: io::Error = err.into();
    Failure {
        action: action.into(),
        errno: err.raw_os_error(),
        missing_program: None,
    }
}

type StageResult = Result<i32, Failure>;

fn die_with_parent() -> Result<(), Failure> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| failed("set the parent-death signal", e))
}

/// Unshares `flags` in this (single-threaded) process.
#[allow(unsafe_code)]
pub(crate) fn unshare(flags: UnshareFlags) -> io::Result<()> {
    // SAFETY: the only hazard `unshare_unsafe` documents is `CLONE_FILES` splitting the fd
    // table between threads; it is never passed here, and helper stages are single-threaded.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    Ok(())
}

/// Gives this process its own namespaces; in a new user namespace, maps root to the caller.
fn enter_namespaces(own_user_namespace: bool, network_none: bool) -> Result<(), Failure> {
    let mut flags =
        UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS;
    if network_none {
        flags |= UnshareFlags::NEWNET;
    }
    if own_user_namespace {
        flags |= UnshareFlags::NEWUSER;
    }
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    unshare(flags).map_err(|e| failed("unshare namespaces", e))?;
    if own_user_namespace {
        let write = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| failed(format!("write `{file}`"), e))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
        write("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
    }
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| failed("make mounts private", e))
}

fn namespace_stage(plan: &HelperPlan) -> StageResult {
    die_with_parent()?;
    enter_namespaces(plan.own_user_namespace, plan.network_none)?;
    let status = spawn_stage("init", plan)?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Starts the next stage (the first process in any new PID namespace) and waits for it.
fn spawn_stage(stage: &str, plan: &HelperPlan) -> Result<std::process::ExitStatus, Failure> {
    let mut child = Command::new(SELF_EXE)
        .arg(HELPER_ARG)
        .arg(stage)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("start the `{stage}` helper stage"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = serde_json::to_vec(plan).map_err(|e| failed("encode the plan", e))?;
        stdin
            .write_all(&text)
            .map_err(|e| failed(format!("send the plan to the `{stage}` stage"), e))?;
    }
    child
        .wait()
        .map_err(|e| failed(format!("wait for the `{stage}` stage"), e))
}

fn init_stage(plan: &HelperPlan, started: &File) -> StageResult {
    die_with_parent()?;
    let overlay = plan.overlay.as_ref().ok_or_else(|| Failure {
        action: "find the overlay in the plan".into(),
        errno: None,
        missing_program: None,
    })?;
    let devnull = open_devnull()?;
    mounts::prepare_root(plan, overlay)?;
    mounts::pivot_into(&overlay.merged)?;
    Err(exec_command(&plan.command, devnull, started))
}

fn chroot_stage(plan: &HelperPlan, started: &File) -> StageResult {
    die_with_parent()?;
    let root = plan.chroot.as_ref().ok_or_else(|| Failure {
        action: "find the root in the plan".into(),
        errno: None,
        missing_program: None,
    })?;
    if plan.network_none {
        unshare(UnshareFlags::NEWNET).map_err(|e| failed("unshare the network namespace", e))?;
    }
    let devnull = open_devnull()?;
    rustix::process::chroot(root)
        .map_err(|e| failed(format!("chroot into `{}`", root.display()), e))?;
    rustix::process::chdir("/").map_err(|e| failed("change directory to `/`", e))?;
    Err(exec_command(&plan.command, devnull, started))
}

fn probe_stage(plan: &HelperPlan) -> StageResult {
    enter_namespaces(plan.own_user_namespace, plan.network_none)?;
    let overlay = plan.overlay.as_ref().ok_or_else(|| Failure {
        action: "find the overlay in the plan".into(),
        errno: None,
        missing_program: None,
    })?;
    mounts::mount_overlay(overlay, plan.rootless)?;
    Ok(0)
}

fn open_devnull() -> Result<File, Failure> {
    File::open("/dev/null").map_err(|e| failed("open `/dev/null`", e))
}

/// Switches to the step's identity and directory and execs its program; returns only on
/// failure. `started` is marked just before exec, so the parent can tell the command's own
/// exit code from a helper that never got that far.
fn exec_command(cmd: &CommandPlan, devnull: File, mut started: &File) -> Failure {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    if let Err(e) = std::fs::create_dir_all(&cmd.cwd) {
        return failed(format!("create the working directory `{}`", cmd.cwd), e);
    }
    if let Err(e) = rustix::process::chdir(cmd.cwd.as_str()) {
        return failed(format!("change directory to `{}`", cmd.cwd), e);
    }
    let Some(arg0) = cmd.args.first() else {
        return Failure {
            action: "find the program to run".into(),
            errno: None,
            missing_program: None,
        };
    };
    let path_var = cmd
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let Some(program) = find_program(arg0, path_var) else {
        return Failure {
            action: format!("find `{arg0}`"),
            errno: None,
            missing_program: Some(arg0.clone()),
        };
    };
    if let Err(f) = switch_identity(cmd) {
        return f;
    }
    if let Err(e) = started.write_all(b"exec") {
        return failed("mark the command as started", e);
    }
    let err = Command::new(&program)
        .arg0(arg0)
        .args(&cmd.args[1..])
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(devnull)
        .exec();
    failed(format!("execute `{arg0}`"), err)
}

fn switch_identity(cmd: &CommandPlan) -> Result<(), Failure> {
    use rustix::process::{Gid, Uid};
    let groups: Vec<Gid> = cmd.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let current_groups_ok = groups.is_empty() && cmd.uid == 0 && cmd.gid == 0;
    if let Err(e) = rustix::thread::set_thread_groups(&groups)
        && !(current_groups_ok && e == rustix::io::Errno::PERM)
    {
        return Err(failed("set the supplementary groups", e));
    }
    rustix::thread::set_thread_res_gid(
        Gid::from_raw(cmd.gid),
        Gid::from_raw(cmd.gid),
        Gid::from_raw(cmd.gid),
    )
    .map_err(|e| failed(format!("switch to gid {}", cmd.gid), e))?;
    rustix::thread::set_thread_res_uid(
        Uid::from_raw(cmd.uid),
        Uid::from_raw(cmd.uid),
        Uid::from_raw(cmd.uid),
    )
    .map_err(|e| failed(format!("switch to uid {}", cmd.uid), e))
}

/// The program `name` names, as execvp would find it, checked inside the (new) root.
fn find_program(name: &str, path_var: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return std::fs::metadata(&path).is_ok().then_some(path);
    }
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
