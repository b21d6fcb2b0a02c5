//! Conformance of the filtered walk against BuildKit's fsutil tests (converted in
//! `shared/conformance/dockerignore/fsutil-walk-cases.json`).
//!
//! Five cases need a directory that cannot be listed (mode 0000). Root ignores that mode, so when
//! run as root those cases are re-run in a child process (`setpriv`) without the capabilities that
//! bypass file permissions.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use builder_core::context::{ContextError, WalkFilter, walk_filtered};
use serde_json::Value;

const CHILD_ENV: &str = "KILN_WALK_PERMISSION_CHILD";

fn cases() -> Vec<Value> {
    let path = common::conformance_dir("dockerignore").join("fsutil-walk-cases.json");
    let all: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    all["cases"].as_array().unwrap().clone()
}

fn needs_unreadable_dir(case: &Value) -> bool {
    case["tree"]
        .as_array()
        .unwrap()
        .iter()
        .any(|entry| entry[1].as_str().unwrap().contains("mode 0000"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

/// Creates the case's tree; returns the directories made unreadable, to restore before cleanup.
fn build_tree(root: &Path, case: &Value) -> Vec<PathBuf> {
    let mut locked = Vec::new();
    for entry in case["tree"].as_array().unwrap() {
        let path = root.join(entry[0].as_str().unwrap());
        let kind = entry[1].as_str().unwrap();
        if kind == "file" {
            fs::write(&path, b"").unwrap();
        } else {
            assert!(kind.starts_with("dir"), "unknown tree entry {kind}");
            fs::create_dir(&path).unwrap();
            if kind.contains("mode 0000") {
                locked.push(path);
            }
        }
    }
    for path in &locked {
        fs::set_permissions(path, fs::Permissions::from_mode(0o000)).unwrap();
    }
    locked
}

/// The case's filter layers, innermost first; `Err` when building them fails.
fn layers(case: &Value) -> Result<Vec<WalkFilter>, String> {
    let none: Vec<String> = Vec::new();
    let include = match &case["include_patterns"] {
        Value::Null => none.clone(),
        value => strings(value),
    };
    let exclude = &case["exclude_patterns"];
    let stacked = exclude
        .as_array()
        .is_some_and(|items| items.first().is_some_and(Value::is_array));
    if stacked {
        exclude
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| WalkFilter::new(&none, &strings(layer)).map_err(|e| e.to_string()))
            .collect()
    } else {
        let exclude = match exclude {
            Value::Null => none,
            value => strings(value),
        };
        Ok(vec![
            WalkFilter::new(&include, &exclude).map_err(|e| e.to_string())?,
        ])
    }
}

/// Runs one case; `Ok` when it behaves as expected.
fn check(case: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let locked = build_tree(root, case);
    let outcome = check_in(root, case);
    for path in locked {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    outcome
}

fn check_in(root: &Path, case: &Value) -> Result<(), String> {
    let layers = match layers(case) {
        Ok(layers) => layers,
        Err(error) if case["expected_error"] == "NewFilterFS returns an error" => {
            println!("  filter rejected as expected: {error}");
            return Ok(());
        }
        Err(error) => return Err(format!("filter rejected: {error}")),
    };
    if case["expected_error"] == "NewFilterFS returns an error" {
        return Err("filter accepted, expected an error".to_owned());
    }
    let mut walked = Vec::new();
    let mut error = None;
    for item in walk_filtered(root, "", &layers).map_err(|e| e.to_string())? {
        match item {
            Ok(entry) if entry.rel.is_empty() => {}
            Ok(entry) => {
                let kind = if entry.metadata.is_dir() {
                    "dir"
                } else {
                    "file"
                };
                walked.push(format!("{kind} {}", entry.rel));
            }
            Err(walk_error) => {
                error = Some(walk_error);
                break;
            }
        }
    }
    if let Some(expected) = case["expected_error"].as_str() {
        assert!(expected.starts_with("permission denied"), "{expected}");
        return match error {
            Some(ContextError::Io { error, .. })
                if error.kind() == io::ErrorKind::PermissionDenied =>
            {
                Ok(())
            }
            other => Err(format!(
                "expected permission denied, got {other:?} after {walked:?}"
            )),
        };
    }
    if let Some(error) = error {
        return Err(format!("walk failed: {error:?}"));
    }
    if let Some(expected) = case.get("expected_walk") {
        let expected = strings(expected);
        if walked != expected {
            return Err(format!("walked {walked:?}, expected {expected:?}"));
        }
    }
    if let Some(expected) = case.get("expected_open").and_then(Value::as_object) {
        for (path, outcome) in expected {
            let mut permitted = true;
            for layer in &layers {
                permitted &= layer.permits(path).map_err(|e| e.to_string())?;
            }
            let got = if permitted {
                fs::read(root.join(path)).map_err(|e| e.to_string())?;
                "ok"
            } else {
                "ErrNotExist"
            };
            if got != outcome {
                return Err(format!("open {path}: got {got}, expected {outcome}"));
            }
        }
    }
    Ok(())
}

fn run(cases: &[(usize, Value)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (index, case) in cases {
        if let Err(message) = check(case) {
            failures.push(format!("case {index} ({}): {message}", case["source"]));
        }
    }
    failures
}

/// Whether this process can list a mode-0000 directory anyway (root with its capabilities).
fn permissions_are_bypassed() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let bypassed = fs::read_dir(&locked).is_ok();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    bypassed
}

#[test]
fn fsutil_walk_cases() {
    let all = cases();
    assert_eq!(all.len(), 34);
    let plain: Vec<_> = all
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, case)| !needs_unreadable_dir(case))
        .collect();
    let failures = run(&plain);
    println!(
        "fsutil walk cases (readable trees): {}/{} passed",
        plain.len() - failures.len(),
        plain.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fsutil_walk_permission_cases() {
    let all = cases();
    let locked: Vec<_> = all
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, case)| needs_unreadable_dir(case))
        .collect();
    if std::env::var_os(CHILD_ENV).is_some() || !permissions_are_bypassed() {
        assert!(
            !permissions_are_bypassed(),
            "still able to read mode-0000 directories"
        );
        let failures = run(&locked);
        println!(
            "fsutil walk cases (unreadable directory): {}/{} passed",
            locked.len() - failures.len(),
            locked.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        return;
    }
    let caps = "-dac_override,-dac_read_search";
    let spawned = Command::new("setpriv")
        .arg(format!("--bounding-set={caps}"))
        .arg(format!("--inh-caps={caps}"))
        .arg(std::env::current_exe().unwrap())
        .args(["fsutil_walk_permission_cases", "--exact", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output();
    let output = match spawned {
        Ok(output) => output,
        Err(error) => {
            println!(
                "SKIPPED {} permission cases: cannot run setpriv: {error}",
                locked.len()
            );
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("child without DAC capabilities:\n{stdout}");
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{n}/{n} passed", n = locked.len())),
        "child did not run the cases:\n{stdout}"
    );
}
