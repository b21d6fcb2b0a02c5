//! `kiln parse`: BuildKit's dump format byte for byte, and JSON with line numbers.

use std::fs;
use std::process::Stdio;

use serde_json::Value;

use crate::common::{Sandbox, json, run, shared_dir, testdata};

#[test]
fn buildkit_format_matches_the_parser_testfiles() {
    let cases = shared_dir().join("conformance/buildkit/parser/testfiles");
    let sb = Sandbox::new();
    let mut checked = 0;
    for name in [
        "env",
        "escapes",
        "continueIndent",
        "ADD-COPY-with-JSON",
        "docker",
    ] {
        let dir = cases.join(name);
        let expected = fs::read_to_string(dir.join("result")).unwrap();
        let out = run(sb
            .kiln()
            .args(["parse", "--format", "buildkit", "-f"])
            .arg(dir.join("Dockerfile")))
        .success();
        assert_eq!(out.stdout, expected, "testfiles/{name}");
        checked += 1;
    }
    eprintln!("kiln parse --format buildkit: {checked} testfiles match");
}

#[test]
fn json_format_has_line_numbers() {
    let dockerfile = testdata("example").join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap();
    let sb = Sandbox::new();
    let out = run(sb
        .kiln()
        .args(["parse", "--format", "json", "-f"])
        .arg(&dockerfile))
    .success();
    let parsed = json(&out.stdout);
    let instructions = parsed["instructions"].as_array().unwrap();

    // Line numbers are 1-based positions in the file, found here from its text.
    let line_of = |prefix: &str| {
        text.lines()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
            + 1
    };
    let find = |start: usize| -> &Value {
        instructions
            .iter()
            .find(|i| i["start_line"] == start)
            .unwrap_or_else(|| panic!("no instruction starts at line {start}:\n{}", out.stdout))
    };
    let label = line_of("LABEL");
    assert_eq!(
        find(label)["end_line"],
        label + 1,
        "LABEL continues on the next line"
    );
    let heredoc = line_of("COPY <<EOF");
    let terminator = text
        .lines()
        .enumerate()
        .skip(heredoc)
        .find(|(_, l)| *l == "EOF")
        .unwrap()
        .0
        + 1;
    assert_eq!(
        find(heredoc)["end_line"],
        terminator,
        "the heredoc body belongs to its COPY"
    );
    let cmd = line_of("CMD");
    assert_eq!(find(cmd)["end_line"], cmd);
    assert_eq!(find(line_of("ARG VERSION=1.0.0"))["start_line"], 4);

    // Every instruction line of the file appears once, in order.
    let starts: Vec<u64> = instructions
        .iter()
        .map(|i| i["start_line"].as_u64().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable();
    assert_eq!(starts, sorted);
    let keywords = [
        "ARG",
        "FROM",
        "COPY",
        "LABEL",
        "ENV",
        "WORKDIR",
        "ADD",
        "EXPOSE",
        "VOLUME",
        "USER",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
    ];
    let expected_count = text
        .lines()
        .filter(|l| keywords.iter().any(|k| l.starts_with(&format!("{k} "))))
        .count();
    assert_eq!(instructions.len(), expected_count);
}

#[test]
fn parse_errors_exit_1_with_the_line() {
    let dockerfile = testdata("errors/unknown-instruction/Dockerfile");
    let sb = Sandbox::new();
    let out = run(sb.kiln().args(["parse", "-f"]).arg(&dockerfile)).code(1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(&format!("{}:3", dockerfile.display())),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("FROBNICATE a.txt"), "{}", out.stderr);
}

/// Piping into `head` closes stdout early; that is not an error (and never a panic).
#[test]
fn closed_stdout_is_not_a_crash() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let sb = Sandbox::new();
    let out = run(sb
        .kiln()
        .args(["parse", "-f"])
        .arg(testdata("example").join("Dockerfile"))
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped()));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
