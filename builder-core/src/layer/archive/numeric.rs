//! Numeric tar header fields, parsed as Go's `archive/tar` reader parses them: octal padded
//! with spaces or NULs (an empty field is 0), or base-256 when the high bit is set. Readers that
//! are stricter (an empty field as an error) would reject archives Docker accepts.

/// Go's `parseNumeric`: base-256 when the high bit is set, octal otherwise.
pub(crate) fn parse_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    let inv = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in field.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return None;
        }
        x = x << 8 | u64::from(c);
    }
    if x >> 63 > 0 {
        return None;
    }
    let x = x as i64;
    Some(if inv == 0xff { !x } else { x })
}

/// Go's `parseOctal`: spaces and NULs trimmed from both ends, cut at the first NUL; empty is 0.
pub(crate) fn parse_octal(field: &[u8]) -> Option<i64> {
    let trim = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !trim(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !trim(b))
        .map_or(start, |i| i + 1);
    let mut text = &field[start..end];
    if let Some(nul) = text.iter().position(|&b| b == 0) {
        text = &text[..nul];
    }
    if text.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(text).ok()?;
    u64::from_str_radix(text, 8)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields_parse_like_go() {
        assert_eq!(parse_octal(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b" 644 \0\0\0"), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"12x4\0"), None);
        assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1]), Some(1));
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
    }
}
