//! Metrics with real processes: known counts made by a `jobslot run` instance
//! (jobs exiting 0 and 1, a retried job, a running sleeper, pending tasks in
//! queues nobody serves), then `/metrics` from `jobslot serve`, parsed as
//! Prometheus text, must equal the database (`jobslot tasks --json`) and
//! `jobslot stats --json`. Capacity warnings show in `show` and the API.

mod common;
use chrono::{DateTime, Utc};
use common::http::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::Duration;

/// GET; returns the status code, the headers and the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, BTreeMap<String, String>, String) {
    let a = request(port, "GET", path, None, token);
    (a.status, a.headers, a.body)
}

/// Stops a `jobslot serve` child.
fn stop(mut child: Child) {
    stop_api(&mut child);
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Splits `k="v",…` (escapes allowed in values) into pairs, or `None` when
/// it is not that.
fn label_pairs(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"")?;
        if !is_name(k) || k.starts_with("__") {
            return None;
        }
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c @ ('\\' | '"') => v.push(c),
                    _ => return None,
                },
                (_, c) => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
        if s.is_empty() {
            break;
        }
    }
    Some(out)
}

/// Checks `text` against the text exposition format (0.0.4) line by line:
/// HELP and TYPE lines, sample names and labels, values, a TYPE before a
/// family's samples, no series twice. Returns the number of sample lines.
fn check_exposition(text: &str) -> usize {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut series: BTreeSet<String> = BTreeSet::new();
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect(&at);
            assert!(is_name(name), "{at}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            assert!(is_name(name), "{at}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{at}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice, {at}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.trim().is_empty(), "{at}");
        let (series_text, value) = line.rsplit_once(' ').expect(&at);
        assert!(
            ["+Inf", "-Inf", "NaN"].contains(&value) || value.parse::<f64>().is_ok(),
            "value, {at}"
        );
        let (name, labels) = match series_text.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect(&at)),
            None => (series_text, ""),
        };
        assert!(is_name(name), "{at}");
        let pairs = label_pairs(labels).unwrap_or_else(|| panic!("labels, {at}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "no TYPE before the sample, {at}"
        );
        if name.ends_with("_bucket") && family != name {
            assert!(
                pairs.iter().any(|(k, _)| k == "le"),
                "bucket without le, {at}"
            );
        }
        assert!(series.insert(series_text.to_string()), "series twice, {at}");
        samples += 1;
    }
    samples
}

/// The parsed scrape: metric name → samples.
struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(
            prometheus_parse::Scrape::parse(lines)
                .expect("Prometheus text")
                .samples,
        )
    }

    /// The value of the one sample of `metric` with these labels (others may
    /// be present); `None` if there is none.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&prometheus_parse::Sample> = self
            .0
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .collect();
        assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
        found.first().map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric} is not a single value: {other:?}"),
        })
    }

    fn of(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(metric, labels)
            .unwrap_or_else(|| panic!("no {metric} {labels:?}"))
    }

    /// The buckets of a histogram series, by bound.
    fn buckets(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let s = self
            .0
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no histogram {metric} {labels:?}"));
        let prometheus_parse::Value::Histogram(h) = &s.value else {
            panic!("{metric} is not a histogram: {:?}", s.value);
        };
        let mut b: Vec<(f64, f64)> = h.iter().map(|c| (c.less_than, c.count)).collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

on_both!(metrics_match_the_database);
async fn metrics_match_the_database(backend: Backend) {
    let p = Project::on(backend);
    p.job("ok", "exit 0");
    p.job("bad", "exit 1");
    p.job("flaky", "[ \"$JOBSLOT_ATTEMPT\" -ge 2 ] && exit 0\nexit 75");
    p.job("sleeper", "sleep 60");
    p.schema(
        "jobs.toml",
        "[jobs.flaky]\nretry = { max_attempts = 2, backoff = \"100ms\" }\n[jobs.sleeper]\nmax_execution_time = \"1h\"\n",
    );
    p.set_env("JOBSLOT_API_TOKEN", "t0ken");
    let _w = p.start("w", 3, &["--queues", "default"]);
    let store = p.store().await;
    let mut ended = Vec::new();
    for job in ["ok", "ok", "ok", "bad", "bad", "flaky"] {
        ended.push(enqueue(&p, &[job]));
    }
    let sleeper = enqueue(&p, &["sleeper"]);
    for queue in ["q1", "q1", "q2"] {
        enqueue(&p, &["ok", "--queue", queue]);
    }
    for id in &ended {
        wait_terminal(store.as_ref(), *id, Duration::from_secs(30)).await;
    }
    wait_running(store.as_ref(), sleeper, Duration::from_secs(30)).await;

    let port = free_port();
    let api = serve(&p, port);
    let (status, _, body) = get(port, "/metrics", None);
    assert_eq!(status, 401, "the token is required: {body}");
    let (status, headers, text) = get(port, "/metrics", Some("t0ken"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let lines = check_exposition(&text);
    let m = Scrape::parse(&text);
    assert!(lines > 50, "{text}");

    // Every (queue, status) series equals the database's count.
    let tasks = p.cli_json(&["tasks", "--limit", "1000"]);
    let tasks = tasks.as_array().expect("tasks array");
    assert_eq!(tasks.len(), 10);
    let mut db: BTreeMap<(String, String), u64> = BTreeMap::new();
    for t in tasks {
        let key = (
            t["queue"].as_str().expect("queue").to_string(),
            t["status"].as_str().expect("status").to_string(),
        );
        *db.entry(key).or_default() += 1;
    }
    let queues = ["default", "q1", "q2"];
    let statuses = [
        "pending",
        "running",
        "waiting",
        "completed",
        "failed",
        "canceled",
    ];
    for q in queues {
        for s in statuses {
            let want = db
                .get(&(q.to_string(), s.to_string()))
                .copied()
                .unwrap_or(0);
            let got = m.of("jobslot_tasks", &[("queue", q), ("status", s)]);
            assert_eq!(got, want as f64, "jobslot_tasks{{queue={q},status={s}}}");
        }
    }
    // The known counts themselves.
    assert_eq!(
        m.of(
            "jobslot_tasks",
            &[("queue", "default"), ("status", "completed")]
        ),
        4.0
    );
    assert_eq!(
        m.of(
            "jobslot_tasks",
            &[("queue", "default"), ("status", "failed")]
        ),
        2.0
    );
    assert_eq!(
        m.of(
            "jobslot_tasks",
            &[("queue", "default"), ("status", "running")]
        ),
        1.0
    );
    assert_eq!(
        m.of("jobslot_tasks", &[("queue", "q1"), ("status", "pending")]),
        2.0
    );
    assert_eq!(
        m.of("jobslot_tasks", &[("queue", "q2"), ("status", "pending")]),
        1.0
    );

    let finished = |job: &str, s: &str| {
        m.of(
            "jobslot_tasks_finished_total",
            &[("job", job), ("status", s)],
        )
    };
    assert_eq!(finished("ok", "completed"), 3.0);
    assert_eq!(finished("ok", "failed"), 0.0);
    assert_eq!(finished("bad", "failed"), 2.0);
    assert_eq!(finished("flaky", "completed"), 1.0);
    assert_eq!(m.of("jobslot_task_failure_ratio", &[("job", "bad")]), 1.0);
    assert_eq!(m.of("jobslot_task_failure_ratio", &[("job", "ok")]), 0.0);
    assert_eq!(
        m.value("jobslot_task_failure_ratio", &[("job", "sleeper")]),
        None
    );
    assert_eq!(m.of("jobslot_task_retries_total", &[("job", "flaky")]), 1.0);
    assert_eq!(m.of("jobslot_task_retries_total", &[("job", "ok")]), 0.0);
    let flaky = tasks.iter().find(|t| t["job"] == "flaky").expect("flaky");
    assert_eq!(flaky["attempt"], 2, "{flaky}");

    // The duration histogram of `ok` against the database's times.
    let ran: Vec<f64> = tasks
        .iter()
        .filter(|t| t["job"] == "ok" && t["status"] == "completed")
        .map(|t| {
            let (s, e) = (
                time(&t["started_at"]).expect("started"),
                time(&t["ended_at"]).expect("ended"),
            );
            (e - s).num_milliseconds() as f64 / 1000.0
        })
        .collect();
    assert_eq!(ran.len(), 3);
    let job = [("job", "ok")];
    assert_eq!(m.of("jobslot_task_duration_seconds_count", &job), 3.0);
    let sum = m.of("jobslot_task_duration_seconds_sum", &job);
    assert!(
        (sum - ran.iter().sum::<f64>()).abs() < 1e-6,
        "sum {sum} vs {ran:?}"
    );
    let buckets = m.buckets("jobslot_task_duration_seconds", &job);
    assert_eq!(buckets.len(), 17, "{buckets:?}");
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3.0)));
    for (le, n) in &buckets {
        let want = ran.iter().filter(|d| **d <= *le).count() as f64;
        assert_eq!(*n, want, "bucket le={le}");
    }

    // The running sleeper: the oldest lock of default, an hour to its deadline.
    let age = m.of(
        "jobslot_oldest_running_task_age_seconds",
        &[("queue", "default")],
    );
    let left = m.of(
        "jobslot_oldest_running_task_deadline_seconds",
        &[("queue", "default")],
    );
    assert!((0.0..120.0).contains(&age), "age {age}");
    assert!((left + age - 3600.0).abs() < 1.0, "age {age}, left {left}");
    assert_eq!(
        m.value(
            "jobslot_oldest_running_task_age_seconds",
            &[("queue", "q1")]
        ),
        None
    );

    // The instance: alive, 1 of 3 slots used, heartbeat fresh.
    let w = [("instance_name", "w")];
    assert_eq!(m.of("jobslot_instance_up", &w), 1.0);
    assert_eq!(m.of("jobslot_instance_slots", &w), 3.0);
    assert_eq!(m.of("jobslot_instance_slots_used", &w), 1.0);
    assert_eq!(m.of("jobslot_instance_running_tasks", &w), 1.0);
    assert!(m.of("jobslot_instance_heartbeat_age_seconds", &w) < 5.0);
    assert_eq!(
        m.of(
            "jobslot_instance_info",
            &[("instance_name", "w"), ("state", "alive")]
        ),
        1.0
    );

    // q1 and q2 are served by no live instance.
    assert_eq!(m.of("jobslot_capacity_warnings", &[]), 2.0);
    assert_eq!(
        m.of(
            "jobslot_unrunnable_tasks",
            &[("job", "ok"), ("queue", "q1")]
        ),
        2.0
    );
    assert_eq!(
        m.of(
            "jobslot_unrunnable_tasks",
            &[("job", "ok"), ("queue", "q2")]
        ),
        1.0
    );

    // `jobslot stats --json` and /api/stats say the same.
    let stats = p.cli_json(&["stats"]);
    let (status, _, api_body) = get(port, "/api/stats", Some("t0ken"));
    assert_eq!(status, 200);
    let api_stats: Value = serde_json::from_str(&api_body).expect("json");
    for v in [&stats, &api_stats] {
        for q in v["queues"].as_array().expect("queues") {
            let name = q["queue"].as_str().expect("name");
            for s in statuses {
                let want = db
                    .get(&(name.to_string(), s.to_string()))
                    .copied()
                    .unwrap_or(0);
                assert_eq!(q["tasks"][s], want, "{name} {s}: {q}");
            }
        }
        let jobs = v["jobs"].as_array().expect("jobs");
        let bad = jobs.iter().find(|j| j["job"] == "bad").expect("bad");
        assert_eq!(
            (bad["failed"].as_u64(), bad["completed"].as_u64()),
            (Some(2), Some(0))
        );
        let flaky = jobs.iter().find(|j| j["job"] == "flaky").expect("flaky");
        assert_eq!(flaky["retries"], 1);
        let warned: Vec<(&str, u64)> = v["capacity_warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .map(|w| {
                (
                    w["queue"].as_str().unwrap_or(""),
                    w["pending"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(warned, [("q1", 2), ("q2", 1)], "{v}");
        assert_eq!(v["instances"][0]["slots_used"], 1);
    }
    let human = p.cli(&["stats"]);
    assert!(human.status.success());
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("queue q1 is served by no live instance (live instances serve: default)"),
        "{human}"
    );
    stop(api);
}

/// The capacity warning of one task, from `show --json` and the API (which
/// must agree).
fn warning(p: &Project, port: u16, id: &str) -> Value {
    let shown = p.cli_json(&["show", id]);
    let (status, _, body) = get(port, &format!("/api/tasks/{id}"), None);
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        shown["capacity_warning"], api["capacity_warning"],
        "show and the API agree"
    );
    shown["capacity_warning"].clone()
}

fn instance_alive(p: &Project, name: &str) -> bool {
    p.cli_json(&["instances"])
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["name"] == name && i["state"] == "alive"))
}

on_both!(capacity_warnings_name_tasks_no_live_instance_can_run);
async fn capacity_warnings_name_tasks_no_live_instance_can_run(backend: Backend) {
    let p = Project::on(backend);
    p.job("big", "exit 0");
    p.job("small", "exit 0");
    p.schema("jobs.toml", "[jobs.big]\nslots = 8\n");
    let port = free_port();
    let api = serve(&p, port);
    // Due in an hour: they stay pending while the instances change.
    let id = |out: uuid::Uuid| out.to_string();
    let big = id(enqueue(&p, &["big", "--in", "1h"]));
    let elsewhere = id(enqueue(
        &p,
        &["small", "--in", "1h", "--queue", "elsewhere"],
    ));
    let fine = id(enqueue(&p, &["small", "--in", "1h"]));
    assert_eq!(warning(&p, port, &big), "no live instance");

    let _small = p.start("small", 4, &["--queues", "default"]);
    wait_for(
        "instance small to be alive",
        Duration::from_secs(20),
        || async { instance_alive(&p, "small").then_some(()) },
    )
    .await;
    assert_eq!(
        warning(&p, port, &big),
        "job big needs 8 slots but the largest live instance serving queue default has 4"
    );
    assert_eq!(
        warning(&p, port, &elsewhere),
        "queue elsewhere is served by no live instance (live instances serve: default)"
    );
    assert_eq!(warning(&p, port, &fine), Value::Null);
    let human = p.cli(&["show", &big]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("warning: job big needs 8 slots but the largest live instance serving queue default has 4"),
        "{human}"
    );

    // A paused queue's tasks wait on purpose: no warning.
    let out = p.cli(&["queue", "pause", "elsewhere"]);
    assert!(out.status.success());
    assert_eq!(warning(&p, port, &elsewhere), Value::Null);
    let out = p.cli(&["queue", "resume", "elsewhere"]);
    assert!(out.status.success());

    // A fitting instance serving every queue: no warning left.
    let _large = p.start("large", 8, &[]);
    wait_for(
        "instance large to be alive",
        Duration::from_secs(20),
        || async { instance_alive(&p, "large").then_some(()) },
    )
    .await;
    for t in [&big, &elsewhere, &fine] {
        assert_eq!(warning(&p, port, t), Value::Null, "task {t}");
    }
    // Not pending: no warning, whatever the instances.
    let out = p.cli(&["cancel", &big]);
    assert!(out.status.success());
    drop(_large);
    wait_for(
        "instance large to be gone",
        Duration::from_secs(20),
        || async { (!instance_alive(&p, "large")).then_some(()) },
    )
    .await;
    assert_eq!(warning(&p, port, &big), Value::Null, "a canceled task");
    assert!(warning(&p, port, &elsewhere).is_string());
    stop(api);
}

#[test]
fn the_format_check_accepts_good_text_and_refuses_bad_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    assert_eq!(check_exposition(good), 4);
    for bad in [
        "a 1\n",                                   // no TYPE
        "# TYPE a gauge\na{x=\"1\"} one\n",        // bad value
        "# TYPE a gauge\na{x=1} 1\n",              // unquoted label value
        "# TYPE a gauge\na 1\na 2\n",              // a series twice
        "# TYPE a gauge\n# TYPE a counter\na 1\n", // TYPE twice
        "# TYPE 1a gauge\n",                       // bad name
    ] {
        let caught = std::panic::catch_unwind(|| check_exposition(bad));
        assert!(caught.is_err(), "accepted {bad:?}");
    }
}
