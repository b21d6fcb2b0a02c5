//! The parent's side of the helper: starting it, streaming its output, reading its report.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::helper::{HELPER_ARG, SELF_EXE};
use super::protocol::{
    CommandPlan, FAILURE_FILE, Failure, HelperPlan, OverlayPlan, STARTED_FILE, STUBS_FILE, Stubs,
};
use super::{LAST_LINES, OutputLine, RunOutcome, SandboxError};

/// Longest piece of a line passed on at once.
const MAX_LINE: u64 = 64 * 1024;
/// How long output may keep arriving after the helper exited (from processes it left behind).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How the helper ended, with the output's tail.
pub(crate) struct HelperExit {
    status: ExitStatus,
    last_lines: Vec<String>,
}

/// A temporary directory for one step: the helper's report files and the overlay mount point.
/// Removed on drop.
pub(crate) struct ControlDir {
    dir: tempfile::TempDir,
}

impl ControlDir {
    pub(crate) fn new() -> Result<ControlDir, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-run-")
            .tempdir()
            .map_err(|e| SandboxError::io("create", std::env::temp_dir(), e))?;
        for name in [FAILURE_FILE, STARTED_FILE] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"").map_err(|e| SandboxError::io("create", &path, e))?;
        }
        Ok(ControlDir { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The mount targets the helper created (none when it did not get that far).
    pub(crate) fn read_stubs(&self) -> Stubs {
        std::fs::read(self.path().join(STUBS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The step's outcome from the helper's exit and report.
    pub(crate) fn outcome(
        &self,
        exit: Result<HelperExit, SandboxError>,
    ) -> Result<RunOutcome, SandboxError> {
        let exit = exit?;
        let failure = std::fs::read(self.path().join(FAILURE_FILE)).unwrap_or_default();
        if !failure.is_empty() {
            return Err(match serde_json::from_slice::<Failure>(&failure) {
                Ok(f) => failure_error(f),
                Err(_) => died(exit.status),
            });
        }
        let started = std::fs::read(self.path().join(STARTED_FILE)).unwrap_or_default();
        if started.is_empty() {
            return Err(died(exit.status));
        }
        let status = exit.status;
        Ok(RunOutcome {
            exit_code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            last_lines: exit.last_lines,
        })
    }
}

fn died(status: ExitStatus) -> SandboxError {
    SandboxError::HelperDied {
        program: PathBuf::from(SELF_EXE),
        status: status.to_string(),
    }
}

fn failure_error(f: Failure) -> SandboxError {
    if let Some(program) = f.missing_program {
        return SandboxError::ProgramNotFound { program };
    }
    let source = match f.errno {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::other("the helper gave no system error"),
    };
    SandboxError::Setup {
        action: f.action,
        source,
    }
}

/// Kills and reaps the helper if the step is abandoned before it exits.
struct ChildGuard {
    child: Child,
    waited: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_group(self.child.id());
    }
}

/// Ends whatever the step left running in its process group (chroot isolation has no PID
/// namespace to do it).
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn helper_command(stage: &str) -> Command {
    let mut cmd = Command::new(SELF_EXE);
    cmd.arg(HELPER_ARG)
        .arg(stage)
        .env_clear()
        .stdin(Stdio::piped())
        // Terminal signals go to the builder, which decides; the helper dies with it.
        .process_group(0);
    cmd
}

/// Starts the helper and sends it the plan. Takes `cmd` by value so the parent's copies of the
/// output pipe's write end close once the child has them.
fn start(mut cmd: Command, plan: &HelperPlan) -> Result<ChildGuard, SandboxError> {
    let helper = |action, source| SandboxError::Helper {
        action,
        program: PathBuf::from(SELF_EXE),
        source,
    };
    let child = cmd.spawn().map_err(|e| helper("start", e))?;
    let mut guard = ChildGuard {
        child,
        waited: false,
    };
    if let Some(mut stdin) = guard.child.stdin.take() {
        let text = serde_json::to_vec(plan).map_err(|e| helper("encode the plan for", e.into()))?;
        stdin
            .write_all(&text)
            .map_err(|e| helper("send the plan to", e))?;
    }
    Ok(guard)
}

/// Runs a helper stage, passing every output line to `output` as it arrives.
pub(crate) fn run_helper(
    stage: &str,
    plan: &HelperPlan,
    output: &mut dyn FnMut(OutputLine),
) -> Result<HelperExit, SandboxError> {
    // One pipe for both streams, as `2>&1`: lines keep the order they were written in, which
    // two pipes read by two threads cannot promise.
    let (reader, writer) = std::io::pipe().map_err(|e| SandboxError::Helper {
        action: "create the output pipe for",
        program: PathBuf::from(SELF_EXE),
        source: e,
    })?;
    let mut cmd = helper_command(stage);
    let writer2 = writer.try_clone().map_err(|e| SandboxError::Helper {
        action: "create the output pipe for",
        program: PathBuf::from(SELF_EXE),
        source: e,
    })?;
    cmd.stdout(writer).stderr(writer2);
    let mut guard = start(cmd, plan)?;
    let (tx, rx) = mpsc::channel();
    forward_lines(reader, tx);
    let mut last = VecDeque::with_capacity(LAST_LINES);
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if last.len() == LAST_LINES {
                    last.pop_front();
                }
                last.push_back(line.text.clone());
                output(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match exited {
            None => {
                if let Some(status) = guard.child.try_wait().map_err(|e| SandboxError::Helper {
                    action: "wait for",
                    program: PathBuf::from(SELF_EXE),
                    source: e,
                })? {
                    guard.waited = true;
                    kill_group(guard.child.id());
                    exited = Some((status, Instant::now()));
                }
            }
            // Something escaped the process group and holds the pipes open: stop listening.
            Some((_, at)) if at.elapsed() > DRAIN_GRACE => break,
            Some(_) => {}
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => {
            let status = guard.child.wait().map_err(|e| SandboxError::Helper {
                action: "wait for",
                program: PathBuf::from(SELF_EXE),
                source: e,
            })?;
            guard.waited = true;
            status
        }
    };
    Ok(HelperExit {
        status,
        last_lines: last.into(),
    })
}

/// Reads `pipe` on its own thread and sends each line.
fn forward_lines(pipe: impl Read + Send + 'static, tx: mpsc::Sender<OutputLine>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(OutputLine { text }).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Whether a helper can unshare its namespaces and mount an overlay here.
pub(crate) fn probe_namespace() -> Result<bool, SandboxError> {
    let control = ControlDir::new()?;
    let dirs: Vec<PathBuf> = ["lower", "upper", "work", "merged"]
        .iter()
        .map(|d| control.path().join(d))
        .collect();
    for d in &dirs {
        std::fs::create_dir(d).map_err(|e| SandboxError::io("create", d, e))?;
    }
    let plan = HelperPlan {
        command: CommandPlan {
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        },
        overlay: Some(OverlayPlan {
            lowers_top_first: vec![dirs[0].clone()],
            upper: dirs[1].clone(),
            work: dirs[2].clone(),
            merged: dirs[3].clone(),
        }),
        chroot: None,
        binds: Vec::new(),
        hostname: String::new(),
        rootless: super::privilege().uses_user_xattr(),
        own_user_namespace: super::privilege() == super::Privilege::Unprivileged,
        network_none: false,
        report_dir: control.path().to_path_buf(),
    };
    let mut cmd = helper_command("probe");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = start(cmd, &plan)?;
    let status = guard.child.wait().map_err(|e| SandboxError::Helper {
        action: "wait for",
        program: PathBuf::from(SELF_EXE),
        source: e,
    })?;
    guard.waited = true;
    // overlayfs leaves a mode-000 `work/work`, which a non-root owner cannot remove unopened.
    super::stubs::empty_dir(&dirs[2])?;
    Ok(status.success())
}
