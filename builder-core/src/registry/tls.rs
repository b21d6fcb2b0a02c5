//! TLS and plain-http policy per registry host.
//!
//! Like docker: the system roots plus every `*.crt` in `<certs_dir>/<host[:port]>/` (by default
//! `/etc/docker/certs.d` and `/etc/containers/certs.d`); `--insecure-registry` hosts may use plain
//! http and are not verified over TLS; loopback registries (127.0.0.0/8, `localhost`, `::1`) may
//! use plain http without a flag but are still verified over TLS. Crypto comes from rustls' ring
//! provider, passed explicitly so nothing depends on a process-wide default.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{Error, Result};

/// Splits `host[:port]` (`[::1]:5000` for IPv6) into host and port.
pub(crate) fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = registry.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
        return (registry, None);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (registry, None),
    }
}

/// Whether `registry` is on the loopback interface.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let (host, _) = split_host_port(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `registry` matches one of the `--insecure-registry` entries: `host`, `host:port`
/// or a CIDR range (`10.0.0.0/8`).
pub(crate) fn is_listed_insecure(registry: &str, insecure: &[String]) -> bool {
    let (host, _) = split_host_port(registry);
    let ip = host.parse::<IpAddr>().ok();
    insecure.iter().any(|entry| {
        let entry = entry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        if entry == registry || entry == host {
            return true;
        }
        match (ip, entry.split_once('/')) {
            (Some(ip), Some((net, bits))) => cidr_contains(net, bits, ip),
            _ => false,
        }
    })
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The CA files for `registry` under each certs dir: every `*.crt` in `<dir>/<host[:port]>/`.
fn registry_ca_files(registry: &str, certs_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in certs_dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(registry)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::CaFile {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(Box::new(e)))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(Box::new(e)))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// The rustls configuration for connections to `registry`.
pub(crate) fn client_config(
    registry: &str,
    insecure: bool,
    certs_dirs: &[PathBuf],
) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_err = |e: rustls::Error| Error::Tls {
        registry: registry.to_string(),
        source: Box::new(e),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RegistryVerifier {
                provider,
                roots: None,
            }))
            .with_no_client_auth()
    } else {
        let mut registry_roots = Vec::new();
        for file in registry_ca_files(registry, certs_dirs) {
            for cert in read_certs(&file)? {
                // Checked now, so that a bad file is named before any connection.
                RootCertStore::empty()
                    .add(cert.clone())
                    .map_err(|e| Error::CaFile {
                        path: file.clone(),
                        source: Box::new(e),
                    })?;
                registry_roots.push(cert);
            }
        }
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RegistryVerifier {
                provider,
                roots: Some(LazyRoots {
                    registry_roots,
                    verifier: OnceLock::new(),
                }),
            }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How a registry's certificate is checked: against the system roots and the registry's own
/// CA files, or (for `--insecure-registry` hosts only) not at all. Handshake signatures are
/// checked either way, so the connection is at least consistent. The system roots are read when
/// a certificate is first verified: reading them takes milliseconds, and a registry reached over
/// plain http (on loopback, or `--insecure-registry`) never needs them.
#[derive(Debug)]
struct RegistryVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `None` accepts any certificate.
    roots: Option<LazyRoots>,
}

#[derive(Debug)]
struct LazyRoots {
    registry_roots: Vec<CertificateDer<'static>>,
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRoots {
    fn verifier(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(system_roots().iter().cloned());
                roots.add_parsable_certificates(self.registry_roots.iter().cloned());
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for RegistryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.roots {
            None => Ok(ServerCertVerified::assertion()),
            Some(roots) => roots.verifier(&self.provider)?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.3.4.5:80"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        let list = vec!["reg.local:5000".to_string(), "10.0.0.0/8".to_string()];
        assert!(is_listed_insecure("reg.local:5000", &list));
        assert!(!is_listed_insecure("reg.local:5001", &list));
        assert!(is_listed_insecure("10.1.2.3:5000", &list));
        assert!(!is_listed_insecure("11.1.2.3:5000", &list));
        assert!(is_listed_insecure("h:1", &["h".to_string()]));
    }
}
