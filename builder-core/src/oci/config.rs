//! The image configuration (`application/vnd.oci.image.config.v1+json`).
//!
//! kiln keeps its own type rather than oci-spec's: that one drops Docker's fields (Healthcheck,
//! OnBuild, Shell, ArgsEscaped) and serialises its maps in random order, which would change
//! digests from build to build. Here every map is a `BTreeMap`, fields we do not know are kept in
//! `extra` and written back, and empty fields are omitted as Docker omits them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

/// An image's configuration blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it (from `MAINTAINER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), when the platform has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How a container runs: the metadata instructions end up here.
    #[serde(default, skip_serializing_if = "ContainerConfig::is_empty")]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests, base first.
    pub rootfs: RootFs,
    /// One entry per instruction, base image's first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this version of kiln does not model, kept so a round trip loses nothing.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The execution parameters of an image (`config` in the image config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`, as `port/proto` keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// `ENV`, as `KEY=value`, in the order first set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    /// `WORKDIR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `LABEL` and `--label`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's flag for Windows command lines; kept when a base image has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// `HEALTHCHECK` (Docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers (Docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `SHELL` (Docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields this version of kiln does not model.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ContainerConfig {
    /// True when nothing would be written.
    pub fn is_empty(&self) -> bool {
        *self == ContainerConfig::default()
    }

    /// The value of `name` in `Env`, if set.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().flatten().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then_some(v)
        })
    }

    /// Sets `name=value` in `Env`, replacing an earlier value in place (as Docker does) or
    /// appending.
    pub fn set_env_var(&mut self, name: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == name)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

/// `{}`: the value type of Docker's set-like maps (`ExposedPorts`, `Volumes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// A container health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub test: Vec<String>,
    /// Time between checks, in nanoseconds (0 = Docker's default).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub interval: u64,
    /// Time a check may take, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub timeout: u64,
    /// Grace period after start, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub start_period: u64,
    /// Time between checks during the start period, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub start_interval: u64,
    /// Consecutive failures before the container is unhealthy.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The layer list of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of how the image was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, expanded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Which builder made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer (metadata-only instructions).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// An empty configuration for `platform`: what `FROM scratch` starts from.
    pub fn scratch(platform: &super::Platform) -> ImageConfig {
        ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            ..ImageConfig::default()
        }
    }

    /// The canonical bytes: compact JSON with fields in a fixed order and sorted maps.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and BTreeMaps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip_and_maps_are_sorted() {
        let raw = r#"{"architecture":"amd64","os":"linux","config":{"Labels":{"z":"1","a":"2"},"Foo":1},"rootfs":{"type":"layers","diff_ids":[]},"moby.buildkit.cache.v0":"x"}"#;
        let cfg: ImageConfig = serde_json::from_str(raw).unwrap();
        let out = String::from_utf8(cfg.to_bytes()).unwrap();
        assert!(out.contains(r#""Labels":{"a":"2","z":"1"}"#), "{out}");
        assert!(out.contains(r#""Foo":1"#), "{out}");
        assert!(out.contains(r#""moby.buildkit.cache.v0":"x""#), "{out}");
    }

    #[test]
    fn set_env_var_replaces_in_place() {
        let mut c = ContainerConfig::default();
        c.set_env_var("PATH", "/bin");
        c.set_env_var("A", "1");
        c.set_env_var("PATH", "/usr/bin:/bin");
        assert_eq!(
            c.env.as_deref().unwrap(),
            ["PATH=/usr/bin:/bin".to_string(), "A=1".to_string()]
        );
        assert_eq!(c.env_var("A"), Some("1"));
    }
}
