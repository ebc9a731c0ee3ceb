//! Router tests of `/metrics` and `/api/stats`: content type, figures, and the
//! token rule.

use crate::api::{Access, ApiState, Shutdown, access, origin, router};
use crate::client::Client;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn app(dir: &std::path::Path, token: Option<&str>) -> Router {
    std::fs::create_dir_all(dir.join("jobs")).expect("jobs");
    std::fs::create_dir_all(dir.join("schema")).expect("schema");
    let job = dir.join("jobs").join("big.sh");
    std::fs::write(&job, "#!/bin/sh\n").expect("job");
    let mut perms = std::fs::metadata(&job).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&job, perms).expect("chmod");
    std::fs::write(
        dir.join("schema").join("jobs.toml"),
        "[jobs.big]\nslots = 8\n",
    )
    .expect("schema");
    let db = format!("sqlite://{}", dir.join("db").display());
    let client = Client::open(dir, Some(&db)).await.expect("client");
    router(Arc::new(ApiState {
        client,
        access: Access {
            tokens: token.map_or_else(access::Tokens::none, access::Tokens::single_admin),
            hosts: origin::AllowedHosts::new(Some(([127, 0, 0, 1], 7474).into()), &[]),
            tls: false,
        },
        log_dir: dir.join(".jobslot").join("logs"),
        storage: Arc::new(crate::logs::Storage::new(Default::default()).await),
        shutdown: Shutdown::never(),
    }))
}

/// GET `uri`; returns the status, the content type and the body.
async fn get_text(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::builder().method("GET").uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, ct, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn metrics_is_prometheus_text_and_stats_is_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = app(dir.path(), None).await;
    let (s, t) = {
        let req = Request::builder()
            .method("POST")
            .uri("/api/tasks")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"job": "big"}).to_string()))
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("response");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    assert_eq!(s, StatusCode::CREATED, "{t}");

    let (s, ct, body) = get_text(&app, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE jobslot_tasks gauge\n"), "{body}");
    assert!(
        body.contains("jobslot_tasks{queue=\"default\",status=\"pending\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("jobslot_capacity_warnings 1\n"), "{body}");
    assert!(
        body.contains("jobslot_unrunnable_tasks{job=\"big\",queue=\"default\"} 1\n"),
        "{body}"
    );

    let (s, ct, body) = get_text(&app, "/api/stats", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["tasks"]["pending"], 1, "{v}");
    assert_eq!(v["queues"][0]["queue"], "default", "{v}");
    let w = &v["capacity_warnings"][0];
    assert_eq!(
        (w["job"].as_str(), w["slots"].as_u64()),
        (Some("big"), Some(8)),
        "{v}"
    );
    assert_eq!(w["warning"], "no live instance", "{v}");

    // The task itself carries the warning.
    let id = t["id"].as_str().expect("id");
    let (_, _, body) = get_text(&app, &format!("/api/tasks/{id}"), None).await;
    let shown: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(shown["capacity_warning"], "no live instance", "{shown}");
}

#[tokio::test]
async fn metrics_and_stats_need_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = app(dir.path(), Some("s3cret")).await;
    for uri in ["/metrics", "/api/stats"] {
        let (s, _, body) = get_text(&app, uri, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        let (s, _, _) = get_text(&app, uri, Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        let (s, _, body) = get_text(&app, uri, Some("s3cret")).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {body}");
    }
    let (_, ct, _) = get_text(&app, "/metrics", Some("s3cret")).await;
    assert_eq!(ct, prometheus_content_type());
}

fn prometheus_content_type() -> &'static str {
    crate::metrics::prometheus::CONTENT_TYPE
}
