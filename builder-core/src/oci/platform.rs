//! Platforms (`linux/amd64`, `linux/arm64/v8`), as `--platform` and `TARGETPLATFORM` spell them.

use std::fmt;
use std::str::FromStr;

/// An OS, architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// Go's architecture names: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    pub architecture: String,
    /// `v7`, `v8`, ... when given.
    pub variant: Option<String>,
}

/// Why a `--platform` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{0}`: expected `os/arch[/variant]`, e.g. `linux/amd64`")]
pub struct PlatformParseError(String);

impl Platform {
    /// The platform kiln runs on, in Go's names (what Docker picks by default).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || PlatformParseError(s.to_string());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let normalise = |arch: &str| match arch {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => other.to_lowercase(),
        };
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_lowercase(),
                architecture: normalise(arch),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_lowercase(),
                architecture: normalise(arch),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap().architecture,
            "amd64"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
    }
}
