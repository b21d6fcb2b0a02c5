//! The typed Dockerfile: what the parser produces and `plan` consumes.
//!
//! Words are kept as written (quotes, escapes and `$VARS` intact) because expansion depends on
//! the build args and ENV in scope at that point of a stage, which only `plan` knows. JSON
//! (exec-form) arguments are already JSON-decoded.

use std::sync::Arc;

use serde::Serialize;

use crate::diag::{Location, SourceFile};

/// A parsed Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    /// The text it was parsed from; error locations point into it.
    #[serde(skip)]
    pub source: Arc<SourceFile>,
    /// Parser directives from the top of the file.
    pub directives: Directives,
    /// Every instruction in file order, including `ARG`s before the first `FROM`.
    pub instructions: Vec<Instruction>,
    /// Things that parsed but deserve a word to the user (empty continuation lines, unknown
    /// `# syntax=` frontends, ...).
    pub warnings: Vec<Warning>,
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// The `# syntax=` frontend reference, if given.
    pub syntax: Option<String>,
    /// The escape (and line-continuation) character: `\` unless `# escape=` says otherwise.
    pub escape: char,
    /// The `# check=` lint settings, if given, as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A warning from the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// What is wrong, in a sentence.
    pub message: String,
    /// The 1-based line it is about.
    pub line: usize,
}

/// One instruction with its place in the file.
#[derive(Debug, Clone, Serialize)]
pub struct Instruction {
    /// First line (1-based) of the instruction, including continuation lines.
    pub start_line: usize,
    /// Last line (1-based), including heredoc bodies.
    pub end_line: usize,
    /// The instruction's text after line joining, keyword included, heredoc bodies excluded
    /// (`RUN echo hello  world`). History entries and error messages quote it.
    pub original: String,
    /// `--name=value` / `--name` flags, in order, unexpanded.
    pub flags: Vec<Flag>,
    /// Here-documents opened on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// What the instruction is, with its arguments.
    pub command: Command,
}

impl Instruction {
    /// The location of this instruction in `file`, for errors.
    pub fn location(&self, file: &Arc<SourceFile>) -> Location {
        Location::new(file.clone(), self.start_line, self.end_line)
    }

    /// The value of flag `--name`, if present. A flag given without a value yields `Some("")`
    /// only when written `--name=`; a bare `--name` yields `Some("true")`, as BuildKit's bool flags.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or("true"))
    }

    /// The command of a `RUN`, `CMD` or `ENTRYPOINT`; `None` for other instructions.
    pub fn command_line(&self) -> Option<&CommandLine> {
        match &self.command {
            Command::Run { command }
            | Command::Cmd { command }
            | Command::Entrypoint { command } => Some(command),
            _ => None,
        }
    }

    /// The here-document a `COPY`/`ADD` source word such as `<<EOF` or `<<-"EOF"` names, if the
    /// word is one and the instruction opened it.
    pub fn heredoc_for_source(&self, source: &str) -> Option<&Heredoc> {
        let word = super::heredoc::parse_heredoc_word(source).ok().flatten()?;
        self.heredocs.iter().find(|h| h.name == word.name)
    }

    /// Every value of a repeatable flag (`--mount`, `--exclude`), in order.
    pub fn flag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or("true"))
    }
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: String,
    /// The value after `=`, unexpanded; `None` for a bare `--name`.
    pub value: Option<String>,
}

/// A here-document (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word without quotes (`EOF`).
    pub name: String,
    /// The file descriptor it was redirected to (`3<<EOF`), 0 when none was written.
    pub file_descriptor: u32,
    /// Whether `$VARS` in the body are expanded (false when the delimiter was quoted).
    pub expand: bool,
    /// Whether leading tabs were stripped (`<<-EOF`).
    pub chomp: bool,
    /// The body, each line ending in `\n`, leading tabs already stripped when `chomp`.
    pub content: String,
}

/// Exec form (`["a","b"]`) or shell form (`a b`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum CommandLine {
    /// A JSON array of strings, run without a shell.
    Exec(Vec<String>),
    /// Text handed to the SHELL (`/bin/sh -c` by default).
    Shell(String),
}

/// A `KEY=value` pair from ENV or LABEL, both unexpanded, quotes kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key as written (it is still subject to expansion).
    pub key: String,
    /// The value as written (quotes and escapes kept).
    pub value: String,
}

/// One `name[=default]` of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The argument's name.
    pub name: String,
    /// The default as written (quotes kept), if any.
    pub default: Option<String>,
}

/// HEALTHCHECK's argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "command", rename_all = "lowercase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any healthcheck inherited from the base.
    None,
    /// `HEALTHCHECK [flags] CMD ...`.
    Cmd(CommandLine),
}

/// An instruction and its arguments. Flags are on [`Instruction::flags`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Command {
    /// `FROM image [AS name]`.
    From {
        /// The image reference or stage name, unexpanded.
        image: String,
        /// The stage name after `AS`, as written.
        name: Option<String>,
    },
    /// `ARG name[=default] ...`.
    Arg {
        /// The declarations.
        args: Vec<ArgDecl>,
    },
    /// `ENV key=value ...` (or the legacy `ENV key value`).
    Env {
        /// The pairs.
        pairs: Vec<KeyValue>,
    },
    /// `LABEL key=value ...`.
    Label {
        /// The pairs.
        pairs: Vec<KeyValue>,
    },
    /// `RUN ...`.
    Run {
        /// The command.
        command: CommandLine,
    },
    /// `CMD ...`.
    Cmd {
        /// The command.
        command: CommandLine,
    },
    /// `ENTRYPOINT ...`.
    Entrypoint {
        /// The command.
        command: CommandLine,
    },
    /// `SHELL ["exe", "-flag"]` (exec form only).
    Shell {
        /// The new shell.
        shell: Vec<String>,
    },
    /// `COPY [flags] src... dest`.
    Copy {
        /// Sources as written (a `<<NAME` source refers to a heredoc).
        sources: Vec<String>,
        /// The destination as written.
        dest: String,
    },
    /// `ADD [flags] src... dest`.
    Add {
        /// Sources as written.
        sources: Vec<String>,
        /// The destination as written.
        dest: String,
    },
    /// `WORKDIR path`.
    Workdir {
        /// The path as written.
        path: String,
    },
    /// `USER user[:group]`.
    User {
        /// The user as written.
        user: String,
    },
    /// `EXPOSE port[/proto] ...`.
    Expose {
        /// The ports as written.
        ports: Vec<String>,
    },
    /// `VOLUME path ...` or `VOLUME ["path", ...]`.
    Volume {
        /// The paths as written.
        paths: Vec<String>,
    },
    /// `STOPSIGNAL signal`.
    Stopsignal {
        /// The signal as written.
        signal: String,
    },
    /// `MAINTAINER name` (deprecated; becomes the config's author).
    Maintainer {
        /// The name as written.
        name: String,
    },
    /// `HEALTHCHECK [flags] CMD ...` or `HEALTHCHECK NONE`.
    Healthcheck {
        /// The check.
        check: Healthcheck,
    },
    /// `ONBUILD instruction`: recorded in the image, run when it is used as a base.
    Onbuild {
        /// The trigger as written after `ONBUILD` (what Docker stores in the config).
        expression: String,
        /// The trigger, parsed.
        trigger: Box<Instruction>,
    },
}

impl Command {
    /// The instruction keyword in upper case (`COPY`).
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::From { .. } => "FROM",
            Command::Arg { .. } => "ARG",
            Command::Env { .. } => "ENV",
            Command::Label { .. } => "LABEL",
            Command::Run { .. } => "RUN",
            Command::Cmd { .. } => "CMD",
            Command::Entrypoint { .. } => "ENTRYPOINT",
            Command::Shell { .. } => "SHELL",
            Command::Copy { .. } => "COPY",
            Command::Add { .. } => "ADD",
            Command::Workdir { .. } => "WORKDIR",
            Command::User { .. } => "USER",
            Command::Expose { .. } => "EXPOSE",
            Command::Volume { .. } => "VOLUME",
            Command::Stopsignal { .. } => "STOPSIGNAL",
            Command::Maintainer { .. } => "MAINTAINER",
            Command::Healthcheck { .. } => "HEALTHCHECK",
            Command::Onbuild { .. } => "ONBUILD",
        }
    }
}
