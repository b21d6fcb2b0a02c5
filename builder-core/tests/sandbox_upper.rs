//! `upper_to_entries` on hand-made upper dirs: overlayfs's whiteouts and opaque markers in both
//! xattr namespaces become OCI whiteouts, its private xattrs are dropped, others are kept, and
//! hard links are linked to the first path. Needs root (mknod, `trusted.*`); skipped otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use builder_core::exec::sandbox::upper_to_entries;
use builder_core::oci::{Content, EntryKind};
use rustix::fs::{FileType, Mode, XattrFlags};

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

#[test]
fn overlay_markers_become_oci_whiteouts() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let upper = dir.path();
    std::fs::create_dir_all(upper.join("etc/trusted-opaque")).unwrap();
    std::fs::create_dir_all(upper.join("user-opaque")).unwrap();
    std::fs::create_dir_all(upper.join("not-opaque")).unwrap();
    std::fs::write(upper.join("etc/trusted-opaque/kept"), "k").unwrap();
    set_xattr(
        &upper.join("etc/trusted-opaque"),
        "trusted.overlay.opaque",
        b"y",
    );
    set_xattr(&upper.join("user-opaque"), "user.overlay.opaque", b"y");
    // "x" marks a directory that merely holds xwhiteouts: not opaque.
    set_xattr(&upper.join("not-opaque"), "trusted.overlay.opaque", b"x");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/gone"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::write(upper.join("capable"), "bin").unwrap();
    // VFS_CAP_REVISION_2 with cap_net_bind_service permitted.
    let cap: &[u8] = &[0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    set_xattr(&upper.join("capable"), "security.capability", cap);
    set_xattr(&upper.join("capable"), "trusted.overlay.origin", b"\x00");
    set_xattr(&upper.join("capable"), "user.note", b"kept");
    std::fs::hard_link(upper.join("capable"), upper.join("another")).unwrap();

    let entries = upper_to_entries(upper).unwrap();
    let summary: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::File(Content::Bytes(b)) if b.is_empty() => "empty".to_owned(),
                EntryKind::File(Content::Path(p)) => {
                    format!("file {}", p.strip_prefix(upper).unwrap().display())
                }
                EntryKind::Hardlink(t) => format!("hardlink {t}"),
                EntryKind::Dir => "dir".to_owned(),
                other => format!("{other:?}"),
            };
            (e.path.clone(), kind)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("another", "file another"),
        ("capable", "hardlink another"),
        ("etc", "dir"),
        ("etc/.wh.gone", "empty"),
        ("etc/trusted-opaque", "dir"),
        ("etc/trusted-opaque/.wh..wh..opq", "empty"),
        ("etc/trusted-opaque/kept", "file etc/trusted-opaque/kept"),
        ("not-opaque", "dir"),
        ("user-opaque", "dir"),
        ("user-opaque/.wh..wh..opq", "empty"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .collect();
    assert_eq!(summary, expected);

    let another = entries.iter().find(|e| e.path == "another").unwrap();
    let xattrs: BTreeMap<String, Vec<u8>> = [
        ("security.capability".to_owned(), cap.to_vec()),
        ("user.note".to_owned(), b"kept".to_vec()),
    ]
    .into();
    assert_eq!(another.xattrs, xattrs);
    let dir_entry = entries
        .iter()
        .find(|e| e.path == "etc/trusted-opaque")
        .unwrap();
    assert!(
        dir_entry.xattrs.is_empty(),
        "overlay xattrs dropped: {:?}",
        dir_entry.xattrs
    );
}
