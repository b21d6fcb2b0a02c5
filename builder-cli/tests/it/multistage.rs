//! Multi-stage builds (testdata/multistage): what `--target` builds, `COPY --from` by index,
//! inheritance through `FROM <stage>`, and Docker's CMD/ENTRYPOINT rule.

use std::fs;

use serde_json::{Value, json};

use crate::args;
use crate::common::{Sandbox, manifest_and_config, testdata, tree, unpack};

/// Builds `--target target` into an OCI layout; returns (sandbox, stderr, config).
fn build_target(target: &str) -> (Sandbox, String, Value) {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    let built = sb
        .build(args![
            "--target",
            target,
            "-t",
            "ms:1",
            "-o",
            dest,
            testdata("multistage")
        ])
        .success();
    let (_, config) = manifest_and_config(&out, "ms:1");
    (sb, built.stderr, config)
}

#[test]
fn target_skips_stages_it_does_not_need() {
    // The last stage copies from `broken`, whose COPY source is missing: building it fails...
    let sb = Sandbox::new();
    let failed = sb.build(args!["-q", testdata("multistage")]).code(1);
    assert!(
        failed.stderr.contains("does-not-exist.txt"),
        "{}",
        failed.stderr
    );

    // ...but `child` needs only `base`, so `broken` never runs.
    let (_, stderr, _) = build_target("child");
    assert!(
        !stderr.contains("does-not-exist") && !stderr.contains("[broken"),
        "stage `broken` ran:\n{stderr}"
    );
    assert!(stderr.contains("[base "), "{stderr}");
}

#[test]
fn child_stage_inherits_env_workdir_and_files() {
    let (sb, _, config) = build_target("child");
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "GREETING=hello",
            "AUDIENCE=world"
        ])
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Entrypoint"], json!(["/bin/child"]));
    assert!(
        c["Cmd"].is_null(),
        "ENTRYPOINT in a child stage clears the base's CMD, got {}",
        c["Cmd"]
    );
    // Layers of `base` come first, then the child's own.
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);

    let rootfs = unpack(&sb.path("out"), "ms:1", &sb.path("bundle"));
    let ctx = testdata("multistage");
    assert_eq!(
        fs::read(rootfs.join("app/a.txt")).unwrap(),
        fs::read(ctx.join("a.txt")).unwrap()
    );
    assert_eq!(
        fs::read(rootfs.join("app/b.txt")).unwrap(),
        fs::read(ctx.join("b.txt")).unwrap()
    );
}

#[test]
fn cmd_set_in_the_same_stage_survives_entrypoint() {
    let (_, _, config) = build_target("same-stage");
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], json!(["/bin/own"]));
    assert_eq!(c["Cmd"], json!(["own-cmd"]));
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "GREETING=hello"
        ])
    );
}

#[test]
fn base_keeps_its_cmd() {
    let (_, _, config) = build_target("base");
    assert_eq!(config["config"]["Cmd"], json!(["base-cmd"]));
    assert!(config["config"]["Entrypoint"].is_null());
}

#[test]
fn copy_from_stage_index() {
    let (sb, _, _) = build_target("by-index");
    let rootfs = unpack(&sb.path("out"), "ms:1", &sb.path("bundle"));
    let files: Vec<String> = tree(&rootfs)
        .into_iter()
        .filter(|(_, n)| n.mode & 0o170000 == 0o100000)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(files, ["copied/a.txt"]);
    assert_eq!(
        fs::read(rootfs.join("copied/a.txt")).unwrap(),
        fs::read(testdata("multistage").join("a.txt")).unwrap()
    );
}
