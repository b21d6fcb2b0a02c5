//! Outputs: where a finished image goes.
//!
//! Every output is written so that a failure leaves nothing half-made under the final name: tar
//! files are written to a temporary file beside the destination and renamed, and layouts gain
//! their index entry only after every blob is in place.

mod docker_archive;
mod oci_tar;
pub mod store;
mod tarball;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::oci::layout::{LayoutError, OciLayout, to_oci_digest};
use crate::oci::{Image, ImageError, Reference};

pub use docker_archive::write_docker_archive;
pub use oci_tar::write_oci_tar;

/// Errors writing an output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Writing a layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A layer is compressed in a way this output cannot carry.
    #[error(
        "layer `{digest}` is `{media_type}`, which a docker-archive cannot hold; use `type=oci`"
    )]
    UnsupportedLayer {
        /// The layer.
        digest: crate::oci::Digest,
        /// Its media type.
        media_type: String,
    },
    /// Writing a file failed.
    #[error("failed to {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where to put an image (`--output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory (`type=oci,dest=DIR`).
    OciDir(PathBuf),
    /// An OCI image layout in a tar file (`type=oci,dest=FILE.tar`).
    OciTar(PathBuf),
    /// A docker-archive (`docker save` format) tar file (`type=docker,dest=FILE`).
    DockerArchive(PathBuf),
}

/// Why an `--output` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid output `{spec}`: {reason}")]
pub struct OutputParseError {
    spec: String,
    reason: String,
}

impl FromStr for Output {
    type Err = OutputParseError;

    /// Parses BuildKit's `type=oci,dest=PATH[,tar=true|false]` and `type=docker,dest=PATH`.
    /// For `type=oci` without `tar=`, a destination ending in `.tar` is a tar file and anything
    /// else a directory.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| OutputParseError {
            spec: spec.to_string(),
            reason,
        };
        let (mut kind, mut dest, mut tar) = (None, None, None);
        for field in spec.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| err(format!("`{field}` is not `key=value`")))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v)),
                "tar" => {
                    tar =
                        Some(v.parse::<bool>().map_err(|_| {
                            err(format!("`tar` must be `true` or `false`, not `{v}`"))
                        })?)
                }
                other => return Err(err(format!("unknown key `{other}`"))),
            }
        }
        let kind = kind.ok_or_else(|| err("missing `type=` (oci or docker)".to_string()))?;
        let dest = dest.ok_or_else(|| err("missing `dest=`".to_string()))?;
        match kind.as_str() {
            "oci" => {
                let as_tar = tar.unwrap_or_else(|| dest.extension().is_some_and(|e| e == "tar"));
                Ok(if as_tar {
                    Output::OciTar(dest)
                } else {
                    Output::OciDir(dest)
                })
            }
            "docker" => Ok(Output::DockerArchive(dest)),
            other => Err(err(format!(
                "unknown type `{other}`; kiln writes `oci` and `docker`"
            ))),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::OciDir(p) => write!(f, "OCI layout `{}`", p.display()),
            Output::OciTar(p) => write!(f, "OCI archive `{}`", p.display()),
            Output::DockerArchive(p) => write!(f, "docker archive `{}`", p.display()),
        }
    }
}

/// Writes `image` to `output`, named by `tags`.
pub fn export(image: &dyn Image, output: &Output, tags: &[Reference]) -> Result<(), ExportError> {
    match output {
        Output::OciDir(dir) => write_oci_dir(image, dir, tags),
        Output::OciTar(file) => write_oci_tar(image, file, tags),
        Output::DockerArchive(file) => write_docker_archive(image, file, tags),
    }
}

/// Copies `image` into the OCI layout at `dir` (created when missing) and names it by `tags`
/// in `index.json` (`org.opencontainers.image.ref.name`, the familiar form `name:tag`).
pub fn write_oci_dir(image: &dyn Image, dir: &Path, tags: &[Reference]) -> Result<(), ExportError> {
    let layout = OciLayout::open_or_create(dir)?;
    add_to_layout(image, &layout, tags)
}

/// Copies `image`'s blobs into `layout` and records it in the index, last.
pub fn add_to_layout(
    image: &dyn Image,
    layout: &OciLayout,
    tags: &[Reference],
) -> Result<(), ExportError> {
    for layer in image.layers()? {
        if !layout.has_blob(&layer.digest) {
            let mut reader = image.open_blob(&layer.digest)?;
            let mut w = layout.blob_writer()?;
            io::copy(&mut reader, &mut w).map_err(io_err("copy a layer into", layout.root()))?;
            w.commit_expecting(&layer.digest)?;
        }
    }
    layout.write_blob(&image.raw_config()?)?;
    let manifest = image.raw_manifest()?;
    let digest = layout.write_blob(&manifest)?;
    let descriptor = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        manifest.len() as u64,
        to_oci_digest(&digest),
    );
    let names: Vec<String> = tags.iter().map(Reference::familiar).collect();
    layout.add_manifest(&descriptor, &names)?;
    Ok(())
}

/// A file being written under a temporary name beside its destination.
pub(crate) struct PendingFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl PendingFile {
    pub(crate) fn create(dest: &Path) -> Result<PendingFile, ExportError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-tmp-")
            .tempfile_in(&dir)
            .map_err(io_err("create a temporary file in", &dir))?;
        Ok(PendingFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub(crate) fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    pub(crate) fn commit(self) -> Result<(), ExportError> {
        let dest = self.dest;
        self.tmp
            .as_file()
            .sync_all()
            .map_err(io_err("sync", &dest))?;
        self.tmp.persist(&dest).map_err(|e| ExportError::Io {
            action: "write",
            path: dest,
            source: e.error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_specs() {
        assert_eq!(
            "type=oci,dest=out".parse::<Output>().unwrap(),
            Output::OciDir("out".into())
        );
        assert_eq!(
            "type=oci,dest=out.tar".parse::<Output>().unwrap(),
            Output::OciTar("out.tar".into())
        );
        assert_eq!(
            "type=oci,dest=out,tar=true".parse::<Output>().unwrap(),
            Output::OciTar("out".into())
        );
        assert_eq!(
            "type=docker,dest=img.tar".parse::<Output>().unwrap(),
            Output::DockerArchive("img.tar".into())
        );
        let e = "type=local,dest=x"
            .parse::<Output>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown type `local`"), "{e}");
        assert!("dest=x".parse::<Output>().is_err());
        assert!("type=oci".parse::<Output>().is_err());
    }
}
