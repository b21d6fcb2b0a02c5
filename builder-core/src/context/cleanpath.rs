//! Lexical path cleaning with Go's `path.Clean` rules.
//!
//! Docker normalises both `.dockerignore` patterns and the paths they are matched against with
//! Go's `filepath.Clean`; on Unix that is `path.Clean`. Matching must use the same normal form or
//! `docs/` would not match `docs`, so this is reproduced exactly rather than approximated with
//! `std::path` (which keeps `..` and treats a trailing `/` differently).

/// Returns the shortest slash path lexically equivalent to `path`.
///
/// Repeated slashes collapse to one, `.` elements go, `x/..` pairs cancel, `..` at the start of a
/// rooted path is dropped, a trailing slash is removed (except for `/`), and an empty result is
/// `.`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    // How many leading `..` elements of a relative path cannot be cancelled.
    let mut leading_parents = 0usize;
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if kept.len() > leading_parents {
                    kept.pop();
                } else if !rooted {
                    kept.push("..");
                    leading_parents += 1;
                }
            }
            name => kept.push(name),
        }
    }
    let joined = kept.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// The directory part of a cleaned path, as Go's `path.Dir`: `.` when there is no slash.
#[cfg(test)]
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(index) => clean(&path[..=index]),
        None => ".".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("a/", "a"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("a/b/../../..", ".."),
            ("**/", "**"),
            ("!docs/", "!docs"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean(input), expected, "clean({input:?})");
        }
    }

    #[test]
    fn dir_like_go() {
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("/a"), "/");
        assert_eq!(dir("/"), "/");
    }
}
