//! Build arguments: `--build-arg`, ARG declarations and their scopes, and the predefined args.
//!
//! Docker's rules: ARGs before the first FROM are global and usable only in FROM lines unless a
//! stage declares them again (`ARG NAME` with no default then takes the global value). A
//! `--build-arg` overrides a declaration's default. The platform args (`TARGETPLATFORM`, ...) are
//! global automatically and visible in a stage once declared; the proxy args may be passed without
//! being declared and reach RUN only.

use std::collections::BTreeMap;

use crate::oci::Platform;

/// Proxy variables that `--build-arg` may set without an ARG declaration.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The args BuildKit predefines for every build: the target and build platforms (`TARGETARCH`,
/// `BUILDPLATFORM`, ...) and `TARGETSTAGE`, the name of the stage being built (`default` when it
/// has none). They are global, so usable in FROM without a declaration; a `--build-arg` of the
/// same name replaces the value.
pub fn predefined_args(
    target: &Platform,
    build: &Platform,
    target_stage: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        args.insert(format!("{prefix}PLATFORM"), p.to_string());
        args.insert(format!("{prefix}OS"), p.os.clone());
        args.insert(format!("{prefix}OSVERSION"), String::new());
        args.insert(format!("{prefix}ARCH"), p.architecture.clone());
        args.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    let stage = target_stage.filter(|s| !s.is_empty()).unwrap_or("default");
    args.insert("TARGETSTAGE".to_string(), stage.to_string());
    for (name, value) in args.iter_mut() {
        if let Some(v) = build_args.get(name) {
            value.clone_from(v);
        }
    }
    args
}

/// The args visible at one point of a stage, in declaration order (later wins).
#[derive(Debug, Clone, Default)]
pub struct ArgScope {
    values: Vec<(String, String)>,
}

impl ArgScope {
    /// Declares `name` with `value`, replacing an earlier declaration.
    pub fn set(&mut self, name: &str, value: String) {
        self.values.retain(|(k, _)| k != name);
        self.values.push((name.to_string(), value));
    }

    /// The value of `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every declared arg, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
