//! The layer cache, seen from the command line: which steps hit and which miss, the reason each
//! miss gives (`--report`, `--explain`), that a hit is the very layer a build made, that a
//! cached step runs and unpacks nothing, and that concurrent or killed builds never leave an
//! entry that gives a wrong image.
//!
//! Builds use `--source-date-epoch` so that two builds of the same inputs must give the same
//! image digest: "the same image" is then checked by comparing digests with a build that used
//! no cache at all.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::args;
use crate::common::{Outcome, Sandbox, index_names, json, tool};

/// The `SOURCE_DATE_EPOCH` every build here uses unless a test says otherwise.
const EPOCH: &str = "1700000000";

/// A sandbox with a build context and a cache directory (`<sandbox>/cache`), whose builds each
/// write a report to read back.
struct Project {
    sb: Sandbox,
    ctx: PathBuf,
    reports: Cell<usize>,
}

impl Project {
    /// A context holding `dockerfile` and `files`, over an empty store.
    fn new(dockerfile: &str, files: &[(&str, &str)]) -> Project {
        let sb = Sandbox::new();
        let ctx = sb.path("ctx");
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let project = Project {
            sb,
            ctx,
            reports: Cell::new(0),
        };
        for (path, content) in files {
            project.write(path, content);
        }
        project
    }

    /// Like [`Project::new`], with the offline busybox image in the store as `busybox:latest`,
    /// for RUN steps.
    fn with_busybox(dockerfile: &str, files: &[(&str, &str)]) -> Project {
        let project = Project::new(dockerfile, files);
        tool(
            "skopeo",
            args![
                "copy",
                "--quiet",
                format!(
                    "oci:{}:busybox:latest",
                    crate::support::busybox_layout().display()
                ),
                format!("oci:{}:busybox:latest", project.sb.store().display())
            ],
        );
        project
    }

    /// A context file (parents created); 0644 whatever the umask.
    fn write(&self, rel: &str, content: &str) {
        let path = self.ctx.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn cache_dir(&self) -> PathBuf {
        self.sb.path("cache")
    }

    /// `kiln build` of `ctx` with this project's cache and store, `--source-date-epoch`, a new
    /// report file and `--explain`, then `extra`; it must succeed.
    fn build_in(&self, ctx: &Path, extra: &[&OsStr]) -> Built {
        let n = self.reports.get() + 1;
        self.reports.set(n);
        let report = self.sb.path(&format!("report-{n}.json"));
        let cache = self.cache_dir();
        let mut all: Vec<&OsStr> = args![
            "--cache-dir",
            cache,
            "--source-date-epoch",
            EPOCH,
            "--explain",
            "--report",
            report
        ]
        .to_vec();
        all.extend_from_slice(extra);
        all.push(ctx.as_os_str());
        let outcome = self.sb.build(&all).success();
        Built::read(outcome, &report)
    }

    fn build(&self, extra: &[&OsStr]) -> Built {
        self.build_in(&self.ctx, extra)
    }

    /// The manifest digest of a build of `ctx` from nothing: a fresh cache directory, no cache
    /// used, the same `--source-date-epoch`.
    fn uncached_digest(&self, ctx: &Path, extra: &[&OsStr]) -> String {
        let n = self.reports.get() + 1;
        self.reports.set(n);
        let cache = self.sb.path(&format!("fresh-cache-{n}"));
        let mut all: Vec<&OsStr> = args![
            "-q",
            "--no-cache",
            "--cache-dir",
            cache,
            "--source-date-epoch",
            EPOCH
        ]
        .to_vec();
        all.extend_from_slice(extra);
        all.push(ctx.as_os_str());
        self.sb.build(&all).success().digest()
    }
}

/// A finished build: what it printed and the report it wrote.
struct Built {
    outcome: Outcome,
    report: Value,
}

impl Built {
    fn read(outcome: Outcome, report: &Path) -> Built {
        let report = json(&fs::read_to_string(report).unwrap());
        let built = Built { outcome, report };
        assert_eq!(
            built.outcome.digest(),
            built.digest(),
            "stdout and the report name the same image"
        );
        built
    }

    fn digest(&self) -> String {
        self.report["image"]["digest"].as_str().unwrap().to_string()
    }

    fn steps(&self) -> &Vec<Value> {
        self.report["steps"].as_array().unwrap()
    }

    /// Each step's `cache` field: `hit`, `miss` or `n/a`.
    fn cache(&self) -> Vec<&str> {
        self.steps()
            .iter()
            .map(|s| s["cache"].as_str().unwrap())
            .collect()
    }

    /// Each step's reason message (`None` for hits and steps that make no layer).
    fn reasons(&self) -> Vec<Option<&str>> {
        self.steps()
            .iter()
            .map(|s| s["reason"]["message"].as_str())
            .collect()
    }

    /// Each step's layer blob digest.
    fn layers(&self) -> Vec<Option<&str>> {
        self.steps()
            .iter()
            .map(|s| s["layer"]["digest"].as_str())
            .collect()
    }

    /// The reason object of step `number` (1-based).
    fn reason(&self, number: usize) -> &Value {
        &self.steps()[number - 1]["reason"]
    }

    fn stderr_lines(&self) -> Vec<&str> {
        self.outcome.stderr.lines().collect()
    }

    /// The lines `--explain` printed, in step order.
    fn explained(&self) -> Vec<&str> {
        self.stderr_lines()
            .into_iter()
            .filter(|l| l.contains("] ") && (l.contains(": hit (") || l.contains(": miss: ")))
            .collect()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A digest as reasons show it: `sha256:` and the first 12 hex digits, then `…`.
fn short(digest: &str) -> String {
    format!("{}…", &digest[..19])
}

/// Sets the modification time of every file and directory under `dir` (and `dir` itself).
fn touch_all(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            touch_all(&path, when);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
    fs::File::open(dir).unwrap().set_modified(when).unwrap();
}

/// The entry names of a gzip layer blob in `store`.
fn layer_entries(store: &Path, digest: &str) -> Vec<String> {
    let blob = store
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    tool("tar", args!["-tzf", blob])
        .lines()
        .map(str::to_string)
        .collect()
}

const APP: &str = "FROM busybox:latest
COPY base.txt /base.txt
RUN cat /base.txt > /copied.txt
ENV MODE=test
COPY src/ /app/
RUN ls /app > /listing.txt
";

fn app() -> Project {
    Project::with_busybox(
        APP,
        &[
            ("base.txt", "base\n"),
            ("src/main.py", "print('hi')\n"),
            ("src/lib/util.py", "X = 1\n"),
        ],
    )
}

#[test]
fn an_unchanged_rebuild_hits_every_step_and_gives_the_same_image() {
    let p = app();
    let first = p.build(args![]);
    assert_eq!(first.cache(), ["miss", "miss", "n/a", "miss", "miss"]);
    assert_eq!(
        first.reasons(),
        [
            Some("not in cache"),
            Some("parent step 1 missed"),
            None,
            Some("parent step 1 missed"),
            Some("parent step 1 missed"),
        ]
    );
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "hit", "n/a", "hit", "hit"]);
    assert_eq!(second.reasons(), [None; 5]);
    assert_eq!(second.digest(), first.digest());
    assert_eq!(second.digest(), p.uncached_digest(&p.ctx, args![]));
    assert_eq!(
        second.explained(),
        [
            "#1 [stage-0 line 2] COPY base.txt /base.txt: hit (local)",
            "#2 [stage-0 line 3] RUN /bin/sh -c cat /base.txt > /copied.txt: hit (local)",
            "#4 [stage-0 line 5] COPY src/ /app/: hit (local)",
            "#5 [stage-0 line 6] RUN /bin/sh -c ls /app > /listing.txt: hit (local)",
        ]
    );
    for n in [1, 2, 4, 5] {
        assert!(
            second
                .stderr_lines()
                .iter()
                .any(|l| l.starts_with(&format!("#{n} CACHED "))),
            "step {n} shows as CACHED:\n{}",
            second.outcome.stderr
        );
    }
    let reused: u64 = second
        .steps()
        .iter()
        .filter_map(|s| s["layer"]["size"].as_u64())
        .sum();
    assert!(reused < 1000, "small layers, shown in bytes: {reused}");
    let summary = *second.stderr_lines().last().unwrap();
    let expected =
        format!("5 steps: 4 cached, 0 built (100% hit rate); {reused} B reused, 0 B built; ");
    assert!(
        summary.starts_with(&expected) && summary.ends_with('s'),
        "{summary:?} should start with {expected:?}"
    );
}

#[test]
fn new_mtimes_on_every_context_file_still_hit() {
    let p = app();
    let first = p.build(args![]);
    touch_all(&p.ctx, SystemTime::now() + Duration::from_secs(3600));
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "hit", "n/a", "hit", "hit"]);
    assert_eq!(second.layers(), first.layers());
    touch_all(
        &p.ctx,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    assert_eq!(
        p.build(args![]).cache(),
        ["hit", "hit", "n/a", "hit", "hit"]
    );
}

#[test]
fn a_changed_file_misses_from_its_copy_on_and_the_reason_names_it() {
    let p = app();
    let first = p.build(args![]);
    p.write("src/lib/util.py", "X = 2\n");
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "hit", "n/a", "miss", "miss"]);
    let (old, new) = (sha256(b"X = 1\n"), sha256(b"X = 2\n"));
    let message = format!(
        "file `src/lib/util.py` changed: {} → {}",
        short(&old),
        short(&new)
    );
    assert_eq!(
        second.reasons(),
        [
            None,
            None,
            None,
            Some(message.as_str()),
            Some("parent step 4 missed"),
        ]
    );
    assert_eq!(
        second.reason(4),
        &serde_json::json!({
            "kind": "file_changed",
            "path": "src/lib/util.py",
            "old": old,
            "new": new,
            "message": message,
        })
    );
    assert_eq!(
        second.reason(5),
        &serde_json::json!({"kind": "parent_missed", "step": 4, "message": "parent step 4 missed"})
    );
    assert_eq!(second.layers()[..2], first.layers()[..2]);
    assert_ne!(second.layers()[3], first.layers()[3]);
    assert_eq!(
        second.explained()[2],
        format!("#4 [stage-0 line 5] COPY src/ /app/: miss: {message}")
    );
    assert_eq!(second.digest(), p.uncached_digest(&p.ctx, args![]));

    p.write("src/new.py", "");
    let third = p.build(args![]);
    assert_eq!(third.reasons()[3], Some("file `src/new.py` was added"));
    fs::remove_file(p.ctx.join("src/main.py")).unwrap();
    let fourth = p.build(args![]);
    assert_eq!(fourth.reasons()[3], Some("file `src/main.py` was removed"));
}

#[test]
fn a_hard_link_in_the_context_is_keyed_as_a_link_and_stays_one_in_the_layer() {
    let p = Project::new(
        "FROM scratch\nCOPY files/ /files/\n",
        &[("files/a.txt", "one\n")],
    );
    fs::hard_link(p.ctx.join("files/a.txt"), p.ctx.join("files/b.txt")).unwrap();
    let first = p.build(args![]);
    assert_eq!(first.cache(), ["miss"]);
    let listing = tool(
        "tar",
        args![
            "-tvzf",
            p.sb.store()
                .join("blobs/sha256")
                .join(first.layers()[0].unwrap().strip_prefix("sha256:").unwrap())
        ],
    );
    assert!(
        listing.contains("files/b.txt link to files/a.txt"),
        "{listing}"
    );
    assert_eq!(p.build(args![]).cache(), ["hit"]);

    // The same bytes as a file of its own make another layer, so another key.
    fs::remove_file(p.ctx.join("files/b.txt")).unwrap();
    p.write("files/b.txt", "one\n");
    let copied = p.build(args![]);
    assert_eq!(copied.cache(), ["miss"]);
    assert!(
        copied.reasons()[0].is_some_and(|r| r.contains("files/b.txt")),
        "{:?}",
        copied.reasons()
    );
    assert_eq!(copied.digest(), p.uncached_digest(&p.ctx, args![]));
}

#[test]
fn a_file_dockerignore_excludes_does_not_reach_the_key() {
    let p = Project::new(
        "FROM scratch\nCOPY . /app/\n",
        &[
            (".dockerignore", "ignored.txt\n*.log\n"),
            ("kept.txt", "kept\n"),
            ("ignored.txt", "one\n"),
        ],
    );
    let first = p.build(args![]);
    assert_eq!(first.cache(), ["miss"]);
    let layer = first.layers()[0].unwrap().to_string();
    let entries = layer_entries(&p.sb.store(), &layer);
    assert!(entries.contains(&"app/kept.txt".to_string()), "{entries:?}");
    assert!(
        !entries
            .iter()
            .any(|e| e.contains("ignored") || e.ends_with(".log")),
        "{entries:?}"
    );
    p.write("ignored.txt", "two, longer\n");
    p.write("debug.log", "new\n");
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit"]);
    assert_eq!(second.layers()[0], Some(layer.as_str()));
    p.write("kept.txt", "changed\n");
    let third = p.build(args![]);
    assert_eq!(third.cache(), ["miss"]);
    assert_eq!(
        third.reasons()[0].unwrap(),
        format!(
            "file `kept.txt` changed: {} → {}",
            short(&sha256(b"kept\n")),
            short(&sha256(b"changed\n"))
        )
    );
}

#[test]
fn a_mode_change_misses_unless_chmod_sets_the_mode() {
    let p = Project::new(
        "FROM scratch\nCOPY --chmod=755 fixed.sh /fixed.sh\nCOPY plain.sh /plain.sh\n",
        &[("fixed.sh", "echo fixed\n"), ("plain.sh", "echo plain\n")],
    );
    let first = p.build(args![]);
    for file in ["fixed.sh", "plain.sh"] {
        fs::set_permissions(p.ctx.join(file), fs::Permissions::from_mode(0o700)).unwrap();
    }
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "miss"]);
    assert_eq!(second.layers()[0], first.layers()[0]);
    assert_eq!(
        second.reason(2),
        &serde_json::json!({
            "kind": "file_changed",
            "path": "plain.sh",
            "old": "mode 644",
            "new": "mode 700",
            "message": "file `plain.sh` changed: mode 644 → mode 700",
        })
    );
    assert_eq!(second.digest(), p.uncached_digest(&p.ctx, args![]));
}

#[test]
fn a_changed_build_arg_misses_only_from_where_it_is_used() {
    let p = Project::with_busybox(
        "FROM busybox:latest
RUN echo one > /one
ARG VERSION=1
RUN echo \"$VERSION\" > /version
RUN cat /version > /again
ARG NAME=a.txt
ARG UNUSED=x
COPY ${NAME} /named.txt
",
        &[("a.txt", "a\n"), ("b.txt", "b\n")],
    );
    p.build(args![]);
    let second = p.build(args!["--build-arg", "VERSION=2"]);
    assert_eq!(
        second.cache(),
        ["hit", "n/a", "miss", "miss", "n/a", "n/a", "miss"]
    );
    assert_eq!(
        second.reason(3),
        &serde_json::json!({
            "kind": "arg_changed",
            "name": "VERSION",
            "old": "1",
            "new": "2",
            "message": "build arg `VERSION` changed: `1` → `2`",
        })
    );
    assert_eq!(second.reasons()[3], Some("parent step 3 missed"));
    assert_eq!(
        second.digest(),
        p.uncached_digest(&p.ctx, args!["--build-arg", "VERSION=2"])
    );

    let third = p.build(args![
        "--build-arg",
        "VERSION=2",
        "--build-arg",
        "NAME=b.txt"
    ]);
    assert_eq!(
        third.cache(),
        ["hit", "n/a", "hit", "hit", "n/a", "n/a", "miss"]
    );
    assert_eq!(
        third.reasons()[6],
        Some("build arg `NAME` changed: `a.txt` → `b.txt`")
    );

    // An edited instruction is reported as edited even when an arg in scope changed with it.
    let dockerfile = fs::read_to_string(p.ctx.join("Dockerfile")).unwrap();
    fs::write(
        p.ctx.join("Dockerfile"),
        dockerfile.replace("/named.txt", "/renamed.txt"),
    )
    .unwrap();
    let fourth = p.build(args![
        "--build-arg",
        "VERSION=2",
        "--build-arg",
        "NAME=b.txt",
        "--build-arg",
        "UNUSED=y"
    ]);
    assert_eq!(
        fourth.cache(),
        ["hit", "n/a", "hit", "hit", "n/a", "n/a", "miss"]
    );
    assert_eq!(
        fourth.reason(7),
        &serde_json::json!({
            "kind": "instruction_changed",
            "old": "COPY b.txt /named.txt",
            "new": "COPY b.txt /renamed.txt",
            "message": "instruction changed: `COPY b.txt /named.txt` → `COPY b.txt /renamed.txt`",
        })
    );
}

#[test]
fn a_new_base_image_misses_from_the_first_step_and_names_both_digests() {
    let p = Project::with_busybox(
        "FROM busybox:latest\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
        &[("a.txt", "a\n")],
    );
    p.build(args![]);
    assert_eq!(p.build(args![]).cache(), ["hit", "hit"]);
    let named = |name: &str| {
        index_names(&p.sb.store())
            .into_iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, d)| d)
            .unwrap()
    };
    let old = named("busybox:latest");
    let retag = p.sb.path("retag");
    fs::create_dir_all(&retag).unwrap();
    fs::write(
        retag.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo new > /new\n",
    )
    .unwrap();
    let new =
        p.sb.build(args![
            "-q",
            "--cache-dir",
            p.cache_dir(),
            "-t",
            "busybox:latest",
            &retag
        ])
        .success()
        .digest();
    assert_eq!(named("busybox:latest"), new);
    let rebuilt = p.build(args![]);
    assert_eq!(rebuilt.cache(), ["miss", "miss"]);
    let (old, new) = (
        format!("busybox:latest@{old}"),
        format!("busybox:latest@{new}"),
    );
    assert_eq!(
        rebuilt.reason(1),
        &serde_json::json!({
            "kind": "base_changed",
            "old": old,
            "new": new,
            "message": format!("base image changed: {old} → {new}"),
        })
    );
    assert_eq!(rebuilt.reasons()[1], Some("parent step 1 missed"));
}

#[test]
fn copy_from_a_stage_whose_input_changed_misses_and_names_the_stage() {
    let p = Project::with_busybox(
        "FROM busybox:latest AS build
COPY src.txt /src.txt
RUN cat /src.txt /src.txt > /out.txt

FROM busybox:latest
COPY other.txt /other.txt
COPY --from=build /out.txt /out.txt
",
        &[("src.txt", "v1\n"), ("other.txt", "other\n")],
    );
    let first = p.build(args![]);
    assert_eq!(first.cache(), ["miss", "miss", "miss", "miss"]);
    assert_eq!(p.build(args![]).cache(), ["hit", "hit", "hit", "hit"]);
    p.write("src.txt", "v2\n");
    let third = p.build(args![]);
    assert_eq!(third.cache(), ["miss", "miss", "hit", "miss"]);
    assert_eq!(
        third.reasons(),
        [
            Some(
                format!(
                    "file `src.txt` changed: {} → {}",
                    short(&sha256(b"v1\n")),
                    short(&sha256(b"v2\n"))
                )
                .as_str()
            ),
            Some("parent step 1 missed"),
            None,
            Some("stage `build` it copies from changed (step 1 missed)"),
        ]
    );
    assert_eq!(
        third.reason(4),
        &serde_json::json!({
            "kind": "source_stage_changed",
            "stage": "build",
            "step": 1,
            "message": "stage `build` it copies from changed (step 1 missed)",
        })
    );
    assert_eq!(third.digest(), p.uncached_digest(&p.ctx, args![]));
}

/// Starts `kiln build` in the background, its output piped and its temporary directories
/// under the sandbox's `tmp`, where a killed build's leftovers can be looked at.
fn spawn_build(sb: &Sandbox, args: &[&OsStr]) -> Child {
    let tmp = sb.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut cmd = sb.kiln();
    cmd.env("TMPDIR", tmp)
        .arg("build")
        .arg("--store")
        .arg(sb.store())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn finish(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn two_builds_at_once_on_one_cache_dir_are_both_right() {
    let dockerfile = "FROM busybox:latest
RUN echo common > /common && sleep 0.5
COPY a.txt /a.txt
RUN sleep 0.5 && cat /a.txt /common > /b.txt
";
    let p = Project::with_busybox(dockerfile, &[("a.txt", "first\n")]);
    let other = p.sb.path("ctx-other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("Dockerfile"), dockerfile).unwrap();
    fs::write(other.join("a.txt"), "second\n").unwrap();

    let contexts = [(&p.ctx, "one:1"), (&other, "two:1")];
    let children: Vec<Child> = contexts
        .iter()
        .map(|(ctx, tag)| {
            spawn_build(
                &p.sb,
                args![
                    "-q",
                    "--cache-dir",
                    p.cache_dir(),
                    "--source-date-epoch",
                    EPOCH,
                    "-t",
                    tag,
                    ctx
                ],
            )
        })
        .collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|c| finish(c).success().digest())
        .collect();
    assert_ne!(digests[0], digests[1]);
    let names = index_names(&p.sb.store());
    for ((ctx, tag), digest) in contexts.iter().zip(&digests) {
        assert_eq!(*digest, p.uncached_digest(ctx, args![]), "{tag}");
        assert!(
            names.contains(&(Some(tag.to_string()), digest.clone())),
            "{tag} names {digest} in {names:?}"
        );
        let again = p.build_in(ctx, args![]);
        assert_eq!(again.cache(), ["hit", "hit", "hit"], "{tag}");
        assert_eq!(again.digest(), *digest, "{tag}");
    }
    let keys = fs::read_dir(p.cache_dir().join("build-cache/keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        keys.len(),
        5,
        "one shared RUN, two COPYs and two RUNs: {keys:?}"
    );
}

/// Fails if anything is still mounted below `dir` (a killed RUN step's root, say).
fn assert_no_mount_under(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&dir.display().to_string()),
        "left mounted: {mounts}"
    );
}

/// Waits until `ready` holds, failing after a minute or if `child` exits first.
fn wait_for(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before {what}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `len` bytes that do not compress, so the layer takes a while to write.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_build_killed_while_writing_a_layer_leaves_nothing_that_hits() {
    let p = Project::new(
        "FROM scratch\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\n",
        &[("small.txt", "small\n")],
    );
    fs::write(p.ctx.join("big.bin"), noise(16 << 20)).unwrap();
    let blobs = p.sb.store().join("blobs/sha256");
    let mut child = spawn_build(
        &p.sb,
        args![
            "--cache-dir",
            p.cache_dir(),
            "--source-date-epoch",
            EPOCH,
            &p.ctx
        ],
    );
    wait_for(&mut child, "the big layer was half written", || {
        fs::read_dir(&blobs).is_ok_and(|dir| {
            dir.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(".tmp")
                    && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
            })
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_mount_under(&p.sb.path("tmp"));

    let rebuilt = p.build(args![]);
    assert_eq!(rebuilt.cache(), ["hit", "miss"]);
    assert_eq!(rebuilt.reasons()[1], Some("not in cache"));
    assert_eq!(rebuilt.digest(), p.uncached_digest(&p.ctx, args![]));
    let big = rebuilt.steps()[1]["layer"]["digest"].as_str().unwrap();
    let blob = fs::read(blobs.join(big.strip_prefix("sha256:").unwrap())).unwrap();
    assert_eq!(sha256(&blob), big, "the stored layer is whole");
    assert_eq!(p.build(args![]).cache(), ["hit", "hit"]);
}

#[test]
fn a_build_killed_during_a_run_step_is_rebuilt_right() {
    let p = Project::with_busybox(
        "FROM busybox:latest
COPY a.txt /a.txt
RUN echo started && head -c 3000000 /dev/zero > /zeros && sleep 1 && cat /a.txt > /b.txt
",
        &[("a.txt", "a\n")],
    );
    let mut child = spawn_build(
        &p.sb,
        args![
            "--cache-dir",
            p.cache_dir(),
            "--source-date-epoch",
            EPOCH,
            &p.ctx
        ],
    );
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line == "#2 started");
    assert!(started, "the RUN step printed `started`");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_mount_under(&p.sb.path("tmp"));

    let rebuilt = p.build(args![]);
    assert_eq!(rebuilt.cache(), ["hit", "miss"]);
    assert_eq!(rebuilt.reasons()[1], Some("not in cache"));
    assert!(
        rebuilt.stderr_lines().contains(&"#2 started"),
        "the step ran again:\n{}",
        rebuilt.outcome.stderr
    );
    assert_eq!(rebuilt.digest(), p.uncached_digest(&p.ctx, args![]));
    let entries = layer_entries(&p.sb.store(), rebuilt.layers()[1].unwrap());
    assert_eq!(entries, ["b.txt", "zeros"]);
}

#[test]
fn no_cache_builds_every_step_and_gives_the_same_image() {
    let p = app();
    let first = p.build(args![]);
    let uncached = p.build(args!["--no-cache"]);
    assert_eq!(uncached.cache(), ["miss", "miss", "n/a", "miss", "miss"]);
    for n in [1, 2, 4, 5] {
        assert_eq!(
            uncached.reason(n),
            &serde_json::json!({"kind": "no_cache", "message": "--no-cache"}),
            "step {n}"
        );
    }
    assert_eq!(uncached.digest(), first.digest());
    assert_eq!(uncached.layers(), first.layers());
    assert_eq!(
        p.build(args![]).cache(),
        ["hit", "hit", "n/a", "hit", "hit"]
    );
}

#[test]
fn no_cache_filter_rebuilds_only_that_stage() {
    let p = Project::with_busybox(
        "FROM busybox:latest AS deps
RUN echo deps > /deps

FROM busybox:latest AS app
RUN echo app > /app
COPY --from=deps /deps /deps
",
        &[],
    );
    let first = p.build(args![]);
    let deps = p.build(args!["--no-cache-filter", "deps"]);
    assert_eq!(deps.cache(), ["miss", "hit", "hit"]);
    assert_eq!(deps.reasons()[0], Some("--no-cache"));
    assert_eq!(deps.digest(), first.digest());
    let app = p.build(args!["--no-cache-filter", "APP"]);
    assert_eq!(app.cache(), ["hit", "miss", "miss"]);
    assert_eq!(app.reasons()[1..], [Some("--no-cache"), Some("--no-cache")]);
    assert_eq!(app.digest(), first.digest());

    let unknown =
        p.sb.build(args![
            "--cache-dir",
            p.cache_dir(),
            "--no-cache-filter",
            "nope",
            &p.ctx
        ])
        .code(1);
    assert_eq!(
        unknown.stderr,
        "error: --no-cache-filter names no stage: `nope`; the named stages are: deps, app\n"
    );
}

#[test]
fn entries_older_than_the_cache_ttl_are_expired() {
    let p = Project::with_busybox(
        "FROM busybox:latest\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
        &[("a.txt", "a\n")],
    );
    let first = p.build(args![]);
    assert_eq!(p.build(args!["--cache-ttl", "12h"]).cache(), ["hit", "hit"]);
    std::thread::sleep(Duration::from_millis(2100));
    let expired = p.build(args!["--cache-ttl", "1s"]);
    assert_eq!(expired.cache(), ["miss", "miss"]);
    for n in [1, 2] {
        let reason = expired.reason(n);
        assert_eq!(reason["kind"], "expired", "step {n}: {reason}");
        let age = reason["age_secs"].as_i64().unwrap();
        assert!((2..30).contains(&age), "step {n}: {reason}");
        assert_eq!(reason["message"], format!("expired (built {age}s ago)"));
    }
    assert_eq!(expired.digest(), first.digest());
    assert_eq!(
        p.build(args!["--cache-ttl", "1s"]).cache(),
        ["hit", "hit"],
        "the rebuilt entries are new"
    );
}

#[test]
fn the_report_has_the_documented_shape() {
    let p = app();
    p.build(args![]);
    p.write("src/main.py", "print('changed')\n");
    let built = p.build(args!["-t", "example:1.0"]);
    let report = &built.report;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(report), ["image", "steps", "summary"]);
    assert_eq!(keys(&report["image"]), ["config", "digest", "tags"]);
    assert_eq!(
        report["image"]["tags"],
        serde_json::json!(["docker.io/library/example:1.0"])
    );
    let manifest =
        json(&String::from_utf8(crate::common::blob(&p.sb.store(), &built.digest())).unwrap());
    assert_eq!(report["image"]["config"], manifest["config"]["digest"]);

    let lines = [2, 3, 4, 5, 6];
    let instructions = [
        "COPY base.txt /base.txt",
        "RUN /bin/sh -c cat /base.txt > /copied.txt",
        "ENV MODE=test",
        "COPY src/ /app/",
        "RUN /bin/sh -c ls /app > /listing.txt",
    ];
    let mut hits = 0;
    let mut misses = 0;
    let mut reused = 0;
    let mut built_bytes = 0;
    for (i, step) in built.steps().iter().enumerate() {
        assert_eq!(
            keys(step),
            [
                "cache",
                "duration_ms",
                "index",
                "instruction",
                "key",
                "layer",
                "line",
                "reason",
                "source",
                "stage"
            ]
        );
        assert_eq!(step["stage"], "stage-0");
        assert_eq!(step["index"], i + 1);
        assert_eq!(step["line"], lines[i]);
        assert_eq!(step["instruction"], instructions[i]);
        assert!(step["duration_ms"].is_u64());
        match step["cache"].as_str().unwrap() {
            "hit" => {
                hits += 1;
                reused += step["layer"]["size"].as_u64().unwrap();
                assert_eq!(step["source"], "local");
                assert!(step["reason"].is_null());
            }
            "miss" => {
                misses += 1;
                built_bytes += step["layer"]["size"].as_u64().unwrap();
                assert!(step["source"].is_null());
                assert!(step["reason"]["kind"].is_string(), "{step}");
                assert!(step["reason"]["message"].is_string(), "{step}");
            }
            "n/a" => {
                assert!(step["source"].is_null());
                assert!(step["reason"].is_null());
                assert!(step["key"].is_null());
                assert!(step["layer"].is_null());
                continue;
            }
            other => panic!("cache: {other}"),
        }
        let key = step["key"].as_str().unwrap();
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        let layer = &step["layer"];
        assert_eq!(keys(layer), ["digest", "size"]);
        let blob = crate::common::blob(&p.sb.store(), layer["digest"].as_str().unwrap());
        assert_eq!(sha256(&blob), layer["digest"]);
        assert_eq!(blob.len() as u64, layer["size"].as_u64().unwrap());
    }
    assert_eq!(built.cache(), ["hit", "hit", "n/a", "miss", "miss"]);
    assert_eq!(built.reason(4)["kind"], "file_changed");
    assert_eq!(built.reason(5)["kind"], "parent_missed");
    let summary = &report["summary"];
    assert_eq!(
        keys(summary),
        [
            "bytes_built",
            "bytes_reused",
            "duration_ms",
            "hit_rate",
            "hits",
            "misses"
        ]
    );
    assert_eq!(summary["hits"], hits);
    assert_eq!(summary["misses"], misses);
    assert_eq!(summary["hit_rate"], 0.5);
    assert_eq!(summary["bytes_reused"], reused);
    assert_eq!(summary["bytes_built"], built_bytes);
    assert!(summary["duration_ms"].is_u64());
}

/// Whether a RUN step printed `line` as its output (`#N line`), not merely named it.
fn printed(built: &Built, step: usize, line: &str) -> bool {
    built
        .stderr_lines()
        .contains(&format!("#{step} {line}").as_str())
}

const LAZY: &str = "FROM busybox:latest
RUN echo early-run && echo early > /early
COPY early.txt /early.txt
COPY late.txt /late.txt
RUN echo late-run && cat /late.txt > /late-copy.txt
";

#[test]
fn a_cached_build_runs_nothing_and_unpacks_nothing() {
    let p = Project::with_busybox(LAZY, &[("early.txt", "e\n"), ("late.txt", "l\n")]);
    let first = p.build(args![]);
    assert!(printed(&first, 1, "early-run") && printed(&first, 4, "late-run"));
    let layers = p.cache_dir().join("layers");
    assert!(layers.is_dir(), "the first build unpacked busybox to run");
    fs::remove_dir_all(&layers).unwrap();
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "hit", "hit", "hit"]);
    assert!(
        !printed(&second, 1, "early-run") && !printed(&second, 4, "late-run"),
        "nothing ran:\n{}",
        second.outcome.stderr
    );
    let unpacked: Vec<_> = fs::read_dir(&layers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(unpacked.is_empty(), "unpacked for nothing: {unpacked:?}");
    assert_eq!(second.digest(), first.digest());
}

#[test]
fn a_late_copy_change_runs_only_the_steps_from_it_on() {
    let p = Project::with_busybox(LAZY, &[("early.txt", "e\n"), ("late.txt", "l\n")]);
    let first = p.build(args![]);
    p.write("late.txt", "changed\n");
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["hit", "hit", "miss", "miss"]);
    assert!(
        !printed(&second, 1, "early-run"),
        "{}",
        second.outcome.stderr
    );
    assert!(printed(&second, 4, "late-run"), "{}", second.outcome.stderr);
    assert_eq!(second.layers()[..2], first.layers()[..2]);
    assert_eq!(second.digest(), p.uncached_digest(&p.ctx, args![]));
}

#[test]
fn a_hit_reuses_the_very_layer_blob_first_built() {
    let p = app();
    let first = p.build(args![]);
    let second = p.build(args![]);
    assert_eq!(second.layers(), first.layers());
    let cached_blobs = p.cache_dir().join("build-cache/content/blobs/sha256");
    for digest in second.layers().into_iter().flatten() {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let in_store = fs::read(p.sb.store().join("blobs/sha256").join(hex)).unwrap();
        let in_cache = fs::read(cached_blobs.join(hex)).unwrap();
        assert_eq!(sha256(&in_store), digest);
        assert_eq!(in_store, in_cache);
    }
}

#[test]
fn a_fresh_checkout_with_new_mtimes_and_owners_hits() {
    let p = app();
    let first = p.build(args![]);
    let checkout = p.sb.path("checkout");
    crate::common::copy_dir(&p.ctx, &checkout);
    touch_all(&checkout, SystemTime::now() + Duration::from_secs(7200));
    chown_all(&checkout, 4321, 4321);
    let second = p.build_in(&checkout, args![]);
    assert_eq!(second.cache(), ["hit", "hit", "n/a", "hit", "hit"]);
    assert_eq!(second.digest(), first.digest());
    assert_eq!(second.digest(), p.uncached_digest(&checkout, args![]));
}

/// Gives every file and directory under `dir` (and `dir`) to `uid:gid`.
fn chown_all(dir: &Path, uid: u32, gid: u32) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chown_all(&path, uid, gid);
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
}

#[test]
fn source_date_epoch_decides_what_a_cached_layer_is() {
    let p = app();
    let ctx = p.ctx.clone();
    let unclamped =
        p.sb.build(args!["-q", "--cache-dir", p.cache_dir(), &ctx])
            .success();
    let clamped = p.build(args![]);
    assert_ne!(clamped.digest(), unclamped.digest());
    assert_eq!(
        clamped.digest(),
        p.uncached_digest(&p.ctx, args![]),
        "a layer built without SOURCE_DATE_EPOCH must not stand for one built with it"
    );
}

const BIG_COPY: &str = "FROM busybox:latest
COPY files/ /data/
RUN sha256sum /data/d2/f5.bin
";

/// The hashes of the compressed chunks in each chunk index of the cache.
fn cached_chunk_hashes(cache: &Path) -> Vec<Vec<[u8; 32]>> {
    let dir = cache.join("build-cache/chunks");
    let mut all = Vec::new();
    for entry in fs::read_dir(&dir).unwrap().flatten() {
        let bytes = fs::read(entry.path()).unwrap();
        // Magic (16 bytes) and compressor id (32), then 40 bytes per chunk from its hash.
        let hashes = bytes[48..]
            .chunks_exact(40)
            .map(|c| c[..32].try_into().unwrap())
            .collect();
        all.push(hashes);
    }
    all
}

#[test]
fn one_changed_file_of_a_big_copy_reuses_the_rest_and_gives_the_same_image() {
    let p = Project::with_busybox(BIG_COPY, &[]);
    // 6 MB of incompressible files: a layer of several compressed chunks.
    let all = noise(6_000_000);
    let mut files = all.chunks(100_000);
    for d in 0..6 {
        for f in 0..10 {
            let path = p.ctx.join(format!("files/d{d}/f{f}.bin"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, files.next().unwrap()).unwrap();
        }
    }
    let first = p.build(args![]);
    let changed: Vec<u8> = noise(100_007).into_iter().rev().take(100_000).collect();
    fs::write(p.ctx.join("files/d2/f5.bin"), &changed).unwrap();
    let second = p.build(args![]);
    assert_eq!(second.cache(), ["miss", "miss"]);
    // The RUN saw the new file (it ran over the layer unpacked while it was written).
    let sum = sha256(&changed);
    let line = format!("{}  /data/d2/f5.bin", sum.strip_prefix("sha256:").unwrap());
    assert!(printed(&second, 2, &line), "{}", second.outcome.stderr);

    // Reusing the old layer's compressed chunks and files changes nothing in the result: the
    // image is the one a build from nothing makes.
    assert_eq!(second.digest(), p.uncached_digest(&p.ctx, args![]));
    assert_ne!(second.layers()[0], first.layers()[0]);

    // Most chunks of the new COPY layer are the old layer's.
    let indexes = cached_chunk_hashes(&p.cache_dir());
    let copy_layers: Vec<&Vec<[u8; 32]>> = indexes.iter().filter(|i| i.len() > 2).collect();
    assert_eq!(copy_layers.len(), 2, "{indexes:?}");
    let shared = copy_layers[1]
        .iter()
        .filter(|h| copy_layers[0].contains(h))
        .count();
    assert!(
        shared + 2 >= copy_layers[1].len() && shared > 0,
        "{shared} of {} chunks shared",
        copy_layers[1].len()
    );

    // The unpacked new layer links the 59 unchanged files to the old one's.
    let layers = p.cache_dir().join("layers");
    let linked = walk_files(&layers)
        .into_iter()
        .filter(|f| f.contains("/data/") && nlink(Path::new(f)) == 2)
        .count();
    assert_eq!(linked, 2 * 59);
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(walk_files(&path));
        } else if meta.is_file() {
            out.push(path.display().to_string());
        }
    }
    out
}

fn nlink(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(&fs::metadata(path).unwrap())
}
