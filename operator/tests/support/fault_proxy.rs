//! A fault-injecting HTTP/1.1 proxy for Route53 tests, on 127.0.0.1.
//!
//! Each request is read whole, then (deterministically, from a seeded RNG) either answered with
//! a Route53 error without reaching the upstream (`Throttling` / `PriorRequestNotComplete`,
//! HTTP 400; or `InvalidChangeBatch` for bodies containing a marker), or forwarded to the
//! upstream on a fresh connection — optionally replacing the upstream's answer with an HTTP 500
//! after the change was applied, which is how a lost response looks to a client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to inject, as fractions of requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// RNG seed: the same seed and request order give the same faults.
    pub seed: u64,
    /// Fraction answered `400 Throttling` (never forwarded).
    pub throttle: f64,
    /// Fraction answered `400 PriorRequestNotComplete` (never forwarded).
    pub prior_request: f64,
    /// Fraction of change requests (POST) forwarded, then answered `500 InternalFailure`.
    pub fail_after_apply: f64,
    /// Change requests whose body contains this are answered `400 InvalidChangeBatch`.
    pub reject_body_containing: Option<String>,
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub prior_request: AtomicU64,
    pub failed_after_apply: AtomicU64,
    pub rejected: AtomicU64,
    pub forwarded: AtomicU64,
}

impl ProxyStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A running proxy; stops on drop.
pub struct FaultProxy {
    port: u16,
    stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: u16,
    faults: Faults,
    rng: Mutex<StdRng>,
    stats: Arc<ProxyStats>,
}

enum Decision {
    Error(u16, &'static str, &'static str),
    Forward { fail_after: bool },
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let stats = Arc::new(ProxyStats::default());
        let state = Arc::new(State {
            upstream,
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            faults,
            stats: Arc::clone(&stats),
        });
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let _ = serve(conn, state).await;
                });
            }
        });
        FaultProxy { port, stats, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Message {
    raw: Vec<u8>,
    first_line: String,
    body_start: usize,
    close: bool,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.x message. `None` on a clean EOF before any byte.
async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    is_request: bool,
) -> std::io::Result<Option<Message>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "EOF inside HTTP head",
            ));
        }
        if &raw[before..] == b"\r\n" || &raw[before..] == b"\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let first_line = head.lines().next().unwrap_or_default().to_owned();
    let body_start = raw.len();
    let http10 = if is_request {
        first_line.ends_with("HTTP/1.0")
    } else {
        first_line.starts_with("HTTP/1.0")
    };
    let mut close =
        http10 || header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let start = raw.len();
        raw.resize(start + len, 0);
        r.read_exact(&mut raw[start..]).await?;
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            raw.extend_from_slice(&line);
            let size_text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let mut t = Vec::new();
                    let n = r.read_until(b'\n', &mut t).await?;
                    raw.extend_from_slice(&t);
                    if n == 0 || t == b"\r\n" || t == b"\n" {
                        break;
                    }
                }
                break;
            }
            let start = raw.len();
            raw.resize(start + size + 2, 0);
            r.read_exact(&mut raw[start..]).await?;
        }
    } else if !is_request {
        // No length: the body runs to EOF.
        r.read_to_end(&mut raw).await?;
        close = true;
    }
    Ok(Some(Message {
        raw,
        first_line,
        body_start,
        close,
    }))
}

fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    );
    let reason = if status == 400 {
        "Bad Request"
    } else {
        "Internal Server Error"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl State {
    fn decide(&self, req: &Message) -> Decision {
        let is_change = req.first_line.starts_with("POST ");
        if is_change && let Some(marker) = &self.faults.reject_body_containing {
            let body = String::from_utf8_lossy(&req.raw[req.body_start..]);
            if body.contains(marker.as_str()) {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Decision::Error(
                    400,
                    "InvalidChangeBatch",
                    "[Injected: this batch holds a poisoned value]",
                );
            }
        }
        let (roll, roll2) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            (rng.random::<f64>(), rng.random::<f64>())
        };
        if roll < self.faults.throttle {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Decision::Error(400, "Throttling", "Rate exceeded");
        }
        if roll < self.faults.throttle + self.faults.prior_request {
            self.stats.prior_request.fetch_add(1, Ordering::Relaxed);
            return Decision::Error(
                400,
                "PriorRequestNotComplete",
                "The request was rejected because Route 53 was still processing a prior request.",
            );
        }
        Decision::Forward {
            fail_after: is_change && roll2 < self.faults.fail_after_apply,
        }
    }
}

async fn serve(conn: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut reader = BufReader::new(r);
    while let Some(req) = read_message(&mut reader, true).await? {
        state.stats.requests.fetch_add(1, Ordering::Relaxed);
        match state.decide(&req) {
            Decision::Error(status, code, message) => {
                w.write_all(&error_response(status, code, message)).await?;
            }
            Decision::Forward { fail_after } => {
                let mut up = TcpStream::connect(("127.0.0.1", state.upstream)).await?;
                up.write_all(&req.raw).await?;
                let mut up_reader = BufReader::new(up);
                let Some(resp) = read_message(&mut up_reader, false).await? else {
                    return Ok(());
                };
                state.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                if fail_after {
                    state
                        .stats
                        .failed_after_apply
                        .fetch_add(1, Ordering::Relaxed);
                    w.write_all(&error_response(
                        500,
                        "InternalFailure",
                        "Injected: applied, then the response was lost",
                    ))
                    .await?;
                } else {
                    w.write_all(&resp.raw).await?;
                    if resp.close {
                        w.flush().await?;
                        return Ok(());
                    }
                }
            }
        }
        w.flush().await?;
        if req.close {
            return Ok(());
        }
    }
    Ok(())
}
