//! `.dockerignore` matching (goal: 100,000 paths in under 100 ms).
//!
//! Paths come from a generated monorepo: Rust sources, a large `node_modules` (scoped and nested
//! packages), `target/`, docs with a built site, workspace packages with their own
//! `node_modules`, test data and `.git` objects. The 20 patterns use `**`, `!` exceptions,
//! `*.md`, directory names and root-only globs, the way real ignore files do.
//!
//! `match_100k_paths` asks `PatternMatcher::matches_or_parent_matches` about every path, as a
//! naive client would. `walk_20k_files` walks a real 20,000-file tree of the same shape through
//! `BuildContext::walk`, which skips excluded directories unless an exception reaches into them.
#![allow(clippy::print_stderr)]

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use builder_core::context::{BuildContext, PatternMatcher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DOCKERIGNORE: &str = "\
# build output and dependencies
**/node_modules
!node_modules/@internal/**
target
dist/
coverage
**/__pycache__
*.pyc
# docs are built separately, but keep the top-level ones
**/*.md
!README.md
!docs/**/index.md
docs/_build
# noise
.git
**/.DS_Store
*.log
**/*.tmp
.env*
!.env.example
tests/**/*.golden
!tests/fixtures/**/*.golden
packages/*/coverage
";

const MATCH_PATHS: usize = 100_000;
const WALK_FILES: usize = 20_000;

/// A small deterministic generator, so every run benchmarks the same paths.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const MODULES: &[&str] = &[
    "api", "auth", "cache", "cli", "config", "db", "http", "io", "metrics", "net", "parser",
    "plugins", "queue", "render", "storage", "sync", "util", "worker",
];
const PACKAGES: &[&str] = &[
    "react",
    "lodash",
    "express",
    "typescript",
    "webpack",
    "babel-core",
    "eslint",
    "jest",
    "rxjs",
    "zod",
    "axios",
    "chalk",
    "commander",
    "debug",
    "ms",
    "semver",
    "yargs",
    "uuid",
];
const SCOPES: &[&str] = &[
    "@babel",
    "@types",
    "@internal",
    "@aws-sdk",
    "@testing-library",
];
const STEMS: &[&str] = &[
    "index", "main", "lib", "mod", "types", "utils", "client", "server", "handler", "model",
    "schema", "error", "config", "test", "helpers",
];

/// One generated path: files always have an extension and directories never do, so no path is
/// both a file and a parent directory.
fn generate_path(rng: &mut XorShift, i: usize) -> String {
    let stem = rng.pick(STEMS);
    match rng.below(100) {
        0..20 => {
            let (a, b) = (rng.pick(MODULES), rng.pick(MODULES));
            match rng.below(4) {
                0 => format!("src/{a}/{stem}{i}.rs"),
                1 => format!("src/{a}/{b}/{stem}{i}.rs"),
                2 => format!("src/{a}/{b}/tests/{stem}{i}.rs"),
                _ => format!("src/{a}/{b}/{stem}{i}.tmp"),
            }
        }
        20..55 => {
            let package = rng.pick(PACKAGES);
            let dir = rng.pick(&["lib", "dist", "src", "esm", "cjs"]);
            match rng.below(6) {
                0 => format!("node_modules/{package}/{dir}/{stem}{i}.js"),
                1 => format!("node_modules/{package}/{dir}/{stem}{i}.d.ts"),
                2 => format!("node_modules/{package}/README{i}.md"),
                3 => {
                    let scope = rng.pick(SCOPES);
                    format!("node_modules/{scope}/{package}/{dir}/{stem}{i}.js")
                }
                4 => {
                    let inner = rng.pick(PACKAGES);
                    format!("node_modules/{package}/node_modules/{inner}/{dir}/{stem}{i}.js")
                }
                _ => format!("node_modules/.cache/{package}/{stem}{i}.json"),
            }
        }
        55..73 => {
            let profile = rng.pick(&["debug", "release"]);
            let kind = rng.pick(&["deps", "build", "incremental", ".fingerprint"]);
            let ext = rng.pick(&["rlib", "rmeta", "d", "o"]);
            format!("target/{profile}/{kind}/{stem}-{:016x}.{ext}", rng.next())
        }
        73..81 => {
            let section = rng.pick(&["guide", "reference", "api", "howto", "internals"]);
            match rng.below(5) {
                0 => format!("docs/{section}/index{i}.md"),
                1 => format!("docs/{section}/{stem}{i}.md"),
                2 => format!("docs/_build/html/{section}/{stem}{i}.html"),
                3 => format!("docs/img/{stem}{i}.png"),
                _ => format!("docs/{section}/{stem}{i}.rst"),
            }
        }
        81..89 => {
            let package = rng.pick(PACKAGES);
            match rng.below(5) {
                0 => format!("packages/{package}/src/{stem}{i}.ts"),
                1 => format!("packages/{package}/README{i}.md"),
                2 => format!(
                    "packages/{package}/node_modules/{}/{stem}{i}.js",
                    rng.pick(PACKAGES)
                ),
                3 => format!("packages/{package}/coverage/lcov{i}.info"),
                _ => format!("packages/{package}/dist/{stem}{i}.js"),
            }
        }
        89..95 => {
            let suite = rng.pick(&["unit", "integration", "fixtures", "e2e"]);
            let case = rng.pick(MODULES);
            match rng.below(3) {
                0 => format!("tests/{suite}/{case}/{stem}{i}.golden"),
                1 => format!("tests/{suite}/{case}/{stem}{i}.json"),
                _ => format!("tests/{suite}/{stem}{i}.rs"),
            }
        }
        95..98 => format!(
            ".git/objects/{:02x}/{:038x}.obj",
            rng.below(256),
            rng.next()
        ),
        _ => {
            let root = rng.pick(&[
                "README",
                "CHANGELOG",
                "app",
                "server",
                "debug",
                ".env",
                ".env.example",
                "Cargo",
                "module",
                "notes",
            ]);
            let ext = rng.pick(&["md", "log", "toml", "pyc", "txt", "local"]);
            format!("{root}{i}.{ext}")
        }
    }
}

fn generate_paths(count: usize) -> Vec<String> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    (0..count).map(|i| generate_path(&mut rng, i)).collect()
}

fn patterns() -> Vec<&'static str> {
    DOCKERIGNORE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Writes `files` (each holding its own path) under `root`, with the ignore file and a Dockerfile.
fn make_tree(root: &Path, files: &[String]) {
    fs::write(root.join(".dockerignore"), DOCKERIGNORE).unwrap();
    fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    for rel in files {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, rel.as_bytes()).unwrap();
    }
}

fn dockerignore(c: &mut Criterion) {
    let patterns = patterns();
    assert_eq!(patterns.len(), 20);
    let matcher = PatternMatcher::new(&patterns).unwrap();
    let excluded = |p: &str| matcher.matches_or_parent_matches(p).unwrap();
    // What the patterns mean, so the bench measures real decisions.
    assert!(excluded("node_modules/react/lib/index.js"));
    assert!(!excluded("node_modules/@internal/ui/lib/index.js"));
    assert!(excluded("packages/zod/node_modules/ms/index.js"));
    assert!(excluded("src/api/notes.md"));
    assert!(!excluded("README.md"));
    assert!(!excluded("docs/guide/index.md"));
    assert!(excluded("docs/guide/intro.md"));
    assert!(excluded(".env"));
    assert!(!excluded(".env.example"));
    assert!(!excluded("tests/fixtures/db/case.golden"));
    assert!(excluded("tests/unit/db/case.golden"));

    let paths = generate_paths(MATCH_PATHS);
    let count = paths.iter().filter(|p| excluded(p)).count();
    eprintln!(
        "dockerignore: {} patterns, {} paths, {count} excluded",
        patterns.len(),
        paths.len()
    );
    assert!(count > MATCH_PATHS / 10 && count < MATCH_PATHS * 9 / 10);

    let mut group = c.benchmark_group("dockerignore");
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.sample_size(20);
    group.bench_function("match_100k_paths", |b| {
        b.iter(|| {
            paths
                .iter()
                .filter(|p| matcher.matches_or_parent_matches(black_box(p)).unwrap())
                .count()
        });
    });

    let tmp = tempfile::tempdir().unwrap();
    let files = generate_paths(WALK_FILES);
    make_tree(tmp.path(), &files);
    let context = BuildContext::open(tmp.path(), None).unwrap();
    let walked: Vec<_> = context.walk("").unwrap().map(Result::unwrap).collect();
    let mut walked_files: Vec<&str> = walked
        .iter()
        .filter(|e| e.metadata.is_file())
        .map(|e| e.rel.as_str())
        .filter(|rel| !matches!(*rel, ".dockerignore" | "Dockerfile"))
        .collect();
    walked_files.sort_unstable();
    let mut kept_files: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|p| !excluded(p))
        .collect();
    kept_files.sort_unstable();
    kept_files.dedup();
    // The walk and the matcher must agree on every file.
    assert_eq!(walked_files, kept_files);
    eprintln!(
        "dockerignore: walked tree of {} files: {} entries kept, {} of them files",
        files.len(),
        walked.len(),
        walked_files.len()
    );
    group.throughput(Throughput::Elements(files.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("walk_20k_files", |b| {
        b.iter(|| {
            context
                .walk(black_box(""))
                .unwrap()
                .map(Result::unwrap)
                .count()
        });
    });
    group.finish();
}

criterion_group!(benches, dockerignore);
criterion_main!(benches);
