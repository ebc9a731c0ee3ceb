//! The Jobs page, end to end: Debian's headless Chromium, driven through
//! ChromeDriver (WebDriver), against a live `jobslot run` instance serving
//! the page with an API token.
//!
//! Checked: the token prompt; the overview shows the running task with its
//! instance and slot usage, the charts draw the finished and failed tasks;
//! a queue paused from the command line shows as paused, and the page's own
//! pause and resume buttons change the database; a running task's page
//! follows its log live; cancel and retry from the task page; enqueue from
//! the tasks page. The page must log no error to the browser console.
//!
//! Screenshots of the overview (laptop and phone widths) and a task page are
//! saved under `target/test-artifacts/dashboard/`.
//!
//! Without Chromium and ChromeDriver the test says so and passes, except
//! under `CI=true` (`.ci/run` installs both).

mod common;
use common::http::*;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use jobslot::model::TaskStatus;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

const TOKEN: &str = "page-t0ken";
const WAIT: Duration = Duration::from_secs(20);

/// Chromium and ChromeDriver, if installed.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| {
        let p = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default));
        p.is_file().then_some(p)
    };
    let found = pick("JOBSLOT_CHROMIUM", "/usr/bin/chromium")
        .zip(pick("JOBSLOT_CHROMEDRIVER", "/usr/bin/chromedriver"));
    if found.is_none() {
        let msg = "Chromium or ChromeDriver is missing: run .ci/run, or apt-get install chromium chromium-driver";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("skipped: {msg}");
    }
    found
}

/// Where screenshots go.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join("test-artifacts").join("dashboard"))
        .unwrap_or_else(|| PathBuf::from("test-artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// ChromeDriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(path: &PathBuf, log: PathBuf) -> Driver {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    wait_listening(port, WAIT);
    Driver { child, port }
}

async fn open_browser(driver: &Driver, chromium: &PathBuf, profile: &std::path::Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1300",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The text of the first element matching `css`, if there is one.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

/// Waits until the element matching `css` has a text for which `ok` holds.
async fn wait_text(c: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_for(what, WAIT, || async {
        text_of(c, css).await.filter(|t| ok(t))
    })
    .await
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn click(c: &Client, css: &str) {
    let e = wait_for(css, WAIT, || async { c.find(Locator::Css(css)).await.ok() }).await;
    e.click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn ready(c: &Client, page: &str) {
    wait_for(&format!("the {page} page"), WAIT, || async {
        let v = c
            .execute("return document.body.dataset.ready || ''", vec![])
            .await
            .ok()?;
        (v.as_str() == Some(page)).then_some(())
    })
    .await;
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = artifacts().join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Severe entries of the browser console (JavaScript errors, CSP refusals,
/// failed loads) since the last call, through ChromeDriver's log endpoint.
async fn console_errors(c: &Client, driver: &Driver) -> Vec<String> {
    let Ok(Some(session)) = c.session_id().await else {
        return vec!["no session id".into()];
    };
    use http_body_util::BodyExt;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let req = hyper::Request::post(format!(
        "http://127.0.0.1:{}/session/{session}/se/log",
        driver.port
    ))
    .header("content-type", "application/json")
    .body(json!({"type": "browser"}).to_string())
    .expect("log request");
    let res = http.request(req).await.expect("browser log");
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .expect("log body")
        .to_bytes();
    let body = String::from_utf8_lossy(&bytes);
    assert_eq!(status, 200, "browser log: {body}");
    let v: Value = serde_json::from_str(&body).expect("log json");
    v["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        // The page reads a finished task's log; a 404 before it exists is expected.
        .filter(|m| !m.contains("/log - Failed to load resource"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_page_shows_and_acts_on_a_live_instance() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let p = Project::new();
    p.job("quick", "cat >/dev/null; echo done");
    p.job("broken", "echo 'about to fail' >&2; exit 1");
    p.job(
        "ticker",
        "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done",
    );
    p.job(
        "consume",
        "trap 'exit 0' TERM\nwhile true; do sleep 0.05; done",
    );
    p.schema(
        "w.toml",
        "[[workers]]\nname = \"inbox\"\njob = \"consume\"\nreplicas = 1\n\n\
         [[schedules]]\nname = \"hourly\"\njob = \"quick\"\nevery = \"1h\"\n",
    );
    p.set_env("JOBSLOT_API_TOKEN", TOKEN);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _instance = p.start("page-node", 3, &["--api-addr", &addr]);
    wait_listening(port, WAIT);
    let store = p.store().await;

    // History for the charts: completed and failed tasks.
    let mut done = vec![];
    for i in 0..4 {
        done.push(enqueue(
            &p,
            &["quick", "--args", &format!("{{\"n\": {i}}}")],
        ));
    }
    for _ in 0..2 {
        done.push(enqueue(&p, &["broken"]));
    }
    for id in &done {
        wait_terminal(store.as_ref(), *id, WAIT).await;
    }
    // A queue paused from the command line, with a backlog.
    let out = p.cli(&["queue", "pause", "held"]);
    assert!(out.status.success(), "{out:?}");
    for _ in 0..3 {
        enqueue(&p, &["quick", "--queue", "held"]);
    }
    // The running task.
    let ticker = enqueue(&p, &["ticker"]);
    let running = wait_running(store.as_ref(), ticker, WAIT).await;
    let instance_id = running.instance_id.expect("instance id");

    let driver = start_driver(&chromedriver, p.path().join("chromedriver.log"));
    let profile = tempfile::tempdir().expect("profile");
    let c = open_browser(&driver, &chromium, profile.path()).await;
    let base = format!("http://{addr}");

    // The token: asked for, then kept.
    c.goto(&format!("{base}/#/")).await.expect("open the page");
    let token = wait_for("the token field", WAIT, || async {
        let e = c.find(Locator::Css("input#token")).await.ok()?;
        e.is_displayed().await.ok()?.then_some(e)
    })
    .await;
    token.send_keys(TOKEN).await.expect("type the token");
    click(&c, "#token-form [type=\"submit\"]").await;
    ready(&c, "overview").await;
    // Before the token, the API refused the page: those refusals only.
    let refused = console_errors(&c, &driver).await;
    assert!(
        refused.iter().all(|m| m.contains("401 (Unauthorized)")),
        "{refused:#?}"
    );

    // Overview: the running task, its instance, slots, queues, charts.
    let row = format!("table#running tr[data-task=\"{ticker}\"]");
    let text = wait_text(&c, &row, "the running task", |t| t.contains("ticker")).await;
    assert!(text.contains("page-node"), "running row: {text}");
    let inst = format!("table#instances tr[data-instance=\"{instance_id}\"]");
    // The ticker and the worker's replica.
    let text = wait_text(&c, &inst, "the instance", |t| t.contains("2/3")).await;
    assert!(
        text.contains("page-node") && text.contains("alive"),
        "{text}"
    );
    let held = "table#queues tr[data-queue=\"held\"] [data-field=\"state\"]";
    wait_text(&c, held, "queue held paused", |t| t == "paused").await;
    let backlog = "table#queues tr[data-queue=\"held\"]";
    let text = text_of(&c, backlog).await.unwrap_or_default();
    assert!(text.contains('3'), "held shows its 3 pending tasks: {text}");
    wait_for("bars for 4 completed and 2 failed", WAIT, || async {
        let ok = count(&c, "svg#chart-throughput .bar-completed").await >= 1
            && count(&c, "svg#chart-throughput .bar-failed").await >= 1
            && count(&c, "svg#chart-depth path.depth-line").await == 1;
        ok.then_some(())
    })
    .await;
    screenshot(&c, "overview.png").await;

    // Pause and resume from the page change the database.
    let default_state = "table#queues tr[data-queue=\"default\"] [data-field=\"state\"]";
    wait_text(&c, default_state, "queue default active", |t| t == "active").await;
    click(
        &c,
        "table#queues tr[data-queue=\"default\"] button[data-action=\"pause\"]",
    )
    .await;
    wait_text(&c, default_state, "queue default paused", |t| t == "paused").await;
    let queues = p.cli_json(&["queues"]);
    let state = |qs: &Value, name: &str| {
        qs.as_array()
            .into_iter()
            .flatten()
            .find(|q| q["queue"] == name || q["name"] == name)
            .map(|q| q["state"].clone())
    };
    assert_eq!(state(&queues, "default"), Some(json!("paused")), "{queues}");
    click(
        &c,
        "table#queues tr[data-queue=\"default\"] button[data-action=\"resume\"]",
    )
    .await;
    wait_text(&c, default_state, "queue default active again", |t| {
        t == "active"
    })
    .await;
    let queues = p.cli_json(&["queues"]);
    assert_ne!(state(&queues, "default"), Some(json!("paused")), "{queues}");

    // The worker: running, then restarted from the page.
    let worker_state = "table#workers tr[data-worker=\"inbox\"] [data-field=\"state\"]";
    wait_text(&c, worker_state, "the worker running", |t| t == "running").await;
    let before = store
        .worker_replicas(Some("inbox".into()))
        .await
        .expect("replicas");
    assert_eq!(before.len(), 1);
    click(
        &c,
        "table#workers tr[data-worker=\"inbox\"] button[data-action=\"restart\"]",
    )
    .await;
    wait_for("a new replica running", WAIT, || async {
        let now = store.worker_replicas(Some("inbox".into())).await.ok()?;
        (now.len() == 1 && now[0].id != before[0].id && now[0].status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    wait_text(&c, worker_state, "the worker running again", |t| {
        t == "running"
    })
    .await;

    // Phone width: the same overview, legible.
    c.set_window_size(390, 844).await.expect("resize");
    ready(&c, "overview").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(&c, "overview-phone.png").await;
    c.set_window_size(1400, 1300).await.expect("resize");

    // The running task's page follows its log.
    c.goto(&format!("{base}/#/tasks/{ticker}"))
        .await
        .expect("task page");
    ready(&c, "task").await;
    let status = "section#task [data-field=\"status\"]";
    wait_text(&c, status, "status running", |t| t == "running").await;
    let first = wait_text(&c, "pre#task-log", "log lines", |t| t.contains("tick 3")).await;
    let lines = first.lines().count();
    let grown = wait_text(&c, "pre#task-log", "the log to grow", |t| {
        t.lines().count() >= lines + 10
    })
    .await;
    assert!(grown.starts_with(first.trim_end()), "the log only grows");
    screenshot(&c, "task-running.png").await;

    // Cancel, from the page: the task stops.
    click(&c, "section#task button[data-action=\"cancel\"]").await;
    wait_text(&c, status, "status canceled", |t| t == "canceled").await;
    let t = wait_terminal(store.as_ref(), ticker, WAIT).await;
    assert_eq!(t.status, TaskStatus::Canceled);
    if let Some(pgid) = t.pgid {
        assert!(!group_alive(pgid), "the canceled task's processes are gone");
    }

    // Retry: a new task, shown at once.
    click(&c, "section#task button[data-action=\"retry\"]").await;
    let new_id = wait_for("the retried task's page", WAIT, || async {
        let e = c.find(Locator::Css("section#task")).await.ok()?;
        let id = e.attr("data-task").await.ok()??;
        let id: Uuid = id.parse().ok()?;
        (id != ticker).then_some(id)
    })
    .await;
    let retried = store.task_get(new_id).await.expect("get").expect("exists");
    assert_eq!(retried.job, "ticker");
    assert_eq!(retried.metadata["retryOf"], json!(ticker.to_string()));
    wait_text(&c, status, "the retry running", |t| t == "running").await;
    screenshot(&c, "task-retried.png").await;
    p.cli(&["cancel", &new_id.to_string()]);
    wait_text(&c, status, "the retry canceled", |t| t == "canceled").await;

    // Enqueue from the tasks page, with args.
    c.goto(&format!("{base}/#/tasks"))
        .await
        .expect("tasks page");
    ready(&c, "tasks").await;
    let form = c.find(Locator::Css("form#enqueue")).await.expect("form");
    let job = form
        .find(Locator::Css("select[name=\"job\"]"))
        .await
        .expect("job select");
    wait_for("the job list", WAIT, || async {
        let n = job
            .find_all(Locator::Css("option"))
            .await
            .ok()
            .map(|o| o.len())?;
        (n >= 3).then_some(())
    })
    .await;
    job.select_by_value("quick").await.expect("pick quick");
    let args = form
        .find(Locator::Css("textarea[name=\"args\"]"))
        .await
        .expect("args");
    args.clear().await.expect("clear args");
    args.send_keys("{\"from\": \"the page\"}")
        .await
        .expect("type args");
    click(&c, "form#enqueue [type=\"submit\"]").await;
    let made = wait_for("the enqueued task's page", WAIT, || async {
        let e = c.find(Locator::Css("section#task")).await.ok()?;
        e.attr("data-task").await.ok()??.parse::<Uuid>().ok()
    })
    .await;
    let t = wait_terminal(store.as_ref(), made, WAIT).await;
    assert_eq!(
        (t.job.as_str(), &t.args, t.status),
        ("quick", &json!({"from": "the page"}), TaskStatus::Completed)
    );
    wait_text(&c, status, "completed on the page", |t| t == "completed").await;
    screenshot(&c, "task-completed.png").await;

    // The tasks table lists it, filtered by job.
    c.goto(&format!("{base}/#/tasks?job=broken"))
        .await
        .expect("filtered tasks");
    ready(&c, "tasks").await;
    wait_for("two broken tasks", WAIT, || async {
        (count(&c, "table#tasks tr[data-task]").await == 2).then_some(())
    })
    .await;
    screenshot(&c, "tasks.png").await;

    // Schedules: the hourly one ran at start; its next run is an hour away.
    c.goto(&format!("{base}/#/schedules"))
        .await
        .expect("schedules page");
    ready(&c, "schedules").await;
    let row = "table#schedules tr[data-schedule=\"hourly\"]";
    let text = wait_text(&c, row, "the schedule's last outcome", |t| {
        t.contains("completed")
    })
    .await;
    assert!(text.contains("quick"), "{text}");
    screenshot(&c, "schedules.png").await;

    let errors = console_errors(&c, &driver).await;
    assert!(errors.is_empty(), "the browser console: {errors:#?}");
    let _ = c.close().await;
}

/// The page with a `read` token looks at everything and acts on nothing: its
/// buttons are disabled and say which role they need; switched to an
/// `admin` token, the same buttons act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_sees_everything_and_its_buttons_say_why_they_are_off() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    const READ: &str = "viewer-t0ken";
    const ADMIN: &str = "admin-t0ken";
    let p = Project::new();
    p.job("ticker", "while true; do echo tick; sleep 0.1; done");
    p.job(
        "consume",
        "trap 'exit 0' TERM\nwhile true; do sleep 0.05; done",
    );
    p.schema(
        "w.toml",
        "[[workers]]\nname = \"inbox\"\njob = \"consume\"\nreplicas = 1\n",
    );
    let entry = |name: &str, token: &str, role: &str| {
        format!(
            "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nrole = \"{role}\"\n",
            jobslot::api::access::token_sha256_hex(token)
        )
    };
    let tokens = p.path().join("tokens.toml");
    let text = entry("viewer", READ, "read") + &entry("boss", ADMIN, "admin");
    std::fs::write(&tokens, text).expect("tokens file");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let tokens_arg = tokens.display().to_string();
    let _instance = p.start(
        "role-node",
        3,
        &["--api-addr", &addr, "--api-tokens-file", &tokens_arg],
    );
    wait_listening(port, WAIT);
    let store = p.store().await;
    let ticker = enqueue(&p, &["ticker"]);
    wait_running(store.as_ref(), ticker, WAIT).await;

    let driver = start_driver(&chromedriver, p.path().join("chromedriver.log"));
    let profile = tempfile::tempdir().expect("profile");
    let c = open_browser(&driver, &chromium, profile.path()).await;
    let base = format!("http://{addr}");
    let use_token = |token: &'static str| {
        let c = c.clone();
        async move {
            let field = wait_for("the token field", WAIT, || async {
                let e = c.find(Locator::Css("input#token")).await.ok()?;
                e.is_displayed().await.ok()?.then_some(e)
            })
            .await;
            field.clear().await.expect("clear the token");
            field.send_keys(token).await.expect("type the token");
            click(&c, "#token-form [type=\"submit\"]").await;
        }
    };
    c.goto(&format!("{base}/#/")).await.expect("open the page");
    use_token(READ).await;
    ready(&c, "overview").await;
    wait_text(&c, "#whoami", "who the token is", |t| t == "viewer · read").await;

    // It sees: the running task and the worker.
    let row = format!("table#running tr[data-task=\"{ticker}\"]");
    wait_text(&c, &row, "the running task", |t| t.contains("ticker")).await;
    // Its buttons are off and say why.
    let off = |css: &'static str, role: &'static str| {
        let c = c.clone();
        async move {
            wait_for(&format!("{css} disabled"), WAIT, || async {
                let e = c.find(Locator::Css(css)).await.ok()?;
                let disabled = e.attr("disabled").await.ok()?.is_some();
                let title = e.attr("title").await.ok()??;
                (disabled
                    && title.contains(&format!("the {role} role"))
                    && title.contains("viewer"))
                .then_some(title)
            })
            .await
        }
    };
    let pause = "table#queues tr[data-queue=\"default\"] button[data-action=\"pause\"]";
    let why = off(pause, "admin").await;
    assert!(why.contains("has the read role"), "{why}");
    off(
        "table#workers tr[data-worker=\"inbox\"] button[data-action=\"stop\"]",
        "admin",
    )
    .await;
    screenshot(&c, "overview-read-token.png").await;
    c.goto(&format!("{base}/#/tasks/{ticker}"))
        .await
        .expect("the task page");
    ready(&c, "task").await;
    off("button[data-action=\"cancel\"]", "operate").await;
    c.goto(&format!("{base}/#/tasks"))
        .await
        .expect("the tasks page");
    ready(&c, "tasks").await;
    off("form#enqueue [type=\"submit\"]", "operate").await;
    let note = wait_text(&c, "form#enqueue .denied-note", "why enqueue is off", |t| {
        t.contains("operate role")
    })
    .await;
    assert!(note.contains("viewer"), "{note}");
    // A click on a disabled button does nothing: the task still runs.
    let task = store.task_get(ticker).await.expect("get").expect("task");
    assert_eq!(task.status, TaskStatus::Running);

    // The admin token: the same buttons act.
    c.goto(&format!("{base}/#/")).await.expect("the overview");
    ready(&c, "overview").await;
    click(&c, "#token-toggle").await;
    use_token(ADMIN).await;
    wait_text(&c, "#whoami", "the admin token", |t| t == "boss · admin").await;
    wait_for("pause enabled", WAIT, || async {
        let e = c.find(Locator::Css(pause)).await.ok()?;
        e.attr("disabled").await.ok()?.is_none().then_some(())
    })
    .await;
    click(&c, pause).await;
    let paused = "table#queues tr[data-queue=\"default\"] [data-field=\"state\"]";
    wait_text(&c, paused, "queue default paused", |t| t == "paused").await;
    let out = p.cli(&["queues", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).expect("queues json");
    let default = queues
        .as_array()
        .and_then(|q| q.iter().find(|q| q["queue"] == "default"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(default["state"], "paused", "{queues}");
    let errors = console_errors(&c, &driver).await;
    assert!(
        errors.iter().all(|m| m.contains("401 (Unauthorized)")),
        "{errors:#?}"
    );
    let _ = c.close().await;
}
