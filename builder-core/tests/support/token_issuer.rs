//! A token issuer for distribution's `auth: token` mode, served by the test process on loopback.
//!
//! It implements the Docker registry token protocol: `GET /token?service=…&scope=…&scope=…` with
//! optional Basic credentials (and `offline_token=true` for a refresh token), and the OAuth2 form
//! `POST /token` with `grant_type=password` or `grant_type=refresh_token` (a refresh token is
//! returned when `access_type=offline`; a refresh grant returns the same one). Tokens are RS256
//! JWTs whose `x5c` header carries the signing certificate the registry trusts.
//!
//! Policy: a known user gets every action they ask for, except users listed as pull-only; an
//! anonymous caller gets `pull` when anonymous pull is enabled and an empty grant otherwise (the
//! registry then answers 401, as Docker Hub does); wrong credentials or an unknown refresh token get
//! 401 from the issuer itself. Every request is recorded so tests can assert which scopes a client
//! asked for, in one request or several.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::http::{self, base64_decode, base64url_encode, parse_form};
use super::pki::{self, SigningCert};

/// The `service` the issuer and the registry agree on (the token's `aud`).
pub const SERVICE: &str = "kiln-test-registry";
/// The issuer name the registry trusts (the token's `iss`).
pub const ISSUER: &str = "kiln-test-token-issuer";

/// What the issuer grants, beyond "known users get what they ask for".
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// Anonymous callers get `pull` on any repository.
    pub anonymous_pull: bool,
    /// Users who only ever get `pull`, whatever they ask for.
    pub pull_only_users: Vec<String>,
    /// Lifetime of access tokens (`expires_in`). distribution accepts a token up to 60 s past its
    /// expiry, so a short lifetime only forces a refresh after that leeway.
    pub ttl: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            anonymous_pull: false,
            pull_only_users: Vec::new(),
            ttl: Duration::from_secs(300),
        }
    }
}

/// One request the issuer answered, as the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// `grant_type` of a POST (`password`, `refresh_token`); `None` for GET.
    pub grant_type: Option<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Every scope asked for, in order: repeated `scope` parameters and space-separated lists.
    pub scopes: Vec<String>,
    /// The authenticated user (Basic, form password or refresh token); `None` when anonymous or
    /// when authentication failed.
    pub account: Option<String>,
    /// The `client_id` parameter.
    pub client_id: Option<String>,
    /// A refresh token was asked for (`access_type=offline` or `offline_token=true`).
    pub offline: bool,
    /// The status the issuer answered.
    pub status: u16,
    /// The scopes granted, `type:name:actions` with actions sorted.
    pub granted: Vec<String>,
}

struct State {
    users: BTreeMap<String, String>,
    options: TokenOptions,
    signing: SigningCert,
    refresh_tokens: BTreeMap<String, String>,
    seen: Vec<TokenRequest>,
}

/// A running token issuer; stops on drop.
pub struct TokenIssuer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// The realm URL to configure in the registry (`http://127.0.0.1:PORT/token`).
    pub realm: String,
    /// The signing certificate (PEM), the registry's `rootcertbundle`.
    pub root_cert_bundle: std::path::PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenIssuer {
    /// Starts an issuer for `users` (name, password) with a fresh signing certificate made in `dir`.
    pub fn start(dir: &Path, users: &[(&str, &str)], options: TokenOptions) -> TokenIssuer {
        let signing = pki::make_signing_cert(dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            options,
            signing: signing.clone(),
            refresh_tokens: BTreeMap::new(),
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve(conn, &state);
                    }
                }
            })
        };
        TokenIssuer {
            addr,
            realm: format!("http://{addr}/token"),
            root_cert_bundle: signing.cert_pem,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Forgets the recorded requests (not the refresh tokens).
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().seen.clear();
    }

    /// Issues a token directly, as if `account` had asked for `scopes`, for tests that want to
    /// hand a client a ready-made (possibly already expired: negative `ttl_secs`) token.
    pub fn issue(&self, account: Option<&str>, scopes: &[&str], ttl_secs: i64) -> String {
        let state = self.state.lock().unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let granted = grant(&state, account, &scopes);
        sign_token(&state.signing, account, &granted, ttl_secs)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some(head) = http::read_head(&mut reader)? else {
        return Ok(());
    };
    let body = http::read_body(&mut reader, head.body_kind())?;
    let (method, target) = head.method_and_target();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut out = conn;
    if path != "/token" {
        return http::write_response(&mut out, 404, "Not Found", &[], b"");
    }
    let params = match method.as_str() {
        "GET" => parse_form(query),
        "POST" => parse_form(&String::from_utf8_lossy(&body)),
        _ => return http::write_response(&mut out, 405, "Method Not Allowed", &[], b""),
    };
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(n, _)| n == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let grant_type = if method == "POST" {
        param("grant_type")
    } else {
        None
    };
    let offline = param("access_type").as_deref() == Some("offline")
        || param("offline_token").as_deref() == Some("true");

    let mut state = state.lock().unwrap();
    // Who is asking: Basic credentials (GET), form credentials or a refresh token (POST).
    let mut refresh_in: Option<String> = None;
    let identity: Result<Option<String>, ()> = match grant_type.as_deref() {
        Some("password") => {
            let (user, pass) = (
                param("username").unwrap_or_default(),
                param("password").unwrap_or_default(),
            );
            check_password(&state, &user, &pass).map(Some)
        }
        Some("refresh_token") => {
            let token = param("refresh_token").unwrap_or_default();
            let user = state.refresh_tokens.get(&token).cloned();
            refresh_in = Some(token);
            user.map(Some).ok_or(())
        }
        Some(_) => Err(()),
        None => match head
            .header("authorization")
            .and_then(|v| v.strip_prefix("Basic "))
        {
            Some(b64) => {
                let decoded = base64_decode(b64)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
                check_password(&state, user, pass).map(Some)
            }
            None => Ok(None),
        },
    };
    let mut record = TokenRequest {
        method: method.clone(),
        grant_type: grant_type.clone(),
        service: param("service"),
        scopes: scopes.clone(),
        account: identity.clone().ok().flatten(),
        client_id: param("client_id"),
        offline,
        status: 200,
        granted: Vec::new(),
    };
    let account = match identity {
        Ok(account) => account,
        Err(()) => {
            record.status = 401;
            state.seen.push(record);
            let body =
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            return http::write_response(
                &mut out,
                401,
                "Unauthorized",
                &[
                    ("Content-Type", "application/json"),
                    ("WWW-Authenticate", "Basic realm=\"kiln-test\""),
                ],
                body,
            );
        }
    };
    let granted = grant(&state, account.as_deref(), &scopes);
    record.granted = granted
        .iter()
        .map(|(t, n, a)| format!("{t}:{n}:{}", a.join(",")))
        .collect();
    let ttl = state.options.ttl.as_secs() as i64;
    let token = sign_token(&state.signing, account.as_deref(), &granted, ttl);
    let mut response = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": rfc3339(now_secs()),
        "scope": record.granted.join(" "),
    });
    if let Some(user) = &account {
        let refresh = match refresh_in {
            Some(existing) => Some(existing),
            None if offline => {
                let fresh = random_id();
                state.refresh_tokens.insert(fresh.clone(), user.clone());
                Some(fresh)
            }
            None => None,
        };
        if let Some(refresh) = refresh {
            response["refresh_token"] = serde_json::Value::String(refresh);
        }
    }
    state.seen.push(record);
    drop(state);
    let body = serde_json::to_vec(&response).unwrap();
    http::write_response(
        &mut out,
        200,
        "OK",
        &[("Content-Type", "application/json")],
        &body,
    )?;
    out.flush()
}

fn check_password(state: &State, user: &str, pass: &str) -> Result<String, ()> {
    match state.users.get(user) {
        Some(p) if p == pass => Ok(user.to_string()),
        _ => Err(()),
    }
}

/// The grant for `scopes`: `(type, name, sorted actions)`, one entry per resource.
fn grant(
    state: &State,
    account: Option<&str>,
    scopes: &[String],
) -> Vec<(String, String, Vec<String>)> {
    let mut by_resource: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for scope in scopes {
        // type:name:actions, where the name itself may contain ':'.
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let allowed: Vec<String> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .filter(|a| match account {
                Some(user) if state.options.pull_only_users.iter().any(|u| u == user) => {
                    *a == "pull"
                }
                Some(_) => true,
                None => state.options.anonymous_pull && *a == "pull",
            })
            .map(str::to_string)
            .collect();
        let entry = by_resource
            .entry((kind.to_string(), name.to_string()))
            .or_default();
        for a in allowed {
            if !entry.contains(&a) {
                entry.push(a);
            }
        }
    }
    by_resource
        .into_iter()
        .filter(|(_, actions)| !actions.is_empty())
        .map(|((kind, name), mut actions)| {
            actions.sort();
            (kind, name, actions)
        })
        .collect()
}

fn sign_token(
    signing: &SigningCert,
    account: Option<&str>,
    granted: &[(String, String, Vec<String>)],
    ttl: i64,
) -> String {
    let now = now_secs() as i64;
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [signing.x5c] });
    let access: Vec<serde_json::Value> = granted
        .iter()
        .map(|(t, n, a)| serde_json::json!({ "type": t, "name": n, "actions": a }))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": account.unwrap_or(""),
        "aud": SERVICE,
        "exp": now + ttl,
        "nbf": now - 10,
        "iat": now,
        "jti": random_id(),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64url_encode(&serde_json::to_vec(&header).unwrap()),
        base64url_encode(&serde_json::to_vec(&claims).unwrap())
    );
    let signature = pki::rs256_sign(&signing.key_pem, signing_input.as_bytes());
    format!("{signing_input}.{}", base64url_encode(&signature))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A unique, unguessable-enough identifier for tokens in tests.
fn random_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::SeqCst).to_le_bytes());
    hasher.update(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_le_bytes(),
    );
    hex::encode(&hasher.finalize()[..16])
}

/// `secs` since the epoch as an RFC 3339 UTC timestamp (kiln's own formatter).
fn rfc3339(secs: u64) -> String {
    builder_core::build::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}
