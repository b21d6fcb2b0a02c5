//! Certificates and signatures for the test registries, made with the `openssl` command so the
//! tests need no crypto crate: a CA and a server certificate for TLS, and a self-signed RSA
//! certificate whose key signs the token issuer's JWTs (RS256).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::http::base64_encode;

/// Runs `openssl` with `args` in `dir` and returns its stdout; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); run scripts/registry/install.sh"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA and a server certificate signed by it, for `127.0.0.1` and `localhost`.
#[derive(Debug, Clone)]
pub struct ServerCerts {
    /// The CA certificate (PEM) clients must trust.
    pub ca_pem: PathBuf,
    /// The server certificate (PEM).
    pub cert_pem: PathBuf,
    /// The server's private key (PEM, unencrypted).
    pub key_pem: PathBuf,
}

/// Makes a fresh CA and a server certificate (SAN `IP:127.0.0.1`, `IP:::1`, `DNS:localhost`) in `dir`.
pub fn make_server_certs(dir: &Path) -> ServerCerts {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "7",
            "-subj",
            "/CN=kiln test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        None,
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        None,
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n\
         basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "7",
            "-extfile",
            "server.ext",
        ],
        None,
    );
    ServerCerts {
        ca_pem: dir.join("ca.crt"),
        cert_pem: dir.join("server.crt"),
        key_pem: dir.join("server.key"),
    }
}

/// The token issuer's signing identity: distribution trusts `cert_pem` (its `rootcertbundle`) and
/// finds the certificate again in each token's `x5c` header.
#[derive(Debug, Clone)]
pub struct SigningCert {
    /// The self-signed certificate (PEM), the registry's `rootcertbundle`.
    pub cert_pem: PathBuf,
    /// The RSA private key (PEM) that signs tokens.
    pub key_pem: PathBuf,
    /// The certificate's DER in standard base64, the `x5c` entry.
    pub x5c: String,
}

/// Makes a self-signed RSA signing certificate in `dir`.
pub fn make_signing_cert(dir: &Path) -> SigningCert {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "7",
            "-subj",
            "/CN=kiln test token issuer",
        ],
        None,
    );
    let der = openssl(dir, &["x509", "-in", "token.crt", "-outform", "DER"], None);
    SigningCert {
        cert_pem: dir.join("token.crt"),
        key_pem: dir.join("token.key"),
        x5c: base64_encode(&der),
    }
}

/// An RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of `data` with the PEM key at `key`.
pub fn rs256_sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let dir = key.parent().unwrap_or(Path::new("."));
    let key = key.to_str().unwrap();
    openssl(dir, &["dgst", "-sha256", "-sign", key], Some(data))
}
