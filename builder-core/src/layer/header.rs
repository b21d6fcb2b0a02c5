//! Tar header blocks laid out the way Go's `archive/tar` writes them.
//!
//! Docker and BuildKit write layers with Go's `archive/tar`, so matching its bytes makes our
//! diff_ids comparable with theirs for the same content. Its rules, which this module follows:
//!
//! - USTAR whenever every field fits: names over 100 bytes are split into `prefix` and `name`
//!   at a `/` if they can be; numbers are zero-padded octal ending in NUL; `devmajor` and
//!   `devminor` are written as zeros for every type; `uname`/`gname` stay empty.
//! - Otherwise PAX: an `x` header named `dir/PaxHeaders.0/file`, with sorted records, followed
//!   by the real header whose fields are truncated (names) or zeroed (numbers) where they
//!   overflow. Extended attributes always force PAX, as `SCHILY.xattr.<name>` records.
//! - The checksum field is six octal digits, NUL, space.

use std::collections::BTreeMap;

use super::error::LayerError;

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;
/// Largest value in an 8-byte octal field (7 digits).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value in a 12-byte octal field (11 digits).
const MAX_OCTAL_12: u64 = 0o77777777777;

/// Tar typeflags.
pub(crate) mod typeflag {
    pub const REGULAR: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
}

/// Everything a header records about one entry, already in tar terms.
pub(crate) struct HeaderFields<'a> {
    /// The full name, with a trailing `/` for directories.
    pub name: &'a str,
    pub typeflag: u8,
    pub linkname: &'a str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

/// Appends the header block(s) for `fields` to `out`: one USTAR block, or a PAX header with its
/// padded records and then the main block.
pub(crate) fn encode(
    fields: &HeaderFields<'_>,
    entry_path: &str,
    out: &mut Vec<u8>,
) -> Result<(), LayerError> {
    if u64::from(fields.devmajor) > MAX_OCTAL_8 || u64::from(fields.devminor) > MAX_OCTAL_8 {
        return Err(LayerError::DeviceNumberTooLarge {
            path: entry_path.to_string(),
        });
    }
    if fields.linkname.contains('\0') {
        return Err(LayerError::InvalidLinkTarget {
            path: entry_path.to_string(),
        });
    }

    let mut ustar_ok = fields.xattrs.is_empty();
    let mut records: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    let name_needs_pax = fields.name.len() > NAME_SIZE || !is_ascii(fields.name);
    let split = split_ustar_path(fields.name);
    if name_needs_pax {
        if split.is_none() {
            ustar_ok = false;
        }
        records.insert("path".into(), fields.name.as_bytes().to_vec());
    }
    if fields.linkname.len() > NAME_SIZE || !is_ascii(fields.linkname) {
        ustar_ok = false;
        records.insert("linkpath".into(), fields.linkname.as_bytes().to_vec());
    }
    for (key, value) in [("uid", fields.uid), ("gid", fields.gid)] {
        if u64::from(value) > MAX_OCTAL_8 {
            ustar_ok = false;
            records.insert(key.into(), value.to_string().into_bytes());
        }
    }
    if fields.size > MAX_OCTAL_12 {
        ustar_ok = false;
        records.insert("size".into(), fields.size.to_string().into_bytes());
    }
    if !(0..=MAX_OCTAL_12 as i64).contains(&fields.mtime) {
        ustar_ok = false;
        records.insert("mtime".into(), fields.mtime.to_string().into_bytes());
    }
    for (name, value) in fields.xattrs {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(LayerError::InvalidXattr {
                path: entry_path.to_string(),
                name: name.clone(),
            });
        }
        records.insert(format!("SCHILY.xattr.{name}"), value.clone());
    }

    if ustar_ok {
        let mut block = main_block(fields, format_string);
        if let Some((prefix, suffix)) = split.filter(|_| name_needs_pax) {
            block[..NAME_SIZE].fill(0);
            format_string(&mut block[..NAME_SIZE], suffix);
            format_string(&mut block[345..345 + PREFIX_SIZE], prefix);
        }
        finish_block(&mut block);
        out.extend_from_slice(&block);
        return Ok(());
    }

    let mut data = Vec::new();
    for (key, value) in &records {
        append_pax_record(&mut data, key.as_bytes(), value);
    }
    let mut pax = [0u8; BLOCK];
    let mut pax_name = to_ascii(&pax_header_name(fields.name));
    pax_name.truncate(NAME_SIZE);
    let pax_name = pax_name.trim_end_matches('/');
    format_string(&mut pax[..100], pax_name);
    format_octal(&mut pax[100..108], 0);
    format_octal(&mut pax[108..116], 0);
    format_octal(&mut pax[116..124], 0);
    format_octal(&mut pax[124..136], data.len() as u64);
    format_octal(&mut pax[136..148], 0);
    pax[156] = typeflag::PAX;
    finish_block(&mut pax);
    out.extend_from_slice(&pax);
    out.extend_from_slice(&data);
    out.resize(out.len() + padding(data.len() as u64), 0);

    let mut block = main_block(fields, |b, s| format_string(b, &to_ascii(s)));
    finish_block(&mut block);
    out.extend_from_slice(&block);
    Ok(())
}

/// Bytes of zero padding after `size` bytes of data.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The V7 and USTAR fields shared by both formats; numbers that do not fit are written as zero.
fn main_block(fields: &HeaderFields<'_>, fmt_str: impl Fn(&mut [u8], &str)) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    fmt_str(&mut b[0..100], fields.name);
    format_octal(&mut b[100..108], u64::from(fields.mode & 0o7777));
    format_octal(&mut b[108..116], u64::from(fields.uid));
    format_octal(&mut b[116..124], u64::from(fields.gid));
    format_octal(&mut b[124..136], fields.size);
    format_octal(&mut b[136..148], u64::try_from(fields.mtime).unwrap_or(0));
    b[156] = fields.typeflag;
    fmt_str(&mut b[157..257], fields.linkname);
    format_octal(&mut b[329..337], u64::from(fields.devmajor));
    format_octal(&mut b[337..345], u64::from(fields.devminor));
    b
}

/// Sets the USTAR magic and version, then the checksum.
fn finish_block(b: &mut [u8; BLOCK]) {
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&c| u64::from(c)).sum();
    format_octal(&mut b[148..155], sum);
    b[155] = b' ';
}

/// Zero-padded octal filling all but the last byte, which is NUL; zero if it does not fit.
fn format_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let fits = digits >= 22 || value < 1u64 << (3 * digits);
    let text = format!("{:0digits$o}", if fits { value } else { 0 });
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// Copies `s`, truncated to the field; NUL-terminates when shorter. A truncated value that
/// would end in `/` has that slash replaced by NUL, so old readers don't see a directory.
fn format_string(field: &mut [u8], s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    if bytes.len() < field.len() {
        field[bytes.len()] = 0;
    }
    if bytes.len() > field.len() && field[field.len() - 1] == b'/' {
        let kept = bytes[..field.len()]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |i| i + 1);
        field[kept] = 0;
    }
}

/// Splits a long ASCII name into a USTAR prefix (≤155) and name (≤100) at a `/`.
fn split_ustar_path(name: &str) -> Option<(&str, &str)> {
    let mut length = name.len();
    if length <= NAME_SIZE || !is_ascii(name) {
        return None;
    }
    if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name.as_bytes()[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let suffix_len = name.len() - i - 1;
    if i == 0 || suffix_len > NAME_SIZE || suffix_len == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// `dir/PaxHeaders.0/file`, as Go names the extended header of `name`.
fn pax_header_name(name: &str) -> String {
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    };
    [dir, "PaxHeaders.0", file]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

fn is_ascii(s: &str) -> bool {
    s.bytes().all(|c| c != 0 && c < 0x80)
}

fn to_ascii(s: &str) -> String {
    s.chars().filter(|&c| c != '\0' && c.is_ascii()).collect()
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including itself.
fn append_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if size.to_string().len() + base != size {
        size = base + size.to_string().len();
    }
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(name: &'a str, xattrs: &'a BTreeMap<String, Vec<u8>>) -> HeaderFields<'a> {
        HeaderFields {
            name,
            typeflag: typeflag::REGULAR,
            linkname: "",
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 5,
            mtime: 1_700_000_000,
            devmajor: 0,
            devminor: 0,
            xattrs,
        }
    }

    #[test]
    fn ustar_block_matches_go_layout() {
        let none = BTreeMap::new();
        let mut out = Vec::new();
        encode(&fields("etc/hosts", &none), "etc/hosts", &mut out).unwrap();
        assert_eq!(out.len(), 512);
        assert_eq!(&out[0..10], b"etc/hosts\0");
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[108..116], b"0000000\0");
        assert_eq!(&out[124..136], b"00000000005\0");
        assert_eq!(&out[136..148], b"14524770400\0");
        assert_eq!(out[156], b'0');
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert_eq!(&out[265..329], &[0u8; 64][..], "uname and gname are empty");
        assert_eq!(&out[329..345], b"0000000\x000000000\0");
        let sum: u32 = out
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(c)
                }
            })
            .sum();
        assert_eq!(&out[148..156], format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        append_pax_record(&mut out, b"path", b"x");
        assert_eq!(out, b"9 path=x\n");
        let mut out = Vec::new();
        // 99 bytes without the length; two digits would make 101, so the length is 102.
        append_pax_record(&mut out, b"path", &[b'a'; 92]);
        assert_eq!(&out[..4], b"102 ");
        assert_eq!(out.len(), 102);
    }

    #[test]
    fn long_splittable_name_stays_ustar() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let none = BTreeMap::new();
        let mut out = Vec::new();
        encode(&fields(&name, &none), &name, &mut out).unwrap();
        assert_eq!(out.len(), 512);
        assert_eq!(&out[0..51], format!("{}\0", "f".repeat(50)).as_bytes());
        assert_eq!(&out[345..466], format!("{}\0", "d".repeat(120)).as_bytes());
    }

    #[test]
    fn non_ascii_names_and_huge_sizes_need_pax() {
        let none = BTreeMap::new();
        let mut out = Vec::new();
        let mut f = fields("caf\u{e9}.txt", &none);
        f.size = 9 << 30;
        encode(&f, "café.txt", &mut out).unwrap();
        assert_eq!(out[156], typeflag::PAX);
        assert_eq!(&out[0..21], b"PaxHeaders.0/caf.txt\0");
        let records = b"18 path=caf\xc3\xa9.txt\n19 size=9663676416\n";
        assert_eq!(&out[512..512 + records.len()], records);
        let main = &out[1024..1536];
        assert_eq!(
            &main[0..8],
            b"caf.txt\0",
            "non-ASCII dropped from the USTAR name"
        );
        assert_eq!(
            &main[124..136],
            b"00000000000\0",
            "size that does not fit is zero"
        );
    }

    #[test]
    fn pax_header_names() {
        assert_eq!(pax_header_name("a/b/"), "a/b/PaxHeaders.0");
        assert_eq!(pax_header_name("a/b"), "a/PaxHeaders.0/b");
        assert_eq!(pax_header_name("b"), "PaxHeaders.0/b");
    }
}
