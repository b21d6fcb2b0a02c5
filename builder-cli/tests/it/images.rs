//! Without `--output` the image goes to the local store, which `kiln images` lists and which
//! is itself an OCI layout other tools can read.

use std::fs;
use std::path::Path;

use crate::args;
use crate::common::{Sandbox, image_ref, index_names, json, run, testdata, tool};

/// The `kiln images` rows (header skipped) as whitespace-separated columns.
fn rows(listing: &str) -> Vec<Vec<String>> {
    let mut lines = listing.lines();
    let header = lines.next().expect("a header line");
    assert!(
        header.starts_with("NAME") && header.contains("DIGEST"),
        "{header}"
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Asserts that `listing` has a row for `name` showing `digest` (abbreviated or not).
#[track_caller]
fn assert_listed(listing: &str, name: &str, digest: &str) {
    let rows = rows(listing);
    let row = rows
        .iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("`{name}` not listed:\n{listing}"));
    let shown = row[1].as_str();
    assert!(
        shown.len() >= "sha256:".len() + 12 && digest.starts_with(shown),
        "`{name}` listed with digest {shown}, built {digest}:\n{listing}"
    );
}

#[test]
fn built_image_is_listed_with_its_digest() {
    let sb = Sandbox::new();
    let digest_file = sb.path("digest.txt");
    let build = sb
        .build(args![
            "-t",
            "app:1",
            "--digest-file",
            digest_file,
            testdata("example")
        ])
        .success();
    let digest = build.digest();
    assert_eq!(fs::read_to_string(&digest_file).unwrap().trim_end(), digest);

    let listing = run(sb.kiln().arg("images").arg("--store").arg(sb.store()))
        .success()
        .stdout;
    assert_listed(&listing, "app:1", &digest);
    assert_eq!(rows(&listing).len(), 1, "{listing}");

    // The store is an OCI layout in its own right.
    assert_eq!(
        index_names(&sb.store()),
        [(Some("app:1".into()), digest.clone())]
    );
    let inspected = json(&tool(
        "skopeo",
        args!["inspect", image_ref("oci:", &sb.store(), "app:1")],
    ));
    assert_eq!(inspected["Digest"], digest.as_str());
}

#[test]
fn retagging_moves_the_name() {
    let sb = Sandbox::new();
    let first = sb
        .build(args!["-q", "-t", "app:1", testdata("example")])
        .success()
        .digest();
    let second = sb
        .build(args![
            "-q",
            "-t",
            "app:1",
            "-t",
            "app:child",
            "--target",
            "child",
            testdata("multistage")
        ])
        .success()
        .digest();
    assert_ne!(first, second);
    let listing = run(sb.kiln().arg("images").arg("--store").arg(sb.store()))
        .success()
        .stdout;
    assert_listed(&listing, "app:1", &second);
    assert_listed(&listing, "app:child", &second);
    let names: Vec<_> = rows(&listing).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        names.iter().filter(|n| *n == "app:1").count(),
        1,
        "{listing}"
    );
}

#[test]
fn default_store_follows_kiln_store_and_the_data_dir() {
    let sb = Sandbox::new();
    // KILN_STORE, for both commands.
    let env_store = sb.path("env-store");
    let digest = run(sb
        .kiln()
        .env("KILN_STORE", &env_store)
        .args(["build", "-q", "-t", "env:1"])
        .arg(testdata("example")))
    .success()
    .digest();
    let listing = run(sb.kiln().env("KILN_STORE", &env_store).arg("images"))
        .success()
        .stdout;
    assert_listed(&listing, "env:1", &digest);

    // Neither: the data directory.
    let digest = run(sb
        .kiln()
        .args(["build", "-q", "-t", "def:1"])
        .arg(testdata("example")))
    .success()
    .digest();
    let default_store = sb.xdg_data_home().join("kiln").join("store");
    assert!(
        Path::new(&default_store).join("index.json").is_file(),
        "no store at {}",
        default_store.display()
    );
    let listing = run(sb.kiln().arg("images")).success().stdout;
    assert_listed(&listing, "def:1", &digest);
    assert!(!listing.contains("env:1"), "{listing}");
}

#[test]
fn empty_store_lists_nothing() {
    let sb = Sandbox::new();
    let listing = run(sb.kiln().arg("images").arg("--store").arg(sb.store()))
        .success()
        .stdout;
    assert!(rows(&listing).is_empty(), "{listing}");
}

/// Runs `count` builds of the example at once into `sb`'s store, each with its own tag
/// `app:<n>`, and asserts that all succeed and all are listed afterwards.
fn parallel_builds(sb: &Sandbox, count: usize) {
    let children: Vec<_> = (1..=count)
        .map(|i| {
            let child = sb
                .kiln()
                .arg("build")
                .arg("--store")
                .arg(sb.store())
                .args(["-q", "-t", &format!("app:{i}"), "--build-arg"])
                .arg(format!("VERSION={i}"))
                .arg(testdata("example"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (i, child)
        })
        .collect();
    let mut built = Vec::new();
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "build {i} failed:\n{stderr}");
        built.push((
            i,
            String::from_utf8(out.stdout)
                .unwrap()
                .trim_end()
                .to_string(),
        ));
    }
    let listing = run(sb.kiln().arg("images").arg("--store").arg(sb.store()))
        .success()
        .stdout;
    let listed = rows(&listing);
    let missing: Vec<String> = built
        .iter()
        .map(|(i, _)| format!("app:{i}"))
        .filter(|name| !listed.iter().any(|r| &r[0] == name))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {missing:?}; the store lists:\n{listing}"
    );
    for (i, digest) in &built {
        assert_listed(&listing, &format!("app:{i}"), digest);
    }
}

/// Parallel builds (a CI matrix, `make -j`) share one store: every one of them must end up
/// in its index.
#[test]
fn concurrent_builds_keep_every_tag() {
    let sb = Sandbox::new();
    sb.build(args!["-q", "-t", "first:1", testdata("example")])
        .success();
    parallel_builds(&sb, 12);
}

/// The first use of a store may well be several builds at once.
#[test]
fn concurrent_builds_can_create_the_store() {
    let sb = Sandbox::new();
    parallel_builds(&sb, 6);
}
