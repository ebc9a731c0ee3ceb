//! A minimal HTTP client for tests against a live `jobslot` API: raw
//! HTTP/1.x over TCP, so what is tested is what goes over the wire.

use super::{Project, wait_child};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A free local port, below the kernel's ephemeral range (32768 and up).
///
/// A port the kernel hands out for `bind(:0)` is an ephemeral one, and so
/// may be taken meanwhile as the source port of any outgoing connection (to
/// PostgreSQL, say) before the process meant to listen on it does: seen as
/// "Address already in use" in `startup_race`. Ports are tried in turn from
/// an offset of this process's own, and one that binds is returned; no port
/// is returned twice by one process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = (std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0))
        % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (LOW + n % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from {LOW} to {}", LOW + SPAN)
}

/// Waits until something listens on `port`.
pub fn wait_listening(port: u16, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listened on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An answer: status code, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// One request over HTTP/1.0 (the body comes unchunked, until the server
/// closes).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One request; returns the status code and the raw body.
pub fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, String) {
    let a = request(port, method, path, body, token);
    (a.status, a.body)
}

/// Starts `jobslot serve` (the API only) on `port`; waits until it listens.
pub fn serve(p: &Project, port: u16) -> Child {
    serve_with(p, port, &[])
}

/// Starts `jobslot serve` on `port` with `extra` options; waits until it listens.
pub fn serve_with(p: &Project, port: u16, extra: &[&str]) -> Child {
    let child = p
        .cmd()
        .args(["serve", "--api-addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_listening(port, Duration::from_secs(20));
    child
}

/// Stops an API process with SIGTERM; it must exit 0.
pub fn stop_api(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(
        wait_child(child, Duration::from_secs(10)).success(),
        "the API process exits 0 on SIGTERM"
    );
}

/// One request; returns the status code and the JSON body (null if none).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let (status, body) = http_raw(port, method, path, body, token);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Server-sent events read as they arrive.
pub struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    /// Opens `path` as an event stream; panics unless the answer is 200.
    pub fn open(port: u16, path: &str, token: Option<&str>) -> Events {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: text/event-stream\r\n{auth}\r\n"
        );
        s.write_all(req.as_bytes()).expect("send");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "event stream answered {line}");
        // Headers, up to the blank line.
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader }
    }

    /// The next event as (name, data parsed as JSON); keep-alive comments
    /// are skipped. `None` when the server closed the stream.
    pub fn next(&mut self) -> Option<(String, Value)> {
        let (mut name, mut data) = (String::from("message"), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).expect("read event") == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let v = serde_json::from_str(&data).expect("event data is JSON");
                return Some((name, v));
            }
            if let Some(n) = l.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = l.strip_prefix("data:") {
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
    }
}
