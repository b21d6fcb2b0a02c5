//! Shared helpers for the `semantics_*` tests: a build context in a temp dir, a build through
//! the library API into an OCI layout, and readers for the config and layer tars it wrote.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use builder_core::build::{BuildError, BuildOptions, build};
use builder_core::diag::SourceFile;
use builder_core::export::Output;
use builder_core::oci::{ImageConfig, Platform, Reference};
use builder_core::plan::{ImageResolver, Plan, PlanError, PlanOptions};
use serde_json::Value;

/// A build context directory (under `root/ctx`), with room for the store and the output.
pub struct Ctx {
    dir: tempfile::TempDir,
}

impl Ctx {
    pub fn new() -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("ctx")).unwrap();
        Ctx { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> &Ctx {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    pub fn dir(&self, rel: &str, mode: u32) -> &Ctx {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn mode(&self, rel: &str, mode: u32) -> &Ctx {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Ctx {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }

    pub fn hardlink(&self, rel: &str, existing: &str) -> &Ctx {
        fs::hard_link(self.path(existing), self.path(rel)).unwrap();
        self
    }

    /// Builds `dockerfile` with this context; `tweak` adjusts the options.
    pub fn build_with(
        &self,
        dockerfile: &str,
        tweak: impl FnOnce(&mut BuildOptions),
    ) -> Result<Built, BuildError> {
        let df = self.dir.path().join("Dockerfile");
        fs::write(&df, dockerfile).unwrap();
        let out = self.dir.path().join(format!(
            "out-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut options = BuildOptions::new(self.root());
        options.dockerfile = Some(df);
        options.store_dir = self.dir.path().join("store");
        options.layers_dir = self.dir.path().join("layers");
        options.cache.dir = Some(self.dir.path().join("build-cache"));
        options.outputs = vec![Output::OciDir(out.clone())];
        options.plan.platform = "linux/amd64".parse().unwrap();
        options.plan.build_platform = "linux/arm64/v8".parse().unwrap();
        tweak(&mut options);
        let report = build(&options, &|_| {})?;
        Ok(Built::read(&out, report.warnings))
    }

    pub fn build(&self, dockerfile: &str) -> Result<Built, BuildError> {
        self.build_with(dockerfile, |_| {})
    }

    pub fn build_ok(&self, dockerfile: &str) -> Built {
        match self.build(dockerfile) {
            Ok(b) => b,
            Err(e) => panic!("build failed: {}", chain(&e)),
        }
    }

    /// The full error text (message and causes) of a failing build.
    pub fn build_err(&self, dockerfile: &str) -> String {
        match self.build(dockerfile) {
            Ok(_) => panic!("build succeeded, expected an error"),
            Err(e) => chain(&e),
        }
    }
}

/// An error and its causes joined by `: `.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One entry of a layer tar.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub path: String,
    /// `f` file, `d` dir, `l` symlink, `h` hardlink, `c`/`b` devices, `p` fifo.
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

impl TarEntry {
    pub fn text(&self) -> String {
        String::from_utf8(self.data.clone()).unwrap()
    }
}

/// What a build wrote: the config and each layer's entries.
pub struct Built {
    pub config: Value,
    pub layers: Vec<Vec<TarEntry>>,
    pub warnings: Vec<String>,
}

impl Built {
    fn read(dir: &Path, warnings: Vec<String>) -> Built {
        let blob = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
        };
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        let desc = manifests.last().unwrap();
        let manifest: Value =
            serde_json::from_slice(&blob(desc["digest"].as_str().unwrap())).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().unwrap() {
            let bytes = blob(l["digest"].as_str().unwrap());
            let media = l["mediaType"].as_str().unwrap();
            let raw: Vec<u8> = if media.ends_with("gzip") {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            } else {
                assert!(media.ends_with("tar"), "unexpected media type {media}");
                bytes
            };
            layers.push(read_tar(&raw));
        }
        Built {
            config,
            layers,
            warnings,
        }
    }

    /// The container config (`config` in the image config).
    pub fn cfg(&self) -> &Value {
        &self.config["config"]
    }

    /// The entry at `path` (no leading slash) in the last layer that has it.
    pub fn find(&self, path: &str) -> Option<&TarEntry> {
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.iter().find(|e| e.path.trim_end_matches('/') == path))
    }

    pub fn get(&self, path: &str) -> &TarEntry {
        self.find(path).unwrap_or_else(|| {
            panic!(
                "no `{path}` in the image; layers: {:?}",
                self.layers
                    .iter()
                    .map(|l| l.iter().map(|e| e.path.clone()).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Paths of layer `i`, without trailing slashes.
    pub fn paths(&self, i: usize) -> Vec<String> {
        self.layers[i]
            .iter()
            .map(|e| e.path.trim_end_matches('/').to_string())
            .collect()
    }

    /// Paths of the last layer.
    pub fn last_paths(&self) -> Vec<String> {
        self.paths(self.layers.len() - 1)
    }

    pub fn env(&self) -> Vec<String> {
        strings(&self.cfg()["Env"])
    }

    pub fn history(&self) -> Vec<String> {
        self.config["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn read_tar(raw: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(raw);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            other => panic!("unexpected entry type {other:?}"),
        };
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            path,
            kind,
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            data,
        });
    }
    out
}

/// Base images for plan-level tests, by familiar name.
#[derive(Default)]
pub struct FakeImages {
    pub images: BTreeMap<String, ImageConfig>,
}

impl ImageResolver for FakeImages {
    fn image_config(
        &self,
        image: &Reference,
        platform: &Platform,
    ) -> Result<ImageConfig, Box<dyn std::error::Error + Send + Sync>> {
        match self.images.get(&image.familiar()) {
            Some(c) => Ok(c.clone()),
            None if image.familiar().starts_with("any") => Ok(ImageConfig::scratch(platform)),
            None => Err(format!("no image `{}`", image.familiar()).into()),
        }
    }
}

/// Plans `dockerfile` with `tweak`ed options against `images`.
pub fn plan_with(
    dockerfile: &str,
    images: &FakeImages,
    tweak: impl FnOnce(&mut PlanOptions),
) -> Result<Plan, PlanError> {
    let parsed =
        builder_core::dockerfile::parse(SourceFile::new("Dockerfile", dockerfile)).unwrap();
    let mut options = PlanOptions {
        platform: "linux/amd64".parse().unwrap(),
        build_platform: "linux/arm64/v8".parse().unwrap(),
        ..PlanOptions::default()
    };
    tweak(&mut options);
    builder_core::plan::plan(&parsed, &options, images)
}

pub fn plan(dockerfile: &str) -> Plan {
    plan_with(dockerfile, &FakeImages::default(), |_| {}).unwrap()
}

pub fn plan_err(dockerfile: &str) -> String {
    match plan_with(dockerfile, &FakeImages::default(), |_| {}) {
        Ok(_) => panic!("planning succeeded, expected an error"),
        Err(e) => chain(&e),
    }
}

/// `--build-arg`s from `K=V` strings.
pub fn args(kvs: &[&str]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}
