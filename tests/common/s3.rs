//! An in-process S3-compatible server (s3s-fs over a directory) for tests of log upload.
//!
//! The server listens on 127.0.0.1, accepts path-style requests only and requires SigV4
//! signatures made with [`ACCESS_KEY`]/[`SECRET_KEY`]. Objects are plain files at
//! `root/bucket/key`; s3s-fs keeps its own bookkeeping (metadata, checksums, upload ids, parts,
//! temporary files) as dot-files directly under `root`, never inside a bucket directory.
//!
//! Every request passes through a counting wrapper that records it in a [`Counters`]. A
//! `Counters` is a cheap handle (`Arc`) that outlives the server: take it with
//! [`S3Server::counters`] before [`S3Server::stop`] and pass it to [`S3Server::start_with`] to
//! keep counting across an outage; [`S3Server::start`] begins with fresh counters.

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "jobslot-test-access";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "jobslot-test-secret-0123456789";

/// One request the server answered (requests cut off by [`S3Server::stop`] are not recorded
/// here, though they are counted by [`Counters::requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// First path segment ("" for service-level requests such as ListBuckets).
    pub bucket: String,
    /// The rest of the path, percent-decoded ("" for bucket-level requests).
    pub key: String,
    /// The raw query string ("" if none).
    pub query: String,
    /// Response status; `None` if the s3s service failed without producing a response.
    pub status: Option<u16>,
}

#[derive(Debug, Default)]
struct CounterState {
    requests: usize,
    writes: HashMap<(String, String), usize>,
    completions: HashMap<(String, String), usize>,
    log: Vec<RequestRecord>,
}

/// Request counters shared by a server and whoever holds a clone (cheap: an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<Mutex<CounterState>>);

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CounterState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Successful object writes for this key: single PUTs (no `partNumber`/`uploadId` or other
    /// sub-resource in the query; CopyObject included) and CompleteMultipartUpload each count
    /// one, UploadPart does not. Only 2xx responses count.
    pub fn writes(&self, bucket: &str, key: &str) -> usize {
        let k = (bucket.to_string(), key.to_string());
        self.state().writes.get(&k).copied().unwrap_or(0)
    }

    /// Successful CompleteMultipartUpload requests for this key.
    pub fn multipart_completions(&self, bucket: &str, key: &str) -> usize {
        let k = (bucket.to_string(), key.to_string());
        self.state().completions.get(&k).copied().unwrap_or(0)
    }

    /// Requests received (any method, any outcome), counted on arrival.
    pub fn requests(&self) -> usize {
        self.state().requests
    }

    /// Every answered request, in the order the responses were produced.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.state().log.clone()
    }

    fn arrived(&self) {
        self.state().requests += 1;
    }

    fn answered(&self, record: RequestRecord) {
        let mut st = self.state();
        let ok = record.status.is_some_and(|s| (200..300).contains(&s));
        if ok && !record.key.is_empty() {
            let k = (record.bucket.clone(), record.key.clone());
            match classify(&record.method, &record.query) {
                Write::Single => *st.writes.entry(k).or_default() += 1,
                Write::Completion => {
                    *st.writes.entry(k.clone()).or_default() += 1;
                    *st.completions.entry(k).or_default() += 1;
                }
                Write::None => {}
            }
        }
        st.log.push(record);
    }
}

enum Write {
    None,
    Single,
    Completion,
}

/// What an object-level request (method + query) writes.
fn classify(method: &str, query: &str) -> Write {
    let names: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| percent_decode(p.split_once('=').map_or(p, |(n, _)| n)))
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    match method {
        // PutObject / CopyObject. The Rust SDK adds `x-id=PutObject`; presigned URLs carry
        // `X-Amz-*`. Anything else is a sub-resource (tagging, acl, partNumber, ...).
        "PUT" => {
            let plain = names.iter().all(|n| {
                n == "x-id" || n.len() >= 6 && n.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-")
            });
            if plain { Write::Single } else { Write::None }
        }
        "POST" if has("uploadId") => Write::Completion,
        _ => Write::None,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a path-style request path into (bucket, percent-decoded key).
fn split_path(path: &str) -> (String, String) {
    let path = path.strip_prefix('/').unwrap_or(path);
    match path.split_once('/') {
        Some((b, k)) => (percent_decode(b), percent_decode(k)),
        None => (percent_decode(path), String::new()),
    }
}

/// A running s3s-fs server. Dropping it without [`S3Server::stop`] also shuts it down (without
/// waiting).
pub struct S3Server {
    root: PathBuf,
    port: u16,
    counters: Counters,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl S3Server {
    /// Starts an S3 server (s3s-fs over `root`, created if missing) on 127.0.0.1: on `port` if
    /// `Some` (to come back after an outage on the same address), else on a free port. Requires
    /// SigV4 auth with [`ACCESS_KEY`]/[`SECRET_KEY`]; path-style addressing. Fresh counters.
    pub async fn start(root: &Path, port: Option<u16>) -> S3Server {
        Self::start_with(root, port, Counters::new()).await
    }

    /// Like [`S3Server::start`], counting into `counters` (e.g. those of a stopped server).
    pub async fn start_with(root: &Path, port: Option<u16>, counters: Counters) -> S3Server {
        std::fs::create_dir_all(root).expect("create S3 root");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over root");
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = bind(port.unwrap_or(0)).await;
        let port = listener.local_addr().expect("local addr").port();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, service, counters.clone(), rx));
        S3Server {
            root: root.to_path_buf(),
            port,
            counters,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The counters this server records into (shared, survives [`S3Server::stop`]).
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Creates a bucket (for s3s-fs, a directory under root).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("create bucket dir");
    }

    /// An outage: stops accepting, drops every open connection at once (in-flight requests
    /// are cut off; clients see connection refused/reset) and waits until the port refuses
    /// connections. Returns the port for `start(root, Some(port))`.
    pub async fn stop(mut self) -> u16 {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).await {
                Err(_) => break,
                Ok(s) => {
                    drop(s);
                    assert!(
                        Instant::now() < deadline,
                        "port {} still accepts connections after stop",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        self.port
    }

    /// The stored object's bytes, read straight from the file system (None if absent).
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        if key.is_empty() || key.split('/').any(|c| c == "..") {
            return None;
        }
        let p = self.root.join(bucket).join(key);
        if !p.is_file() {
            return None;
        }
        std::fs::read(p).ok()
    }

    /// Keys in a bucket under a prefix, sorted (empty if the bucket does not exist).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                let path = e.path();
                if ft.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = e.file_name();
                let name = name.to_string_lossy();
                // s3s-fs writes its temporary files under root, but never list one anyway.
                if name.starts_with(".tmp.") && name.ends_with(".internal.part") {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&base) else {
                    continue;
                };
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
        out.sort();
        out
    }

    /// See [`Counters::writes`].
    pub fn writes(&self, bucket: &str, key: &str) -> usize {
        self.counters.writes(bucket, key)
    }

    /// See [`Counters::multipart_completions`].
    pub fn multipart_completions(&self, bucket: &str, key: &str) -> usize {
        self.counters.multipart_completions(bucket, key)
    }

    /// See [`Counters::requests`].
    pub fn requests(&self) -> usize {
        self.counters.requests()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Dropping the sender ends the accept loop, which aborts its connections.
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds 127.0.0.1:`port` with SO_REUSEADDR (server-closed connections leave TIME_WAIT
/// sockets on the port), retrying for a while if the port is still busy.
async fn bind(port: u16) -> TcpListener {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = (|| {
            let s = TcpSocket::new_v4()?;
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(1024)
        })();
        match res {
            Ok(l) => return l,
            Err(e) if port != 0 && Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// Accept loop: one task per connection in a JoinSet; on shutdown (or when the server handle is
/// dropped) the listener is closed and every connection task is aborted, which closes its
/// socket.
async fn serve(
    listener: TcpListener,
    service: S3Service,
    counters: Counters,
    mut shutdown: oneshot::Receiver<()>,
) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            res = listener.accept() => {
                let Ok((socket, _)) = res else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = service.clone();
                let counters = counters.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let service = service.clone();
                    let counters = counters.clone();
                    async move {
                        counters.arrived();
                        let method = req.method().as_str().to_string();
                        let (bucket, key) = split_path(req.uri().path());
                        let query = req.uri().query().unwrap_or("").to_string();
                        let res = Service::call(&service, req).await;
                        let status = res.as_ref().ok().map(|r| r.status().as_u16());
                        counters.answered(RequestRecord { method, bucket, key, query, status });
                        res
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(socket), svc).into_owned();
                conns.spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
