//! Errors from talking to a registry, keeping what the registry said: the HTTP status, the
//! distribution `errors[].code` values, the method and the URL.

use std::fmt;
use std::path::PathBuf;

use crate::oci::{Digest, ImageError, LayoutError};

use super::credentials::CredentialSource;

/// A distribution-spec error code (`errors[].code` in a registry's JSON error body).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: the blob is not in the repository.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload session is broken and must be restarted.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: the upload session does not exist (any more).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: what was uploaded does not match its digest.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest refers to a blob the repository lacks.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no such tag or digest.
    ManifestUnknown,
    /// `NAME_INVALID`.
    NameInvalid,
    /// `NAME_UNKNOWN`: no such repository.
    NameUnknown,
    /// `SIZE_INVALID`.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication needed or failed.
    Unauthorized,
    /// `DENIED`: authenticated but not allowed.
    Denied,
    /// `UNSUPPORTED`.
    Unsupported,
    /// `TOOMANYREQUESTS`.
    TooManyRequests,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// The code as the registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a registry's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErrorEntry {
    /// The code.
    pub code: ErrorCode,
    /// The registry's message, if any.
    pub message: String,
}

/// A registry answered with an unexpected HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {url} returned {status}{}", describe_entries(.errors))]
pub struct ApiError {
    /// The request method.
    pub method: String,
    /// The request URL (never carries credentials: those travel in headers).
    pub url: String,
    /// The HTTP status code.
    pub status: u16,
    /// The decoded `errors[]`, empty when the body had none.
    pub errors: Vec<ApiErrorEntry>,
}

fn describe_entries(errors: &[ApiErrorEntry]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                format!(": {}", e.code)
            } else {
                format!(": {}: {}", e.code, e.message)
            }
        })
        .collect()
}

impl ApiError {
    /// Builds the error from a response body (a distribution `{"errors":[…]}` document, or
    /// anything else, which is ignored).
    pub(crate) fn from_body(method: &str, url: &str, status: u16, body: &[u8]) -> ApiError {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let errors = serde_json::from_slice::<Body>(body)
            .map(|b| {
                b.errors
                    .into_iter()
                    .map(|e| ApiErrorEntry {
                        code: ErrorCode::parse(&e.code),
                        message: e.message,
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiError {
            method: method.to_string(),
            url: url.to_string(),
            status,
            errors,
        }
    }

    /// Whether the registry sent `code`.
    pub fn has_code(&self, code: &ErrorCode) -> bool {
        self.errors.iter().any(|e| &e.code == code)
    }
}

/// Errors from the registry client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The image or tag does not exist.
    #[error("manifest unknown: {reference} in {registry}")]
    ManifestUnknown {
        /// The reference, as the user would write it without the registry.
        reference: String,
        /// The registry asked.
        registry: String,
        /// What the registry said.
        #[source]
        source: Box<ApiError>,
    },
    /// The registry refused the credentials (or their absence).
    #[error("registry `{registry}` rejected the credentials from {credential}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Where the credentials came from.
        credential: CredentialSource,
        /// What the registry said.
        #[source]
        source: Box<ApiError>,
    },
    /// The credentials were accepted but do not allow the operation.
    #[error("access to `{repository}` on `{registry}` denied for credentials from {credential}")]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// Where the credentials came from.
        credential: CredentialSource,
        /// What the registry said.
        #[source]
        source: Box<ApiError>,
    },
    /// The token service refused to issue a token.
    #[error(
        "failed to get a token for `{registry}` from `{realm}` with credentials from {credential}"
    )]
    Token {
        /// The registry.
        registry: String,
        /// The token endpoint.
        realm: String,
        /// Where the credentials came from.
        credential: CredentialSource,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request timed out.
    #[error("timed out talking to `{address}` ({method} {url})")]
    Timeout {
        /// `host:port` that did not answer.
        address: String,
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The request failed before a response arrived (connection refused or reset, TLS failure).
    #[error("failed to reach `{address}` ({method} {url})")]
    Connection {
        /// `host:port`.
        address: String,
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A registry name or URL that cannot be addressed.
    #[error("invalid registry address `{0}`")]
    InvalidRegistry(String),
    /// The TLS configuration for a registry could not be built.
    #[error("failed to set up TLS for `{registry}`")]
    Tls {
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A CA certificate file could not be read.
    #[error("failed to read CA certificates from `{path}`")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A credentials file could not be read or written.
    #[error("failed to {action} credentials file `{path}`")]
    CredentialsFile {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `docker-credential-*` helper failed.
    #[error(
        "credential helper `docker-credential-{helper}` failed to {action} credentials for `{registry}`"
    )]
    CredentialHelper {
        /// The helper's suffix (`pass`, `ecr-login`).
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The registry.
        registry: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The manifest is Docker's schema 1, which kiln does not read.
    #[error(
        "manifest of `{reference}` is unsupported (schema 1); push it again with a current client"
    )]
    UnsupportedSchema1 {
        /// The reference.
        reference: String,
    },
    /// A manifest media type kiln does not read.
    #[error("manifest of `{reference}` has unsupported media type `{media_type}`")]
    UnsupportedMediaType {
        /// The reference.
        reference: String,
        /// The media type.
        media_type: String,
    },
    /// A manifest or index that does not parse.
    #[error("invalid manifest for `{reference}`")]
    InvalidManifest {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An index has no manifest for the requested platform.
    #[error("no manifest for platform `{platform}` in `{reference}` (available: {available})")]
    PlatformNotFound {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists, comma-separated.
        available: String,
    },
    /// Downloaded content does not hash to the digest it was asked by.
    #[error("content of `{url}` has digest `{actual}`, expected `{expected}`")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// Where it came from.
        url: String,
    },
    /// The registry stored a manifest under a different digest than the bytes sent.
    #[error("registry stored the manifest for `{reference}` as `{actual}`, expected `{expected}`")]
    ManifestDigestChanged {
        /// The tag pushed.
        reference: String,
        /// The digest of the bytes sent.
        expected: Digest,
        /// The digest the registry reported.
        actual: String,
    },
    /// A response lacked a header the protocol requires (`Location` after starting an upload).
    #[error("{method} {url} returned no usable `{header}` header")]
    MissingHeader {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The header.
        header: &'static str,
    },
    /// A push destination is on another registry or names no tag or digest.
    #[error("cannot push to `{0}`: a push destination needs a tag or digest")]
    InvalidDestination(String),
    /// A blob source did not produce the bytes its descriptor promised.
    #[error("blob `{digest}` read from the image is {actual} bytes, expected {expected}")]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// What was read.
        actual: u64,
    },
    /// Reading a local blob failed.
    #[error("failed to read blob `{digest}` of the image being pushed")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blob sent while it was being written could not be read to its end.
    #[error("failed to read a blob being written, for its upload to `{repository}`")]
    GrowingBlob {
        /// Where it was being uploaded.
        repository: String,
        /// The cause (the writer gave up, or its file could not be read).
        #[source]
        source: std::io::Error,
    },
    /// The local content store failed.
    #[error(transparent)]
    Store(#[from] LayoutError),
    /// The image being pushed could not be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The client's async runtime could not be started.
    #[error("failed to start the registry client's runtime")]
    Runtime(#[source] std::io::Error),
    /// A background task stopped unexpectedly.
    #[error("registry task `{0}` stopped unexpectedly")]
    TaskFailed(&'static str),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

/// Results of the registry client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_decodes_distribution_errors() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let e = ApiError::from_body("GET", "http://r/v2/a/manifests/x", 404, body);
        assert!(e.has_code(&ErrorCode::ManifestUnknown));
        assert_eq!(
            e.to_string(),
            "GET http://r/v2/a/manifests/x returned 404: MANIFEST_UNKNOWN: manifest unknown"
        );
        let e = ApiError::from_body("HEAD", "http://r/", 503, b"<html>");
        assert!(e.errors.is_empty());
        assert_eq!(e.to_string(), "HEAD http://r/ returned 503");
    }
}
