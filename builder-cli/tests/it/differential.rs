//! Differential tests: kiln (in both isolations) and buildah build the same Dockerfiles
//! (`testdata/differential/<case>`) over the same busybox base, and the images must agree. Both
//! images are flattened by umoci, so neither tool's reader judges its own output, and compared
//! path by path (type, mode with the special bits, owner, size, content, link target, hard-link
//! groups), then on the runtime part of their configs. Every difference tolerated is in
//! [`buildah_only_exclusion`] or [`comparable_config`], with the reason it is legitimate.
//!
//! buildah is Debian's package (`scripts/install-test-deps.sh`), run as root with chroot isolation,
//! the vfs driver and a storage root inside the test's sandbox, so the host's image storage is
//! never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::args;
use crate::common::{Sandbox, json, manifest_and_config, run, testdata, tool, unpack};

/// The isolations kiln is built with; buildah's image is compared with each.
const ISOLATIONS: [&str; 2] = ["namespace", "chroot"];

/// The offline busybox base (`scripts/registry/busybox-layout.sh`): an OCI layout holding
/// `busybox:latest`.
fn busybox_layout() -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry/busybox-layout.sh");
    let out = run(Command::new("bash").arg(&script)).success();
    PathBuf::from(out.stdout.trim())
}

/// Builds `case` with kiln and returns the OCI layout it wrote, holding `diff:<case>`.
fn kiln_image(sb: &Sandbox, case: &str, isolation: &str) -> PathBuf {
    let out = sb.path(&format!("kiln-{isolation}"));
    sb.build(args![
        "-q",
        "--isolation",
        isolation,
        "--cache-dir",
        sb.path("kiln-cache"),
        "-t",
        format!("diff:{case}"),
        "--output",
        format!("type=oci,dest={}", out.display()),
        testdata(&format!("differential/{case}"))
    ])
    .success();
    out
}

/// `buildah` confined to the sandbox: its own storage root and run root, and the vfs driver
/// (no overlay mounts to leak, works on any backing filesystem).
fn buildah(sb: &Sandbox) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("buildah").is_file()));
    assert!(
        found,
        "buildah is not installed: run scripts/install-test-deps.sh"
    );
    let mut cmd = Command::new("buildah");
    cmd.arg("--root")
        .arg(sb.path("buildah/root"))
        .arg("--runroot")
        .arg(sb.path("buildah/runroot"))
        .args(["--storage-driver", "vfs"])
        .env("BUILDAH_ISOLATION", "chroot")
        .stdin(Stdio::null());
    cmd
}

/// Runs a buildah command that must succeed; returns its stdout.
#[track_caller]
fn buildah_ok(sb: &Sandbox, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = buildah(sb);
    cmd.args(args);
    let out = run(&mut cmd);
    assert_eq!(
        out.code, 0,
        "buildah failed: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// What buildah made of `case`: the OCI layout it pushed (`diff:<case>`) and the `Shell` its
/// Docker-format config recorded.
struct BuildahImage {
    layout: PathBuf,
    shell: Value,
}

/// Builds `case` with buildah over the same busybox base kiln uses, named `busybox:latest` in
/// buildah's private storage so the Dockerfiles stay identical for both tools.
fn buildah_image(sb: &Sandbox, case: &str) -> BuildahImage {
    let base = format!("oci:{}:busybox:latest", busybox_layout().display());
    buildah_ok(sb, args!["pull", "--quiet", base]);
    let pulled = buildah_ok(sb, args!["images", "--quiet", "--no-trunc"]);
    let id = pulled.lines().next().unwrap().trim().to_string();
    buildah_ok(sb, args!["tag", id, "busybox:latest"]);

    let name = format!("diff:{case}");
    let context = testdata(&format!("differential/{case}"));
    // `--format docker` so SHELL is recorded: the OCI config has no field for it and buildah
    // drops it from OCI images, while kiln (as Docker) keeps it as a Docker extension.
    buildah_ok(
        sb,
        args![
            "build",
            "--isolation",
            "chroot",
            "--layers=false",
            "--pull=never",
            "--format",
            "docker",
            "-f",
            context.join("Dockerfile"),
            "-t",
            name,
            context
        ],
    );
    let layout = sb.path("buildah-oci");
    buildah_ok(
        sb,
        args![
            "push",
            "--quiet",
            name,
            format!("oci:{}:{name}", layout.display())
        ],
    );
    let inspected = json(&buildah_ok(sb, args!["inspect", "--type", "image", name]));
    BuildahImage {
        layout,
        shell: inspected["Docker"]["config"]["Shell"].clone(),
    }
}

/// One entry of a flattened filesystem, with what a user of the image can observe (times
/// aside: see [`compare_trees`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    /// Permission and special bits (`st_mode & 0o7777`).
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files only; directory sizes depend on the filesystem umoci unpacked onto.
    size: u64,
    /// File contents or symlink target.
    data: Vec<u8>,
}

impl Entry {
    fn describe(&self) -> String {
        let mut s = format!("{} {:04o} {}:{}", self.kind, self.mode, self.uid, self.gid);
        match self.kind {
            "file" => write!(s, " {} bytes", self.size).unwrap(),
            "symlink" => write!(s, " -> {}", String::from_utf8_lossy(&self.data)).unwrap(),
            _ => {}
        }
        s
    }
}

/// A flattened image: every entry by path, and the sets of paths that are one file (hard links).
struct Flattened {
    entries: BTreeMap<String, Entry>,
    hardlinks: BTreeSet<Vec<String>>,
}

fn flatten(root: &Path) -> Flattened {
    fn walk(
        root: &Path,
        dir: &Path,
        entries: &mut BTreeMap<String, Entry>,
        inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
    ) {
        for dirent in fs::read_dir(dir).unwrap() {
            let path = dirent.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = meta.file_type();
            let (kind, data) = if ft.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                ("symlink", target.into_os_string().into_encoded_bytes())
            } else if ft.is_file() {
                ("file", fs::read(&path).unwrap())
            } else if ft.is_dir() {
                ("dir", Vec::new())
            } else {
                ("special", Vec::new())
            };
            if ft.is_file() && meta.nlink() > 1 {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            entries.insert(
                rel,
                Entry {
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    size: if ft.is_file() { meta.len() } else { 0 },
                    data,
                },
            );
            if ft.is_dir() {
                walk(root, &path, entries, inodes);
            }
        }
    }
    let mut entries = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    walk(root, root, &mut entries, &mut inodes);
    let hardlinks = inodes
        .into_values()
        .map(|mut paths| {
            paths.sort();
            paths
        })
        .collect();
    Flattened { entries, hardlinks }
}

/// Why an entry only buildah's image has may be left out of the comparison; `None` when it must
/// not be. Each exclusion is narrow (a named path, and only in the empty form buildah leaves), so a
/// step that really writes there is still compared.
fn buildah_only_exclusion(path: &str, entry: &Entry, volumes: &[String]) -> Option<&'static str> {
    let empty_dir = entry.kind == "dir";
    let empty_file = entry.kind == "file" && entry.size == 0;
    match path {
        // buildah's chroot isolation creates these mount points in the rootfs it runs in and
        // commits them with the step; kiln mounts them outside the layer (issue: "/proc, /dev,
        // /sys, resolv.conf, hosts and mount points never appear in a layer"), as BuildKit does.
        "dev" | "proc" | "sys" | "run" if empty_dir => {
            Some("buildah commits the mount points of its RUN sandbox")
        }
        "etc/hosts" | "etc/resolv.conf" | "etc/hostname" if empty_file => {
            Some("buildah commits the bind-mount targets of its RUN sandbox")
        }
        // buildah creates VOLUME directories in the rootfs when a later RUN starts; kiln, as
        // BuildKit, records VOLUME in the config only, and runtimes create the directory.
        _ if empty_dir
            && volumes.iter().any(|v| {
                let v = v.trim_start_matches('/');
                v == path || v.starts_with(&format!("{path}/"))
            }) =>
        {
            Some("buildah creates VOLUME directories for its RUN steps")
        }
        _ => None,
    }
}

/// Lists every difference between two flattened images (empty when they agree) and the entries
/// left out, with the reason. Modification times are not compared: both tools stamp what a step
/// writes with the wall clock of the build.
fn compare_trees(
    kiln: &Flattened,
    buildah: &Flattened,
    volumes: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut diffs = Vec::new();
    let mut skipped = Vec::new();
    let paths: BTreeSet<&String> = kiln.entries.keys().chain(buildah.entries.keys()).collect();
    for path in paths {
        match (kiln.entries.get(path), buildah.entries.get(path)) {
            (Some(k), None) => diffs.push(format!("/{path}: only kiln has it ({})", k.describe())),
            (None, Some(b)) => match buildah_only_exclusion(path, b, volumes) {
                Some(why) => skipped.push(format!("/{path}: {why}")),
                None => diffs.push(format!("/{path}: only buildah has it ({})", b.describe())),
            },
            (Some(k), Some(b)) if k != b => {
                let content = if k.kind == "file" && b.kind == "file" && k.data != b.data {
                    format!(
                        "; contents differ: kiln {:?}, buildah {:?}",
                        preview(&k.data),
                        preview(&b.data)
                    )
                } else {
                    String::new()
                };
                diffs.push(format!(
                    "/{path}: kiln {} but buildah {}{content}",
                    k.describe(),
                    b.describe()
                ));
            }
            _ => {}
        }
    }
    for group in kiln.hardlinks.difference(&buildah.hardlinks) {
        diffs.push(format!("hard links only kiln has: {group:?}"));
    }
    for group in buildah.hardlinks.difference(&kiln.hardlinks) {
        diffs.push(format!("hard links only buildah has: {group:?}"));
    }
    (diffs, skipped)
}

fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(80)]).into_owned();
    if data.len() > 80 { text + "…" } else { text }
}

/// The runtime part of an image config, as both tools should write it. Left out by design:
/// `created`, `history` (free text, per-step timestamps) and `rootfs` (kiln writes a layer per
/// step, buildah `--layers=false` one for the whole build: only the flattened result is
/// comparable); from buildah's labels, `io.buildah.version`, which buildah stamps on every image.
fn comparable_config(config: &Value) -> BTreeMap<&'static str, Value> {
    let c = &config["config"];
    let mut out = BTreeMap::new();
    for field in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Labels",
        "Volumes",
        "StopSignal",
        "Shell",
    ] {
        let mut value = c[field].clone();
        // As a name -> value map: buildah moves a redefined variable to the end of `Env`, while
        // kiln (as Docker and BuildKit) replaces it in place. Names are unique either way, so
        // the order changes nothing a container sees.
        if field == "Env"
            && let Some(vars) = value.as_array()
        {
            let map: serde_json::Map<String, Value> = vars
                .iter()
                .filter_map(Value::as_str)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), Value::from(v))
                })
                .collect();
            assert_eq!(map.len(), vars.len(), "duplicate names in Env: {value}");
            value = Value::Object(map);
        }
        if field == "Labels"
            && let Some(labels) = value.as_object_mut()
        {
            labels.remove("io.buildah.version");
        }
        // Absent, null and empty say the same thing: nothing set.
        let empty = match &value {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        out.insert(field, if empty { Value::Null } else { value });
    }
    out
}

/// Builds `case` three ways and asserts that kiln's images match buildah's.
fn differential(case: &str) {
    let sb = Sandbox::new();
    let layout = busybox_layout();
    tool(
        "skopeo",
        args![
            "copy",
            "--quiet",
            format!("oci:{}:busybox:latest", layout.display()),
            format!("oci:{}:busybox:latest", sb.store().display())
        ],
    );
    let reference = format!("diff:{case}");

    let theirs = buildah_image(&sb, case);
    let buildah_root = unpack(&theirs.layout, &reference, &sb.path("bundle-buildah"));
    let buildah_tree = flatten(&buildah_root);
    let (_, mut buildah_config) = manifest_and_config(&theirs.layout, &reference);
    buildah_config["config"]["Shell"] = theirs.shell;
    let buildah_view = comparable_config(&buildah_config);
    let volumes: Vec<String> = buildah_view["Volumes"]
        .as_object()
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();

    let mut failures = Vec::new();
    for isolation in ISOLATIONS {
        let ours = kiln_image(&sb, case, isolation);
        let root = unpack(&ours, &reference, &sb.path(&format!("bundle-{isolation}")));
        let tree = flatten(&root);
        let (diffs, skipped) = compare_trees(&tree, &buildah_tree, &volumes);
        eprintln!(
            "{case} ({isolation}): {} paths in kiln's image, {} in buildah's, {} differences; \
             left out: {skipped:?}",
            tree.entries.len(),
            buildah_tree.entries.len(),
            diffs.len()
        );
        for d in diffs {
            failures.push(format!("[{isolation}] {d}"));
        }
        let (_, config) = manifest_and_config(&ours, &reference);
        let view = comparable_config(&config);
        for (field, value) in &view {
            let theirs = &buildah_view[field];
            if value != theirs {
                failures.push(format!(
                    "[{isolation}] config {field}: kiln {value}, buildah {theirs}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kiln and buildah disagree on `{case}`:\n{}",
        failures.join("\n")
    );
}

#[test]
fn filesystem_changes_match_buildah() {
    differential("filesystem");
}

#[test]
fn users_workdir_and_shell_match_buildah() {
    differential("users");
}

#[test]
fn copy_and_config_match_buildah() {
    differential("copy-config");
}
