//! Resolving a reference to an image manifest: OCI manifests and indexes, Docker schema 2
//! manifests and manifest lists (an index picks the requested platform); schema 1 is refused.
//! Manifests are kept as the exact bytes received, and their digests computed over them.

use std::fmt;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};

use super::auth::Scope;
use super::client::{Client, Endpoint, Req, api_error, read_limited, transport_error};
use super::error::{ApiError, Error, ErrorCode, Result};
use crate::oci::media;
use crate::oci::reference::DEFAULT_REGISTRY;
use crate::oci::{Digest, Platform, Reference};

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Docker's schema 1 media types, which kiln does not read.
const SCHEMA1_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// A repository on a registry: where blobs and manifests live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The registry (`docker.io`, `localhost:5000`, or a mirror).
    pub registry: String,
    /// The repository path (`library/python`).
    pub name: String,
}

impl Repository {
    /// The repository of `reference`.
    pub fn of(reference: &Reference) -> Repository {
        Repository {
            registry: reference.registry().to_string(),
            name: reference.repository().to_string(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A manifest or index exactly as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// Its media type (from the document, else the `Content-Type` header).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The bytes received.
    pub bytes: Vec<u8>,
}

impl RawManifest {
    fn is_index(&self) -> bool {
        self.media_type == media::OCI_INDEX || self.media_type == media::DOCKER_MANIFEST_LIST
    }
}

/// A reference resolved to one image manifest.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// What was asked for.
    pub reference: Reference,
    /// Where it was found (a mirror, or the reference's own registry).
    pub source: Repository,
    /// The image manifest for the requested platform.
    pub manifest: RawManifest,
    /// The index or manifest list it was picked from, when the reference named one.
    pub index: Option<RawManifest>,
}

/// `python:3.11-slim`, `team/app:1`: the reference without its registry, as error messages
/// show it next to the registry name.
pub(crate) fn short_name(reference: &Reference) -> String {
    let repo = if reference.registry() == DEFAULT_REGISTRY {
        reference
            .repository()
            .strip_prefix("library/")
            .unwrap_or(reference.repository())
    } else {
        reference.repository()
    };
    match (reference.tag(), reference.digest()) {
        (_, Some(d)) => format!("{repo}@{d}"),
        (Some(t), None) => format!("{repo}:{t}"),
        (None, None) => repo.to_string(),
    }
}

/// The architecture variant a platform means when it names none, as containerd normalises it.
fn normalized_variant(architecture: &str, variant: Option<&str>) -> Option<String> {
    match (architecture, variant) {
        ("arm64", None | Some("v8")) => Some("v8".to_string()),
        ("arm", None) => Some("v7".to_string()),
        ("amd64", None | Some("v1")) => None,
        (_, v) => v.map(str::to_string),
    }
}

fn platform_matches(want: &Platform, os: &str, architecture: &str, variant: Option<&str>) -> bool {
    want.os == os
        && want.architecture == architecture
        && normalized_variant(&want.architecture, want.variant.as_deref())
            == normalized_variant(architecture, variant)
}

/// The digest of the manifest for `platform` in an index or manifest list.
fn select_platform(
    index: &RawManifest,
    platform: &Platform,
    reference: &Reference,
) -> Result<Digest> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<EntryPlatform>,
    }
    #[derive(serde::Deserialize)]
    struct EntryPlatform {
        os: String,
        architecture: String,
        variant: Option<String>,
    }
    let parsed: Index =
        serde_json::from_slice(&index.bytes).map_err(|e| Error::InvalidManifest {
            reference: reference.to_string(),
            source: Box::new(e),
        })?;
    let found = parsed.manifests.iter().find(|m| {
        m.platform.as_ref().is_some_and(|p| {
            platform_matches(platform, &p.os, &p.architecture, p.variant.as_deref())
        })
    });
    match found {
        Some(m) => m.digest.parse().map_err(|e| Error::InvalidManifest {
            reference: reference.to_string(),
            source: Box::new(e),
        }),
        None => Err(Error::PlatformNotFound {
            reference: reference.familiar(),
            platform: platform.to_string(),
            available: parsed
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The `Accept` header for manifests: everything kiln reads, and nothing it does not.
pub(super) fn accept_header() -> String {
    [
        media::OCI_MANIFEST,
        media::OCI_INDEX,
        media::DOCKER_MANIFEST,
        media::DOCKER_MANIFEST_LIST,
    ]
    .join(", ")
}

/// The media type of a manifest document: its `mediaType` field, else `Content-Type`; schema 1
/// documents are recognised by `schemaVersion`.
fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> (String, bool) {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let head = serde_json::from_slice::<Head>(bytes).ok();
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| !c.is_empty());
    let schema1 = head.as_ref().and_then(|h| h.schema_version) == Some(1)
        || header
            .as_deref()
            .is_some_and(|c| SCHEMA1_TYPES.contains(&c));
    let media_type = head
        .and_then(|h| h.media_type)
        .or(header)
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    (media_type, schema1)
}

impl Client {
    /// The manifest `tag_or_digest` of `repository`, exactly as sent, with its digest verified
    /// when it was asked for by digest.
    pub async fn fetch_manifest(
        &self,
        repository: &Repository,
        tag_or_digest: &str,
        reference: &Reference,
    ) -> Result<RawManifest> {
        let ep = self.endpoint(&repository.registry)?;
        let url = self.manifest_url(&ep, repository, tag_or_digest).await?;
        let req = Req::new(Method::GET, url.clone()).header(ACCEPT, &accept_header());
        let resp = self
            .send(&ep, &[Scope::pull(&repository.name)], &req)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            let e = api_error(&req.method, &url, resp).await;
            return Err(manifest_unknown(reference, &repository.registry, e));
        }
        if !resp.status().is_success() {
            return Err(api_error(&req.method, &url, resp).await.into());
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES + 1)
            .await
            .map_err(|e| transport_error(&req.method, &url, e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::InvalidManifest {
                reference: reference.to_string(),
                source: format!("larger than {MAX_MANIFEST_BYTES} bytes").into(),
            });
        }
        let digest = Digest::of(&bytes);
        if let Ok(expected) = tag_or_digest.parse::<Digest>()
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                expected,
                actual: digest,
                url: url.to_string(),
            });
        }
        let (media_type, schema1) = media_type_of(&bytes, content_type.as_deref());
        if schema1 {
            return Err(Error::UnsupportedSchema1 {
                reference: reference.familiar(),
            });
        }
        let known = [
            media::OCI_MANIFEST,
            media::OCI_INDEX,
            media::DOCKER_MANIFEST,
            media::DOCKER_MANIFEST_LIST,
        ];
        if !known.contains(&media_type.as_str()) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.familiar(),
                media_type,
            });
        }
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Resolves `reference` to the image manifest for `platform`, trying docker.io's mirrors
    /// first (any failure there falls back to the next mirror, then docker.io).
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        if reference.registry() == DEFAULT_REGISTRY {
            for mirror in &self.options().registry_mirrors {
                // Registering the endpoint under the mirror's spelling keeps an explicit
                // `http://`; the repository then names the bare host.
                let source = Repository {
                    registry: self.endpoint(mirror)?.name.clone(),
                    name: reference.repository().to_string(),
                };
                match self.resolve_at(reference, source, platform).await {
                    Ok(r) => return Ok(r),
                    Err(e) => {
                        tracing::debug!(%mirror, error = %e, "mirror failed; trying the next source");
                    }
                }
            }
        }
        self.resolve_at(reference, Repository::of(reference), platform)
            .await
    }

    async fn resolve_at(
        &self,
        reference: &Reference,
        source: Repository,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        let wanted = match (reference.digest(), reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let top = self.fetch_manifest(&source, &wanted, reference).await?;
        if !top.is_index() {
            return Ok(ResolvedImage {
                reference: reference.clone(),
                source,
                manifest: top,
                index: None,
            });
        }
        let digest = select_platform(&top, platform, reference)?;
        let manifest = self
            .fetch_manifest(&source, &digest.to_string(), reference)
            .await?;
        if manifest.is_index() {
            return Err(Error::UnsupportedMediaType {
                reference: reference.familiar(),
                media_type: format!("{} nested in an index", manifest.media_type),
            });
        }
        Ok(ResolvedImage {
            reference: reference.clone(),
            source,
            manifest,
            index: Some(top),
        })
    }

    /// `…/v2/<repository>/manifests/<tag or digest>` on the endpoint.
    async fn manifest_url(
        &self,
        ep: &Endpoint,
        repository: &Repository,
        tag_or_digest: &str,
    ) -> Result<Url> {
        self.base_url(ep)
            .await?
            .join(&format!("v2/{}/manifests/{tag_or_digest}", repository.name))
            .map_err(|_| Error::InvalidRegistry(repository.registry.clone()))
    }

    /// Whether the manifest `tag_or_digest` exists in `repository` (a `HEAD`).
    pub async fn manifest_exists(
        &self,
        repository: &Repository,
        tag_or_digest: &str,
    ) -> Result<bool> {
        let ep = self.endpoint(&repository.registry)?;
        let url = self.manifest_url(&ep, repository, tag_or_digest).await?;
        let req = Req::new(Method::HEAD, url.clone()).header(ACCEPT, &accept_header());
        let resp = self
            .send(&ep, &[Scope::pull(&repository.name)], &req)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(api_error(&req.method, &url, resp).await.into()),
        }
    }
}

fn manifest_unknown(reference: &Reference, registry: &str, e: ApiError) -> Error {
    if e.errors.is_empty()
        || e.has_code(&ErrorCode::ManifestUnknown)
        || e.has_code(&ErrorCode::NameUnknown)
    {
        Error::ManifestUnknown {
            reference: short_name(reference),
            registry: registry.to_string(),
            source: Box::new(e),
        }
    } else {
        Error::from(e)
    }
}

/// A blob URL helper shared by pull and push.
pub(crate) fn repo_url(base: &Url, repository: &str, rest: &str) -> Result<Url> {
    base.join(&format!("v2/{repository}/{rest}"))
        .map_err(|_| Error::InvalidRegistry(base.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &str) -> RawManifest {
        RawManifest {
            media_type: media::OCI_INDEX.to_string(),
            digest: Digest::of(bytes.as_bytes()),
            bytes: bytes.as_bytes().to_vec(),
        }
    }

    #[test]
    fn picks_the_platform_from_an_index() {
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let d3 = Digest::of(b"3");
        let index = raw(&format!(
            r#"{{"manifests":[
                {{"digest":"{d1}","platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"digest":"{d2}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"digest":"{d3}","platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}}
            ]}}"#
        ));
        let r: Reference = "x".parse().unwrap();
        let pick = |p: &str| select_platform(&index, &p.parse().unwrap(), &r);
        assert_eq!(pick("linux/amd64").unwrap(), d1);
        assert_eq!(pick("linux/arm64").unwrap(), d2);
        assert_eq!(pick("linux/arm").unwrap(), d3);
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert_eq!(
            err,
            "no manifest for platform `linux/s390x` in `x:latest` (available: linux/amd64, linux/arm64/v8, linux/arm/v7)"
        );
    }

    #[test]
    fn recognises_schema1_and_media_types() {
        let (t, s1) = media_type_of(br#"{"schemaVersion":1,"name":"x"}"#, None);
        assert!(s1, "{t}");
        let (t, s1) = media_type_of(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#,
            Some("application/json"),
        );
        assert!(!s1);
        assert_eq!(t, media::DOCKER_MANIFEST);
        let (t, _) = media_type_of(
            br#"{"schemaVersion":2}"#,
            Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
        );
        assert_eq!(t, media::OCI_INDEX);
    }

    #[test]
    fn short_names_drop_the_registry() {
        let r: Reference = "python:3.12-slm".parse().unwrap();
        assert_eq!(short_name(&r), "python:3.12-slm");
        let r: Reference = "localhost:5000/team/app:1".parse().unwrap();
        assert_eq!(short_name(&r), "team/app:1");
    }
}
