//! Expanding a `COPY`/`ADD` source into context paths, as BuildKit does.
//!
//! The source is split at the first path component containing a wildcard. The part before it is
//! resolved inside the context (following symbolic links, scoped to the root); below it, entries
//! are matched with `filepath.Match` against the rest, in walk order, without entering a matched
//! directory or following links. Each match that is a symbolic link is then followed, again scoped
//! to the root. Only what BuildKit would have sent counts: a match, or the target of a followed
//! link, that `.dockerignore` excludes is not found.

use std::fs;

use super::cleanpath;
use super::error::ContextError;
use super::filepath_match::{FilepathPattern, contains_wildcards};
use super::{BuildContext, ContextPath, scoped};

/// What became of one candidate match.
enum Candidate {
    Visible(ContextPath),
    Excluded,
    Missing,
}

impl BuildContext {
    /// Expands a `COPY`/`ADD` source (relative to the context root; may start with `/` or `./`;
    /// any component may hold `filepath.Match` wildcards) into the context paths it names, in
    /// BuildKit's walk order (depth first, names sorted within each directory).
    ///
    /// Errors: a relative source that climbs out of the context (`../x`) is
    /// [`ContextError::OutsideContext`]; no match is [`ContextError::NotFound`], whose
    /// `excluded_by` names the ignore file when matches existed but all of them are excluded.
    pub fn resolve_source(&self, source: &str) -> Result<Vec<ContextPath>, ContextError> {
        let cleaned = cleanpath::clean(source);
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::OutsideContext {
                source_path: source.to_owned(),
            });
        }
        let components: Vec<&str> = cleaned
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        let split = components
            .iter()
            .position(|component| contains_wildcards(component));
        let candidates = match split {
            None => vec![self.candidate(&components.join("/"))?],
            Some(split) => self.expand(source, &components[..split], &components[split..])?,
        };
        let mut found = Vec::new();
        let mut excluded = false;
        for candidate in candidates {
            match candidate {
                Candidate::Visible(path) => found.push(path),
                Candidate::Excluded => excluded = true,
                Candidate::Missing => {}
            }
        }
        if found.is_empty() {
            return Err(ContextError::NotFound {
                source_path: source.to_owned(),
                excluded_by: excluded.then(|| self.ignore_file.clone()).flatten(),
            });
        }
        Ok(found)
    }

    /// Lists the entries below the literal prefix that match the wildcard part.
    fn expand(
        &self,
        source: &str,
        literal: &[&str],
        wildcard: &[&str],
    ) -> Result<Vec<Candidate>, ContextError> {
        let bad = |error| ContextError::BadSource {
            source_path: source.to_owned(),
            error,
        };
        let pattern_text = wildcard.join("/");
        let pattern = FilepathPattern::new(&pattern_text).map_err(bad)?;
        let base = scoped::resolve(&self.root, &literal.join("/"), true)?;
        let base_path = self.root.join(&base);
        match fs::symlink_metadata(&base_path) {
            Ok(metadata) if metadata.is_dir() => {}
            _ => return Ok(Vec::new()),
        }
        // `*` and `?` never match `/`, so only classes can add depth beyond the pattern's own.
        let max_depth = 1 + pattern_text.matches('/').count() + pattern_text.matches('[').count();
        let mut matches = Vec::new();
        self.match_below(&base, "", 1, max_depth, &pattern, &mut matches)?;
        matches
            .iter()
            .map(|rel| self.candidate(rel))
            .collect::<Result<Vec<_>, _>>()
    }

    fn match_below(
        &self,
        base: &str,
        below: &str,
        depth: usize,
        max_depth: usize,
        pattern: &FilepathPattern,
        matches: &mut Vec<String>,
    ) -> Result<(), ContextError> {
        let dir = join(base, below);
        let dir_path = self.root.join(&dir);
        let read_error = |error| ContextError::io("read directory", &dir_path, error);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir_path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let is_dir = entry.file_type().map_err(read_error)?.is_dir();
            match entry.file_name().into_string() {
                Ok(name) => names.push((name, is_dir)),
                Err(name) => {
                    return Err(ContextError::NonUtf8Name {
                        path: dir_path.join(name),
                    });
                }
            }
        }
        names.sort_unstable();
        for (name, is_dir) in names {
            let rel_below = join(below, &name);
            if pattern.matches(&rel_below) {
                matches.push(join(base, &rel_below));
            } else if is_dir && depth < max_depth {
                self.match_below(base, &rel_below, depth + 1, max_depth, pattern, matches)?;
            }
        }
        Ok(())
    }

    /// Checks one named context path: it must exist and be sent, and if it is a symbolic link its
    /// target (resolved inside the context) must too.
    fn candidate(&self, rel: &str) -> Result<Candidate, ContextError> {
        let named = scoped::resolve(&self.root, rel, false)?;
        let target = scoped::resolve(&self.root, &named, true)?;
        for rel in [&named, &target] {
            if fs::symlink_metadata(self.root.join(rel)).is_err() {
                return Ok(Candidate::Missing);
            }
            if !self.is_sent(rel)? {
                return Ok(Candidate::Excluded);
            }
        }
        Ok(Candidate::Visible(ContextPath {
            path: self.root.join(&target),
            rel: target,
            named,
        }))
    }

    /// Whether BuildKit would send `rel`: a walk of it reports at least itself.
    fn is_sent(&self, rel: &str) -> Result<bool, ContextError> {
        if rel.is_empty() {
            return Ok(true);
        }
        match self.walk(rel)?.next() {
            Some(Ok(_)) => Ok(true),
            Some(Err(error)) => Err(error),
            None => Ok(false),
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}
