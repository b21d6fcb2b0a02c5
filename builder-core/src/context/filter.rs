//! One layer of path filtering for a walk: BuildKit's include and exclude pattern lists.
//!
//! Exclude patterns are `.dockerignore` patterns. Include patterns (BuildKit uses them to send
//! only what `COPY` needs) keep a path when it or a parent matches. Both use [`PatternMatcher`]
//! semantics, including `!` exceptions.
//!
//! For each entry a layer decides to keep it, hide it (not reported, but a directory is still
//! entered because something below may be kept), or prune it (a directory is not entered at all).
//! Pruning an excluded directory is only safe when no exception could re-include anything below
//! it. Like BuildKit, this is judged only when every exception is a literal path (ignoring a
//! trailing `/*` or `/**`); then the directory is pruned unless an exception lies below it. With any
//! wildcard in an exception, excluded directories are always entered.

use super::patternmatcher::{MatchInfo, Pattern, PatternError, PatternMatcher};

/// Characters that make a pattern more than a literal path, for the pruning decision.
const WILDCARD_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

/// An include/exclude filter applied while walking. Several can be stacked; an entry must pass
/// each of them, and one layer's exceptions never re-include what another layer excludes.
#[derive(Debug, Clone, Default)]
pub struct WalkFilter {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    only_literal_includes: bool,
    only_literal_exceptions: bool,
}

/// What one layer decided about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    Hide,
    Prune,
}

/// Match state carried from a directory to its children.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterState {
    include: MatchInfo,
    exclude: MatchInfo,
}

impl WalkFilter {
    /// Builds a layer from include and exclude pattern lists; an empty list does not filter.
    pub fn new<S: AsRef<str>>(include: &[S], exclude: &[S]) -> Result<Self, PatternError> {
        let include = if include.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(include)?)
        };
        let exclude = if exclude.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(exclude)?)
        };
        Ok(Self::from_matchers(include, exclude))
    }

    /// Builds a layer that only excludes, from an already built matcher (e.g. `.dockerignore`).
    pub fn excluding(exclude: PatternMatcher) -> Self {
        Self::from_matchers(None, Some(exclude))
    }

    fn from_matchers(include: Option<PatternMatcher>, exclude: Option<PatternMatcher>) -> Self {
        let only_literal = |matcher: &Option<PatternMatcher>, exceptions: bool| {
            matcher.as_ref().is_none_or(|matcher| {
                matcher
                    .patterns()
                    .iter()
                    .filter(|pattern| pattern.is_exclusion() == exceptions)
                    .all(|pattern| !without_trailing_glob(pattern).contains(WILDCARD_CHARS))
            })
        };
        WalkFilter {
            only_literal_includes: only_literal(&include, false),
            only_literal_exceptions: only_literal(&exclude, true),
            include,
            exclude,
        }
    }

    /// Whether this layer lets `rel` be opened: it (or a parent) matches the include patterns and
    /// neither it nor a parent is excluded.
    pub fn permits(&self, rel: &str) -> Result<bool, PatternError> {
        if let Some(include) = &self.include
            && !include.matches_or_parent_matches(rel)?
        {
            return Ok(false);
        }
        match &self.exclude {
            Some(exclude) => Ok(!exclude.matches_or_parent_matches(rel)?),
            None => Ok(true),
        }
    }

    /// Decides about `rel` given its parent directory's state.
    pub(crate) fn decide(
        &self,
        rel: &str,
        is_dir: bool,
        parent: &FilterState,
    ) -> Result<(Decision, FilterState), PatternError> {
        let mut state = FilterState::default();
        let mut hide = false;
        if let Some(include) = &self.include {
            let (included, info) = include.matches_using_parent_results(rel, &parent.include)?;
            state.include = info;
            if !included {
                let below_possible = !self.only_literal_includes || lies_below(include, false, rel);
                if is_dir && !below_possible {
                    return Ok((Decision::Prune, state));
                }
                hide = true;
            }
        }
        if let Some(exclude) = &self.exclude {
            let (excluded, info) = exclude.matches_using_parent_results(rel, &parent.exclude)?;
            state.exclude = info;
            if excluded {
                let below_possible = !self.only_literal_exceptions
                    || (exclude.exclusions() && lies_below(exclude, true, rel));
                if is_dir && !below_possible {
                    return Ok((Decision::Prune, state));
                }
                hide = true;
            }
        }
        let decision = if hide { Decision::Hide } else { Decision::Keep };
        Ok((decision, state))
    }
}

/// Whether some pattern of the given kind (exceptions or plain) names a path inside `dir`.
fn lies_below(matcher: &PatternMatcher, exceptions: bool, dir: &str) -> bool {
    let dir_slash = format!("{dir}/");
    matcher
        .patterns()
        .iter()
        .filter(|pattern| pattern.is_exclusion() == exceptions)
        .any(|pattern| format!("{}/", without_trailing_glob(pattern)).starts_with(&dir_slash))
}

fn without_trailing_glob(pattern: &Pattern) -> &str {
    let text = pattern.as_str();
    let text = text.strip_suffix("/**").unwrap_or(text);
    text.strip_suffix("/*").unwrap_or(text)
}
