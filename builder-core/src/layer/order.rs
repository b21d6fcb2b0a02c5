//! Puts entries in the one order a layer is written in, and checks what the order relies on.
//!
//! Entries are sorted by path components compared as bytes (`a/b` before `a-b`, because `a` <
//! `a-b`), so every directory precedes its contents without the writer inventing anything.
//! Hard links are rewritten so that the content of each group of links is written under the
//! first of its paths in that order, and every other path links to it: tar readers can only
//! link to something already extracted.

use std::collections::HashMap;
use std::mem;

use super::entry::{Entry, EntryKind};
use super::error::LayerError;

/// Validates, sorts and rewrites hard links; see the module docs.
pub(crate) fn prepare(mut entries: Vec<Entry>) -> Result<Vec<Entry>, LayerError> {
    for entry in &entries {
        validate_path(&entry.path)?;
        if let EntryKind::Hardlink(target) = &entry.kind {
            validate_path(target).map_err(|_| LayerError::HardlinkTargetMissing {
                path: entry.path.clone(),
                target: target.clone(),
            })?;
        }
    }
    entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    if let Some(pair) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(LayerError::DuplicatePath {
            path: pair[0].path.clone(),
        });
    }
    resolve_hardlinks(&mut entries)?;
    Ok(entries)
}

/// A layer path must be relative, `/`-separated and clean.
fn validate_path(path: &str) -> Result<(), LayerError> {
    let reason = if path.is_empty() {
        Some("empty path")
    } else if path.starts_with('/') {
        Some("must be relative, without a leading `/`")
    } else if path.contains('\0') {
        Some("contains a NUL byte")
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("has an empty, `.` or `..` component, or a trailing `/`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LayerError::InvalidPath {
            path: path.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Points every hard link at the first path (in archive order) of its group, moving the content
/// there when the entry that had it sorts later.
fn resolve_hardlinks(entries: &mut [Entry]) -> Result<(), LayerError> {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();

    // For each link, the index of the entry that really holds the content.
    let mut owner_of: Vec<(usize, usize)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let EntryKind::Hardlink(_) = entry.kind else {
            continue;
        };
        let mut current = i;
        let mut steps = 0;
        while let EntryKind::Hardlink(target) = &entries[current].kind {
            let Some(&next) = index.get(target.as_str()) else {
                return Err(LayerError::HardlinkTargetMissing {
                    path: entries[current].path.clone(),
                    target: target.clone(),
                });
            };
            steps += 1;
            if next == i || steps > entries.len() {
                return Err(LayerError::HardlinkCycle {
                    path: entry.path.clone(),
                });
            }
            current = next;
        }
        if let EntryKind::Dir = entries[current].kind {
            return Err(LayerError::HardlinkToDirectory {
                path: entry.path.clone(),
                target: entries[current].path.clone(),
            });
        }
        owner_of.push((i, current));
    }
    drop(index);

    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(link, owner) in &owner_of {
        groups.entry(owner).or_default().push(link);
    }
    for (owner, links) in groups {
        let first = links.iter().copied().fold(owner, usize::min);
        if first != owner {
            // The first path takes the content and the inode's metadata; the old owner becomes
            // a link with the metadata the first path had.
            let (lo, hi) = entries.split_at_mut(owner);
            let first_entry = &mut lo[first];
            let owner_entry = &mut hi[0];
            mem::swap(&mut first_entry.kind, &mut owner_entry.kind);
            mem::swap(&mut first_entry.mode, &mut owner_entry.mode);
            mem::swap(&mut first_entry.uid, &mut owner_entry.uid);
            mem::swap(&mut first_entry.gid, &mut owner_entry.gid);
            mem::swap(&mut first_entry.mtime, &mut owner_entry.mtime);
            mem::swap(&mut first_entry.xattrs, &mut owner_entry.xattrs);
        }
        let target = entries[first].path.clone();
        for i in links.into_iter().chain(std::iter::once(owner)) {
            if i != first {
                entries[i].kind = EntryKind::Hardlink(target.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::layer::entry::Content;

    fn file(path: &str, body: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(Content::Bytes(Arc::from(body.as_bytes()))),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            kind: EntryKind::Hardlink(target.into()),
            mode: 0o600,
            ..file(path, "")
        }
    }

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn parents_sort_before_children() {
        let sorted = prepare(vec![
            file("a-b", ""),
            file("a/b", ""),
            Entry::dir("a", 0o755, 0, 0, 0),
            file("a.txt", ""),
        ])
        .unwrap();
        assert_eq!(paths(&sorted), ["a", "a/b", "a-b", "a.txt"]);
    }

    #[test]
    fn content_moves_to_first_path_of_a_link_group() {
        let sorted = prepare(vec![file("z", "body"), link("a", "z"), link("m", "a")]).unwrap();
        assert_eq!(paths(&sorted), ["a", "m", "z"]);
        assert!(matches!(&sorted[0].kind, EntryKind::File(_)));
        assert_eq!(sorted[0].mode, 0o644);
        assert_eq!(sorted[1].kind, EntryKind::Hardlink("a".into()));
        assert_eq!(sorted[2].kind, EntryKind::Hardlink("a".into()));
        assert_eq!(sorted[2].mode, 0o600);
    }

    #[test]
    fn bad_links_and_paths_are_errors() {
        assert!(matches!(
            prepare(vec![link("a", "b")]),
            Err(LayerError::HardlinkTargetMissing { .. })
        ));
        assert!(matches!(
            prepare(vec![link("a", "b"), link("b", "a")]),
            Err(LayerError::HardlinkCycle { .. })
        ));
        assert!(matches!(
            prepare(vec![Entry::dir("d", 0o755, 0, 0, 0), link("l", "d")]),
            Err(LayerError::HardlinkToDirectory { .. })
        ));
        for bad in ["", "/abs", "a//b", "a/", "./a", "a/../b"] {
            assert!(
                matches!(
                    prepare(vec![file(bad, "")]),
                    Err(LayerError::InvalidPath { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
