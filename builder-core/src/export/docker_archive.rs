//! `type=docker,dest=FILE`: the `docker save` format that `docker load` and
//! `skopeo copy docker-archive:` read.
//!
//! Layers go in uncompressed (`<diff_id>/layer.tar`), as `docker save` writes them, so every
//! reader accepts the file. A tar header needs the size before the data, so each layer is
//! decompressed twice, once to count and once to write: slower than buffering, but memory stays
//! flat however large the layer is.

use std::io::{self, BufWriter, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::tarball::append_file;
use super::{ExportError, PendingFile, io_err};
use crate::oci::media::is_gzip_layer;
use crate::oci::{Digest, Image, LayerRef, Reference};

/// Writes `image` as a docker-archive at `dest`, tagged with `tags` (`RepoTags`).
pub fn write_docker_archive(
    image: &dyn Image,
    dest: &Path,
    tags: &[Reference],
) -> Result<(), ExportError> {
    let config = image.raw_config()?;
    let layers = image.layers()?;
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", l.diff_id.hex()))
        .collect();
    let repo_tags: Vec<String> = tags.iter().map(Reference::familiar).collect();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }])
    .to_string();

    let mut pending = PendingFile::create(dest)?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(pending.file()));
        tar.mode(tar::HeaderMode::Deterministic);
        append_file(&mut tar, &config_name, config.len() as u64, &config[..])
            .map_err(io_err("write", dest))?;
        let mut seen = std::collections::BTreeSet::new();
        for (layer, name) in layers.iter().zip(&layer_names) {
            if !seen.insert(layer.diff_id.clone()) {
                continue;
            }
            let size = uncompressed_size(image, layer)?;
            let reader = uncompressed(image, layer)?;
            append_file(&mut tar, name, size, reader).map_err(io_err("write", dest))?;
        }
        append_file(
            &mut tar,
            "manifest.json",
            manifest.len() as u64,
            manifest.as_bytes(),
        )
        .map_err(io_err("write", dest))?;
        tar.into_inner()
            .and_then(|mut w| io::Write::flush(&mut w))
            .map_err(io_err("write", dest))?;
    }
    pending.commit()
}

fn uncompressed(image: &dyn Image, layer: &LayerRef) -> Result<Box<dyn Read + Send>, ExportError> {
    if layer.media_type.contains("zstd") {
        return Err(ExportError::UnsupportedLayer {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        });
    }
    let blob = image.open_blob(&layer.digest)?;
    Ok(if is_gzip_layer(&layer.media_type) {
        Box::new(MultiGzDecoder::new(io::BufReader::new(blob)))
    } else {
        blob
    })
}

fn uncompressed_size(image: &dyn Image, layer: &LayerRef) -> Result<u64, ExportError> {
    let mut reader = uncompressed(image, layer)?;
    io::copy(&mut reader, &mut io::sink()).map_err(|source| ExportError::Io {
        action: "decompress layer",
        path: format!("{}", layer.digest).into(),
        source,
    })
}
