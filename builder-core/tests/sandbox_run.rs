//! RUN steps in the sandbox on a busybox root: the captured layer, isolation (network, /proc,
//! mounts kept out of the layer, volumes), exit codes, and the same layer from both isolations.
//!
//! A `harness = false` test: [`run`] re-executes this binary as its helper, so `main` must call
//! `run_helper_if_requested` before anything else. Needs root (CI runs as root); skipped
//! otherwise. Pass a substring to run only the tests whose name contains it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use builder_core::exec::sandbox::{
    BindMount, Isolation, Network, OutputLine, Rootfs, RunOutcome, RunSpec, SandboxError, Snapshot,
    detect_isolation, run, run_helper_if_requested, upper_to_entries,
};
use builder_core::oci::{Content, Entry, EntryKind};
use tempfile::TempDir;

/// `(name, fn)` pairs for the test list.
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), $name as fn())),*]
    };
}

fn main() {
    run_helper_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    // `--exact` (as cargo test and nextest pass it) matches whole names only.
    let exact = args.iter().any(|a| a == "--exact");
    let tests: &[(&str, fn())] = tests![
        detects_namespace_isolation,
        layer_of_create_delete_links_setuid,
        read_only_step_gives_empty_layer,
        network_none_has_only_loopback,
        proc_is_the_steps_own,
        volume_is_visible_read_only_and_not_in_layer,
        failing_command_reports_code_and_last_lines,
        missing_shell_is_a_clear_error,
        failed_setup_cleans_up_and_names_the_mount,
        runs_as_user_in_created_workdir,
        namespace_and_chroot_give_the_same_layer,
        chroot_leaves_no_injected_files,
    ];
    let rootless: &[(&str, fn())] = tests![rootless_layer];
    let tests = if rustix::process::geteuid().is_root() {
        tests
    } else if detect_isolation() == Isolation::Namespace {
        println!("sandbox_run: not root: running the rootless tests only");
        rootless
    } else {
        println!("sandbox_run: skipped (not root, and no user namespaces here)");
        return;
    };
    // `--list` (cargo-nextest's discovery): one `name: test` line per test, and no ignored tests.
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in tests {
                println!("{name}: test");
            }
        }
        return;
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        let selected = filter.is_empty()
            || filter.iter().any(|f| {
                if exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            });
        if !selected {
            continue;
        }
        ran += 1;
        print!("test {name} ... ");
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\nsandbox_run: {} passed; {} failed",
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(101);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A scratch directory on the target's file system (upper and work must share one).
fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("sandbox-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// The busybox image's single layer blob.
fn busybox_layer_blob() -> PathBuf {
    let layout = support::busybox_layout();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifest_digest)).unwrap()).unwrap();
    blob(manifest["layers"][0]["digest"].as_str().unwrap())
}

/// Extracts the busybox layer into `dir` with GNU tar (ownership kept, as root).
fn extract_busybox(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(busybox_layer_blob())
        .arg("--same-owner")
        .arg("-p")
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The busybox lower dir, extracted once and kept under the target dir (named by the blob, so
/// a new image gets a new dir).
fn busybox_lower() -> PathBuf {
    static LOWER: OnceLock<PathBuf> = OnceLock::new();
    LOWER
        .get_or_init(|| {
            let blob = busybox_layer_blob();
            let name = blob.file_name().unwrap().to_string_lossy()[..16].to_owned();
            let lower =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("busybox-lower-{name}"));
            if !lower.exists() {
                // Each test is its own process, so several may extract at once: the first
                // rename wins, and a later one finds the complete dir in place.
                let staging = scratch();
                extract_busybox(&staging.path().join("root"));
                if let Err(e) = std::fs::rename(staging.path().join("root"), &lower) {
                    assert!(
                        lower.is_dir(),
                        "cannot move busybox to {}: {e}",
                        lower.display()
                    );
                }
            }
            lower
        })
        .clone()
}

/// A fresh overlay root over busybox: (scratch dir holding upper and work, the rootfs).
fn overlay_root() -> (TempDir, Rootfs) {
    let dir = scratch();
    let upper = dir.path().join("upper");
    let work = dir.path().join("work");
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let rootfs = Rootfs::Overlay {
        lowers: vec![busybox_lower()],
        upper,
        work,
    };
    (dir, rootfs)
}

fn upper_of(rootfs: &Rootfs) -> &Path {
    match rootfs {
        Rootfs::Overlay { upper, .. } => upper,
        Rootfs::Chroot { dir } => dir,
    }
}

fn shell(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        network: Network::Host,
        mounts: Vec::new(),
        hostname: "kiln-test".into(),
    }
}

/// Runs a step and returns its outcome and output lines.
fn run_step(spec: &RunSpec, rootfs: &Rootfs, isolation: Isolation) -> (RunOutcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = run(spec, rootfs, isolation, &mut |l: OutputLine| {
        lines.push(l.text)
    })
    .unwrap_or_else(|e| panic!("run failed: {e} ({e:?})"));
    (outcome, lines)
}

fn stdout_of(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// What a test compares in an entry: everything but the mtime, with file contents read.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Seen {
    path: String,
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn seen(entries: &[Entry]) -> Vec<Seen> {
    entries
        .iter()
        .map(|e| Seen {
            path: e.path.clone(),
            kind: match &e.kind {
                EntryKind::File(Content::Path(p)) => {
                    format!(
                        "file {:?}",
                        String::from_utf8_lossy(&std::fs::read(p).unwrap())
                    )
                }
                EntryKind::File(Content::Bytes(b)) => {
                    format!("file {:?}", String::from_utf8_lossy(b))
                }
                EntryKind::Dir => "dir".into(),
                EntryKind::Symlink(t) => format!("symlink {t}"),
                EntryKind::Hardlink(t) => format!("hardlink {t}"),
                other => format!("{other:?}"),
            },
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            xattrs: e.xattrs.clone(),
        })
        .collect()
}

fn expect(path: &str, kind: &str, mode: u32) -> Seen {
    Seen {
        path: path.into(),
        kind: kind.into(),
        mode,
        uid: 0,
        gid: 0,
        xattrs: BTreeMap::new(),
    }
}

const WHITEOUT: &str = "file \"\"";

// ---------------------------------------------------------------------------------------------
// Tests

fn detects_namespace_isolation() {
    assert_eq!(detect_isolation(), Isolation::Namespace);
}

/// The script every layer test runs: a new file, a deleted base file, a new symlink, a
/// directory replaced by a symlink, a symlink replaced by a directory, a hard link, setuid.
const CHANGES: &str = "set -e
echo hi > /a
rm /bin/true
ln -s /tmp /link
rm -rf /home/app && ln -s /tmp /home/app
rm /bin/ash && mkdir /bin/ash && echo x > /bin/ash/f
echo data > /hl1 && ln /hl1 /hl2
chmod u+s /etc/group";

fn expected_changes() -> Vec<Seen> {
    vec![
        expect("a", "file \"hi\\n\"", 0o644),
        expect("bin", "dir", 0o755),
        expect("bin/.wh.true", WHITEOUT, 0o644),
        expect("bin/ash", "dir", 0o755),
        expect("bin/ash/.wh..wh..opq", WHITEOUT, 0o644),
        expect("bin/ash/f", "file \"x\\n\"", 0o644),
        expect("etc", "dir", 0o755),
        expect(
            "etc/group",
            &format!("file {:?}", busybox_file("etc/group")),
            0o4644,
        ),
        expect("hl1", "file \"data\\n\"", 0o644),
        expect("hl2", "hardlink hl1", 0o644),
        expect("home", "dir", 0o755),
        expect("home/app", "symlink /tmp", 0o777),
        expect("link", "symlink /tmp", 0o777),
    ]
}

fn busybox_file(rel: &str) -> String {
    String::from_utf8(std::fs::read(busybox_lower().join(rel)).unwrap()).unwrap()
}

fn layer_of_create_delete_links_setuid() {
    let (_dir, rootfs) = overlay_root();
    let (outcome, lines) = run_step(&shell(CHANGES), &rootfs, Isolation::Namespace);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    let entries = upper_to_entries(upper_of(&rootfs)).unwrap();
    assert_eq!(seen(&entries), expected_changes());
    if let Rootfs::Overlay { work, .. } = &rootfs {
        assert_eq!(
            std::fs::read_dir(work).unwrap().count(),
            0,
            "work dir emptied"
        );
    }
}

fn read_only_step_gives_empty_layer() {
    let (_dir, rootfs) = overlay_root();
    let (outcome, lines) = run_step(
        &shell("cat /etc/resolv.conf; echo --; cat /etc/hosts; ls /dev > /dev/null; hostname"),
        &rootfs,
        Isolation::Namespace,
    );
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    let out = stdout_of(&lines).join("\n");
    let host = format!(
        "{}\n--\n{}\nkiln-test",
        std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .trim_end(),
        std::fs::read_to_string("/etc/hosts")
            .unwrap_or_default()
            .trim_end()
    );
    assert_eq!(out.trim_start(), host.trim_start());
    let entries = upper_to_entries(upper_of(&rootfs)).unwrap();
    assert_eq!(
        seen(&entries),
        vec![],
        "mount targets must not reach the layer"
    );
}

fn interfaces(lines: &[String]) -> Vec<String> {
    // /proc/net/dev: two header lines, then "  name: counters…".
    stdout_of(lines)
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .collect()
}

fn network_none_has_only_loopback() {
    let (_dir, rootfs) = overlay_root();
    let mut spec = shell("cat /proc/net/dev");
    spec.network = Network::None;
    let (outcome, lines) = run_step(&spec, &rootfs, Isolation::Namespace);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    assert_eq!(interfaces(&lines), vec!["lo".to_owned()]);

    let (_dir, rootfs) = overlay_root();
    let (_, lines) = run_step(&shell("cat /proc/net/dev"), &rootfs, Isolation::Namespace);
    assert!(
        interfaces(&lines).iter().any(|i| i != "lo"),
        "host network has more than lo: {lines:?}"
    );
}

fn proc_is_the_steps_own() {
    let (_dir, rootfs) = overlay_root();
    let (outcome, lines) = run_step(
        &shell("echo $$; grep '^Pid:' /proc/self/status; ps -o pid,comm | wc -l"),
        &rootfs,
        Isolation::Namespace,
    );
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    let out = stdout_of(&lines);
    assert_eq!(out[0], "1", "the command is PID 1 of its own namespace");
    assert!(out[1].starts_with("Pid:"), "{out:?}");
    let pid: u32 = out[1].trim_start_matches("Pid:").trim().parse().unwrap();
    assert!(pid > 1 && pid < 10, "{out:?}");
    // ps sees only the step: a header, sh, ps, wc (and maybe a subshell).
    let ps_lines: u32 = out[2].trim().parse().unwrap();
    assert!(ps_lines <= 6, "{out:?}");
    assert_eq!(seen(&upper_to_entries(upper_of(&rootfs)).unwrap()), vec![]);
}

fn volume_is_visible_read_only_and_not_in_layer() {
    let host = scratch();
    let bundle = host.path().join("ca.crt");
    std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\ntest\n").unwrap();
    let dir_volume = host.path().join("dir");
    std::fs::create_dir(&dir_volume).unwrap();
    std::fs::write(dir_volume.join("inside"), "in a dir\n").unwrap();
    let (_dir, rootfs) = overlay_root();
    let mut spec = shell(
        "cat /etc/ssl/certs/ca-certificates.crt; cat /mnt/vol/inside
         if echo x > /etc/ssl/certs/ca-certificates.crt; then echo writable; else echo read-only; fi",
    );
    spec.mounts = vec![
        BindMount {
            host: bundle.clone(),
            target: "/etc/ssl/certs/ca-certificates.crt".into(),
            read_only: true,
        },
        BindMount {
            host: dir_volume,
            target: "/mnt/vol".into(),
            read_only: true,
        },
    ];
    let (outcome, lines) = run_step(&spec, &rootfs, Isolation::Namespace);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    assert_eq!(
        stdout_of(&lines),
        vec![
            "-----BEGIN CERTIFICATE-----",
            "test",
            "in a dir",
            "/bin/sh: can't create /etc/ssl/certs/ca-certificates.crt: Read-only file system",
            "read-only"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&bundle).unwrap(),
        "-----BEGIN CERTIFICATE-----\ntest\n"
    );
    assert_eq!(seen(&upper_to_entries(upper_of(&rootfs)).unwrap()), vec![]);
}

fn failing_command_reports_code_and_last_lines() {
    let (_dir, rootfs) = overlay_root();
    let script = "for i in $(seq 1 15); do echo line $i; done; echo oops >&2; exit 3";
    let (outcome, lines) = run_step(&shell(script), &rootfs, Isolation::Namespace);
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(lines.len(), 16);
    let expected: Vec<String> = (7..=15)
        .map(|i| format!("line {i}"))
        .chain(["oops".to_owned()])
        .collect();
    assert_eq!(outcome.last_lines, expected, "stdout and stderr in order");
}

fn missing_shell_is_a_clear_error() {
    let (_dir, rootfs) = overlay_root();
    let mut spec = shell("true");
    spec.args[0] = "/bin/bash".into();
    let err = run(&spec, &rootfs, Isolation::Namespace, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, SandboxError::ProgramNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "/bin/bash: not found in the image; set SHELL or use exec form"
    );
    // Nothing left behind: the failed step's layer is empty.
    assert_eq!(seen(&upper_to_entries(upper_of(&rootfs)).unwrap()), vec![]);

    let mut spec = shell("true");
    spec.args = vec!["python3".into(), "-c".into(), "pass".into()];
    let err = run(&spec, &rootfs, Isolation::Namespace, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "python3: not found in the image; set SHELL or use exec form"
    );
}

fn failed_setup_cleans_up_and_names_the_mount() {
    let (_dir, rootfs) = overlay_root();
    let mut spec = shell("true");
    spec.mounts = vec![BindMount {
        host: "/nonexistent/kiln-volume".into(),
        target: "/srv/data/volume".into(),
        read_only: true,
    }];
    let err = run(&spec, &rootfs, Isolation::Namespace, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sandbox setup failed to bind-mount `/nonexistent/kiln-volume` on `/srv/data/volume`"
    );
    let SandboxError::Setup { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(seen(&upper_to_entries(upper_of(&rootfs)).unwrap()), vec![]);
    if let Rootfs::Overlay { work, .. } = &rootfs {
        assert_eq!(std::fs::read_dir(work).unwrap().count(), 0);
    }
}

fn runs_as_user_in_created_workdir() {
    let (_dir, rootfs) = overlay_root();
    let mut spec = shell("id -u; id -g; id -G; pwd; touch mine");
    spec.uid = 1000;
    spec.gid = 1000;
    spec.additional_gids = vec![1000, 20];
    spec.cwd = "/home/app/work".into();
    let (outcome, lines) = run_step(&spec, &rootfs, Isolation::Namespace);
    assert_eq!(
        outcome.exit_code, 1,
        "touch fails: the created workdir is root's; {lines:?}"
    );
    assert_eq!(
        stdout_of(&lines),
        vec![
            "1000",
            "1000",
            "1000 20",
            "/home/app/work",
            "touch: mine: Permission denied"
        ]
    );
    let mut app = expect("home/app", "dir", 0o755);
    app.uid = 1000;
    app.gid = 1000;
    assert_eq!(
        seen(&upper_to_entries(upper_of(&rootfs)).unwrap()),
        vec![
            expect("home", "dir", 0o755),
            app,
            expect("home/app/work", "dir", 0o755)
        ]
    );
}

fn namespace_and_chroot_give_the_same_layer() {
    let (_dir, rootfs) = overlay_root();
    let (outcome, lines) = run_step(&shell(CHANGES), &rootfs, Isolation::Namespace);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    let from_overlay = seen(&upper_to_entries(upper_of(&rootfs)).unwrap());

    let dir = scratch();
    let root = dir.path().join("root");
    extract_busybox(&root);
    let snapshot = Snapshot::take(&root).unwrap();
    let chroot = Rootfs::Chroot { dir: root.clone() };
    let (outcome, lines) = run_step(&shell(CHANGES), &chroot, Isolation::Chroot);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    let from_chroot = seen(&snapshot.diff(&root).unwrap());

    assert_eq!(from_chroot, from_overlay);
    assert_eq!(from_chroot, expected_changes());
}

fn chroot_leaves_no_injected_files() {
    let dir = scratch();
    let root = dir.path().join("root");
    extract_busybox(&root);
    let host = scratch();
    let bundle = host.path().join("ca.crt");
    std::fs::write(&bundle, "bundle\n").unwrap();
    let snapshot = Snapshot::take(&root).unwrap();
    let mut spec =
        shell("cat /etc/resolv.conf > /dev/null; cat /etc/ssl/ca.crt; echo x > /dev/null");
    spec.mounts = vec![BindMount {
        host: bundle,
        target: "/etc/ssl/ca.crt".into(),
        read_only: true,
    }];
    let chroot = Rootfs::Chroot { dir: root.clone() };
    let (outcome, lines) = run_step(&spec, &chroot, Isolation::Chroot);
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    assert_eq!(stdout_of(&lines), vec!["bundle"]);
    assert_eq!(seen(&snapshot.diff(&root).unwrap()), vec![]);
    assert!(!root.join("dev").exists() && !root.join("etc/resolv.conf").exists());
}

/// Not root: a user namespace maps the image's root to the caller, so the lower dir is
/// extracted by the caller (owning everything) and the layer shows root's ids.
fn rootless_layer() {
    let dir = tempfile::Builder::new()
        .prefix("kiln-rootless-")
        .tempdir()
        .unwrap();
    let lower = dir.path().join("lower");
    std::fs::create_dir(&lower).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(busybox_layer_blob())
        .arg("-C")
        .arg(&lower)
        .status()
        .unwrap();
    assert!(status.success());
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let rootfs = Rootfs::Overlay {
        lowers: vec![lower],
        upper: upper.clone(),
        work,
    };
    let (outcome, lines) = run_step(
        &shell(
            "set -e; id -u; cat /etc/resolv.conf > /dev/null; echo hi > /a; rm /bin/true; rm -rf /home/app",
        ),
        &rootfs,
        Isolation::Namespace,
    );
    assert_eq!(outcome.exit_code, 0, "{lines:?}");
    assert_eq!(lines, vec!["0"]);
    assert_eq!(
        seen(&upper_to_entries(&upper).unwrap()),
        vec![
            expect("a", "file \"hi\\n\"", 0o644),
            expect("bin", "dir", 0o755),
            expect("bin/.wh.true", WHITEOUT, 0o644),
            expect("home", "dir", 0o755),
            expect("home/.wh.app", WHITEOUT, 0o644),
        ]
    );
}
