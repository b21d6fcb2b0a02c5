//! Entry names made into clean paths relative to the root, as bytes (layers may hold names that
//! are not UTF-8).
//!
//! A leading `/` means the root, as inside the image (Docker joins the name onto the
//! destination). `..` is resolved lexically and may not climb above the root: an entry such as
//! `../../etc/x` is refused rather than clamped, because no honest layer writer produces one.
//! Symlinks are not looked at here; they are followed later by the kernel, confined to the root.

/// `name` as `/`-joined components with no `.`, `..` or empty parts; `b""` is the root itself.
/// `None` when a `..` would climb above the root.
pub(crate) fn clean(name: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join(&b'/'))
}

/// Splits a clean path into its parent (`b""` for a top-level name) and its last component.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// `parent/name`, or `name` at the root.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

/// A path for messages.
pub(crate) fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_dots_and_leading_slashes() {
        assert_eq!(clean(b"./a/b/").unwrap(), b"a/b");
        assert_eq!(clean(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(clean(b"a/../b/./c//d").unwrap(), b"b/c/d");
        assert_eq!(clean(b"./").unwrap(), b"");
        assert_eq!(clean(b"/").unwrap(), b"");
    }

    #[test]
    fn clean_refuses_climbing_above_the_root() {
        assert_eq!(clean(b"../../etc/x"), None);
        assert_eq!(clean(b"a/../../x"), None);
        assert_eq!(clean(b"/../x"), None);
        assert_eq!(clean(b".."), None);
    }

    #[test]
    fn split_and_join_are_inverse() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(join(b"", b"c"), b"c");
    }
}
