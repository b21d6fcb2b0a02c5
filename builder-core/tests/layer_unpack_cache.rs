//! The per-machine cache of unpacked layers, and the busybox base image unpacked and run.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod layer_unpack_common;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use builder_core::layer::{
    Compression, Content, Entry, EntryKind, LayerError, LayerInfo, LayerOptions, PendingUnpack,
    UnpackError, UnpackedLayers, WhiteoutFormat, WriteExtras, unpack_layer, write_layer_with,
};
use builder_core::oci::{Digest, Image, LayerRef, LayoutImage, OciLayout};
use layer_unpack_common::{Layer, Meta, blob, gzip, is_root, listing};

const OVERLAY: WhiteoutFormat = WhiteoutFormat::Overlay { user_xattr: false };

/// A gzip layer blob in `dir` and its descriptor.
fn sample_layer(dir: &Path) -> (LayerRef, PathBuf) {
    let mut layer = Layer::new();
    layer
        .dir("etc", Meta::mode(0o755))
        .file("etc/os-release", b"ID=kiln\n")
        .dir("bin", Meta::mode(0o755));
    let tar = layer.finish();
    let compressed = gzip(&tar);
    let path = blob(dir, "layer.tar.gz", &compressed);
    let layer = LayerRef {
        digest: Digest::of(&compressed),
        diff_id: Digest::of(&tar),
        size: compressed.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
    };
    (layer, path)
}

#[test]
fn ensure_unpacks_once_and_then_reuses_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, blob) = sample_layer(tmp.path());
    let cache = UnpackedLayers::new(tmp.path().join("cache"));

    let dir = cache.ensure(&layer, &blob, OVERLAY).unwrap();
    assert_eq!(dir, tmp.path().join("cache").join(layer.diff_id.hex()));
    assert_eq!(fs::read(dir.join("etc/os-release")).unwrap(), b"ID=kiln\n");
    // Mark the directory: a second ensure must hand back this one, not unpack again.
    fs::write(dir.join("marker"), b"same dir").unwrap();
    fs::remove_file(&blob).unwrap();
    let again = cache.ensure(&layer, &blob, OVERLAY).unwrap();
    assert_eq!(again, dir);
    assert_eq!(fs::read(again.join("marker")).unwrap(), b"same dir");

    // Each whiteout format has its own directory.
    let (layer, blob) = sample_layer(tmp.path());
    let applied = cache.ensure(&layer, &blob, WhiteoutFormat::Apply).unwrap();
    let rootless = cache
        .ensure(&layer, &blob, WhiteoutFormat::Overlay { user_xattr: true })
        .unwrap();
    assert_ne!(applied, dir);
    assert_ne!(rootless, dir);
    assert_ne!(applied, rootless);
    let names: Vec<String> = listing(&tmp.path().join("cache"))
        .into_iter()
        .filter(|p| !p.contains('/') && !p.ends_with(".lock") && !p.ends_with(".nolinks"))
        .collect();
    // None of them has hard links, and each says so.
    for d in [&dir, &applied, &rootless] {
        assert!(UnpackedLayers::has_no_hard_links(d), "{}", d.display());
    }
    let hex = layer.diff_id.hex();
    assert_eq!(
        names,
        [
            hex.to_string(),
            format!("{hex}.applied"),
            format!("{hex}.userxattr")
        ]
    );
}

#[test]
fn concurrent_ensures_unpack_once_and_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, blob) = sample_layer(tmp.path());
    let root = tmp.path().join("cache");
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (layer, blob, root, barrier) =
                (layer.clone(), blob.clone(), root.clone(), barrier.clone());
            std::thread::spawn(move || {
                let cache = UnpackedLayers::new(root);
                barrier.wait();
                cache.ensure(&layer, &blob, OVERLAY).unwrap()
            })
        })
        .collect();
    let dirs: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(dirs.iter().all(|d| d == &dirs[0]));
    assert_eq!(listing(&dirs[0]), ["bin", "etc", "etc/os-release"]);
    // Only the final directory, its lock and its marker: no temporary directory left behind.
    let hex = layer.diff_id.hex();
    let mut top: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            hex.to_string(),
            format!("{hex}.lock"),
            format!("{hex}.nolinks")
        ]
    );
}

#[test]
fn a_wrong_diff_id_leaves_nothing_under_the_final_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut layer, blob) = sample_layer(tmp.path());
    layer.diff_id = Digest::of(b"something else");
    let root = tmp.path().join("cache");
    let cache = UnpackedLayers::new(&root);
    let err = cache.ensure(&layer, &blob, OVERLAY).unwrap_err();
    assert!(
        matches!(
            &err,
            LayerError::Unpack(UnpackError::DiffIdMismatch { expected, .. }) if *expected == layer.diff_id
        ),
        "{err:?}"
    );
    let top: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, [format!("{}.lock", layer.diff_id.hex())]);
}

#[test]
fn leftovers_of_a_crashed_unpack_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, blob) = sample_layer(tmp.path());
    let root = tmp.path().join("cache");
    let hex = layer.diff_id.hex();
    let leftover = root.join(format!(".tmp-{hex}-crashed"));
    fs::create_dir_all(leftover.join("etc")).unwrap();
    fs::write(leftover.join("etc/half"), b"half").unwrap();

    let dir = UnpackedLayers::new(&root)
        .ensure(&layer, &blob, OVERLAY)
        .unwrap();
    assert!(!leftover.exists());
    assert!(!dir.join("etc/half").exists());
    assert_eq!(listing(&dir), ["bin", "etc", "etc/os-release"]);
}

/// The layers of the busybox test image and their blob paths.
fn busybox_layers() -> Vec<(LayerRef, PathBuf)> {
    let layout = OciLayout::open(support::busybox_layout()).unwrap();
    let (_, descriptor) = layout
        .named_manifests()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let digest: Digest = descriptor.digest().to_string().parse().unwrap();
    let image = LayoutImage::new(layout.clone(), digest);
    image
        .layers()
        .unwrap()
        .into_iter()
        .map(|l| {
            let path = layout.blob_path(&l.digest);
            (l, path)
        })
        .collect()
}

#[test]
fn busybox_base_unpacks_and_runs_in_a_chroot() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = UnpackedLayers::new(tmp.path().join("cache"));
    let layers = busybox_layers();
    assert!(!layers.is_empty());

    // Applied one after another into a root filesystem, as chroot isolation uses it.
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    for (layer, blob) in &layers {
        let format = if builder_core::oci::media::is_gzip_layer(&layer.media_type) {
            builder_core::layer::ArchiveFormat::Gzip
        } else {
            builder_core::layer::ArchiveFormat::Tar
        };
        unpack_layer(blob, format, &rootfs, WhiteoutFormat::Apply).unwrap();
    }
    let out = Command::new("chroot")
        .arg(&rootfs)
        .args(["/bin/sh", "-c", "echo ok"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ok\n");

    // Through the cache, as overlay lower directories (a single layer is itself a root).
    let (layer, blob) = &layers[0];
    let lower = cache.ensure(layer, blob, OVERLAY).unwrap();
    if layers.len() == 1 {
        let out = Command::new("chroot")
            .arg(&lower)
            .args(["/bin/sh", "-c", "echo ok"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ok\n");
    }
    assert_eq!(cache.ensure(layer, blob, OVERLAY).unwrap(), lower);
}

/// Regular files (path, mode, mtime, content) under `data/`, as layer entries.
fn files(files: &[(&str, u32, i64, &[u8])]) -> Vec<Entry> {
    let mut entries = vec![Entry::dir("data", 0o755, 0, 0, 1000)];
    for (name, mode, mtime, content) in files {
        entries.push(Entry {
            path: name.to_string(),
            kind: EntryKind::File(Content::Bytes(Arc::from(*content))),
            mode: *mode,
            uid: 0,
            gid: 0,
            mtime: *mtime,
            xattrs: Default::default(),
        });
    }
    entries
}

/// Writes `entries` as an uncompressed layer while `pending` unpacks it, as a build step does;
/// returns the writer's account of the layer and its tar.
fn write_into(entries: Vec<Entry>, pending: &mut PendingUnpack) -> (LayerInfo, Vec<u8>) {
    let options = LayerOptions {
        compression: Compression::None,
        source_date_epoch: None,
    };
    let extras = WriteExtras {
        reuse: None,
        tar_copy: Some(pending),
    };
    write_layer_with(entries, Vec::new(), &options, extras).unwrap()
}

/// Writes a layer of `entries`, unpacking it into `cache` while it is written with files of
/// `donor` linked; returns what the unpack gave and the layer's tar.
fn unpack_while_writing(
    cache: &UnpackedLayers,
    entries: Vec<Entry>,
    donor: Option<PathBuf>,
) -> (Result<PathBuf, LayerError>, Vec<u8>) {
    let mut pending = cache.begin(OVERLAY, donor).unwrap();
    let (info, tar) = write_into(entries, &mut pending);
    (pending.finish(&info), tar)
}

fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap())
}

#[test]
fn a_layer_unpacked_while_written_links_the_unchanged_files_of_its_donor() {
    if !is_root() {
        eprintln!("skipped: the sample files are owned by root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = UnpackedLayers::new(tmp.path().join("cache"));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut big_changed = big.clone();
    big_changed[200_000] ^= 0xff;
    let old = files(&[
        ("data/same", 0o644, 1000, b"unchanged"),
        ("data/big", 0o644, 1000, &big),
        ("data/mode", 0o644, 1000, b"mode changes"),
        ("data/mtime", 0o644, 1000, b"mtime changes"),
        ("data/gone", 0o644, 1000, b"removed"),
    ]);
    let new = files(&[
        ("data/same", 0o644, 1000, b"unchanged"),
        ("data/big", 0o644, 1000, &big_changed),
        ("data/mode", 0o755, 1000, b"mode changes"),
        ("data/mtime", 0o644, 2000, b"mtime changes"),
        ("data/added", 0o644, 1000, b"new file"),
    ]);
    let (old_dir, old) = unpack_while_writing(&cache, old, None);
    let old_dir = old_dir.unwrap();
    assert_eq!(
        old_dir,
        tmp.path().join("cache").join(Digest::of(&old).hex())
    );
    let (new_dir, new) = unpack_while_writing(&cache, new, Some(old_dir.clone()));
    let new_dir = new_dir.unwrap();

    // What a plain unpack of the new layer's blob gives, file for file.
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let blob_path = blob(tmp.path(), "new.tar", &new);
    unpack_layer(
        &blob_path,
        builder_core::layer::ArchiveFormat::Tar,
        &plain,
        OVERLAY,
    )
    .unwrap();
    assert_eq!(listing(&new_dir), listing(&plain));
    for name in ["same", "big", "mode", "mtime", "added"] {
        let (a, b) = (
            new_dir.join("data").join(name),
            plain.join("data").join(name),
        );
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name}");
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert_eq!(ma.permissions(), mb.permissions(), "{name}");
        assert_eq!(ma.modified().unwrap(), mb.modified().unwrap(), "{name}");
    }
    // Only the identical file shares the donor's inode.
    let shared = |name: &str| {
        inode(&new_dir.join("data").join(name)) == inode(&old_dir.join("data").join(name))
    };
    assert!(shared("same"));
    for name in ["big", "mode", "mtime"] {
        assert!(!shared(name), "{name} must be a file of its own");
    }
    assert_eq!(fs::read(old_dir.join("data/big")).unwrap(), big);
    assert!(!new_dir.join("data/gone").exists());
}

#[test]
fn hard_links_of_the_donor_stay_separate_files_when_the_layer_has_them_apart() {
    if !is_root() {
        eprintln!("skipped: the sample files are owned by root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = UnpackedLayers::new(tmp.path().join("cache"));
    let mut old = files(&[("data/a", 0o644, 1000, b"same bytes")]);
    old.push(Entry {
        kind: EntryKind::Hardlink("data/a".to_string()),
        ..old[1].clone()
    });
    old[2].path = "data/b".to_string();
    let new = files(&[
        ("data/a", 0o644, 1000, b"same bytes"),
        ("data/b", 0o644, 1000, b"same bytes"),
    ]);
    let (old_dir, _) = unpack_while_writing(&cache, old, None);
    let old_dir = old_dir.unwrap();
    assert_eq!(
        inode(&old_dir.join("data/a")),
        inode(&old_dir.join("data/b"))
    );
    let (new_dir, _) = unpack_while_writing(&cache, new, Some(old_dir.clone()));
    let new_dir = new_dir.unwrap();
    // Two files in the layer are two inodes: a step that changes one must not find the other
    // linked to it. The first is still linked from the donor.
    let (a, b) = (
        inode(&new_dir.join("data/a")),
        inode(&new_dir.join("data/b")),
    );
    assert_ne!(a, b);
    assert_eq!(a, inode(&old_dir.join("data/a")));
    assert_eq!(fs::read(new_dir.join("data/b")).unwrap(), b"same bytes");
    // The old layer has a hard link of its own; the new one's only links are to the donor.
    assert!(!UnpackedLayers::has_no_hard_links(&old_dir));
    assert!(UnpackedLayers::has_no_hard_links(&new_dir));
}

#[test]
fn a_layer_with_hard_links_unpacked_from_its_blob_is_not_marked_as_without() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer.file("a", b"a").hardlink("b", "a");
    let tar = layer.finish();
    let blob_path = blob(tmp.path(), "layer.tar", &tar);
    let layer = LayerRef {
        digest: Digest::of(&tar),
        diff_id: Digest::of(&tar),
        size: tar.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
    };
    let cache = UnpackedLayers::new(tmp.path().join("cache"));
    let dir = cache.ensure(&layer, &blob_path, OVERLAY).unwrap();
    assert_eq!(inode(&dir.join("a")), inode(&dir.join("b")));
    assert!(!UnpackedLayers::has_no_hard_links(&dir));
    // Removing the layer takes everything of it.
    assert_eq!(cache.remove(|_| true).unwrap(), 1);
    let left: Vec<String> = listing(&tmp.path().join("cache"))
        .into_iter()
        .filter(|p| !p.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unpack_while_writing_of_a_stream_not_as_long_as_the_layer_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = UnpackedLayers::new(tmp.path().join("cache"));
    let layer = || files(&[("data/a", 0o644, 1000, b"a"), ("data/b", 0o644, 1000, b"b")]);
    let refused = |result: Result<PathBuf, LayerError>, expected: usize, actual: usize| {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                LayerError::Unpack(UnpackError::StreamLength { expected: e, actual: a, .. })
                    if e == expected as u64 && a == actual as u64
            ),
            "{err:?}"
        );
        assert_eq!(listing(&tmp.path().join("cache")), Vec::<String>::new());
    };
    // More written after the layer (what follows its end blocks is not read as entries, so
    // only the length tells).
    let mut pending = cache.begin(OVERLAY, None).unwrap();
    let (info, tar) = write_into(layer(), &mut pending);
    std::io::Write::write_all(&mut pending, &[0; 1024]).unwrap();
    refused(pending.finish(&info), tar.len(), tar.len() + 1024);
    // Another, shorter layer's stream.
    let mut pending = cache.begin(OVERLAY, None).unwrap();
    let (_, short) = write_into(files(&[("data/a", 0o644, 1000, b"a")]), &mut pending);
    refused(pending.finish(&info), tar.len(), short.len());
    // Dropped half-way: the same.
    let mut pending = cache.begin(OVERLAY, None).unwrap();
    std::io::Write::write_all(&mut pending, &tar[..tar.len() / 2]).unwrap();
    drop(pending);
    assert_eq!(listing(&tmp.path().join("cache")), Vec::<String>::new());
    // The whole stream goes in under the layer's diff_id.
    let (dir, _) = unpack_while_writing(&cache, layer(), None);
    let dir = dir.unwrap();
    assert_eq!(dir, tmp.path().join("cache").join(info.diff_id.hex()));
    assert_eq!(fs::read(dir.join("data/a")).unwrap(), b"a");
}
