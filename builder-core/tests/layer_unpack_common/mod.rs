//! Hand-built tar layers for the unpack tests: any name, any link target, PAX records, so
//! hostile layers can be written exactly as an attacker would.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

/// A tar stream built entry by entry.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

/// Metadata of an entry.
#[derive(Clone, Copy)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Meta {
    pub fn mode(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
        }
    }

    pub fn owned(mode: u32, uid: u64, gid: u64, mtime: u64) -> Meta {
        Meta {
            mode,
            uid,
            gid,
            mtime,
        }
    }
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with raw `name` and `link` (each at most 100 bytes; longer names go in
    /// `pax` as `path`/`linkpath`), preceded by a PAX header holding `pax` when not empty.
    pub fn raw(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: Meta,
        data: &[u8],
        pax: &[(&str, &[u8])],
    ) -> &mut Layer {
        if !pax.is_empty() {
            let records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let mut header = Header::new_ustar();
            header.set_entry_type(EntryType::XHeader);
            set_bytes(&mut header.as_old_mut().name, b"PaxHeaders/entry");
            header.set_mode(0o644);
            header.set_size(records.len() as u64);
            header.set_cksum();
            self.builder.append(&header, &records[..]).unwrap();
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        set_bytes(&mut header.as_old_mut().name, name);
        set_bytes(&mut header.as_old_mut().linkname, link);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid.min(0o7777777));
        header.set_gid(meta.gid.min(0o7777777));
        header.set_mtime(meta.mtime);
        header.set_size(data.len() as u64);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            // /dev/null's numbers (0:0 would be an overlay whiteout).
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, meta: Meta) -> &mut Layer {
        self.raw(EntryType::Directory, name.as_bytes(), b"", meta, b"", &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Layer {
        self.raw(
            EntryType::Regular,
            name.as_bytes(),
            b"",
            Meta::mode(0o644),
            data,
            &[],
        )
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.raw(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            Meta::mode(0o777),
            b"",
            &[],
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.raw(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            Meta::mode(0o644),
            b"",
            &[],
        )
    }

    /// The tar bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    assert!(value.len() <= field.len(), "name too long for a raw header");
    field[..value.len()].copy_from_slice(value);
}

/// One PAX record: `"<len> key=value\n"` where `<len>` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = 3 + key.len() + value.len(); // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn blob(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Every path under `dir`, relative, sorted (empty when `dir` is empty).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Mode bits (with setuid/setgid/sticky) of `path`, not following a symlink.
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The value of extended attribute `name` on `path` (not following a symlink).
pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}
