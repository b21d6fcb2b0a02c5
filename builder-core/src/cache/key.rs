//! Cache keys: a digest over a step's parent key, its canonical instruction and its inputs.
//!
//! Every field is framed with its name and length before it is hashed, so no two different
//! sets of inputs can concatenate to the same bytes (`"ab" + "c"` and `"a" + "bc"` differ). The
//! domain string is versioned: a change to what keys cover changes every key instead of letting
//! an old entry answer a question it was not made for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::oci::Digest;
use crate::oci::digest::DigestParseError;

/// Names what every key covers; bump it when that changes.
const DOMAIN: &[u8] = b"kiln-cache-v1";

/// The key of a step's result: equal keys mean the step would produce the same layer.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheKey(Digest);

impl CacheKey {
    /// The digest the key is.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The hex digits, for file names.
    pub fn hex(&self) -> &str {
        self.0.hex()
    }

    /// The first 12 hex digits, as reports show keys.
    pub fn short(&self) -> &str {
        &self.0.hex()[..12]
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

impl FromStr for CacheKey {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(CacheKey)
    }
}

/// Builds a [`CacheKey`] from named, length-framed fields.
pub struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// A key of `kind` (`"run"`, `"copy"`, `"image"`, ...), so keys of different kinds never meet.
    pub fn new(kind: &str) -> KeyBuilder {
        let mut builder = KeyBuilder {
            hasher: Sha256::new(),
        };
        builder.hasher.update(DOMAIN);
        builder.field("kind", kind.as_bytes());
        builder
    }

    /// Adds `value` under `name`.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut KeyBuilder {
        self.frame(name.as_bytes());
        self.frame(value);
        self
    }

    /// Adds a string field.
    pub fn str(&mut self, name: &str, value: &str) -> &mut KeyBuilder {
        self.field(name, value.as_bytes())
    }

    /// Adds an optional string field; absent and empty differ.
    pub fn opt(&mut self, name: &str, value: Option<&str>) -> &mut KeyBuilder {
        match value {
            Some(v) => self.field(name, &[&[1u8][..], v.as_bytes()].concat()),
            None => self.field(name, &[0u8]),
        }
    }

    /// Adds a list of strings under `name`: its length, then each item framed.
    pub fn list<'a>(
        &mut self,
        name: &str,
        items: impl ExactSizeIterator<Item = &'a str>,
    ) -> &mut KeyBuilder {
        self.field(name, &(items.len() as u64).to_be_bytes());
        for item in items {
            self.frame(item.as_bytes());
        }
        self
    }

    /// Adds another key (a parent, or the stage a `COPY --from` reads).
    pub fn key(&mut self, name: &str, key: &CacheKey) -> &mut KeyBuilder {
        self.str(name, key.hex())
    }

    /// The key.
    pub fn finish(&self) -> CacheKey {
        let hex = hex::encode(self.hasher.clone().finalize());
        // A sha256 in hex always parses as a digest.
        CacheKey(
            format!("sha256:{hex}")
                .parse()
                .unwrap_or_else(|_| Digest::of(&[])),
        )
    }

    fn frame(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::KeyBuilder;

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let a = KeyBuilder::new("t").str("x", "ab").str("y", "c").finish();
        let b = KeyBuilder::new("t").str("x", "a").str("y", "bc").finish();
        assert_ne!(a, b);
        let c = KeyBuilder::new("t")
            .list("l", ["a", "b"].into_iter())
            .finish();
        let d = KeyBuilder::new("t").list("l", ["ab"].into_iter()).finish();
        assert_ne!(c, d);
        let e = KeyBuilder::new("t").opt("o", None).finish();
        let f = KeyBuilder::new("t").opt("o", Some("")).finish();
        assert_ne!(e, f);
    }

    #[test]
    fn same_fields_same_key_and_kinds_apart() {
        let a = KeyBuilder::new("run").str("cmd", "true").finish();
        assert_eq!(a, KeyBuilder::new("run").str("cmd", "true").finish());
        assert_ne!(a, KeyBuilder::new("copy").str("cmd", "true").finish());
        assert_eq!(a.short().len(), 12);
    }
}
