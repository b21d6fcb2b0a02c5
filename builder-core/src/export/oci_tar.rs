//! `type=oci,dest=FILE.tar`: an OCI image layout inside a tar file.

use std::io::{self, BufWriter};
use std::path::Path;

use super::tarball::{append_dir, append_file};
use super::{ExportError, PendingFile, io_err};
use crate::oci::layout::to_oci_digest;
use crate::oci::media::ANNOTATION_REF_NAME;
use crate::oci::{Digest, Image, Reference};

/// Writes `image` as an OCI layout tar at `dest`, one index entry per tag (or one unnamed entry).
pub fn write_oci_tar(
    image: &dyn Image,
    dest: &Path,
    tags: &[Reference],
) -> Result<(), ExportError> {
    let mut pending = PendingFile::create(dest)?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(pending.file()));
        tar.mode(tar::HeaderMode::Deterministic);
        write_entries(image, &mut tar, tags, dest)?;
        tar.into_inner()
            .and_then(|mut w| io::Write::flush(&mut w))
            .map_err(io_err("write", dest))?;
    }
    pending.commit()
}

fn write_entries<W: io::Write>(
    image: &dyn Image,
    tar: &mut tar::Builder<W>,
    tags: &[Reference],
    dest: &Path,
) -> Result<(), ExportError> {
    let manifest = image.raw_manifest()?;
    let config = image.raw_config()?;
    let layers = image.layers()?;
    let add = |tar: &mut tar::Builder<W>, path: &str, size: u64, data: &mut dyn io::Read| {
        append_file(tar, path, size, data).map_err(io_err("write", dest))
    };
    let marker = br#"{"imageLayoutVersion":"1.0.0"}"#;
    add(tar, "oci-layout", marker.len() as u64, &mut &marker[..])?;
    let index = index_json(&Digest::of(&manifest), manifest.len() as u64, tags);
    add(tar, "index.json", index.len() as u64, &mut index.as_bytes())?;
    append_dir(tar, "blobs/").map_err(io_err("write", dest))?;
    append_dir(tar, "blobs/sha256/").map_err(io_err("write", dest))?;
    let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    add(
        tar,
        &blob_path(&Digest::of(&manifest)),
        manifest.len() as u64,
        &mut &manifest[..],
    )?;
    let config_digest = Digest::of(&config);
    add(
        tar,
        &blob_path(&config_digest),
        config.len() as u64,
        &mut &config[..],
    )?;
    let mut written = std::collections::BTreeSet::from([config_digest]);
    for layer in layers {
        if written.insert(layer.digest.clone()) {
            let mut reader = image.open_blob(&layer.digest)?;
            add(tar, &blob_path(&layer.digest), layer.size, &mut reader)?;
        }
    }
    Ok(())
}

fn index_json(manifest: &Digest, size: u64, tags: &[Reference]) -> String {
    let descriptor = |name: Option<String>| {
        let mut d = serde_json::json!({
            "mediaType": crate::oci::media::OCI_MANIFEST,
            "digest": to_oci_digest(manifest).to_string(),
            "size": size,
        });
        if let Some(n) = name {
            d["annotations"] = serde_json::json!({ ANNOTATION_REF_NAME: n });
        }
        d
    };
    let manifests: Vec<_> = if tags.is_empty() {
        vec![descriptor(None)]
    } else {
        tags.iter()
            .map(|t| descriptor(Some(t.familiar())))
            .collect()
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::oci::media::OCI_INDEX,
        "manifests": manifests,
    })
    .to_string()
}
