//! Deterministic tar writing for output archives (not layers): fixed owner, mode and time.

use std::io::{self, Read, Write};

/// Appends a regular file of `size` bytes read from `data`.
pub(crate) fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = header(tar::EntryType::Regular, 0o644);
    header.set_size(size);
    tar.append_data(&mut header, path, data)
}

/// Appends a directory.
pub(crate) fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755);
    header.set_size(0);
    tar.append_data(&mut header, path, io::empty())
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}
