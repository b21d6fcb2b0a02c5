//! Real CNCF distribution registries (`/usr/bin/docker-registry`, Debian package
//! `docker-registry`) started on free loopback ports for one test each: plain http, TLS with htpasswd
//! Basic auth, and token auth against a [`TokenIssuer`] in the test process. Each has its own
//! storage directory and config; dropping the [`TestRegistry`] kills the process and removes both.
//!
//! skopeo, the independent client, pushes test images into them and reads back what kiln pushes.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::http::{self, base64_encode};
use super::pki::{self, ServerCerts};
use super::token_issuer::{self, TokenIssuer, TokenOptions, TokenRequest};

/// The registry binary the Debian package installs.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long a registry may take to answer `GET /v2/` after starting.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a start is retried when another process grabbed the chosen port first.
const PORT_ATTEMPTS: usize = 5;

/// How the registry authenticates clients.
enum AuthSetup {
    None,
    Basic {
        htpasswd: PathBuf,
    },
    Token {
        realm: String,
        root_cert_bundle: PathBuf,
    },
}

/// A running distribution registry on 127.0.0.1; killed and cleaned up on drop.
pub struct TestRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, the registry part of image references.
    pub host: String,
    /// The registry's storage root (`storage.filesystem.rootdirectory`).
    pub storage: TempDir,
    /// The CA certificate (PEM) clients must trust, for the TLS registry.
    pub ca_pem: Option<PathBuf>,
    /// The user tests authenticate as (Basic, or the first token user).
    pub username: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// The token issuer, for the token registry.
    pub token_issuer: Option<TokenIssuer>,
    /// Config, certificates, htpasswd and logs.
    workdir: TempDir,
    child: Child,
}

impl TestRegistry {
    /// A plain-http registry with no authentication.
    pub fn plain() -> TestRegistry {
        let workdir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .unwrap();
        start(workdir, None, AuthSetup::None, None, None, None)
    }

    /// An https registry (certificate for `127.0.0.1` and `localhost` signed by a CA made for it,
    /// see [`TestRegistry::ca_pem`]) requiring Basic auth as `user`/`pass` (htpasswd, bcrypt).
    pub fn tls_basic(user: &str, pass: &str) -> TestRegistry {
        let workdir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .unwrap();
        let certs = pki::make_server_certs(&workdir.path().join("tls"));
        let htpasswd = workdir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, pass])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run htpasswd ({e}); run scripts/registry/install.sh")
            });
        assert!(
            out.status.success(),
            "htpasswd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&htpasswd, &out.stdout).unwrap();
        start(
            workdir,
            Some(certs),
            AuthSetup::Basic { htpasswd },
            Some(user.to_string()),
            Some(pass.to_string()),
            None,
        )
    }

    /// A plain-http registry using token auth, with a [`TokenIssuer`] for `users` in this process.
    /// The first user becomes [`TestRegistry::username`]. Anonymous callers get nothing.
    pub fn token(users: &[(&str, &str)]) -> TestRegistry {
        TestRegistry::token_with(users, TokenOptions::default())
    }

    /// [`TestRegistry::token`] with a chosen issuer policy (anonymous pull, pull-only users, ttl).
    pub fn token_with(users: &[(&str, &str)], options: TokenOptions) -> TestRegistry {
        let workdir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .unwrap();
        let issuer = TokenIssuer::start(&workdir.path().join("token"), users, options);
        let auth = AuthSetup::Token {
            realm: issuer.realm.clone(),
            root_cert_bundle: issuer.root_cert_bundle.clone(),
        };
        let first = users.first();
        start(
            workdir,
            None,
            auth,
            first.map(|(u, _)| u.to_string()),
            first.map(|(_, p)| p.to_string()),
            Some(issuer),
        )
    }

    /// The token requests the issuer answered so far (empty for other registries).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token_issuer
            .as_ref()
            .map(TokenIssuer::requests)
            .unwrap_or_default()
    }

    /// `127.0.0.1:PORT/REPO_TAG`, a full reference to `repo_tag` (`name:tag` or `name@digest`) here.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// A directory laid out like `/etc/docker/certs.d`: `ROOT/127.0.0.1:PORT/ca.crt` (TLS registry
    /// only; other registries get an empty `ROOT/127.0.0.1:PORT`). Returns `ROOT/127.0.0.1:PORT`.
    pub fn write_certs_d(&self, root: &Path) -> PathBuf {
        let dir = root.join(&self.host);
        fs::create_dir_all(&dir).unwrap();
        if let Some(ca) = &self.ca_pem {
            fs::copy(ca, dir.join("ca.crt")).unwrap();
        }
        dir
    }

    /// A docker `config.json` with this registry's credentials under `auths` (`{}` auths when it
    /// has none), for clients that read `$DOCKER_CONFIG`.
    pub fn docker_config_json(&self) -> String {
        let mut auths = serde_json::Map::new();
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            auths.insert(
                self.host.clone(),
                serde_json::json!({ "auth": base64_encode(format!("{u}:{p}").as_bytes()) }),
            );
        }
        serde_json::to_string_pretty(&serde_json::json!({ "auths": auths })).unwrap()
    }

    /// skopeo flags to reach this registry as a source (`prefix` = "src") or destination ("dest"),
    /// or for `skopeo inspect` (`prefix` = ""): TLS trust or `--tls-verify=false`, and credentials.
    pub fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let flag = |name: &str| {
            if prefix.is_empty() {
                format!("--{name}")
            } else {
                format!("--{prefix}-{name}")
            }
        };
        let mut flags = Vec::new();
        match &self.ca_pem {
            Some(_) => {
                let dir = self.workdir.path().join("skopeo-certs");
                if !dir.join("ca.crt").exists() {
                    fs::create_dir_all(&dir).unwrap();
                    fs::copy(self.ca_pem.as_ref().unwrap(), dir.join("ca.crt")).unwrap();
                }
                flags.push(flag("cert-dir"));
                flags.push(dir.display().to_string());
            }
            None => flags.push(format!("{}=false", flag("tls-verify"))),
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => {
                flags.push(flag("creds"));
                flags.push(format!("{u}:{p}"));
            }
            _ => flags.push(flag("no-creds")),
        }
        flags
    }

    /// Pushes the only image of the OCI layout at `layout` to `repo_tag` here with skopeo and
    /// returns the full reference.
    pub fn push_image(&self, layout: &Path, repo_tag: &str) -> String {
        self.push_named_image(layout, None, repo_tag)
    }

    /// Pushes the image named `name` (its `org.opencontainers.image.ref.name`, e.g.
    /// `busybox:latest`; `None` for a layout's only image) to `repo_tag` here with skopeo.
    pub fn push_named_image(&self, layout: &Path, name: Option<&str>, repo_tag: &str) -> String {
        let source = match name {
            Some(name) => format!("oci:{}:{name}", layout.display()),
            None => format!("oci:{}", layout.display()),
        };
        let dest = self.reference(repo_tag);
        let mut args = vec!["copy".to_string(), "--quiet".to_string()];
        args.extend(self.skopeo_flags("dest"));
        args.push(source);
        args.push(format!("docker://{dest}"));
        skopeo(&args);
        dest
    }

    /// Copies `repo_tag` from here into the OCI layout at `layout` (created when missing) as
    /// `name`, with skopeo: the independent check that what a client pushed is a valid image.
    pub fn pull_image(&self, repo_tag: &str, layout: &Path, name: &str) {
        let mut args = vec!["copy".to_string(), "--quiet".to_string()];
        args.extend(self.skopeo_flags("src"));
        args.push(format!("docker://{}", self.reference(repo_tag)));
        args.push(format!("oci:{}:{name}", layout.display()));
        skopeo(&args);
    }

    /// `skopeo inspect` of `repo_tag` here, parsed.
    pub fn inspect(&self, repo_tag: &str) -> serde_json::Value {
        let mut args = vec!["inspect".to_string()];
        args.extend(self.skopeo_flags(""));
        args.push(format!("docker://{}", self.reference(repo_tag)));
        serde_json::from_slice(&skopeo(&args)).unwrap()
    }

    /// The manifest bytes of `repo_tag` here exactly as the registry serves them
    /// (`skopeo inspect --raw`).
    pub fn raw_manifest(&self, repo_tag: &str) -> Vec<u8> {
        let mut args = vec!["inspect".to_string(), "--raw".to_string()];
        args.extend(self.skopeo_flags(""));
        args.push(format!("docker://{}", self.reference(repo_tag)));
        skopeo(&args)
    }

    /// What the registry wrote to stdout and stderr so far (its log).
    pub fn log(&self) -> String {
        fs::read_to_string(self.workdir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs skopeo with `args`, returning stdout; panics with its stderr on failure.
pub fn skopeo(args: &[String]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}); run scripts/registry/install.sh"));
    assert!(
        out.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A loopback port nobody listens on right now (another process may still take it before the
/// registry binds it; starts retry then).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(
    workdir: TempDir,
    tls: Option<ServerCerts>,
    auth: AuthSetup,
    username: Option<String>,
    password: Option<String>,
    token_issuer: Option<TokenIssuer>,
) -> TestRegistry {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is missing; run scripts/registry/install.sh (package docker-registry)"
    );
    let storage = tempfile::Builder::new()
        .prefix("kiln-registry-storage-")
        .tempdir()
        .unwrap();
    let log_level = std::env::var("KILN_TEST_REGISTRY_LOG").unwrap_or_else(|_| "error".to_string());
    let mut last_log = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = workdir.path().join("config.yml");
        fs::write(
            &config,
            config_yaml(addr, storage.path(), tls.as_ref(), &auth, &log_level),
        )
        .unwrap();
        let log_path = workdir.path().join("registry.log");
        let log = fs::File::create(&log_path).unwrap();
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
        match wait_ready(&mut child, addr, tls.is_some()) {
            Ok(()) => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                return TestRegistry {
                    addr,
                    url: format!("{scheme}://{addr}"),
                    host: addr.to_string(),
                    storage,
                    ca_pem: tls.map(|t| t.ca_pem),
                    username,
                    password,
                    token_issuer,
                    workdir,
                    child,
                };
            }
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                last_log = fs::read_to_string(&log_path).unwrap_or_default();
                if !last_log.contains("address already in use") {
                    panic!("registry on {addr} did not start: {why}\nregistry log:\n{last_log}");
                }
            }
        }
    }
    panic!(
        "registry did not start after {PORT_ATTEMPTS} ports were taken\nregistry log:\n{last_log}"
    );
}

/// Waits until the registry answers `GET /v2/` (200 or 401; a TLS registry answers a plain-http
/// probe with 400, which proves it is serving too).
fn wait_ready(child: &mut Child, addr: SocketAddr, tls: bool) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}"));
        }
        if let Ok(resp) = http::request(addr, "GET", "/v2/", &[], b"") {
            match resp.status {
                200 | 401 => return Ok(()),
                400 if tls => return Ok(()),
                other => return Err(format!("GET /v2/ answered {other}")),
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no answer to GET /v2/ within {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config_yaml(
    addr: SocketAddr,
    storage: &Path,
    tls: Option<&ServerCerts>,
    auth: &AuthSetup,
    log_level: &str,
) -> String {
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: {log_level}\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: kiln-test-upload-secret\n",
        storage.display()
    );
    if let Some(tls) = tls {
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            tls.cert_pem.display(),
            tls.key_pem.display()
        ));
    }
    match auth {
        AuthSetup::None => {}
        AuthSetup::Basic { htpasswd } => {
            y.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        AuthSetup::Token {
            realm,
            root_cert_bundle,
        } => {
            y.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token_issuer::SERVICE,
                token_issuer::ISSUER,
                root_cert_bundle.display()
            ));
        }
    }
    y
}
