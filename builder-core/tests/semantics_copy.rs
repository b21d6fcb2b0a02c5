//! COPY, ADD and WORKDIR through a whole build, checked in the layers written: where files land,
//! with which owner, mode and type, as Docker's reference and BuildKit's copy describe.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod semantics_support;

use std::io::Write;

use semantics_support::{Ctx, args};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";

fn with_users(ctx: &Ctx) -> &Ctx {
    ctx.file("etc/passwd", PASSWD).file("etc/group", GROUP)
}

const USERS: &str = "FROM scratch\nCOPY etc/passwd etc/group /etc/\n";

// ---------------------------------------------------------------------------------------------
// Destinations

#[test]
fn copy_to_dot_dir_slash_and_file() {
    let ctx = Ctx::new();
    ctx.file("x.txt", "x");
    let b = ctx.build_ok(
        "FROM scratch\nWORKDIR /app\nCOPY x.txt .\nCOPY x.txt dir/\nCOPY x.txt file\nCOPY x.txt /abs\n",
    );
    assert_eq!(b.get("app/x.txt").text(), "x");
    assert_eq!(b.get("app/dir/x.txt").text(), "x");
    assert_eq!(b.get("app/file").kind, 'f');
    assert_eq!(b.get("app/file").text(), "x");
    assert_eq!(b.get("abs").text(), "x");
    assert_eq!(b.get("app/dir").kind, 'd');
}

#[test]
fn copy_into_an_existing_directory_without_slash() {
    let ctx = Ctx::new();
    ctx.file("x.txt", "x").file("d/keep", "k");
    let b = ctx.build_ok("FROM scratch\nCOPY d /data\nCOPY x.txt /data\n");
    assert_eq!(b.get("data/x.txt").text(), "x");
    assert_eq!(b.last_paths(), ["data", "data/x.txt"]);
}

#[test]
fn directory_sources_copy_their_contents() {
    let ctx = Ctx::new();
    ctx.file("src/a", "a").file("src/sub/b", "b");
    let b = ctx.build_ok("FROM scratch\nCOPY src /dst\nCOPY src/ /dst2/\n");
    assert_eq!(b.paths(0), ["dst", "dst/a", "dst/sub", "dst/sub/b"]);
    assert_eq!(b.paths(1), ["dst2", "dst2/a", "dst2/sub", "dst2/sub/b"]);
}

#[test]
fn missing_parents_are_created() {
    let ctx = Ctx::new();
    ctx.file("x", "x");
    let b = ctx.build_ok("FROM scratch\nCOPY x /a/b/c/x\n");
    assert_eq!(b.paths(0), ["a", "a/b", "a/b/c", "a/b/c/x"]);
    for d in ["a", "a/b", "a/b/c"] {
        let e = b.get(d);
        assert_eq!((e.kind, e.mode, e.uid, e.gid), ('d', 0o755, 0, 0), "{d}");
    }
}

#[test]
fn several_sources_need_a_directory_destination() {
    let ctx = Ctx::new();
    ctx.file("a", "a").file("b", "b");
    let e = ctx.build_err("FROM scratch\nCOPY a b /dest\n");
    assert!(
        e.contains("when using COPY with more than one source file, the destination must be a directory and end with a /"),
        "{e}"
    );
    let b = ctx.build_ok("FROM scratch\nCOPY a b /dest/\n");
    assert_eq!(b.paths(0), ["dest", "dest/a", "dest/b"]);
}

#[test]
fn wildcards_follow_go_filepath_match() {
    let ctx = Ctx::new();
    ctx.file("a1.txt", "1")
        .file("a2.txt", "2")
        .file("ab.txt", "b")
        .file("b.md", "m")
        .file("arr[0].txt", "arr")
        .file("d/x.txt", "dx");
    let b = ctx.build_ok(
        "FROM scratch\nCOPY a?.txt /q/\nCOPY a[0-9].txt /r/\nCOPY arr[[]0].txt /esc/\nCOPY */x.txt /deep/\n",
    );
    assert_eq!(b.paths(0), ["q", "q/a1.txt", "q/a2.txt", "q/ab.txt"]);
    assert_eq!(b.paths(1), ["r", "r/a1.txt", "r/a2.txt"]);
    assert_eq!(b.paths(2), ["esc", "esc/arr[0].txt"]);
    assert_eq!(b.paths(3), ["deep", "deep/x.txt"]);
}

#[test]
fn a_wildcard_matching_nothing_is_not_an_error() {
    // BuildKit copies with AllowEmptyWildcard: no match, nothing copied.
    let ctx = Ctx::new();
    ctx.file("a", "a");
    let b = ctx.build_ok("FROM scratch\nCOPY *.none a /d/\n");
    assert_eq!(b.paths(0), ["d", "d/a"]);
    let b =
        ctx.build_ok("FROM scratch AS s\nCOPY a /a\nFROM scratch\nCOPY --from=s /*.none /a /d/\n");
    assert_eq!(b.last_paths(), ["d", "d/a"]);
    let e = ctx.build_err("FROM scratch\nCOPY missing /d/\n");
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn sources_outside_the_context_are_refused() {
    // BuildKit clamps `../something` to `something`; kiln names the mistake instead.
    let ctx = Ctx::new();
    ctx.file("something", "s");
    let e = ctx.build_err("FROM scratch\nCOPY ../something /one\n");
    assert!(
        e.contains("`../something` is outside the build context"),
        "{e}"
    );
    let b = ctx.build_ok("FROM scratch\nCOPY /something ./two\nCOPY a/../something ./three\n");
    assert_eq!(b.get("two").text(), "s");
    assert_eq!(b.get("three").text(), "s");
}

// ---------------------------------------------------------------------------------------------
// Owners and modes

#[test]
fn context_files_are_root_owned_and_keep_their_mode() {
    let ctx = Ctx::new();
    ctx.file("run.sh", "#!/bin/sh\n").mode("run.sh", 0o750);
    ctx.dir("d", 0o700).file("d/f", "f");
    let b = ctx.build_ok("FROM scratch\nCOPY run.sh /bin/\nCOPY d /d\n");
    let e = b.get("bin/run.sh");
    assert_eq!((e.mode, e.uid, e.gid), (0o750, 0, 0));
    assert_eq!(b.get("d").mode, 0o700);
}

#[test]
fn chown_numeric_and_names() {
    let ctx = Ctx::new();
    with_users(&ctx).file("f", "f");
    let b = ctx.build_ok(&format!(
        "{USERS}COPY --chown=10:11 f /n/\nCOPY --chown=7 f /u/\nCOPY --chown=app:staff f /ng/\n\
         COPY --chown=1000:app f /ug/\nCOPY --chown=app f /name/\nCOPY --chown=root f /root/\n"
    ));
    let owner = |p: &str| {
        let e = b.get(p);
        (e.uid, e.gid)
    };
    assert_eq!(owner("n/f"), (10, 11));
    // A uid alone: the gid is the same number.
    assert_eq!(owner("u/f"), (7, 7));
    assert_eq!(owner("ng/f"), (1000, 50));
    assert_eq!(owner("ug/f"), (1000, 1001));
    // A user name alone: BuildKit takes the user's primary group from /etc/passwd.
    assert_eq!(owner("name/f"), (1000, 1001));
    assert_eq!(owner("root/f"), (0, 0));
    // Missing parents of the destination belong to the --chown owner too.
    assert_eq!(owner("n"), (10, 11));
}

#[test]
fn chown_root_needs_no_passwd() {
    let ctx = Ctx::new();
    ctx.file("f", "f");
    let b = ctx.build_ok("FROM scratch\nCOPY --chown=root:root f /f\n");
    assert_eq!((b.get("f").uid, b.get("f").gid), (0, 0));
}

#[test]
fn chown_unknown_name_fails() {
    let ctx = Ctx::new();
    with_users(&ctx).file("f", "f");
    let e = ctx.build_err(&format!("{USERS}COPY --chown=nobody f /f\n"));
    assert!(e.contains("nobody"), "{e}");
}

#[test]
fn chmod_applies_to_files_and_directories() {
    let ctx = Ctx::new();
    ctx.file("d/a", "a").file("d/s/b", "b").file("f", "f");
    let b = ctx.build_ok("FROM scratch\nCOPY --chmod=750 d /d\nCOPY --chmod=0600 f /f\n");
    assert_eq!(b.get("d").mode, 0o750);
    assert_eq!(b.get("d/a").mode, 0o750);
    assert_eq!(b.get("d/s").mode, 0o750);
    assert_eq!(b.get("f").mode, 0o600);
}

#[test]
fn copy_from_a_stage_keeps_owners() {
    let ctx = Ctx::new();
    with_users(&ctx).file("f", "f");
    let b = ctx.build_ok(&format!(
        "{USERS}COPY --chown=app f /owned/f\nFROM scratch\nCOPY --from=0 /owned /o\nCOPY --from=0 /owned/f /x\n"
    ));
    assert_eq!((b.get("o/f").uid, b.get("o/f").gid), (1000, 1001));
    assert_eq!((b.get("x").uid, b.get("x").gid), (1000, 1001));
}

// ---------------------------------------------------------------------------------------------
// Links, excludes, parents, heredocs

#[test]
fn hardlinks_stay_hardlinks_and_symlinks_stay_symlinks() {
    let ctx = Ctx::new();
    ctx.file("d/one", "shared")
        .hardlink("d/two", "d/one")
        .symlink("d/link", "one")
        .symlink("d/abs", "/etc/passwd");
    let b = ctx.build_ok("FROM scratch\nCOPY d /d\n");
    let two = b.get("d/two");
    assert_eq!(two.kind, 'h');
    assert_eq!(two.link.as_deref(), Some("d/one"));
    assert_eq!(b.get("d/link").kind, 'l');
    assert_eq!(b.get("d/link").link.as_deref(), Some("one"));
    assert_eq!(b.get("d/abs").link.as_deref(), Some("/etc/passwd"));
}

#[test]
fn a_symlink_source_is_followed() {
    let ctx = Ctx::new();
    ctx.file("real", "content").symlink("alias", "real");
    let b = ctx.build_ok("FROM scratch\nCOPY alias /d/\n");
    assert_eq!(b.get("d/alias").kind, 'f');
    assert_eq!(b.get("d/alias").text(), "content");
}

#[test]
fn exclude_patterns_apply_inside_each_source() {
    let ctx = Ctx::new();
    ctx.file("dir1/a.png", "")
        .file("dir1/b.txt", "")
        .file("dir2/c.png", "")
        .file("dir2/d.pdf", "");
    let b =
        ctx.build_ok("FROM scratch\nCOPY --exclude=*/*.png . /1\nCOPY --exclude=*.png dir* /2/\n");
    assert_eq!(
        b.paths(0),
        ["1", "1/dir1", "1/dir1/b.txt", "1/dir2", "1/dir2/d.pdf"]
    );
    assert_eq!(b.paths(1), ["2", "2/b.txt", "2/d.pdf"]);
}

#[test]
fn parents_keep_the_source_directories() {
    let ctx = Ctx::new();
    ctx.file("x/a.txt", "xa")
        .file("y/a.txt", "ya")
        .file("x/y/b.txt", "b");
    let b = ctx.build_ok(
        "FROM scratch\nCOPY ./x/a.txt ./y/a.txt /no_parents/\nCOPY --parents ./x/a.txt ./y/a.txt /parents/\n\
         COPY --parents ./x/./y/*.txt /pivot/\n",
    );
    assert_eq!(b.get("no_parents/a.txt").text(), "ya");
    assert_eq!(b.get("parents/x/a.txt").text(), "xa");
    assert_eq!(b.get("parents/y/a.txt").text(), "ya");
    assert_eq!(b.get("pivot/y/b.txt").text(), "b");
    assert!(b.find("pivot/x").is_none());
}

#[test]
fn heredoc_copy_expands_unless_quoted() {
    let ctx = Ctx::new();
    let b = ctx.build_ok(
        "FROM scratch\nARG NAME=kiln\nCOPY <<EOF /hello\nhi \"$NAME\"\nEOF\nCOPY <<'EOF' /raw\nhi $NAME\nEOF\n\
         COPY --chmod=755 <<run.sh /bin/\n#!/bin/sh\nEOF\nrun.sh\n",
    );
    assert_eq!(b.get("hello").text(), "hi \"kiln\"\n");
    assert_eq!(b.get("hello").mode, 0o644);
    assert_eq!(b.get("raw").text(), "hi $NAME\n");
    assert_eq!(b.get("bin/run.sh").mode, 0o755);
}

// ---------------------------------------------------------------------------------------------
// ADD

fn tar_bytes() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o640);
    h.set_uid(33);
    h.set_gid(44);
    h.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut h, "pkg/file.txt", &b"hello"[..])
        .unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn add_extracts_local_archives() {
    let ctx = Ctx::new();
    let plain = tar_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&plain).unwrap();
    ctx.file("a.tar", &plain)
        .file("a.tgz", gz.finish().unwrap())
        .file("a.tbz", bz.finish().unwrap())
        .file("a.txz", xz.finish().unwrap());
    let b = ctx
        .build_ok("FROM scratch\nADD a.tar /plain\nADD a.tgz /gz/\nADD a.tbz /bz\nADD a.txz /xz\n");
    for d in ["plain", "gz", "bz", "xz"] {
        let e = b.get(&format!("{d}/pkg/file.txt"));
        assert_eq!(e.text(), "hello", "{d}");
        assert_eq!((e.mode, e.uid, e.gid), (0o640, 33, 44), "{d}");
    }
}

#[test]
fn add_copies_other_files_as_they_are() {
    let ctx = Ctx::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"not a tar").unwrap();
    let gz = gz.finish().unwrap();
    ctx.file("notes.txt.gz", &gz).file("plain.txt", "p");
    let b = ctx.build_ok("FROM scratch\nADD notes.txt.gz plain.txt /d/\n");
    assert_eq!(b.get("d/notes.txt.gz").data, gz);
    assert_eq!(b.get("d/plain.txt").text(), "p");
}

#[test]
fn add_from_a_url_is_a_clear_error() {
    let ctx = Ctx::new();
    let e = ctx.build_err("FROM scratch\nADD https://example.com/x.tar.gz /x\n");
    assert!(e.contains("ADD from a URL"), "{e}");
    assert!(e.contains("https://example.com/x.tar.gz"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// WORKDIR

#[test]
fn workdir_is_created_for_the_user_only_when_missing() {
    let ctx = Ctx::new();
    with_users(&ctx);
    let b = ctx.build_ok(&format!(
        "{USERS}USER app\nWORKDIR /home/app/work\nWORKDIR /etc\nUSER 7:8\nWORKDIR rel\n"
    ));
    // /etc exists: that WORKDIR adds no layer.
    assert_eq!(b.layers.len(), 3);
    assert_eq!(b.paths(1), ["home", "home/app", "home/app/work"]);
    for p in ["home", "home/app", "home/app/work"] {
        let e = b.get(p);
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid),
            ('d', 0o755, 1000, 1001),
            "{p}"
        );
    }
    let rel = b.get("etc/rel");
    assert_eq!((rel.uid, rel.gid), (7, 8));
    assert_eq!(b.cfg()["WorkingDir"], "/etc/rel");
}

#[test]
fn workdir_for_a_user_the_image_does_not_know_is_root_owned() {
    // BuildKit's mkdir falls back to 0:0 when the name is not in /etc/passwd.
    let ctx = Ctx::new();
    let b = ctx.build_ok("FROM scratch\nUSER nobody\nWORKDIR /w\n");
    let e = b.get("w");
    assert_eq!((e.uid, e.gid), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Stages and the config, end to end

#[test]
fn unneeded_stages_are_not_built() {
    let ctx = Ctx::new();
    ctx.file("a", "a");
    let b = ctx.build_ok(
        "FROM scratch AS broken\nCOPY does-not-exist /\nFROM scratch AS good\nCOPY a /a\n",
    );
    assert_eq!(b.get("a").text(), "a");
    let e = ctx
        .build_with(
            "FROM scratch AS broken\nCOPY does-not-exist /\nFROM scratch AS good\nCOPY a /a\n",
            |o| o.plan.target = Some("broken".into()),
        )
        .err()
        .map(|e| semantics_support::chain(&e))
        .unwrap();
    assert!(e.contains("does-not-exist"), "{e}");
}

#[test]
fn onbuild_copy_runs_in_the_child_build() {
    let ctx = Ctx::new();
    ctx.file("trig", "t");
    let b = ctx.build_ok("FROM scratch AS base\nONBUILD COPY trig /trig\nFROM base\nLABEL x=y\n");
    assert_eq!(b.get("trig").text(), "t");
    assert!(b.cfg().get("OnBuild").is_none(), "{}", b.cfg());
}

#[test]
fn image_config_and_history() {
    let ctx = Ctx::new();
    ctx.file("a", "a");
    let b = ctx
        .build_with(
            "ARG V=1\nFROM scratch\nARG V\nENV E=$V\nCOPY a /a\nCMD [\"/a\"]\n",
            |o| {
                o.plan.build_args = args(&["V=2"]);
                o.plan.labels = args(&["org.example=yes"]);
            },
        )
        .unwrap();
    assert_eq!(
        b.env(),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "E=2"
        ]
    );
    assert_eq!(b.cfg()["Labels"]["org.example"], "yes");
    assert_eq!(b.config["architecture"], "amd64");
    assert_eq!(
        b.history(),
        ["ARG V=2", "ENV E=2", "COPY a /a", "CMD [\"/a\"]"]
    );
}
