//! Just enough HTTP/1.1 for the test servers (token issuer, fault proxy) and for tests that want to
//! look at a registry's raw answers: request heads, `Content-Length` and chunked bodies, a one-shot
//! client, and the encodings the protocols use (query strings, base64).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The largest request or response head accepted; registry heads are far smaller.
const MAX_HEAD: usize = 64 * 1024;

/// How long a test-side socket waits for its peer before giving up, so nothing hangs forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed request or response head: the start line and the header fields in order.
#[derive(Debug, Clone)]
pub struct Head {
    /// The first line without its CRLF (`GET /v2/ HTTP/1.1` or `HTTP/1.1 200 OK`).
    pub start_line: String,
    /// Header fields as sent, names in their original case.
    pub headers: Vec<(String, String)>,
    /// The head's bytes exactly as read, CRLFs included, for forwarding unchanged.
    pub raw: Vec<u8>,
}

impl Head {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body that follows this head is delimited (requests only: a response to HEAD or
    /// a 204/304 has no body whatever its headers say).
    pub fn body_kind(&self) -> BodyKind {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            BodyKind::Chunked
        } else if let Some(n) = self
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            BodyKind::Length(n)
        } else {
            BodyKind::Length(0)
        }
    }

    /// The method and request target of a request head.
    pub fn method_and_target(&self) -> (String, String) {
        let mut parts = self.start_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        (method, target)
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Exactly this many bytes follow (0 when there is no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Reads one head; `Ok(None)` when the peer closed the connection before sending anything.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside an http head",
            ));
        }
        if raw.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "http head too large",
            ));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Tolerate stray CRLFs between messages.
                raw.clear();
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let start_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        start_line,
        headers,
        raw,
    }))
}

/// Copies a body of `kind` from `reader` to `out` (framing included, so a chunked body stays
/// chunked), calling `on_payload` with the count of payload bytes copied so far after each piece.
/// `on_payload` returns how many more payload bytes may be copied; when it returns `Some(0)` the copy
/// stops early and `Ok(false)` is returned. `Ok(true)` means the whole body was copied.
pub fn copy_body(
    reader: &mut impl BufRead,
    out: &mut impl Write,
    kind: BodyKind,
    mut allowance: impl FnMut(u64) -> Option<u64>,
) -> io::Result<bool> {
    let mut payload = 0u64;
    let mut copy_exact = |reader: &mut dyn BufRead,
                          out: &mut dyn Write,
                          mut n: u64,
                          payload: &mut u64|
     -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        while n > 0 {
            let mut want = n.min(buf.len() as u64);
            if let Some(left) = allowance(*payload) {
                if left == 0 {
                    return Ok(false);
                }
                want = want.min(left);
            }
            let got = reader.read(&mut buf[..want as usize])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside an http body",
                ));
            }
            out.write_all(&buf[..got])?;
            n -= got as u64;
            *payload += got as u64;
        }
        if let Some(0) = allowance(*payload) {
            return Ok(false);
        }
        Ok(true)
    };
    match kind {
        BodyKind::Length(n) => copy_exact(reader, out, n, &mut payload),
        BodyKind::Chunked => loop {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            out.write_all(&line)?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text
                .trim()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let size = u64::from_str_radix(&size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailer fields, then the final empty line.
                loop {
                    let mut trailer = Vec::new();
                    reader.read_until(b'\n', &mut trailer)?;
                    out.write_all(&trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        return Ok(true);
                    }
                }
            }
            if !copy_exact(reader, out, size, &mut payload)? {
                return Ok(false);
            }
            let mut crlf = Vec::new();
            reader.read_until(b'\n', &mut crlf)?;
            out.write_all(&crlf)?;
        },
    }
}

/// Reads a whole body of `kind`, decoding chunked framing.
pub fn read_body(reader: &mut impl BufRead, kind: BodyKind) -> io::Result<Vec<u8>> {
    match kind {
        BodyKind::Length(n) => {
            let mut body = Vec::new();
            reader.take(n).read_to_end(&mut body)?;
            if body.len() as u64 != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside an http body",
                ));
            }
            Ok(body)
        }
        BodyKind::Chunked => {
            let mut framed = Vec::new();
            copy_body(reader, &mut framed, kind, |_| None)?;
            Ok(dechunk(&framed))
        }
    }
}

/// Removes chunked framing from a complete chunked body.
fn dechunk(mut framed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = framed.iter().position(|&b| b == b'\n') else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&framed[..eol])
            .trim()
            .split(';')
            .next()
            .unwrap_or("0")
            .trim()
            .to_string();
        let size = usize::from_str_radix(&size_text, 16).unwrap_or(0);
        framed = &framed[eol + 1..];
        if size == 0 || framed.len() < size {
            return out;
        }
        out.extend_from_slice(&framed[..size]);
        framed = framed[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&framed[size..]);
    }
}

/// A response read by [`request`].
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The head, for header lookups.
    pub head: Head,
    /// The body, chunked framing removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// Sends one request to `addr` on a fresh connection (`Connection: close`) and reads the answer.
/// `target` is the path and query; `Host` and `Content-Length` are added. Meant for probing servers
/// in tests, not for speed.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
    let status = head
        .start_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {:?}", head.start_line),
            )
        })?;
    let body = if method == "HEAD" || status == 204 || status == 304 {
        Vec::new()
    } else if head.header("content-length").is_none() && head.header("transfer-encoding").is_none()
    {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        rest
    } else {
        read_body(&mut reader, head.body_kind())?
    };
    Ok(Response { status, head, body })
}

/// Writes a complete response with `Content-Length` and `Connection: close`.
pub fn write_response(
    out: &mut impl Write,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// Splits an `application/x-www-form-urlencoded` string (a query or a form body) into decoded
/// pairs, keeping repeated keys (`scope=a&scope=b`) in order.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` as space.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes for a query string or form body: unreserved characters as they are, the rest `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Basic credentials, `x5c` certificates, docker's `config.json`).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Unpadded base64url, as JWTs use.
pub fn base64url_encode(data: &[u8]) -> String {
    base64_encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Decodes standard or url-safe base64, padded or not; `None` on any other character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.trim().bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}
