//! Expansion errors, worded exactly as BuildKit words them.

use crate::dockerfile::go_quote::go_quote;

/// Why a word could not be expanded.
///
/// Every message is BuildKit's, byte for byte, because users and tools match on them:
/// `failed to process "<word>": <reason>`, with the word quoted as Go's `%q` quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// A `${` part has no closing `}` (this includes quotes left open inside it).
    #[error("failed to process {}: syntax error: missing '}}'", go_quote(.word))]
    MissingClosingBrace {
        /// The word as written.
        word: String,
    },
    /// `${}`, `${{…}` or `${:…}`: no variable name where one must be.
    #[error("failed to process {}: syntax error: bad substitution", go_quote(.word))]
    BadSubstitution {
        /// The word as written.
        word: String,
    },
    /// `${V/p` or `${V//p` has no `/` ending the pattern.
    #[error("failed to process {}: syntax error: missing '/' in ${{}}", go_quote(.word))]
    MissingPatternSeparator {
        /// The word as written.
        word: String,
    },
    /// The character(s) after the name in `${…}` are not a supported modifier: `${V=w}`,
    /// `${V:=w}`, `${V:#p}`, `${V.}`, or a `${V` that ends the word.
    #[error("failed to process {}: unsupported modifier ({modifier}) in substitution", go_quote(.word))]
    UnsupportedModifier {
        /// The word as written.
        word: String,
        /// The modifier as BuildKit prints it; the end of the word shows as `\u{FFFD}`.
        modifier: String,
    },
    /// A `'` has no closing `'`.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching single-quote",
        go_quote(.word)
    )]
    UnterminatedSingleQuote {
        /// The word as written.
        word: String,
    },
    /// A `"` has no closing `"`.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching double-quote",
        go_quote(.word)
    )]
    UnterminatedDoubleQuote {
        /// The word as written.
        word: String,
    },
    /// `${V?msg}` with `V` unset, or `${V:?msg}` with `V` unset or empty.
    #[error("failed to process {}: {name}: {message}", go_quote(.word))]
    RequiredVariable {
        /// The word as written.
        word: String,
        /// The variable that must be set.
        name: String,
        /// The expanded `msg`, or BuildKit's default (`is not allowed to be unset` /
        /// `is not allowed to be empty`) when it is empty.
        message: String,
    },
    /// The pattern of `${V#p}`, `${V%p}` or `${V/p/r}` is not valid, e.g. `\x` (only `*`, `?`
    /// and `\` may be escaped).
    #[error("failed to process {}: invalid pattern ({pattern}) in substitution: {reason}", go_quote(.word))]
    InvalidPattern {
        /// The word as written.
        word: String,
        /// The pattern after expansion; for `%`/`%%` it is shown reversed, as BuildKit does.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A failure inside the word, before it is tied to the word it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    MissingClosingBrace,
    BadSubstitution,
    MissingPatternSeparator,
    UnsupportedModifier(String),
    UnterminatedSingleQuote,
    UnterminatedDoubleQuote,
    RequiredVariable { name: String, message: String },
    InvalidPattern { pattern: String, reason: String },
}

impl Failure {
    pub(super) fn in_word(self, word: &str) -> ShellError {
        let word = word.to_owned();
        match self {
            Failure::MissingClosingBrace => ShellError::MissingClosingBrace { word },
            Failure::BadSubstitution => ShellError::BadSubstitution { word },
            Failure::MissingPatternSeparator => ShellError::MissingPatternSeparator { word },
            Failure::UnsupportedModifier(modifier) => {
                ShellError::UnsupportedModifier { word, modifier }
            }
            Failure::UnterminatedSingleQuote => ShellError::UnterminatedSingleQuote { word },
            Failure::UnterminatedDoubleQuote => ShellError::UnterminatedDoubleQuote { word },
            Failure::RequiredVariable { name, message } => ShellError::RequiredVariable {
                word,
                name,
                message,
            },
            Failure::InvalidPattern { pattern, reason } => ShellError::InvalidPattern {
                word,
                pattern,
                reason,
            },
        }
    }
}

/// How Go prints a character that may be the end of input: the end shows as U+FFFD, which is
/// what BuildKit's messages contain in that case.
pub(super) fn rune_text(ch: Option<char>) -> String {
    ch.unwrap_or(char::REPLACEMENT_CHARACTER).to_string()
}
