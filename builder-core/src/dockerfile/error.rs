//! The error every Dockerfile parsing failure becomes.
//!
//! Messages are BuildKit's, word for word (`unknown instruction: FOO`, `COPY requires at least
//! two arguments, ...`), because users search for them and because the conformance corpus
//! checks them. The location says which lines of the Dockerfile to quote.

use std::fmt;

use crate::diag::Location;

/// A Dockerfile that could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("{kind}")]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    location: Option<Location>,
}

impl ParseError {
    pub(super) fn new(kind: ParseErrorKind, location: Option<Location>) -> Self {
        ParseError { kind, location }
    }

    /// The lines of the Dockerfile the error is about; `None` when it is about the whole file
    /// (e.g. a file with no instructions).
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
}

/// The kinds of parse failure. The `Display` text is BuildKit's message for the same failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The file has no instructions at all (empty, or only comments and directives).
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line is longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of {max}")]
    LineTooLong {
        /// The longest line accepted, in bytes.
        max: usize,
    },
    /// A parser directive (`# escape=`) was given twice.
    #[error("only one {name} parser directive can be used")]
    RepeatedDirective {
        /// The directive's name, lower case.
        name: String,
    },
    /// `# escape=` named something other than `` ` `` or `\`.
    #[error("invalid escape token '{token}' does not match ` or \\")]
    InvalidEscapeToken {
        /// The value given.
        token: String,
    },
    /// A here-document's delimiter never appeared.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    /// A here-document's delimiter word could not be lexed (e.g. an unbalanced quote).
    #[error("failed to process {}: {message}", GoQuoted(word))]
    InvalidHeredoc {
        /// The delimiter word after `<<`.
        word: String,
        /// What the lexer found wrong.
        message: String,
    },
    /// A JSON array with something other than strings in it.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// The keyword is not a Dockerfile instruction.
    #[error("unknown instruction: {name}{}", Suggestion(suggestion))]
    UnknownInstruction {
        /// The keyword as written.
        name: String,
        /// A known instruction it is probably a typo of.
        suggestion: Option<String>,
    },
    /// A `--flag` the instruction does not take.
    #[error("unknown flag: --{name}{}", Suggestion(suggestion))]
    UnknownFlag {
        /// The flag's name without `--`.
        name: String,
        /// A flag of this instruction it is probably a typo of.
        suggestion: Option<String>,
    },
    /// A flag that may be given once was given again.
    #[error("duplicate flag specified: --{name}")]
    DuplicateFlag {
        /// The flag's name without `--`.
        name: String,
    },
    /// A flag that needs `=value` had none (or a boolean flag had an empty one).
    #[error("missing a value on flag: --{name}")]
    MissingFlagValue {
        /// The flag's name without `--`.
        name: String,
    },
    /// A boolean flag with a value other than `true` or `false`.
    #[error("expecting boolean value for flag --{name}, not: {value}")]
    NotABoolean {
        /// The flag's name without `--`.
        name: String,
        /// The value given.
        value: String,
    },
    /// Any other problem with an instruction's arguments or flag values; the message says which.
    #[error("{0}")]
    Invalid(String),
}

/// Formats ` (did you mean X?)` when there is a suggestion, as BuildKit does.
struct Suggestion<'a>(&'a Option<String>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean {s}?)"),
            None => Ok(()),
        }
    }
}

/// Formats a string the way Go's `%q` does.
struct GoQuoted<'a>(&'a str);

impl fmt::Display for GoQuoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::go_quote::go_quote(self.0))
    }
}
