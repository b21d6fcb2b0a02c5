//! What every test needs: a sandbox with its own store, a way to run kiln and the independent
//! readers, and ways to look at what they produced.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The `example:1.0` reference the example tests name their image with.
pub const EXAMPLE_REF: &str = "example:1.0";

/// A test's private directory: its store, its outputs, and the data directory the default
/// store falls back to, so no test touches the user's real store.
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("kiln-it-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A path inside the sandbox (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The store the tests pass with `--store`.
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// Where the default store lands: `$XDG_DATA_HOME/kiln/store`.
    pub fn xdg_data_home(&self) -> PathBuf {
        self.path("xdg-data")
    }

    /// `kiln` with a clean environment: no inherited `SOURCE_DATE_EPOCH` or `KILN_STORE`, and a
    /// data directory inside the sandbox.
    pub fn kiln(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .env_remove("KILN_STORE")
            .env_remove("KILN_CACHE_DIR")
            .env("XDG_DATA_HOME", self.xdg_data_home())
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `kiln build --store <sandbox store>` followed by `args`.
    pub fn build(&self, args: &[&OsStr]) -> Outcome {
        let mut cmd = self.kiln();
        cmd.arg("build").arg("--store").arg(self.store()).args(args);
        run(&mut cmd)
    }
}

/// What a finished process said.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts exit status 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Outcome {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the exit status and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Outcome {
        assert_eq!(
            self.code, code,
            "unexpected exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The image digest `kiln build` printed: its only stdout line.
    #[track_caller]
    pub fn digest(&self) -> String {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stdout should be the digest alone: {:?}",
            self.stdout
        );
        let digest = lines[0];
        assert!(
            digest.starts_with("sha256:")
                && digest.len() == 71
                && digest[7..].bytes().all(|b| b.is_ascii_hexdigit()),
            "not a digest: {digest:?}"
        );
        digest.to_string()
    }
}

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Outcome {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs an external tool (skopeo, umoci, tar) that must succeed; returns its stdout.
#[track_caller]
pub fn tool(program: &str, args: &[&OsStr]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let out = run(&mut cmd);
    assert_eq!(
        out.code, 0,
        "`{program}` failed: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Parses a tool's JSON output.
#[track_caller]
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A directory of this repository's `testdata`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join(name)
}

/// The shared conformance material: `$KILN_SHARED_DIR`, or the first `shared` directory with a
/// `conformance` folder found walking up from this crate.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        if d.join("shared").join("conformance").is_dir() {
            return d.join("shared");
        }
        dir = d.parent();
    }
    panic!("no shared/conformance above {}", env!("CARGO_MANIFEST_DIR"));
}

/// A `transport:path:ref` argument for skopeo and umoci.
pub fn image_ref(prefix: &str, path: &Path, reference: &str) -> String {
    format!("{prefix}{}:{reference}", path.display())
}

/// The manifest and the raw config blob of `reference` in the OCI layout `dir`, read with
/// skopeo (the manifest) and straight from the blob store (the config, byte for byte).
pub fn manifest_and_config(dir: &Path, reference: &str) -> (Value, Value) {
    let manifest = json(&tool(
        "skopeo",
        crate::args!["inspect", "--raw", image_ref("oci:", dir, reference)],
    ));
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = json(&String::from_utf8(blob(dir, config_digest)).unwrap());
    (manifest, config)
}

/// The bytes of blob `digest` in the OCI layout `dir`.
pub fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(dir.join("blobs").join("sha256").join(hex)).unwrap()
}

/// `umoci unpack`s `reference` from the OCI layout `dir` into `bundle`; returns its rootfs.
pub fn unpack(dir: &Path, reference: &str, bundle: &Path) -> PathBuf {
    tool(
        "umoci",
        crate::args!["unpack", "--image", image_ref("", dir, reference), bundle],
    );
    bundle.join("rootfs")
}

/// One filesystem entry as a user of the image sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// File contents or symlink target; empty for directories.
    pub data: Vec<u8>,
}

/// Every entry under `root`, by path relative to it (`etc/app/config.json`).
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let data = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                rel,
                Node {
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mtime: meta.mtime(),
                    data,
                },
            );
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Copies a directory tree (files, directories, modes), for tests that change a context.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The names recorded in an OCI layout's `index.json` (`org.opencontainers.image.ref.name`),
/// with their manifest digests; empty when the layout has no index.
pub fn index_names(dir: &Path) -> Vec<(Option<String>, String)> {
    let Ok(text) = fs::read_to_string(dir.join("index.json")) else {
        return Vec::new();
    };
    let index = json(&text);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_string),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Shorthand for building argument lists of mixed strings and paths.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$(::std::convert::AsRef::<::std::ffi::OsStr>::as_ref(&$a)),*]
    };
}
