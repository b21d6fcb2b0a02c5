//! Credentials for a registry, looked up where `docker login` and `podman login` put them.
//!
//! Order: docker's `config.json` (`credHelpers` for the registry, then `credsStore`, then
//! `auths`), then podman's `auth.json` (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/`,
//! `~/.config/containers/`). The first source that has an entry wins, and it is remembered so
//! an error can say which source the registry rejected. Secrets never appear in `Debug` output
//! or error messages.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::error::{Error, Result};

/// The key docker uses for Docker Hub in `config.json` and with credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A secret for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token), sent as Basic or to a token service.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken {
        /// The user name, when known.
        username: Option<String>,
        /// The refresh token.
        token: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken { username, .. } => f
                .debug_struct("IdentityToken")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Where a credential came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// No credentials were found: the request was anonymous.
    Anonymous,
    /// The `auths` section of a docker `config.json` or podman `auth.json`.
    File(PathBuf),
    /// A `docker-credential-<name>` helper.
    Helper(String),
    /// The user name and password given to `login`.
    Login,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Anonymous => f.write_str("no credentials (anonymous access)"),
            CredentialSource::File(p) => write!(f, "`{}`", p.display()),
            CredentialSource::Helper(h) => write!(f, "credential helper `docker-credential-{h}`"),
            CredentialSource::Login => f.write_str("the given user name and password"),
        }
    }
}

/// Where credentials are looked up and written.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    docker_config: PathBuf,
    podman_files: Vec<PathBuf>,
}

impl CredentialStore {
    /// The store for docker config directory `docker_config_dir` (default: `$DOCKER_CONFIG`,
    /// else `~/.docker`), plus podman's usual `auth.json` files.
    pub fn new(docker_config_dir: Option<&Path>) -> CredentialStore {
        let dir = docker_config_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
            .or_else(|| dirs::home_dir().map(|h| h.join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let mut podman_files = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
            podman_files.push(PathBuf::from(f));
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            podman_files.push(PathBuf::from(d).join("containers").join("auth.json"));
        }
        if let Some(d) = dirs::config_dir() {
            podman_files.push(d.join("containers").join("auth.json"));
        }
        CredentialStore {
            docker_config: dir.join("config.json"),
            podman_files,
        }
    }

    /// Replaces podman's `auth.json` locations (none: docker's file only).
    pub fn with_podman_files(mut self, files: Vec<PathBuf>) -> CredentialStore {
        self.podman_files = files;
        self
    }

    /// The docker `config.json` that `login` writes.
    pub fn docker_config_path(&self) -> &Path {
        &self.docker_config
    }

    /// The credential for `registry` (`host[:port]`, `docker.io` for Docker Hub), and where it
    /// came from. Runs credential helpers, so call it off the async threads.
    pub fn lookup(&self, registry: &str) -> Result<Option<(Credential, CredentialSource)>> {
        if let Some(config) = read_json(&self.docker_config)? {
            if let Some(helper) = configured_helper(&config, registry)
                && let Some(c) = helper_get(&helper, registry)?
            {
                return Ok(Some((c, CredentialSource::Helper(helper))));
            }
            if let Some(c) = from_auths(&config, registry, &self.docker_config)? {
                return Ok(Some((
                    c,
                    CredentialSource::File(self.docker_config.clone()),
                )));
            }
        }
        for file in &self.podman_files {
            if let Some(config) = read_json(file)?
                && let Some(c) = from_auths(&config, registry, file)?
            {
                return Ok(Some((c, CredentialSource::File(file.clone()))));
            }
        }
        Ok(None)
    }

    /// Saves `username`/`password` for `registry` as `docker login` does: through the
    /// configured credential helper, or base64 in `auths` of `config.json` (mode 0600, every
    /// other key kept). Returns where it was saved.
    pub fn store(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<CredentialSource> {
        let mut config = read_json(&self.docker_config)?.unwrap_or_default();
        let key = helper_key(registry);
        if let Some(helper) = configured_helper(&config, registry) {
            let input =
                serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
            run_helper(&helper, "store", registry, &input.to_string())?;
            // docker records an empty entry so `docker logout` and listings know about it.
            auths_mut(&mut config).insert(key.to_string(), Value::Object(Map::new()));
            write_config(&self.docker_config, &config)?;
            return Ok(CredentialSource::Helper(helper));
        }
        let auth = BASE64.encode(format!("{username}:{password}"));
        let auths = auths_mut(&mut config);
        for alias in aliases(registry) {
            auths.remove(&alias);
        }
        auths.insert(key.to_string(), serde_json::json!({ "auth": auth }));
        write_config(&self.docker_config, &config)?;
        Ok(CredentialSource::File(self.docker_config.clone()))
    }

    /// Removes the credential for `registry` from `config.json` (and its helper). Returns
    /// whether there was one.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let Some(mut config) = read_json(&self.docker_config)? else {
            return Ok(false);
        };
        let mut removed = false;
        if let Some(helper) = configured_helper(&config, registry) {
            removed |= run_helper(&helper, "erase", registry, helper_key(registry)).is_ok();
        }
        if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
            for alias in aliases(registry) {
                removed |= auths.remove(&alias).is_some();
            }
        }
        write_config(&self.docker_config, &config)?;
        Ok(removed)
    }
}

/// The key credential helpers and `auths` use for `registry`.
pub fn helper_key(registry: &str) -> &str {
    if registry == crate::oci::reference::DEFAULT_REGISTRY {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// Normalises what a user types after `login`/`logout` (`https://host:5000/`, `index.docker.io`)
/// to the registry name references use.
pub fn normalize_registry(input: &str) -> String {
    let s = input
        .strip_prefix("https://")
        .or_else(|| input.strip_prefix("http://"))
        .unwrap_or(input);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            crate::oci::reference::DEFAULT_REGISTRY.to_string()
        }
        h => h.to_string(),
    }
}

fn aliases(registry: &str) -> Vec<String> {
    if registry == crate::oci::reference::DEFAULT_REGISTRY {
        [
            DOCKER_HUB_KEY,
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ]
        .map(String::from)
        .to_vec()
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    }
}

fn configured_helper(config: &Map<String, Value>, registry: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(helper_key(registry)).or_else(|| h.get(registry)))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn auths_mut(config: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn read_json(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::CredentialsFile {
                action: "read",
                path: path.to_path_buf(),
                source: Box::new(e),
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::CredentialsFile {
            action: "parse",
            path: path.to_path_buf(),
            source: Box::new(e),
        })
}

fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    let err = |action, e: std::io::Error| Error::CredentialsFile {
        action,
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err("create the directory of", e))?;
    let mut bytes = serde_json::to_vec_pretty(config).unwrap_or_default();
    bytes.push(b'\n');
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(dir)
        .map_err(|e| err("write", e))?;
    set_private(tmp.as_file()).map_err(|e| err("set permissions of", e))?;
    tmp.write_all(&bytes).map_err(|e| err("write", e))?;
    tmp.as_file().sync_all().map_err(|e| err("write", e))?;
    tmp.persist(path).map_err(|e| err("replace", e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_private(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Finds `registry` in an `auths` map whose keys may be `host`, `https://host`, or
/// `https://host/v1/`.
fn from_auths(
    config: &Map<String, Value>,
    registry: &str,
    path: &Path,
) -> Result<Option<Credential>> {
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let entry = auths
        .get(helper_key(registry))
        .or_else(|| {
            auths
                .iter()
                .find(|(k, _)| normalize_registry(k) == registry)
                .map(|(_, v)| v)
        })
        .and_then(Value::as_object);
    let Some(entry) = entry else {
        return Ok(None);
    };
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut username = field("username").map(str::to_string);
    let mut password = field("password").map(str::to_string);
    if let Some(auth) = field("auth") {
        let decoded = BASE64
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::CredentialsFile {
                action: "decode the `auth` entry for a registry in",
                path: path.to_path_buf(),
                source: format!("the entry for `{registry}` is not base64 of `user:password`")
                    .into(),
            })?;
        let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken {
            username,
            token: token.to_string(),
        }));
    }
    Ok(match (username, password) {
        (Some(username), Some(password)) => Some(Credential::Basic { username, password }),
        _ => None,
    })
}

fn run_helper(helper: &str, action: &'static str, registry: &str, input: &str) -> Result<Vec<u8>> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::CredentialHelper {
        helper: helper.to_string(),
        action,
        registry: registry.to_string(),
        source,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(Box::new(e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(Box::new(e)))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(Box::new(e)))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let msg = if msg.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            msg
        };
        return Err(fail(format!("{}: {msg}", out.status).into()));
    }
    Ok(out.stdout)
}

fn helper_get(helper: &str, registry: &str) -> Result<Option<Credential>> {
    let out = match run_helper(helper, "get", registry, helper_key(registry)) {
        Ok(out) => out,
        Err(Error::CredentialHelper { source, .. })
            if source.to_string().contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    struct HelperOutput {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let parsed: HelperOutput =
        serde_json::from_slice(&out).map_err(|e| Error::CredentialHelper {
            helper: helper.to_string(),
            action: "get",
            registry: registry.to_string(),
            source: Box::new(e),
        })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if parsed.username == "<token>" {
        Credential::IdentityToken {
            username: None,
            token: parsed.secret,
        }
    } else {
        Credential::Basic {
            username: parsed.username,
            password: parsed.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> CredentialStore {
        CredentialStore::new(Some(dir)).with_podman_files(Vec::new())
    }

    #[test]
    fn reads_auth_username_password_and_identity_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": BASE64.encode("hub:pw")},
                "https://reg.example:5000": {"username": "u", "password": "p"},
                "acr.example": {"auth": BASE64.encode("00000000-0000-0000-0000-000000000000:"), "identitytoken": "rt"}
            }
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let s = store_in(dir.path());
        let (c, src) = s.lookup("docker.io").unwrap().unwrap();
        assert_eq!(
            c,
            Credential::Basic {
                username: "hub".into(),
                password: "pw".into()
            }
        );
        assert_eq!(src, CredentialSource::File(dir.path().join("config.json")));
        let (c, _) = s.lookup("reg.example:5000").unwrap().unwrap();
        assert!(matches!(c, Credential::Basic { ref username, .. } if username == "u"));
        let (c, _) = s.lookup("acr.example").unwrap().unwrap();
        assert!(matches!(c, Credential::IdentityToken { ref token, .. } if token == "rt"));
        assert!(s.lookup("other.example").unwrap().is_none());
        assert!(!format!("{c:?}").contains("rt\""));
    }

    #[test]
    fn store_and_erase_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"psFormat":"table","auths":{"a.example":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let s = store_in(dir.path());
        s.store("b.example:5000", "user", "secret").unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"]["a.example"]["auth"], "eDp5");
        assert_eq!(
            v["auths"]["b.example:5000"]["auth"],
            BASE64.encode("user:secret")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(s.erase("b.example:5000").unwrap());
        assert!(!s.erase("b.example:5000").unwrap());
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(v["auths"].get("b.example:5000").is_none());
        assert_eq!(v["auths"]["a.example"]["auth"], "eDp5");
    }

    #[test]
    fn normalizes_login_arguments() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("http://h:5000/"), "h:5000");
        assert_eq!(normalize_registry("ghcr.io"), "ghcr.io");
    }
}
