//! Hostile layers: path traversal, symlink escapes, hard links out of the root, whiteouts
//! aimed outside.
//!
//! Each test unpacks into `tmp/j1/j2/dest`; `tmp/sentinel/secret` is what an escape would reach.
//! Every payload aims only inside `tmp` (never at the host's own files, even through a
//! regression), and each test checks that nothing outside `dest` changed.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod layer_unpack_common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use builder_core::layer::{
    ArchiveFormat, LayerError, UnpackError, UnpackStats, WhiteoutFormat, unpack_layer,
};
use layer_unpack_common::{Layer, Meta, blob, listing};
use tar::EntryType;

struct Scene {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    sentinel: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("j1/j2/dest");
        let sentinel = tmp.path().join("sentinel");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("secret"), b"secret").unwrap();
        Scene {
            tmp,
            dest,
            sentinel,
        }
    }

    fn layer_path(&self) -> PathBuf {
        self.tmp.path().join("layer.tar")
    }

    fn unpack(
        &self,
        layer: &mut Layer,
        whiteouts: WhiteoutFormat,
    ) -> Result<UnpackStats, LayerError> {
        let blob = blob(self.tmp.path(), "layer.tar", &layer.finish());
        unpack_layer(&blob, ArchiveFormat::Tar, &self.dest, whiteouts)
    }

    /// The sentinel path as an absolute host path.
    fn sentinel_str(&self) -> String {
        self.sentinel.display().to_string()
    }

    /// `dest` joined with an absolute host path, where an in-image absolute path lands.
    fn inside(&self, host_path: &str) -> PathBuf {
        self.dest.join(host_path.trim_start_matches('/'))
    }

    /// Nothing outside `dest` changed: the sentinel holds exactly `secret`, unchanged and not
    /// linked from anywhere, and no other file appeared.
    fn assert_untouched(&self) {
        let outside: Vec<String> = listing(self.tmp.path())
            .into_iter()
            .filter(|p| !p.starts_with("j1/j2/dest/"))
            .collect();
        assert_eq!(
            outside,
            [
                "j1",
                "j1/j2",
                "j1/j2/dest",
                "layer.tar",
                "sentinel",
                "sentinel/secret"
            ]
        );
        let secret = self.sentinel.join("secret");
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        let meta = fs::symlink_metadata(&secret).unwrap();
        assert_eq!(meta.nlink(), 1, "the secret was hard-linked");
        assert_eq!(meta.mode() & 0o7777, 0o644);
        let sentinel = fs::metadata(&self.sentinel).unwrap();
        assert_eq!(sentinel.mode() & 0o7777, 0o755);
    }
}

const MODES: [WhiteoutFormat; 2] = [
    WhiteoutFormat::Apply,
    WhiteoutFormat::Overlay { user_xattr: false },
];

#[test]
fn dot_dot_names_are_refused_naming_the_entry_and_layer() {
    for name in [
        "../../etc/x",
        "../../../sentinel/x",
        "a/../../x",
        "/../sentinel/x",
        "./a/b/../../../x",
    ] {
        let scene = Scene::new();
        let mut layer = Layer::new();
        layer.file("ok", b"fine").file(name, b"pwned");
        let err = scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap_err();
        match &err {
            LayerError::Unpack(UnpackError::EscapingPath { layer, entry }) => {
                assert_eq!(entry, name);
                assert_eq!(layer, &scene.layer_path());
            }
            other => panic!("unexpected error for {name}: {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(name) && message.contains("layer.tar"),
            "{message}"
        );
        assert_eq!(listing(&scene.dest), ["ok"]);
        scene.assert_untouched();
    }
}

#[test]
fn absolute_names_land_inside_the_root() {
    let scene = Scene::new();
    let host_path = format!("{}/x", scene.sentinel_str());
    let mut layer = Layer::new();
    layer.file("/etc/x", b"inside");
    layer.raw(
        EntryType::Regular,
        b"placeholder",
        b"",
        Meta::mode(0o644),
        b"also inside",
        &[("path", host_path.as_bytes())],
    );
    scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap();
    assert_eq!(fs::read(scene.dest.join("etc/x")).unwrap(), b"inside");
    assert_eq!(fs::read(scene.inside(&host_path)).unwrap(), b"also inside");
    scene.assert_untouched();
}

#[test]
fn writes_through_escaping_symlinks_stay_inside_the_root() {
    for mode in MODES {
        let scene = Scene::new();
        let host_sentinel = scene.sentinel_str();
        let via_root = format!("root-link{host_sentinel}/via-root");
        let mut layer = Layer::new();
        layer
            // `/` is the root of the image.
            .symlink("root-link", "/")
            .file(&via_root, b"via /")
            // `..` stops at the root of the image.
            .symlink("up", "../../..")
            .file("up/sentinel/via-up", b"via ..")
            .symlink("parent", "..")
            .file("parent/via-parent", b"via parent")
            // An absolute host path is a path in the image.
            .symlink("host", &host_sentinel)
            .dir(&host_sentinel, Meta::mode(0o755))
            .file("host/via-host", b"via host path")
            // A chain: each link alone looks harmless.
            .symlink("c1", "c2/../c3")
            .dir("c2", Meta::mode(0o755))
            .symlink("c3", "c4/../../..")
            .dir("c4", Meta::mode(0o755))
            .file("c1/via-chain", b"via chain");
        scene.unpack(&mut layer, mode).unwrap();

        let read = |p: &str| fs::read(scene.dest.join(p)).unwrap();
        let inside = scene.inside(&host_sentinel);
        assert_eq!(fs::read(inside.join("via-root")).unwrap(), b"via /");
        assert_eq!(fs::read(inside.join("via-host")).unwrap(), b"via host path");
        assert_eq!(read("sentinel/via-up"), b"via ..");
        assert_eq!(read("via-parent"), b"via parent");
        assert_eq!(read("via-chain"), b"via chain");
        // The links themselves are kept as written.
        assert_eq!(
            fs::read_link(scene.dest.join("up")).unwrap(),
            Path::new("../../..")
        );
        assert_eq!(
            fs::read_link(scene.dest.join("host")).unwrap(),
            Path::new(&host_sentinel)
        );
        scene.assert_untouched();
    }
}

#[test]
fn a_dangling_symlink_parent_is_an_error_not_an_escape() {
    for mode in MODES {
        let scene = Scene::new();
        let mut layer = Layer::new();
        layer
            .symlink("host", &scene.sentinel_str())
            .file("host/pwned", b"nowhere to go");
        let err = scene.unpack(&mut layer, mode).unwrap_err();
        match &err {
            LayerError::Unpack(UnpackError::Entry { entry, .. }) => {
                assert_eq!(entry, "host/pwned")
            }
            other => panic!("unexpected error: {other:?}"),
        }
        assert_eq!(listing(&scene.dest), ["host"]);
        scene.assert_untouched();
    }
}

#[test]
fn a_symlink_replacing_a_directory_is_not_followed_by_its_metadata() {
    // `d` is a directory, then a symlink to the sentinel; a later `d/` directory entry must
    // replace the link, not chmod or chown what it points at. Same for a file over a link.
    let scene = Scene::new();
    let mut layer = Layer::new();
    layer
        .dir("d", Meta::mode(0o755))
        .symlink("d", &scene.sentinel_str())
        .dir("d", Meta::owned(0o777, 1234, 1234, 1))
        .symlink("f", &format!("{}/secret", scene.sentinel_str()))
        .file("f", b"replaced the link, not the secret");
    scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap();
    let d = fs::symlink_metadata(scene.dest.join("d")).unwrap();
    assert!(d.is_dir());
    assert_eq!((d.uid(), d.mode() & 0o7777), (1234, 0o777));
    assert_eq!(
        fs::read(scene.dest.join("f")).unwrap(),
        b"replaced the link, not the secret"
    );
    scene.assert_untouched();
    assert_eq!(fs::metadata(&scene.sentinel).unwrap().uid(), 0);
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    for target in [
        "../../../sentinel/secret",
        "../sentinel/secret",
        "a/../../../../sentinel/secret",
    ] {
        let scene = Scene::new();
        let mut layer = Layer::new();
        layer.hardlink("stolen", target);
        let err = scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap_err();
        match &err {
            LayerError::Unpack(UnpackError::EscapingHardlink {
                entry, target: t, ..
            }) => {
                assert_eq!(entry, "stolen");
                assert_eq!(t, target);
            }
            other => panic!("unexpected error for {target}: {other:?}"),
        }
        assert!(err.to_string().contains("stolen"));
        assert_eq!(listing(&scene.dest), Vec::<String>::new());
        scene.assert_untouched();
    }
}

#[test]
fn hard_links_through_symlinks_resolve_inside_the_root() {
    let scene = Scene::new();
    let host_secret = format!("{}/secret", scene.sentinel_str());
    let mut layer = Layer::new();
    layer
        .symlink("up", "../../..")
        .hardlink("via-up", "up/sentinel/secret");
    let err = scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap_err();
    assert!(
        matches!(&err, LayerError::Unpack(UnpackError::HardlinkTargetMissing { entry, .. }) if entry == "via-up"),
        "{err:?}"
    );
    scene.assert_untouched();

    // An absolute target is the image's path, not the host's.
    let scene = Scene::new();
    let mut layer = Layer::new();
    layer.hardlink("abs", &host_secret);
    let err = scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap_err();
    assert!(
        matches!(
            &err,
            LayerError::Unpack(UnpackError::HardlinkTargetMissing { .. })
        ),
        "{err:?}"
    );
    scene.assert_untouched();

    // A hard link to a symlink pointing out links the symlink itself.
    let scene = Scene::new();
    let mut layer = Layer::new();
    layer
        .symlink("out", &host_secret)
        .hardlink("same-link", "out");
    scene.unpack(&mut layer, WhiteoutFormat::Apply).unwrap();
    let link = fs::symlink_metadata(scene.dest.join("same-link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        link.ino(),
        fs::symlink_metadata(scene.dest.join("out")).unwrap().ino()
    );
    scene.assert_untouched();
}

#[test]
fn whiteouts_cannot_delete_outside_the_root() {
    for mode in MODES {
        let scene = Scene::new();
        let mut layer = Layer::new();
        layer.symlink("parent", "../../..").raw(
            EntryType::Regular,
            b"parent/.wh.sentinel",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        );
        scene.unpack(&mut layer, mode).unwrap();
        scene.assert_untouched();

        for name in [&b"sub/.wh.."[..], b"sub/.wh...", b"sub/.wh."] {
            let scene = Scene::new();
            let mut layer = Layer::new();
            layer
                .dir("sub", Meta::mode(0o755))
                .file("sub/file", b"f")
                .raw(EntryType::Regular, name, b"", Meta::mode(0o644), b"", &[]);
            let err = scene.unpack(&mut layer, mode).unwrap_err();
            assert!(
                matches!(
                    &err,
                    LayerError::Unpack(UnpackError::InvalidWhiteout { .. })
                ),
                "{err:?}"
            );
            assert_eq!(listing(&scene.dest), ["sub", "sub/file"]);
            scene.assert_untouched();
        }

        let scene = Scene::new();
        let mut layer = Layer::new();
        layer.raw(
            EntryType::Regular,
            b"../../../.wh.sentinel",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        );
        let err = scene.unpack(&mut layer, mode).unwrap_err();
        assert!(
            matches!(&err, LayerError::Unpack(UnpackError::EscapingPath { .. })),
            "{err:?}"
        );
        scene.assert_untouched();
    }
}

#[test]
fn overlay_opaque_through_a_symlink_marks_a_directory_inside_the_root() {
    let scene = Scene::new();
    let host = scene.sentinel_str();
    let mut layer = Layer::new();
    layer
        .symlink("host", &host)
        .dir(&host, Meta::mode(0o755))
        .raw(
            EntryType::Regular,
            b"host/.wh..wh..opq",
            b"",
            Meta::mode(0o644),
            b"",
            &[],
        );
    scene
        .unpack(&mut layer, WhiteoutFormat::Overlay { user_xattr: true })
        .unwrap();
    assert_eq!(
        layer_unpack_common::xattr(&scene.inside(&host), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        layer_unpack_common::xattr(&scene.sentinel, "user.overlay.opaque"),
        None
    );
    scene.assert_untouched();
}
