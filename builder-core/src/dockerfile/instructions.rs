//! [`RawInstruction`] → typed [`Instruction`]: argument counts, allowed flags and the other
//! per-instruction rules of BuildKit's `instructions` package, with its error messages.

use super::ast::{
    ArgDecl, Command, CommandLine, Flag, Healthcheck, Heredoc, Instruction, KeyValue,
};
use super::duration::parse_go_duration;
use super::error::ParseErrorKind;
use super::flags::{self, FlagSpec, parse_flags};
use super::heredoc::{chomp, parse_heredoc_word};
use super::raw::RawInstruction;
use super::suggest::suggest;

type Result<T> = std::result::Result<T, ParseErrorKind>;

/// Every instruction keyword, for suggestions.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Builds the typed instruction for `raw`, or says what is wrong with it.
pub(super) fn to_instruction(raw: &RawInstruction) -> Result<Instruction> {
    let (flags, command) = typed_command(raw)?;
    let heredocs = raw
        .heredocs
        .iter()
        .map(|h| Heredoc {
            content: if h.chomp {
                chomp(&h.content)
            } else {
                h.content.clone()
            },
            ..h.clone()
        })
        .collect();
    Ok(Instruction {
        start_line: raw.start_line,
        end_line: raw.end_line,
        original: raw.original.clone(),
        flags,
        heredocs,
        command,
    })
}

/// The flags and command of `raw`, checked in the order BuildKit checks them so the first
/// error reported is the same.
fn typed_command(raw: &RawInstruction) -> Result<(Vec<Flag>, Command)> {
    let args = &raw.args;
    let keyword = raw.keyword.to_lowercase();
    let flags_for = |spec: FlagSpec| parse_flags(&raw.flags, spec);
    Ok(match keyword.as_str() {
        "env" => {
            let flags = flags_for(flags::NO_FLAGS)?;
            let pairs = key_values(args, "ENV")?;
            (flags, Command::Env { pairs })
        }
        "label" => {
            let flags = flags_for(flags::NO_FLAGS)?;
            let pairs = key_values(args, "LABEL")?;
            (flags, Command::Label { pairs })
        }
        "maintainer" => {
            let name = exactly_one(args, "MAINTAINER")?;
            (flags_for(flags::NO_FLAGS)?, Command::Maintainer { name })
        }
        "workdir" => {
            let path = exactly_one(args, "WORKDIR")?;
            (flags_for(flags::NO_FLAGS)?, Command::Workdir { path })
        }
        "user" => {
            let user = exactly_one(args, "USER")?;
            (flags_for(flags::NO_FLAGS)?, Command::User { user })
        }
        "stopsignal" => {
            let signal = exactly_one(args, "STOPSIGNAL")?;
            (flags_for(flags::NO_FLAGS)?, Command::Stopsignal { signal })
        }
        "add" | "copy" => {
            let name = if keyword == "add" { "ADD" } else { "COPY" };
            let Some((dest, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
                return Err(ParseErrorKind::Invalid(format!(
                    "{name} requires at least two arguments, but only one was provided. \
                     Destination could not be determined"
                )));
            };
            let spec = if name == "ADD" {
                flags::ADD_FLAGS
            } else {
                flags::COPY_FLAGS
            };
            let flags = flags_for(spec)?;
            if parse_heredoc_word(dest).ok().flatten().is_some() {
                return Err(ParseErrorKind::Invalid(format!(
                    "{name} cannot accept a heredoc as a destination"
                )));
            }
            let sources = sources.to_vec();
            let dest = dest.clone();
            let command = if name == "ADD" {
                Command::Add { sources, dest }
            } else {
                Command::Copy { sources, dest }
            };
            (flags, command)
        }
        "from" => {
            let name = stage_name(args)?;
            let flags = flags_for(flags::FROM_FLAGS)?;
            let image = args.first().cloned().unwrap_or_default();
            (flags, Command::From { image, name })
        }
        "onbuild" => onbuild(raw)?,
        "run" => {
            let flags = flags_for(flags::RUN_FLAGS)?;
            check_run_flags(&flags)?;
            let command = command_line(raw);
            (flags, Command::Run { command })
        }
        "cmd" => {
            let flags = flags_for(flags::NO_FLAGS)?;
            (
                flags,
                Command::Cmd {
                    command: command_line(raw),
                },
            )
        }
        "entrypoint" => {
            let flags = flags_for(flags::NO_FLAGS)?;
            let command = command_line(raw);
            (flags, Command::Entrypoint { command })
        }
        "healthcheck" => healthcheck(raw)?,
        "expose" => {
            at_least_one(args, "EXPOSE")?;
            let flags = flags_for(flags::NO_FLAGS)?;
            (
                flags,
                Command::Expose {
                    ports: args.clone(),
                },
            )
        }
        "volume" => {
            at_least_one(args, "VOLUME")?;
            let flags = flags_for(flags::NO_FLAGS)?;
            let paths = args
                .iter()
                .map(|v| match v.trim() {
                    "" => Err(ParseErrorKind::Invalid(
                        "VOLUME specified can not be an empty string".to_string(),
                    )),
                    v => Ok(v.to_string()),
                })
                .collect::<Result<Vec<_>>>()?;
            (flags, Command::Volume { paths })
        }
        "arg" => {
            at_least_one(args, "ARG")?;
            let decls = args
                .iter()
                .map(|arg| match arg.split_once('=') {
                    Some(("", _)) => Err(blank_names("ARG")),
                    Some((name, default)) => Ok(ArgDecl {
                        name: name.to_string(),
                        default: Some(default.to_string()),
                    }),
                    None => Ok(ArgDecl {
                        name: arg.clone(),
                        default: None,
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            (flags_for(flags::NO_FLAGS)?, Command::Arg { args: decls })
        }
        "shell" => {
            let flags = flags_for(flags::NO_FLAGS)?;
            if args.is_empty() {
                return Err(at_least_one_error("SHELL"));
            }
            if !raw.json {
                return Err(ParseErrorKind::Invalid(
                    "SHELL requires the arguments to be in JSON form".to_string(),
                ));
            }
            (
                flags,
                Command::Shell {
                    shell: args.clone(),
                },
            )
        }
        _ => {
            return Err(ParseErrorKind::UnknownInstruction {
                name: raw.keyword.clone(),
                suggestion: suggest(&raw.keyword, KEYWORDS, false),
            });
        }
    })
}

fn at_least_one_error(name: &str) -> ParseErrorKind {
    ParseErrorKind::Invalid(format!("{name} requires at least one argument"))
}

fn at_least_one(args: &[String], name: &str) -> Result<()> {
    if args.is_empty() {
        return Err(at_least_one_error(name));
    }
    Ok(())
}

fn exactly_one(args: &[String], name: &str) -> Result<String> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(ParseErrorKind::Invalid(format!(
            "{name} requires exactly one argument"
        ))),
    }
}

fn blank_names(name: &str) -> ParseErrorKind {
    ParseErrorKind::Invalid(format!("{name} names can not be blank"))
}

/// ENV and LABEL: the parser's `key, value, separator` triples as pairs.
fn key_values(args: &[String], name: &str) -> Result<Vec<KeyValue>> {
    at_least_one(args, name)?;
    if !args.len().is_multiple_of(3) {
        return Err(ParseErrorKind::Invalid(format!(
            "Bad input to {name}, too many arguments"
        )));
    }
    args.chunks(3)
        .map(|triple| match triple {
            [key, _, _] if key.is_empty() => Err(blank_names(name)),
            [key, value, _] => Ok(KeyValue {
                key: key.clone(),
                value: value.clone(),
            }),
            _ => Err(blank_names(name)),
        })
        .collect()
}

/// FROM's `AS name`, checked to be a valid stage name (kept as written).
fn stage_name(args: &[String]) -> Result<Option<String>> {
    match args {
        [_] => Ok(None),
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(ParseErrorKind::Invalid(format!(
                    "invalid name for build stage: {}, name can't start with a number or \
                     contain symbols",
                    super::go_quote::go_quote(name)
                )));
            }
            Ok(Some(name.clone()))
        }
        _ => Err(ParseErrorKind::Invalid(
            "FROM requires either one or three arguments".to_string(),
        )),
    }
}

/// RUN, CMD, ENTRYPOINT: exec form from a JSON array, otherwise the text for the shell.
fn command_line(raw: &RawInstruction) -> CommandLine {
    if raw.json {
        CommandLine::Exec(raw.args.clone())
    } else {
        CommandLine::Shell(raw.args.join(" "))
    }
}

/// `--network` and `--security` take one of a few fixed values.
fn check_run_flags(flags: &[Flag]) -> Result<()> {
    for flag in flags {
        let value = flag.value.as_deref().unwrap_or_default();
        match flag.name.as_str() {
            "network" if !matches!(value, "default" | "none" | "host") => {
                return Err(ParseErrorKind::Invalid(format!(
                    "invalid network mode {}",
                    super::go_quote::go_quote(value)
                )));
            }
            "security" if !matches!(value, "sandbox" | "insecure") => {
                return Err(ParseErrorKind::Invalid(format!(
                    "security {} is not valid",
                    super::go_quote::go_quote(value)
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn onbuild(raw: &RawInstruction) -> Result<(Vec<Flag>, Command)> {
    let Some(trigger) = &raw.trigger else {
        return Err(at_least_one_error("ONBUILD"));
    };
    let flags = parse_flags(&raw.flags, flags::NO_FLAGS)?;
    let trigger_keyword = trigger.keyword.trim().to_uppercase();
    match trigger_keyword.as_str() {
        "ONBUILD" => {
            return Err(ParseErrorKind::Invalid(
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string(),
            ));
        }
        "MAINTAINER" | "FROM" => {
            return Err(ParseErrorKind::Invalid(format!(
                "{trigger_keyword} isn't allowed as an ONBUILD trigger"
            )));
        }
        _ => {}
    }
    let mut expression = strip_onbuild_keyword(&raw.original).to_string();
    for heredoc in &raw.heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    let mut trigger_raw = (**trigger).clone();
    trigger_raw.heredocs = raw.heredocs.clone();
    let trigger = Box::new(to_instruction(&trigger_raw)?);
    Ok((
        flags,
        Command::Onbuild {
            expression,
            trigger,
        },
    ))
}

/// `original` without the leading `ONBUILD` keyword and the whitespace around it.
fn strip_onbuild_keyword(original: &str) -> &str {
    let text = original.trim_start();
    match text.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => text[7..].trim_start(),
        _ => original,
    }
}

fn healthcheck(raw: &RawInstruction) -> Result<(Vec<Flag>, Command)> {
    let Some((kind, rest)) = raw.args.split_first() else {
        return Err(at_least_one_error("HEALTHCHECK"));
    };
    let kind = kind.to_uppercase();
    let flags = parse_flags(&raw.flags, flags::HEALTHCHECK_FLAGS)?;
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(ParseErrorKind::Invalid(
                "HEALTHCHECK NONE takes no arguments".to_string(),
            ));
        }
        let check = Healthcheck::None;
        return Ok((flags, Command::Healthcheck { check }));
    }
    if kind != "CMD" {
        return Err(ParseErrorKind::Invalid(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            super::go_quote::go_quote(&kind)
        )));
    }
    if rest.is_empty() {
        return Err(ParseErrorKind::Invalid(
            "Missing command after HEALTHCHECK CMD".to_string(),
        ));
    }
    for flag in &flags {
        let value = flag.value.as_deref().unwrap_or_default();
        if flag.name == "retries" {
            check_retries(value)?;
        } else {
            check_interval(&flag.name, value)?;
        }
    }
    let command = if raw.json {
        CommandLine::Exec(rest.to_vec())
    } else {
        CommandLine::Shell(rest.join(" "))
    };
    let check = Healthcheck::Cmd(command);
    Ok((flags, Command::Healthcheck { check }))
}

/// A healthcheck interval is a Go duration of at least 1ms, or zero for "inherit".
fn check_interval(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    let nanos = parse_go_duration(value).map_err(ParseErrorKind::Invalid)?;
    if nanos != 0 && nanos < 1_000_000 {
        return Err(ParseErrorKind::Invalid(format!(
            "Interval {} cannot be less than 1ms",
            super::go_quote::go_quote(name)
        )));
    }
    Ok(())
}

fn check_retries(value: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    let retries: i64 = match value.parse::<i64>() {
        Ok(n) if i32::try_from(n).is_ok() => n,
        Ok(_) => {
            return Err(ParseErrorKind::Invalid(format!(
                "strconv.ParseInt: parsing {}: value out of range",
                super::go_quote::go_quote(value)
            )));
        }
        Err(_) => {
            return Err(ParseErrorKind::Invalid(format!(
                "strconv.ParseInt: parsing {}: invalid syntax",
                super::go_quote::go_quote(value)
            )));
        }
    };
    if retries < 0 {
        return Err(ParseErrorKind::Invalid(format!(
            "--retries cannot be negative ({retries})"
        )));
    }
    Ok(())
}
