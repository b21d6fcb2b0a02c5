//! The layer cache in a registry: `--cache-from` reads caches, `--cache-to` writes one.
//!
//! A cache reference names one OCI image manifest (the format is described in
//! [`crate::cache::remote`]): its config blob maps cache keys to layer descriptors and its layers
//! are those blobs, so the registry keeps every blob an entry needs, and a blob the image itself
//! also uses is stored once. Importing reads the manifest and the config only; a layer blob is
//! downloaded when a hit needs its bytes. Exporting reads what the destination already holds,
//! merges, and pushes the merged manifest through the ordinary image push, which skips blobs the
//! destination has and mounts those another repository of the same registry has.
//!
//! # Example
//!
//! ```no_run
//! use builder_core::build::remote_cache::{CacheBlobs, ExportOptions, RemoteCaches, export};
//! use builder_core::oci::{OciLayout, Reference};
//! use builder_core::registry::{BlockingClient, ClientOptions};
//!
//! let client = BlockingClient::new(ClientOptions::default())?;
//! let store = OciLayout::open_or_create("/tmp/kiln-store")?;
//! let cache: Reference = "registry.example/team/cache:main".parse()?;
//! let mut warnings = Vec::new();
//! let imported = RemoteCaches::import(&client, &[cache.clone()], &store, &mut warnings)?;
//! // ... build, looking steps up with `imported.get(&key)` ...
//! let records: Vec<_> = imported.records().cloned().collect();
//! let report = export(&client, &cache, records, &CacheBlobs { store: &store, local: None, imported: &imported }, &ExportOptions { mount_from: &[], ttl: None, now: 1_700_000_000 })?;
//! assert_eq!(report.tags.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::remote::{CACHE_ARTIFACT_TYPE, CACHE_CONFIG_MEDIA_TYPE, RemoteCacheConfig};
use crate::cache::{CacheKey, CacheRecord, CachedLayer, LocalCache, StepInputs};
use crate::oci::{Digest, Image, ImageError, LayoutError, OciLayout, Reference, media};
use crate::registry::{self, BlockingClient, PushOptions, PushReport, Repository};

/// The media type of the OCI empty descriptor, which stands in for the layers of a cache whose
/// entries have none: the image-manifest schema demands at least one layer.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The content of the OCI empty descriptor.
const EMPTY_BLOB: &[u8] = b"{}";

/// Why a remote cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteCacheError {
    /// The registry failed while the cache was read.
    #[error("failed to read cache `{reference}`")]
    Read {
        /// The cache reference.
        reference: String,
        /// What the registry said.
        #[source]
        source: Box<registry::Error>,
    },
    /// The reference holds something other than a kiln cache (an image, an index).
    #[error("`{reference}` is not a kiln cache (it holds `{found}`)")]
    NotACache {
        /// The cache reference.
        reference: String,
        /// The media type found: the manifest's, or its config's.
        found: String,
    },
    /// The cache manifest or config does not parse.
    #[error("invalid cache {what} in `{reference}`")]
    Invalid {
        /// `manifest` or `config`.
        what: &'static str,
        /// The cache reference.
        reference: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The downloaded cache config could not be read back from the store.
    #[error("failed to read the config of cache `{reference}` from the store")]
    Store {
        /// The cache reference.
        reference: String,
        /// The cause.
        #[source]
        source: LayoutError,
    },
    /// A blob was asked for that no imported cache lists.
    #[error("blob `{digest}` is in no imported cache")]
    UnknownBlob {
        /// The blob.
        digest: Digest,
    },
    /// Downloading a layer blob of an imported cache failed.
    #[error("failed to download blob `{digest}` from `{repository}`")]
    FetchBlob {
        /// The blob.
        digest: Digest,
        /// The repository tried last.
        repository: String,
        /// What the registry said.
        #[source]
        source: Box<registry::Error>,
    },
    /// A cache is written to a tag; a digest names content that exporting would change.
    #[error("cache destination `{reference}` names a digest; give it a tag instead")]
    DigestDestination {
        /// The destination.
        reference: String,
    },
    /// Pushing the cache failed.
    #[error("failed to push cache `{reference}`")]
    Push {
        /// The destination.
        reference: String,
        /// What the registry said.
        #[source]
        source: Box<registry::Error>,
    },
}

/// A descriptor as a cache manifest writes it: no annotations, no URLs, nothing that could make
/// two exports of the same entries differ.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    size: u64,
}

/// The cache manifest, fields in the order they are written.
#[derive(Debug, Serialize, Deserialize)]
struct CacheManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl CacheManifest {
    /// The manifest over `config_bytes` and the layers its entries use.
    fn over(config: &RemoteCacheConfig, config_bytes: &[u8]) -> CacheManifest {
        let mut layers: Vec<Descriptor> = config
            .layers()
            .into_iter()
            .map(|l| Descriptor {
                media_type: l.media_type,
                digest: l.digest,
                size: l.size,
            })
            .collect();
        if layers.is_empty() {
            layers.push(Descriptor {
                media_type: EMPTY_MEDIA_TYPE.to_string(),
                digest: Digest::of(EMPTY_BLOB),
                size: EMPTY_BLOB.len() as u64,
            });
        }
        CacheManifest {
            schema_version: 2,
            media_type: media::OCI_MANIFEST.to_string(),
            artifact_type: Some(CACHE_ARTIFACT_TYPE.to_string()),
            config: Descriptor {
                media_type: CACHE_CONFIG_MEDIA_TYPE.to_string(),
                digest: Digest::of(config_bytes),
                size: config_bytes.len() as u64,
            },
            layers,
        }
    }

    /// Whether the manifest lists `layer`'s blob, so the registry keeps it.
    fn lists(&self, layer: &CachedLayer) -> bool {
        self.layers
            .iter()
            .any(|d| d.digest == layer.digest && d.size == layer.size)
    }
}

/// `tag_or_digest` of a reference as the registry API wants it; `latest` when it names neither.
fn tag_or_digest(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// The cache at `reference`, or `None` when there is none yet. Entries whose layer the manifest
/// does not list are dropped: nothing stops the registry from deleting such a blob.
fn read_cache(
    client: &BlockingClient,
    reference: &Reference,
    store: &OciLayout,
) -> Result<Option<RemoteCacheConfig>, RemoteCacheError> {
    let name = reference.to_string();
    let repository = Repository::of(reference);
    let registry_err = |e: registry::Error| RemoteCacheError::Read {
        reference: name.clone(),
        source: Box::new(e),
    };
    let raw = match client.fetch_manifest(&repository, &tag_or_digest(reference), reference) {
        Ok(raw) => raw,
        Err(registry::Error::ManifestUnknown { .. }) => return Ok(None),
        Err(registry::Error::UnsupportedMediaType { media_type, .. }) => {
            return Err(RemoteCacheError::NotACache {
                reference: name,
                found: media_type,
            });
        }
        Err(e) => return Err(registry_err(e)),
    };
    if raw.media_type != media::OCI_MANIFEST {
        return Err(RemoteCacheError::NotACache {
            reference: name,
            found: raw.media_type,
        });
    }
    // The config's media type first: an ordinary image is "not a cache", whatever else it holds.
    #[derive(Deserialize)]
    struct Head {
        config: HeadConfig,
    }
    #[derive(Deserialize)]
    struct HeadConfig {
        #[serde(rename = "mediaType")]
        media_type: String,
    }
    let invalid = |what, source| RemoteCacheError::Invalid {
        what,
        reference: name.clone(),
        source,
    };
    let head: Head = serde_json::from_slice(&raw.bytes).map_err(|e| invalid("manifest", e))?;
    if head.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
        return Err(RemoteCacheError::NotACache {
            reference: name,
            found: head.config.media_type,
        });
    }
    let manifest: CacheManifest =
        serde_json::from_slice(&raw.bytes).map_err(|e| invalid("manifest", e))?;
    client
        .fetch_blob(&repository, &manifest.config.digest, store)
        .map_err(registry_err)?;
    let bytes =
        store
            .read_blob(&manifest.config.digest)
            .map_err(|source| RemoteCacheError::Store {
                reference: name.clone(),
                source,
            })?;
    let mut config: RemoteCacheConfig =
        serde_json::from_slice(&bytes).map_err(|e| invalid("config", e))?;
    config.entries.retain(|key, record| {
        record.key == *key && record.layer.as_ref().is_none_or(|l| manifest.lists(l))
    });
    Ok(Some(config))
}

/// Caches read from registries (`--cache-from`), newest record per key.
#[derive(Debug, Clone, Default)]
pub struct RemoteCaches {
    /// The newest record per key, with the index in `sources` of the cache it came from.
    entries: BTreeMap<CacheKey, (CacheRecord, usize)>,
    /// The repositories of the caches read, each once, in the order given.
    sources: Vec<Repository>,
    /// For each layer blob, the indexes in `sources` of the caches that list it.
    blobs: BTreeMap<Digest, Vec<usize>>,
    /// The inputs of the last build at each step position, from the caches in order (the first
    /// cache that has a position wins).
    inputs: BTreeMap<CacheKey, StepInputs>,
}

impl RemoteCaches {
    /// No remote caches: every lookup misses.
    pub fn none() -> RemoteCaches {
        RemoteCaches::default()
    }

    /// Reads the cache manifest at each reference, and its config into `store`. A reference that
    /// does not exist yet (a first build) is not an error: it adds a line to `warnings`. A
    /// reference that holds something other than a kiln cache is an error naming it.
    pub fn import(
        client: &BlockingClient,
        refs: &[Reference],
        store: &OciLayout,
        warnings: &mut Vec<String>,
    ) -> Result<RemoteCaches, RemoteCacheError> {
        let mut caches = RemoteCaches::none();
        for reference in refs {
            let Some(config) = read_cache(client, reference, store)? else {
                warnings.push(format!("cache `{reference}` not found; starting empty"));
                continue;
            };
            tracing::debug!(%reference, entries = config.entries.len(), "imported cache");
            caches.add(Repository::of(reference), config);
        }
        Ok(caches)
    }

    /// Adds the entries of a cache read from `repository`; on the same key the newer wins.
    fn add(&mut self, repository: Repository, config: RemoteCacheConfig) {
        let source = match self.sources.iter().position(|r| *r == repository) {
            Some(i) => i,
            None => {
                self.sources.push(repository);
                self.sources.len() - 1
            }
        };
        for (slot, inputs) in config.inputs {
            self.inputs.entry(slot).or_insert(inputs);
        }
        for (key, record) in config.entries {
            if let Some(layer) = &record.layer {
                let holders = self.blobs.entry(layer.digest.clone()).or_default();
                if !holders.contains(&source) {
                    holders.push(source);
                }
            }
            match self.entries.get(&key) {
                Some((mine, _)) if mine.created >= record.created => {}
                _ => {
                    self.entries.insert(key, (record, source));
                }
            }
        }
    }

    /// The inputs of the last build exported at step position `slot`, to explain a miss.
    pub fn inputs(&self, slot: &CacheKey) -> Option<&StepInputs> {
        self.inputs.get(slot)
    }

    /// The newest record for `key` across the imported caches.
    pub fn get(&self, key: &CacheKey) -> Option<&CacheRecord> {
        self.entries.get(key).map(|(record, _)| record)
    }

    /// The repository of the cache the record for `key` came from.
    pub fn source(&self, key: &CacheKey) -> Option<&Repository> {
        self.entries
            .get(key)
            .and_then(|(_, source)| self.sources.get(*source))
    }

    /// Downloads layer blob `digest` (of an imported record) into `store` unless it is there,
    /// trying each cache that lists it.
    pub fn fetch_blob(
        &self,
        client: &BlockingClient,
        digest: &Digest,
        store: &OciLayout,
    ) -> Result<(), RemoteCacheError> {
        if store.has_blob(digest) {
            return Ok(());
        }
        let holders = self.holders(digest);
        let mut last = None;
        for repository in holders {
            match client.fetch_blob(repository, digest, store) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(%repository, %digest, error = %e, "cache blob download failed");
                    last = Some((repository, e));
                }
            }
        }
        match last {
            Some((repository, e)) => Err(RemoteCacheError::FetchBlob {
                digest: digest.clone(),
                repository: repository.to_string(),
                source: Box::new(e),
            }),
            None => Err(RemoteCacheError::UnknownBlob {
                digest: digest.clone(),
            }),
        }
    }

    /// The repositories of the caches that list blob `digest`.
    fn holders(&self, digest: &Digest) -> impl Iterator<Item = &Repository> {
        self.blobs
            .get(digest)
            .into_iter()
            .flatten()
            .filter_map(|i| self.sources.get(*i))
    }

    /// The repositories of the imported caches, those listing more of `config`'s layers first.
    /// A registry answers a failed mount by opening an ordinary upload, which the push then
    /// uses, so in effect only the first repository of the registry is tried for each blob.
    fn mount_order(&self, config: &RemoteCacheConfig) -> Vec<Repository> {
        let mut counts = vec![0usize; self.sources.len()];
        for layer in config.layers() {
            for &i in self.blobs.get(&layer.digest).into_iter().flatten() {
                if let Some(count) = counts.get_mut(i) {
                    *count += 1;
                }
            }
        }
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(counts.get(i).copied().unwrap_or(0)));
        order
            .into_iter()
            .filter_map(|i| self.sources.get(i).cloned())
            .collect()
    }

    /// Whether some imported cache lists blob `digest`.
    fn knows(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// Repositories holding the imported blobs (for cross-repository mounts when pushing).
    pub fn repositories(&self) -> Vec<Repository> {
        self.sources.clone()
    }

    /// All imported records, newest per key, in key order (for merging and exporting).
    pub fn records(&self) -> impl Iterator<Item = &CacheRecord> {
        self.entries.values().map(|(record, _)| record)
    }

    /// How many keys the imported caches answer.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the imported caches answer no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The cache as an image to push: the manifest and config in memory, layer blobs from wherever
/// the build has them.
struct CacheImage<'a> {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: Digest,
    store: &'a OciLayout,
    local: Option<&'a LocalCache>,
    imported: &'a RemoteCaches,
    client: &'a BlockingClient,
}

impl Image for CacheImage<'_> {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.manifest.clone())
    }

    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }

    /// Only blobs the destination lacks are opened: the config and the empty blob from memory,
    /// a layer from the build's store, else the local cache, else downloaded from an imported
    /// cache into the store.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if *digest == self.config_digest {
            return Ok(Box::new(Cursor::new(self.config.clone())));
        }
        if *digest == Digest::of(EMPTY_BLOB) {
            return Ok(Box::new(Cursor::new(EMPTY_BLOB)));
        }
        if self.store.has_blob(digest) {
            return Ok(Box::new(self.store.open_blob(digest)?));
        }
        if let Some(local) = self.local
            && local.blobs().has_blob(digest)
        {
            return Ok(Box::new(local.blobs().open_blob(digest)?));
        }
        if self.imported.knows(digest) {
            self.imported
                .fetch_blob(self.client, digest, self.store)
                .map_err(|e| {
                    ImageError::Layout(LayoutError::Io {
                        action: "download a cache blob into",
                        path: self.store.root().to_path_buf(),
                        source: io::Error::other(e),
                    })
                })?;
            return Ok(Box::new(self.store.open_blob(digest)?));
        }
        Err(ImageError::Layout(LayoutError::MissingBlob {
            digest: digest.clone(),
            layout: PathBuf::from(self.store.root()),
        }))
    }

    fn digest(&self) -> Result<Digest, ImageError> {
        Ok(Digest::of(&self.manifest))
    }
}

/// Where the blobs of the exported entries are read from, in this order.
#[derive(Clone, Copy)]
pub struct CacheBlobs<'a> {
    /// The image store (layers this build wrote or pulled).
    pub store: &'a OciLayout,
    /// The local cache's content store.
    pub local: Option<&'a LocalCache>,
    /// The caches imported with `--cache-from` (blobs not downloaded yet come from there).
    pub imported: &'a RemoteCaches,
}

/// How a cache is exported.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions<'a> {
    /// Repositories on the destination's registry to mount blobs from, after those of the
    /// imported caches.
    pub mount_from: &'a [Repository],
    /// Entries older than this are left out (`--cache-ttl`).
    pub ttl: Option<Duration>,
    /// The time now, unix seconds.
    pub now: i64,
}

/// Pushes `records` to `dest` (`--cache-to`) merged with what `dest` already holds (read first;
/// absent is fine, anything but a kiln cache is an error rather than overwritten), dropping
/// merged entries created more than `options.ttl` before `options.now` when a ttl is set. On the same key the newer record wins.
///
/// Layer blobs the destination lacks are read from `blobs` (the store, else the local cache,
/// else downloaded through the imported caches); a blob the destination already has is not
/// moved, and one in a repository of the same registry (the imported caches' repositories, then
/// `options.mount_from`) is mounted. The same merged entries give the same manifest digest.
pub fn export(
    client: &BlockingClient,
    dest: &Reference,
    records: impl Into<RemoteCacheConfig>,
    blobs: &CacheBlobs<'_>,
    options: &ExportOptions<'_>,
) -> Result<PushReport, RemoteCacheError> {
    let CacheBlobs {
        store,
        local,
        imported,
    } = *blobs;
    if dest.digest().is_some() {
        return Err(RemoteCacheError::DigestDestination {
            reference: dest.to_string(),
        });
    }
    let dest = with_tag(dest);
    let mut merged = read_cache(client, &dest, store)?.unwrap_or_default();
    merged.merge(records.into());
    if let Some(ttl) = options.ttl {
        merged.expire(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            options.now,
        );
    }

    let config = merged.to_bytes();
    let manifest = CacheManifest::over(&merged, &config);
    let manifest = serde_json::to_vec(&manifest).map_err(|source| RemoteCacheError::Invalid {
        what: "manifest",
        reference: dest.to_string(),
        source,
    })?;
    let image = CacheImage {
        manifest,
        config_digest: Digest::of(&config),
        config,
        store,
        local,
        imported,
        client,
    };
    let mut mount_from = imported.mount_order(&merged);
    for repository in options.mount_from {
        if !mount_from.contains(repository) {
            mount_from.push(repository.clone());
        }
    }
    let options = PushOptions {
        mount_from,
        ..PushOptions::default()
    };
    tracing::debug!(reference = %dest, entries = merged.entries.len(), "exporting cache");
    client
        .push(&image, std::slice::from_ref(&dest), &options)
        .map_err(|e| RemoteCacheError::Push {
            reference: dest.to_string(),
            source: Box::new(e),
        })
}

/// `dest` with the `latest` tag when it names none, as the registry API needs a tag to put to.
fn with_tag(dest: &Reference) -> Reference {
    if dest.tag().is_some() {
        return dest.clone();
    }
    format!("{}/{}:latest", dest.registry(), dest.repository())
        .parse()
        .unwrap_or_else(|_| dest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KeyBuilder;

    fn record(name: &str, created: i64, blob: Option<&[u8]>) -> CacheRecord {
        CacheRecord {
            key: KeyBuilder::new("test").str("name", name).finish(),
            created,
            created_by: format!("RUN {name}"),
            layer: blob.map(|b| CachedLayer {
                digest: Digest::of(b),
                size: b.len() as u64,
                media_type: media::OCI_LAYER_GZIP.to_string(),
                diff_id: Digest::of(b),
            }),
        }
    }

    fn config(records: &[CacheRecord]) -> RemoteCacheConfig {
        RemoteCacheConfig {
            entries: records.iter().map(|r| (r.key.clone(), r.clone())).collect(),
            inputs: BTreeMap::new(),
        }
    }

    #[test]
    fn manifest_lists_each_layer_once_in_digest_order() {
        let cfg = config(&[
            record("a", 1, Some(b"one")),
            record("b", 2, Some(b"two")),
            record("c", 3, Some(b"one")),
            record("d", 4, None),
        ]);
        let bytes = cfg.to_bytes();
        let manifest = CacheManifest::over(&cfg, &bytes);
        let mut want = vec![Digest::of(b"one"), Digest::of(b"two")];
        want.sort();
        let got: Vec<Digest> = manifest.layers.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(got, want);
        assert_eq!(manifest.config.digest, Digest::of(&bytes));
        assert_eq!(manifest.config.media_type, CACHE_CONFIG_MEDIA_TYPE);
    }

    #[test]
    fn a_cache_without_layers_lists_the_empty_descriptor() {
        let cfg = config(&[record("a", 1, None)]);
        let manifest = CacheManifest::over(&cfg, &cfg.to_bytes());
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.layers[0].media_type, EMPTY_MEDIA_TYPE);
        assert_eq!(
            manifest.layers[0].digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn newest_record_wins_and_remembers_its_cache() {
        let repo = |name: &str| Repository {
            registry: "r.example".into(),
            name: name.into(),
        };
        let old = record("x", 10, Some(b"old"));
        let mut new = record("x", 20, Some(b"new"));
        new.key = old.key.clone();
        let mut caches = RemoteCaches::none();
        caches.add(repo("a"), config(std::slice::from_ref(&new)));
        caches.add(repo("b"), config(std::slice::from_ref(&old)));
        assert_eq!(caches.get(&old.key), Some(&new));
        assert_eq!(caches.source(&old.key), Some(&repo("a")));
        assert_eq!(caches.len(), 1);
        assert_eq!(caches.repositories(), vec![repo("a"), repo("b")]);
        assert_eq!(
            caches.holders(&Digest::of(b"old")).collect::<Vec<_>>(),
            vec![&repo("b")]
        );
    }

    #[test]
    fn mounts_are_tried_first_from_the_cache_holding_most_layers() {
        let repo = |name: &str| Repository {
            registry: "r.example".into(),
            name: name.into(),
        };
        let (a, b, c) = (
            record("a", 1, Some(b"a")),
            record("b", 1, Some(b"b")),
            record("c", 1, Some(b"c")),
        );
        let mut caches = RemoteCaches::none();
        caches.add(repo("small"), config(std::slice::from_ref(&a)));
        caches.add(repo("big"), config(&[b.clone(), c.clone()]));
        caches.add(repo("unused"), config(&[record("d", 1, Some(b"d"))]));
        let order = caches.mount_order(&config(&[a, b, c]));
        assert_eq!(order, vec![repo("big"), repo("small"), repo("unused")]);
    }
}
