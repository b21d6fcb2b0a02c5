//! `ADD` archive detection and extraction on archives made by GNU tar, gzip, bzip2, xz and zstd.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use builder_core::layer::{
    ArchiveFormat, Compression, Content, Entry, EntryKind, LayerError, LayerOptions,
    detect_archive, extract_archive_entries, write_layer,
};

const MTIME: &str = "@1700000000";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh(dir: &Path, script: &str) {
    run(Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; {script}"))
        .current_dir(dir));
}

/// A source tree with a file of each interesting kind.
fn source_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("a.txt"), "hello\n").unwrap();
    fs::write(src.join("sub/b.txt"), "bee\n").unwrap();
    fs::write(src.join("sub/deeper/c.txt"), "sea\n").unwrap();
    fs::write(src.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(src.join("sub/b.txt"), Some(1000), Some(1000)).unwrap();
    symlink("sub/b.txt", src.join("link")).unwrap();
    fs::hard_link(src.join("a.txt"), src.join("a-hard.txt")).unwrap();
    src
}

fn by_path(entries: &[Entry]) -> BTreeMap<&str, &Entry> {
    entries.iter().map(|e| (e.path.as_str(), e)).collect()
}

fn content(entry: &Entry) -> Vec<u8> {
    match &entry.kind {
        EntryKind::File(Content::Path(p)) => fs::read(p).unwrap(),
        EntryKind::File(Content::Bytes(b)) => b.to_vec(),
        other => panic!("{} is not a file: {other:?}", entry.path),
    }
}

#[test]
fn every_compression_is_detected_and_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    source_tree(tmp.path());
    sh(
        tmp.path(),
        &format!(
            "tar --mtime={MTIME} -C src -cf plain.tar . && \
             tar --mtime={MTIME} -C src -cf - . | gzip -9 > gz.tgz && \
             tar --mtime={MTIME} -C src -cf - . | bzip2 > bz.tar.bz2 && \
             tar --mtime={MTIME} -C src -cf - . | xz > xz.tar.xz && \
             cp gz.tgz renamed.txt"
        ),
    );
    let cases = [
        ("plain.tar", ArchiveFormat::Tar),
        ("gz.tgz", ArchiveFormat::Gzip),
        ("bz.tar.bz2", ArchiveFormat::Bzip2),
        ("xz.tar.xz", ArchiveFormat::Xz),
        ("renamed.txt", ArchiveFormat::Gzip),
    ];
    for (name, format) in cases {
        let archive = tmp.path().join(name);
        assert_eq!(detect_archive(&archive).unwrap(), Some(format), "{name}");
        let scratch = tempfile::tempdir().unwrap();
        let entries = extract_archive_entries(&archive, format, "app", scratch.path()).unwrap();
        let map = by_path(&entries);
        let paths: Vec<&str> = map.keys().copied().collect();
        assert_eq!(
            paths,
            [
                "app/a-hard.txt",
                "app/a.txt",
                "app/link",
                "app/run.sh",
                "app/sub",
                "app/sub/b.txt",
                "app/sub/deeper",
                "app/sub/deeper/c.txt",
            ],
            "{name}: the archive root `./` is not an entry"
        );
        let a = map["app/a.txt"];
        let hard = map["app/a-hard.txt"];
        // GNU tar stores whichever of the two it met first; the other is a hard link to it.
        let (file, link) = if matches!(a.kind, EntryKind::File(_)) {
            (a, hard)
        } else {
            (hard, a)
        };
        assert_eq!(content(file), b"hello\n");
        assert_eq!(link.kind, EntryKind::Hardlink(file.path.clone()));
        assert_eq!((file.mode, file.uid, file.gid), (0o644, 0, 0));
        assert_eq!(file.mtime, 1_700_000_000);

        assert_eq!(map["app/run.sh"].mode, 0o4755);
        assert_eq!(map["app/sub"].kind, EntryKind::Dir);
        assert_eq!(map["app/sub"].mode, 0o750);
        let b = map["app/sub/b.txt"];
        assert_eq!((b.uid, b.gid), (1000, 1000));
        assert_eq!(content(b), b"bee\n");
        assert_eq!(content(map["app/sub/deeper/c.txt"]), b"sea\n");
        assert_eq!(map["app/link"].kind, EntryKind::Symlink("sub/b.txt".into()));
        for entry in &entries {
            if let EntryKind::File(Content::Path(p)) = &entry.kind {
                assert!(p.starts_with(scratch.path()), "content spilled to scratch");
            }
        }

        // The entries make a valid layer as they are.
        let (info, layer) = write_layer(entries, Vec::new(), &LayerOptions::default()).unwrap();
        assert_eq!(info.size, layer.len() as u64);
    }
}

#[test]
fn files_that_are_not_tar_archives_are_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("text.txt"), "just some text\n".repeat(100)).unwrap();
    fs::write(dir.join("empty"), "").unwrap();
    fs::write(dir.join("short"), "ustar").unwrap();
    fs::write(dir.join("zeros"), [0u8; 10240]).unwrap();
    fs::write(dir.join("fake.bz2"), "BZh this is not bzip2 at all").unwrap();
    sh(
        dir,
        "gzip -c text.txt > text.gz && xz -c text.txt > text.xz && bzip2 -c text.txt > text.bz2 && \
         tar -cf empty.tar --files-from /dev/null",
    );
    symlink(dir.join("text.gz"), dir.join("symlink-to-archive")).unwrap();
    for name in [
        "text.txt",
        "empty",
        "short",
        "zeros",
        "fake.bz2",
        "text.gz",
        "text.xz",
        "text.bz2",
        "empty.tar",
        "symlink-to-archive",
    ] {
        assert_eq!(detect_archive(&dir.join(name)).unwrap(), None, "{name}");
    }
    assert!(matches!(
        detect_archive(&dir.join("missing")),
        Err(LayerError::ReadArchive { .. })
    ));
}

#[test]
fn checksums_decide_plain_tar_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(
        dir,
        "echo hi > f && tar --format=v7 -cf v7.tar f && tar --format=gnu -cf gnu.tar f && \
         tar --format=pax -cf pax.tar f",
    );
    for name in ["v7.tar", "gnu.tar", "pax.tar"] {
        assert_eq!(
            detect_archive(&dir.join(name)).unwrap(),
            Some(ArchiveFormat::Tar),
            "{name}"
        );
    }
    // One flipped byte in the header breaks the checksum: no longer an archive.
    let mut corrupt = fs::read(dir.join("gnu.tar")).unwrap();
    corrupt[0] ^= 0x01;
    fs::write(dir.join("corrupt.tar"), corrupt).unwrap();
    assert_eq!(detect_archive(&dir.join("corrupt.tar")).unwrap(), None);
}

#[test]
fn zstd_is_reported_not_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    sh(
        tmp.path(),
        "echo hi > f && tar -cf - f | zstd -q > f.tar.zst",
    );
    let err = detect_archive(&tmp.path().join("f.tar.zst")).unwrap_err();
    assert!(matches!(
        err,
        LayerError::UnsupportedCompression {
            compression: "zstd",
            ..
        }
    ));
    assert!(
        err.to_string()
            .ends_with("is compressed with zstd, which is not supported")
    );
}

#[test]
fn escaping_and_absolute_names_are_clamped_to_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("a/work");
    fs::create_dir_all(&work).unwrap();
    fs::write(tmp.path().join("outside.txt"), "up\n").unwrap();
    fs::write(tmp.path().join("a/sibling.txt"), "sibling\n").unwrap();
    fs::write(tmp.path().join("abs.txt"), "abs\n").unwrap();
    let abs = tmp.path().join("abs.txt");
    sh(
        &work,
        &format!(
            "tar -P -cf ../../evil.tar ../../outside.txt '{}' ../work/../sibling.txt",
            abs.display()
        ),
    );
    let archive = tmp.path().join("evil.tar");
    let scratch = tempfile::tempdir().unwrap();
    let entries =
        extract_archive_entries(&archive, ArchiveFormat::Tar, "/srv/app/", scratch.path()).unwrap();
    let map = by_path(&entries);
    assert_eq!(content(map["srv/app/outside.txt"]), b"up\n");
    assert_eq!(content(map["srv/app/sibling.txt"]), b"sibling\n");
    let abs_rel = abs.to_str().unwrap().trim_start_matches('/');
    let abs_entry = map[format!("srv/app/{abs_rel}").as_str()];
    assert_eq!(content(abs_entry), b"abs\n");
    // Parents of the absolute name are implied: 0755, root-owned.
    let first_parent = format!("srv/app/{}", abs_rel.split('/').next().unwrap());
    let implied = map[first_parent.as_str()];
    assert_eq!(
        (&implied.kind, implied.mode, implied.uid, implied.gid),
        (&EntryKind::Dir, 0o755, 0, 0)
    );
    for entry in &entries {
        assert!(entry.path.starts_with("srv/app/"), "{} escaped", entry.path);
    }
}

#[test]
fn implied_directories_later_entries_and_archive_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = dir.join("a.tar");
    {
        let mut builder = tar::Builder::new(File::create(&archive).unwrap());
        let file = |builder: &mut tar::Builder<File>, name: &str, body: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            builder.append_data(&mut header, name, body).unwrap();
        };
        file(&mut builder, "real/c.txt", b"first\n");
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mtime(1_700_000_000);
        builder.append_link(&mut link, "alias", "real").unwrap();
        // Through the archive's own symlink: replaces real/c.txt.
        file(&mut builder, "alias/c.txt", b"second\n");
        file(&mut builder, "real/d.txt", b"one\n");
        file(&mut builder, "real/d.txt", b"two\n");
        builder.finish().unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let entries =
        extract_archive_entries(&archive, ArchiveFormat::Tar, "", scratch.path()).unwrap();
    let map = by_path(&entries);
    assert_eq!(
        map.keys().copied().collect::<Vec<_>>(),
        ["alias", "real", "real/c.txt", "real/d.txt"]
    );
    // `real/` is not in the archive: implied, with the archive file's mtime.
    let archive_mtime = fs::metadata(&archive)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        (&map["real"].kind, map["real"].mode, map["real"].mtime),
        (&EntryKind::Dir, 0o755, archive_mtime)
    );
    // `alias/c.txt` went through the archive's own symlink and replaced `real/c.txt`.
    assert_eq!(content(map["real/c.txt"]), b"second\n");
    // The later of two entries with the same name wins.
    assert_eq!(content(map["real/d.txt"]), b"two\n");
}

#[test]
fn pax_xattrs_and_large_ids_come_through() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pax.tar");
    {
        let mut builder = tar::Builder::new(File::create(&archive).unwrap());
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.security.capability", &b"\x01\x00\x00\x02"[..]),
                ("uid", b"3000000"),
                ("mtime", b"1700000000.5"),
            ])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("bin/ping").unwrap();
        header.set_size(4);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &b"ping"[..]).unwrap();
        builder.finish().unwrap();
    }
    assert_eq!(
        detect_archive(&archive).unwrap(),
        Some(ArchiveFormat::Tar),
        "a PAX header first still counts"
    );
    let scratch = tempfile::tempdir().unwrap();
    let entries =
        extract_archive_entries(&archive, ArchiveFormat::Tar, "opt", scratch.path()).unwrap();
    let map = by_path(&entries);
    let ping = map["opt/bin/ping"];
    assert_eq!(ping.uid, 3_000_000);
    assert_eq!(ping.mtime, 1_700_000_000);
    assert_eq!(ping.xattrs["security.capability"], b"\x01\x00\x00\x02");
    assert_eq!(content(ping), b"ping");
    assert_eq!(map["opt/bin"].kind, EntryKind::Dir);
}

#[test]
fn written_layer_of_extracted_entries_matches_gnu_tar_listing() {
    let tmp = tempfile::tempdir().unwrap();
    source_tree(tmp.path());
    sh(
        tmp.path(),
        &format!("tar --mtime={MTIME} -C src -czf in.tgz ."),
    );
    let scratch = tempfile::tempdir().unwrap();
    let entries = extract_archive_entries(
        &tmp.path().join("in.tgz"),
        ArchiveFormat::Gzip,
        "app",
        scratch.path(),
    )
    .unwrap();
    let mut all = vec![Entry::dir("app", 0o755, 0, 0, 0)];
    all.extend(entries);
    let layer = tmp.path().join("out.tar");
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch: None,
    };
    write_layer(all, File::create(&layer).unwrap(), &opts).unwrap();
    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&layer)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "app/",
            "app/a-hard.txt",
            "app/a.txt",
            "app/link",
            "app/run.sh",
            "app/sub/",
            "app/sub/b.txt",
            "app/sub/deeper/",
            "app/sub/deeper/c.txt",
        ]
    );
    assert!(listing.contains("1000/1000"));
    assert!(listing.contains("-rwsr-xr-x"));
}
