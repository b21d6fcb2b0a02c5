//! The layer cache in a registry: one machine builds with `--cache-to`, another with an empty
//! cache directory builds with `--cache-from` and gets every step from the registry, running
//! nothing and downloading no layer when it pushes to the same registry.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::args;
use crate::common::{Outcome, Sandbox, run, tool};
use crate::support::{TestRegistry, busybox_layout};

const DOCKERFILE: &str = "FROM {base}
COPY app.txt /app/
RUN echo \"ran on the builder\" && cat /app/app.txt > /app/copy.txt
COPY later.txt /app/
";

fn context(sb: &Sandbox, base: &str) -> std::path::PathBuf {
    let ctx = sb.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE.replace("{base}", base)).unwrap();
    fs::write(ctx.join("app.txt"), "application\n").unwrap();
    fs::write(ctx.join("later.txt"), "one\n").unwrap();
    ctx
}

fn build(sb: &Sandbox, ctx: &Path, extra: &[&std::ffi::OsStr]) -> (Outcome, Value) {
    let report = sb.path("report.json");
    let mut cmd = sb.kiln();
    cmd.env("DOCKER_CONFIG", sb.path("docker"))
        .arg("build")
        .arg("--store")
        .arg(sb.store())
        .arg("--cache-dir")
        .arg(sb.path("cache"))
        .arg("--report")
        .arg(&report)
        .args(extra)
        .arg(ctx);
    let out = run(&mut cmd).success();
    let json = serde_json::from_str(&fs::read_to_string(report).unwrap()).unwrap();
    (out, json)
}

fn layer_steps(report: &Value) -> Vec<&Value> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cache"] != "n/a")
        .collect()
}

#[test]
fn a_second_machine_gets_every_step_from_the_registry_cache() {
    let registry = TestRegistry::plain();
    registry.push_image(&busybox_layout(), "library/busybox:latest");
    let base = registry.reference("library/busybox:latest");
    let cache = registry.reference("team/cache:main");

    let first = Sandbox::new();
    let ctx = context(&first, &base);
    let (out, a) = build(
        &first,
        &ctx,
        args![
            "--push",
            "-t",
            registry.reference("team/app:1"),
            "--cache-to",
            &cache
        ],
    );
    assert!(
        out.stderr.contains("#2 ran on the builder"),
        "{}",
        out.stderr
    );
    assert!(
        layer_steps(&a).iter().all(|s| s["cache"] == "miss"),
        "{a:#}"
    );

    // A fresh runner: its own store and an empty cache directory.
    let second = Sandbox::new();
    let ctx = context(&second, &base);
    let (out, b) = build(
        &second,
        &ctx,
        args![
            "--push",
            "-t",
            registry.reference("team/app:2"),
            "--cache-from",
            format!("type=registry,ref={cache}")
        ],
    );
    assert!(
        !out.stderr.contains("#2 ran on the builder"),
        "{}",
        out.stderr
    );
    let (a_steps, b_steps) = (layer_steps(&a), layer_steps(&b));
    assert_eq!(b_steps.len(), 3);
    for (x, y) in a_steps.iter().zip(&b_steps) {
        assert_eq!(y["cache"], "hit", "{b:#}");
        assert_eq!(y["source"], "remote", "{b:#}");
        assert_eq!(x["layer"], y["layer"], "the same layers, bit for bit");
        assert_eq!(x["key"], y["key"]);
    }
    assert_eq!(b["summary"]["hits"], 3);
    assert_eq!(b["summary"]["misses"], 0);
    // Pushing to the cache's registry mounts every layer: none passed through this machine.
    let blobs: Vec<String> = fs::read_dir(second.store().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for step in &b_steps {
        let digest = step["layer"]["digest"].as_str().unwrap();
        let hex = digest.trim_start_matches("sha256:");
        assert!(!blobs.iter().any(|b| b == hex), "{digest} was downloaded");
    }
    // The image the second machine pushed has the first one's layers.
    let a_layers = registry.inspect("team/app:1")["Layers"].clone();
    assert_eq!(registry.inspect("team/app:2")["Layers"], a_layers);

    // One tag holds the cache, whatever the number of steps.
    let tags: Value = serde_json::from_str(&tool(
        "skopeo",
        args![
            "list-tags",
            "--tls-verify=false",
            format!("docker://{}", registry.reference("team/cache"))
        ],
    ))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["main"]));

    // A late change on the second machine: only the last COPY is built, and the cache it
    // exports merges with the first machine's entries under the same tag.
    fs::write(ctx.join("later.txt"), "two\n").unwrap();
    let (out, c) = build(
        &second,
        &ctx,
        args![
            "--cache-from",
            &cache,
            "--cache-to",
            &cache,
            "-o",
            format!("type=oci,dest={}", second.path("out").display())
        ],
    );
    let c_steps = layer_steps(&c);
    assert_eq!(
        c_steps
            .iter()
            .map(|s| s["cache"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hit", "hit", "miss"],
        "{c:#}"
    );
    assert!(
        !out.stderr.contains("#2 ran on the builder"),
        "{}",
        out.stderr
    );
    let third = Sandbox::new();
    let ctx = context(&third, &base);
    fs::write(ctx.join("later.txt"), "two\n").unwrap();
    let (_, d) = build(&third, &ctx, args!["--cache-from", &cache]);
    assert!(layer_steps(&d).iter().all(|s| s["cache"] == "hit"), "{d:#}");
    let fourth = Sandbox::new();
    let ctx = context(&fourth, &base);
    let (_, e) = build(&fourth, &ctx, args!["--cache-from", &cache]);
    assert!(
        layer_steps(&e).iter().all(|s| s["cache"] == "hit"),
        "both versions are cached: {e:#}"
    );

    // A runner with an empty cache dir still learns from the registry cache what changed.
    let fifth = Sandbox::new();
    let ctx = context(&fifth, &base);
    fs::write(ctx.join("later.txt"), "three\n").unwrap();
    let (_, f) = build(&fifth, &ctx, args!["--cache-from", &cache]);
    let reason = &layer_steps(&f)[2]["reason"];
    assert_eq!(reason["kind"], "file_changed", "{f:#}");
    assert_eq!(reason["path"], "later.txt");
    assert_eq!(reason["old"], sha256(b"two\n"));
    assert_eq!(reason["new"], sha256(b"three\n"));
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, bytes).unwrap();
    let out = tool("sha256sum", args![&file]);
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}
