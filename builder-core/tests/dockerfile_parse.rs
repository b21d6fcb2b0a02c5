//! Behaviour of `dockerfile::parse` beyond BuildKit's corpus: directives, BOM, CRLF, flags,
//! the typed output of each instruction, warnings, error messages and their locations.

use std::sync::Arc;

use builder_core::diag::SourceFile;
use builder_core::dockerfile::{
    self, ArgDecl, Command, CommandLine, Dockerfile, Flag, Healthcheck, Instruction, KeyValue,
    ParseError, ParseErrorKind,
};

fn source(text: &str) -> Arc<SourceFile> {
    SourceFile::new("Dockerfile", text)
}

fn parse(text: &str) -> Dockerfile {
    dockerfile::parse(source(text)).unwrap()
}

fn parse_err(text: &str) -> ParseError {
    dockerfile::parse(source(text)).unwrap_err()
}

/// The error's message and its 1-based line range.
fn err_at(text: &str) -> (String, usize, usize) {
    let err = parse_err(text);
    let location = err.location().expect("error without location").clone();
    (err.to_string(), location.start_line, location.end_line)
}

/// The command of the only instruction after `FROM scratch`.
fn second(text: &str) -> Instruction {
    let df = parse(&format!("FROM scratch\n{text}"));
    assert_eq!(df.instructions.len(), 2, "{text}");
    df.instructions.into_iter().nth(1).unwrap()
}

fn flag(name: &str, value: Option<&str>) -> Flag {
    Flag {
        name: name.to_string(),
        value: value.map(String::from),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---- directives ----

#[test]
fn official_syntax_frontends_are_accepted_without_warning() {
    for syntax in ["docker/dockerfile:1", "docker.io/docker/dockerfile:1.7"] {
        let df = parse(&format!("# syntax={syntax}\nFROM scratch\n"));
        assert_eq!(df.directives.syntax.as_deref(), Some(syntax));
        assert!(df.warnings.is_empty(), "{syntax}: {:?}", df.warnings);
    }
}

#[test]
fn other_syntax_frontends_warn() {
    let df = parse("# syntax=example.com/custom/frontend:2\nFROM scratch\n");
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 1);
    assert!(
        df.warnings[0]
            .message
            .contains("example.com/custom/frontend:2")
    );
}

#[test]
fn escape_and_check_directives() {
    let df = parse("# escape=`\n# check=skip=all\nFROM scratch\nRUN echo a `\n  b\n");
    assert_eq!(df.directives.escape, '`');
    assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(
        df.instructions[1].command_line(),
        Some(&CommandLine::Shell("echo a   b".into()))
    );
}

#[test]
fn directives_after_a_comment_or_instruction_are_comments() {
    let df = parse("# hello\n# escape=`\nFROM scratch\n");
    assert_eq!(df.directives.escape, '\\');
    let df = parse("FROM scratch\n# syntax=foo/bar\n");
    assert_eq!(df.directives.syntax, None);
    assert!(df.warnings.is_empty());
}

#[test]
fn repeated_directive_is_an_error_at_its_line() {
    let (message, start, end) = err_at("# escape=`\n# escape=\\\nFROM scratch\n");
    assert_eq!(message, "only one escape parser directive can be used");
    assert_eq!((start, end), (2, 2));
}

#[test]
fn invalid_escape_token() {
    let (message, start, _) = err_at("# escape=x\nFROM scratch\n");
    assert_eq!(message, "invalid escape token 'x' does not match ` or \\");
    assert_eq!(start, 1);
}

// ---- file encoding and line handling ----

#[test]
fn bom_is_ignored_and_directives_still_apply() {
    let df = parse("\u{feff}# escape=`\nFROM scratch\n");
    assert_eq!(df.directives.escape, '`');
    let df = parse("\u{feff}FROM scratch\n");
    assert_eq!(df.instructions[0].command.keyword(), "FROM");
}

#[test]
fn crlf_line_endings() {
    let df = parse("FROM alpine\r\nRUN echo a \\\r\n  b\r\nRUN <<EOF\r\necho hi\r\nEOF\r\n");
    let Command::From { image, .. } = &df.instructions[0].command else {
        panic!("not FROM");
    };
    assert_eq!(image, "alpine");
    assert_eq!(
        df.instructions[1].command_line(),
        Some(&CommandLine::Shell("echo a   b".into()))
    );
    assert_eq!(
        (df.instructions[1].start_line, df.instructions[1].end_line),
        (2, 3)
    );
    let heredoc = &df.instructions[2].heredocs[0];
    assert_eq!(heredoc.name, "EOF");
    // Bodies are kept byte for byte, as BuildKit does.
    assert_eq!(heredoc.content, "echo hi\r\n");
    assert_eq!(df.instructions[2].end_line, 6);
}

#[test]
fn continuation_skips_comments_and_warns_on_empty_lines() {
    let df = parse("FROM scratch\nRUN a \\\n# comment\n  b \\\n\n  c\n");
    assert_eq!(
        df.instructions[1].command_line(),
        Some(&CommandLine::Shell("a   b   c".into()))
    );
    assert_eq!(
        (df.instructions[1].start_line, df.instructions[1].end_line),
        (2, 6)
    );
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 5);
    assert!(df.warnings[0].message.contains("empty continuation line"));
}

#[test]
fn line_too_long() {
    let long = format!("FROM scratch\nRUN {}\n", "x".repeat(70_000));
    let (message, start, _) = err_at(&long);
    assert_eq!(
        message,
        "dockerfile line greater than max allowed size of 65535"
    );
    assert_eq!(start, 2);
}

#[test]
fn keywords_are_case_insensitive() {
    let df = parse("from scratch AS base\nRun echo\ncOpY a b\n");
    let keywords: Vec<_> = df
        .instructions
        .iter()
        .map(|i| i.command.keyword())
        .collect();
    assert_eq!(keywords, vec!["FROM", "RUN", "COPY"]);
}

// ---- heredocs ----

#[test]
fn heredocs_in_run_and_copy() {
    let df = parse(concat!(
        "FROM scratch\n",
        "RUN 3<<A cat /dev/fd/3 && <<-'B' sh\n",
        "a $X\n",
        "A\n",
        "\techo $Y\n",
        "\tB\n",
        "COPY --chmod=755 <<\"run.sh\" <<other /bin/\n",
        "#!/bin/sh\n",
        "run.sh\n",
        "x\n",
        "other\n",
    ));
    let run = &df.instructions[1];
    assert_eq!((run.start_line, run.end_line), (2, 6));
    let docs: Vec<_> = run
        .heredocs
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.file_descriptor,
                h.expand,
                h.chomp,
                h.content.as_str(),
            )
        })
        .collect();
    assert_eq!(
        docs,
        vec![
            ("A", 3, true, false, "a $X\n"),
            // `<<-` strips the leading tabs of the body in the typed output.
            ("B", 0, false, true, "echo $Y\n"),
        ]
    );
    assert_eq!(
        run.command_line(),
        Some(&CommandLine::Shell(
            "3<<A cat /dev/fd/3 && <<-'B' sh".into()
        ))
    );
    let copy = &df.instructions[2];
    let Command::Copy { sources, dest } = &copy.command else {
        panic!("not COPY");
    };
    assert_eq!(sources, &strings(&["<<\"run.sh\"", "<<other"]));
    assert_eq!(dest, "/bin/");
    let script = copy.heredoc_for_source(&sources[0]).unwrap();
    assert_eq!((script.name.as_str(), script.expand), ("run.sh", false));
    assert_eq!(script.content, "#!/bin/sh\n");
    assert_eq!(copy.heredoc_for_source("plain"), None);
}

#[test]
fn heredoc_operator_followed_by_blanks_still_opens_one() {
    // BuildKit's lexer joins `<<` with the blanks after it to the next word.
    let run = second("RUN cat << EOF\nhi\nEOF\n");
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "hi\n");
}

#[test]
fn heredocs_only_for_run_copy_add_in_shell_form() {
    let df = parse("FROM scratch\nRUN [\"<<EOF\"]\nCMD <<EOF\n");
    assert!(df.instructions.iter().all(|i| i.heredocs.is_empty()));
}

#[test]
fn unterminated_heredoc_points_at_the_instruction() {
    let (message, start, end) = err_at("FROM scratch\nRUN <<EOF\necho\n");
    assert_eq!(message, "unterminated heredoc");
    assert_eq!((start, end), (2, 3));
}

#[test]
fn heredoc_as_copy_destination() {
    let (message, start, end) = err_at("FROM scratch\nCOPY a <<EOF\nx\nEOF\n");
    assert_eq!(message, "COPY cannot accept a heredoc as a destination");
    assert_eq!((start, end), (2, 4));
}

// ---- flags ----

#[test]
fn run_flags() {
    let run = second(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm \
         --network=none --security=insecure --device=name=gpu echo hi\n",
    );
    assert_eq!(
        run.flag_values("mount").collect::<Vec<_>>(),
        vec!["type=cache,target=/root/.cache", "type=secret,id=npm"]
    );
    assert_eq!(run.flag("network"), Some("none"));
    assert_eq!(run.flag("security"), Some("insecure"));
    assert_eq!(run.flag("device"), Some("name=gpu"));
    assert_eq!(
        run.command_line(),
        Some(&CommandLine::Shell("echo hi".into()))
    );
}

#[test]
fn copy_and_add_flags() {
    let copy = second(
        "COPY --from=build --chown=1:1 --chmod=644 --link --parents \
         --exclude=*.md --exclude=tmp \"a b\" /dst/\n",
    );
    assert_eq!(
        copy.flags,
        vec![
            flag("from", Some("build")),
            flag("chown", Some("1:1")),
            flag("chmod", Some("644")),
            flag("link", None),
            flag("parents", None),
            flag("exclude", Some("*.md")),
            flag("exclude", Some("tmp")),
        ]
    );
    assert_eq!(copy.flag("link"), Some("true"));
    let Command::Copy { sources, dest } = &copy.command else {
        panic!("not COPY");
    };
    // Without JSON, sources are whitespace-separated and quotes are not special.
    assert_eq!(sources, &strings(&["\"a", "b\""]));
    assert_eq!(dest, "/dst/");

    let add = second(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false \
         https://example.com/a.tar /x\n",
    );
    assert_eq!(add.flag("checksum"), Some("sha256:abc"));
    assert_eq!(add.flag("keep-git-dir"), Some("true"));
    assert_eq!(add.flag("unpack"), Some("false"));
    assert_eq!(add.flag("link"), Some("false"));
}

#[test]
fn flag_quotes_are_removed_and_double_dash_ends_flags() {
    let copy = second("COPY --chown=\"a b\" -- --weird /dst\n");
    assert_eq!(copy.flags, vec![flag("chown", Some("a b"))]);
    let Command::Copy { sources, .. } = &copy.command else {
        panic!("not COPY");
    };
    assert_eq!(sources, &strings(&["--weird"]));
}

#[test]
fn flag_errors() {
    let cases = [
        ("COPY --boo=1 a b", "unknown flag: --boo"),
        (
            "COPY --form=a a b",
            "unknown flag: --form (did you mean from?)",
        ),
        ("RUN --platform=linux echo", "unknown flag: --platform"),
        ("WORKDIR --x /a", "unknown flag: --x"),
        (
            "COPY --from=a --from=b a b",
            "duplicate flag specified: --from",
        ),
        ("COPY --from a b", "missing a value on flag: --from"),
        (
            "COPY --link=maybe a b",
            "expecting boolean value for flag --link, not: maybe",
        ),
        (
            "RUN --network=bridge echo",
            "invalid network mode \"bridge\"",
        ),
        ("RUN --security=open echo", "security \"open\" is not valid"),
    ];
    for (line, expected) in cases {
        let (message, start, end) = err_at(&format!("FROM scratch\n{line}\n"));
        assert_eq!(message, expected, "{line}");
        assert_eq!((start, end), (2, 2), "{line}");
    }
    let err = parse_err("FROM scratch\nCOPY --boo a b\n");
    assert!(matches!(err.kind, ParseErrorKind::UnknownFlag { ref name, .. } if name == "boo"));
}

#[test]
fn from_platform_flag() {
    let df = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n");
    let from = &df.instructions[0];
    assert_eq!(from.flag("platform"), Some("$BUILDPLATFORM"));
    let Command::From { image, name } = &from.command else {
        panic!("not FROM");
    };
    assert_eq!(image, "golang:1.22");
    assert_eq!(name.as_deref(), Some("build"));
}

// ---- typed instructions ----

#[test]
fn from_forms_and_errors() {
    let df = parse("FROM alpine\nFROM alpine as Second\n");
    assert!(matches!(
        &df.instructions[0].command,
        Command::From { name: None, .. }
    ));
    assert!(matches!(
        &df.instructions[1].command,
        Command::From { name: Some(n), .. } if n == "Second"
    ));
    assert_eq!(
        err_at("FROM a b\n").0,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err_at("FROM a AS 1st\n").0,
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
}

#[test]
fn arg_declarations() {
    let df = parse("ARG A B=2 C=\"x y\" D=\nFROM scratch\nARG E\n");
    let Command::Arg { args } = &df.instructions[0].command else {
        panic!("not ARG");
    };
    let decl = |name: &str, default: Option<&str>| ArgDecl {
        name: name.into(),
        default: default.map(String::from),
    };
    assert_eq!(
        args,
        &vec![
            decl("A", None),
            decl("B", Some("2")),
            decl("C", Some("\"x y\"")),
            decl("D", Some("")),
        ]
    );
    assert_eq!(
        err_at("ARG =x\nFROM scratch\n").0,
        "ARG names can not be blank"
    );
}

#[test]
fn env_and_label_pairs_keep_quotes() {
    let env = second("ENV A=1 B=\"two words\" C=a\\ b\n");
    let pair = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: v.into(),
    };
    let Command::Env { pairs } = &env.command else {
        panic!("not ENV");
    };
    assert_eq!(
        pairs,
        &vec![
            pair("A", "1"),
            pair("B", "\"two words\""),
            pair("C", "a\\ b")
        ]
    );
    let legacy = second("ENV PATH /usr/bin:/bin extra\n");
    let Command::Env { pairs } = &legacy.command else {
        panic!("not ENV");
    };
    assert_eq!(pairs, &vec![pair("PATH", "/usr/bin:/bin extra")]);
    let label = second("LABEL org.opencontainers.image.title='kiln' version=1\n");
    let Command::Label { pairs } = &label.command else {
        panic!("not LABEL");
    };
    assert_eq!(
        pairs,
        &vec![
            pair("org.opencontainers.image.title", "'kiln'"),
            pair("version", "1")
        ]
    );
    let (message, start, _) = err_at("FROM scratch\nENV PATH\n");
    assert_eq!(
        (message.as_str(), start),
        ("ENV must have two arguments", 2)
    );
    assert_eq!(
        err_at("FROM scratch\nENV A=1 B\n").0,
        "Syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
    assert_eq!(
        err_at("FROM scratch\nLABEL =x\n").0,
        "LABEL names can not be blank"
    );
}

#[test]
fn exec_and_shell_forms() {
    let df = parse(concat!(
        "FROM scratch\n",
        "RUN [\"echo\", \"a b\"]\n",
        "RUN echo \"a b\"\n",
        "CMD [\"echo\", 'x']\n",
        "ENTRYPOINT [ \"/bin/app\" ]\n",
        "CMD []\n",
    ));
    let forms: Vec<_> = df.instructions[1..]
        .iter()
        .map(|i| i.command_line().cloned())
        .collect();
    assert_eq!(
        forms,
        vec![
            Some(CommandLine::Exec(strings(&["echo", "a b"]))),
            Some(CommandLine::Shell("echo \"a b\"".into())),
            // Not valid JSON: shell form, as written.
            Some(CommandLine::Shell("[\"echo\", 'x']".into())),
            Some(CommandLine::Exec(strings(&["/bin/app"]))),
            Some(CommandLine::Exec(vec![])),
        ]
    );
    assert_eq!(
        err_at("FROM scratch\nCMD [\"a\", [\"b\"]]\n").0,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn shell_must_be_json() {
    let shell = second("SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\n");
    assert!(matches!(&shell.command, Command::Shell { shell } if shell.len() == 4));
    assert_eq!(
        err_at("FROM scratch\nSHELL /bin/bash -c\n").0,
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err_at("FROM scratch\nSHELL []\n").0,
        "SHELL requires at least one argument"
    );
}

#[test]
fn single_argument_instructions() {
    let df = parse(concat!(
        "FROM scratch\n",
        "WORKDIR /app dir\n",
        "USER ${UID:-1000}:1000\n",
        "STOPSIGNAL SIGKILL\n",
        "MAINTAINER Jane Doe <jane@example.com>\n",
    ));
    let commands: Vec<_> = df.instructions[1..].iter().map(|i| &i.command).collect();
    assert!(matches!(commands[0], Command::Workdir { path } if path == "/app dir"));
    assert!(matches!(commands[1], Command::User { user } if user == "${UID:-1000}:1000"));
    assert!(matches!(commands[2], Command::Stopsignal { signal } if signal == "SIGKILL"));
    assert!(
        matches!(commands[3], Command::Maintainer { name } if name == "Jane Doe <jane@example.com>")
    );
}

#[test]
fn expose_and_volume() {
    let expose = second("EXPOSE 80/tcp 53/udp 8080\n");
    assert!(
        matches!(&expose.command, Command::Expose { ports } if ports == &strings(&["80/tcp", "53/udp", "8080"]))
    );
    let volume = second("VOLUME [\"/data\", \"/logs\"]\n");
    assert!(
        matches!(&volume.command, Command::Volume { paths } if paths == &strings(&["/data", "/logs"]))
    );
    let volume = second("VOLUME /a /b\n");
    assert!(matches!(&volume.command, Command::Volume { paths } if paths.len() == 2));
    assert_eq!(
        err_at("FROM scratch\nVOLUME [\"\"]\n").0,
        "VOLUME specified can not be an empty string"
    );
}

#[test]
fn healthcheck_forms() {
    let none = second("HEALTHCHECK NONE\n");
    assert!(matches!(
        &none.command,
        Command::Healthcheck {
            check: Healthcheck::None
        }
    ));
    let shell = second("HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\n");
    assert_eq!(shell.flag("interval"), Some("30s"));
    assert!(matches!(
        &shell.command,
        Command::Healthcheck { check: Healthcheck::Cmd(CommandLine::Shell(s)) } if s == "curl -f http://localhost/"
    ));
    let exec = second("HEALTHCHECK CMD [\"/bin/check\"]\n");
    assert!(matches!(
        &exec.command,
        Command::Healthcheck { check: Healthcheck::Cmd(CommandLine::Exec(v)) } if v == &strings(&["/bin/check"])
    ));
    let cases = [
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        (
            "HEALTHCHECK CONNECT TCP 7000",
            "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)",
        ),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        (
            "HEALTHCHECK --interval=10 CMD true",
            "time: missing unit in duration \"10\"",
        ),
        (
            "HEALTHCHECK --timeout=50ns CMD true",
            "Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD true",
            "--retries cannot be negative (-1)",
        ),
        ("HEALTHCHECK --bogus=1 CMD true", "unknown flag: --bogus"),
    ];
    for (line, expected) in cases {
        assert_eq!(
            err_at(&format!("FROM scratch\n{line}\n")).0,
            expected,
            "{line}"
        );
    }
}

#[test]
fn onbuild_triggers() {
    let onbuild = second("ONBUILD RUN --mount=type=cache,target=/c make\n");
    let Command::Onbuild {
        expression,
        trigger,
    } = &onbuild.command
    else {
        panic!("not ONBUILD");
    };
    assert_eq!(expression, "RUN --mount=type=cache,target=/c make");
    assert_eq!(trigger.flag("mount"), Some("type=cache,target=/c"));
    assert_eq!(
        trigger.command_line(),
        Some(&CommandLine::Shell("make".into()))
    );

    let onbuild = second("onbuild copy <<EOF /x\nhello\nEOF\n");
    let Command::Onbuild {
        expression,
        trigger,
    } = &onbuild.command
    else {
        panic!("not ONBUILD");
    };
    assert_eq!(expression, "copy <<EOF /x\nhello\nEOF");
    assert_eq!(trigger.heredocs[0].content, "hello\n");

    assert_eq!(
        err_at("FROM scratch\nONBUILD MAINTAINER me\n").0,
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err_at("FROM scratch\nONBUILD\n").0,
        "ONBUILD requires at least one argument"
    );
}

// ---- errors and their locations ----

#[test]
fn unknown_instruction_suggests_a_keyword() {
    let (message, start, end) = err_at("FROM scratch\nRUN a \\\n  b\nFORM x\n");
    assert_eq!(message, "unknown instruction: FORM (did you mean FROM?)");
    assert_eq!((start, end), (4, 4));
}

#[test]
fn errors_span_all_lines_of_a_continued_instruction() {
    let (message, start, end) = err_at("FROM scratch\nCOPY \\\n  onlyone\n");
    assert!(message.starts_with("COPY requires at least two arguments"));
    assert_eq!((start, end), (2, 3));
    let err = parse_err("FROM scratch\nCOPY \\\n  onlyone\n");
    let location = err.location().unwrap();
    let quoted: Vec<_> = location.lines().collect();
    assert_eq!(quoted, vec![(2, "COPY \\"), (3, "  onlyone")]);
}

#[test]
fn instructions_before_from_must_be_args() {
    parse("ARG VERSION=1\nFROM alpine:$VERSION\n");
    let (message, start, _) = err_at("ARG A\nRUN echo\nFROM scratch\n");
    assert_eq!(
        (message.as_str(), start),
        ("no build stage in current context", 2)
    );
}

#[test]
fn no_instructions() {
    let err = parse_err("# just a comment\n\n");
    assert_eq!(err.to_string(), "file with no instructions");
    assert!(err.location().is_none());
}

// ---- output for tools ----

#[test]
fn serializes_to_stable_json() {
    let df = parse(
        "# syntax=docker/dockerfile:1\nFROM alpine AS base\nRUN --network=none echo hi\nCMD [\"sh\"]\n",
    );
    let value = serde_json::to_value(&df).unwrap();
    let expected = serde_json::json!({
        "directives": {"syntax": "docker/dockerfile:1", "escape": "\\", "check": null},
        "instructions": [
            {
                "start_line": 2, "end_line": 2, "original": "FROM alpine AS base",
                "flags": [], "heredocs": [],
                "command": {"instruction": "FROM", "image": "alpine", "name": "base"}
            },
            {
                "start_line": 3, "end_line": 3, "original": "RUN --network=none echo hi",
                "flags": [{"name": "network", "value": "none"}], "heredocs": [],
                "command": {"instruction": "RUN", "command": {"form": "shell", "value": "echo hi"}}
            },
            {
                "start_line": 4, "end_line": 4, "original": "CMD [\"sh\"]",
                "flags": [], "heredocs": [],
                "command": {"instruction": "CMD", "command": {"form": "exec", "value": ["sh"]}}
            }
        ],
        "warnings": []
    });
    assert_eq!(value, expected);
}

#[test]
fn odd_inputs_never_panic() {
    const PIECES: &[&str] = &[
        "RUN ",
        "COPY ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "ENV ",
        "<<",
        "EOF",
        "'",
        "\"",
        "\\",
        "`",
        "${",
        "}",
        "$",
        "--a=",
        "[",
        "]",
        "\n",
        "\r\n",
        " ",
        "\t",
        "#",
        "é",
        "\u{feff}",
        "-",
        "3<<-",
        "=",
    ];
    let n = PIECES.len();
    let mut parsed = 0;
    for i in 0..n * n * n {
        let text: String = [i % n, i / n % n, i / n / n]
            .iter()
            .map(|&k| PIECES[k])
            .collect();
        for candidate in [
            text.clone(),
            format!("FROM a\n{text}"),
            format!("# escape=`\n{text}\nEOF\n"),
        ] {
            let _ = dockerfile::parse(source(&candidate));
            if let Ok(raw) = dockerfile::parse_raw(source(&candidate)) {
                let _ = dockerfile::dump_buildkit(&raw);
            }
            parsed += 1;
        }
    }
    assert_eq!(parsed, n.pow(3) * 3);
}
