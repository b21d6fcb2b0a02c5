//! The build context: which files a build may read, after `.dockerignore`.
//!
//! [`BuildContext`] reproduces what BuildKit would send from the context directory: the
//! `.dockerignore` file is read like Docker ([`read_all`]), its patterns are matched like Docker
//! ([`PatternMatcher`]), the tree is walked like BuildKit's `fsutil` ([`walk_filtered`]), and
//! `COPY` sources are expanded like BuildKit's copy ([`BuildContext::resolve_source`], with
//! [`filepath_match`] wildcards). Symbolic links are never followed out of the context.
//!
//! The Dockerfile and the ignore file themselves can be excluded; the build still reads them (the
//! front end opens them directly), but `COPY` cannot see them, as with BuildKit.

mod cleanpath;
mod error;
mod filepath_match;
mod filter;
mod hash;
mod ignorefile;
mod match_path;
mod pattern_regex;
mod patternmatcher;
mod prefetch;
mod scoped;
mod source;
mod walk;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use error::ContextError;
pub use filepath_match::{BadPattern, FilepathPattern, contains_wildcards, filepath_match};
pub use filter::WalkFilter;
pub use hash::FileHashes;
pub use ignorefile::read_all;
pub use patternmatcher::{MatchInfo, Pattern, PatternError, PatternMatcher};
pub(crate) use walk::join_rel;
pub use walk::{ContextEntry, Walk, walk_filtered};

/// A context path named by a `COPY`/`ADD` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPath {
    /// Slash-separated path relative to the context root (`""` for the root), after following
    /// symbolic links: this is what to read or walk.
    pub rel: String,
    /// Absolute host path of `rel`.
    pub path: PathBuf,
    /// The path as the source named it (links in its parent directories resolved, a link in the
    /// last component not followed). It differs from `rel` only when the source names a link;
    /// its last component is the name `COPY` gives the copy.
    pub named: String,
}

/// An opened build context directory and its ignore rules.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    ignore_file: Option<PathBuf>,
    matcher: PatternMatcher,
    filter: Option<WalkFilter>,
    prefetch: Option<prefetch::Prefetch>,
}

impl BuildContext {
    /// Opens `root`; the ignore file is `<dockerfile>.dockerignore` next to the Dockerfile if it
    /// exists (it takes precedence), else `<root>/.dockerignore`. Without `dockerfile`, the
    /// Dockerfile is taken to be `<root>/Dockerfile`. The Dockerfile may lie outside the context.
    ///
    /// Every pattern is checked here, including those Docker would only reject once a path reaches
    /// them, so later matching cannot fail.
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<BuildContext, ContextError> {
        let root = fs::canonicalize(root)
            .map_err(|error| ContextError::io("open build context", root, error))?;
        if !root.is_dir() {
            return Err(ContextError::RootNotDirectory { path: root });
        }
        let dockerfile = dockerfile.map_or_else(|| root.join("Dockerfile"), Path::to_path_buf);
        let mut specific = dockerfile.clone().into_os_string();
        specific.push(".dockerignore");
        let candidates = [PathBuf::from(specific), root.join(".dockerignore")];
        let mut ignore_file = None;
        let mut patterns = Vec::new();
        for candidate in candidates {
            match fs::read(&candidate) {
                Ok(bytes) => {
                    patterns = read_all(&String::from_utf8_lossy(&bytes));
                    ignore_file = Some(candidate);
                    break;
                }
                Err(error) if is_absent(&error) => {}
                Err(error) => return Err(ContextError::io("read", candidate, error)),
            }
        }
        let matcher = PatternMatcher::new(&patterns)
            .and_then(|matcher| matcher.validate().map(|()| matcher))
            .map_err(|error| ContextError::IgnoreFile {
                file: ignore_file.clone().unwrap_or_default(),
                error,
            })?;
        let filter =
            (!matcher.patterns().is_empty()).then(|| WalkFilter::excluding(matcher.clone()));
        Ok(BuildContext {
            root,
            ignore_file,
            matcher,
            filter,
            prefetch: None,
        })
    }

    /// Starts walking, on a thread of its own, the directories that `sources` name (`COPY`
    /// sources relative to the root, wildcards allowed), for [`Self::walk_prefetched`] to hand
    /// out. A source that names no directory is left alone; the step that reads it reports any
    /// problem. Replaces walks an earlier call started and that were not handed out.
    pub fn prefetch<'s>(&mut self, sources: impl IntoIterator<Item = &'s str>) {
        let mut starts: Vec<String> = Vec::new();
        for source in sources {
            let Ok(found) = self.resolve_source(source) else {
                continue;
            };
            for path in found {
                if !fs::symlink_metadata(&path.path).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                if let Ok(start) = self.walk_start(&path.rel)
                    && !starts.contains(&start)
                {
                    starts.push(start);
                }
            }
        }
        self.prefetch = None;
        if !starts.is_empty() {
            let detached = BuildContext {
                root: self.root.clone(),
                ignore_file: self.ignore_file.clone(),
                matcher: self.matcher.clone(),
                filter: self.filter.clone(),
                prefetch: None,
            };
            self.prefetch = Some(prefetch::Prefetch::start(detached, starts, prefetch::BOUND));
        }
    }

    /// Like [`Self::walk`], but hands out the walk [`Self::prefetch`] made of `rel` if there is
    /// one: entries as they were when the build began, for cache keys. Copying must not use it:
    /// a file may have changed since.
    pub fn walk_prefetched(&self, rel: &str) -> Result<Walk<'_>, ContextError> {
        let start = self.walk_start(rel)?;
        match self.prefetch.as_ref().and_then(|p| p.take(&start)) {
            Some(entries) => Ok(Walk::prefetched(&self.root, entries)),
            None => self.walk_from(&start, None),
        }
    }

    /// The context directory (canonical absolute path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore file whose patterns apply, if there is one.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// The ignore patterns.
    pub fn matcher(&self) -> &PatternMatcher {
        &self.matcher
    }

    /// Whether `rel` (slash-separated, relative to the root; a leading `/` or `./` is ignored) is
    /// excluded by the ignore file: it or a parent matches and no later exception re-includes it.
    /// The root is never excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let rel = rel.trim_start_matches('/');
        // Patterns were validated in `open`, so matching cannot fail; fail closed regardless.
        self.matcher.matches_or_parent_matches(rel).unwrap_or(true)
    }

    /// Follows symbolic links in `rel` without leaving the context: an absolute link target is
    /// taken relative to the root and `..` stops at the root. Missing components are kept as
    /// written, so the result may not exist.
    pub fn resolve_in_root(&self, rel: &str) -> Result<ContextPath, ContextError> {
        let named = scoped::resolve(&self.root, rel, false)?;
        let resolved = scoped::resolve(&self.root, &named, true)?;
        Ok(ContextPath {
            path: self.root.join(&resolved),
            rel: resolved,
            named,
        })
    }

    /// Walks `rel` (a file or directory, `""` for the root) and everything below it that the
    /// ignore file lets through, in sorted depth-first order with `lstat` metadata. `rel` itself
    /// comes first when it is not excluded; links below it are reported, not followed. Links in
    /// `rel`'s parent directories are resolved inside the context first.
    pub fn walk(&self, rel: &str) -> Result<Walk<'_>, ContextError> {
        self.walk_with(rel, None)
    }

    /// Like [`Self::walk`], with one more filter stacked on the ignore file (for example the
    /// patterns of `COPY --exclude`).
    pub fn walk_with<'a>(
        &'a self,
        rel: &str,
        extra: Option<&'a WalkFilter>,
    ) -> Result<Walk<'a>, ContextError> {
        self.walk_from(&self.walk_start(rel)?, extra)
    }

    /// Where a walk of `rel` starts: cleaned, links in its parent directories resolved inside
    /// the context, relative to the root (`""` for the root).
    fn walk_start(&self, rel: &str) -> Result<String, ContextError> {
        let cleaned = cleanpath::clean(rel);
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::OutsideContext {
                source_path: rel.to_owned(),
            });
        }
        let resolved = match cleaned.rsplit_once('/') {
            Some((parent, name)) => {
                let parent = scoped::resolve(&self.root, parent, true)?;
                if parent.is_empty() {
                    name.to_owned()
                } else {
                    format!("{parent}/{name}")
                }
            }
            None => cleaned,
        };
        let start = resolved.trim_start_matches('/');
        Ok(if start == "." { "" } else { start }.to_owned())
    }

    fn walk_from<'a>(
        &'a self,
        start: &str,
        extra: Option<&'a WalkFilter>,
    ) -> Result<Walk<'a>, ContextError> {
        walk_filtered(&self.root, start, self.filter.iter().chain(extra))
    }
}

fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
