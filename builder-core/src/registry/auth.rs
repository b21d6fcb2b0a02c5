//! Authentication challenges (`WWW-Authenticate`), scopes, and bearer tokens.
//!
//! A registry says how to authenticate in its 401 answer: `Basic realm=…`, or
//! `Bearer realm=…,service=…,scope=…`, which points at a token service. Tokens are asked for a
//! whole set of scopes at once (`repository:dst:pull,push` and `repository:src:pull` for a
//! cross-repository mount) and cached per registry and scope set until shortly before they
//! expire.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

/// How a registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No authentication needed (`/v2/` answered 200).
    None,
    /// HTTP Basic on every request.
    Basic,
    /// Bearer tokens from a token service.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to send.
        service: Option<String>,
        /// A `scope` the registry asked for, if it named one.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value; unknown schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `k=v, k="quoted, with \"escapes\""` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// What a request needs to be allowed to do on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Read.
    Pull,
    /// Read and write.
    Push,
}

/// A token scope: `repository:<name>:pull` or `repository:<name>:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// The repository.
    pub repository: String,
    /// The access needed.
    pub access: Access,
}

impl Scope {
    /// Read access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            access: Access::Pull,
        }
    }

    /// Read and write access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            access: Access::Push,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.access {
            Access::Pull => write!(f, "repository:{}:pull", self.repository),
            Access::Push => write!(f, "repository:{}:pull,push", self.repository),
        }
    }
}

/// The scope strings for a request, deduplicated and sorted, so equal sets share a token.
pub(crate) fn scope_key(scopes: &[Scope]) -> Vec<String> {
    let set: BTreeSet<String> = scopes.iter().map(Scope::to_string).collect();
    set.into_iter().collect()
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

impl Token {
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

/// A token service's answer (docker's `token` or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = if self.access_token.is_empty() {
            self.token
        } else {
            self.access_token
        };
        if value.is_empty() {
            return None;
        }
        // The spec's default lifetime is 60 s; stop using a token a little before it expires.
        let lifetime = self.expires_in.unwrap_or(60).max(60);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime.saturating_sub(10)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn scope_sets_are_sorted_and_deduplicated() {
        let k = scope_key(&[Scope::push("b"), Scope::pull("a"), Scope::push("b")]);
        assert_eq!(k, ["repository:a:pull", "repository:b:pull,push"]);
    }
}
