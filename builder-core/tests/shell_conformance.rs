//! BuildKit's own word-expansion test data, run against `dockerfile::shell`.
//!
//! Data: `shared/conformance/buildkit/shell/{envVarTest,wordsTest}` and
//! `extracted/shell/{process-with-matches,mandatory-env-vars}.json` (see FORMAT.md §4–§6).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use builder_core::dockerfile::shell::{Lexer, ShellError};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    common::conformance_dir("buildkit")
}

fn read(relative: &str) -> String {
    let path = corpus_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `KEY=value` strings as Go's `EnvsFromSlice` reads them (a missing `=` means empty).
fn env_from_slice(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.as_str().unwrap();
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn env_from_object(object: &Value) -> BTreeMap<String, String> {
    object
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn string_set(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn env_var_test() {
    let lexer = Lexer::new('\\');
    let env = pairs(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for (index, raw_line) in read("shell/envVarTest").lines().enumerate() {
        if raw_line.starts_with('#') || raw_line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw_line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {}: {raw_line:?}", index + 1);
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => {}
            "W" => {
                skipped += 1;
                continue;
            }
            other => panic!("line {}: unknown platform {other:?}", index + 1),
        }
        let result = lexer.process_word(input, &env);
        let ok = match (&result, expected) {
            (Err(_), "error") => true,
            (Ok(got), expected) => expected != "error" && got == expected,
            (Err(_), _) => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {result:?}",
                index + 1
            ));
        }
    }
    eprintln!(
        "envVarTest: {passed} passed, {} failed, {skipped} skipped (W)",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 228);
}

#[test]
fn words_test() {
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut passed, mut failures) = (0, Vec::new());
    for (index, line) in read("shell/wordsTest").lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(definition) = line.strip_prefix("ENV ") {
            let definition = definition.trim_start_matches(' ');
            let (key, value) = definition.split_once('=').unwrap_or((definition, ""));
            env.push((key.to_owned(), value.to_owned()));
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}: {line:?}", index + 1);
        let input = parts[0].trim();
        let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
        let got = match lexer.process_words(input, &env) {
            Ok(words) => words,
            Err(_) => vec!["error".to_owned()],
        };
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                index + 1
            ));
        }
    }
    eprintln!("wordsTest: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 24);
}

#[test]
fn process_with_matches() {
    let data = read_json("extracted/shell/process-with-matches.json");
    let lexer = Lexer::new('\\');
    let (mut passed, mut failures) = (0, Vec::new());
    for case in data["cases"]
        .as_array()
        .unwrap()
        .iter()
        .chain(data["platform_cases"].as_array().unwrap())
    {
        let input = case["input"].as_str().unwrap();
        let env = env_from_object(&case["envs"]);
        let result = lexer.process_word_with_matches(input, &env);
        let failure = if case["expect_error"].as_bool() == Some(true) {
            result
                .as_ref()
                .ok()
                .map(|ok| format!("{input:?}: expected an error, got {ok:?}"))
        } else {
            match &result {
                Err(err) => Some(format!("{input:?}: unexpected error {err}")),
                Ok((word, matches)) => {
                    let mut problems = Vec::new();
                    if word != case["expected"].as_str().unwrap() {
                        problems.push(format!("word {word:?} != {}", case["expected"]));
                    }
                    for (key, got) in [
                        ("matches", &matches.matched),
                        ("unmatched", &matches.unmatched),
                    ] {
                        if let Some(expected) = case.get(key)
                            && *got != string_set(expected)
                        {
                            problems.push(format!("{key} {got:?} != {expected}"));
                        }
                    }
                    (!problems.is_empty())
                        .then(|| format!("{input:?} with {env:?}: {}", problems.join("; ")))
                }
            }
        };
        match failure {
            None => passed += 1,
            Some(failure) => failures.push(failure),
        }
    }
    eprintln!(
        "process-with-matches: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 50);
}

#[test]
fn mandatory_env_vars() {
    let data = read_json("extracted/shell/mandatory-env-vars.json");
    let lexer = Lexer::new('\\');
    let (mut passed, mut failures) = (0, Vec::new());
    for case in data["cases"].as_array().unwrap() {
        let word = case["word"].as_str().unwrap();
        let env = env_from_slice(case["envs"].as_array().unwrap());
        let result = lexer.process_word(word, &env);
        let ok = match (&result, case.get("error_contains")) {
            (Err(err), Some(needle)) => err.to_string().contains(needle.as_str().unwrap()),
            (Ok(got), None) => got == case["result"].as_str().unwrap(),
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{word:?} with {env:?}: got {result:?}"));
        }
    }
    eprintln!(
        "mandatory-env-vars: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 6);
}

#[test]
fn mandatory_env_var_messages_are_buildkits() {
    let lexer = Lexer::new('\\');
    let env = pairs(&[("VAR", ""), ("ARG", "x")]);
    let err = lexer
        .process_word("${VAR:?message here$ARG}", &env)
        .unwrap_err();
    assert!(matches!(err, ShellError::RequiredVariable { .. }));
    assert_eq!(
        err.to_string(),
        "failed to process \"${VAR:?message here$ARG}\": VAR: message herex"
    );
}
