//! `.dockerignore` pattern matching with Docker's semantics (moby/patternmatcher).
//!
//! Patterns are anchored at the context root (`foo` is `./foo`, use `**/foo` for any depth) and are
//! evaluated in order: a plain pattern can only turn "not matched" into "matched", an exception
//! (`!pattern`) only the reverse, so the last applicable pattern wins. A pattern that matches a
//! directory matches everything below it, which is why every test also looks at the parents of a
//! path. See [`super::pattern_regex`] for the wildcard syntax.

use thiserror::Error;

use super::cleanpath;
use super::filepath_match::{BadPattern, FilepathPattern};
use super::match_path::MatchPath;
use super::pattern_regex::PatternTest;

/// Why a pattern list was rejected or a pattern could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PatternError {
    /// A pattern that is only `!` excludes nothing and is refused, as Docker does.
    #[error("illegal exclusion pattern: `!`")]
    LoneExclamation,
    /// The pattern is not valid `filepath.Match` syntax, or (found only when it is first used for
    /// matching, like Docker) its character class is not a valid regular expression.
    #[error(transparent)]
    BadPattern(#[from] BadPattern),
    /// A [`MatchInfo`] from a different matcher was passed in.
    #[error("parent match information has {got} entries but the matcher has {expected} patterns")]
    WrongParentInfo {
        /// Patterns in the matcher.
        expected: usize,
        /// Entries in the match information.
        got: usize,
    },
}

/// One normalised pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    components: usize,
    test: Option<PatternTest>,
}

impl Pattern {
    /// The cleaned pattern without its leading `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is an exception (`!pattern`) that re-includes paths.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compiled(&self) -> Result<&PatternTest, BadPattern> {
        self.test
            .as_ref()
            .ok_or_else(|| BadPattern::new(&self.cleaned))
    }

    /// Whether the path itself matches.
    fn matches(&self, path: &MatchPath<'_>) -> Result<bool, BadPattern> {
        Ok(self.compiled()?.matches(path.as_str()))
    }

    /// Whether the path or one of its parent directories matches.
    fn matches_self_or_parent(&self, path: &MatchPath<'_>) -> Result<bool, BadPattern> {
        let test = self.compiled()?;
        Ok(if path.parents_are_slash_prefixes() {
            test.matches_self_or_prefix(path.as_str())
        } else {
            test.matches(path.as_str()) || path.parents().any(|parent| test.matches(parent))
        })
    }

    /// Whether the path or its parent directory with as many components as this pattern matches.
    fn matches_self_or_same_depth_parent(&self, path: &MatchPath<'_>) -> Result<bool, BadPattern> {
        let test = self.compiled()?;
        Ok(test.matches(path.as_str())
            || path
                .parent_with_components(self.components)
                .is_some_and(|parent| test.matches(parent)))
    }
}

/// The state a walker carries from a directory to its children, so that parent directories are
/// not matched again for every entry below them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of `.dockerignore` patterns, each compiled once.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Normalises and checks `patterns` like Docker: each is trimmed, empty ones are dropped, the
    /// rest are lexically cleaned (`docs/` is `docs`, `./a` is `a`), a leading `!` marks an
    /// exception, and the syntax is checked with `filepath.Match` rules.
    pub fn new<I, S>(patterns: I) -> Result<PatternMatcher, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut matcher = PatternMatcher::default();
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = cleanpath::clean(trimmed);
            let (exclusion, body) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::LoneExclamation),
                Some(body) => (true, body),
                None => (false, cleaned.as_str()),
            };
            FilepathPattern::new(body)?;
            matcher.exclusions |= exclusion;
            matcher.patterns.push(Pattern {
                cleaned: body.to_owned(),
                exclusion,
                components: body.split('/').count(),
                test: PatternTest::compile(body),
            });
        }
        Ok(matcher)
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Reports the first pattern that passed the syntax check but cannot be used for matching.
    ///
    /// Docker only notices such a pattern when a path reaches it; callers that prefer to fail
    /// before doing any work can ask up front.
    pub fn validate(&self) -> Result<(), PatternError> {
        match self.patterns.iter().find(|pattern| pattern.test.is_none()) {
            Some(pattern) => Err(BadPattern::new(&pattern.cleaned).into()),
            None => Ok(()),
        }
    }

    /// Whether `path` (slash-separated, relative to the context) is excluded: it or one of its
    /// parent directories matches, and no later exception re-includes it. `.` is never excluded.
    pub fn matches_or_parent_matches(&self, path: &str) -> Result<bool, PatternError> {
        self.evaluate(path, Pattern::matches_self_or_parent)
    }

    /// Docker's deprecated `Matches`: like [`Self::matches_or_parent_matches`] but a pattern is only
    /// tried against the one parent directory with as many components as the pattern.
    pub fn matches(&self, path: &str) -> Result<bool, PatternError> {
        self.evaluate(path, Pattern::matches_self_or_same_depth_parent)
    }

    /// Runs the patterns in order with `test`, skipping those that cannot change the outcome.
    fn evaluate(
        &self,
        path: &str,
        test: impl Fn(&Pattern, &MatchPath<'_>) -> Result<bool, BadPattern>,
    ) -> Result<bool, PatternError> {
        let path = MatchPath::new(path);
        if path.is_context_root() {
            return Ok(false);
        }
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if test(pattern, &path)? {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether `path` is excluded, given the [`MatchInfo`] returned for its parent directory
    /// (`MatchInfo::default()` for a path whose parent was not evaluated, in which case the parents
    /// are matched here). Returns the information to pass for `path`'s own children.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let known = &parent.parent_matched;
        if !known.is_empty() && known.len() != self.patterns.len() {
            return Err(PatternError::WrongParentInfo {
                expected: self.patterns.len(),
                got: known.len(),
            });
        }
        let path = MatchPath::new(path);
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut hit = known.get(index).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = if known.is_empty() {
                    pattern.matches_self_or_parent(&path)?
                } else {
                    pattern.matches(&path)?
                };
            }
            info.parent_matched[index] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let matcher = PatternMatcher::new(["docs", "config", ""]).unwrap();
        assert_eq!(matcher.patterns().len(), 2);
        assert!(!matcher.exclusions());
        for raw in ["  !docs/README.md", "!docs/README.md  "] {
            let matcher = PatternMatcher::new([raw]).unwrap();
            assert!(matcher.exclusions());
            assert_eq!(matcher.patterns()[0].as_str(), "docs/README.md");
        }
        assert_eq!(
            PatternMatcher::new(["!"]).unwrap_err(),
            PatternError::LoneExclamation
        );
    }

    #[test]
    fn rejects_foreign_match_info() {
        let matcher = PatternMatcher::new(["a"]).unwrap();
        let other = PatternMatcher::new(["a", "b"]).unwrap();
        let (_, info) = other
            .matches_using_parent_results("x", &MatchInfo::default())
            .unwrap();
        assert!(matches!(
            matcher.matches_using_parent_results("x/y", &info),
            Err(PatternError::WrongParentInfo { .. })
        ));
    }
}
