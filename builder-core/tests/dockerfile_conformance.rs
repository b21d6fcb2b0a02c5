//! BuildKit's Dockerfile parser corpus (see `shared/conformance/buildkit/FORMAT.md`), read at
//! test time.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use builder_core::diag::SourceFile;
use builder_core::dockerfile::{self, RawDockerfile};
use serde_json::Value;

fn corpus() -> PathBuf {
    common::conformance_dir("buildkit")
}

fn read(path: &PathBuf) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn json(relative: &str) -> Value {
    serde_json::from_str(&read(&corpus().join(relative))).unwrap()
}

fn source(text: &str) -> Arc<SourceFile> {
    SourceFile::new("Dockerfile", text)
}

fn parse_raw(text: &str) -> RawDockerfile {
    dockerfile::parse_raw(source(text)).unwrap()
}

fn case_dirs(relative: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus().join(relative))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn testfiles_dump_like_buildkit() {
    let mut passed = 0;
    let mut failures = Vec::new();
    for dir in case_dirs("parser/testfiles") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected = read(&dir.join("result"));
        match dockerfile::parse_raw(source(&read(&dir.join("Dockerfile")))) {
            Ok(raw) => {
                let dump = dockerfile::dump_buildkit(&raw);
                if dump == expected {
                    passed += 1;
                } else {
                    failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{dump}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "parser/testfiles: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 33);
}

#[test]
fn negative_testfiles_fail() {
    let mut failed = 0;
    for dir in case_dirs("parser/testfiles-negative") {
        let text = read(&dir.join("Dockerfile"));
        let result = dockerfile::parse(source(&text));
        assert!(result.is_err(), "{} parsed", dir.display());
        failed += 1;
    }
    eprintln!("parser/testfiles-negative: {failed} failed as required");
    assert_eq!(failed, 4);
}

#[test]
fn negative_testfiles_give_buildkit_messages() {
    let message = |name: &str| {
        let text = read(
            &corpus()
                .join("parser/testfiles-negative")
                .join(name)
                .join("Dockerfile"),
        );
        dockerfile::parse_raw(source(&text))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(message("empty_dockerfile"), "file with no instructions");
    assert_eq!(message("only_comments"), "file with no instructions");
    assert_eq!(message("env_no_value"), "ENV must have two arguments");
    assert_eq!(
        message("shykes-nested-json"),
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn testfile_line_numbers() {
    let info = json("extracted/parser/line-info.json");
    let raw = parse_raw(&read(&corpus().join("parser/testfile-line/Dockerfile")));
    let lines: Vec<Value> = raw
        .instructions
        .iter()
        .map(|i| serde_json::json!([i.start_line, i.end_line]))
        .collect();
    assert_eq!(Value::from(lines), info["children_lines"]);
    assert_eq!(raw.instructions.len() as u64, info["children_count"]);
    assert_eq!(
        raw.instructions.first().unwrap().start_line as u64,
        info["root"]["StartLine"]
    );
    assert_eq!(
        raw.instructions.last().unwrap().end_line as u64,
        info["root"]["EndLine"]
    );
    eprintln!(
        "parser/testfile-line: {} ranges match",
        raw.instructions.len()
    );
}

#[test]
fn parse_words_keeps_quotes() {
    let data = json("extracted/parser/parse-words.json");
    let mut passed = 0;
    for case in data["cases"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        // ARG's splitter is parseWords.
        let raw = parse_raw(&format!("ARG {input}\n"));
        let args = Value::from(raw.instructions[0].args.clone());
        assert_eq!(args, case["expect"], "{input}");
        passed += 1;
    }
    eprintln!("extracted/parser/parse-words.json: {passed} passed");
    assert_eq!(passed, 8);
}

#[test]
fn json_arrays_of_strings_only() {
    let data = json("extracted/parser/json-arrays.json");
    let mut passed = 0;
    for case in data["valid"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let raw = parse_raw(&format!("CMD {input}\n"));
        let cmd = &raw.instructions[0];
        assert!(cmd.json, "{input:?} not read as JSON");
        assert_eq!(Value::from(cmd.args.clone()), case["expect"], "{input:?}");
        passed += 1;
    }
    for input in data["invalid_not_string_array"].as_array().unwrap() {
        let input = input.as_str().unwrap();
        let err = dockerfile::parse_raw(source(&format!("CMD {input}\n"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "when using JSON array syntax, arrays must be comprised of strings only"
        );
        passed += 1;
    }
    eprintln!("extracted/parser/json-arrays.json: {passed} passed");
    assert_eq!(passed, 16);
}

/// Compares the heredocs of the raw instructions with an `expected.json` file.
fn check_heredocs(name: &str) -> usize {
    let text = read(&corpus().join(format!("extracted/heredoc/{name}.Dockerfile")));
    let expected = json(&format!("extracted/heredoc/{name}.expected.json"));
    let raw = parse_raw(&text);
    let mut passed = 0;
    for case in expected["cases"].as_array().unwrap() {
        let index = case["child_index"].as_u64().unwrap() as usize;
        let got: Vec<Value> = raw.instructions[index]
            .heredocs
            .iter()
            .map(|h| {
                serde_json::json!({
                    "Name": h.name,
                    "FileDescriptor": h.file_descriptor,
                    "Expand": h.expand,
                    "Chomp": h.chomp,
                    "Content": h.content,
                })
            })
            .collect();
        let got = if got.is_empty() {
            Value::Null
        } else {
            Value::from(got)
        };
        assert_eq!(got, case["heredocs"], "{name} child {index}");
        passed += 1;
    }
    passed
}

#[test]
fn heredocs_extracted_like_buildkit() {
    let extracts = check_heredocs("TestParseExtractsHeredoc");
    let json_form = check_heredocs("TestParseJSONHeredoc");
    eprintln!("extracted/heredoc: {extracts} + {json_form} children match");
    assert_eq!(extracts, 27);
    assert_eq!(json_form, 3);
}

#[test]
fn instruction_error_cases() {
    let data = json("extracted/instructions/error-cases.json");
    let mut passed = 0;
    for case in data["cases"].as_array().unwrap() {
        let text = case["dockerfile"].as_str().unwrap();
        // The line-level parse must succeed; validation must fail.
        let raw = dockerfile::parse_raw(source(text));
        assert!(raw.is_ok(), "{text:?}: {:?}", raw.err());
        let err = dockerfile::parse(source(text)).unwrap_err();
        let message = err.to_string();
        if let Some(equals) = case["error_equals"].as_str() {
            assert_eq!(message, equals, "{text:?}");
        }
        if let Some(contains) = case["error_contains"].as_str() {
            assert!(message.contains(contains), "{text:?}: {message}");
        }
        let location = err.location().expect("error without location");
        assert_eq!(location.start_line, 1, "{text:?}");
        passed += 1;
    }
    eprintln!("extracted/instructions/error-cases.json: {passed} passed");
    assert_eq!(passed, 19);
}
