//! Schedules: `catch_up` after downtime, `catch_up` changes in the schema, and
//! cron due times across daylight-saving transitions.

mod common;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use common::*;
use jobslot::model::{Task, TaskStatus};
use jobslot::store::TaskListParams;
use serde_json::json;
use std::time::Duration;

/// The tasks of schedule `name`, by due time.
async fn schedule_tasks(store: &dyn jobslot::store::Store, name: &str) -> Vec<Task> {
    let mut v = store
        .task_list(TaskListParams {
            schedule: Some(name.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    v.sort_by_key(|t| t.start_at);
    v
}

/// Runs an `every = "500ms"` schedule with `catch_up` on instance `a`, stops it
/// for 2.2 s (four or more occurrences pass), then runs it on instance `b` until
/// `b` completed two occurrences. Returns the schedule's tasks and the time `b`
/// was started.
async fn through_downtime(backend: Backend, catch_up: &str) -> (Vec<Task>, DateTime<Utc>) {
    let p = Project::on(backend);
    p.job("m", "true");
    p.schema(
        "s.toml",
        &format!(
            "[[schedules]]\nname = \"m\"\njob = \"m\"\nevery = \"500ms\"\ncatch_up = \"{catch_up}\"\n"
        ),
    );
    let store = p.store().await;
    let inst = p.start("a", 1, &[]);
    wait_for("a first run", Duration::from_secs(10), || async {
        let v = schedule_tasks(store.as_ref(), "m").await;
        (count(&v, TaskStatus::Completed) >= 1).then_some(())
    })
    .await;
    assert!(inst.stop().success());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let restart_at = Utc::now();
    let inst = p.start("b", 1, &[]);
    wait_for(
        "two runs after the restart",
        Duration::from_secs(15),
        || async {
            let v = schedule_tasks(store.as_ref(), "m").await;
            let by_b = v
                .iter()
                .filter(|t| t.instance.as_deref() == Some("b"))
                .filter(|t| t.status == TaskStatus::Completed);
            (by_b.count() >= 2).then_some(())
        },
    )
    .await;
    assert!(inst.stop().success());
    (schedule_tasks(store.as_ref(), "m").await, restart_at)
}

fn due(t: &Task) -> DateTime<Utc> {
    t.start_at.expect("due time")
}

on_both!(catch_up_one_runs_one_missed_occurrence_after_downtime);
async fn catch_up_one_runs_one_missed_occurrence_after_downtime(backend: Backend) {
    let (tasks, restart_at) = through_downtime(backend, "one").await;
    let ran: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .collect();
    let by_b: Vec<&Task> = ran
        .iter()
        .copied()
        .filter(|t| t.instance.as_deref() == Some("b"))
        .collect();
    // Exactly one occurrence due during the downtime ran, on b, at its restart.
    let caught: Vec<&Task> = by_b
        .iter()
        .copied()
        .filter(|t| due(t) < restart_at)
        .collect();
    assert_eq!(caught.len(), 1, "caught-up runs: {caught:#?}");
    let caught = caught[0];
    assert!(
        restart_at - due(caught) > chrono::Duration::milliseconds(1000),
        "the caught-up occurrence (due {}) was not missed (restart {restart_at})",
        due(caught)
    );
    let ended = caught.ended_at.expect("ended");
    // The next occurrence is the first grid point after that run's end: the
    // other missed ones are skipped.
    let next = by_b
        .iter()
        .find(|t| due(t) > due(caught))
        .expect("an occurrence after the caught-up one");
    assert!(
        due(next) > ended && due(next) <= ended + chrono::Duration::milliseconds(500),
        "next due {} is not the first grid point after {ended}",
        due(next)
    );
    assert_eq!(
        (due(next) - due(caught)).num_milliseconds() % 500,
        0,
        "off the grid"
    );
    let between = ran
        .iter()
        .filter(|t| due(t) > due(caught) && due(t) < due(next))
        .count();
    assert_eq!(between, 0, "a skipped occurrence ran");
}

on_both!(catch_up_skip_runs_no_missed_occurrence_after_downtime);
async fn catch_up_skip_runs_no_missed_occurrence_after_downtime(backend: Backend) {
    let (tasks, restart_at) = through_downtime(backend, "skip").await;
    let last_before = tasks
        .iter()
        .filter(|t| t.instance.as_deref() == Some("a") && t.status == TaskStatus::Completed)
        .map(due)
        .max()
        .expect("a ran");
    // Nothing due between a's last run and b's start ran: the occurrence that was
    // pending moved to the first due time after b claimed it.
    let in_downtime: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status.is_terminal() && due(t) > last_before && due(t) < restart_at)
        .collect();
    assert!(
        in_downtime.is_empty(),
        "missed occurrences ran: {in_downtime:#?}"
    );
    let by_b: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.instance.as_deref() == Some("b") && t.status == TaskStatus::Completed)
        .collect();
    assert!(by_b.len() >= 2);
    let first = by_b[0];
    assert!(due(first) > restart_at, "b's first run due {}", due(first));
    assert_eq!((due(first) - last_before).num_milliseconds() % 500, 0);
}

on_both!(changing_only_catch_up_updates_the_schedule);
async fn changing_only_catch_up_updates_the_schedule(backend: Backend) {
    let p = Project::on(backend);
    p.job("m", "true");
    let schema = |catch_up: &str| {
        p.schema(
            "s.toml",
            &format!("[[schedules]]\nname = \"m\"\njob = \"m\"\ncron = \"0 3 * * *\"\n{catch_up}"),
        );
        p.cli_json(&["schema", "apply"])
    };
    let pending_recurrence = || {
        let v = p.cli_json(&["tasks", "--schedule", "m", "--status", "pending"]);
        let list = v.as_array().expect("array");
        assert_eq!(list.len(), 1, "{v}");
        list[0]["recurrence"].clone()
    };
    assert_eq!(schema("")["created"], json!(["m"]));
    // An explicit default is the same schedule.
    assert_eq!(schema("catch_up = \"skip\"\n")["unchanged"], json!(["m"]));
    let applied = schema("catch_up = \"one\"\n");
    assert_eq!(applied["updated"], json!(["m"]), "{applied}");
    assert_eq!(pending_recurrence()["catch_up"], json!("one"));
    assert_eq!(schema("catch_up = \"one\"\n")["unchanged"], json!(["m"]));
    assert_eq!(schema("")["updated"], json!(["m"]));
    assert_eq!(
        pending_recurrence(),
        json!({"cron": "0 3 * * *", "timezone": "UTC"})
    );
    // A bad value names the schedule and the key; nothing is applied.
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"m\"\njob = \"m\"\ncron = \"0 3 * * *\"\ncatch_up = \"twice\"\n",
    );
    let out = p.cli(&["schema", "apply"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "schema/s.toml:5: schedules[0].catch_up: schedule \"m\": unknown value \"twice\""
        ),
        "{err}"
    );
}

on_both!(enqueue_takes_catch_up_with_every_or_cron);
async fn enqueue_takes_catch_up_with_every_or_cron(backend: Backend) {
    let p = Project::on(backend);
    p.job("r", "true");
    let t = p.cli_json(&["enqueue", "r", "--every", "1h", "--catch-up", "one"]);
    assert_eq!(t["recurrence"]["catch_up"], json!("one"));
    let t = p.cli_json(&["enqueue", "r", "--cron", "0 3 * * *", "--catch-up", "skip"]);
    assert_eq!(
        t["recurrence"],
        json!({"cron": "0 3 * * *", "timezone": "UTC"})
    );
    let out = p.cli(&["enqueue", "r", "--catch-up", "one"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--every or --cron"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first Sunday from today on which `hh:mm` in `tz` does not exist (`gap`)
/// or occurs twice, and whose transition is still to come.
fn next_transition_day(tz: Tz, hh: u32, mm: u32, gap: bool) -> NaiveDate {
    let now = Utc::now();
    let today = now.with_timezone(&tz).date_naive();
    today
        .iter_days()
        .take(400)
        .find(|d| {
            let local = d.and_hms_opt(hh, mm, 0).expect("valid time");
            let after_gap = d.and_hms_opt(hh + 1, 0, 0).expect("valid time");
            match tz.from_local_datetime(&local) {
                chrono::LocalResult::None => {
                    gap && tz
                        .from_local_datetime(&after_gap)
                        .earliest()
                        .is_some_and(|t| t > now)
                }
                chrono::LocalResult::Ambiguous(first, _) => !gap && first > now,
                chrono::LocalResult::Single(_) => false,
            }
        })
        .inspect(|d| assert_eq!(d.weekday(), chrono::Weekday::Sun, "{tz} changes on {d}"))
        .expect("a transition within 400 days")
}

/// The due time of the pending occurrence of schedule `name`.
fn pending_due(p: &Project, name: &str) -> String {
    let v = p.cli_json(&["tasks", "--schedule", name, "--status", "pending"]);
    v[0]["start_at"].as_str().expect("start_at").to_string()
}

fn rfc3339(t: DateTime<Tz>) -> String {
    jobslot::model::fmt_time(t.with_timezone(&Utc))
}

/// Cron expressions are computed on real time zones when the schema is applied
/// and when `jobslot enqueue --cron` runs; the stored due time shows the
/// daylight-saving rule. The expressions name the day of the next transition
/// and Sunday (transitions are on Sundays in both zones), so they fire on that
/// day only.
#[test]
fn cron_due_times_follow_the_daylight_saving_rule() {
    let paris = chrono_tz::Europe::Paris;
    let new_york = chrono_tz::America::New_York;
    let p = Project::new();
    p.job("c", "true");
    // Paris: 02:30 does not exist on the spring day (due at 03:00 CEST, when the
    // clocks jump) and occurs twice on the autumn day (due at the first, CEST).
    let spring = next_transition_day(paris, 2, 30, true);
    let autumn = next_transition_day(paris, 2, 30, false);
    let cron_on =
        |d: NaiveDate, hh: u32| format!("30 {hh} {} {} 0", d.format("%-d"), d.format("%-m"));
    p.schema(
        "s.toml",
        &format!(
            "[[schedules]]\nname = \"spring\"\njob = \"c\"\ncron = \"{}\"\ntimezone = \"Europe/Paris\"\n\n\
             [[schedules]]\nname = \"autumn\"\njob = \"c\"\ncron = \"{}\"\ntimezone = \"Europe/Paris\"\n",
            cron_on(spring, 2),
            cron_on(autumn, 2)
        ),
    );
    p.cli_json(&["schema", "apply"]);
    let jump = paris
        .from_local_datetime(&spring.and_hms_opt(3, 0, 0).expect("time"))
        .single()
        .expect("03:00 exists");
    assert_eq!(pending_due(&p, "spring"), rfc3339(jump), "spring {spring}");
    let first = paris
        .from_local_datetime(&autumn.and_hms_opt(2, 30, 0).expect("time"))
        .earliest()
        .expect("02:30 exists");
    assert_eq!(pending_due(&p, "autumn"), rfc3339(first), "autumn {autumn}");
    assert_eq!(first.format("%Z").to_string(), "CEST");

    // New York, through `jobslot enqueue`: 02:30 on the spring day is due at
    // 03:00 EDT; 01:30 on the autumn day at its first occurrence (EDT).
    let spring = next_transition_day(new_york, 2, 30, true);
    let autumn = next_transition_day(new_york, 1, 30, false);
    let enqueue_cron = |expr: String| {
        let t = p.cli_json(&[
            "enqueue",
            "c",
            "--cron",
            &expr,
            "--timezone",
            "America/New_York",
        ]);
        let id = t["id"].as_str().expect("id").to_string();
        p.cli_json(&["show", &id])["start_at"]
            .as_str()
            .expect("start_at")
            .to_string()
    };
    let jump = new_york
        .from_local_datetime(&spring.and_hms_opt(3, 0, 0).expect("time"))
        .single()
        .expect("03:00 exists");
    assert_eq!(
        enqueue_cron(cron_on(spring, 2)),
        rfc3339(jump),
        "spring {spring}"
    );
    let first = new_york
        .from_local_datetime(&autumn.and_hms_opt(1, 30, 0).expect("time"))
        .earliest()
        .expect("01:30 exists");
    assert_eq!(
        enqueue_cron(cron_on(autumn, 1)),
        rfc3339(first),
        "autumn {autumn}"
    );
    assert_eq!(first.format("%Z").to_string(), "EDT");
}
