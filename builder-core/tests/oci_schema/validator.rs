//! A validator for OCI image-spec documents that agrees with the upstream Go one: the v1.1.1
//! JSON Schemas (draft-04, resolved offline through `schema-aliases.json`), plus the checks the
//! Go validator makes beyond the schemas (`shared/conformance/oci-image-spec/NOTES.md`):
//!
//! * descriptors: the digest is validated (known algorithms need the right length of lower-case
//!   hex; unknown algorithms are accepted when well formed);
//! * every `data` field must decode as padded standard base64, as Go's `[]byte` decoding demands;
//! * configs: every `Env` entry must be `KEY=value`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use jsonschema::{Draft, Resource, Retrieve, Uri, Validator};
use regex::Regex;
use serde_json::Value;

/// `application/vnd.oci.descriptor.v1+json`.
pub const DESCRIPTOR: &str = "application/vnd.oci.descriptor.v1+json";
/// `application/vnd.oci.layout.header.v1+json`.
pub const LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Validator media type → schema file, as in upstream `schema/schema.go`.
const SCHEMA_FILES: [(&str, &str); 5] = [
    (DESCRIPTOR, "content-descriptor.json"),
    (LAYOUT_HEADER, "image-layout-schema.json"),
    (MANIFEST, "image-manifest-schema.json"),
    (INDEX, "image-index-schema.json"),
    (CONFIG, "config-schema.json"),
];

/// The step that rejected a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Not JSON at all.
    Json,
    /// The JSON Schema.
    Schema,
    /// One of the Go validator's extra checks.
    GoChecks,
}

/// Why a document was rejected.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Which step rejected it.
    pub stage: Stage,
    /// Every reason found at that step.
    pub reasons: Vec<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.stage, self.reasons.join("; "))
    }
}

/// Refuses every retrieval: all schemas are registered up front, and tests never use the network.
struct Offline;

impl Retrieve for Offline {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("`{uri}` is not one of the registered schema URLs").into())
    }
}

/// One compiled schema per validator media type.
pub struct OciValidator {
    schemas: BTreeMap<&'static str, Validator>,
}

impl OciValidator {
    /// Loads the schemas from `dir` (the directory holding `schema/` and `schema-aliases.json`).
    pub fn load(dir: &Path) -> OciValidator {
        let aliases: BTreeMap<String, Value> =
            serde_json::from_slice(&std::fs::read(dir.join("schema-aliases.json")).unwrap())
                .unwrap();
        let read_schema = |file: &str| -> Value {
            let path: PathBuf = dir.join("schema").join(file);
            serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mut resources: Vec<(String, Resource)> = Vec::new();
        for (file, urls) in &aliases {
            let Some(urls) = urls.as_array() else {
                continue; // `_comment`
            };
            let contents = read_schema(file);
            for url in urls {
                let url = url.as_str().unwrap().to_string();
                resources.push((url, Draft::Draft4.create_resource(contents.clone())));
            }
        }
        let schemas = SCHEMA_FILES
            .iter()
            .map(|(media_type, file)| {
                let validator = jsonschema::draft4::options()
                    .should_validate_formats(true)
                    .with_resources(resources.clone().into_iter())
                    .with_retriever(Offline)
                    .build(&read_schema(file))
                    .unwrap_or_else(|e| panic!("schema `{file}` does not compile: {e}"));
                (*media_type, validator)
            })
            .collect();
        OciValidator { schemas }
    }

    /// Validates `bytes` as a document of `media_type`, the way the Go validator does.
    pub fn validate(&self, media_type: &str, bytes: &[u8]) -> Result<(), Rejection> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Rejection {
            stage: Stage::Json,
            reasons: vec![e.to_string()],
        })?;
        self.validate_value(media_type, &value)
    }

    /// Validates an already parsed document of `media_type`.
    pub fn validate_value(&self, media_type: &str, value: &Value) -> Result<(), Rejection> {
        let schema = self
            .schemas
            .get(media_type)
            .unwrap_or_else(|| panic!("no schema for `{media_type}`"));
        let reasons: Vec<String> = schema
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        if !reasons.is_empty() {
            return Err(Rejection {
                stage: Stage::Schema,
                reasons,
            });
        }
        let reasons = go_checks(media_type, value);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                stage: Stage::GoChecks,
                reasons,
            })
        }
    }
}

/// The checks `schema/validator.go` makes after the schema passes.
fn go_checks(media_type: &str, value: &Value) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut descriptors = Vec::new();
    match media_type {
        DESCRIPTOR => {
            if let Some(digest) = value.get("digest").and_then(Value::as_str)
                && let Err(reason) = validate_digest(digest)
            {
                reasons.push(format!("/digest: {reason}"));
            }
            descriptors.push(("", value));
        }
        MANIFEST => {
            descriptors.extend(value.get("config").map(|d| ("/config", d)));
            descriptors.extend(value.get("subject").map(|d| ("/subject", d)));
            for d in value
                .get("layers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                descriptors.push(("/layers/*", d));
            }
        }
        INDEX => {
            descriptors.extend(value.get("subject").map(|d| ("/subject", d)));
            for d in value
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                descriptors.push(("/manifests/*", d));
            }
        }
        CONFIG => {
            let env = value.pointer("/config/Env").and_then(Value::as_array);
            for entry in env.into_iter().flatten() {
                let entry = entry.as_str().unwrap_or_default();
                if !is_env_entry(entry) {
                    reasons.push(format!("/config/Env: `{entry}` is not `KEY=value`"));
                }
            }
        }
        _ => {}
    }
    for (at, descriptor) in descriptors {
        if let Some(data) = descriptor.get("data").and_then(Value::as_str)
            && !is_padded_base64(data)
        {
            reasons.push(format!("{at}/data: not padded standard base64"));
        }
    }
    reasons
}

/// The Go validator's `^[^=]+=.*$`: a non-empty name, then `=`.
fn is_env_entry(entry: &str) -> bool {
    static ENV_ENTRY: LazyLock<Regex> = LazyLock::new(|| Regex::new("^[^=]+=.*$").unwrap());
    ENV_ENTRY.is_match(entry)
}

/// go-digest's `Digest.Validate`, with unsupported algorithms accepted as image-spec's
/// validator accepts them.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(format!("`{digest}` has no `:`"));
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(format!("`{digest}` is not `algorithm:encoded`"));
    }
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return if is_well_formed_digest(algorithm, encoded) {
                Ok(())
            } else {
                Err(format!("`{digest}` is not a well-formed digest"))
            };
        }
    };
    let lower_hex = encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if encoded.len() != hex_len || !lower_hex {
        return Err(format!(
            "`{digest}`: {algorithm} needs {hex_len} lower-case hex characters"
        ));
    }
    Ok(())
}

/// The distribution grammar `algorithm-component ([+._-] algorithm-component)* ":" encoded`.
fn is_well_formed_digest(algorithm: &str, encoded: &str) -> bool {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    algorithm.split(['+', '.', '_', '-']).all(component_ok)
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// Whether Go's `base64.StdEncoding` would decode `data`: the standard alphabet, whole 4-byte
/// groups, `=` only as the final padding. Go skips CR and LF.
fn is_padded_base64(data: &str) -> bool {
    let bytes: Vec<u8> = data
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body_len = bytes.len()
        - bytes
            .iter()
            .rev()
            .take(2)
            .take_while(|&&b| b == b'=')
            .count();
    bytes[..body_len]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::{is_env_entry, is_padded_base64, validate_digest};

    #[test]
    fn env_entries_need_a_name_and_an_equals_sign() {
        assert!(is_env_entry("A="));
        assert!(is_env_entry("PATH=/bin:/usr/bin"));
        assert!(is_env_entry("A==b"));
        assert!(!is_env_entry("foo"));
        assert!(!is_env_entry("=value"));
    }

    #[test]
    fn base64_needs_padding() {
        assert!(is_padded_base64(""));
        assert!(is_padded_base64("aGk="));
        assert!(is_padded_base64("aA=="));
        assert!(!is_padded_base64("aGk"));
        assert!(!is_padded_base64("a==="));
        assert!(!is_padded_base64("aG=k"));
        assert!(!is_padded_base64("aG_k"));
    }

    #[test]
    fn digests_follow_go_digest() {
        let hex64 = "a".repeat(64);
        assert!(validate_digest(&format!("sha256:{hex64}")).is_ok());
        assert!(validate_digest(&format!("sha256:{}", hex64.to_uppercase())).is_err());
        assert!(validate_digest("sha256:abc").is_err());
        assert!(validate_digest(&format!("sha512:{hex64}")).is_err());
        assert!(
            validate_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
                .is_ok()
        );
        assert!(validate_digest("sha256+foo+-b:abc").is_err());
        assert!(validate_digest(":abc").is_err());
    }
}
