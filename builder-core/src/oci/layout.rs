//! OCI image layouts: the local image store, and the `type=oci` output.
//!
//! Writes never leave a half-written file under a final name: blobs are written to a temporary
//! file inside `blobs/sha256/` and renamed to their digest once complete, and `index.json` is
//! replaced by rename. A build that fails part way leaves at most unreferenced blobs behind, never
//! an index entry pointing at an incomplete image.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use tempfile::NamedTempFile;

use super::media::ANNOTATION_REF_NAME;
use super::tail::{BlobTail, TrackedFile};
use super::{Digest, DigestWriter};

/// Errors reading or writing an OCI layout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file or directory of the layout could not be read or written.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `index.json` or `oci-layout` is not valid.
    #[error("`{path}` is not a valid OCI layout file")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The directory exists, has other files in it, and is not an OCI layout.
    #[error("`{0}` exists and is not an OCI image layout; choose an empty or new directory")]
    NotALayout(PathBuf),
    /// There is nothing at the layout's path.
    #[error("there is no OCI image layout at `{0}`")]
    Missing(PathBuf),
    /// A blob was missing.
    #[error("blob `{digest}` is missing from `{layout}`")]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// The layout's directory.
        layout: PathBuf,
    },
    /// What was written does not have the digest it was expected to have.
    #[error("blob written to `{layout}` has digest `{actual}`, expected `{expected}`")]
    DigestMismatch {
        /// The expected digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// The layout's directory.
        layout: PathBuf,
    },
}

type Result<T, E = LayoutError> = std::result::Result<T, E>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`).
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

/// The content of the `oci-layout` marker file.
const OCI_LAYOUT_MARKER: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

impl OciLayout {
    /// Opens the layout at `root`, creating it (and its parents) when missing. A directory that
    /// exists, is not empty and has no `oci-layout` file is refused, so kiln never writes into a
    /// user's unrelated directory.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        let layout = OciLayout { root };
        // Several builds may create the same store at once: decide and write under the lock.
        let _lock = layout.lock()?;
        let marker = layout.root.join("oci-layout");
        if !marker.exists() {
            let mut entries =
                fs::read_dir(&layout.root).map_err(io_err("read directory", &layout.root))?;
            if entries.next().is_some() {
                return Err(LayoutError::NotALayout(layout.root));
            }
        }
        // The marker first: a creation cut short must still be recognised as a layout next time.
        if !marker.exists() {
            layout.replace_file(&marker, OCI_LAYOUT_MARKER.as_bytes())?;
        }
        let blobs = layout.root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err("create directory", &blobs))?;
        if !layout.index_path().exists() {
            layout.write_index(&empty_index())?;
        }
        Ok(layout)
    }

    /// An exclusive lock on the layout, held until the returned file is dropped: it serialises
    /// changes to `index.json` between processes sharing a store.
    fn lock(&self) -> Result<File> {
        let dir = File::open(&self.root).map_err(io_err("open", &self.root))?;
        dir.lock().map_err(io_err("lock", &self.root))?;
        Ok(dir)
    }

    /// Opens an existing layout without creating anything.
    pub fn open(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let root = root.into();
        let marker = root.join("oci-layout");
        if !root.exists() {
            return Err(LayoutError::Missing(root));
        }
        if !marker.is_file() {
            return Err(LayoutError::NotALayout(root));
        }
        Ok(OciLayout { root })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether blob `digest` is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens blob `digest` for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                LayoutError::MissingBlob {
                    digest: digest.clone(),
                    layout: self.root.clone(),
                }
            } else {
                LayoutError::Io {
                    action: "open",
                    path,
                    source,
                }
            }
        })
    }

    /// Reads a small blob (a manifest or config) whole.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let path = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(LayoutError::DigestMismatch {
                expected: digest.clone(),
                actual,
                layout: self.root.clone(),
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes)
            .map_err(io_err("write", &self.root.join("blobs")))?;
        Ok(w.commit()?.0)
    }

    /// A writer for a blob whose digest is known only at the end (a layer being compressed).
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("blobs").join("sha256");
        let file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err("create a temporary file in", &dir))?;
        Ok(BlobWriter {
            layout: self.clone(),
            inner: DigestWriter::new(BufWriter::new(TrackedFile::new(file))),
            hashing: true,
            written: 0,
        })
    }

    /// A writer for a blob whose writer hashes what it writes itself (a layer: see
    /// [`crate::layer::write_layer`]), committed with [`BlobWriter::commit_as`]; it does not
    /// hash the bytes a second time.
    pub fn blob_writer_hashed_by_caller(&self) -> Result<BlobWriter> {
        let mut writer = self.blob_writer()?;
        writer.hashing = false;
        Ok(writer)
    }

    /// Copies blob `digest` from `other` (a hard link when both are on one file system).
    pub fn copy_blob_from(&self, other: &OciLayout, digest: &Digest) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let src = other.blob_path(digest);
        let dst = self.blob_path(digest);
        if fs::hard_link(&src, &dst).is_ok() {
            return Ok(());
        }
        let mut reader = other.open_blob(digest)?;
        let mut w = self.blob_writer()?;
        io::copy(&mut reader, &mut w).map_err(io_err("copy", &src))?;
        w.commit_expecting(digest)?;
        Ok(())
    }

    /// The parsed `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path,
            source: Box::new(e),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec(index).map_err(|e| LayoutError::Invalid {
            path: self.index_path(),
            source: Box::new(e),
        })?;
        self.replace_file(&self.index_path(), &bytes)
    }

    /// Records `manifest` in `index.json`, named by each of `ref_names`
    /// (`org.opencontainers.image.ref.name`); any entry already carrying one of those names loses
    /// it. With no names, the manifest is added unnamed unless already present.
    pub fn add_manifest(&self, manifest: &Descriptor, ref_names: &[String]) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| {
                let name = ref_name(d);
                !name.is_some_and(|n| ref_names.iter().any(|r| r == n))
            })
            .cloned()
            .collect();
        if ref_names.is_empty() {
            let present = manifests
                .iter()
                .any(|d| d.digest() == manifest.digest() && ref_name(d).is_none());
            if !present {
                manifests.push(manifest.clone());
            }
        }
        for name in ref_names {
            let mut d = manifest.clone();
            d.set_annotations(Some(HashMap::from([(
                ANNOTATION_REF_NAME.to_string(),
                name.clone(),
            )])));
            manifests.push(d);
        }
        if manifests == *index.manifests() {
            // A cached rebuild: nothing to write, and no sync to wait for.
            return Ok(());
        }
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// The named manifests: (ref name, descriptor), in index order.
    pub fn named_manifests(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .map(|d| (ref_name(d).map(str::to_string), d.clone()))
            .collect())
    }

    fn replace_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let mut tmp =
            NamedTempFile::new_in(dir).map_err(io_err("create a temporary file in", dir))?;
        tmp.write_all(bytes).map_err(io_err("write", path))?;
        tmp.as_file().sync_all().map_err(io_err("sync", path))?;
        tmp.persist(path)
            .map_err(|e| LayoutError::Io {
                action: "replace",
                path: path.to_path_buf(),
                source: e.error,
            })
            .map(drop)
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .unwrap_or_default()
}

/// A blob being written; it appears under its digest only on [`BlobWriter::commit`].
pub struct BlobWriter {
    layout: OciLayout,
    inner: DigestWriter<BufWriter<TrackedFile>>,
    /// Whether `inner` hashes what is written (otherwise the caller does).
    hashing: bool,
    /// Bytes written past the hasher.
    written: u64,
}

impl BlobWriter {
    /// A reader of this blob's bytes as they are written (see [`BlobTail`]); ask before writing.
    pub fn tail(&mut self) -> Result<BlobTail> {
        let dir = self.layout.root.join("blobs");
        let file = self.inner.get_mut().get_mut();
        file.tail()
            .map_err(io_err("share the blob being written in", &dir))
    }

    /// Finishes the blob and moves it to its digest's name; returns its digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.finish(None)
    }

    /// Finishes a blob from [`OciLayout::blob_writer_hashed_by_caller`] under `digest`, the
    /// caller's hash of exactly the bytes written; returns its size.
    pub fn commit_as(self, digest: &Digest) -> Result<u64> {
        self.finish(Some(digest)).map(|(_, size)| size)
    }

    /// Like [`commit`](Self::commit), but refuses (and discards) the blob unless it hashes to
    /// `expected`.
    pub fn commit_expecting(self, expected: &Digest) -> Result<u64> {
        self.finish(Some(expected)).map(|(_, size)| size)
    }

    fn finish(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (hashed, size, buf) = self.inner.finish();
        let (digest, size) = match (self.hashing, expected) {
            (true, _) => (hashed, size),
            (false, Some(given)) => (given.clone(), self.written),
            (false, None) => {
                return Err(LayoutError::Io {
                    action: "name",
                    path: self.layout.root.join("blobs"),
                    source: io::Error::other("a blob hashed by its writer needs that digest"),
                });
            }
        };
        let layout = self.layout;
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(LayoutError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
                layout: layout.root,
            });
        }
        let dir = layout.root.join("blobs");
        let mut tracked = buf.into_inner().map_err(|e| LayoutError::Io {
            action: "write",
            path: dir.clone(),
            source: e.into_error(),
        })?;
        tracked.committed(&digest);
        let file = tracked.into_file();
        let dest = layout.blob_path(&digest);
        if !dest.exists() {
            file.as_file().sync_all().map_err(io_err("sync", &dir))?;
            file.persist(&dest).map_err(|e| LayoutError::Io {
                action: "rename blob to",
                path: dest,
                source: e.error,
            })?;
        }
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.hashing {
            return self.inner.write(buf);
        }
        let n = self.inner.get_mut().write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Converts a kiln digest to oci-spec's type.
pub fn to_oci_digest(d: &Digest) -> oci_spec::image::Digest {
    // A kiln Digest is always a valid sha256 digest, which oci-spec accepts.
    oci_spec::image::Digest::from_str(&d.to_string()).unwrap_or_else(|_| unreachable_digest())
}

fn unreachable_digest() -> oci_spec::image::Digest {
    oci_spec::image::Digest::from_str(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
    .unwrap_or_else(|_| unreachable!("a constant valid digest"))
}

/// Converts oci-spec's digest to kiln's, refusing algorithms kiln does not support.
pub fn from_oci_digest(
    d: &oci_spec::image::Digest,
) -> Result<Digest, super::digest::DigestParseError> {
    d.to_string().parse()
}
