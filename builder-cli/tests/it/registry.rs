//! `kiln login`, `kiln logout`, `kiln build --push` and `kiln push` against a real registry with
//! token auth on loopback, read back with skopeo. The client's protocol details (resumable
//! uploads, retries, TLS) are tested in builder-core's registry tests.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::args;
use crate::common::{Outcome, Sandbox, run};
use crate::support::{TestRegistry, busybox_layout};

/// `kiln` with a private docker config directory.
fn kiln(sb: &Sandbox) -> std::process::Command {
    let mut cmd = sb.kiln();
    cmd.env("DOCKER_CONFIG", sb.path("docker"))
        .env("REGISTRY_AUTH_FILE", sb.path("no-podman-auth.json"));
    cmd
}

fn login(sb: &Sandbox, host: &str, user: &str, password: &str) -> Outcome {
    let mut cmd = kiln(sb);
    cmd.args(["login", host, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn login_build_push_and_push_from_the_store() {
    let registry = TestRegistry::token(&[("ci", "s3cret-token")]);
    let base = registry.push_image(&busybox_layout(), "library/busybox:latest");
    let sb = Sandbox::new();

    let refused = login(&sb, &registry.host, "ci", "wrong-password");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&registry.host),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("wrong-password"),
        "{}",
        refused.stderr
    );

    let ok = login(&sb, &registry.host, "ci", "s3cret-token");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stderr.contains("Login Succeeded"), "{}", ok.stderr);
    let config_path = sb.path("docker/config.json");
    assert_eq!(
        fs::metadata(&config_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    assert!(
        config["auths"][registry.host.as_str()]["auth"].is_string(),
        "{config}"
    );

    let ctx = sb.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("app.txt"), "pushed by kiln\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY --chown=app app.txt /home/app/\nCMD [\"cat\", \"/home/app/app.txt\"]\n"),
    )
    .unwrap();
    let dest = registry.reference("team/app:1");
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "build",
        "--store",
        sb.store(),
        "--push",
        "-t",
        &dest,
        &ctx
    ]);
    let built = run(&mut cmd).success();
    let digest = built.digest();
    assert!(
        built.stderr.contains("mounted from library/busybox"),
        "the base layer is mounted, not uploaded:\n{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains(&format!("1: digest: {digest} size: ")),
        "{}",
        built.stderr
    );
    assert_eq!(registry.inspect("team/app:1")["Digest"], digest);
    assert!(
        built.stderr.contains(": pushed while it was built"),
        "the COPY layer goes up while the build runs, with the push's token:\n{}",
        built.stderr
    );

    // With --push-after-build the rebuilt layer waits for the push, as with docker.
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "build",
        "--store",
        sb.store(),
        "--no-cache",
        "--push",
        "--push-after-build",
        "-t",
        registry.reference("team/other:1"),
        &ctx
    ]);
    let after = run(&mut cmd).success();
    assert!(
        !after.stderr.contains("while it was built") && after.stderr.contains(": pushed\n"),
        "{}",
        after.stderr
    );
    assert_eq!(registry.inspect("team/other:1")["Digest"], after.digest());

    // A local build pushed afterwards with `kiln push`.
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "build",
        "-q",
        "--store",
        sb.store(),
        "-t",
        "local/app:2",
        &ctx
    ]);
    let local = run(&mut cmd).success().digest();
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "push",
        "--store",
        sb.store(),
        "local/app:2",
        registry.reference("team/app:2")
    ]);
    let pushed = run(&mut cmd).success();
    assert_eq!(pushed.stdout.trim(), local);
    assert_eq!(registry.inspect("team/app:2")["Digest"], local);

    let mut cmd = kiln(&sb);
    cmd.args(["logout", registry.host.as_str()]);
    let out = run(&mut cmd).success();
    assert!(
        out.stderr.contains("Removing login credentials"),
        "{}",
        out.stderr
    );
    let config = fs::read_to_string(&config_path).unwrap();
    assert!(!config.contains(&registry.host), "{config}");

    // Logged out, the registry refuses the push, and the error says where it went.
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "push",
        "--store",
        sb.store(),
        "local/app:2",
        registry.reference("team/app:3")
    ]);
    let refused = run(&mut cmd);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&registry.host),
        "{}",
        refused.stderr
    );
}

#[test]
fn push_needs_a_name_and_an_image() {
    let sb = Sandbox::new();
    let mut cmd = kiln(&sb);
    cmd.args(args![
        "push",
        "--store",
        sb.store(),
        "nothere:1",
        "127.0.0.1:1/x:1"
    ]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("nothere:1"), "{}", out.stderr);

    let ctx = sb.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = sb.build(args!["--push", &ctx]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("nothing to push to"), "{}", out.stderr);
}
