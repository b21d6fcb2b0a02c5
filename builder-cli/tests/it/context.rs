//! What a build takes from its context, built in a temp dir because git cannot hold everything
//! these cases need (ownership, exact modes): file kinds, `.dockerignore`, symlinks, and archives
//! that try to escape their destination.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::args;
use crate::common::{Node, Sandbox, manifest_and_config, tree, unpack};

/// Writes `contents` to `root/rel`, creating parent directories.
fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, contents).unwrap();
    path
}

/// Builds `ctx` (with `extra` arguments) into an OCI layout, unpacks it with umoci, and returns
/// the rootfs tree.
fn build_tree(
    sb: &Sandbox,
    ctx: &Path,
    extra: &[&str],
) -> std::collections::BTreeMap<String, Node> {
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    let mut cmd = sb.kiln();
    cmd.arg("build")
        .arg("--store")
        .arg(sb.store())
        .args(["-q", "-t", "ctx:1", "-o", &dest])
        .args(extra)
        .arg(ctx);
    crate::common::run(&mut cmd).success();
    tree(&unpack(&out, "ctx:1", &sb.path("bundle")))
}

fn is_file(node: &Node) -> bool {
    node.mode & 0o170000 == 0o100000
}

fn is_symlink(node: &Node) -> bool {
    node.mode & 0o170000 == 0o120000
}

#[test]
fn file_kinds_modes_and_owners_survive_as_docker_copies_them() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    write(&ctx, "src/a.txt", "a\n");
    write(&ctx, "src/sub/b.txt", "b\n");
    symlink("a.txt", ctx.join("src/link")).unwrap();
    let tool = write(&ctx, "bin/tool", "#!/bin/sh\necho tool\n");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    // Longer than the 100 bytes of a plain tar header name.
    let long = format!(
        "{}/{}/{}.txt",
        "d".repeat(60),
        "e".repeat(70),
        "f".repeat(90)
    );
    write(&ctx, &long, "long\n");
    let big: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write(&ctx, "data/big.bin", &big);
    write(&ctx, "data/empty", "");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nCOPY src/ /src/\nCOPY bin/tool /usr/local/bin/\nCOPY d* /deep/\nCOPY data/big.bin data/empty /data/\n",
    );
    // Host ownership must not leak into the image.
    for entry in walk(&ctx) {
        std::os::unix::fs::lchown(&entry, Some(4321), Some(4321)).unwrap();
    }

    let got = build_tree(&sb, &ctx, &[]);
    assert_eq!(got["src/a.txt"].data, b"a\n");
    assert_eq!(got["src/sub/b.txt"].data, b"b\n");
    assert!(
        is_symlink(&got["src/link"]),
        "a symlink inside a copied directory stays one"
    );
    assert_eq!(got["src/link"].data, b"a.txt");
    assert_eq!(got["usr/local/bin/tool"].mode & 0o7777, 0o755);
    assert_eq!(got["src/a.txt"].mode & 0o7777, 0o644);
    let deep = format!("deep/{}", long.split_once('/').unwrap().1);
    assert_eq!(got[&deep].data, b"long\n", "long names survive");
    assert_eq!(got["data/big.bin"].data, big);
    assert!(is_file(&got["data/empty"]) && got["data/empty"].data.is_empty());
    for (path, node) in &got {
        assert_eq!((node.uid, node.gid), (0, 0), "`{path}` kept the host owner");
    }
}

/// Every path under `root`, itself included.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    for entry in fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn dockerignore_exceptions_and_dockerfile_specific_ignore_files() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    write(&ctx, "keep.md", "keep\n");
    write(&ctx, "drop.md", "drop\n");
    write(&ctx, "a.txt", "a\n");
    write(&ctx, "b.txt", "b\n");
    write(&ctx, ".dockerignore", "*.md\n!keep.md\nb.txt\n");
    write(&ctx, "Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    let got = build_tree(&sb, &ctx, &[]);
    let files: Vec<&str> = got
        .iter()
        .filter(|(_, n)| is_file(n))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "ctx/.dockerignore",
            "ctx/Dockerfile",
            "ctx/a.txt",
            "ctx/keep.md"
        ]
    );

    // A Dockerfile elsewhere brings its own `<name>.dockerignore`, which replaces the context's.
    let sb = Sandbox::new();
    let dockerfiles = sb.path("dockerfiles");
    let dockerfile = write(
        &dockerfiles,
        "app.Dockerfile",
        "FROM scratch\nCOPY . /ctx/\n",
    );
    write(&dockerfiles, "app.Dockerfile.dockerignore", "a.txt\n");
    let got = build_tree(&sb, &ctx, &["-f", dockerfile.to_str().unwrap()]);
    let files: Vec<&str> = got
        .iter()
        .filter(|(_, n)| is_file(n))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "ctx/.dockerignore",
            "ctx/Dockerfile",
            "ctx/b.txt",
            "ctx/drop.md",
            "ctx/keep.md"
        ]
    );
}

#[test]
fn symlinked_sources_resolve_inside_the_context() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    write(&ctx, "a.txt", "inside\n");
    symlink("a.txt", ctx.join("relative")).unwrap();
    // An absolute target means the context's root, never the host's.
    symlink("/a.txt", ctx.join("absolute")).unwrap();
    let host = write(&sb.path("host"), "a.txt", "host secret\n");
    symlink(&host, ctx.join("outside")).unwrap();
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nCOPY relative /r\nCOPY absolute /a\n",
    );
    let got = build_tree(&sb, &ctx, &[]);
    for path in ["r", "a"] {
        assert!(
            is_file(&got[path]),
            "`{path}` should be the file the link names"
        );
        assert_eq!(got[path].data, b"inside\n", "{path}");
    }

    // A link to a host file outside the context does not read it.
    write(&ctx, "Dockerfile", "FROM scratch\nCOPY outside /o\n");
    let sb2 = Sandbox::new();
    let mut cmd = sb2.kiln();
    cmd.arg("build")
        .arg("--store")
        .arg(sb2.store())
        .arg("-o")
        .arg(format!("type=oci,dest={}", sb2.path("out").display()))
        .arg(&ctx);
    let out = crate::common::run(&mut cmd);
    if out.code == 0 {
        let got = tree(&unpack(&sb2.path("out"), "latest", &sb2.path("bundle")));
        assert!(
            got.values().all(|n| n.data != b"host secret\n"),
            "a host file leaked into the image"
        );
    } else {
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("outside"), "{}", out.stderr);
    }
}

/// Writes a tar file at `path` whose entries try to leave their destination.
fn evil_tar(path: &Path, escape_to: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    let file = |builder: &mut tar::Builder<fs::File>, name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_704_067_200);
        header.set_entry_type(tar::EntryType::Regular);
        // `set_path` refuses `..`; write the raw name the way a hostile archive would.
        let raw = &mut header.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    };
    let link = |builder: &mut tar::Builder<fs::File>, name: &str, target: &str| {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(1_704_067_200);
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, name, target).unwrap();
    };
    let up = "../".repeat(12);
    let escape = escape_to.to_str().unwrap().trim_start_matches('/');
    file(
        &mut builder,
        &format!("{up}{escape}/dotdot.txt"),
        b"dotdot\n",
    );
    file(
        &mut builder,
        &format!("/{escape}/absolute.txt"),
        b"absolute\n",
    );
    link(&mut builder, "hop", escape_to.to_str().unwrap());
    file(&mut builder, "hop/through-symlink.txt", b"symlink\n");
    file(&mut builder, "ok.txt", b"ok\n");
    builder.finish().unwrap();
}

#[test]
fn add_keeps_archive_entries_inside_the_image() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    let escape_to = sb.path("escaped");
    fs::create_dir_all(&ctx).unwrap();
    fs::create_dir_all(&escape_to).unwrap();
    evil_tar(&ctx.join("evil.tar"), &escape_to);
    write(&ctx, "Dockerfile", "FROM scratch\nADD evil.tar /dest/\n");
    let mut cmd = sb.kiln();
    cmd.arg("build")
        .arg("--store")
        .arg(sb.store())
        .args(["-q", "-t", "ctx:1", "-o"])
        .arg(format!("type=oci,dest={}", sb.path("out").display()))
        .arg(&ctx);
    let out = crate::common::run(&mut cmd);
    let escaped: Vec<_> = fs::read_dir(&escape_to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(escaped.is_empty(), "ADD wrote on the host: {escaped:?}");
    if out.code != 0 {
        // Refusing a hostile archive is fine too, as long as it says so.
        assert_eq!(out.code, 1, "{}", out.stderr);
        return;
    }
    let got = tree(&unpack(&sb.path("out"), "ctx:1", &sb.path("bundle")));
    assert_eq!(got["dest/ok.txt"].data, b"ok\n");
    for (path, node) in &got {
        if is_file(node) {
            assert!(
                path.starts_with("dest/"),
                "`{path}` is outside ADD's destination"
            );
        }
    }
}

#[test]
fn label_and_platform_flags_reach_the_config() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nLABEL a=from-dockerfile keep=yes\n",
    );
    let out = sb.path("out");
    let dest = format!("type=oci,dest={}", out.display());
    sb.build(args![
        "-q",
        "-t",
        "meta:1",
        "--label",
        "a=from-flag",
        "--label",
        "b=2",
        "--platform",
        "linux/arm64/v8",
        "-o",
        dest,
        ctx
    ])
    .success();
    let (_, config) = manifest_and_config(&out, "meta:1");
    assert_eq!(
        config["config"]["Labels"],
        json!({"a": "from-flag", "b": "2", "keep": "yes"}),
        "--label adds labels and wins over the Dockerfile"
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
}

#[test]
fn stage_passwd_names_chown_and_user() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    write(
        &ctx,
        "passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1500:1600::/home/app:/bin/sh\n",
    );
    write(&ctx, "group", "root:x:0:\napp:x:1600:\nextra:x:1700:\n");
    write(&ctx, "a.txt", "a\n");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nCOPY passwd group /etc/\nCOPY --chown=app a.txt /home/app/user-only.txt\nCOPY --chown=app:extra a.txt /home/app/both.txt\nCOPY --chown=1234 a.txt /home/app/by-id.txt\nUSER app\n",
    );
    let got = build_tree(&sb, &ctx, &[]);
    let owner = |p: &str| (got[p].uid, got[p].gid);
    assert_eq!(
        owner("home/app/user-only.txt"),
        (1500, 1600),
        "the user's primary group"
    );
    assert_eq!(owner("home/app/both.txt"), (1500, 1700));
    assert_eq!(
        owner("home/app/by-id.txt"),
        (1234, 1234),
        "a bare uid is also the gid"
    );
    assert_eq!(owner("etc/passwd"), (0, 0));
}
