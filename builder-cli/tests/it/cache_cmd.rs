//! `kiln cache ls`, `stats` and `prune` over the cache real builds made.

use std::fs;
use std::path::Path;

use crate::args;
use crate::common::{Sandbox, run};

fn example() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/example"))
}

fn cache(sb: &Sandbox, sub: &[&str]) -> String {
    let mut cmd = sb.kiln();
    cmd.arg("cache")
        .args(sub)
        .arg("--cache-dir")
        .arg(sb.path("cache"));
    run(&mut cmd).success().stdout
}

fn unpacked_layers(sb: &Sandbox) -> usize {
    fs::read_dir(sb.path("cache/layers"))
        .map(|d| d.filter(|e| e.as_ref().unwrap().path().is_dir()).count())
        .unwrap_or(0)
}

#[test]
fn ls_stats_and_prune_show_and_clean_what_builds_left() {
    let sb = Sandbox::new();
    let ctx = sb.path("ctx");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(example())
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(copied.success());
    let build = || {
        sb.build(args![
            "-q",
            "--cache-dir",
            sb.path("cache"),
            "--source-date-epoch",
            "1700000000",
            &ctx
        ])
        .success()
        .digest()
    };
    let first = build();
    assert_eq!(build(), first);
    // A late change: the steps before it hit, and the COPY after them reads the stage's
    // filesystem from its (cached) layers, unpacked into the cache dir.
    fs::write(ctx.join("config.json"), "{\"changed\": true}\n").unwrap();
    let changed = build();
    assert_ne!(changed, first);

    let ls = cache(&sb, &["ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("KEY"), "{ls}");
    assert_eq!(
        lines.len(),
        1 + 8,
        "six layer steps, two of them twice:\n{ls}"
    );
    for instruction in [
        "COPY site/ /site/",
        "WORKDIR /srv/www",
        "COPY --from=assets /site/ /srv/www/",
        "ADD vendor.tar.gz /opt/vendor/",
    ] {
        assert!(
            lines.iter().any(|l| l.ends_with(instruction)),
            "{instruction} missing:\n{ls}"
        );
    }

    let stats = cache(&sb, &["stats"]);
    assert!(stats.contains("entries:  8\n"), "{stats}");
    assert!(stats.contains("builds:   3\n"), "{stats}");
    assert!(
        stats.contains("steps:    10 cached, 8 built (55.6% hit rate)\n"),
        "{stats}"
    );
    assert!(unpacked_layers(&sb) > 0);

    // Keeping everything used in the last hour removes nothing.
    let kept = cache(&sb, &["prune", "--keep-duration", "1h"]);
    assert_eq!(
        kept,
        "removed 0 entries, 0 layers and 0 unpacked layers, 0 B freed\n"
    );
    let all = cache(&sb, &["prune"]);
    assert!(all.starts_with("removed 8 entries, "), "{all}");
    assert!(cache(&sb, &["stats"]).contains("entries:  0\n"));
    assert_eq!(unpacked_layers(&sb), 0);
    assert_eq!(
        fs::read_dir(sb.path("cache/build-cache/content/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );

    // The next build starts over and makes the same image.
    let report = sb.path("report.json");
    sb.build(args![
        "-q",
        "--cache-dir",
        sb.path("cache"),
        "--source-date-epoch",
        "1700000000",
        "--report",
        &report,
        &ctx
    ])
    .success();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["image"]["digest"], changed);
    assert_eq!(json["summary"]["hits"], 0);
    assert_eq!(json["steps"][1]["reason"]["kind"], "not_in_cache");
}

#[test]
fn bad_sizes_and_durations_are_usage_errors() {
    let sb = Sandbox::new();
    let cases: [(&[&str], &str); 2] = [
        (
            &["cache", "prune", "--keep-storage", "5 parsecs"],
            "invalid --keep-storage `5 parsecs`",
        ),
        (
            &["build", "--cache-ttl", "soon", "."],
            "invalid --cache-ttl `soon`",
        ),
    ];
    for (args, message) in cases {
        let mut cmd = sb.kiln();
        cmd.args(args);
        let out = run(&mut cmd);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(message), "{}", out.stderr);
    }
}
