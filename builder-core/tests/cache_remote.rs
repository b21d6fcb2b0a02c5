//! The remote layer cache (`--cache-to` / `--cache-from`) against a real registry on loopback
//! (distribution 2.8), with skopeo as the independent reader: one manifest per cache reference
//! that validates against the OCI image-manifest schema, merging into one tag, no re-upload of
//! what the registry has, ttl, a missing cache, a reference that is not a cache, and blobs
//! mounted from another repository of the same registry instead of uploaded.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;
mod support;
#[allow(dead_code)]
#[path = "oci_schema/validator.rs"]
mod validator;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use builder_core::build::remote_cache::{
    CacheBlobs, ExportOptions, RemoteCacheError, RemoteCaches, export,
};
use builder_core::cache::remote::{
    CACHE_ARTIFACT_TYPE, CACHE_CONFIG_MEDIA_TYPE, RemoteCacheConfig,
};
use builder_core::cache::{CacheKey, CacheRecord, CachedLayer, KeyBuilder, LocalCache};
use builder_core::layer::{Compression, Content, Entry, EntryKind, LayerOptions, write_layer};
use builder_core::oci::{Digest, OciLayout, Reference};
use builder_core::registry::{BlobOutcome, BlockingClient, ClientOptions, PushReport, Repository};
use serde_json::Value;
use support::{TestRegistry, busybox_layout, skopeo};
use validator::OciValidator;

const NOW: i64 = 1_700_000_000;

/// A client that reads credentials from an empty directory only.
fn client(dir: &Path) -> BlockingClient {
    BlockingClient::new(ClientOptions {
        docker_config_dir: Some(dir.join("no-docker-config")),
        podman_auth_files: Some(Vec::new()),
        certs_dirs: Vec::new(),
        retry_base_delay: Duration::from_millis(50),
        ..ClientOptions::default()
    })
    .unwrap()
}

/// A real gzip layer holding one file `name` with `body`, written into `store`.
fn layer(store: &OciLayout, name: &str, body: &str) -> CachedLayer {
    let entry = Entry {
        path: name.to_string(),
        kind: EntryKind::File(Content::Bytes(Arc::from(body.as_bytes()))),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: NOW,
        xattrs: BTreeMap::new(),
    };
    let options = LayerOptions {
        compression: Compression::Gzip { level: 6 },
        source_date_epoch: Some(NOW),
    };
    let (info, writer) = write_layer(vec![entry], store.blob_writer().unwrap(), &options).unwrap();
    writer.commit_expecting(&info.digest).unwrap();
    CachedLayer {
        digest: info.digest,
        size: info.size,
        media_type: info.media_type.to_string(),
        diff_id: info.diff_id,
    }
}

fn key(name: &str) -> CacheKey {
    KeyBuilder::new("run").str("cmd", name).finish()
}

/// A record for `RUN name` made at `created`, with a layer holding `/name` (when `body` is some).
fn record(store: &OciLayout, name: &str, body: Option<&str>, created: i64) -> CacheRecord {
    CacheRecord {
        key: key(name),
        created,
        created_by: format!("RUN {name}"),
        layer: body.map(|b| layer(store, name, b)),
    }
}

fn reference(registry: &TestRegistry, repo_tag: &str) -> Reference {
    registry.reference(repo_tag).parse().unwrap()
}

fn by_key<'a>(records: impl Iterator<Item = &'a CacheRecord>) -> BTreeMap<CacheKey, CacheRecord> {
    records.map(|r| (r.key.clone(), r.clone())).collect()
}

fn import(
    client: &BlockingClient,
    refs: &[Reference],
    store: &OciLayout,
) -> (RemoteCaches, Vec<String>) {
    let mut warnings = Vec::new();
    let caches = RemoteCaches::import(client, refs, store, &mut warnings).unwrap();
    (caches, warnings)
}

/// The config blob of `repo_tag` as skopeo reads it.
fn skopeo_config(registry: &TestRegistry, repo_tag: &str) -> RemoteCacheConfig {
    let mut args = vec![
        "inspect".to_string(),
        "--raw".to_string(),
        "--config".into(),
    ];
    args.extend(registry.skopeo_flags(""));
    args.push(format!("docker://{}", registry.reference(repo_tag)));
    serde_json::from_slice(&skopeo(&args)).unwrap()
}

/// The tags of `repo` as skopeo lists them.
fn skopeo_tags(registry: &TestRegistry, repo: &str) -> Vec<String> {
    let mut args = vec!["list-tags".to_string()];
    args.extend(registry.skopeo_flags(""));
    args.push(format!("docker://{}", registry.reference(repo)));
    let listing: Value = serde_json::from_slice(&skopeo(&args)).unwrap();
    listing["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn outcomes(report: &PushReport) -> BTreeMap<Digest, BlobOutcome> {
    report
        .blobs
        .iter()
        .map(|b| (b.digest.clone(), b.outcome.clone()))
        .collect()
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Checks the manifest at `repo_tag` as the registry serves it: the OCI schema (and the Go
/// validator's extra checks) accept it, it announces the cache artifact type and config media
/// type, and its layers are exactly the distinct blobs of `records`, in digest order.
fn check_manifest(registry: &TestRegistry, repo_tag: &str, records: &[&CacheRecord]) -> Value {
    let raw = registry.raw_manifest(repo_tag);
    let validator = OciValidator::load(&common::conformance_dir("oci-image-spec"));
    validator
        .validate(validator::MANIFEST, &raw)
        .unwrap_or_else(|r| panic!("cache manifest fails the OCI schema: {r}"));
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], validator::MANIFEST);
    assert_eq!(manifest["artifactType"], CACHE_ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CACHE_CONFIG_MEDIA_TYPE);
    let mut want: Vec<(String, u64, String)> = records
        .iter()
        .filter_map(|r| r.layer.as_ref())
        .map(|l| (l.digest.to_string(), l.size, l.media_type.clone()))
        .collect();
    want.sort();
    want.dedup();
    let got: Vec<(String, u64, String)> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
                l["mediaType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    manifest
}

/// Exports `records` to `dest` with blobs from `store` only: no local cache, no imported cache,
/// no extra mount source, no TTL.
fn export_plain(
    client: &BlockingClient,
    dest: &Reference,
    records: Vec<CacheRecord>,
    store: &OciLayout,
) -> Result<PushReport, RemoteCacheError> {
    export_with(client, dest, records, store, &RemoteCaches::none())
}

/// Exports `records`, their blobs read from `store`, else through `imported`.
fn export_with(
    client: &BlockingClient,
    dest: &Reference,
    records: Vec<CacheRecord>,
    store: &OciLayout,
    imported: &RemoteCaches,
) -> Result<PushReport, RemoteCacheError> {
    export(
        client,
        dest,
        records,
        &CacheBlobs {
            store,
            local: None,
            imported,
        },
        &ExportOptions {
            mount_from: &[],
            ttl: None,
            now: NOW,
        },
    )
}

#[test]
fn export_then_import_gives_the_same_records_and_blob_bytes() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let records = vec![
        record(&store, "apt-get install curl", Some("curl\n"), NOW - 60),
        record(&store, "pip install flask", Some("flask\n"), NOW - 30),
        record(&store, "mkdir -p /app", None, NOW - 10),
    ];
    let dest = reference(&registry, "cache:main");
    let report = export_plain(&client, &dest, records.clone(), &store).unwrap();

    let raw = registry.raw_manifest("cache:main");
    assert_eq!(report.digest, Digest::of(&raw));
    assert_eq!(
        report.tags[0].line,
        format!("main: digest: {} size: {}", report.digest, raw.len())
    );
    check_manifest(&registry, "cache:main", &records.iter().collect::<Vec<_>>());
    assert_eq!(
        skopeo_config(&registry, "cache:main").entries,
        by_key(records.iter())
    );

    let fresh = OciLayout::open_or_create(tmp.path().join("fresh")).unwrap();
    let (caches, warnings) = import(&client, std::slice::from_ref(&dest), &fresh);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(by_key(caches.records()), by_key(records.iter()));
    assert_eq!(caches.repositories(), vec![Repository::of(&dest)]);
    for r in &records {
        assert_eq!(caches.get(&r.key), Some(r));
        assert_eq!(caches.source(&r.key), Some(&Repository::of(&dest)));
        let Some(layer) = &r.layer else { continue };
        assert!(
            !fresh.has_blob(&layer.digest),
            "layers are fetched on demand"
        );
        caches.fetch_blob(&client, &layer.digest, &fresh).unwrap();
        assert_eq!(
            fs::read(fresh.blob_path(&layer.digest)).unwrap(),
            fs::read(store.blob_path(&layer.digest)).unwrap()
        );
    }
    let unknown = Digest::of(b"not a cached layer");
    let err = caches.fetch_blob(&client, &unknown, &fresh).unwrap_err();
    assert!(matches!(err, RemoteCacheError::UnknownBlob { .. }), "{err}");
    assert!(caches.get(&key("never built")).is_none());
}

#[test]
fn a_second_export_merges_into_the_one_tag() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let dest = reference(&registry, "cache:main");
    let first = vec![
        record(&store, "make deps", Some("deps\n"), NOW - 100),
        record(&store, "make lib", Some("lib\n"), NOW - 90),
    ];
    let second = vec![
        record(&store, "make app", Some("app\n"), NOW - 10),
        // The same key rebuilt later: the newer record replaces the older one.
        record(&store, "make lib", Some("lib, rebuilt\n"), NOW - 5),
    ];
    for records in [&first, &second] {
        export_plain(&client, &dest, records.clone(), &store).unwrap();
    }

    assert_eq!(skopeo_tags(&registry, "cache"), ["main"]);
    let want = by_key([&first[0], &second[0], &second[1]].into_iter());
    check_manifest(&registry, "cache:main", &want.values().collect::<Vec<_>>());
    assert_eq!(skopeo_config(&registry, "cache:main").entries, want);
    let fresh = OciLayout::open_or_create(tmp.path().join("fresh")).unwrap();
    let (caches, _) = import(&client, std::slice::from_ref(&dest), &fresh);
    assert_eq!(by_key(caches.records()), want);

    // An older record for a key does not replace a newer one already in the cache.
    let stale = record(&store, "make app", Some("app, stale\n"), NOW - 1000);
    export_plain(&client, &dest, vec![stale], &store).unwrap();
    assert_eq!(skopeo_config(&registry, "cache:main").entries, want);
}

#[test]
fn re_exporting_the_same_entries_uploads_nothing_and_keeps_the_digest() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let dest = reference(&registry, "cache:main");
    let records = vec![
        record(&store, "step one", Some("1\n"), NOW - 20),
        record(&store, "step two", Some("2\n"), NOW - 10),
        record(&store, "step three", None, NOW - 5),
    ];
    let first = export_plain(&client, &dest, records.clone(), &store).unwrap();
    assert_eq!(first.blobs.len(), 3, "config and two layers");
    assert!(
        first
            .blobs
            .iter()
            .all(|b| matches!(b.outcome, BlobOutcome::Uploaded { .. })),
        "{:?}",
        first.blobs
    );

    // Same entries, given in another order: the same manifest, and every blob already there.
    let mut reversed = records.clone();
    reversed.reverse();
    let again = export_plain(&client, &dest, reversed, &store).unwrap();
    assert_eq!(again.digest, first.digest);
    assert_eq!(again.blobs.len(), 3);
    for b in &again.blobs {
        assert_eq!(b.outcome, BlobOutcome::Exists, "{}", b.digest);
    }
    // Nothing new at all (the records are already in the cache) is the same manifest too.
    let empty = export_plain(&client, &dest, Vec::new(), &store).unwrap();
    assert_eq!(empty.digest, first.digest);
    assert_eq!(
        Digest::of(&registry.raw_manifest("cache:main")),
        first.digest
    );
}

#[test]
fn ttl_drops_entries_older_than_it() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let dest = reference(&registry, "cache:main");
    let old = record(&store, "old step", Some("old\n"), NOW - 7200);
    let recent = record(&store, "recent step", Some("recent\n"), NOW - 1800);
    let none = RemoteCaches::none();
    export_plain(&client, &dest, vec![old.clone(), recent.clone()], &store).unwrap();
    let new = record(&store, "new step", Some("new\n"), NOW);
    export(
        &client,
        &dest,
        vec![new.clone()],
        &CacheBlobs {
            store: &store,
            local: None,
            imported: &none,
        },
        &ExportOptions {
            mount_from: &[],
            ttl: Some(Duration::from_secs(3600)),
            now: NOW,
        },
    )
    .unwrap();

    let want = by_key([&recent, &new].into_iter());
    assert_eq!(skopeo_config(&registry, "cache:main").entries, want);
    let manifest = check_manifest(&registry, "cache:main", &[&recent, &new]);
    let old_digest = old.layer.as_ref().unwrap().digest.to_string();
    assert!(!manifest.to_string().contains(&old_digest));
    let fresh = OciLayout::open_or_create(tmp.path().join("fresh")).unwrap();
    let (caches, _) = import(&client, std::slice::from_ref(&dest), &fresh);
    assert!(caches.get(&old.key).is_none());
    assert_eq!(by_key(caches.records()), want);
}

#[test]
fn a_missing_cache_imports_empty_with_a_warning() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let dest = reference(&registry, "cache:main");
    export_plain(
        &client,
        &dest,
        vec![record(&store, "present", Some("here\n"), NOW)],
        &store,
    )
    .unwrap();

    // A repository that does not exist, and a tag that does not exist in one that does.
    let missing = [
        reference(&registry, "nobody/cache:main"),
        reference(&registry, "cache:other-branch"),
    ];
    let (caches, warnings) = import(&client, &missing, &store);
    assert!(caches.is_empty());
    assert_eq!(caches.records().count(), 0);
    assert!(caches.repositories().is_empty());
    eprintln!("warnings: {warnings:?}");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    for (warning, r) in warnings.iter().zip(&missing) {
        assert!(warning.contains(&format!("`{r}`")), "{warning}");
        assert!(warning.contains("not found"), "{warning}");
    }

    // A missing cache next to a present one: the present one is read.
    let both = [missing[1].clone(), dest.clone()];
    let (caches, warnings) = import(&client, &both, &store);
    assert_eq!(caches.len(), 1);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn an_image_that_is_not_a_cache_is_refused_by_name() {
    let registry = TestRegistry::plain();
    registry.push_image(&busybox_layout(), "app:1");
    let before = registry.raw_manifest("app:1");
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let image = reference(&registry, "app:1");

    let mut warnings = Vec::new();
    let err = RemoteCaches::import(&client, std::slice::from_ref(&image), &store, &mut warnings)
        .unwrap_err();
    let text = error_text(&err);
    eprintln!("import of an image: {text}");
    assert!(matches!(err, RemoteCacheError::NotACache { .. }), "{text}");
    assert!(text.contains(&format!("`{image}`")), "{text}");
    assert!(text.contains("not a kiln cache"), "{text}");

    // Exporting there would destroy the image: refused, and the image is untouched.
    let err = export_plain(
        &client,
        &image,
        vec![record(&store, "x", Some("x\n"), NOW)],
        &store,
    )
    .unwrap_err();
    assert!(
        matches!(err, RemoteCacheError::NotACache { .. }),
        "{}",
        error_text(&err)
    );
    assert_eq!(registry.raw_manifest("app:1"), before);
}

#[test]
fn blobs_of_a_cache_in_one_repository_are_mounted_into_another() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let team_a = reference(&registry, "team-a/cache:main");
    let records = vec![
        record(&store, "shared base", Some("base\n"), NOW - 20),
        record(&store, "shared deps", Some("deps\n"), NOW - 10),
    ];
    export_plain(&client, &team_a, records.clone(), &store).unwrap();

    // Another build with an empty store: it imports team A's cache and exports to team B's.
    let other = OciLayout::open_or_create(tmp.path().join("other")).unwrap();
    let (imported, _) = import(&client, std::slice::from_ref(&team_a), &other);
    let team_b = reference(&registry, "team-b/cache:main");
    let report = export_with(
        &client,
        &team_b,
        imported.records().cloned().collect::<Vec<_>>(),
        &other,
        &imported,
    )
    .unwrap();
    let mounted = outcomes(&report);
    for r in &records {
        let digest = &r.layer.as_ref().unwrap().digest;
        assert_eq!(
            mounted[digest],
            BlobOutcome::Mounted {
                from: "team-a/cache".to_string()
            }
        );
        assert!(!other.has_blob(digest), "a mounted blob is not downloaded");
    }
    check_manifest(
        &registry,
        "team-b/cache:main",
        &records.iter().collect::<Vec<_>>(),
    );
    assert_eq!(
        skopeo_config(&registry, "team-b/cache:main").entries,
        by_key(records.iter())
    );

    // `extra_mount_from` names a repository that holds a blob without being an imported cache.
    let extra = record(&store, "extra", Some("extra\n"), NOW);
    export_plain(
        &client,
        &reference(&registry, "team-c/cache:main"),
        vec![extra.clone()],
        &store,
    )
    .unwrap();
    let empty = OciLayout::open_or_create(tmp.path().join("empty")).unwrap();
    let report = export(
        &client,
        &team_b,
        vec![extra.clone()],
        &CacheBlobs {
            store: &empty,
            local: None,
            imported: &RemoteCaches::none(),
        },
        &ExportOptions {
            mount_from: &[Repository::of(&reference(&registry, "team-c/cache:main"))],
            ttl: None,
            now: NOW,
        },
    )
    .unwrap();
    assert_eq!(
        outcomes(&report)[&extra.layer.as_ref().unwrap().digest],
        BlobOutcome::Mounted {
            from: "team-c/cache".to_string()
        }
    );
}

#[test]
fn blobs_come_from_the_local_cache_or_are_downloaded_from_an_imported_one() {
    let registry = TestRegistry::plain();
    let elsewhere = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let build_store = OciLayout::open_or_create(tmp.path().join("build")).unwrap();
    let local = LocalCache::open(tmp.path().join("local-cache")).unwrap();
    let record = record(&build_store, "cached locally", Some("local\n"), NOW);
    local.put(&record, &build_store, None).unwrap();
    let digest = record.layer.as_ref().unwrap().digest.clone();

    // The build's store lacks the blob; the local cache has it.
    let empty = OciLayout::open_or_create(tmp.path().join("empty")).unwrap();
    let dest = reference(&registry, "cache:main");
    export(
        &client,
        &dest,
        vec![record.clone()],
        &CacheBlobs {
            store: &empty,
            local: Some(&local),
            imported: &RemoteCaches::none(),
        },
        &ExportOptions {
            mount_from: &[],
            ttl: None,
            now: NOW,
        },
    )
    .unwrap();
    let (imported, _) = import(&client, std::slice::from_ref(&dest), &empty);
    imported.fetch_blob(&client, &digest, &empty).unwrap();
    assert_eq!(
        fs::read(empty.blob_path(&digest)).unwrap(),
        fs::read(build_store.blob_path(&digest)).unwrap()
    );

    // A cache on another registry cannot be mounted from: the blob is downloaded, then uploaded.
    let third = OciLayout::open_or_create(tmp.path().join("third")).unwrap();
    let (imported, _) = import(&client, std::slice::from_ref(&dest), &third);
    let report = export(
        &client,
        &reference(&elsewhere, "mirror/cache:main"),
        imported.records().cloned().collect::<Vec<_>>(),
        &CacheBlobs {
            store: &third,
            local: None,
            imported: &imported,
        },
        &ExportOptions {
            mount_from: &[],
            ttl: None,
            now: NOW,
        },
    )
    .unwrap();
    assert!(matches!(
        outcomes(&report)[&digest],
        BlobOutcome::Uploaded { .. }
    ));
    assert!(third.has_blob(&digest));
    assert_eq!(
        skopeo_config(&elsewhere, "mirror/cache:main").entries,
        by_key([&record].into_iter())
    );

    // A blob found nowhere fails the export, naming it.
    let lost = CacheRecord {
        key: key("lost"),
        created: NOW,
        created_by: "RUN lost".into(),
        layer: Some(CachedLayer {
            digest: Digest::of(b"lost layer"),
            size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            diff_id: Digest::of(b"lost layer"),
        }),
    };
    let err = export_plain(
        &client,
        &reference(&registry, "cache:lost"),
        vec![lost],
        &third,
    )
    .unwrap_err();
    let text = error_text(&err);
    eprintln!("export of a lost blob: {text}");
    assert!(
        text.contains(&Digest::of(b"lost layer").to_string()),
        "{text}"
    );
}

#[test]
fn a_cache_of_steps_without_layers_is_still_a_valid_manifest() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let client = client(tmp.path());
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let dest = reference(&registry, "cache:main");
    let records = vec![record(&store, "workdir /", None, NOW)];
    export_plain(&client, &dest, records.clone(), &store).unwrap();
    // The schema wants at least one layer: the OCI empty descriptor stands in.
    let raw = registry.raw_manifest("cache:main");
    let validator = OciValidator::load(&common::conformance_dir("oci-image-spec"));
    validator.validate(validator::MANIFEST, &raw).unwrap();
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["layers"],
        serde_json::json!([{
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2
        }])
    );
    let (caches, _) = import(&client, std::slice::from_ref(&dest), &store);
    assert_eq!(by_key(caches.records()), by_key(records.iter()));
}
