//! OCI image types.

pub mod digest;

pub use digest::{Digest, DigestReader, DigestWriter};
