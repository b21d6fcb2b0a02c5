//! `SOURCE_DATE_EPOCH` makes builds reproducible: the same inputs give the same digest, whatever
//! the files' mtimes and whichever store builds them.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{
    EXAMPLE_REF, Sandbox, blob, copy_dir, manifest_and_config, testdata, tree, unpack,
};

const EPOCH: i64 = 1_700_000_000;
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

/// Builds `context` into a fresh store and OCI layout named `name` inside `sb`; returns the
/// printed digest and the layout.
fn build(
    sb: &Sandbox,
    name: &str,
    context: &Path,
    epoch: Option<&str>,
) -> (String, std::path::PathBuf) {
    let out = sb.path(&format!("{name}-out"));
    let mut cmd = sb.kiln();
    cmd.arg("build")
        .arg("-q")
        .arg("--store")
        .arg(sb.path(&format!("{name}-store")))
        .arg("-t")
        .arg(EXAMPLE_REF)
        .arg("-o")
        .arg(format!("type=oci,dest={}", out.display()))
        .arg(context);
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let digest = crate::common::run(&mut cmd).success().digest();
    (digest, out)
}

/// The layer blobs of the image, in order.
fn layer_blobs(layout: &Path) -> Vec<Vec<u8>> {
    let (manifest, _) = manifest_and_config(layout, EXAMPLE_REF);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(layout, l["digest"].as_str().unwrap()))
        .collect()
}

/// Gives every file and directory under `dir` the mtime `when`.
fn touch_all(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            touch_all(&path, when);
        }
        fs::File::open(&path).unwrap().set_modified(when).unwrap();
    }
    fs::File::open(dir).unwrap().set_modified(when).unwrap();
}

/// Gives every file and directory under `dir` the owner `id:id`.
fn chown_all(dir: &Path, id: u32) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chown_all(&path, id);
        }
        std::os::unix::fs::lchown(&path, Some(id), Some(id)).unwrap();
    }
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).unwrap();
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn unix_time(rfc3339: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| rfc3339[r].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    // Days from civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[test]
fn same_inputs_give_the_same_digest() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    copy_dir(&testdata("example"), &ctx);

    let (first, first_out) = build(&sb, "a", &ctx, Some(&EPOCH.to_string()));
    // The flag and the environment variable mean the same.
    let out_b = sb.path("b-out");
    let second = sb
        .kiln()
        .args([
            "build",
            "-q",
            "--source-date-epoch",
            &EPOCH.to_string(),
            "-t",
            EXAMPLE_REF,
        ])
        .arg("--store")
        .arg(sb.path("b-store"))
        .arg("-o")
        .arg(format!("type=oci,dest={}", out_b.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(String::from_utf8(second.stdout).unwrap().trim_end(), first);
    assert_eq!(layer_blobs(&first_out), layer_blobs(&out_b));

    let (_, config) = manifest_and_config(&first_out, EXAMPLE_REF);
    assert_eq!(config["created"], EPOCH_RFC3339);
    for h in config["history"].as_array().unwrap() {
        assert_eq!(h["created"], EPOCH_RFC3339);
    }
    // No file in the image is newer than the epoch.
    let rootfs = unpack(&first_out, EXAMPLE_REF, &sb.path("bundle"));
    for (path, node) in tree(&rootfs) {
        assert!(
            node.mtime <= EPOCH,
            "`{path}` has mtime {} > {EPOCH}",
            node.mtime
        );
    }

    // Another checkout elsewhere, owned by someone else, gives the same image.
    let elsewhere = sb.path("elsewhere/deeper/ctx");
    copy_dir(&ctx, &elsewhere);
    chown_all(&elsewhere, 4321);
    let (moved, _) = build(&sb, "e", &elsewhere, Some(&EPOCH.to_string()));
    assert_eq!(
        moved, first,
        "the context's path or owner changed the digest"
    );

    // New mtimes, all later than the epoch, change nothing.
    touch_all(&ctx, SystemTime::now() + Duration::from_secs(3600));
    let (touched, touched_out) = build(&sb, "c", &ctx, Some(&EPOCH.to_string()));
    assert_eq!(touched, first, "touching the context changed the digest");
    assert_eq!(layer_blobs(&touched_out), layer_blobs(&first_out));

    // New content does.
    fs::write(ctx.join("site/index.html"), "<h1>changed</h1>\n").unwrap();
    let (changed, _) = build(&sb, "d", &ctx, Some(&EPOCH.to_string()));
    assert_ne!(changed, first, "changing a file kept the digest");
}

#[test]
fn without_the_epoch_the_image_is_created_now() {
    let sb = Sandbox::new();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_, out) = build(&sb, "a", &testdata("example"), None);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_, config) = manifest_and_config(&out, EXAMPLE_REF);
    let created = unix_time(config["created"].as_str().unwrap());
    assert!(
        (before - 1..=after + 1).contains(&created),
        "created {} is not between {before} and {after}",
        config["created"]
    );
}

#[test]
fn without_the_epoch_a_cached_rebuild_is_the_same_image_and_a_rebuilt_step_is_dated_anew() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    copy_dir(&testdata("example"), &ctx);
    let (first, first_out) = build(&sb, "a", &ctx, None);
    let (_, before) = manifest_and_config(&first_out, EXAMPLE_REF);
    // Whole seconds later, a build that dated anything now could not match.
    std::thread::sleep(Duration::from_millis(1100));
    let (again, again_out) = build(&sb, "b", &ctx, None);
    assert_eq!(again, first, "a cached rebuild changed the image");
    assert_eq!(layer_blobs(&again_out), layer_blobs(&first_out));

    // A step built again is dated now, and so are the steps after it and the image; the
    // steps before it keep their times.
    fs::write(ctx.join("config.json"), "{\"changed\": true}\n").unwrap();
    let (changed, changed_out) = build(&sb, "c", &ctx, None);
    assert_ne!(changed, first);
    let (_, after) = manifest_and_config(&changed_out, EXAMPLE_REF);
    let entries = |config: &serde_json::Value| -> Vec<(String, i64)> {
        config["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let by = h["created_by"].as_str().unwrap();
                let keyword = by.split(' ').next().unwrap().to_string();
                (keyword, unix_time(h["created"].as_str().unwrap()))
            })
            .collect()
    };
    let (old, new) = (entries(&before), entries(&after));
    let keywords: Vec<&str> = new.iter().map(|(k, _)| k.as_str()).collect();
    let rebuilt = keywords.iter().rposition(|k| *k == "COPY").unwrap();
    assert_eq!(keywords[rebuilt + 1], "ADD", "{keywords:?}");
    for (i, ((keyword, was), (_, is))) in old.iter().zip(&new).enumerate() {
        if i < rebuilt {
            assert_eq!(is, was, "{keyword} (entry {i}) was dated anew");
        } else {
            assert!(is > was, "{keyword} (entry {i}) kept its time {was}");
            assert_eq!(*is, new[rebuilt].1, "{keyword} (entry {i})");
        }
    }
    assert_eq!(
        unix_time(after["created"].as_str().unwrap()),
        new[rebuilt].1
    );
    // The first entries make no layer: dated like the first entry that does.
    assert_eq!(keywords[..4], ["ARG", "LABEL", "ENV", "WORKDIR"]);
    let first_layer = 3;
    for (keyword, was) in &old[..first_layer] {
        assert_eq!(*was, old[first_layer].1, "{keyword}");
    }
}

#[test]
fn unix_time_reads_rfc3339() {
    assert_eq!(unix_time(EPOCH_RFC3339), EPOCH);
    assert_eq!(unix_time("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_time("2000-02-29T12:00:00Z"), 951_825_600);
}
