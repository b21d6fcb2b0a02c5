//! Archive paths resolved as if the destination were the root directory.
//!
//! Docker extracts `ADD` archives inside a chroot at the destination, so a leading `/` is
//! relative to the destination and `..` stops at it: nothing an archive names can land outside.
//! Symlinks created earlier by the same archive are followed the same way when later entries
//! are placed under them.

/// Cleans `name` relative to the extraction root: empty, `.` and `/` components are dropped,
/// `..` removes the previous component and stays at the root. `""` means the root itself.
pub(crate) fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// The directory containing `path` (`""` for a top-level name).
pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Where a symlink at `link` pointing at `target` leads, relative to the root.
pub(crate) fn follow(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        clean(target)
    } else {
        clean(&format!("{}/{}", parent(link), target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_at_the_root() {
        assert_eq!(clean("./a/b/"), "a/b");
        assert_eq!(clean("/etc/passwd"), "etc/passwd");
        assert_eq!(clean("../../x"), "x");
        assert_eq!(clean("a/../../b/./c//d"), "b/c/d");
        assert_eq!(clean("./"), "");
        assert_eq!(clean("/.."), "");
    }

    #[test]
    fn follow_resolves_relative_and_absolute_targets() {
        assert_eq!(follow("a/link", "../b"), "b");
        assert_eq!(follow("a/link", "c"), "a/c");
        assert_eq!(follow("a/link", "/etc"), "etc");
        assert_eq!(follow("link", "../../.."), "");
    }
}
