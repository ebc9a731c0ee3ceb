//! The API against hostile neighbours, over the wire, with the real binary:
//! a `Host` it does not serve, a POST that is not JSON, tokens with roles
//! from a tokens file (made with `jobslot token new`), the token file
//! variable, and HTTPS with a certificate made here (rcgen) for a real
//! client (rustls and curl), plain HTTP to that port refused.

mod common;
use common::http::*;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// One raw HTTP/1.0 request with exactly these header lines.
fn raw(port: u16, request_head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!("{request_head}Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// A new token of `role` from `jobslot token new`: (token, tokens-file entry).
fn new_token(p: &Project, name: &str, role: &str) -> (String, String) {
    let v = p.cli_json(&["token", "new", "--name", name, "--role", role]);
    let token = v["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 64, "{v}");
    let entry = format!(
        "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nrole = \"{role}\"\n",
        v["sha256"].as_str().expect("sha256")
    );
    (token, entry)
}

#[test]
fn hosts_content_types_and_roles_are_enforced_over_the_wire() {
    let p = Project::new();
    p.job("hello", "cat >/dev/null; echo hi");
    let (read, e1) = new_token(&p, "grafana", "read");
    let (operate, e2) = new_token(&p, "oncall", "operate");
    let (admin, e3) = new_token(&p, "ops-admin", "admin");
    let tokens = p.path().join("tokens.toml");
    std::fs::write(&tokens, [e1, e2, e3].concat()).expect("tokens file");
    // JOBSLOT_API_TOKEN_FILE: one more admin token, from a file.
    let token_file = p.path().join("api-token");
    std::fs::write(&token_file, "from-a-file-t0ken\n").expect("token file");
    p.set_env("JOBSLOT_API_TOKEN_FILE", &token_file.display().to_string());
    let port = free_port();
    let mut api = serve_with(
        &p,
        port,
        &["--api-tokens-file", &tokens.display().to_string()],
    );

    // The wrong Host is refused, the right one passes.
    let get = |host: &str, token: &str| {
        raw(
            port,
            &format!(
                "GET /api/tasks HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            ),
            "",
        )
    };
    let (s, body) = get("evil.example", &admin);
    assert_eq!(s, 421, "{body}");
    assert!(body.contains("--api-allowed-hosts"), "{body}");
    let (s, _) = get(&format!("evil.example:{port}"), &admin);
    assert_eq!(s, 421);
    let (s, body) = get(&format!("127.0.0.1:{port}"), &admin);
    assert_eq!(s, 200, "{body}");
    let (s, body) = get(&format!("localhost:{port}"), &read);
    assert_eq!(s, 200, "{body}");

    // A task to act on, enqueued by the operate token: recorded as its creator.
    let (s, t) = http(
        port,
        "POST",
        "/api/tasks",
        Some(&json!({"job": "hello", "delay_ms": 3_600_000})),
        Some(&operate),
    );
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().expect("id").to_string();
    let shown = p.cli_json(&["show", &id]);
    assert_eq!(shown["metadata"]["createdBy"], "oncall", "{shown}");

    // A text/plain POST to cancel is refused and changes nothing.
    let (s, body) = raw(
        port,
        &format!(
            "POST /api/tasks/{id}/cancel HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: text/plain\r\n"
        ),
        "x",
    );
    assert_eq!(s, 415, "{body}");
    assert_eq!(p.cli_json(&["show", &id])["status"], "pending");
    // A cross-site Origin is refused too.
    let (s, body) = raw(
        port,
        &format!(
            "POST /api/tasks/{id}/cancel HTTP/1.0\r\nHost: localhost\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\n"
        ),
        "",
    );
    assert_eq!(s, 403, "{body}");
    assert_eq!(p.cli_json(&["show", &id])["status"], "pending");

    // Roles.
    let enqueue = json!({"job": "hello", "delay_ms": 3_600_000});
    let (s, v) = http(port, "POST", "/api/tasks", Some(&enqueue), Some(&read));
    assert_eq!(s, 403, "read may not enqueue: {v}");
    let (s, v) = http(port, "GET", "/metrics", None, Some(&read));
    assert_eq!(s, 200, "read may read /metrics: {v}");
    let (s, v) = http(
        port,
        "POST",
        "/api/queues/default/pause",
        None,
        Some(&operate),
    );
    assert_eq!(s, 403, "operate may not pause a queue: {v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let queues = p.cli_json(&["queues"]);
    assert!(
        queues
            .as_array()
            .is_some_and(|q| q.iter().all(|q| q["state"] == "active")),
        "nothing was paused: {queues}"
    );
    let (s, v) = http(
        port,
        "POST",
        "/api/queues/default/pause",
        None,
        Some(&admin),
    );
    assert_eq!(s, 200, "admin may: {v}");
    let (s, v) = http(
        port,
        "POST",
        "/api/queues/default/resume",
        None,
        Some("from-a-file-t0ken"),
    );
    assert_eq!(
        s, 200,
        "the token from JOBSLOT_API_TOKEN_FILE is admin: {v}"
    );
    let (s, v) = http(
        port,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        Some(&operate),
    );
    assert_eq!(s, 200, "operate may cancel: {v}");

    // A wrong token of the right length.
    let mut wrong = admin.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    assert_eq!(wrong.len(), admin.len());
    let (s, v) = http(port, "GET", "/api/tasks", None, Some(&wrong));
    assert_eq!(s, 401, "{v}");
    let (s, _) = http(port, "GET", "/metrics", None, None);
    assert_eq!(s, 401, "/metrics needs a token");

    stop_api(&mut api);
    // Every state-changing request is logged with its token's name.
    let log = std::fs::read_dir(p.path().join(".jobslot"))
        .expect("log dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("jobslot.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    for name in ["oncall", "ops-admin", "JOBSLOT_API_TOKEN"] {
        assert!(
            log.lines()
                .any(|l| l.contains("API request") && l.contains(name)),
            "no logged request of {name}:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("refused") && l.contains("grafana")),
        "the refused enqueue of grafana is logged:\n{log}"
    );
}

#[test]
fn a_bad_tokens_file_stops_the_start_with_a_clear_error() {
    let p = Project::new();
    let tokens = p.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[tokens]]\nname = \"x\"\nsha256 = \"nothex\"\nrole = \"read\"\n",
    )
    .expect("write");
    let port = free_port();
    let out = p
        .cmd()
        .args(["serve", "--api-addr", &format!("127.0.0.1:{port}")])
        .args(["--api-tokens-file", &tokens.display().to_string()])
        .output()
        .expect("serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens.toml") && err.contains("64 hex digits"),
        "{err}"
    );
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it.
struct Certs {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "jobslot test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    Certs {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// GET `path` over TLS with rustls, trusting only `ca_pem`.
async fn https_get(port: u16, path: &str, token: &str, ca_pem: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_tls_serves_real_clients_and_refuses_plain_http() {
    let p = Project::new();
    p.job("hello", "cat >/dev/null; echo hi");
    let c = certs();
    let dir = p.path().join("tls");
    std::fs::create_dir_all(&dir).expect("tls dir");
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, &c.ca_pem).expect("ca");
    std::fs::write(&cert, &c.cert_pem).expect("cert");
    std::fs::write(&key, &c.key_pem).expect("key");
    p.set_env("JOBSLOT_API_TOKEN", "tls-t0ken");
    let port = free_port();
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let mut api = serve_with(
        &p,
        port,
        &["--api-tls-cert", &cert_s, "--api-tls-key", &key_s],
    );

    // rustls, trusting the test's CA.
    let (s, out) = https_get(port, "/api/tasks", "tls-t0ken", &c.ca_pem).await;
    assert_eq!(s, 200, "{out}");
    let (s, out) = https_get(port, "/api/tasks", "wrong", &c.ca_pem).await;
    assert_eq!(s, 401, "{out}");

    // curl, a client of its own, with and without the CA.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .args([
            "-H",
            "Authorization: Bearer tls-t0ken",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-X", "POST", "-d", r#"{"job":"hello","delay_ms":3600000}"#])
        .arg(format!("https://localhost:{port}/api/tasks"))
        .output();
    match curl {
        Ok(out) => {
            assert!(out.status.success(), "curl: {out:?}");
            let v: Value = serde_json::from_slice(&out.stdout).expect("curl json");
            assert_eq!(v["job"], "hello", "{v}");
            let untrusted = std::process::Command::new("curl")
                .args(["-sS", "--max-time", "10"])
                .arg(format!("https://localhost:{port}/api/health"))
                .output()
                .expect("curl");
            assert!(
                !untrusted.status.success(),
                "a client that does not trust the CA refuses the server"
            );
        }
        Err(e) => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "curl is needed under CI=true: {e}"
        ),
    }

    // Plain HTTP to the TLS port: a clear 400, then the connection closes.
    let (s, body) = raw(port, "GET /api/health HTTP/1.1\r\nHost: localhost\r\n", "");
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("HTTPS"), "{body}");
    // The server still serves TLS clients after that.
    let (s, out) = https_get(port, "/api/health", "tls-t0ken", &c.ca_pem).await;
    assert_eq!(s, 200, "{out}");
    stop_api(&mut api);
}
