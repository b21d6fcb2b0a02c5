//! A loopback HTTP/1.1 proxy that sits between a client and a plain-http registry and injects the
//! failures a push must survive: a connection dropped part-way through an upload body, one
//! `503 Service Unavailable` and one `429 Too Many Requests` (both with `Retry-After: 1`). Each fault
//! fires once; everything else is forwarded byte for byte, so the registry builds its `Location`
//! URLs from the `Host` the client sent and the client keeps talking through the proxy.
//!
//! It parses request heads (to match and to find where bodies end) but not responses, relying on
//! clients not pipelining: a client sends its next request on a connection only after reading the
//! previous answer, so an injected answer never interleaves with a forwarded one. Injected answers
//! close the connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::http::{self, BodyKind, IO_TIMEOUT};

/// How long a dropped upload's bytes have to reach the registry before the connection breaks.
const DROP_DELAY: Duration = Duration::from_millis(200);

/// Which requests a one-shot fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMatch {
    /// The HTTP method, exactly (`PUT`, `PATCH`, `HEAD`, …).
    pub method: String,
    /// A substring of the request target (path and query), e.g. `/manifests/` or `/blobs/uploads/`.
    pub path_contains: String,
}

impl RequestMatch {
    fn matches(&self, method: &str, target: &str) -> bool {
        self.method == method && target.contains(&self.path_contains)
    }
}

/// The faults a [`FaultProxy`] injects, each at most once.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop the connection after this many body bytes of the first `PATCH` or `PUT` to a blob
    /// upload URL (`/blobs/uploads/`) whose body is longer than that (chunked bodies always qualify).
    /// The registry keeps what it received; the client sees its connection closed.
    pub drop_upload_after: Option<u64>,
    /// How many `PATCH`/`PUT` requests to blob upload URLs (any body length) to forward untouched
    /// before one may be dropped, e.g. 1 to let the first chunk of a chunked upload through and cut
    /// the second.
    pub drop_upload_skip: usize,
    /// Answer the first matching request with `503 Service Unavailable` and `Retry-After: 1`.
    pub unavailable_once: Option<RequestMatch>,
    /// Answer the first matching request with `429 Too Many Requests` and `Retry-After: 1`.
    pub too_many_requests_once: Option<RequestMatch>,
}

impl Faults {
    /// No faults: a transparent proxy (still counting requests).
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Adds [`Faults::drop_upload_after`].
    pub fn drop_upload_after(mut self, bytes: u64) -> Faults {
        self.drop_upload_after = Some(bytes);
        self
    }

    /// Sets [`Faults::drop_upload_skip`].
    pub fn skip_uploads(mut self, count: usize) -> Faults {
        self.drop_upload_skip = count;
        self
    }

    /// Adds [`Faults::unavailable_once`].
    pub fn unavailable_once(mut self, method: &str, path_contains: &str) -> Faults {
        self.unavailable_once = Some(RequestMatch {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
        });
        self
    }

    /// Adds [`Faults::too_many_requests_once`].
    pub fn too_many_requests_once(mut self, method: &str, path_contains: &str) -> Faults {
        self.too_many_requests_once = Some(RequestMatch {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
        });
        self
    }
}

/// A fault the proxy injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection was closed after this many body bytes had been forwarded.
    DroppedUpload {
        /// Body bytes (payload, without chunk framing) the registry received.
        after: u64,
    },
    /// A 503 was answered instead of forwarding.
    Unavailable,
    /// A 429 was answered instead of forwarding.
    TooManyRequests,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Its `Content-Range` header, which shows whether a client resumed an upload.
    pub content_range: Option<String>,
    /// Its `Content-Length` header.
    pub content_length: Option<u64>,
    /// The fault injected on it, if any.
    pub fault: Option<Fault>,
}

/// How often each thing happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Client connections accepted.
    pub connections: usize,
    /// Requests seen (forwarded or answered).
    pub requests: usize,
    /// Connections dropped mid-upload.
    pub dropped_uploads: usize,
    /// 503 answers injected.
    pub unavailable: usize,
    /// 429 answers injected.
    pub too_many_requests: usize,
}

#[derive(Default)]
struct Shared {
    plan: Faults,
    counts: FaultCounts,
    seen: Vec<SeenRequest>,
    live: Vec<(usize, TcpStream)>,
}

/// A running fault-injection proxy on 127.0.0.1; stops and closes every connection on drop.
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, the registry part of references that go through the proxy.
    pub host: String,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// Starts a proxy to the plain-http server at `upstream`, injecting `plan`.
    pub fn start(upstream: SocketAddr, plan: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            plan,
            ..Shared::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let shared = Arc::clone(&shared);
                    workers.push(std::thread::spawn(move || {
                        let _ = serve_connection(client, upstream, &shared);
                    }));
                }
                workers
            })
        };
        FaultProxy {
            addr,
            url: format!("http://{addr}"),
            host: addr.to_string(),
            shared,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// What happened so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.lock().unwrap().counts
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().unwrap().seen.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for (_, conn) in self.shared.lock().unwrap().live.drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        if let Some(accept) = self.accept_thread.take()
            && let Ok(workers) = accept.join()
        {
            for worker in workers {
                let _ = worker.join();
            }
        }
    }
}

/// What to do with one request.
enum Action {
    Forward,
    DropAfter(u64),
    Answer(u16, &'static str, Fault),
}

fn serve_connection(
    client: TcpStream,
    upstream: SocketAddr,
    shared: &Mutex<Shared>,
) -> std::io::Result<()> {
    let server = TcpStream::connect_timeout(&upstream, IO_TIMEOUT)?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
    }
    let id = {
        let mut sh = shared.lock().unwrap();
        sh.counts.connections += 1;
        let id = sh.counts.connections;
        sh.live.push((id, client.try_clone()?));
        sh.live.push((id, server.try_clone()?));
        id
    };
    // Responses flow back untouched on their own thread.
    let pump = {
        let mut from = server.try_clone()?;
        let mut to = client.try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let result = forward_requests(&client, &server, shared);
    let _ = server.shutdown(Shutdown::Write);
    if result.is_err() {
        let _ = server.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
    }
    let _ = pump.join();
    shared.lock().unwrap().live.retain(|(conn, _)| *conn != id);
    result
}

fn forward_requests(
    client: &TcpStream,
    server: &TcpStream,
    shared: &Mutex<Shared>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut to_server = server.try_clone()?;
    loop {
        // A client probing for TLS first (skopeo with `--tls-verify=false` does) sends a handshake,
        // not a request: close at once so it falls back to plain http without waiting for a timeout.
        match reader.fill_buf()?.first() {
            None => return Ok(()),
            Some(b) if !b.is_ascii_uppercase() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not an http request",
                ));
            }
            Some(_) => {}
        }
        let Some(head) = http::read_head(&mut reader)? else {
            return Ok(());
        };
        let (method, target) = head.method_and_target();
        let kind = head.body_kind();
        let (action, index) = {
            let mut sh = shared.lock().unwrap();
            sh.counts.requests += 1;
            let action = choose(&mut sh.plan, &method, &target, kind);
            sh.seen.push(SeenRequest {
                method: method.clone(),
                target: target.clone(),
                content_range: head.header("content-range").map(str::to_string),
                content_length: head
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok()),
                fault: None,
            });
            (action, sh.seen.len() - 1)
        };
        match action {
            Action::Forward => {
                to_server.write_all(&head.raw)?;
                http::copy_body(&mut reader, &mut to_server, kind, |_| None)?;
                to_server.flush()?;
            }
            Action::Answer(status, reason, fault) => {
                // Read the body first so the client is not cut off while still sending it.
                http::copy_body(&mut reader, &mut std::io::sink(), kind, |_| None)?;
                let mut to_client = client.try_clone()?;
                http::write_response(
                    &mut to_client,
                    status,
                    reason,
                    &[("Retry-After", "1"), ("Content-Type", "application/json")],
                    b"",
                )?;
                record(shared, index, fault);
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            Action::DropAfter(limit) => {
                to_server.write_all(&head.raw)?;
                let whole = http::copy_body(&mut reader, &mut to_server, kind, |sent| {
                    Some(limit.saturating_sub(sent))
                })?;
                to_server.flush()?;
                if whole {
                    // A chunked body shorter than the limit: nothing to drop; stay armed.
                    shared.lock().unwrap().plan.drop_upload_after = Some(limit);
                    continue;
                }
                record(shared, index, Fault::DroppedUpload { after: limit });
                // A connection that breaks mid-body breaks after what was sent has arrived: give
                // the registry time to take it in, or whether it had depends on scheduling.
                std::thread::sleep(DROP_DELAY);
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
}

/// Picks the action for a request and disarms the fault it uses.
fn choose(plan: &mut Faults, method: &str, target: &str, kind: BodyKind) -> Action {
    if plan
        .unavailable_once
        .as_ref()
        .is_some_and(|m| m.matches(method, target))
    {
        plan.unavailable_once = None;
        return Action::Answer(503, "Service Unavailable", Fault::Unavailable);
    }
    if plan
        .too_many_requests_once
        .as_ref()
        .is_some_and(|m| m.matches(method, target))
    {
        plan.too_many_requests_once = None;
        return Action::Answer(429, "Too Many Requests", Fault::TooManyRequests);
    }
    if let Some(limit) = plan.drop_upload_after {
        let upload = matches!(method, "PATCH" | "PUT") && target.contains("/blobs/uploads/");
        let long_enough = match kind {
            BodyKind::Chunked => true,
            BodyKind::Length(n) => n > limit,
        };
        if upload && plan.drop_upload_skip > 0 {
            plan.drop_upload_skip -= 1;
        } else if upload && long_enough {
            plan.drop_upload_after = None;
            return Action::DropAfter(limit);
        }
    }
    Action::Forward
}

fn record(shared: &Mutex<Shared>, index: usize, fault: Fault) {
    let mut sh = shared.lock().unwrap();
    match fault {
        Fault::DroppedUpload { .. } => sh.counts.dropped_uploads += 1,
        Fault::Unavailable => sh.counts.unavailable += 1,
        Fault::TooManyRequests => sh.counts.too_many_requests += 1,
    }
    sh.seen[index].fault = Some(fault);
}
