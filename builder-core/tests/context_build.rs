//! The build context: ignore-file selection, `COPY` source resolution, and walks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use builder_core::context::{BuildContext, ContextError, ContextPath, WalkFilter};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A context with a few files, dirs and the given `.dockerignore`.
fn context(ignore: Option<&str>) -> (tempfile::TempDir, BuildContext) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "Dockerfile",
        "a.txt",
        "b.txt",
        "c.md",
        "dir/x.txt",
        "dir/sub/y.txt",
        "dir-b/z.txt",
        "secret/key",
    ] {
        write(root, rel, rel);
    }
    if let Some(ignore) = ignore {
        write(root, ".dockerignore", ignore);
    }
    let context = BuildContext::open(root, None).unwrap();
    (dir, context)
}

fn rels(paths: &[ContextPath]) -> Vec<&str> {
    paths.iter().map(|path| path.rel.as_str()).collect()
}

fn walked(context: &BuildContext, rel: &str) -> Vec<String> {
    context
        .walk(rel)
        .unwrap()
        .map(|entry| entry.unwrap().rel)
        .collect()
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ctx");
    write(&root, "a", "");
    write(&root, "b", "");
    write(&root, ".dockerignore", "a\n");
    // The Dockerfile lives outside the context, with its own ignore file beside it.
    let dockerfile = dir.path().join("build/app.Dockerfile");
    write(dir.path(), "build/app.Dockerfile", "FROM scratch\n");
    write(dir.path(), "build/app.Dockerfile.dockerignore", "b\n");

    let context = BuildContext::open(&root, Some(&dockerfile)).unwrap();
    assert_eq!(
        context.ignore_file(),
        Some(
            dir.path()
                .join("build/app.Dockerfile.dockerignore")
                .as_path()
        )
    );
    assert!(context.is_excluded("b"));
    assert!(!context.is_excluded("a"));

    fs::remove_file(dir.path().join("build/app.Dockerfile.dockerignore")).unwrap();
    let context = BuildContext::open(&root, Some(&dockerfile)).unwrap();
    assert_eq!(
        context.ignore_file(),
        Some(context.root().join(".dockerignore").as_path())
    );
    assert!(context.is_excluded("a"));
    assert!(!context.is_excluded("b"));
}

#[test]
fn default_dockerfile_ignore_file_is_looked_up_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a", "");
    write(dir.path(), ".dockerignore", "x\n");
    write(dir.path(), "Dockerfile.dockerignore", "\u{FEFF}a\r\n");
    let context = BuildContext::open(dir.path(), None).unwrap();
    assert!(
        context
            .ignore_file()
            .unwrap()
            .ends_with("Dockerfile.dockerignore")
    );
    assert!(context.is_excluded("a"));
    assert!(!context.is_excluded("x"));
}

#[test]
fn no_ignore_file() {
    let (_dir, context) = context(None);
    assert_eq!(context.ignore_file(), None);
    assert!(!context.is_excluded("a.txt"));
    assert_eq!(
        walked(&context, "dir"),
        ["dir", "dir/sub", "dir/sub/y.txt", "dir/x.txt"]
    );
}

#[test]
fn invalid_ignore_pattern_is_reported_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", "ok\n!\n");
    let error = BuildContext::open(dir.path(), None).unwrap_err();
    assert!(
        matches!(error, ContextError::IgnoreFile { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(".dockerignore"), "{error}");

    // Accepted by the syntax check but not a valid range: Docker fails when matching; we fail early.
    write(dir.path(), ".dockerignore", "[Local-Only]/\n");
    let error = BuildContext::open(dir.path(), None).unwrap_err();
    assert!(
        matches!(error, ContextError::IgnoreFile { .. }),
        "{error:?}"
    );
}

#[test]
fn wildcard_sources_expand_in_walk_order() {
    let (_dir, context) = context(None);
    let check = |source: &str, expected: &[&str]| {
        let found = context.resolve_source(source).unwrap();
        assert_eq!(rels(&found), expected, "source {source}");
    };
    check("*.txt", &["a.txt", "b.txt"]);
    check("/*.txt", &["a.txt", "b.txt"]);
    check("./?.md", &["c.md"]);
    check("dir/*.txt", &["dir/x.txt"]);
    check("*/*.txt", &["dir/x.txt", "dir-b/z.txt"]);
    check("dir*/*/*.txt", &["dir/sub/y.txt"]);
    // A matched directory is returned whole, not entered.
    check("d*", &["dir", "dir-b"]);
    check("[ab].txt", &["a.txt", "b.txt"]);
    // Escapes count inside a wildcard component; without a wildcard the name is taken literally.
    check("\\a*.txt", &["a.txt"]);
    assert!(context.resolve_source("a\\.txt").is_err());
    check(".", &[""]);
    check("/", &[""]);
    let found = context.resolve_source("a.txt").unwrap();
    assert_eq!(found[0].path, context.root().join("a.txt"));
    assert_eq!(found[0].named, "a.txt");
}

#[test]
fn missing_sources_are_not_found() {
    let (_dir, context) = context(None);
    for source in ["nope", "*.nope", "nope/*.txt", "a.txt/x"] {
        let error = context.resolve_source(source).unwrap_err();
        assert!(
            matches!(
                &error,
                ContextError::NotFound {
                    excluded_by: None,
                    ..
                }
            ),
            "{source}: {error:?}"
        );
    }
    let error = context.resolve_source("nope").unwrap_err();
    assert_eq!(error.to_string(), "`nope` not found in the build context");
}

#[test]
fn bad_wildcard_is_reported() {
    let (_dir, context) = context(None);
    let error = context.resolve_source("a[.txt").unwrap_err();
    assert!(matches!(error, ContextError::BadSource { .. }), "{error:?}");
}

#[test]
fn excluded_sources_say_which_ignore_file() {
    let (_dir, context) = context(Some("*.md\nsecret\nDockerfile\n.dockerignore\n"));
    let ignore_file = context.root().join(".dockerignore");
    for source in ["c.md", "*.md", "secret/key", "Dockerfile", ".dockerignore"] {
        let error = context.resolve_source(source).unwrap_err();
        match &error {
            ContextError::NotFound {
                excluded_by: Some(file),
                ..
            } => assert_eq!(file, &ignore_file),
            other => panic!("{source}: {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            format!(
                "`{source}` not found in the build context: excluded by `{}`",
                ignore_file.display()
            )
        );
    }
    // Only the excluded matches drop out of a wildcard.
    write(context.root(), "d.md", "");
    write(context.root(), "keep.txt", "");
    assert_eq!(
        rels(&context.resolve_source("*.txt").unwrap()),
        ["a.txt", "b.txt", "keep.txt"]
    );
    // The Dockerfile and ignore file are excludable like anything else.
    assert!(context.is_excluded("Dockerfile"));
    assert!(context.is_excluded(".dockerignore"));
    assert!(!walked(&context, "").iter().any(|rel| rel == "Dockerfile"));
}

#[test]
fn sources_outside_the_context_are_refused() {
    let (_dir, context) = context(None);
    for source in ["../x", "..", "dir/../../x", "./../x"] {
        let error = context.resolve_source(source).unwrap_err();
        assert!(
            matches!(error, ContextError::OutsideContext { .. }),
            "{source}: {error:?}"
        );
    }
    // A rooted path cannot climb: `/../a.txt` is `/a.txt`.
    assert_eq!(
        rels(&context.resolve_source("/../a.txt").unwrap()),
        ["a.txt"]
    );
}

#[test]
fn symlinks_are_followed_only_inside_the_context() {
    let (dir, context) = context(None);
    let root = context.root().to_path_buf();
    // Targets that would leave the context are clamped to it.
    write(dir.path(), "../outside-secret", "host file");
    symlink("/etc", root.join("etc-link")).unwrap();
    symlink("../../../../../..", root.join("up")).unwrap();
    symlink("/a.txt", root.join("abs")).unwrap();
    symlink("dir", root.join("dir-link")).unwrap();
    symlink("../outside-secret", root.join("escape")).unwrap();

    let resolved = context.resolve_in_root("etc-link").unwrap();
    assert_eq!(resolved.rel, "etc");
    assert_eq!(resolved.path, root.join("etc"));
    assert!(matches!(
        context.resolve_source("etc-link").unwrap_err(),
        ContextError::NotFound { .. }
    ));
    assert_eq!(context.resolve_in_root("up").unwrap().rel, "");
    assert_eq!(context.resolve_in_root("up/a.txt").unwrap().rel, "a.txt");
    assert_eq!(
        context.resolve_in_root("escape").unwrap().rel,
        "outside-secret"
    );
    assert!(matches!(
        context.resolve_source("escape").unwrap_err(),
        ContextError::NotFound {
            excluded_by: None,
            ..
        }
    ));

    let found = context.resolve_source("abs").unwrap();
    assert_eq!(rels(&found), ["a.txt"]);
    assert_eq!(found[0].named, "abs");
    let found = context.resolve_source("dir-link/x.txt").unwrap();
    assert_eq!(rels(&found), ["dir/x.txt"]);
    let found = context.resolve_source("dir-link/*.txt").unwrap();
    assert_eq!(rels(&found), ["dir/x.txt"]);
    // A link matched by a wildcard is followed.
    let found = context.resolve_source("ab?").unwrap();
    assert_eq!(rels(&found), ["a.txt"]);
}

#[test]
fn symlink_loops_are_reported() {
    let (_dir, context) = context(None);
    symlink("loop2", context.root().join("loop1")).unwrap();
    symlink("loop1", context.root().join("loop2")).unwrap();
    let error = context.resolve_source("loop1").unwrap_err();
    assert!(
        matches!(error, ContextError::TooManySymlinks { .. }),
        "{error:?}"
    );
}

#[test]
fn link_to_an_excluded_file_is_not_found() {
    let (_dir, context) = context(Some("secret\n"));
    symlink("secret/key", context.root().join("key-link")).unwrap();
    let error = context.resolve_source("key-link").unwrap_err();
    assert!(
        matches!(
            error,
            ContextError::NotFound {
                excluded_by: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn walk_skips_excluded_entries_and_reports_links_unfollowed() {
    let (_dir, context) = context(Some("**/*.txt\n!dir/sub/y.txt\nsecret\n"));
    symlink("../secret", context.root().join("dir/secret-link")).unwrap();
    symlink("/", context.root().join("dir/root-link")).unwrap();
    let entries: Vec<_> = context.walk("").unwrap().map(Result::unwrap).collect();
    let names: Vec<&str> = entries.iter().map(|entry| entry.rel.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            ".dockerignore",
            "Dockerfile",
            "c.md",
            "dir",
            "dir/root-link",
            "dir/secret-link",
            "dir/sub",
            "dir/sub/y.txt",
            "dir-b",
        ]
    );
    for entry in &entries {
        let is_link = entry.metadata.file_type().is_symlink();
        assert_eq!(is_link, entry.rel.ends_with("-link"), "{}", entry.rel);
        assert_eq!(entry.path, context.root().join(&entry.rel));
    }
    assert_eq!(walked(&context, "dir/sub"), ["dir/sub", "dir/sub/y.txt"]);
    assert!(walked(&context, "secret").is_empty());
    assert!(walked(&context, "a.txt").is_empty());
}

#[test]
fn excluded_directory_with_reincluded_child_is_reported_before_it() {
    let (_dir, context) = context(Some("dir\n!dir/x.txt\n"));
    assert!(context.is_excluded("dir"));
    assert!(context.is_excluded("dir/sub/y.txt"));
    assert!(context.is_excluded("/dir/sub"));
    assert!(context.is_excluded("./dir/"));
    assert!(!context.is_excluded(""));
    assert!(!context.is_excluded("/"));
    assert!(!context.is_excluded("dir/x.txt"));
    assert_eq!(walked(&context, "dir"), ["dir", "dir/x.txt"]);
    assert_eq!(rels(&context.resolve_source("dir").unwrap()), ["dir"]);
    assert!(context.resolve_source("dir/sub").is_err());
}

#[test]
fn walk_below_a_linked_parent_resolves_it_inside_the_context() {
    let (_dir, context) = context(None);
    symlink("/dir", context.root().join("dir-link")).unwrap();
    assert_eq!(
        walked(&context, "dir-link/sub"),
        ["dir/sub", "dir/sub/y.txt"]
    );
    assert!(matches!(
        context.walk("../x").unwrap_err(),
        ContextError::OutsideContext { .. }
    ));
}

/// What a walk shows of each entry: relative and host path, type, size and inode.
type Described = (String, std::path::PathBuf, bool, bool, u64, u64);

fn described(walk: builder_core::context::Walk<'_>) -> Vec<Described> {
    use std::os::unix::fs::MetadataExt;
    walk.map(|entry| {
        let entry = entry.unwrap();
        let m = &entry.metadata;
        (
            entry.rel,
            entry.path,
            m.is_dir(),
            m.is_symlink(),
            m.len(),
            m.ino(),
        )
    })
    .collect()
}

#[test]
fn prefetched_walks_are_the_walks_and_each_is_handed_out_once() {
    let (_dir, mut context) = context(Some("**/*.txt\n!dir/sub/y.txt\nsecret\n"));
    symlink("../secret", context.root().join("dir/secret-link")).unwrap();
    symlink("/dir", context.root().join("dir-link")).unwrap();
    // Directories (through a link, and by a wildcard), a file, and sources that name nothing
    // or leave the context: only the directories are walked ahead.
    context.prefetch([".", "dir-link/sub", "d*-b", "a.txt", "missing", "../x"]);
    for rel in ["", "dir-link/sub", "dir-b"] {
        let fresh = described(context.walk(rel).unwrap());
        let walk = context.walk_prefetched(rel).unwrap();
        assert!(walk.is_prefetched(), "{rel}");
        assert_eq!(described(walk), fresh, "{rel}");
        assert!(!fresh.is_empty());
        let again = context.walk_prefetched(rel).unwrap();
        assert!(!again.is_prefetched(), "{rel} handed out twice");
        assert_eq!(described(again), fresh, "{rel}");
    }
    assert_eq!(
        described(context.walk("dir/sub").unwrap())
            .iter()
            .map(|d| d.0.as_str())
            .collect::<Vec<_>>(),
        ["dir/sub", "dir/sub/y.txt"]
    );
    let file = context.walk_prefetched("a.txt").unwrap();
    assert!(!file.is_prefetched());
    assert!(matches!(
        context.walk_prefetched("../x").unwrap_err(),
        ContextError::OutsideContext { .. }
    ));
}

#[test]
fn extra_filter_stacks_on_the_ignore_file() {
    let (_dir, context) = context(Some("c.md\n"));
    let none: [&str; 0] = [];
    let copy_exclude = WalkFilter::new(&none, &["*.txt", "!b.txt"]).unwrap();
    let names: Vec<String> = context
        .walk_with("", Some(&copy_exclude))
        .unwrap()
        .map(|entry| entry.unwrap().rel)
        .collect();
    assert!(names.contains(&"b.txt".to_owned()));
    assert!(!names.contains(&"a.txt".to_owned()));
    assert!(!names.contains(&"c.md".to_owned()));
    assert!(names.contains(&"dir/x.txt".to_owned()));
}
