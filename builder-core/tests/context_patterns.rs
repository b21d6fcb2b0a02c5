//! Conformance of `.dockerignore` reading and matching against moby/patternmatcher's own tests
//! (converted in `shared/conformance/dockerignore`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use builder_core::context::{MatchInfo, PatternMatcher, read_all};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = common::conformance_dir("dockerignore").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

/// `MatchesUsingParentResults`, fed the results of walking the parents first, as a walker does.
fn matches_walking_parents(matcher: &PatternMatcher, path: &str) -> Result<bool, String> {
    let trimmed = path.trim_end_matches('/');
    let mut info = MatchInfo::default();
    if let Some((parent, _)) = trimmed.rsplit_once('/') {
        let parts: Vec<&str> = parent.split('/').collect();
        for depth in 1..=parts.len() {
            let prefix = parts[..depth].join("/");
            let (_, next) = matcher
                .matches_using_parent_results(&prefix, &info)
                .map_err(|error| error.to_string())?;
            info = next;
        }
    }
    matcher
        .matches_using_parent_results(path, &info)
        .map(|(matched, _)| matched)
        .map_err(|error| error.to_string())
}

#[test]
fn patternmatcher_cases() {
    let cases = load("cases.json");
    let cases = cases.as_array().unwrap();
    let mut failures = Vec::new();
    let mut passed = 0;
    for (index, case) in cases.iter().enumerate() {
        let patterns = strings(&case["patterns"]);
        let path = case["path"].as_str().unwrap();
        let expected = case["expected"].as_str().unwrap();
        let api = case["api"].as_str().unwrap();
        let mut outcomes: Vec<(&str, String)> = Vec::new();
        match PatternMatcher::new(&patterns) {
            Err(_) => outcomes.push(("new", "error".to_owned())),
            Ok(matcher) => {
                let render = |result: Result<bool, String>| match result {
                    Ok(matched) => matched.to_string(),
                    Err(_) => "error".to_owned(),
                };
                match api {
                    "Matches" => outcomes.push((
                        "matches",
                        render(matcher.matches(path).map_err(|e| e.to_string())),
                    )),
                    "MatchesOrParentMatches" => {
                        let first = matcher
                            .matches_or_parent_matches(path)
                            .map_err(|e| e.to_string());
                        // Upstream calls twice to show a lazily failing pattern stays failed.
                        let second = matcher
                            .matches_or_parent_matches(path)
                            .map_err(|e| e.to_string());
                        outcomes.push(("matches_or_parent_matches", render(first)));
                        outcomes.push(("matches_or_parent_matches (again)", render(second)));
                        let unwalked = matcher
                            .matches_using_parent_results(path, &MatchInfo::default())
                            .map(|(matched, _)| matched)
                            .map_err(|e| e.to_string());
                        outcomes.push(("using_parent_results (no info)", render(unwalked)));
                        outcomes.push((
                            "using_parent_results (walked)",
                            render(matches_walking_parents(&matcher, path)),
                        ));
                    }
                    other => panic!("unknown api {other}"),
                }
            }
        }
        let wrong: Vec<_> = outcomes
            .iter()
            .filter(|(_, outcome)| outcome != expected)
            .collect();
        if wrong.is_empty() {
            passed += 1;
        } else {
            failures.push(format!(
                "row {index}: patterns {patterns:?} path {path:?} api {api}: expected {expected}, got {wrong:?}"
            ));
        }
    }
    println!("patternmatcher cases: {passed}/{} passed", cases.len());
    assert_eq!(cases.len(), 138);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ignorefile_read_all_cases() {
    let cases = load("ignorefile-readall.json");
    let cases = cases.as_array().unwrap();
    for case in cases {
        let input = case["input"].as_str().unwrap_or("");
        assert_eq!(read_all(input), strings(&case["expected"]), "{case}");
    }
    println!(
        "ignorefile ReadAll cases: {}/{} passed",
        cases.len(),
        cases.len()
    );
}
