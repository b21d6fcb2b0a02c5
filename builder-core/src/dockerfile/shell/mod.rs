//! Shell-style word expansion for Dockerfile instructions, as BuildKit's `shell.Lex` does it.
//!
//! Instructions such as `ENV`, `COPY`, `WORKDIR` or `FROM` expand `$VAR` references in their
//! words before using them. The rules are a small, fixed subset of POSIX `sh`, and Dockerfiles
//! in the wild depend on every corner of BuildKit's behaviour (including which inputs are
//! errors), so this module reproduces it rather than a real shell:
//!
//! * `$NAME` and `${NAME}` expand to the variable's value, or to nothing when it is unset.
//!   A name is letters, digits and `_`; a name that starts with a digit is all the digits
//!   (`$10x` is parameter `10` followed by `x`). Positional (`$1`, `${001}`) and special
//!   parameters (`$@ $* $# $? $- $$ $! $0`) are never set, so they expand to nothing.
//!   A `$` not followed by a name stays a literal `$`.
//! * `${V:-w}` / `${V-w}`: `w` when `V` is unset (with `:`, also when it is empty).
//!   `${V:+w}` / `${V+w}`: `w` when `V` is set (with `:`, non-empty), otherwise nothing.
//!   `${V:?msg}` / `${V?msg}`: the value, or an error `V: msg` when unset (with `:`, or empty).
//! * `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`: remove the shortest/longest prefix/suffix that
//!   matches the pattern `p`. `${V/p/r}` replaces the first match of `p` by `r`, `${V//p/r}`
//!   every match. Patterns know `*` (any run of characters except newline), `?` (one
//!   character) and escapes (`\*`, `\?`, `\\`, and `\}` / `\/` to keep those from ending the
//!   part); there are no bracket classes. `${V:#p}` and friends are errors.
//! * The word inside a modifier is itself expanded, so defaults nest: `${A:-${B:-c}}`.
//! * `${V=w}`, `${V:=w}`, any other modifier, `${}` and an unterminated `${` are errors.
//! * Quotes: `'…'` keeps everything literally; `"…"` expands `$` and lets the escape
//!   character escape only `"`, `$` and itself. Unterminated quotes are errors.
//! * The escape character (`\` by default, `` ` `` with `# escape=`) makes the next character
//!   literal; a trailing escape character is dropped.
//! * `<<` (a possible heredoc marker) keeps the blanks that follow it attached.
//!
//! [`Lexer::process_word`] produces one string (no field splitting); [`Lexer::process_words`]
//! splits into fields at unquoted, unescaped whitespace, including whitespace that comes out of
//! an expansion.

mod error;
mod expand;
mod fields;
mod pattern;
pub(crate) mod unicode;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

pub use error::ShellError;

use expand::Expander;

/// A source of variable values for expansion.
///
/// A variable that is set to the empty string is *set*: `${V-x}` gives the empty string for it
/// and `x` only when [`lookup`](VarLookup::lookup) returns `None`.
pub trait VarLookup {
    /// The value of variable `name`, or `None` when it is not set.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl VarLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: BuildHasher> VarLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An ordered list of definitions, as `ENV`/`ARG` build them up: the last definition of a
/// name wins.
impl VarLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The last definition of a name wins, as for slices.
impl VarLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: VarLookup + ?Sized> VarLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// The variables a word referred to, split by whether they were set.
///
/// Linting uses `unmatched` to warn about undefined variables (BuildKit's
/// `UndefinedVar` rule); `matched` tells which definitions a word depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// Names that were looked up and set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and not set.
    pub unmatched: BTreeSet<String>,
}

/// Expands variables in Dockerfile words, with BuildKit's rules (see the [module docs](self)).
///
/// A `Lexer` is a small value holding the escape character and the options; it keeps no
/// state between calls and can be shared freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
}

impl Default for Lexer {
    /// A lexer with the default escape character `\`.
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character (`\`, or `` ` `` after `# escape=``) and all
    /// options off.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// The escape character this lexer uses.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output instead of removing them (quoted text is still
    /// protected from expansion and splitting). Used to re-split a line without losing its
    /// quoting.
    #[must_use]
    pub fn raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output instead of removing them (the escaped character
    /// still loses its special meaning).
    #[must_use]
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Leave references to unset variables as written (`$X`, `${X}`, `${X:-w}` with `w`
    /// expanded) instead of expanding them to nothing, so that a later pass with more
    /// variables can expand them.
    #[must_use]
    pub fn skip_unset_env(mut self, on: bool) -> Lexer {
        self.skip_unset_env = on;
        self
    }

    /// Treat `'` and `"` as ordinary characters (no quote removal, no protection). `RUN`
    /// heredoc bodies use this, where quotes belong to the script.
    #[must_use]
    pub fn skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// Expands `word` into one string: quotes removed, escapes applied, no field splitting
    /// (BuildKit's `ProcessWord`).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use builder_core::dockerfile::shell::Lexer;
    ///
    /// let env = BTreeMap::from([("PWD".to_owned(), "/home".to_owned())]);
    /// let word = Lexer::new('\\').process_word("he'll'o ${PWD:-x} ${NOPE:-$PWD}", &env)?;
    /// assert_eq!(word, "hello /home /home");
    /// # Ok::<(), builder_core::dockerfile::shell::ShellError>(())
    /// ```
    pub fn process_word(&self, word: &str, env: &dyn VarLookup) -> Result<String, ShellError> {
        Expander::new(self, env, false)
            .expand_word(word)
            .map(|expanded| expanded.text)
    }

    /// Like [`process_word`](Lexer::process_word), and also reports which variables the word
    /// referred to (BuildKit's `ProcessWordWithMatches`). Only references that were actually
    /// evaluated count: in `${A:-$B}` both count, in `'$C'` nothing does.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn VarLookup,
    ) -> Result<(String, Matches), ShellError> {
        Expander::new(self, env, true)
            .expand_word(word)
            .map(|expanded| (expanded.text, expanded.matches.unwrap_or_default()))
    }

    /// Expands `word` and splits the result into fields at whitespace that is neither quoted
    /// nor escaped (BuildKit's `ProcessWords`). Whitespace produced by an unquoted expansion
    /// splits too (`$LIST` with `a b` gives two fields), while `"$LIST"` stays one field.
    /// Empty fields are dropped, so `""` alone gives no field.
    ///
    /// Since Dockerfile frontend 1.9, BuildKit drops the part of a field that precedes a
    /// `${V…}` with a modifier or pattern (`a${X:-b}` gives `b`, from an internal buffer being
    /// reused); kiln keeps it (`ab`), as `process_word` and earlier frontends do.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn VarLookup,
    ) -> Result<Vec<String>, ShellError> {
        Expander::new(self, env, false)
            .expand_word(word)
            .map(|expanded| expanded.fields)
    }
}

#[cfg(test)]
mod tests;
