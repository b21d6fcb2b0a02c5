//! Image references (`python:3.11-slim`, `localhost:5000/team/app:1.2`, `…@sha256:…`), normalised
//! as Docker does: `python:3.11-slim` is `docker.io/library/python:3.11-slim`.

use std::fmt;
use std::str::FromStr;

use super::Digest;

/// The registry that names without a host belong to.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: &'static str,
}

impl Reference {
    /// The registry host (and port): `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path: `library/python`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given (`latest` is implied only when neither tag nor digest was).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The short form Docker shows (`python:3.11-slim`, `localhost:5000/app:1`): what
    /// `docker images` and docker-archive `RepoTags` use.
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(&d.to_string());
        }
        name
    }
}

fn is_valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ with separators `.`, `_`, `__`, `-`+ between alphanumerics.
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

fn is_valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ReferenceError {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|_| err("bad digest"))?)),
            None => (s, None),
        };
        // A tag is after the last `:` that comes after the last `/`.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !is_valid_tag(t)
        {
            return Err(err("bad tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(err("repository names must be lowercase"));
        }
        if !repository.split('/').all(is_valid_path_component) {
            return Err(err("bad repository name"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/python:3.11-slim`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r: Reference = "python:3.11-slim".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/python:3.11-slim");
        assert_eq!(r.familiar(), "python:3.11-slim");
        let r: Reference = "localhost:5000/team/app".parse().unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar(), "localhost:5000/team/app:latest");
        let r: Reference =
            "ghcr.io/o/r@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse()
                .unwrap();
        assert_eq!(r.tag(), None);
        assert!(r.digest().is_some());
        assert_eq!(
            "user/app:v1".parse::<Reference>().unwrap().to_string(),
            "docker.io/user/app:v1"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "UPPER",
            "a:b:c",
            "app:",
            "-app",
            "a//b",
            "app@sha256:xyz",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
