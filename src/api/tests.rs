//! Router tests, without a socket: each request goes through the whole router
//! (auth, extractors, handlers) onto a real SQLite store.

use super::*;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) app: Router,
    pub(super) state: Arc<ApiState>,
}

async fn fixture(token: Option<&str>) -> Fixture {
    fixture_with(Access {
        tokens: token.map_or_else(access::Tokens::none, access::Tokens::single_admin),
        hosts: origin::AllowedHosts::new(Some(([127, 0, 0, 1], 7474).into()), &[]),
        tls: false,
    })
    .await
}

/// A router on a new project's SQLite store, with `access`.
pub(super) async fn fixture_with(access: Access) -> Fixture {
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
    let log_dir = dir.path().join(".jobslot").join("logs");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let state = Arc::new(ApiState {
        client,
        access,
        log_dir,
        storage: Arc::new(crate::logs::Storage::new(Default::default()).await),
        shutdown: Shutdown::never(),
    });
    Fixture {
        dir,
        app: router(state.clone()),
        state,
    }
}

pub(super) async fn call(
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
        None if method == "POST" => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty()),
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
        ("GET", "/api/tasks/01a2302c-8c49-714a-b131-cbfd12a7bdfe/log"),
        (
            "GET",
            "/api/tasks/01a2302c-8c49-714a-b131-cbfd12a7bdfe/log/stream",
        ),
        (
            "POST",
            "/api/tasks/01a2302c-8c49-714a-b131-cbfd12a7bdfe/retry",
        ),
    ] {
        let (s, v) = call(&f.app, method, uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(v["error"]["code"], "unauthorized");
        let (s, _) = call(&f.app, method, uri, None, Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let (s, v) = call(&f.app, method, uri, None, Some("s3cret")).await;
        assert_ne!(s, StatusCode::UNAUTHORIZED, "{method} {uri}: {v}");
        assert!(
            s == StatusCode::OK || v["error"]["code"] == "not_found",
            "{method} {uri}: {s} {v}"
        );
    }
    let (s, doc) = call(&f.app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK, "the document needs no token");
    assert_eq!(doc["openapi"], "3.0.3");
    let (_, q) = call(&f.app, "GET", "/api/queues", None, Some("s3cret")).await;
    assert_eq!(q[0]["queue"], "a");
    assert_eq!(q[0]["state"], "paused");
}

/// Adds a pending task of `hello` due in a minute; returns its id.
async fn add(f: &Fixture, extra: Value) -> String {
    let mut body = json!({"job": "hello", "delay_ms": 60000});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, t) = call(&f.app, "POST", "/api/tasks", Some(body), None).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn failed_or_canceled_tasks_are_retried_as_new_tasks() {
    let f = fixture(None).await;
    let id = add(&f, json!({"args": {"n": 7}, "priority": 2})).await;
    let (s, e) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/retry"),
        None,
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a pending task is not retried: {e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("only failed or canceled tasks can be retried"),
        "{e}"
    );
    call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        None,
    )
    .await;
    let (s, new) = call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/retry"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{new}");
    assert_ne!(new["id"].as_str(), Some(id.as_str()));
    assert_eq!(new["status"], "pending");
    assert_eq!(new["args"], json!({"n": 7}));
    assert_eq!(new["priority"], 2);
    assert_eq!(new["metadata"]["retryOf"].as_str(), Some(id.as_str()));
    let (s, _) = call(
        &f.app,
        "POST",
        "/api/tasks/01a2302c-8c49-714a-b131-cbfd12a7bdfe/retry",
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The raw body of a GET.
async fn get_text(app: &Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Claims every due task as instance `w1`, as a scheduler would.
async fn claim_all(f: &Fixture) {
    let claimed = f
        .state
        .client
        .store()
        .task_claim(crate::store::TaskClaimParams {
            instance_id: Uuid::now_v7(),
            instance_name: "w1".to_string(),
            host: "localhost".to_string(),
            queues: vec![],
            free_slots: 100,
            limit: 100,
            now: chrono::Utc::now(),
            starvation_after: None,
            log_prefix: None,
        })
        .await
        .expect("claim");
    assert!(!claimed.is_empty());
}

#[tokio::test]
async fn logs_are_read_only_from_the_projects_log_directory() {
    let f = fixture(None).await;
    let id = add(&f, json!({"delay_ms": 0})).await;
    let uuid = Uuid::parse_str(&id).expect("uuid");
    // Not started: an empty log.
    let (s, text) = get_text(&f.app, &format!("/api/tasks/{id}/log")).await;
    assert_eq!((s, text.as_str()), (StatusCode::OK, ""));
    let other = add(&f, json!({"delay_ms": 0})).await;
    let third = add(&f, json!({"delay_ms": 0})).await;
    claim_all(&f).await;
    // The task's record points outside the log directory: the API reads
    // the task's own file in the log directory, never that path.
    let secret = f.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret\n").expect("secret");
    let store = f.state.client.store().clone();
    store
        .task_mark_spawned(vec![crate::store::TaskSpawnedParams {
            id: uuid,
            pgid: 1,
            log: secret.display().to_string(),
        }])
        .await
        .expect("mark");
    let (s, text) = get_text(&f.app, &format!("/api/tasks/{id}/log")).await;
    assert!(!text.contains("top secret"), "{s} {text}");
    std::fs::write(
        f.state.log_dir.join(format!("{id}.log")),
        "line one\nline two\n",
    )
    .expect("log");
    let (s, text) = get_text(&f.app, &format!("/api/tasks/{id}/log")).await;
    assert_eq!((s, text.as_str()), (StatusCode::OK, "line one\nline two\n"));
    // A link in the log directory is not followed.
    std::os::unix::fs::symlink(&secret, f.state.log_dir.join(format!("{other}.log")))
        .expect("link");
    let (s, text) = get_text(&f.app, &format!("/api/tasks/{other}/log")).await;
    assert!(!text.contains("top secret"), "{s} {text}");
    // A stored log must be the task's own object.
    store
        .task_mark_spawned(vec![crate::store::TaskSpawnedParams {
            id: Uuid::parse_str(&third).expect("uuid"),
            pgid: 1,
            log: "s3://bucket/other/passwords.txt".to_string(),
        }])
        .await
        .expect("mark");
    let (s, v) = call(
        &f.app,
        "GET",
        &format!("/api/tasks/{third}/log"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "log_missing");
    // An earlier attempt that does not exist.
    let (s, v) = call(
        &f.app,
        "GET",
        &format!("/api/tasks/{id}/log?attempt=4"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn history_filters_and_pages() {
    let f = fixture(None).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(add(&f, json!({"queue": "paged"})).await);
    }
    // Newest first, two per page, each page after the last id of the one before.
    let mut seen = Vec::new();
    let mut uri = "/api/tasks?queue=paged&limit=2".to_string();
    loop {
        let (s, page) = call(&f.app, "GET", &uri, None, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let page: Vec<String> = page
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        uri = format!("/api/tasks?queue=paged&limit=2&before={last}");
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let count = |v: &Value| v.as_array().map(Vec::len);
    let (_, v) = call(&f.app, "GET", "/api/tasks?queue=paged&until=1h", None, None).await;
    assert_eq!(count(&v), Some(0), "created before an hour ago: none");
    let (_, v) = call(&f.app, "GET", "/api/tasks?queue=paged&since=1h", None, None).await;
    assert_eq!(count(&v), Some(5), "live in the last hour: all");
    let (_, v) = call(
        &f.app,
        "GET",
        "/api/tasks?queue=paged&instance=w1",
        None,
        None,
    )
    .await;
    assert_eq!(count(&v), Some(0), "run by w1: none");
    add(&f, json!({"queue": "paged", "delay_ms": 0})).await;
    claim_all(&f).await;
    let (_, v) = call(
        &f.app,
        "GET",
        "/api/tasks?queue=paged&instance=w1",
        None,
        None,
    )
    .await;
    assert_eq!(count(&v), Some(1), "run by w1: the one claimed");
    let (s, v) = call(&f.app, "GET", "/api/tasks?since=yesterday", None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let f = fixture(None).await;
    let doc: Value = serde_json::from_str(super::openapi::DOCUMENT).expect("the document is JSON");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "{}", paths.len());
    for (path, ops) in paths {
        let uri = path
            .replace("{id}", "01a2302c-8c49-714a-b131-cbfd12a7bdfe")
            .replace("{queue}", "q")
            .replace("{name}", "w");
        for method in ops.as_object().expect("operations").keys() {
            let body = (method == "post" && path == "/api/tasks").then(|| json!({"job": "hello"}));
            let (s, v) = call(&f.app, &method.to_uppercase(), &uri, body, None).await;
            assert_ne!(
                v["error"]["message"].as_str(),
                Some("no such route"),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
}

/// GET `uri` as raw bytes: status, headers and body text.
async fn get_raw(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("req");
    let res = app.clone().oneshot(req).await.expect("response");
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn the_page_is_served_without_the_token_and_the_data_is_not() {
    let f = fixture(Some("s3cret")).await;
    let (s, h, body) = get_raw(&f.app, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(body.contains("/ui/app.js"), "{body}");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for (path, ct) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let (s, h, body) = get_raw(&f.app, path).await;
        assert_eq!(
            (s, h[header::CONTENT_TYPE].to_str().ok()),
            (StatusCode::OK, Some(ct)),
            "{path}"
        );
        assert!(!body.is_empty(), "{path}");
    }
    // Only the four files: nothing else is read, with or without a token.
    let open = fixture(None).await;
    for path in ["/ui/../Cargo.toml", "/ui/missing.js", "/ui/", "/index.html"] {
        let (s, _, body) = get_raw(&open.app, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
        let (s, _, body) = get_raw(&f.app, path).await;
        assert!(
            matches!(s, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED),
            "{path}: {s} {body}"
        );
    }
    for route in ["/api/jobs", "/api/timeline", "/api/schedules"] {
        let (s, _) = call(&f.app, "GET", route, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{route} needs the token");
        let (s, v) = call(&f.app, "GET", route, None, Some("s3cret")).await;
        assert_eq!(s, StatusCode::OK, "{route}: {v}");
    }
}

#[tokio::test]
async fn jobs_timeline_and_schedules_describe_the_project() {
    let f = fixture(None).await;
    let (s, jobs) = call(&f.app, "GET", "/api/jobs", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jobs[0]["name"], "hello", "{jobs}");
    assert_eq!(
        (&jobs[0]["runnable"], &jobs[0]["queue"]),
        (&json!(true), &json!("default"))
    );

    // Two pending tasks now, one canceled: depth 2 at the last minute.
    for _ in 0..3 {
        let (s, _) = call(
            &f.app,
            "POST",
            "/api/tasks",
            Some(json!({"job": "hello"})),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, list) = call(&f.app, "GET", "/api/tasks", None, None).await;
    let id = list[0]["id"].as_str().expect("id");
    call(
        &f.app,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        None,
        None,
    )
    .await;
    let (s, t) = call(&f.app, "GET", "/api/timeline?minutes=5", None, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["minutes"].as_array().map(Vec::len), Some(5));
    assert_eq!(t["depth"][4], 2, "{t}");
    assert_eq!(t["canceled"][4], 1, "{t}");
    assert_eq!(t["queues"][0]["queue"], "default");
    assert_eq!(t["queues"][0]["canceled"], 1);
    let (s, _) = call(&f.app, "GET", "/api/timeline", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for bad in ["minutes=0", "minutes=1441", "minutes=x", "step=5"] {
        let (s, v) = call(&f.app, "GET", &format!("/api/timeline?{bad}"), None, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    let (s, v) = call(&f.app, "GET", "/api/schedules", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
    std::fs::write(
        f.dir.path().join("schema").join("s.toml"),
        "[[schedules]]\nname = \"tick\"\njob = \"hello\"\nevery = \"1h\"\n",
    )
    .expect("schema");
    let schema = crate::schema::load(f.dir.path()).expect("schema loads");
    let store = f.state.client.store();
    crate::scheduler::apply_schema(store.as_ref(), &schema.jobs, &schema.schedules)
        .await
        .expect("apply");
    let (s, v) = call(&f.app, "GET", "/api/schedules", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tick = &v[0];
    assert_eq!(
        (&tick["name"], &tick["job"]),
        (&json!("tick"), &json!("hello"))
    );
    assert!(tick["next_run_at"].is_string(), "{tick}");
    let (_, next) = call(
        &f.app,
        "GET",
        &format!("/api/tasks/{}", tick["next_task"].as_str().expect("next")),
        None,
        None,
    )
    .await;
    assert_eq!(next["schedule"], "tick");
    assert_eq!(
        (&tick["last"], &tick["last_completed_at"]),
        (&Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn workers_are_listed_stopped_started_and_restarted() {
    let f = fixture(None).await;
    let (s, v) = call(&f.app, "GET", "/api/workers", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
    std::fs::write(
        f.dir.path().join("schema").join("w.toml"),
        "[[workers]]\nname = \"hi\"\njob = \"hello\"\nreplicas = 2\n",
    )
    .expect("schema");
    let schema = crate::schema::load(f.dir.path()).expect("schema loads");
    let store = f.state.client.store();
    crate::scheduler::workers::apply_workers(store.as_ref(), &schema.jobs, &schema.workers)
        .await
        .expect("apply");
    let (s, v) = call(&f.app, "GET", "/api/workers", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v[0]["name"], &v[0]["replicas_wanted"], &v[0]["state"]),
        (&json!("hi"), &json!(2), &json!("starting"))
    );
    let (s, v) = call(&f.app, "POST", "/api/workers/hi/stop", None, None).await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("stopped")), "{v}");
    let (_, v) = call(&f.app, "GET", "/api/workers", None, None).await;
    assert_eq!(v[0]["state"], "stopped");
    assert_eq!(v[0]["stopped_reason"], "stopped through the API");
    let (s, v) = call(&f.app, "POST", "/api/workers/hi/start", None, None).await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("active")), "{v}");
    let (s, v) = call(&f.app, "POST", "/api/workers/hi/restart", None, None).await;
    assert_eq!((s, &v["generation"]), (StatusCode::OK, &json!(2)), "{v}");
    let (s, v) = call(&f.app, "POST", "/api/workers/nope/stop", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// Delays past the longest duration jobslot accepts (3650 days) and start
/// times outside what it can represent are bad requests, never a panic
/// (issue 15, case 8); the bound itself is accepted.
#[tokio::test]
async fn delays_and_times_out_of_bounds_are_bad_requests() {
    let f = fixture(None).await;
    let day_ms: u64 = 86_400_000;
    let cases = [
        (
            json!({"job": "hello", "delay_ms": 100_000_000 * day_ms}),
            "longer than 3650d",
        ),
        (
            json!({"job": "hello", "delay_ms": 3651 * day_ms}),
            "longer than 3650d",
        ),
        (
            json!({"job": "hello", "delay_ms": u64::MAX}),
            "longer than 3650d",
        ),
        (
            json!({"job": "hello", "at": "+275760-09-13T00:00:00Z"}),
            "not an RFC 3339 time",
        ),
    ];
    for (body, text) in cases {
        let (s, v) = call(&f.app, "POST", "/api/tasks", Some(body.clone()), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{body}: {v}");
    }
    let longest = json!({"job": "hello", "delay_ms": 3650 * day_ms});
    let (s, v) = call(&f.app, "POST", "/api/tasks", Some(longest), None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let latest = json!({"job": "hello", "at": "9999-12-31T23:59:59Z"});
    let (s, v) = call(&f.app, "POST", "/api/tasks", Some(latest), None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}
