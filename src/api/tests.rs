//! Router tests, without a socket: each request goes through the whole router
//! (auth, extractors, handlers) onto a real SQLite store.

use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Router,
}

async fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("jobs")).expect("jobs");
    std::fs::create_dir_all(dir.path().join("schema")).expect("schema");
    let job = dir.path().join("jobs").join("hello.sh");
    std::fs::write(&job, "#!/bin/sh\necho hi\n").expect("job");
    let mut perms = std::fs::metadata(&job).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&job, perms).expect("chmod");
    let db = format!("sqlite://{}", dir.path().join("db").display());
    let client = Client::open(dir.path(), Some(&db)).await.expect("client");
    let state = Arc::new(ApiState {
        client,
        token: token.map(str::to_string),
    });
    Fixture {
        _dir: dir,
        app: router(state),
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn tasks_are_enqueued_listed_shown_and_canceled() {
    let f = fixture(None).await;
    let (s, v) = call(&f.app, "GET", "/api/health", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, t) = call(
        &f.app,
        "POST",
        "/api/tasks",
        Some(json!({"job": "hello", "args": {"a": 1}, "delay_ms": 60000, "priority": 3})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(
        (t["job"].as_str(), t["status"].as_str()),
        (Some("hello"), Some("pending"))
    );
    assert_eq!(t["priority"], 3);
    let id = t["id"].as_str().expect("id").to_string();
    let (s, list) = call(
        &f.app,
        "GET",
        "/api/tasks?status=pending&job=hello",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (s, shown) = call(&f.app, "GET", &format!("/api/tasks/{id}"), None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(shown["args"], json!({"a": 1}));
    assert_eq!(shown["attempts"], json!([]));
    let (s, c) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, c["outcome"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    let (s, e) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "conflict");
}

#[tokio::test]
async fn errors_have_their_status_and_a_clear_message() {
    let f = fixture(None).await;
    let cases = [
        (
            "GET",
            "/api/tasks/nope",
            None,
            StatusCode::BAD_REQUEST,
            "not a task id",
        ),
        (
            "GET",
            "/api/tasks/01a2302c-8c49-714a-b131-cbfd12a7bdfe",
            None,
            StatusCode::NOT_FOUND,
            "no task",
        ),
        (
            "GET",
            "/api/tasks?status=sleeping",
            None,
            StatusCode::BAD_REQUEST,
            "unknown task status",
        ),
        (
            "GET",
            "/api/tasks?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "GET",
            "/api/tasks?colour=red",
            None,
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            "POST",
            "/api/tasks",
            Some(json!({"job": "nope"})),
            StatusCode::BAD_REQUEST,
            "unknown job",
        ),
        (
            "POST",
            "/api/tasks",
            Some(json!({"args": {}})),
            StatusCode::BAD_REQUEST,
            "job",
        ),
        (
            "POST",
            "/api/queues/no%20such/pause",
            None,
            StatusCode::BAD_REQUEST,
            "invalid queue name",
        ),
        (
            "GET",
            "/api/nothing",
            None,
            StatusCode::NOT_FOUND,
            "no such route",
        ),
    ];
    for (method, uri, body, status, text) in cases {
        let (s, v) = call(&f.app, method, uri, body, None).await;
        assert_eq!(s, status, "{method} {uri}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{method} {uri}: {v}");
    }
    // A unique key in use is a conflict naming the holder.
    let body = json!({"job": "hello", "unique_key": "k", "delay_ms": 60000});
    let (s, first) = call(&f.app, "POST", "/api/tasks", Some(body.clone()), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = call(&f.app, "POST", "/api/tasks", Some(body), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let holder = first["id"].as_str().unwrap_or("?");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(holder),
        "{v}"
    );
}

#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let f = fixture(Some("s3cret")).await;
    let (s, _) = call(&f.app, "GET", "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for (method, uri) in [
        ("GET", "/api/tasks"),
        ("GET", "/api/queues"),
        ("GET", "/api/instances"),
        ("POST", "/api/queues/a/pause"),
    ] {
        let (s, v) = call(&f.app, method, uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(v["error"]["code"], "unauthorized");
        let (s, _) = call(&f.app, method, uri, None, Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let (s, v) = call(&f.app, method, uri, None, Some("s3cret")).await;
        assert_eq!(s, StatusCode::OK, "{method} {uri}: {v}");
    }
    let (_, q) = call(&f.app, "GET", "/api/queues", None, Some("s3cret")).await;
    assert_eq!(q[0]["queue"], "a");
    assert_eq!(q[0]["state"], "paused");
}
