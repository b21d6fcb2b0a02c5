//! Rootless builds: `kiln` run by an ordinary user (`kiln-rootless`, made with subordinate ids
//! by `scripts/install-test-deps.sh`) through `setpriv`. With subordinate ids the image is the
//! one root builds, owners included; without them (`KILN_USERNS=off`) every file is root's.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args;
use crate::common::{Outcome, Sandbox, run, tool, unpack};

const USER: &str = "kiln-rootless";

/// Files owned by a non-root user, unreadable by others (0600 in a 0700 directory), written
/// by that user in a later step, and a deleted base file.
const OWNED: &str = "FROM busybox:latest
RUN mkdir -p /srv/a && echo secret > /srv/a/key && chown -R 1000:1000 /srv/a \\
    && chmod 700 /srv/a && chmod 600 /srv/a/key && rm /bin/true
USER app
WORKDIR /work
RUN id -u > uid && echo more > /srv/a/key2 && cat /srv/a/key > copy
";

/// The user's uid and gid, from `id`; panics with what to run when the user is missing.
fn rootless_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = run(Command::new("id").args([flag, USER]));
        assert_eq!(
            out.code, 0,
            "user `{USER}` is missing: run scripts/install-test-deps.sh as root"
        );
        out.stdout.trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A directory inside `sb` that the rootless user owns: its store (with busybox), context,
/// cache and temporary directory.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(sb: &Sandbox, dockerfile: &str) -> Home {
        let (uid, gid) = rootless_ids();
        // The sandbox itself is private to root; the user must reach its own directory.
        let top = sb.path("");
        fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).unwrap();
        let dir = sb.path("rootless");
        for sub in ["ctx", "tmp", "out"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
        copy_busybox(&dir.join("store"));
        tool("chown", args!["-R", format!("{uid}:{gid}"), &dir]);
        Home { dir }
    }

    /// `kiln ARGS` as the rootless user, with its own cache, data and temporary directories.
    fn kiln(&self, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Outcome {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", USER, "--regid", USER, "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("TMPDIR", self.dir.join("tmp"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .current_dir(&self.dir);
        run(&mut cmd)
    }

    fn build(&self, isolation: &str, env: &[(&str, &str)]) -> Outcome {
        self.kiln(
            args![
                "build",
                "-q",
                "--no-cache",
                "--isolation",
                isolation,
                "--store",
                self.dir.join("store"),
                "--source-date-epoch",
                "1700000000",
                "-t",
                "owned:1",
                "--output",
                format!(
                    "type=oci,dest={}",
                    self.dir.join("out").join(isolation).display()
                ),
                self.dir.join("ctx")
            ],
            env,
        )
    }
}

/// The offline busybox base, as `busybox:latest` in the OCI layout `store`.
fn copy_busybox(store: &Path) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry/busybox-layout.sh");
    let out = run(Command::new("bash").arg(&script)).success();
    tool(
        "skopeo",
        args![
            "copy",
            "--quiet",
            format!("oci:{}:busybox:latest", out.stdout.trim()),
            format!("oci:{}:busybox:latest", store.display())
        ],
    );
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn with_subordinate_ids_a_rootless_build_gives_roots_image_owners_included() {
    if !is_root() {
        eprintln!("skipped: setpriv to another user needs root");
        return;
    }
    let sb = Sandbox::new();
    let home = Home::new(&sb, OWNED);

    // Root's build is the reference.
    copy_busybox(&sb.store());
    let reference = sb
        .build(args![
            "-q",
            "--no-cache",
            "--cache-dir",
            sb.path("root-cache"),
            "--source-date-epoch",
            "1700000000",
            "-t",
            "owned:1",
            "--output",
            format!("type=oci,dest={}", sb.path("root-out").display()),
            home.dir.join("ctx")
        ])
        .success()
        .digest();

    for isolation in ["namespace", "chroot"] {
        let built = home.build(isolation, &[]).success().digest();
        assert_eq!(
            built, reference,
            "rootless {isolation} build differs from root's"
        );
    }

    // What both gave: the owners the steps set, and the user's own files.
    let root = unpack(&sb.path("root-out"), "owned:1", &sb.path("bundle"));
    let key = fs::metadata(root.join("srv/a/key")).unwrap();
    assert_eq!(
        (key.uid(), key.gid(), key.mode() & 0o7777),
        (1000, 1000, 0o600)
    );
    let key2 = fs::metadata(root.join("srv/a/key2")).unwrap();
    assert_eq!((key2.uid(), key2.gid()), (1000, 1000));
    assert_eq!(fs::read_to_string(root.join("work/uid")).unwrap(), "1000\n");
    assert_eq!(
        fs::read_to_string(root.join("work/copy")).unwrap(),
        "secret\n"
    );
    assert!(!root.join("bin/true").exists());

    // Nothing is left in the temporary directory, though the steps' files belonged to
    // subordinate ids the user cannot remove from outside the namespace.
    let left: Vec<_> = fs::read_dir(home.dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The unpacked layers hold files of subordinate ids; `kiln cache prune` (entering the
    // namespace too) removes them.
    let layers = home.dir.join("cache/kiln/layers");
    let unpacked = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count()
    };
    assert!(unpacked(&layers) >= 3, "base and the two RUN layers");
    home.kiln(args!["cache", "prune"], &[]).success();
    assert_eq!(unpacked(&layers), 0);
}

#[test]
fn without_subordinate_ids_a_rootless_build_maps_only_the_caller() {
    if !is_root() {
        eprintln!("skipped: setpriv to another user needs root");
        return;
    }
    let sb = Sandbox::new();
    let home = Home::new(
        &sb,
        "FROM busybox:latest\nRUN echo hi > /hi && id -u > /who\n",
    );
    let off = [("KILN_USERNS", "off")];
    home.build("namespace", &off).success();
    let root = unpack(
        &home.dir.join("out/namespace"),
        "owned:1",
        &sb.path("bundle"),
    );
    assert_eq!(fs::read_to_string(root.join("who")).unwrap(), "0\n");
    let hi = fs::metadata(root.join("hi")).unwrap();
    assert_eq!(
        (hi.uid(), hi.gid()),
        (0, 0),
        "the caller's files are root's"
    );

    // Giving a file to another user needs ids the namespace does not have.
    fs::write(
        home.dir.join("ctx/Dockerfile"),
        "FROM busybox:latest\nRUN touch /f && chown 1000 /f\n",
    )
    .unwrap();
    let failed = home.build("namespace", &off).code(1);
    assert!(
        failed.stderr.contains("RUN at") && failed.stderr.contains("chown"),
        "{}",
        failed.stderr
    );
}
