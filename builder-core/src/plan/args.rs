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

/// The automatic platform args for a build targeting `target` on `build`.
pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        args.insert(format!("{prefix}PLATFORM"), p.to_string());
        args.insert(format!("{prefix}OS"), p.os.clone());
        args.insert(format!("{prefix}ARCH"), p.architecture.clone());
        args.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
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
