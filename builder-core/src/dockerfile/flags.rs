//! Checking an instruction's `--flag` words against the flags it accepts.

use super::ast::Flag;
use super::error::ParseErrorKind;
use super::suggest::suggest;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagKind {
    /// `--link`, `--link=true`, `--link=false`; once.
    Bool,
    /// `--from=stage`; once.
    String,
    /// `--mount=...`; any number of times.
    Strings,
}

/// The flags one instruction accepts.
pub(super) type FlagSpec = &'static [(&'static str, FlagKind)];

pub(super) const NO_FLAGS: FlagSpec = &[];
pub(super) const FROM_FLAGS: FlagSpec = &[("platform", FlagKind::String)];
pub(super) const RUN_FLAGS: FlagSpec = &[
    ("mount", FlagKind::Strings),
    ("network", FlagKind::String),
    ("security", FlagKind::String),
    ("device", FlagKind::Strings),
];
pub(super) const COPY_FLAGS: FlagSpec = &[
    ("chown", FlagKind::String),
    ("from", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
    ("parents", FlagKind::Bool),
];
pub(super) const ADD_FLAGS: FlagSpec = &[
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::String),
    ("unpack", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
];
pub(super) const HEALTHCHECK_FLAGS: FlagSpec = &[
    ("interval", FlagKind::String),
    ("timeout", FlagKind::String),
    ("start-period", FlagKind::String),
    ("start-interval", FlagKind::String),
    ("retries", FlagKind::String),
];

/// Checks `words` (`--name[=value]`, as the parser extracted them) against `spec` and returns
/// them as [`Flag`]s in order. Boolean values are normalised to lower case.
pub(super) fn parse_flags(words: &[String], spec: FlagSpec) -> Result<Vec<Flag>, ParseErrorKind> {
    let mut flags: Vec<Flag> = Vec::with_capacity(words.len());
    for word in words {
        let Some(body) = word.strip_prefix("--") else {
            return Err(ParseErrorKind::Invalid(format!(
                "arg should start with -- : {word}"
            )));
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(&(_, kind)) = spec.iter().find(|(known, _)| *known == name) else {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            return Err(ParseErrorKind::UnknownFlag {
                name: name.to_string(),
                suggestion: suggest(name, &names, true),
            });
        };
        if kind != FlagKind::Strings && flags.iter().any(|f| f.name == name) {
            return Err(ParseErrorKind::DuplicateFlag {
                name: name.to_string(),
            });
        }
        let missing = || ParseErrorKind::MissingFlagValue {
            name: name.to_string(),
        };
        let value = match kind {
            FlagKind::Bool => match value {
                None => None,
                Some("") => return Err(missing()),
                Some(v) if v.eq_ignore_ascii_case("true") => Some("true".to_string()),
                Some(v) if v.eq_ignore_ascii_case("false") => Some("false".to_string()),
                Some(v) => {
                    return Err(ParseErrorKind::NotABoolean {
                        name: name.to_string(),
                        value: v.to_string(),
                    });
                }
            },
            FlagKind::String | FlagKind::Strings => Some(value.ok_or_else(missing)?.to_string()),
        };
        flags.push(Flag {
            name: name.to_string(),
            value,
        });
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_known_flags_and_repeats_of_list_flags() {
        let flags = parse_flags(
            &words(&[
                "--mount=type=cache,target=/x",
                "--mount=type=tmpfs,target=/t",
                "--network=none",
            ]),
            RUN_FLAGS,
        )
        .unwrap();
        assert_eq!(flags.len(), 3);
        assert_eq!(flags[0].value.as_deref(), Some("type=cache,target=/x"));
    }

    #[test]
    fn rejects_bad_flags_with_buildkit_messages() {
        let err = |list: &[&str], spec| parse_flags(&words(list), spec).unwrap_err().to_string();
        assert_eq!(err(&["--boo"], NO_FLAGS), "unknown flag: --boo");
        assert_eq!(
            err(&["--chwon=1"], COPY_FLAGS),
            "unknown flag: --chwon (did you mean chown?)"
        );
        assert_eq!(
            err(&["--from=a", "--from=b"], COPY_FLAGS),
            "duplicate flag specified: --from"
        );
        assert_eq!(
            err(&["--from"], COPY_FLAGS),
            "missing a value on flag: --from"
        );
        assert_eq!(
            err(&["--link="], COPY_FLAGS),
            "missing a value on flag: --link"
        );
        assert_eq!(
            err(&["--link=yes"], COPY_FLAGS),
            "expecting boolean value for flag --link, not: yes"
        );
    }

    #[test]
    fn normalises_booleans() {
        let flags = parse_flags(&words(&["--link=TRUE", "--parents"]), COPY_FLAGS).unwrap();
        assert_eq!(flags[0].value.as_deref(), Some("true"));
        assert_eq!(flags[1].value, None);
    }
}
