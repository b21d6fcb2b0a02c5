//! RUN: steps run isolated over the stage's layers, their changes become a layer, and both
//! isolations give the same image; failures say which line and show the command's output; no
//! mount or temporary directory outlives the build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args;
use crate::common::{Sandbox, manifest_and_config, run, tool, unpack};

/// The offline busybox base (`scripts/registry/busybox-layout.sh`), copied into the sandbox's
/// store as `busybox:latest` so `FROM busybox:latest` resolves locally.
fn with_busybox(sb: &Sandbox) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry/busybox-layout.sh");
    let out = run(Command::new("bash").arg(&script)).success();
    let layout = out.stdout.trim();
    tool(
        "skopeo",
        args![
            "copy",
            "--quiet",
            format!("oci:{layout}:busybox:latest"),
            format!("oci:{}:busybox:latest", sb.store().display())
        ],
    );
}

fn context(sb: &Sandbox, dockerfile: &str) -> PathBuf {
    let ctx = sb.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// Builds `ctx` once per isolation into `<sandbox>/<isolation>` as `tag`, with a fixed
/// SOURCE_DATE_EPOCH; returns the two image digests, namespace first.
fn build_in_both_isolations(sb: &Sandbox, ctx: &Path, tag: &str) -> Vec<String> {
    ["namespace", "chroot"]
        .iter()
        .map(|isolation| {
            sb.build(args![
                "-q",
                "--isolation",
                isolation,
                // The same cache dir keeps the base unpacked once; each isolation runs the steps.
                "--no-cache",
                "--cache-dir",
                sb.path("cache"),
                "--source-date-epoch",
                "1700000000",
                "-t",
                tag,
                "--output",
                format!("type=oci,dest={}", sb.path(isolation).display()),
                ctx
            ])
            .success()
            .digest()
        })
        .collect()
}

const STEPS: &str = "FROM busybox:latest
RUN echo hello > /hello.txt && rm /bin/true && mkdir -p /data && ln -s /data /d \\
    && ln /hello.txt /hl && chmod u+s /hello.txt && rm -rf /home && ln -s /tmp /home
USER app
WORKDIR /work
RUN id -u > uid && echo \"$HOME\" > home
";

#[test]
fn namespace_and_chroot_give_the_same_image() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(&sb, STEPS);
    let digests = build_in_both_isolations(&sb, &ctx, "run:1");
    assert_eq!(
        digests[0], digests[1],
        "same steps, same image, whatever the isolation"
    );

    let (manifest, config) = manifest_and_config(&sb.path("namespace"), "run:1");
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        4,
        "base + RUN + WORKDIR + RUN"
    );
    assert_eq!(config["config"]["User"], "app");
    let root = unpack(&sb.path("namespace"), "run:1", &sb.path("bundle"));
    assert_eq!(
        fs::read_to_string(root.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert!(
        !root.join("bin/true").exists(),
        "the deletion is a whiteout"
    );
    assert_eq!(fs::read_link(root.join("d")).unwrap(), Path::new("/data"));
    assert_eq!(
        fs::read_link(root.join("home")).unwrap(),
        Path::new("/tmp"),
        "dir replaced by a symlink"
    );
    use std::os::unix::fs::MetadataExt;
    let hello = fs::metadata(root.join("hello.txt")).unwrap();
    assert_eq!(hello.mode() & 0o4000, 0o4000, "setuid kept");
    assert_eq!(
        hello.ino(),
        fs::metadata(root.join("hl")).unwrap().ino(),
        "hard link kept"
    );
    assert_eq!(fs::read_to_string(root.join("work/uid")).unwrap(), "1000\n");
    assert_eq!(
        fs::read_to_string(root.join("work/home")).unwrap(),
        "/home/app\n"
    );
    for leaked in ["proc/self", "etc/resolv.conf", "etc/hosts"] {
        assert!(
            !root.join(leaked).exists(),
            "{leaked} must not reach a layer"
        );
    }
}

#[test]
fn a_failing_step_names_its_line_and_shows_its_output() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(
        &sb,
        "FROM busybox:latest\nRUN echo first line && echo second line && exit 3\n",
    );
    let failed = sb
        .build(args!["--cache-dir", sb.path("cache"), "-t", "bad:1", &ctx])
        .code(1);
    assert!(
        failed
            .stderr
            .contains("RUN at ctx/Dockerfile:2 exited with code 3")
            || failed.stderr.contains("Dockerfile:2 exited with code 3"),
        "{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .contains("  last output:\n    first line\n    second line\n"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains(" 2 | RUN echo first line"),
        "{}",
        failed.stderr
    );
    let index = fs::read_to_string(sb.store().join("index.json")).unwrap();
    assert!(!index.contains("bad:1"), "no image stored: {index}");
}

#[test]
fn missing_users_and_shells_are_clear_errors() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(&sb, "FROM busybox:latest\nUSER ghost\nRUN true\n");
    let failed = sb
        .build(args!["--cache-dir", sb.path("cache"), &ctx])
        .code(1);
    assert!(
        failed.stderr.contains("no user named `ghost`"),
        "{}",
        failed.stderr
    );

    fs::write(sb.path("ctx/file"), "x").unwrap();
    fs::write(
        sb.path("ctx/Dockerfile"),
        "FROM scratch\nCOPY file /\nRUN echo hi\n",
    )
    .unwrap();
    let failed = sb
        .build(args!["--cache-dir", sb.path("cache"), sb.path("ctx")])
        .code(1);
    assert!(
        failed
            .stderr
            .contains("/bin/sh: not found in the image; set SHELL or use exec form"),
        "{}",
        failed.stderr
    );
}

#[test]
fn volumes_reach_steps_but_never_layers_and_nothing_is_left_behind() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let host = sb.path("ca");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("bundle.crt"), "host CA bundle\n").unwrap();
    let ctx = context(
        &sb,
        "FROM busybox:latest\nRUN cat /etc/ssl/certs/bundle.crt > /seen && (touch /etc/ssl/certs/x 2>/dev/null && echo writable || echo read-only) >> /seen\n",
    );
    let tmp = sb.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut cmd = sb.kiln();
    cmd.env("TMPDIR", &tmp).args(args![
        "build",
        "--store",
        sb.store(),
        "--cache-dir",
        sb.path("cache"),
        "-t",
        "vol:1",
        "--volume",
        format!("{}:/etc/ssl/certs:ro", host.display()),
        "--output",
        format!("type=oci,dest={}", sb.path("out").display()),
        &ctx
    ]);
    run(&mut cmd).success();
    let root = unpack(&sb.path("out"), "vol:1", &sb.path("bundle"));
    assert_eq!(
        fs::read_to_string(root.join("seen")).unwrap(),
        "host CA bundle\nread-only\n"
    );
    assert!(
        !root.join("etc/ssl/certs/bundle.crt").exists(),
        "the volume is not in the layer"
    );
    assert!(
        !root.join("etc/ssl").exists(),
        "nor the mount point kiln had to create"
    );
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
    assert!(
        left.is_empty(),
        "temporary directories left behind: {left:?}"
    );
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&tmp.display().to_string()), "{mounts}");
    assert!(
        !mounts.contains(&sb.path("cache").display().to_string()),
        "{mounts}"
    );
}

#[test]
fn heredocs_run_as_scripts_or_feed_the_shell_and_stages_copy_whole() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(
        &sb,
        "FROM busybox:latest AS build
ENV GREETING=hi
RUN <<EOF
echo \"$GREETING from a script\" > /x
id > /ids
EOF
RUN cat <<A > /a && cat <<'B' > /b
value $GREETING
A
literal $GREETING
B

FROM scratch
COPY --from=build / /
",
    );
    sb.build(args![
        "-q",
        "--cache-dir",
        sb.path("cache"),
        "-t",
        "here:1",
        "--output",
        format!("type=oci,dest={}", sb.path("out").display()),
        &ctx
    ])
    .success();
    let root = unpack(&sb.path("out"), "here:1", &sb.path("bundle"));
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("x"), "hi from a script\n");
    assert_eq!(read("ids"), "uid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(read("a"), "value hi\n", "an unquoted delimiter expands");
    assert_eq!(read("b"), "literal $GREETING\n", "a quoted one does not");
    assert!(
        root.join("bin/busybox").exists(),
        "COPY --from=build / copies the whole stage"
    );
}

#[test]
fn a_heredoc_with_a_shebang_runs_as_its_own_program_in_both_isolations() {
    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(
        &sb,
        "FROM busybox:latest
RUN <<EOF
#!/bin/awk -f
BEGIN { print \"awk ran\", 6 * 7 > \"/awk.txt\" }
EOF
RUN <<script
#!/bin/sh
echo \"$0\" > /self.txt
ls -l \"$0\" | cut -c1-10 >> /self.txt
script
",
    );
    let digests = build_in_both_isolations(&sb, &ctx, "shebang:1");
    assert_eq!(digests[0], digests[1], "same image from both isolations");
    let root = unpack(&sb.path("namespace"), "shebang:1", &sb.path("bundle"));
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(
        read("awk.txt"),
        "awk ran 42\n",
        "the `#!` line chose the interpreter"
    );
    assert_eq!(read("self.txt"), "/dev/pipes/script\n-rwxr-xr-x\n");
    assert!(
        !root.join("dev/pipes").exists(),
        "the script never reaches a layer"
    );
}

#[test]
fn an_interrupted_build_leaves_no_temporary_directory_or_mount() {
    use std::time::{Duration, Instant};

    let sb = Sandbox::new();
    with_busybox(&sb);
    let ctx = context(&sb, "FROM busybox:latest\nRUN echo started && sleep 60\n");
    let tmp = sb.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let mut cmd = sb.kiln();
        cmd.env("TMPDIR", &tmp)
            .args(args![
                "build",
                "--store",
                sb.store(),
                "--cache-dir",
                sb.path("cache"),
                &ctx
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Wait until the step is running: its control directory exists under kiln's temp dir.
        let started = Instant::now();
        let running = || {
            fs::read_dir(&tmp).unwrap().flatten().any(|kiln| {
                fs::read_dir(kiln.path())
                    .map(|mut d| {
                        d.any(|e| {
                            e.is_ok_and(|e| {
                                e.file_name().to_string_lossy().starts_with("kiln-run-")
                            })
                        })
                    })
                    .unwrap_or(false)
            })
        };
        while !running() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the RUN step never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        run(Command::new("kill").args([format!("-{signal}"), child.id().to_string()])).success();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "SIG{signal} left {left:?}");
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains(&tmp.display().to_string()), "{mounts}");
    }
}
