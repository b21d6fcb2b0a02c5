//! The metadata of one tar entry, from its header and PAX records (which win when present:
//! they carry large ids, sub-second mtimes and `SCHILY.xattr.*` extended attributes).

use std::io::Read;

/// Ownership, mode, mtime and extended attributes of an entry.
pub(crate) struct Meta {
    /// Permission bits including setuid, setgid and sticky.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Seconds since the epoch.
    pub(crate) mtime: i64,
    /// Nanoseconds within `mtime`.
    pub(crate) mtime_nsec: u32,
    /// `(name, value)` in archive order.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A header field that does not parse, by name.
pub(crate) type BadField = &'static str;

impl Meta {
    /// Reads the metadata of `entry`.
    pub(crate) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, ReadMetaError> {
        let mut pax_uid = None;
        let mut pax_gid = None;
        let mut pax_mtime = None;
        let mut xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions().map_err(ReadMetaError::Io)? {
            for extension in extensions {
                let extension = extension.map_err(ReadMetaError::Io)?;
                let value = extension.value_bytes();
                match extension.key_bytes() {
                    b"uid" => pax_uid = Some(decimal(value).ok_or(ReadMetaError::Field("uid"))?),
                    b"gid" => pax_gid = Some(decimal(value).ok_or(ReadMetaError::Field("gid"))?),
                    b"mtime" => {
                        pax_mtime = Some(pax_time(value).ok_or(ReadMetaError::Field("mtime"))?);
                    }
                    key => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let header = entry.header();
        let raw = header.as_old();
        let mode = numeric(header.mode(), &raw.mode, "mode")?;
        let uid = match pax_uid {
            Some(uid) => uid,
            None => numeric(header.uid(), &raw.uid, "uid")?,
        };
        let gid = match pax_gid {
            Some(gid) => gid,
            None => numeric(header.gid(), &raw.gid, "gid")?,
        };
        let (mtime, mtime_nsec) = match pax_mtime {
            Some(time) => time,
            None => {
                let secs = numeric(header.mtime(), &raw.mtime, "mtime")?;
                (
                    i64::try_from(secs).map_err(|_| ReadMetaError::Field("mtime"))?,
                    0,
                )
            }
        };
        Ok(Meta {
            mode: mode & 0o7777,
            uid: u32::try_from(uid).map_err(|_| ReadMetaError::Field("uid"))?,
            gid: u32::try_from(gid).map_err(|_| ReadMetaError::Field("gid"))?,
            mtime,
            mtime_nsec,
            xattrs,
        })
    }
}

/// Why [`Meta::read`] failed.
pub(crate) enum ReadMetaError {
    /// The PAX records could not be read from the stream.
    Io(std::io::Error),
    /// A field does not parse.
    Field(BadField),
}

/// A numeric header field as the `tar` crate parsed it, except that an empty field (only NULs
/// or spaces) is 0, as Go's `archive/tar` (which wrote most layers) reads it.
fn numeric<T: Default>(
    parsed: std::io::Result<T>,
    field: &[u8],
    name: BadField,
) -> Result<T, ReadMetaError> {
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        Err(_) => Err(ReadMetaError::Field(name)),
    }
}

fn decimal(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A PAX time (`"1700000000.5"`, `"-3.25"`) as whole seconds rounded toward negative infinity
/// and the nanoseconds after them.
fn pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let digits: String = fraction
        .chars()
        .chain("000000000".chars())
        .take(9)
        .collect();
    let nanos: u32 = digits.parse().ok()?;
    if nanos == 0 {
        return Some((seconds, 0));
    }
    Some(if whole.starts_with('-') {
        (seconds - 1, 1_000_000_000 - nanos)
    } else {
        (seconds, nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            pax_time(b"1700000000.75"),
            Some((1_700_000_000, 750_000_000))
        );
        assert_eq!(pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(pax_time(b"1.000000001999"), Some((1, 1)));
        assert_eq!(pax_time(b"-3.25"), Some((-4, 750_000_000)));
        assert_eq!(pax_time(b"x"), None);
        assert_eq!(pax_time(b"1.x"), None);
    }
}
