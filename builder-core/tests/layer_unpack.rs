//! Unpacking layers into directories: every entry kind with its metadata, PAX names, whiteouts
//! in both formats (and a real overlay mount reading them), replacements across layers.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod layer_unpack_common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use builder_core::layer::{
    ArchiveFormat, Compression, Content, Entry, EntryKind, LayerOptions, WhiteoutFormat,
    unpack_layer, write_layer,
};
use layer_unpack_common::{Layer, MTIME, Meta, blob, gzip, is_root, listing, mode, xattr};
use tar::EntryType;

const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

fn entry(path: &str, kind: EntryKind, mode: u32, uid: u32, gid: u32, mtime: i64) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs: BTreeMap::new(),
    }
}

fn file_entry(path: &str, body: &[u8], mode: u32) -> Entry {
    entry(
        path,
        EntryKind::File(Content::Bytes(Arc::from(body))),
        mode,
        0,
        0,
        1_700_000_000,
    )
}

const OVERLAY: WhiteoutFormat = WhiteoutFormat::Overlay { user_xattr: false };

/// Unpacks uncompressed layers `tars`, in order, into a new directory under `tmp`.
fn unpacked(tmp: &Path, tars: &[Vec<u8>], whiteouts: WhiteoutFormat) -> std::path::PathBuf {
    let dest = tmp.join("root");
    fs::create_dir(&dest).unwrap();
    for (i, tar) in tars.iter().enumerate() {
        let layer = blob(tmp, &format!("layer-{i}.tar"), tar);
        unpack_layer(&layer, ArchiveFormat::Tar, &dest, whiteouts).unwrap();
    }
    dest
}

#[test]
fn every_entry_kind_keeps_its_type_owner_mode_mtime_and_xattrs() {
    let mut suid = file_entry("usr/bin/su", b"#!/bin/sh\n", 0o4755);
    suid.uid = 0;
    suid.gid = 0;
    let mut owned = file_entry("home/app/data.txt", b"hello\n", 0o640);
    owned.uid = 1000;
    owned.gid = 1001;
    owned.mtime = 1_234_567_890;
    owned
        .xattrs
        .insert("user.comment".to_string(), b"kept".to_vec());
    let mut ping = file_entry("usr/bin/ping", b"\x7fELF", 0o755);
    ping.xattrs
        .insert("security.capability".to_string(), CAPABILITY.to_vec());
    let entries = vec![
        entry("home", EntryKind::Dir, 0o755, 0, 0, 1_500_000_000),
        entry("home/app", EntryKind::Dir, 0o750, 1000, 1001, 1_500_000_001),
        owned,
        entry("tmp", EntryKind::Dir, 0o1777, 0, 0, 1_500_000_002),
        entry("srv", EntryKind::Dir, 0o2775, 0, 50, 1_500_000_003),
        entry("usr", EntryKind::Dir, 0o755, 0, 0, 1_500_000_004),
        entry("usr/bin", EntryKind::Dir, 0o755, 0, 0, 1_500_000_005),
        suid,
        ping,
        entry(
            "usr/bin/sudo-link",
            EntryKind::Hardlink("usr/bin/su".into()),
            0o4755,
            0,
            0,
            0,
        ),
        entry(
            "usr/bin/abs",
            EntryKind::Symlink("/usr/bin/su".into()),
            0o777,
            0,
            0,
            1_400_000_000,
        ),
        entry(
            "usr/bin/rel",
            EntryKind::Symlink("../../home/app".into()),
            0o777,
            1000,
            1001,
            1_400_000_001,
        ),
        entry("run", EntryKind::Dir, 0o755, 0, 0, 1_500_000_006),
        entry("run/pipe", EntryKind::Fifo, 0o620, 0, 5, 1_400_000_002),
        entry("dev", EntryKind::Dir, 0o755, 0, 0, 1_500_000_007),
        entry(
            "dev/null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
            0,
            0,
            1_400_000_003,
        ),
        entry(
            "dev/loop0",
            EntryKind::BlockDevice { major: 7, minor: 0 },
            0o660,
            0,
            6,
            1_400_000_004,
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let opts = LayerOptions {
        compression: Compression::Gzip { level: 1 },
        source_date_epoch: None,
    };
    let (_, bytes) = write_layer(entries, Vec::new(), &opts).unwrap();
    let layer = blob(tmp.path(), "layer.tar.gz", &bytes);
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();

    let stats = unpack_layer(&layer, ArchiveFormat::Gzip, &dest, WhiteoutFormat::Apply).unwrap();

    let meta = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    // Regular files: content, owner, mode, mtime, xattrs.
    assert_eq!(
        fs::read(dest.join("home/app/data.txt")).unwrap(),
        b"hello\n"
    );
    let data = meta("home/app/data.txt");
    assert_eq!((data.uid(), data.gid()), (1000, 1001));
    assert_eq!(data.mode() & 0o7777, 0o640);
    assert_eq!(data.mtime(), 1_234_567_890);
    assert_eq!(
        xattr(&dest.join("home/app/data.txt"), "user.comment").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        xattr(&dest.join("usr/bin/ping"), "security.capability").as_deref(),
        Some(CAPABILITY)
    );
    // setuid survives the chown; sticky and setgid directories.
    assert_eq!(mode(&dest.join("usr/bin/su")), 0o4755);
    assert_eq!(mode(&dest.join("tmp")), 0o1777);
    assert_eq!(mode(&dest.join("srv")), 0o2775);
    assert_eq!(meta("srv").gid(), 50);
    // Directories: owner and mtime set after their children were created.
    let app = meta("home/app");
    assert!(app.is_dir());
    assert_eq!(
        (app.uid(), app.gid(), app.mode() & 0o7777),
        (1000, 1001, 0o750)
    );
    assert_eq!(app.mtime(), 1_500_000_001);
    assert_eq!(meta("usr/bin").mtime(), 1_500_000_005);
    // Hard links share the inode.
    assert_eq!(meta("usr/bin/su").ino(), meta("usr/bin/sudo-link").ino());
    assert_eq!(meta("usr/bin/su").nlink(), 2);
    // Symlinks: targets as written, own owner and mtime.
    assert_eq!(
        fs::read_link(dest.join("usr/bin/abs")).unwrap(),
        Path::new("/usr/bin/su")
    );
    assert_eq!(
        fs::read_link(dest.join("usr/bin/rel")).unwrap(),
        Path::new("../../home/app")
    );
    let rel = meta("usr/bin/rel");
    assert!(rel.file_type().is_symlink());
    assert_eq!(
        (rel.uid(), rel.gid(), rel.mtime()),
        (1000, 1001, 1_400_000_001)
    );
    // Fifo and devices.
    let pipe = meta("run/pipe");
    assert!(pipe.file_type().is_fifo());
    assert_eq!((pipe.mode() & 0o7777, pipe.gid()), (0o620, 5));
    if is_root() {
        let null = meta("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!(
            (
                rustix::fs::major(null.rdev()),
                rustix::fs::minor(null.rdev())
            ),
            (1, 3)
        );
        assert_eq!(null.mode() & 0o7777, 0o666);
        let loop0 = meta("dev/loop0");
        assert!(loop0.file_type().is_block_device());
        assert_eq!(
            (
                rustix::fs::major(loop0.rdev()),
                rustix::fs::minor(loop0.rdev())
            ),
            (7, 0)
        );
        assert_eq!((stats.devices, stats.skipped_devices), (2, 0));
    }
    assert_eq!(stats.files, 3);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.symlinks, 2);
    assert_eq!(stats.fifos, 1);
    assert_eq!(stats.dirs, 8);
    assert_eq!(stats.bytes, (10 + 6 + 4) as u64);
}

#[test]
fn pax_and_gnu_long_names_large_ids_and_subsecond_mtimes() {
    let long_dir = "d".repeat(90);
    let pax_name = format!("{long_dir}/{}", "p".repeat(120));
    let gnu_name = format!("{long_dir}/{}", "g".repeat(130));
    let mut layer = Layer::new();
    layer.dir(&long_dir, Meta::mode(0o755));
    layer.raw(
        EntryType::Regular,
        b"truncated-name",
        b"",
        Meta::mode(0o600),
        b"pax",
        &[
            ("path", pax_name.as_bytes()),
            ("uid", b"3000000"),
            ("gid", b"3000001"),
            ("mtime", b"1600000000.25"),
            ("SCHILY.xattr.user.origin", b"pax"),
        ],
    );
    let mut tar = layer.finish();
    // A GNU long name, as the tar crate writes it for a GNU header.
    let mut gnu = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_mtime(MTIME);
    gnu.append_data(&mut header, &gnu_name, &b"gnu"[..])
        .unwrap();
    let gnu = gnu.into_inner().unwrap();
    tar.truncate(tar.len() - 1024); // drop the end-of-archive blocks
    tar.extend_from_slice(&gnu);

    let tmp = tempfile::tempdir().unwrap();
    let layer = blob(tmp.path(), "layer.tar", &tar);
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();
    unpack_layer(&layer, ArchiveFormat::Tar, &dest, WhiteoutFormat::Apply).unwrap();

    assert_eq!(fs::read(dest.join(&pax_name)).unwrap(), b"pax");
    assert_eq!(fs::read(dest.join(&gnu_name)).unwrap(), b"gnu");
    assert!(!dest.join("truncated-name").exists());
    let meta = fs::metadata(dest.join(&pax_name)).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 3_000_001));
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_600_000_000, 250_000_000)
    );
    assert_eq!(
        xattr(&dest.join(&pax_name), "user.origin").as_deref(),
        Some(&b"pax"[..])
    );
}

#[test]
fn absolute_symlinks_in_parents_resolve_inside_the_root() {
    // Ordinary base-image shapes that tar's own unpack rejects (`var/run -> /run`; the name is
    // one no host has, so a broken unpacker fails here instead of writing to the host).
    let mut layer = Layer::new();
    layer
        .dir("kiln-test-run", Meta::mode(0o755))
        .dir("var", Meta::mode(0o755))
        .symlink("var/run", "/kiln-test-run")
        .file("var/run/x.pid", b"42")
        .dir("usr", Meta::mode(0o755))
        .dir("usr/bin", Meta::mode(0o755))
        .symlink("bin", "usr/bin")
        .file("bin/sh", b"shell")
        .file("/etc/absolute", b"abs");
    let tmp = tempfile::tempdir().unwrap();
    let dest = unpacked(tmp.path(), &[layer.finish()], WhiteoutFormat::Apply);

    assert_eq!(fs::read(dest.join("kiln-test-run/x.pid")).unwrap(), b"42");
    assert_eq!(fs::read(dest.join("usr/bin/sh")).unwrap(), b"shell");
    assert_eq!(fs::read(dest.join("etc/absolute")).unwrap(), b"abs");
    assert_eq!(
        fs::read_link(dest.join("var/run")).unwrap(),
        Path::new("/kiln-test-run")
    );
    // Implied parent directory.
    assert_eq!(mode(&dest.join("etc")), 0o755);
}

/// A base layer and a layer deleting from it, as OCI whiteouts.
fn base_and_deleting_layers(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut base = Layer::new();
    base.dir("etc", Meta::mode(0o755))
        .file("etc/passwd", b"root")
        .file("etc/group", b"wheel")
        .dir("opt", Meta::mode(0o755))
        .file("opt/a", b"a")
        .dir("opt/b", Meta::mode(0o755))
        .file("opt/b/c", b"c")
        .dir("keep", Meta::mode(0o755))
        .file("keep/old", b"old");
    let mut top = Layer::new();
    top.dir("etc", Meta::mode(0o755))
        .raw(
            EntryType::Regular,
            b"etc/.wh.passwd",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        )
        .dir("opt", Meta::mode(0o700))
        // Before the opaque marker: it must survive it.
        .file("opt/new", b"new")
        .raw(
            EntryType::Regular,
            b"opt/.wh..wh..opq",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        )
        .raw(
            EntryType::Regular,
            b"keep/.wh..wh.plnk",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        );
    (
        blob(dir, "base.tar", &base.finish()),
        blob(dir, "top.tar.gz", &gzip(&top.finish())),
    )
}

#[test]
fn apply_mode_deletes_whiteouts_and_clears_opaque_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, top) = base_and_deleting_layers(tmp.path());
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();
    unpack_layer(&base, ArchiveFormat::Tar, &dest, WhiteoutFormat::Apply).unwrap();
    let stats = unpack_layer(&top, ArchiveFormat::Gzip, &dest, WhiteoutFormat::Apply).unwrap();

    assert_eq!(
        listing(&dest),
        ["etc", "etc/group", "keep", "keep/old", "opt", "opt/new"]
    );
    assert_eq!(mode(&dest.join("opt")), 0o700);
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (1, 1));
}

#[test]
fn apply_mode_keeps_what_the_layer_put_under_a_directory_it_makes_opaque() {
    // `d/sub` is not listed, only made for `d/sub/f`: the opaque marker after it clears what
    // the layer below had in `d`, and keeps the layer's own file.
    let mut base = Layer::new();
    base.dir("d", Meta::mode(0o755))
        .file("d/old", b"old")
        .dir("d/sub", Meta::mode(0o755))
        .file("d/sub/below", b"below");
    let mut top = Layer::new();
    top.file("d/sub/f", b"f").file("d/.wh..wh..opq", b"");
    let top = top.finish();
    let tmp = tempfile::tempdir().unwrap();
    let dest = unpacked(
        tmp.path(),
        &[base.finish(), top.clone()],
        WhiteoutFormat::Apply,
    );
    assert_eq!(listing(&dest), ["d", "d/sub", "d/sub/f"]);

    // The same on an empty root.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = unpacked(tmp.path(), &[top], WhiteoutFormat::Apply);
    assert_eq!(listing(&fresh), ["d", "d/sub", "d/sub/f"]);
}

#[test]
fn overlay_mode_records_whiteouts_as_devices_and_opaque_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, top) = base_and_deleting_layers(tmp.path());
    for user_xattr in [false, true] {
        let dest = tmp.path().join(format!("upper-{user_xattr}"));
        fs::create_dir(&dest).unwrap();
        unpack_layer(
            &top,
            ArchiveFormat::Gzip,
            &dest,
            WhiteoutFormat::Overlay { user_xattr },
        )
        .unwrap();
        let whiteout = fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
        assert!(whiteout.file_type().is_char_device());
        assert_eq!(whiteout.rdev(), 0);
        let (set, unset) = if user_xattr {
            ("user.overlay.opaque", "trusted.overlay.opaque")
        } else {
            ("trusted.overlay.opaque", "user.overlay.opaque")
        };
        assert_eq!(xattr(&dest.join("opt"), set).as_deref(), Some(&b"y"[..]));
        assert_eq!(xattr(&dest.join("opt"), unset), None);
        assert_eq!(listing(&dest), ["etc", "etc/passwd", "opt", "opt/new"]);
    }
}

#[test]
fn overlay_mount_of_unpacked_layers_hides_whited_out_files() {
    if !is_root() {
        eprintln!("skipped: mounting overlayfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, top) = base_and_deleting_layers(tmp.path());
    let lower1 = tmp.path().join("lower1");
    let lower2 = tmp.path().join("lower2");
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    let merged = tmp.path().join("merged");
    for dir in [&lower1, &lower2, &upper, &work, &merged] {
        fs::create_dir(dir).unwrap();
    }
    unpack_layer(&base, ArchiveFormat::Tar, &lower1, OVERLAY).unwrap();
    unpack_layer(&top, ArchiveFormat::Gzip, &lower2, OVERLAY).unwrap();
    fs::write(upper.join("from-upper"), b"u").unwrap();
    let options = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        lower2.display(),
        lower1.display(),
        upper.display(),
        work.display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount -t overlay failed");
    let seen = listing(&merged);
    let opt_a = merged.join("opt/a").exists();
    let etc_group = fs::read(merged.join("etc/group"));
    let umount = Command::new("umount").arg(&merged).status().unwrap();
    assert!(umount.success());

    assert_eq!(
        seen,
        [
            "etc",
            "etc/group",
            "from-upper",
            "keep",
            "keep/old",
            "opt",
            "opt/new"
        ]
    );
    assert!(!opt_a);
    assert_eq!(etc_group.unwrap(), b"wheel");
}

#[test]
fn replacements_within_and_across_layers() {
    let mut first = Layer::new();
    first
        .dir("d", Meta::mode(0o755))
        .file("d/inner", b"x")
        .file("f", b"file")
        .dir("s-target", Meta::mode(0o755))
        .symlink("s", "s-target")
        .file("twice", b"first")
        .dir("twice-dir", Meta::mode(0o755))
        .file("twice-dir/child", b"c");
    // The same path twice in one layer: the later entry wins.
    first
        .file("twice", b"second")
        .file("twice-dir", b"now a file");
    let mut second = Layer::new();
    second
        .file("d", b"dir became file")
        .dir("f", Meta::mode(0o711))
        .file("f/g", b"file became dir")
        .dir("s", Meta::mode(0o755))
        .file("s/own", b"symlink became dir");
    let tmp = tempfile::tempdir().unwrap();
    let first = blob(tmp.path(), "first.tar", &first.finish());
    let second = blob(tmp.path(), "second.tar", &second.finish());
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();
    unpack_layer(&first, ArchiveFormat::Tar, &dest, WhiteoutFormat::Apply).unwrap();
    assert_eq!(fs::read(dest.join("twice")).unwrap(), b"second");
    assert_eq!(fs::read(dest.join("twice-dir")).unwrap(), b"now a file");
    unpack_layer(&second, ArchiveFormat::Tar, &dest, WhiteoutFormat::Apply).unwrap();

    assert_eq!(fs::read(dest.join("d")).unwrap(), b"dir became file");
    assert_eq!(mode(&dest.join("f")), 0o711);
    assert_eq!(fs::read(dest.join("f/g")).unwrap(), b"file became dir");
    assert!(fs::symlink_metadata(dest.join("s")).unwrap().is_dir());
    assert_eq!(fs::read(dest.join("s/own")).unwrap(), b"symlink became dir");
    assert_eq!(listing(&dest.join("s-target")), Vec::<String>::new());
}

#[test]
fn a_directory_deleted_and_made_again_within_one_layer_holds_the_later_entries() {
    // Entries after the whiteout go into the new directory, not the deleted one.
    let mut layer = Layer::new();
    layer
        .dir("w", Meta::mode(0o755))
        .file("w/old", b"old")
        .file(".wh.w", b"")
        .file("w/new", b"new")
        .file("w/newer", b"newer");
    let tmp = tempfile::tempdir().unwrap();
    let dest = unpacked(tmp.path(), &[layer.finish()], WhiteoutFormat::Apply);
    assert_eq!(listing(&dest), ["w", "w/new", "w/newer"]);
    assert_eq!(fs::read(dest.join("w/newer")).unwrap(), b"newer");
}

#[test]
fn root_entry_sets_the_root_metadata_and_dir_mtimes_survive_children() {
    let mut layer = Layer::new();
    layer
        .dir("./", Meta::owned(0o751, 0, 0, 1_111_111_111))
        .dir("./a", Meta::owned(0o755, 0, 0, 1_222_222_222))
        .file("./a/b", b"b");
    let tmp = tempfile::tempdir().unwrap();
    let dest = unpacked(tmp.path(), &[layer.finish()], OVERLAY);
    assert_eq!(mode(&dest), 0o751);
    assert_eq!(fs::metadata(&dest).unwrap().mtime(), 1_111_111_111);
    assert_eq!(fs::metadata(dest.join("a")).unwrap().mtime(), 1_222_222_222);
}

#[test]
fn overlay_xattrs_from_the_layer_are_not_applied() {
    let mut layer = Layer::new();
    layer.raw(
        EntryType::Directory,
        b"sneaky",
        b"",
        Meta::mode(0o755),
        b"",
        &[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.overlay.redirect", b"/etc"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:etc_t:s0",
            ),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let layer = blob(tmp.path(), "layer.tar", &layer.finish());
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();
    let stats = unpack_layer(&layer, ArchiveFormat::Tar, &dest, OVERLAY).unwrap();
    assert_eq!(xattr(&dest.join("sneaky"), "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&dest.join("sneaky"), "user.overlay.redirect"), None);
    assert_eq!(stats.skipped_xattrs, 3);
}

/// Set in the child process that runs inside a user namespace.
const IN_USERNS: &str = "KILN_TEST_UNPACK_IN_USERNS";

#[test]
fn without_privileges_devices_and_foreign_owners_are_skipped_and_counted() {
    if std::env::var_os(IN_USERNS).is_none() {
        // Run this same test again as root of a user namespace mapping only our own uid:
        // no CAP_MKNOD, no other uids, no trusted.* attributes.
        let exe = std::env::current_exe().unwrap();
        let probe = Command::new("unshare").args(["-Ur", "true"]).status();
        if !probe.is_ok_and(|s| s.success()) {
            eprintln!("skipped: user namespaces are not available");
            return;
        }
        let out = Command::new("unshare")
            .arg("-Ur")
            .arg(exe)
            .args([
                "--exact",
                "without_privileges_devices_and_foreign_owners_are_skipped_and_counted",
                "--nocapture",
            ])
            .env(IN_USERNS, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let mut layer = Layer::new();
    layer
        .raw(EntryType::Char, b"null", b"", Meta::mode(0o666), b"", &[])
        .raw(
            EntryType::Regular,
            b"owned",
            b"",
            Meta::owned(0o644, 1000, 1000, MTIME),
            b"data",
            &[
                ("SCHILY.xattr.trusted.note", b"root only"),
                ("SCHILY.xattr.user.note", b"anyone"),
            ],
        )
        .raw(
            EntryType::Regular,
            b"etc/.wh.gone",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        );
    let tmp = tempfile::tempdir().unwrap();
    let layer = blob(tmp.path(), "layer.tar", &layer.finish());
    let dest = tmp.path().join("root");
    fs::create_dir(&dest).unwrap();
    let stats = unpack_layer(
        &layer,
        ArchiveFormat::Tar,
        &dest,
        WhiteoutFormat::Overlay { user_xattr: true },
    )
    .unwrap();
    assert_eq!((stats.devices, stats.skipped_devices), (0, 1));
    assert_eq!(stats.skipped_ownership, 1);
    assert_eq!(stats.skipped_xattrs, 1);
    assert!(!dest.join("null").exists());
    assert_eq!(fs::read(dest.join("owned")).unwrap(), b"data");
    assert_eq!(
        xattr(&dest.join("owned"), "user.note").as_deref(),
        Some(&b"anyone"[..])
    );
    // Overlay whiteouts are allowed without CAP_MKNOD.
    let whiteout = fs::symlink_metadata(dest.join("etc/gone")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
}
