//! OCI image-spec v1.1.1 conformance (`shared/conformance/oci-image-spec`, read at test time):
//! the schema harness agrees with the upstream Go validator on its own test vectors, what kiln
//! writes validates, kiln's config type round-trips real configs, and digests are taken over the
//! exact bytes.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;
#[path = "oci_schema/validator.rs"]
mod validator;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use builder_core::build::{BuildEvent, BuildOptions, build};
use builder_core::export::Output;
use builder_core::oci::{Digest, ImageConfig};
use serde_json::Value;
use validator::{OciValidator, Stage};

fn spec_dir() -> PathBuf {
    common::conformance_dir("oci-image-spec")
}

/// One row of `cases/index.tsv` or `md-examples/index.tsv`.
struct Case {
    file: String,
    media_type: String,
    expected_pass: bool,
    extra: String,
}

impl Case {
    fn bytes(&self, dir: &str) -> Vec<u8> {
        std::fs::read(spec_dir().join(dir).join(&self.file)).unwrap()
    }

    fn is_backwards_compatibility(&self) -> bool {
        self.file.starts_with("TestBackwardsCompatibility")
    }
}

fn cases(dir: &str) -> Vec<Case> {
    let index = std::fs::read_to_string(spec_dir().join(dir).join("index.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            let expected_pass = match fields[2] {
                "pass" => true,
                "fail" => false,
                other => panic!("unexpected `expected` value `{other}` in {dir}/index.tsv"),
            };
            Case {
                file: fields[0].to_string(),
                media_type: fields[1].to_string(),
                expected_pass,
                extra: fields.get(4).copied().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// What upstream's back-compat test does before validating a Docker v2.2 document.
fn docker_to_oci_media_types(bytes: &[u8]) -> Vec<u8> {
    const REPLACEMENTS: [(&str, &str); 4] = [
        (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.index.v1+json",
        ),
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.oci.image.config.v1+json",
        ),
    ];
    let mut text = String::from_utf8(bytes.to_vec()).unwrap();
    for (docker, oci) in REPLACEMENTS {
        text = text.replace(docker, oci);
    }
    text.into_bytes()
}

#[test]
fn harness_agrees_with_upstream_vectors() {
    let validator = OciValidator::load(&spec_dir());
    let all = cases("cases");
    let mut mismatches = Vec::new();
    let mut rejected_at: BTreeMap<Stage, usize> = BTreeMap::new();
    let (mut passes, mut fails) = (0, 0);
    for case in &all {
        let mut bytes = case.bytes("cases");
        if case.is_backwards_compatibility() {
            bytes = docker_to_oci_media_types(&bytes);
        }
        let outcome = validator.validate(&case.media_type, &bytes);
        match (&outcome, case.expected_pass) {
            (Ok(()), true) => passes += 1,
            (Err(rejection), false) => {
                fails += 1;
                *rejected_at.entry(rejection.stage).or_default() += 1;
                println!("{}: rejected as expected ({rejection})", case.file);
            }
            (Ok(()), false) => mismatches.push(format!("{}: accepted, expected fail", case.file)),
            (Err(rejection), true) => mismatches.push(format!(
                "{}: rejected, expected pass: {rejection}",
                case.file
            )),
        }
    }
    eprintln!(
        "oci-image-spec cases: {} of {} as expected ({passes} pass, {fails} fail; rejected at {rejected_at:?})",
        passes + fails,
        all.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(all.len(), 61, "v1.1.1 has 61 cases");
    assert_eq!((passes, fails), (22, 39));
}

#[test]
fn go_side_checks_are_needed_only_where_notes_say() {
    // The cases the schema alone lets through, each caught by one of the Go validator's checks.
    let validator = OciValidator::load(&spec_dir());
    let mut by_go_checks: Vec<String> = cases("cases")
        .iter()
        .filter(|case| {
            let outcome = validator.validate(&case.media_type, &case.bytes("cases"));
            matches!(outcome, Err(r) if r.stage == Stage::GoChecks)
        })
        .map(|case| case.file.clone())
        .collect();
    by_go_checks.sort();
    eprintln!("rejected only by the Go-side checks: {by_go_checks:?}");
    assert_eq!(
        by_go_checks,
        [
            "TestConfig-09-invalid.json",     // Env entry without `=`
            "TestDescriptor-14-invalid.json", // upper-case sha256 hex
            "TestDescriptor-21-invalid.json", // base64 `data` without padding
        ]
    );
}

#[test]
fn spec_examples_all_validate() {
    let validator = OciValidator::load(&spec_dir());
    let examples = cases("md-examples");
    let mut failures = Vec::new();
    for example in &examples {
        assert!(example.expected_pass, "{}", example.file);
        if let Err(rejection) =
            validator.validate(&example.media_type, &example.bytes("md-examples"))
        {
            failures.push(format!("{}: {rejection}", example.file));
        }
    }
    eprintln!(
        "oci-image-spec md-examples: {} of {} pass",
        examples.len() - failures.len(),
        examples.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(examples.len(), 10);
}

#[test]
fn backwards_compatibility_digests_cover_the_exact_bytes() {
    let compat: Vec<Case> = cases("cases")
        .into_iter()
        .filter(Case::is_backwards_compatibility)
        .collect();
    for case in &compat {
        let expected = case
            .extra
            .strip_prefix("expected_digest=")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: no expected_digest in `{}`", case.file, case.extra));
        let bytes = case.bytes("cases");
        assert_eq!(Digest::of(&bytes).to_string(), expected, "{}", case.file);
        assert_eq!(Digest::of(&bytes), expected.parse::<Digest>().unwrap());
        // Re-serialising would give another digest: the bytes as stored are what is named.
        let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(&bytes).unwrap());
        assert_ne!(Digest::of(&reserialised.unwrap()).to_string(), expected);
    }
    eprintln!("backwards-compatibility digests: {} checked", compat.len());
    assert_eq!(compat.len(), 4);
}

/// Serialises `value` through kiln's config type.
fn through_image_config(value: &Value) -> Value {
    let config: ImageConfig = serde_json::from_value(value.clone()).unwrap();
    serde_json::to_value(&config).unwrap()
}

/// How `after` differs from `before`, one line per JSON pointer. Object keys are compared as a
/// map, so key order does not count.
fn differences(at: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, b_value) in b {
                let path = format!("{at}/{key}");
                match a.get(key) {
                    Some(a_value) => differences(&path, b_value, a_value, out),
                    None => out.push(format!("{path}: {b_value} was dropped")),
                }
            }
            for (key, a_value) in a {
                if !b.contains_key(key) {
                    out.push(format!("{at}/{key}: {a_value} was added"));
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (b_item, a_item)) in b.iter().zip(a).enumerate() {
                differences(&format!("{at}/{i}"), b_item, a_item, out);
            }
        }
        _ if before == after => {}
        _ => out.push(format!("{at}: {before} became {after}")),
    }
}

#[test]
fn image_config_round_trips_every_passing_config() {
    let mut checked = Vec::new();
    let mut lost = Vec::new();
    let mut nulls_dropped = Vec::new();
    for (dir, case) in cases("cases")
        .into_iter()
        .map(|c| ("cases", c))
        .chain(cases("md-examples").into_iter().map(|c| ("md-examples", c)))
    {
        if !case.expected_pass || case.media_type != validator::CONFIG {
            continue;
        }
        let before: Value = serde_json::from_slice(&case.bytes(dir)).unwrap();
        let after = through_image_config(&before);
        let mut found = Vec::new();
        differences("", &before, &after, &mut found);
        for difference in found {
            let line = format!("{dir}/{}: {difference}", case.file);
            // Go's decoder reads `null` as absent for these fields, so this loses nothing a
            // reader can see; it is reported, not failed.
            if difference.ends_with(": null was dropped") {
                nulls_dropped.push(line);
            } else {
                lost.push(line);
            }
        }
        checked.push(case.file);
    }
    eprintln!("config round trips: {} checked: {checked:?}", checked.len());
    if !nulls_dropped.is_empty() {
        eprintln!(
            "explicit nulls written back as absent:\n  {}",
            nulls_dropped.join("\n  ")
        );
    }
    assert!(lost.is_empty(), "{}", lost.join("\n"));
    assert_eq!(checked.len(), 5);
}

/// Reads a file of an OCI layout by its path relative to the layout root.
type LayoutReader<'a> = dyn Fn(&str) -> Vec<u8> + 'a;

/// Validates every document and descriptor of the layout, and checks each descriptor against
/// the blob it names. Returns the manifest digests the index lists.
fn check_layout(validator: &OciValidator, read: &LayoutReader<'_>) -> Vec<String> {
    let valid = |media_type: &str, what: &str, bytes: &[u8]| {
        if let Err(rejection) = validator.validate(media_type, bytes) {
            panic!("{what}: {rejection}\n{}", String::from_utf8_lossy(bytes));
        }
    };
    let descriptor = |what: &str, d: &Value| -> Vec<u8> {
        if let Err(rejection) = validator.validate_value(validator::DESCRIPTOR, d) {
            panic!("{what}: {rejection}\n{d}");
        }
        let digest = d["digest"].as_str().unwrap();
        let blob = read(&format!("blobs/{}", digest.replacen(':', "/", 1)));
        assert_eq!(Digest::of(&blob).to_string(), digest, "{what}: blob digest");
        assert_eq!(d["size"].as_u64(), Some(blob.len() as u64), "{what}: size");
        blob
    };

    valid(validator::LAYOUT_HEADER, "oci-layout", &read("oci-layout"));
    let index_bytes = read("index.json");
    valid(validator::INDEX, "index.json", &index_bytes);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert!(!manifests.is_empty());
    let mut listed = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        let what = format!("index.json manifests[{i}]");
        assert_eq!(m["mediaType"], validator::MANIFEST, "{what}");
        let manifest_bytes = descriptor(&what, m);
        valid(validator::MANIFEST, &what, &manifest_bytes);
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(manifest["mediaType"], validator::MANIFEST);

        let config_bytes = descriptor("manifest config", &manifest["config"]);
        assert_eq!(manifest["config"]["mediaType"], validator::CONFIG);
        valid(validator::CONFIG, "config", &config_bytes);
        let config: Value = serde_json::from_slice(&config_bytes).unwrap();

        let layers = manifest["layers"].as_array().unwrap();
        for (j, layer) in layers.iter().enumerate() {
            descriptor(&format!("manifest layers[{j}]"), layer);
        }
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(diff_ids.len(), layers.len(), "one diff_id per layer");

        // kiln's own config is written in its canonical form: reading and writing it back
        // through its type gives the same bytes.
        let reparsed: ImageConfig = serde_json::from_slice(&config_bytes).unwrap();
        assert_eq!(serde_json::to_vec(&reparsed).unwrap(), config_bytes);
        listed.push(m["digest"].as_str().unwrap().to_string());
    }
    listed
}

fn example_context() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/example")
}

#[test]
fn built_image_validates_as_oci_dir_and_tar() {
    let validator = OciValidator::load(&spec_dir());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("image");
    let tar = work.path().join("image.tar");
    let mut options = BuildOptions::new(example_context());
    options.store_dir = work.path().join("store");
    options.layers_dir = work.path().join("layers");
    options.cache.dir = Some(work.path().join("build-cache"));
    options.outputs = vec![Output::OciDir(dir.clone()), Output::OciTar(tar.clone())];
    options.source_date_epoch = Some(1_700_000_000);
    let report = build(&options, &|_: BuildEvent| {}).unwrap();

    let from_dir = check_layout(&validator, &|rel: &str| {
        std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    });

    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.insert(path, bytes);
    }
    let from_tar = check_layout(&validator, &|rel: &str| {
        entries
            .get(rel)
            .cloned()
            .unwrap_or_else(|| panic!("`{rel}` is not in the tar"))
    });

    let expected = vec![report.digest.to_string()];
    assert_eq!(from_dir, expected);
    assert_eq!(from_tar, expected);
    eprintln!(
        "built image {} validates as an OCI directory and an OCI tar",
        report.digest
    );
}
