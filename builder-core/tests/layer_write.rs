//! Layers written by `write_layer`, read back with the `tar` crate and with GNU tar, gzip and
//! sha256sum.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use builder_core::layer::{
    Compression, Content, Entry, EntryKind, LayerError, LayerInfo, LayerOptions, MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP, write_layer,
};
use flate2::read::GzDecoder;

const MTIME: i64 = 1_700_000_000;
/// A real `security.capability` value (VFS_CAP_REVISION_2 granting cap_net_bind_service).
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

fn base(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: MTIME,
        xattrs: BTreeMap::new(),
    }
}

fn bytes(path: &str, body: &[u8], mode: u32) -> Entry {
    base(path, EntryKind::File(Content::Bytes(Arc::from(body))), mode)
}

fn dir(path: &str, mode: u32) -> Entry {
    Entry::dir(path, mode, 0, 0, MTIME)
}

fn long_dir_a() -> String {
    // 120 bytes of directories: a file under it is over 100 bytes but splits into USTAR prefix.
    format!("{}/{}", "d".repeat(59), "e".repeat(60))
}

fn long_component() -> String {
    // One 110-byte component cannot be split: needs PAX.
    "n".repeat(110)
}

fn deep_path() -> String {
    // 319 bytes with every component short: too long for a 155-byte prefix and 100-byte name.
    (0..40)
        .map(|i| format!("level{i:02}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// Every entry kind and the header edge cases, in deliberately unsorted order.
fn all_kinds(host_file: &Path) -> Vec<Entry> {
    let deep = deep_path();
    let mut deep_dirs: Vec<Entry> = Vec::new();
    let mut prefix = String::new();
    for part in deep.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        deep_dirs.push(dir(&prefix, 0o755));
    }
    let long_a = long_dir_a();
    let mut entries = vec![
        bytes("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        dir("usr/bin", 0o755),
        dir("usr", 0o755),
        Entry {
            uid: 1000,
            gid: 1000,
            ..dir("home/user", 0o700)
        },
        dir("home", 0o755),
        Entry {
            uid: 1000,
            gid: 1000,
            ..bytes("home/user/.profile", b"export A=1\n", 0o644)
        },
        dir("tmp", 0o1777),
        bytes("usr/bin/su", b"setuid", 0o4755),
        bytes("usr/bin/wall", b"setgid", 0o2755),
        Entry {
            xattrs: BTreeMap::from([("security.capability".to_string(), CAPABILITY.to_vec())]),
            ..bytes("usr/bin/ping", b"ping binary", 0o755)
        },
        base(
            "usr/bin/sh",
            EntryKind::Symlink("/bin/busybox".into()),
            0o777,
        ),
        base(
            "usr/bin/long-link",
            EntryKind::Symlink(format!("../{}/target", "t".repeat(120))),
            0o777,
        ),
        base(
            "usr/bin/tool2",
            EntryKind::Hardlink("usr/bin/tool".into()),
            0o755,
        ),
        dir("dev", 0o755),
        base(
            "dev/null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        base(
            "dev/sda",
            EntryKind::BlockDevice { major: 8, minor: 0 },
            0o660,
        ),
        base("dev/fifo", EntryKind::Fifo, 0o644),
        base(
            "data.bin",
            EntryKind::File(Content::Path(host_file.to_path_buf())),
            0o640,
        ),
        Entry::whiteout("etc/removed", MTIME),
        dir("etc", 0o755),
        Entry {
            uid: 3_000_000,
            gid: 3_000_001,
            ..bytes("bigid", b"large ids", 0o600)
        },
        dir("d", 0o755),
        dir(&format!("d/{}", &long_a[2..]), 0o755),
        bytes(&format!("d/{}/file.txt", &long_a[2..]), b"long a", 0o644),
        dir(&long_component(), 0o755),
        bytes(&format!("{}/f", long_component()), b"pax name", 0o644),
        bytes(&format!("{deep}/leaf"), b"deep", 0o644),
    ];
    entries.extend(deep_dirs);
    entries
}

fn host_file(dir: &Path) -> PathBuf {
    let path = dir.join("data.bin");
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&path, body).unwrap();
    path
}

fn write_to(path: &Path, entries: Vec<Entry>, opts: &LayerOptions) -> LayerInfo {
    let (info, file) = write_layer(entries, File::create(path).unwrap(), opts).unwrap();
    file.sync_all().unwrap();
    info
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256sum(data: &[u8], dir: &Path) -> String {
    let tmp = dir.join("sha-input");
    fs::write(&tmp, data).unwrap();
    let out = String::from_utf8(run(Command::new("sha256sum").arg(&tmp))).unwrap();
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

struct ReadBack {
    path: String,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    link: Option<String>,
    body: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    dev: Option<(u32, u32)>,
    uname: Vec<u8>,
}

fn read_back(tar_bytes: &[u8]) -> Vec<ReadBack> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut xattrs = BTreeMap::new();
        let mut pax_uid = None;
        let mut pax_mtime = None;
        if let Some(exts) = entry.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                let key = ext.key().unwrap();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
                }
                if key == "uid" {
                    pax_uid = Some(ext.value().unwrap().parse::<u64>().unwrap());
                }
                if key == "mtime" {
                    pax_mtime = Some(ext.value().unwrap().parse::<i64>().unwrap());
                }
            }
        }
        let header = entry.header().clone();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        out.push(ReadBack {
            path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            typeflag: header.entry_type().as_byte(),
            mode: header.mode().unwrap(),
            uid: pax_uid.unwrap_or_else(|| header.uid().unwrap()),
            gid: header.gid().unwrap(),
            mtime: pax_mtime.unwrap_or_else(|| header.mtime().unwrap() as i64),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            body,
            xattrs,
            dev: header
                .device_major()
                .unwrap()
                .zip(header.device_minor().unwrap()),
            uname: header.username_bytes().unwrap_or_default().to_vec(),
        });
    }
    out
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn find<'a>(entries: &'a [ReadBack], path: &str) -> &'a ReadBack {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in layer"))
}

#[test]
fn every_kind_reads_back_with_the_tar_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_file(tmp.path());
    let layer = tmp.path().join("layer.tar.gz");
    let info = write_to(&layer, all_kinds(&host), &LayerOptions::default());
    assert_eq!(info.media_type, MEDIA_TYPE_TAR_GZIP);
    let entries = read_back(&gunzip(&layer));

    let tool = find(&entries, "usr/bin/tool");
    assert_eq!(
        (tool.typeflag, tool.mode, tool.uid, tool.gid),
        (b'0', 0o755, 0, 0)
    );
    assert_eq!(tool.body, b"#!/bin/sh\necho tool\n");
    assert_eq!(tool.mtime, MTIME);
    assert!(tool.uname.is_empty(), "uname must be empty");

    let home = find(&entries, "home/user/");
    assert_eq!(
        (home.typeflag, home.mode, home.uid, home.gid),
        (b'5', 0o700, 1000, 1000)
    );
    let profile = find(&entries, "home/user/.profile");
    assert_eq!((profile.uid, profile.gid), (1000, 1000));
    assert_eq!(find(&entries, "tmp/").mode, 0o1777);
    assert_eq!(find(&entries, "usr/bin/su").mode, 0o4755);
    assert_eq!(find(&entries, "usr/bin/wall").mode, 0o2755);

    let ping = find(&entries, "usr/bin/ping");
    assert_eq!(ping.xattrs["security.capability"], CAPABILITY);
    assert_eq!(ping.body, b"ping binary");

    let sh = find(&entries, "usr/bin/sh");
    assert_eq!(
        (sh.typeflag, sh.link.as_deref()),
        (b'2', Some("/bin/busybox"))
    );
    let long_link = find(&entries, "usr/bin/long-link");
    assert_eq!(
        long_link.link.as_deref(),
        Some(format!("../{}/target", "t".repeat(120)).as_str())
    );
    let hard = find(&entries, "usr/bin/tool2");
    assert_eq!(
        (hard.typeflag, hard.link.as_deref()),
        (b'1', Some("usr/bin/tool"))
    );
    assert!(hard.body.is_empty());

    let null = find(&entries, "dev/null");
    assert_eq!(
        (null.typeflag, null.dev, null.mode),
        (b'3', Some((1, 3)), 0o666)
    );
    let sda = find(&entries, "dev/sda");
    assert_eq!((sda.typeflag, sda.dev), (b'4', Some((8, 0))));
    assert_eq!(find(&entries, "dev/fifo").typeflag, b'6');

    let data = find(&entries, "data.bin");
    assert_eq!(data.body, fs::read(&host).unwrap());
    assert_eq!(data.mode, 0o640);

    let wh = find(&entries, "etc/.wh.removed");
    assert_eq!((wh.typeflag, wh.body.len()), (b'0', 0));

    assert_eq!(find(&entries, "bigid").uid, 3_000_000);

    let long_a = format!("d/{}/file.txt", &long_dir_a()[2..]);
    assert!(long_a.len() > 100);
    assert_eq!(find(&entries, &long_a).body, b"long a");
    assert_eq!(
        find(&entries, &format!("{}/f", long_component())).body,
        b"pax name"
    );
    let deep = format!("{}/leaf", deep_path());
    assert!(deep.len() > 155);
    assert_eq!(find(&entries, &deep).body, b"deep");
    eprintln!("{} entries read back", entries.len());
}

#[test]
fn headers_use_ustar_unless_pax_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_file(tmp.path());
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch: None,
    };
    let (info, raw) = write_layer(all_kinds(&host), Vec::new(), &opts).unwrap();
    assert_eq!(info.media_type, MEDIA_TYPE_TAR);
    assert_eq!(info.digest, info.diff_id);
    assert_eq!(info.size, raw.len() as u64);

    // Walk the raw blocks: which headers are PAX ('x') and what they are called.
    let mut pax_names = Vec::new();
    let mut offset = 0;
    while offset + 512 <= raw.len() && raw[offset..offset + 512].iter().any(|&b| b != 0) {
        let block = &raw[offset..offset + 512];
        assert_eq!(
            &block[257..265],
            b"ustar\x0000",
            "every header has USTAR magic"
        );
        assert_eq!(block[155], b' ', "checksum ends NUL, space");
        assert_eq!(block[154], 0);
        let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8(block[..name_end].to_vec()).unwrap();
        let size_text = std::str::from_utf8(&block[124..135]).unwrap();
        let size = u64::from_str_radix(size_text, 8).unwrap();
        if block[156] == b'x' {
            pax_names.push(name);
        }
        offset += 512 + size.div_ceil(512) as usize * 512;
    }
    assert_eq!(
        raw.len() - offset,
        1024,
        "the archive ends with two zero blocks"
    );
    let deep = deep_path();
    let expected_pax = [
        "PaxHeaders.0/bigid".to_string(),
        // `<110 n>/PaxHeaders.0[/f]`, truncated to the 100-byte name field.
        "n".repeat(100),
        // `<deep>/PaxHeaders.0/leaf`, truncated.
        deep[..100].to_string(),
        "usr/bin/PaxHeaders.0/long-link".to_string(),
        "usr/bin/PaxHeaders.0/ping".to_string(),
    ];
    for want in &expected_pax {
        assert!(
            pax_names.contains(want),
            "missing PAX header {want:?} in {pax_names:?}"
        );
    }
    assert!(
        !pax_names.iter().any(|n| n.contains("file.txt")),
        "a splittable long name stays USTAR"
    );
}

#[test]
fn gnu_tar_lists_the_same_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_file(tmp.path());
    let layer = tmp.path().join("layer.tar.gz");
    write_to(&layer, all_kinds(&host), &LayerOptions::default());
    let listing = String::from_utf8(run(Command::new("tar")
        .env("TZ", "UTC")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&layer)))
    .unwrap();
    // GNU tar pads columns to the widest value seen so far, so compare tokens, not spacing:
    // mode, owner, size (or `major,minor`), date, time, name and link part.
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expect: [&[&str]; 15] = [
        &["drwxr-xr-x", "0/0", "0", "usr/"],
        &["-rwxr-xr-x", "0/0", "20", "usr/bin/tool"],
        &[
            "hrwxr-xr-x",
            "0/0",
            "0",
            "usr/bin/tool2",
            "link",
            "to",
            "usr/bin/tool",
        ],
        &["lrwxrwxrwx", "0/0", "0", "usr/bin/sh", "->", "/bin/busybox"],
        &["-rwsr-xr-x", "0/0", "6", "usr/bin/su"],
        &["-rwxr-sr-x", "0/0", "6", "usr/bin/wall"],
        &["drwxrwxrwt", "0/0", "0", "tmp/"],
        &["drwx------", "1000/1000", "0", "home/user/"],
        &["-rw-r--r--", "1000/1000", "11", "home/user/.profile"],
        &["crw-rw-rw-", "0/0", "1,3", "dev/null"],
        &["brw-rw----", "0/0", "8,0", "dev/sda"],
        &["prw-r--r--", "0/0", "0", "dev/fifo"],
        &["-rw-r-----", "0/0", "10000", "data.bin"],
        &["-rw-------", "3000000/3000001", "9", "bigid"],
        &["-rw-r--r--", "0/0", "0", "etc/.wh.removed"],
    ];
    for want in expect {
        let found = lines.iter().any(|l| {
            l.len() == want.len() + 2
                && l[..3] == want[..3]
                && l[3] == "2023-11-14"
                && l[4] == "22:13"
                && l[5..] == want[3..]
        });
        assert!(found, "missing {want:?} in\n{listing}");
    }
    let deep = format!("{}/leaf", deep_path());
    assert!(listing.lines().any(|l| l.ends_with(&format!(" {deep}"))));
    let long_link = format!("usr/bin/long-link -> ../{}/target", "t".repeat(120));
    assert!(listing.lines().any(|l| l.ends_with(&long_link)));
    assert_eq!(
        listing.lines().count(),
        all_kinds(&host).len(),
        "one line per entry"
    );
}

#[test]
fn gnu_tar_sees_xattrs_and_extracts_hardlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer.tar.gz");
    let entries = vec![
        dir("bin", 0o755),
        Entry {
            xattrs: BTreeMap::from([
                ("security.capability".to_string(), CAPABILITY.to_vec()),
                ("user.comment".to_string(), b"hello".to_vec()),
            ]),
            ..bytes("bin/ping", b"ping", 0o755)
        },
        // The content owner sorts after its link: the writer must move the content.
        dir("z", 0o755),
        bytes("z/content", b"shared body", 0o644),
        base("bin/alias", EntryKind::Hardlink("z/content".into()), 0o644),
    ];
    write_to(&layer, entries, &LayerOptions::default());

    let verbose = String::from_utf8(run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-tvvzf"])
        .arg(&layer)))
    .unwrap();
    assert!(
        verbose.contains("x: 20 security.capability"),
        "xattr listing:\n{verbose}"
    );
    assert!(verbose.contains("x: 5 user.comment"), "{verbose}");
    assert!(
        verbose.contains("z/content link to bin/alias"),
        "content moved to the first path:\n{verbose}"
    );

    let out = tmp.path().join("x");
    fs::create_dir(&out).unwrap();
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=user.*", "-xzf"])
        .arg(&layer)
        .arg("-C")
        .arg(&out));
    let alias = fs::metadata(out.join("bin/alias")).unwrap();
    let content = fs::metadata(out.join("z/content")).unwrap();
    assert_eq!(alias.ino(), content.ino());
    assert_eq!(alias.nlink(), 2);
    assert_eq!(fs::read(out.join("z/content")).unwrap(), b"shared body");
}

#[test]
fn digests_match_gzip_and_sha256sum() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_file(tmp.path());
    let layer = tmp.path().join("layer.tar.gz");
    let info = write_to(&layer, all_kinds(&host), &LayerOptions::default());
    let compressed = fs::read(&layer).unwrap();
    let tar_bytes = run(Command::new("gzip").arg("-dc").arg(&layer));
    assert_eq!(info.digest.to_string(), sha256sum(&compressed, tmp.path()));
    assert_eq!(info.diff_id.to_string(), sha256sum(&tar_bytes, tmp.path()));
    assert_eq!(info.size, compressed.len() as u64);
    assert_eq!(info.uncompressed_size, tar_bytes.len() as u64);
    // Gzip header: deflate, no flags, mtime 0, XFL 0 at level 6, OS 255.
    assert_eq!(&compressed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    run(Command::new("gzip").arg("-t").arg(&layer));
}

#[test]
fn same_inputs_give_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_file(tmp.path());
    let opts = LayerOptions::default();
    let mut reversed = all_kinds(&host);
    reversed.reverse();
    let (a, bytes_a) = write_layer(all_kinds(&host), Vec::new(), &opts).unwrap();
    let (b, bytes_b) = write_layer(reversed, Vec::new(), &opts).unwrap();
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(a, b);
    let level9 = LayerOptions {
        compression: Compression::Gzip { level: 9 },
        ..LayerOptions::default()
    };
    let (c, _) = write_layer(all_kinds(&host), Vec::new(), &level9).unwrap();
    assert_eq!(
        c.diff_id, a.diff_id,
        "compression does not change the diff_id"
    );
    assert_ne!(c.digest, a.digest);
}

#[test]
fn source_date_epoch_clamps_later_mtimes_only() {
    let epoch = 1_000_000_000;
    let entries = vec![
        Entry {
            mtime: 2_000_000_000,
            ..bytes("new", b"n", 0o644)
        },
        Entry {
            mtime: 100,
            ..bytes("old", b"o", 0o644)
        },
        Entry {
            mtime: -5,
            ..bytes("negative", b"x", 0o644)
        },
    ];
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch: Some(epoch),
    };
    let (_, raw) = write_layer(entries.clone(), Vec::new(), &opts).unwrap();
    let read = read_back(&raw);
    assert_eq!(find(&read, "new").mtime, epoch);
    assert_eq!(find(&read, "negative").mtime, -5);
    assert_eq!(find(&read, "old").mtime, 100);
    // A negative mtime needs a PAX record; the USTAR field holds 0.
    let negative_header = raw
        .chunks(512)
        .find(|b| b.starts_with(b"negative\0"))
        .unwrap();
    assert_eq!(&negative_header[136..148], b"00000000000\0");
    assert!(
        raw.windows(12).any(|w| w == b"12 mtime=-5\n"),
        "PAX mtime record"
    );

    let unclamped = LayerOptions {
        source_date_epoch: None,
        ..opts
    };
    let (_, raw) = write_layer(entries, Vec::new(), &unclamped).unwrap();
    assert_eq!(find(&read_back(&raw), "new").mtime, 2_000_000_000);
}

#[test]
fn entries_are_sorted_by_path_components() {
    let entries = vec![
        bytes("a.txt", b"", 0o644),
        bytes("a-b", b"", 0o644),
        bytes("a/b/c", b"", 0o644),
        dir("a/b", 0o755),
        dir("a", 0o755),
        bytes("B", b"", 0o644),
        bytes("a/a", b"", 0o644),
    ];
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch: None,
    };
    let (_, raw) = write_layer(entries, Vec::new(), &opts).unwrap();
    let names: Vec<String> = read_back(&raw).into_iter().map(|e| e.path).collect();
    assert_eq!(names, ["B", "a/", "a/a", "a/b/", "a/b/c", "a-b", "a.txt"]);
}

#[test]
fn duplicate_paths_and_bad_levels_are_errors() {
    let err = write_layer(
        vec![bytes("x", b"1", 0o644), dir("x", 0o755)],
        Vec::new(),
        &LayerOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LayerError::DuplicatePath { ref path } if path == "x"));
    assert_eq!(err.to_string(), "duplicate layer path `x`");

    let err = write_layer(
        vec![],
        Vec::new(),
        &LayerOptions {
            compression: Compression::Gzip { level: 10 },
            source_date_epoch: None,
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        LayerError::InvalidCompressionLevel { level: 10 }
    ));
}

#[test]
fn a_file_whose_size_differs_from_its_stat_is_an_error() {
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch: None,
    };
    let file = |host: &str| {
        base(
            "f",
            EntryKind::File(Content::Path(PathBuf::from(host))),
            0o644,
        )
    };
    // /proc files stat as 0 bytes but have content: longer than the header promised.
    let err = write_layer(vec![file("/proc/self/status")], Vec::new(), &opts).unwrap_err();
    assert!(
        matches!(err, LayerError::SizeChanged { expected: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "`/proc/self/status` changed size while being written to the layer: expected 0 bytes"
    );
    // sysfs files stat as 4096 bytes but hold a few: shorter than promised.
    let sys = "/sys/devices/system/cpu/online";
    if Path::new(sys).exists() {
        let err = write_layer(vec![file(sys)], Vec::new(), &opts).unwrap_err();
        assert!(
            matches!(err, LayerError::SizeChanged { expected: 4096, .. }),
            "{err:?}"
        );
    }
    let err = write_layer(vec![file("/nonexistent/kiln")], Vec::new(), &opts).unwrap_err();
    assert!(matches!(err, LayerError::ReadContent { .. }), "{err:?}");
}
