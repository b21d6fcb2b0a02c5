//! A path prepared once for matching against every pattern of a [`super::PatternMatcher`].
//!
//! Docker cleans the path, then tests each pattern against it and against each of its parent
//! directories (`a`, `a/b` for `a/b/c`). Those parents are prefixes of the cleaned path that end
//! just before a `/`, so they are handed out as slices instead of being joined anew for every
//! pattern, and a path that is already clean (the common case) is not copied at all.

use std::borrow::Cow;

use super::cleanpath;

/// A cleaned, slash-separated path and the parent directories Docker tests with it.
#[derive(Debug, Clone)]
pub(crate) struct MatchPath<'a> {
    cleaned: Cow<'a, str>,
}

impl<'a> MatchPath<'a> {
    /// Cleans `path` with Go's `path.Clean` rules, copying it only when something changes.
    pub(crate) fn new(path: &'a str) -> Self {
        let cleaned = if is_clean(path) {
            Cow::Borrowed(path)
        } else {
            Cow::Owned(cleanpath::clean(path))
        };
        MatchPath { cleaned }
    }

    /// The cleaned path.
    pub(crate) fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is the context root itself, which no pattern excludes.
    pub(crate) fn is_context_root(&self) -> bool {
        self.as_str() == "."
    }

    /// The parent directories, outermost first, exactly as Docker spells them: `path.Dir` of the
    /// path split at `/` and re-joined one element at a time (none when there is no `/`).
    pub(crate) fn parents(&self) -> impl Iterator<Item = &str> {
        let path = self.as_str();
        let prefixes = path
            .match_indices('/')
            .map(move |(index, _)| &path[..index]);
        // `path.Dir("/a")` is `/`, which splits into two empty elements: the parents are `` and
        // `/`, and the second one is not a prefix ending before a `/`.
        let root = (!self.parents_are_slash_prefixes()).then(|| &path[..1]);
        prefixes.chain(root)
    }

    /// Whether [`Self::parents`] are exactly the prefixes that end just before a `/`, so that a
    /// test of "the path or a parent" can be phrased as one test of the whole path.
    pub(crate) fn parents_are_slash_prefixes(&self) -> bool {
        match self.as_str().strip_prefix('/') {
            Some(rest) => rest.contains('/'),
            None => true,
        }
    }

    /// The parent directory with `components` elements (counting from 1), as Docker's
    /// deprecated `Matches` picks it.
    pub(crate) fn parent_with_components(&self, components: usize) -> Option<&str> {
        self.parents().nth(components.checked_sub(1)?)
    }
}

/// Whether `path` is already in `path.Clean` form, for the shapes paths usually have: relative or
/// rooted, every element a name other than `.` and `..`. Other clean paths (`..`, `../a`, `.`)
/// are simply cleaned again.
fn is_clean(path: &str) -> bool {
    let relative = path.strip_prefix('/').unwrap_or(path);
    if relative.is_empty() {
        return path == "/";
    }
    relative
        .as_bytes()
        .split(|&byte| byte == b'/')
        .all(|element| !matches!(element, b"" | b"." | b".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's spelling: `path.Dir` of the cleaned path, split at `/`, each prefix re-joined.
    fn parents_as_docker_spells_them(path: &str) -> Vec<String> {
        let cleaned = cleanpath::clean(path);
        let parent = cleanpath::dir(&cleaned);
        if parent == "." {
            return Vec::new();
        }
        let dirs: Vec<&str> = parent.split('/').collect();
        (1..=dirs.len())
            .map(|depth| dirs[..depth].join("/"))
            .collect()
    }

    #[test]
    fn agrees_with_clean_and_dir() {
        let paths = [
            "",
            ".",
            "./",
            "/",
            "//",
            "a",
            "a/",
            "a/b",
            "a//b",
            "./a/b",
            "a/./b",
            "a/../b",
            "..",
            "../a",
            "../../a/b",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/c",
            "//a//b",
            "a/b/c/d/e",
            "a/..",
            "/..",
            "/../a",
            ".a/b.",
            "a/...",
            "...",
        ];
        for path in paths {
            let prepared = MatchPath::new(path);
            assert_eq!(prepared.as_str(), cleanpath::clean(path), "clean({path:?})");
            let parents: Vec<&str> = prepared.parents().collect();
            assert_eq!(
                parents,
                parents_as_docker_spells_them(path),
                "parents({path:?})"
            );
            if prepared.parents_are_slash_prefixes() {
                let cleaned = prepared.as_str();
                let prefixes: Vec<&str> = cleaned
                    .match_indices('/')
                    .map(|(index, _)| &cleaned[..index])
                    .collect();
                assert_eq!(parents, prefixes, "prefixes({path:?})");
            }
        }
    }

    #[test]
    fn clean_paths_are_not_copied() {
        for path in ["a", "a/b/c", "/a/b", "/", ".git/objects/ab"] {
            assert!(
                matches!(MatchPath::new(path).cleaned, Cow::Borrowed(_)),
                "{path:?}"
            );
        }
    }

    #[test]
    fn picks_the_parent_with_as_many_components() {
        let path = MatchPath::new("a/b/c/d");
        assert_eq!(path.parent_with_components(0), None);
        assert_eq!(path.parent_with_components(1), Some("a"));
        assert_eq!(path.parent_with_components(3), Some("a/b/c"));
        assert_eq!(path.parent_with_components(4), None);
    }
}
