//! The HTTP core: one endpoint per registry (scheme found by probing `/v2/`, its auth
//! challenge, its credential), requests with authentication, one re-authentication on 401, and
//! retries with backoff on connection errors, timeouts, 429 and 5xx.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::OnceCell;

use super::auth::{Challenge, Scope, Token, TokenResponse, parse_challenge, scope_key};
use super::credentials::{Credential, CredentialSource, CredentialStore};
use super::error::{ApiError, Error, Result};
use super::retry::RetryPolicy;
use super::tls;
use crate::oci::reference::DEFAULT_REGISTRY;

/// The host serving Docker Hub's registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// How the client connects, authenticates and uploads.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `--insecure-registry` values: `host[:port]` or CIDR ranges that may use plain http, and
    /// whose TLS certificates are not verified.
    pub insecure_registries: Vec<String>,
    /// `--registry-mirror` values for docker.io (`host[:port]` or `https://host`), tried in order
    /// before docker.io itself.
    pub registry_mirrors: Vec<String>,
    /// Where docker's `config.json` lives (default `$DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    /// podman `auth.json` files to read after docker's (default: `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`).
    pub podman_auth_files: Option<Vec<PathBuf>>,
    /// Directories holding `<host[:port]>/*.crt` CA files.
    pub certs_dirs: Vec<PathBuf>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// How many times a failed request is retried.
    pub retries: u32,
    /// The first backoff delay; it doubles per retry (with jitter), up to 10 s.
    pub retry_base_delay: Duration,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response.
    pub read_timeout: Duration,
    /// Blobs up to this size are uploaded in one request; larger ones in chunks.
    pub monolithic_threshold: u64,
    /// Size of each `PATCH` of a chunked upload (and the memory an upload holds).
    pub chunk_size: u64,
    /// How many blobs are transferred at once.
    pub concurrency: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            docker_config_dir: None,
            podman_auth_files: None,
            certs_dirs: vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ],
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            retries: 5,
            retry_base_delay: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            monolithic_threshold: 8 << 20,
            chunk_size: 8 << 20,
            concurrency: 3,
        }
    }
}

/// One registry as the client talks to it.
pub(crate) struct Endpoint {
    /// The registry name as references spell it (`docker.io`, `localhost:5000`).
    pub name: String,
    /// The host the API is served from.
    api_host: String,
    pub(crate) http: reqwest::Client,
    allow_http: bool,
    base: OnceCell<Url>,
    challenge: Mutex<Option<Challenge>>,
    credential: OnceCell<Option<(Credential, CredentialSource)>>,
}

impl Endpoint {
    fn challenge(&self) -> Option<Challenge> {
        self.challenge.lock().ok().and_then(|c| c.clone())
    }

    fn set_challenge(&self, c: Challenge) {
        if let Ok(mut slot) = self.challenge.lock() {
            *slot = Some(c);
        }
    }
}

/// A request that can be sent again: its body is shared bytes.
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Called with the bytes of the body sent so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Whether transient failures are retried here (uploads resume on their own instead).
    pub retry: bool,
}

impl Req {
    pub fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            progress: None,
            retry: true,
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }
}

pub(crate) struct Inner {
    pub options: ClientOptions,
    credentials: CredentialStore,
    retry: RetryPolicy,
    http_clients: Mutex<HashMap<String, reqwest::Client>>,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Tokens per (registry, scope set); each slot is locked while its token is fetched, so
    /// concurrent requests for the same scopes share one token request.
    tokens: Mutex<HashMap<(String, Vec<String>), TokenSlot>>,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// An async registry client; cheap to clone, and clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn address_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

pub(crate) fn transport_error(method: &Method, url: &Url, e: reqwest::Error) -> Error {
    let address = address_of(url);
    if e.is_timeout() {
        Error::Timeout {
            address,
            method: method.to_string(),
            url: url.to_string(),
            source: e.without_url(),
        }
    } else {
        Error::Connection {
            address,
            method: method.to_string(),
            url: url.to_string(),
            source: e.without_url(),
        }
    }
}

/// Reads an error response into an [`ApiError`].
pub(crate) async fn api_error(method: &Method, url: &Url, resp: Response) -> ApiError {
    let status = resp.status().as_u16();
    let body = read_limited(resp, 64 << 10).await.unwrap_or_default();
    ApiError::from_body(method.as_str(), url.as_str(), status, &body)
}

/// Reads at most `limit` bytes of a body.
pub(crate) async fn read_limited(
    mut resp: Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn body_of(bytes: &Bytes, progress: Option<Arc<dyn Fn(u64) + Send + Sync>>) -> reqwest::Body {
    let Some(progress) = progress else {
        return reqwest::Body::from(bytes.clone());
    };
    const PIECE: usize = 64 << 10;
    let pieces: Vec<Bytes> = (0..bytes.len())
        .step_by(PIECE)
        .map(|start| bytes.slice(start..bytes.len().min(start + PIECE)))
        .collect();
    let mut sent = 0u64;
    let stream = futures_util::stream::iter(pieces.into_iter().map(move |p| {
        sent += p.len() as u64;
        progress(sent);
        Ok::<Bytes, std::io::Error>(p)
    }));
    reqwest::Body::wrap_stream(stream)
}

impl Client {
    /// A client with `options`. Nothing is contacted until a request is made.
    pub fn new(options: ClientOptions) -> Result<Client> {
        let mut credentials = CredentialStore::new(options.docker_config_dir.as_deref());
        if let Some(files) = &options.podman_auth_files {
            credentials = credentials.with_podman_files(files.clone());
        }
        let retry = RetryPolicy {
            retries: options.retries,
            base_delay: options.retry_base_delay,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                options,
                credentials,
                retry,
                http_clients: Mutex::new(HashMap::new()),
                endpoints: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// Where credentials are read from and `login` writes to.
    pub fn credential_store(&self) -> &CredentialStore {
        &self.inner.credentials
    }

    fn is_insecure(&self, host: &str) -> bool {
        tls::is_listed_insecure(host, &self.inner.options.insecure_registries)
    }

    /// The HTTP client for a network host (`host[:port]`), with that host's TLS policy.
    fn http_for(&self, host: &str) -> Result<reqwest::Client> {
        if let Some(c) = self
            .inner
            .http_clients
            .lock()
            .ok()
            .and_then(|m| m.get(host).cloned())
        {
            return Ok(c);
        }
        let opts = &self.inner.options;
        let tls = tls::client_config(host, self.is_insecure(host), &opts.certs_dirs)?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(opts.user_agent.clone())
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10));
        if tls::is_loopback(host) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| Error::Tls {
            registry: host.to_string(),
            source: Box::new(e),
        })?;
        if let Ok(mut m) = self.inner.http_clients.lock() {
            m.insert(host.to_string(), client.clone());
        }
        Ok(client)
    }

    fn http_for_url(&self, url: &Url) -> Result<reqwest::Client> {
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        self.http_for(&host)
    }

    /// The endpoint for registry `name` (`docker.io`, `host:port`, or a mirror's
    /// `https://host`).
    pub(crate) fn endpoint(&self, name: &str) -> Result<Arc<Endpoint>> {
        if let Some(e) = self
            .inner
            .endpoints
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(e);
        }
        let (forced_http, bare) = match name.split_once("://") {
            Some(("http", rest)) => (true, rest.trim_end_matches('/')),
            Some((_, rest)) => (false, rest.trim_end_matches('/')),
            None => (false, name),
        };
        if bare.is_empty() || bare.contains('/') || bare.contains(char::is_whitespace) {
            return Err(Error::InvalidRegistry(name.to_string()));
        }
        let api_host = if bare == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST.to_string()
        } else {
            bare.to_string()
        };
        let endpoint = Arc::new(Endpoint {
            name: bare.to_string(),
            http: self.http_for(&api_host)?,
            allow_http: forced_http || tls::is_loopback(bare) || self.is_insecure(bare),
            api_host,
            base: OnceCell::new(),
            challenge: Mutex::new(None),
            credential: OnceCell::new(),
        });
        if let Ok(mut m) = self.inner.endpoints.lock() {
            m.insert(name.to_string(), endpoint.clone());
            m.entry(bare.to_string())
                .or_insert_with(|| endpoint.clone());
        }
        Ok(endpoint)
    }

    /// The registry's base URL (`https://host/`), found by probing `/v2/` over https and, where
    /// plain http is allowed, over http; the probe also records the auth challenge.
    pub(crate) async fn base_url(&self, ep: &Endpoint) -> Result<Url> {
        ep.base.get_or_try_init(|| self.probe(ep)).await.cloned()
    }

    async fn probe(&self, ep: &Endpoint) -> Result<Url> {
        let url = |scheme: &str| {
            Url::parse(&format!("{scheme}://{}/v2/", ep.api_host))
                .map_err(|_| Error::InvalidRegistry(ep.name.clone()))
        };
        let https = url("https")?;
        let mut req = Req::new(Method::GET, https.clone());
        req.retry = !ep.allow_http;
        let first = self.execute(&ep.http, &req, None).await;
        let (resp, v2) = match first {
            Ok(resp) => (resp, https),
            Err(https_err) if ep.allow_http => {
                let http = url("http")?;
                match self
                    .execute(&ep.http, &Req::new(Method::GET, http.clone()), None)
                    .await
                {
                    Ok(resp)
                        if resp.status().is_success()
                            || resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        (resp, http)
                    }
                    _ => return Err(https_err),
                }
            }
            Err(e) => return Err(e),
        };
        self.learn_challenge(ep, &resp);
        let base = v2
            .join("/")
            .map_err(|_| Error::InvalidRegistry(ep.name.clone()))?;
        tracing::debug!(registry = %ep.name, %base, challenge = ?ep.challenge(), "registry probed");
        Ok(base)
    }

    fn learn_challenge(&self, ep: &Endpoint, resp: &Response) {
        if resp.status() == StatusCode::UNAUTHORIZED {
            let parsed = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(parse_challenge)
                .max_by_key(|c| matches!(c, Challenge::Bearer { .. }));
            if let Some(c) = parsed {
                ep.set_challenge(c);
            }
        } else if resp.status().is_success() && ep.challenge().is_none() {
            ep.set_challenge(Challenge::None);
        }
    }

    /// The credential for an endpoint, looked up once (helpers run on a blocking thread).
    pub(crate) async fn credential(
        &self,
        ep: &Endpoint,
    ) -> Result<Option<(Credential, CredentialSource)>> {
        ep.credential
            .get_or_try_init(|| async {
                let store = self.inner.credentials.clone();
                let name = ep.name.clone();
                tokio::task::spawn_blocking(move || store.lookup(&name))
                    .await
                    .map_err(|_| Error::TaskFailed("credential lookup"))?
            })
            .await
            .cloned()
    }

    async fn credential_source(&self, ep: &Endpoint) -> CredentialSource {
        match self.credential(ep).await {
            Ok(Some((_, source))) => source,
            _ => CredentialSource::Anonymous,
        }
    }

    /// Sends `req` once per attempt with transient-failure retries, without registry auth.
    pub(crate) async fn execute(
        &self,
        http: &reqwest::Client,
        req: &Req,
        auth: Option<&HeaderValue>,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let mut rb = http
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if let Some(a) = auth {
                rb = rb.header(header::AUTHORIZATION, a.clone());
            }
            if let Some(body) = &req.body {
                rb = rb.body(body_of(body, req.progress.clone()));
            }
            let can_retry = req.retry && attempt < self.inner.retry.retries;
            match rb.send().await {
                Err(e) => {
                    if can_retry && !e.is_builder() && !e.is_redirect() {
                        let delay = self.inner.retry.backoff(attempt);
                        tracing::debug!(method = %req.method, url = %req.url, error = %e, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(transport_error(&req.method, &req.url, e));
                }
                Ok(resp) => {
                    let status = resp.status();
                    if can_retry
                        && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                    {
                        let delay = self
                            .inner
                            .retry
                            .retry_after(resp.headers())
                            .unwrap_or_else(|| self.inner.retry.backoff(attempt));
                        tracing::debug!(method = %req.method, url = %req.url, %status, ?delay, "retrying");
                        drop(resp);
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// Sends `req` to `ep` with the authorization `scopes` need; on a 401 it re-authenticates
    /// once (a fresh token, including any scope the challenge names) and tries again.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        scopes: &[Scope],
        req: &Req,
    ) -> Result<Response> {
        self.base_url(ep).await?;
        let mut scope_strings = scope_key(scopes);
        let mut rejected: Option<HeaderValue> = None;
        loop {
            let auth = self
                .authorization(ep, &scope_strings, rejected.as_ref())
                .await?;
            let resp = self.execute(&ep.http, req, auth.as_ref()).await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if rejected.is_none() => {
                    self.learn_challenge(ep, &resp);
                    if let Some(Challenge::Bearer {
                        scope: Some(extra), ..
                    }) = ep.challenge()
                        && !scope_strings.contains(&extra)
                    {
                        scope_strings.push(extra);
                        scope_strings.sort();
                    }
                    rejected = Some(auth.unwrap_or_else(|| HeaderValue::from_static("none")));
                }
                StatusCode::UNAUTHORIZED => {
                    let source = api_error(&req.method, &req.url, resp).await;
                    return Err(Error::Unauthorized {
                        registry: ep.name.clone(),
                        credential: self.credential_source(ep).await,
                        source: Box::new(source),
                    });
                }
                StatusCode::FORBIDDEN => {
                    let repository = scopes
                        .first()
                        .map(|s| s.repository.clone())
                        .unwrap_or_default();
                    let source = api_error(&req.method, &req.url, resp).await;
                    return Err(Error::Denied {
                        registry: ep.name.clone(),
                        repository,
                        credential: self.credential_source(ep).await,
                        source: Box::new(source),
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// The `Authorization` header for `scopes` on `ep`, if it needs one. `rejected` is a header
    /// the registry just refused: a cached token equal to it is replaced by a fresh one.
    pub(crate) async fn authorization(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        rejected: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>> {
        match ep.challenge() {
            None | Some(Challenge::None) => Ok(None),
            Some(Challenge::Basic) => match self.credential(ep).await? {
                Some((Credential::Basic { username, password }, _)) => {
                    Ok(Some(basic_header(&username, &password)))
                }
                _ => Ok(None),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (ep.name.clone(), scopes.to_vec());
                let slot = match self.inner.tokens.lock() {
                    Ok(mut m) => m.entry(key).or_default().clone(),
                    Err(_) => TokenSlot::default(),
                };
                let mut cached = slot.lock().await;
                if let Some(t) = cached.as_ref().filter(|t| t.is_fresh()) {
                    let header = bearer_header(&t.value);
                    if rejected != Some(&header) {
                        return Ok(Some(header));
                    }
                }
                let credential = self.credential(ep).await?;
                let token = self
                    .fetch_token(ep, &realm, service.as_deref(), scopes, credential.as_ref())
                    .await?;
                let header = bearer_header(&token.value);
                *cached = Some(token);
                Ok(Some(header))
            }
        }
    }

    /// Asks the token service for a token covering `scopes`: an OAuth2 refresh-token POST for
    /// identity tokens, else a GET (Basic-authenticated when there is a password).
    pub(crate) async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<&(Credential, CredentialSource)>,
    ) -> Result<Token> {
        let source = credential
            .map(|(_, s)| s.clone())
            .unwrap_or(CredentialSource::Anonymous);
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| Error::Token {
            registry: ep.name.clone(),
            realm: realm.to_string(),
            credential: source.clone(),
            source: e,
        };
        let mut url = Url::parse(realm).map_err(|e| fail(Box::new(e)))?;
        let http = self.http_for_url(&url)?;
        let (req, auth) = match credential.map(|(c, _)| c) {
            Some(Credential::IdentityToken { token, .. }) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token)
                    .append_pair("client_id", "kiln");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    form.append_pair("scope", &scopes.join(" "));
                }
                let req = Req::new(Method::POST, url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Bytes::from(form.finish()));
                (req, None)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                let auth = match other {
                    Some(Credential::Basic { username, password }) => {
                        Some(basic_header(username, password))
                    }
                    _ => None,
                };
                (Req::new(Method::GET, url), auth)
            }
        };
        let resp = self.execute(&http, &req, auth.as_ref()).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let e = api_error(&req.method, &req.url, resp).await;
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(Error::Unauthorized {
                    registry: ep.name.clone(),
                    credential: source,
                    source: Box::new(e),
                });
            }
            return Err(fail(Box::new(e)));
        }
        let body = read_limited(resp, 1 << 20)
            .await
            .map_err(|e| transport_error(&req.method, &req.url, e))?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| fail("the token service answered without a token".into()))
    }

    /// Checks `credential` against `registry` the way `docker login` does, without storing it.
    pub(crate) async fn verify_credential(
        &self,
        registry: &str,
        credential: Credential,
    ) -> Result<()> {
        let ep = self.endpoint(registry)?;
        let base = self.base_url(&ep).await?;
        let given = (credential, CredentialSource::Login);
        match ep.challenge() {
            None | Some(Challenge::None) => Ok(()),
            Some(Challenge::Basic) => {
                let Credential::Basic { username, password } = &given.0 else {
                    return Ok(());
                };
                let url = base
                    .join("v2/")
                    .map_err(|_| Error::InvalidRegistry(registry.to_string()))?;
                let req = Req::new(Method::GET, url);
                let resp = self
                    .execute(&ep.http, &req, Some(&basic_header(username, password)))
                    .await?;
                if resp.status().is_success() {
                    return Ok(());
                }
                let source = api_error(&req.method, &req.url, resp).await;
                Err(Error::Unauthorized {
                    registry: ep.name.clone(),
                    credential: CredentialSource::Login,
                    source: Box::new(source),
                })
            }
            Some(Challenge::Bearer { realm, service, .. }) => self
                .fetch_token(&ep, &realm, service.as_deref(), &[], Some(&given))
                .await
                .map(drop),
        }
    }
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    v.set_sensitive(true);
    v
}
