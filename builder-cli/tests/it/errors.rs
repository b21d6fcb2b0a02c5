//! Failed builds exit 1, say what is wrong where (file, line, the line itself), and leave no
//! image behind; bad command lines exit 2 before touching anything.

use std::fs;
use std::path::Path;

use crate::args;
use crate::common::{Outcome, Sandbox, index_names, testdata};

/// A Dockerfile under testdata/errors that must fail.
struct Case {
    /// Its directory under testdata/errors.
    name: &'static str,
    /// The lines the error may point at (most cases have exactly one).
    lines: &'static [usize],
    /// Fragments the message must contain (case-insensitive).
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown-instruction",
        lines: &[3],
        says: &["unknown instruction", "FROBNICATE"],
    },
    Case {
        name: "unknown-flag",
        lines: &[2],
        says: &["unknown flag", "frob"],
    },
    Case {
        name: "unterminated-heredoc",
        lines: &[2],
        says: &["heredoc"],
    },
    Case {
        name: "missing-source",
        lines: &[3],
        says: &["`missing.txt`", "not found"],
    },
    Case {
        name: "ignored-source",
        lines: &[3],
        says: &["`secret.txt`", "excluded"],
    },
    Case {
        name: "parent-source",
        lines: &[2],
        says: &["../a.txt", "outside"],
    },
    Case {
        name: "stage-cycle",
        lines: &[2, 5],
        says: &["circular"],
    },
    Case {
        // RUN on a scratch image: there is no shell to run it with.
        name: "run",
        lines: &[3],
        says: &[
            "RUN",
            "/bin/sh: not found in the image; set SHELL or use exec form",
        ],
    },
    Case {
        // A registry nobody listens on: the error names the image and the address.
        name: "registry-base",
        lines: &[1],
        says: &["127.0.0.1:1/alpine:3.19", "failed to reach `127.0.0.1:1`"],
    },
];

/// Asserts the message names `dockerfile` at one of `lines` and quotes that line.
#[track_caller]
fn assert_points_at(stderr: &str, dockerfile: &Path, lines: &[usize]) {
    let text = fs::read_to_string(dockerfile).unwrap();
    let shown = dockerfile.display().to_string();
    let hit = lines.iter().any(|&n| {
        let line = text.lines().nth(n - 1).unwrap();
        stderr.contains(&format!("{shown}:{n}"))
            && stderr
                .lines()
                .any(|l| l.contains(&n.to_string()) && l.trim_end().ends_with(line))
    });
    assert!(
        hit,
        "error should name `{shown}` at line {lines:?} and quote it:\n{stderr}"
    );
}

/// Asserts the store holds no named or unnamed image.
#[track_caller]
fn assert_store_empty(store: &Path) {
    assert!(
        index_names(store).is_empty(),
        "the store index lists {:?}",
        index_names(store)
    );
}

#[test]
fn failed_builds_explain_and_leave_nothing() {
    for case in CASES {
        let ctx = testdata("errors").join(case.name);
        let dockerfile = ctx.join("Dockerfile");
        let sb = Sandbox::new();

        // Into the local store.
        let failed = sb.build(args!["-t", "broken:1", ctx]);
        let Outcome {
            code,
            stdout,
            stderr,
        } = failed;
        assert_eq!(code, 1, "{}: exit status\n{stderr}", case.name);
        assert!(stdout.is_empty(), "{}: stdout {stdout:?}", case.name);
        assert!(
            stderr.lines().any(|l| l.starts_with("error: ")),
            "{}:\n{stderr}",
            case.name
        );
        for fragment in case.says {
            assert!(
                stderr.to_lowercase().contains(&fragment.to_lowercase()),
                "{}: message should say {fragment:?}:\n{stderr}",
                case.name
            );
        }
        assert_points_at(&stderr, &dockerfile, case.lines);
        assert!(!stderr.contains("panicked"), "{}:\n{stderr}", case.name);
        assert_store_empty(&sb.store());

        // Into outputs: none is created.
        let (dir, tar, docker) = (
            sb.path("out-dir"),
            sb.path("out.tar"),
            sb.path("docker.tar"),
        );
        let outputs = [
            format!("type=oci,dest={}", dir.display()),
            format!("type=oci,dest={}", tar.display()),
            format!("type=docker,dest={}", docker.display()),
        ];
        sb.build(args![
            "-t", "broken:1", "-o", outputs[0], "-o", outputs[1], "-o", outputs[2], ctx
        ])
        .code(1);
        for path in [&dir, &tar, &docker] {
            assert!(
                !path.exists(),
                "{}: `{}` was created",
                case.name,
                path.display()
            );
        }
        let leftovers: Vec<_> = fs::read_dir(sb.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // The store, and the per-machine cache of unpacked layers (kept between builds on
            // purpose), may exist; nothing else may.
            .filter(|n| n != "store" && n != "xdg-cache")
            .collect();
        assert!(leftovers.is_empty(), "{}: left {leftovers:?}", case.name);
        assert_store_empty(&sb.store());
    }
}

#[test]
fn unknown_target_lists_the_stages() {
    let sb = Sandbox::new();
    let failed = sb
        .build(args!["--target", "nosuch", testdata("example")])
        .code(1);
    assert!(failed.stderr.contains("nosuch"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("assets"),
        "the message should list the stages:\n{}",
        failed.stderr
    );
    assert!(failed.stdout.is_empty());
    assert_store_empty(&sb.store());
}

#[test]
fn missing_dockerfile_is_a_failed_build() {
    let sb = Sandbox::new();
    let ctx = sb.path("empty-context");
    fs::create_dir(&ctx).unwrap();
    let failed = sb.build(args![ctx]).code(1);
    assert!(
        failed
            .stderr
            .contains(&ctx.join("Dockerfile").display().to_string()),
        "{}",
        failed.stderr
    );
}

#[test]
fn bad_command_lines_exit_2_and_touch_nothing() {
    let bad: &[(&[&str], &str)] = &[
        (&["--build-arg", "=x"], "--build-arg"),
        (&["-t", "UPPER"], "UPPER"),
        (&["--output", "type=foo,dest=out"], "type=foo"),
        (&["--output", "type=oci"], "dest"),
        (&["--label", "novalue"], "--label"),
        (&["--platform", "not a platform"], "platform"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, says) in bad {
        let sb = Sandbox::new();
        let mut cmd = sb.kiln();
        cmd.arg("build")
            .arg("--store")
            .arg(sb.store())
            .args(*args)
            .arg(testdata("example"));
        let out = crate::common::run(&mut cmd);
        assert_eq!(out.code, 2, "{args:?}: exit status\n{}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
        assert!(
            out.stderr.contains(says),
            "{args:?}: message should mention {says:?}:\n{}",
            out.stderr
        );
        assert!(!sb.store().exists(), "{args:?}: the store was created");
        assert!(!sb.path("out").exists(), "{args:?}: an output was created");
    }
}

/// A tag names an image; a digest is computed, never chosen. Docker refuses "a tag with a
/// digest reference".
#[test]
fn digest_reference_is_not_a_tag() {
    let sb = Sandbox::new();
    let tag = "app@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let out = sb.build(args!["-q", "-t", tag, testdata("example")]);
    let names = index_names(&sb.store());
    assert_eq!(
        out.code, 2,
        "accepted `-t {tag}`; the store names {names:?}"
    );
    assert!(out.stderr.contains("app@sha256"), "{}", out.stderr);
    assert!(names.is_empty(), "{names:?}");
}
