//! Router tests of who may call and from where: hosts, origins, content
//! types, token roles, and who a task's creator was.

use super::tests::{Fixture, call, fixture_with};
use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

const READ: &str = "read-token-0000000000000000000000";
const OPERATE: &str = "oper-token-0000000000000000000000";
const ADMIN: &str = "admn-token-0000000000000000000000";

/// A router whose tokens file names one token of each role.
async fn with_roles() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens.toml");
    let entry = |name: &str, token: &str, role: &str| {
        format!(
            "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nrole = \"{role}\"\n",
            access::token_sha256_hex(token)
        )
    };
    let text = [
        entry("grafana", READ, "read"),
        entry("oncall", OPERATE, "operate"),
        entry("root", ADMIN, "admin"),
    ]
    .concat();
    std::fs::write(&file, text).expect("tokens file");
    let mut tokens = access::Tokens::none();
    tokens.add_file(&file).expect("valid tokens file");
    fixture_with(Access {
        tokens,
        hosts: origin::AllowedHosts::new(Some(([127, 0, 0, 1], 7474).into()), &[]),
        tls: false,
    })
    .await
}

/// A request with the given headers (and `body`, sent as is).
async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn pending_task(f: &Fixture) -> String {
    let (s, t) = call(
        &f.app,
        "POST",
        "/api/tasks",
        Some(json!({"job": "hello", "delay_ms": 600_000})),
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_host_the_api_does_not_serve_is_refused() {
    let f = with_roles().await;
    let auth = format!("Bearer {READ}");
    for host in [
        "evil.example",
        "evil.example:7474",
        "localhost.evil.example",
    ] {
        let h = [("host", host), ("authorization", auth.as_str())];
        let (s, v) = send(&f.app, "GET", "/api/tasks", &h, "").await;
        assert_eq!(s, StatusCode::MISDIRECTED_REQUEST, "{host}: {v}");
        assert_eq!(v["error"]["code"], "wrong_host");
        // The page itself is refused too: a rebound name gets nothing.
        let (s, _) = send(&f.app, "GET", "/", &[("host", host)], "").await;
        assert_eq!(s, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in ["127.0.0.1:7474", "localhost:7474", "localhost"] {
        let h = [("host", host), ("authorization", auth.as_str())];
        let (s, v) = send(&f.app, "GET", "/api/tasks", &h, "").await;
        assert_eq!(s, StatusCode::OK, "{host}: {v}");
    }
}

#[tokio::test]
async fn requests_from_other_origins_are_refused() {
    let f = with_roles().await;
    let id = pending_task(&f).await;
    let auth = format!("Bearer {ADMIN}");
    let cancel = format!("/api/tasks/{id}/cancel");
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "http://localhost:3000"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let h = [
            ("host", "localhost:7474"),
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            (name, value),
        ];
        let (s, v) = send(&f.app, "POST", &cancel, &h, "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{name}: {value}: {v}");
        assert_eq!(v["error"]["code"], "cross_origin");
    }
    let (_, t) = call(
        &f.app,
        "GET",
        &format!("/api/tasks/{id}"),
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(t["status"], "pending", "nothing changed");
    // The page's own origin passes.
    let h = [
        ("host", "localhost:7474"),
        ("origin", "http://localhost:7474"),
        ("sec-fetch-site", "same-origin"),
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let (s, v) = send(&f.app, "POST", &cancel, &h, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_and_changes_nothing() {
    let f = with_roles().await;
    let id = pending_task(&f).await;
    let auth = format!("Bearer {ADMIN}");
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut h = vec![("host", "127.0.0.1:7474"), ("authorization", auth.as_str())];
        if let Some(ct) = ct {
            h.push(("content-type", ct));
        }
        let cancel = format!("/api/tasks/{id}/cancel");
        let (s, v) = send(&f.app, "POST", &cancel, &h, "x=1").await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {v}");
        assert_eq!(v["error"]["code"], "unsupported_media_type");
        let (s, _) = send(&f.app, "POST", "/api/queues/default/pause", &h, "").await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let (_, t) = call(
        &f.app,
        "GET",
        &format!("/api/tasks/{id}"),
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(t["status"], "pending", "the task was not canceled");
    let (_, q) = call(&f.app, "GET", "/api/queues", None, Some(ADMIN)).await;
    assert_eq!(q[0]["state"], "active", "the queue was not paused: {q}");
}

#[tokio::test]
async fn each_role_may_do_what_it_names_and_no_more() {
    let f = with_roles().await;
    let enqueue = json!({"job": "hello", "delay_ms": 600_000});
    // read: every GET, no enqueue.
    for path in [
        "/api/tasks",
        "/api/queues",
        "/api/workers",
        "/metrics",
        "/api/whoami",
    ] {
        let (s, v) = call(&f.app, "GET", path, None, Some(READ)).await;
        assert_eq!(s, StatusCode::OK, "read GET {path}: {v}");
    }
    let (s, v) = call(
        &f.app,
        "POST",
        "/api/tasks",
        Some(enqueue.clone()),
        Some(READ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("grafana") && message.contains("operate"),
        "{message}"
    );
    // operate: enqueue, cancel, retry; no queue pause or worker stop.
    let (s, t) = call(&f.app, "POST", "/api/tasks", Some(enqueue), Some(OPERATE)).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["metadata"]["createdBy"], "oncall", "{t}");
    let id = t["id"].as_str().expect("id");
    let (s, v) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        Some(OPERATE),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/retry"),
        None,
        Some(OPERATE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for path in ["/api/queues/default/pause", "/api/workers/w/stop"] {
        let (s, v) = call(&f.app, "POST", path, None, Some(OPERATE)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "operate POST {path}: {v}");
        let (s, v) = call(&f.app, "POST", path, None, Some(READ)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "read POST {path}: {v}");
    }
    let (_, q) = call(&f.app, "GET", "/api/queues", None, Some(READ)).await;
    assert!(
        q.as_array()
            .is_some_and(|q| q.iter().all(|q| q["state"] != "paused")),
        "{q}"
    );
    // admin: all of it.
    let (s, v) = call(
        &f.app,
        "POST",
        "/api/queues/default/pause",
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(&f.app, "GET", "/api/whoami", None, Some(ADMIN)).await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"name": "root", "role": "admin"}))
    );
}

#[tokio::test]
async fn a_wrong_token_of_the_right_length_is_unauthorized() {
    let f = with_roles().await;
    let mut wrong = ADMIN.to_string();
    wrong.replace_range(ADMIN.len() - 1.., "1");
    assert_eq!(wrong.len(), ADMIN.len());
    for token in [wrong.as_str(), "", "admn"] {
        let (s, v) = call(&f.app, "GET", "/api/tasks", None, Some(token)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}: {v}");
    }
    let (s, _) = call(&f.app, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "/metrics needs a token");
}

#[tokio::test]
async fn without_tokens_the_creator_is_anonymous() {
    let f = fixture_with(Access {
        tokens: access::Tokens::none(),
        hosts: origin::AllowedHosts::any(),
        tls: false,
    })
    .await;
    let body = json!({"job": "hello", "delay_ms": 600_000});
    let (s, t) = call(&f.app, "POST", "/api/tasks", Some(body), None).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["metadata"]["createdBy"], "anonymous");
}
