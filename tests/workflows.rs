//! Workflows with real processes: parents that create children and wait for
//! them (cascading completion, failure and cancellation, the
//! `on_children_done` callback), task results, and unique keys under
//! contention from several instances.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A job body that creates `n` children of itself through the CLI, the way a
/// job in any language would, passing each its index.
fn fan_out(child: &str, n: usize) -> String {
    format!(
        "i=0\nwhile [ $i -lt {n} ]; do\n  '{bin}' enqueue {child} --parent \"$JOBSLOT_TASK_ID\" --args \"{{\\\"i\\\": $i}}\" > /dev/null || exit 3\n  i=$((i+1))\ndone\necho spawned {n}",
        bin = bin().display()
    )
}

/// The children of a task.
async fn children_of(p: &Project, parent: Uuid) -> Vec<jobslot::model::Task> {
    p.store()
        .await
        .task_list(jobslot::store::TaskListParams {
            parent: Some(parent),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("children")
}

on_both!(a_parent_waits_for_twenty_children_and_its_callback_gets_their_results);
async fn a_parent_waits_for_twenty_children_and_its_callback_gets_their_results(backend: Backend) {
    let p = Project::on(backend);
    p.job("pipeline", &fan_out("thumb", 20));
    // Each child sleeps a little (so the parent is seen waiting) and writes
    // a result derived from its args.
    p.job(
        "thumb",
        "sleep 0.2\ni=$(sed 's/[^0-9]//g')\nprintf '{\"square\": %d}' $((i*i)) > \"$JOBSLOT_RESULT_FILE\"",
    );
    p.job("report", "cat > callback-args.json");
    p.schema(
        "jobs.toml",
        "[jobs.pipeline]\non_children_done = \"report\"\n",
    );
    let _a = p.start("a", 4, &[]);
    let _b = p.start("b", 3, &[]);
    let store = p.store().await;
    let parent = enqueue(&p, &["pipeline"]);
    wait_for("the parent to wait", Duration::from_secs(30), || async {
        store
            .task_get(parent)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Waiting)
    })
    .await;
    let t = wait_terminal(store.as_ref(), parent, Duration::from_secs(60)).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert_eq!(t.exit_code, Some(0));
    let children = children_of(&p, parent).await;
    assert_eq!(children.len(), 20);
    let shown = p.cli_json(&["show", &parent.to_string()]);
    assert_eq!(shown["children"]["total"], 20, "{shown}");
    assert_eq!(shown["children"]["completed"], 20, "{shown}");
    for c in &children {
        assert_eq!(c.status, TaskStatus::Completed, "{c:?}");
        // The parent ended after its last child.
        assert!(c.ended_at <= t.ended_at, "{c:?} ended after {t:?}");
    }
    // The callback ran with every child's outcome and result.
    let cb = wait_for("the callback", Duration::from_secs(30), || async {
        tasks_of(store.as_ref(), "report")
            .await
            .into_iter()
            .find(|c| c.status.is_terminal())
    })
    .await;
    assert_eq!(cb.status, TaskStatus::Completed, "{cb:?}");
    assert_eq!(cb.metadata["childrenOf"], parent.to_string());
    let args: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("callback-args.json")).expect("callback args"),
    )
    .expect("json");
    assert_eq!(args, cb.args, "the callback got its args on stdin");
    assert_eq!(args["parent"], parent.to_string());
    assert_eq!(args["status"], "completed");
    let outcomes = args["children"].as_array().expect("children");
    assert_eq!(outcomes.len(), 20);
    let mut squares: Vec<i64> = outcomes
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "completed");
            o["result"]["square"].as_i64().expect("result")
        })
        .collect();
    squares.sort_unstable();
    assert_eq!(squares, (0..20).map(|i| i * i).collect::<Vec<i64>>());
    // Only one callback, however many instances saw the last child end.
    assert_eq!(tasks_of(store.as_ref(), "report").await.len(), 1);
}

on_both!(a_failed_child_fails_its_parent_after_the_others_end);
async fn a_failed_child_fails_its_parent_after_the_others_end(backend: Backend) {
    let p = Project::on(backend);
    p.job("pipeline", &fan_out("part", 20));
    p.job(
        "part",
        "i=$(sed 's/[^0-9]//g')\nsleep 0.1\n[ \"$i\" = 7 ] && exit 1\nexit 0",
    );
    p.job("report", "cat > callback-args.json");
    p.schema(
        "jobs.toml",
        "[jobs.pipeline]\non_children_done = \"report\"\n",
    );
    let _a = p.start("a", 6, &[]);
    let store = p.store().await;
    let parent = enqueue(&p, &["pipeline"]);
    let t = wait_terminal(store.as_ref(), parent, Duration::from_secs(60)).await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    let children = children_of(&p, parent).await;
    let failed: Vec<_> = children
        .iter()
        .filter(|c| c.status == TaskStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{children:?}");
    assert_eq!(
        t.reason.as_deref(),
        Some(format!("child {} failed", failed[0].id).as_str())
    );
    // The other children were not stopped: they all completed.
    assert_eq!(count(&children, TaskStatus::Completed), 19);
    let cb = wait_for("the callback", Duration::from_secs(30), || async {
        tasks_of(store.as_ref(), "report")
            .await
            .into_iter()
            .find(|c| c.status.is_terminal())
    })
    .await;
    assert_eq!(cb.args["status"], "failed");
    assert_eq!(
        cb.args["children"]
            .as_array()
            .map(|a| a.iter().filter(|c| c["status"] == "failed").count()),
        Some(1)
    );
}

on_both!(canceling_a_waiting_parent_cancels_its_open_children);
async fn canceling_a_waiting_parent_cancels_its_open_children(backend: Backend) {
    let p = Project::on(backend);
    p.job("pipeline", &fan_out("slow", 20));
    p.job("slow", "echo $$ >> pids.txt\nsleep 30");
    let _a = p.start("a", 2, &["--orphan-grace", "5s"]);
    let store = p.store().await;
    let parent = enqueue(&p, &["pipeline"]);
    wait_for("the parent to wait", Duration::from_secs(30), || async {
        store
            .task_get(parent)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Waiting)
    })
    .await;
    // Two slots hold running children; the others are pending.
    wait_for("children running", Duration::from_secs(20), || async {
        let c = children_of(&p, parent).await;
        (count(&c, TaskStatus::Running) == 2).then_some(())
    })
    .await;
    let out = p.cli(&["cancel", &parent.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_terminal(store.as_ref(), parent, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Canceled);
    let children = wait_for("every child to end", Duration::from_secs(30), || async {
        let c = children_of(&p, parent).await;
        c.iter().all(|c| c.status.is_terminal()).then_some(c)
    })
    .await;
    assert_eq!(children.len(), 20);
    assert_eq!(count(&children, TaskStatus::Canceled), 20, "{children:?}");
    let reason = format!("parent {parent} canceled");
    let stopped: Vec<_> = children.iter().filter(|c| c.started_at.is_some()).collect();
    assert_eq!(stopped.len(), 2, "only two ever started");
    for c in &children {
        if c.started_at.is_none() {
            assert_eq!(c.reason.as_deref(), Some(reason.as_str()), "{c:?}");
        } else {
            assert_eq!(c.reason.as_deref(), Some("canceled"), "{c:?}");
        }
    }
    // The running children's processes are gone.
    let pids = std::fs::read_to_string(p.path().join("pids.txt")).expect("pids");
    for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        assert!(!pid_alive(pid), "child process {pid} still runs");
    }
    // A parent that has ended takes no more children.
    let out = p.cli(&["enqueue", "slow", "--parent", &parent.to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has already ended"), "{err}");
}

on_both!(results_are_stored_and_invalid_ones_warn_in_the_log);
async fn results_are_stored_and_invalid_ones_warn_in_the_log(backend: Backend) {
    let p = Project::on(backend);
    p.job(
        "good",
        "printf '{\"rows\": 42, \"file\": \"out.csv\"}' > \"$JOBSLOT_RESULT_FILE\"",
    );
    p.job(
        "bad",
        "echo working\nprintf '{\"rows\": 4' > \"$JOBSLOT_RESULT_FILE\"",
    );
    p.job("none", "echo no result");
    let _a = p.start("a", 2, &[]);
    let store = p.store().await;
    let good = enqueue(&p, &["good"]);
    let bad = enqueue(&p, &["bad"]);
    let none = enqueue(&p, &["none"]);
    let g = wait_terminal(store.as_ref(), good, Duration::from_secs(20)).await;
    assert_eq!(g.status, TaskStatus::Completed);
    assert_eq!(
        g.result,
        Some(serde_json::json!({"rows": 42, "file": "out.csv"}))
    );
    let shown = p.cli_json(&["show", &good.to_string()]);
    assert_eq!(shown["result"]["rows"], 42);
    let b = wait_terminal(store.as_ref(), bad, Duration::from_secs(20)).await;
    assert_eq!(
        b.status,
        TaskStatus::Completed,
        "an invalid result is no failure"
    );
    assert_eq!(b.result, None);
    let log = p.cli(&["logs", &bad.to_string()]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("working"), "{log}");
    assert!(
        log.contains("[jobslot] warning: the result file ($JOBSLOT_RESULT_FILE) is not valid JSON"),
        "{log}"
    );
    let n = wait_terminal(store.as_ref(), none, Duration::from_secs(20)).await;
    assert_eq!((n.status, n.result), (TaskStatus::Completed, None));
}

on_both!(a_unique_key_admits_one_live_task_across_three_instances);
async fn a_unique_key_admits_one_live_task_across_three_instances(backend: Backend) {
    let p = Project::on(backend);
    // 12 tasks on 3 instances try, all at once, to enqueue the same unique
    // task; each records whether it got in.
    p.job(
        "starter",
        &format!(
            "while [ ! -e go ]; do sleep 0.02; done\n\
             if '{bin}' enqueue indexer --unique-key reindex > /dev/null 2> err-$JOBSLOT_TASK_ID.txt; then echo ok >> outcomes.txt; else echo refused >> outcomes.txt; fi",
            bin = bin().display()
        ),
    );
    p.job("indexer", "sleep 1");
    let _a = p.start("a", 4, &[]);
    let _b = p.start("b", 4, &[]);
    let _c = p.start("c", 4, &[]);
    let store = p.store().await;
    let starters: Vec<Uuid> = (0..12).map(|_| enqueue(&p, &["starter"])).collect();
    wait_for("all starters running", Duration::from_secs(30), || async {
        let t = tasks_of(store.as_ref(), "starter").await;
        (count(&t, TaskStatus::Running) == 12).then_some(())
    })
    .await;
    let instances: std::collections::HashSet<_> = tasks_of(store.as_ref(), "starter")
        .await
        .into_iter()
        .filter_map(|t| t.instance)
        .collect();
    assert_eq!(instances.len(), 3, "starters spread on the three instances");
    std::fs::write(p.path().join("go"), "").expect("go");
    for id in &starters {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    }
    let outcomes = std::fs::read_to_string(p.path().join("outcomes.txt")).expect("outcomes");
    let ok = outcomes.lines().filter(|l| *l == "ok").count();
    assert_eq!(ok, 1, "{outcomes}");
    assert_eq!(outcomes.lines().count(), 12);
    let indexers = tasks_of(store.as_ref(), "indexer").await;
    assert_eq!(indexers.len(), 1);
    assert_eq!(indexers[0].unique_key.as_deref(), Some("reindex"));
    // The refusals say why.
    let refused = std::fs::read_dir(p.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("err-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|s| !s.is_empty())
        .expect("a refusal message");
    assert!(
        refused.contains("unique key \"reindex\" is held by live task"),
        "{refused}"
    );
    // Once the holder has ended, the key is free again.
    wait_terminal(store.as_ref(), indexers[0].id, Duration::from_secs(30)).await;
    let again = enqueue(&p, &["indexer", "--unique-key", "reindex"]);
    assert_ne!(again, indexers[0].id);
}

on_both!(a_schedule_unique_key_is_held_by_its_occurrences);
async fn a_schedule_unique_key_is_held_by_its_occurrences(backend: Backend) {
    let p = Project::on(backend);
    p.job("exporter", "true");
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"export\"\njob = \"exporter\"\nevery = \"1h\"\nstart_at = \"2099-01-01T00:00:00Z\"\nunique_key = \"export\"\n",
    );
    let out = p.cli(&["schema", "apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = p.cli_json(&["tasks", "--schedule", "export"]);
    let occurrence = &listed[0];
    assert_eq!(occurrence["unique_key"], "export", "{listed}");
    let out = p.cli(&["enqueue", "exporter", "--unique-key", "export"]);
    assert!(
        !out.status.success(),
        "a hand-made task with the schedule's key"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(occurrence["id"].as_str().unwrap_or("?")),
        "the refusal names the holder: {err}"
    );
    // Changing the key is a change of the schedule: its occurrence follows.
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"export\"\njob = \"exporter\"\nevery = \"1h\"\nstart_at = \"2099-01-01T00:00:00Z\"\nunique_key = \"export-v2\"\n",
    );
    let applied = p.cli_json(&["schema", "apply"]);
    assert!(applied.to_string().contains("export"), "{applied}");
    let listed = p.cli_json(&["tasks", "--schedule", "export"]);
    assert_eq!(listed[0]["unique_key"], "export-v2", "{listed}");
    enqueue(&p, &["exporter", "--unique-key", "export"]);
}
