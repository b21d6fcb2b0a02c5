//! The example image written to each output type, read back with skopeo and umoci.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::args;
use crate::common::{
    EXAMPLE_REF, Sandbox, image_ref, index_names, json, manifest_and_config, testdata, tool, tree,
    unpack,
};

/// Instructions that change the filesystem, and so have a layer, in the example's final stage.
const LAYER_INSTRUCTIONS: [&str; 3] = ["WORKDIR", "COPY", "ADD"];

#[test]
fn oci_dir_config_matches_the_dockerfile() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    let digest = sb
        .build(args![
            "-t",
            EXAMPLE_REF,
            "--output",
            dest,
            testdata("example")
        ])
        .success()
        .digest();

    assert_eq!(
        index_names(&out),
        [(Some(EXAMPLE_REF.to_string()), digest.clone())],
        "index.json names the image `name:tag`"
    );
    let inspected = json(&tool(
        "skopeo",
        args!["inspect", image_ref("oci:", &out, EXAMPLE_REF)],
    ));
    assert_eq!(inspected["Digest"], digest.as_str());

    let (manifest, config) = manifest_and_config(&out, EXAMPLE_REF);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["schemaVersion"], 2);
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/srv/www",
            "PORT=8080"
        ])
    );
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv/www");
    assert_eq!(c["Entrypoint"], json!(["/bin/serve"]));
    assert_eq!(
        c["Cmd"],
        json!(["--root", "/srv/www"]),
        "CMD after ENTRYPOINT is kept"
    );
    assert_eq!(
        c["Labels"],
        json!({
            "org.opencontainers.image.title": "kiln example",
            "org.opencontainers.image.version": "1.0.0",
        }),
        "the version label comes from the global ARG default"
    );
    assert_eq!(
        c["Healthcheck"],
        json!({
            "Test": ["CMD", "/bin/healthcheck", "--port", "8080"],
            "Interval": 30_000_000_000_u64,
            "Timeout": 3_000_000_000_u64,
            "Retries": 3,
        })
    );
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Volumes"], json!({"/var/cache/app": {}}));
    assert_eq!(config["os"], "linux");
    assert!(config["architecture"].is_string());

    // One history entry per instruction of the final stage (from its `ARG VERSION` on), and a
    // layer exactly for those that change the filesystem.
    let history = config["history"].as_array().unwrap();
    let keywords: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap().split(' ').next().unwrap())
        .collect();
    assert_eq!(
        keywords,
        [
            "ARG",
            "LABEL",
            "ENV",
            "WORKDIR",
            "COPY",
            "COPY",
            "ADD",
            "EXPOSE",
            "VOLUME",
            "USER",
            "HEALTHCHECK",
            "STOPSIGNAL",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    for (h, keyword) in history.iter().zip(&keywords) {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        assert_eq!(
            empty,
            !LAYER_INSTRUCTIONS.contains(keyword),
            "empty_layer of {h}"
        );
    }
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(diff_ids.len(), layers.len());
    assert_eq!(
        history.iter().filter(|h| h["empty_layer"] != true).count(),
        layers.len()
    );

    // skopeo's own reading of the config agrees.
    let seen = json(&tool(
        "skopeo",
        args!["inspect", "--config", image_ref("oci:", &out, EXAMPLE_REF)],
    ));
    assert_eq!(seen["config"]["Env"], c["Env"]);
    assert_eq!(seen["config"]["Entrypoint"], c["Entrypoint"]);
    assert_eq!(seen["config"]["Cmd"], c["Cmd"]);
    assert_eq!(seen["config"]["Labels"], c["Labels"]);
    assert_eq!(seen["rootfs"]["diff_ids"], config["rootfs"]["diff_ids"]);
}

#[test]
fn oci_dir_rootfs_unpacks_with_umoci() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    sb.build(args!["-t", EXAMPLE_REF, "-o", dest, testdata("example")])
        .success();
    let rootfs = unpack(&out, EXAMPLE_REF, &sb.path("bundle"));
    let ctx = testdata("example");

    let read = |rel: &str| fs::read(rootfs.join(rel)).unwrap();
    assert_eq!(
        read("srv/www/index.html"),
        fs::read(ctx.join("site/index.html")).unwrap()
    );
    assert_eq!(
        read("srv/www/css/site.css"),
        fs::read(ctx.join("site/css/site.css")).unwrap()
    );
    assert_eq!(read("srv/www/version.txt"), b"version 1.0.0\n");
    assert_eq!(
        read("etc/app/config.json"),
        fs::read(ctx.join("config.json")).unwrap()
    );

    let config = fs::metadata(rootfs.join("etc/app/config.json")).unwrap();
    assert_eq!(config.mode() & 0o7777, 0o640, "--chmod=640");
    assert_eq!(
        (config.uid(), config.gid()),
        (1000, 1000),
        "--chown=1000:1000"
    );

    // ADD unpacks the tarball: compare with what tar itself extracts.
    let vendor = sb.path("vendor");
    fs::create_dir(&vendor).unwrap();
    tool(
        "tar",
        args!["-xzf", ctx.join("vendor.tar.gz"), "-C", vendor],
    );
    let expected = tree(&vendor);
    let got = tree(&rootfs.join("opt/vendor"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, node) in &expected {
        assert_eq!(got[path].data, node.data, "opt/vendor/{path}");
        assert_eq!(got[path].mode, node.mode, "mode of opt/vendor/{path}");
    }
    assert!(got.contains_key("run.sh") && got.contains_key("lib/vendor.txt"));

    // .dockerignore'd files are nowhere, and nothing else sneaks in.
    let all = tree(&rootfs);
    for path in all.keys() {
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        assert!(
            !["NOTES.md", "secret.env", "docs", "design.txt", "Dockerfile"]
                .contains(&name.as_ref()),
            "`{path}` should not be in the image"
        );
    }
    let files: Vec<&String> = all
        .iter()
        .filter(|(_, n)| n.mode & 0o170000 != 0o040000)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        files,
        [
            "etc/app/config.json",
            "opt/vendor/lib/vendor.txt",
            "opt/vendor/run.sh",
            "srv/www/css/site.css",
            "srv/www/index.html",
            "srv/www/version.txt",
        ]
    );
}

#[test]
fn build_arg_overrides_the_global_default() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    sb.build(args![
        "-t",
        EXAMPLE_REF,
        "--build-arg",
        "VERSION=2.0",
        "-o",
        dest,
        testdata("example")
    ])
    .success();
    let (_, config) = manifest_and_config(&out, EXAMPLE_REF);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "2.0"
    );
    let rootfs = unpack(&out, EXAMPLE_REF, &sb.path("bundle"));
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/www/version.txt")).unwrap(),
        "version 2.0\n"
    );
}

#[test]
fn build_arg_without_a_value_comes_from_the_environment() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let mut cmd = sb.kiln();
    cmd.env("VERSION", "3.0")
        .args(["build", "-q", "--build-arg", "VERSION", "-t", EXAMPLE_REF])
        .arg("--store")
        .arg(sb.store())
        .arg("-o")
        .arg(format!("type=oci,dest={}", out.display()))
        .arg(testdata("example"));
    crate::common::run(&mut cmd).success();
    let (_, config) = manifest_and_config(&out, EXAMPLE_REF);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "3.0"
    );
}

#[test]
fn docker_archive_reads_back_like_the_oci_layout() {
    let sb = Sandbox::new();
    let oci = sb.path("oci");
    let archive = sb.path("image.tar");
    let outputs = [
        format!("type=oci,dest={}", oci.display()),
        format!("type=docker,dest={}", archive.display()),
    ];
    sb.build(args![
        "-t",
        EXAMPLE_REF,
        "-o",
        outputs[0],
        "-o",
        outputs[1],
        testdata("example")
    ])
    .success();

    let listing = tool("tar", args!["-tf", archive]);
    assert!(
        listing.lines().any(|l| l == "manifest.json"),
        "no manifest.json in:\n{listing}"
    );
    let docker_manifest = json(&tool("tar", args!["-xOf", archive, "manifest.json"]));
    assert_eq!(docker_manifest[0]["RepoTags"], json!([EXAMPLE_REF]));

    let (manifest, config) = manifest_and_config(&oci, EXAMPLE_REF);
    // Docker names the config by its digest and each layer by its diff_id.
    let config_hex = &manifest["config"]["digest"].as_str().unwrap()[7..];
    assert_eq!(docker_manifest[0]["Config"], format!("{config_hex}.json"));
    let layer_files: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}/layer.tar", &d.as_str().unwrap()[7..]))
        .collect();
    assert_eq!(docker_manifest[0]["Layers"], json!(layer_files));
    let inspected = json(&tool(
        "skopeo",
        args!["inspect", format!("docker-archive:{}", archive.display())],
    ));
    assert_eq!(
        inspected["Layers"].as_array().unwrap().len(),
        manifest["layers"].as_array().unwrap().len()
    );
    assert_eq!(inspected["Labels"], config["config"]["Labels"]);
    assert_eq!(inspected["Env"], config["config"]["Env"]);
    let seen = json(&tool(
        "skopeo",
        args![
            "inspect",
            "--config",
            format!("docker-archive:{}", archive.display())
        ],
    ));
    assert_eq!(seen["rootfs"]["diff_ids"], config["rootfs"]["diff_ids"]);

    let copied = sb.path("copied");
    tool(
        "skopeo",
        args![
            "copy",
            "--quiet",
            format!("docker-archive:{}", archive.display()),
            image_ref("oci:", &copied, "x"),
        ],
    );
    let from_archive = tree(&unpack(&copied, "x", &sb.path("bundle-archive")));
    let from_oci = tree(&unpack(&oci, EXAMPLE_REF, &sb.path("bundle-oci")));
    assert!(!from_oci.is_empty());
    assert_eq!(from_archive, from_oci);
}

#[test]
fn oci_archive_reads_back_with_skopeo() {
    let sb = Sandbox::new();
    let file = sb.path("image.tar");
    let dest = format!("type=oci,dest={}", file.display());
    let digest = sb
        .build(args!["-t", EXAMPLE_REF, "-o", dest, testdata("example")])
        .success()
        .digest();
    assert!(file.is_file());
    let inspected: Value = json(&tool(
        "skopeo",
        args!["inspect", image_ref("oci-archive:", &file, EXAMPLE_REF)],
    ));
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(
        inspected["Labels"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    let listing = tool("tar", args!["-tf", file]);
    for entry in ["oci-layout", "index.json"] {
        assert!(
            listing.lines().any(|l| l == entry),
            "no {entry} in:\n{listing}"
        );
    }
}

#[test]
fn context_defaults_to_the_current_directory() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let from_arg = sb
        .build(args![
            "-q",
            "--source-date-epoch",
            "1700000000",
            testdata("example")
        ])
        .success()
        .digest();
    let mut cmd = sb.kiln();
    cmd.current_dir(testdata("example"))
        .args([
            "build",
            "-q",
            "--source-date-epoch",
            "1700000000",
            "-f",
            "Dockerfile",
            "-t",
        ])
        .arg(EXAMPLE_REF)
        .arg("--store")
        .arg(sb.store())
        .arg("-o")
        .arg(format!("type=oci,dest={}", out.display()));
    let from_cwd = crate::common::run(&mut cmd).success();
    assert_eq!(from_cwd.digest(), from_arg);
    assert!(
        from_cwd.stderr.is_empty(),
        "-q prints nothing else: {}",
        from_cwd.stderr
    );
    assert_eq!(
        index_names(&out),
        [(Some(EXAMPLE_REF.to_string()), from_arg)]
    );
}
