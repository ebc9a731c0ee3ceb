//! The storage conformance suite: the one set of cases every [`Store`] backend
//! must pass (STYLE practice 1, after river's `riverdrivertest`).
//!
//! Each case is an `async fn(&dyn Harness)`: it opens its handles through the
//! [`Harness`], creates its own data, and checks the contract of DESIGN "Task
//! lifecycle" through the [`Store`] trait alone, never through a backend's
//! tables. A backend's test module implements [`Harness`] (one fresh database
//! per harness) and runs every case of [`CASES`] as its own test; see
//! `sqlite/conformance_tests.rs`, which also checks that no case is left out.
//!
//! Times are explicit (the current time truncated to the millisecond, the
//! precision every store keeps, plus offsets), so no case sleeps. The suite
//! is small and has no test-only dependencies, so it is always compiled; its
//! cases and helpers are hidden from the documentation.

use super::Store;
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod after_links;
mod attempt_logs;
mod cancel;
mod claims;
mod finish;
mod instances;
mod logs;
mod ownership;
mod recurrence;
mod schedules;
mod stats;
mod support;
mod tasks;
mod timeline;
mod workers;
mod workflows;

pub use after_links::{
    after_link_cancels_chain_when_predecessor_fails_or_is_canceled, after_link_resolves_at_insert,
    after_link_waits_for_completion,
};
pub use attempt_logs::{
    attempt_log_uploaded_is_compare_and_set,
    attempt_logs_local_lists_retried_attempts_with_local_logs_on_a_host,
};
pub use cancel::{cancel_outcomes, reschedule_returns_claimed_task_to_pending};
pub use claims::{
    claim_fills_slots_past_tasks_that_no_longer_fit, claim_filters_queues,
    claim_is_exactly_once_under_contention, claim_marks_task_running,
    claim_orders_by_priority_then_due_then_id, claim_respects_free_slots,
};
pub use finish::{
    finish_inserts_next_occurrence_atomically, finish_is_compare_and_set,
    finish_never_overwrites_terminal_state, finish_with_retry_records_the_attempt,
    mark_spawned_records_process_while_running,
};
pub use instances::{
    instances_register_heartbeat_stop_list, orphans_are_foreign_tasks_past_deadline_and_grace,
};
pub use logs::{
    delete_finished_leaves_live_tasks, log_uploaded_is_compare_and_set,
    logs_local_lists_finished_tasks_with_local_logs_on_a_host,
    prunable_is_oldest_first_across_statuses, prunable_lists_only_finished_tasks_ended_before,
};
pub use ownership::claim_records_log_location_and_held_tasks;
pub use recurrence::{
    finish_skips_next_of_removed_schedule, schedule_after_links_to_upstream_occurrence,
    schedule_after_occurrence_replaced_when_upstream_fails,
    schedule_completion_sets_last_completed_at,
};
pub use schedules::{
    job_settings_apply_to_pending_tasks, schedule_apply_concurrently_keeps_one_live_occurrence,
    schedule_apply_creates_once_then_is_a_no_op, schedule_apply_moves_changed_pending_occurrence,
    schedule_apply_removes_schedule,
};
pub use stats::stats_snapshot_counts_what_the_database_holds;
pub use support::{Worker, after_schedule, every_schedule, new_task, now_ms};
pub use tasks::{
    migrate_is_idempotent, next_due_is_earliest_future_due_time,
    task_find_prefix_matches_id_prefixes, task_get_unknown_is_none,
    task_insert_round_trips_every_field, task_list_filters_newest_first,
};
pub use timeline::timeline_counts_ended_and_pending_per_minute;
pub use workers::{
    worker_apply_tracks_generations_and_state, worker_replicas_and_rolling_step, worker_spec,
};
pub use workflows::{
    ending_a_parent_failed_or_canceled_cancels_its_open_children,
    expire_requests_reach_the_instance_holding_the_task,
    parent_with_children_waits_then_settles_with_its_callback,
    paused_queues_are_not_claimed_until_resumed, starved_task_is_claimed_before_higher_priorities,
    unique_key_admits_one_live_task,
};

/// One fresh database of the backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a new, independent handle (its own connection or pool) on this
    /// harness's database, migrated. Every call reaches the same database.
    async fn open(&self) -> Arc<dyn Store>;
}

/// The future a case returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A case, callable from a list.
pub type CaseFn = for<'a> fn(&'a dyn Harness) -> CaseFuture<'a>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name. A backend runs each against a fresh [`Harness`].
        pub const CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |h| Box::pin($name(h)))),*];
    };
}

/// Calls `$callback![case, case, …]` with every case of the suite, in order: the
/// one list that `CASES` and each backend's test harness are built from.
macro_rules! with_cases {
    ($callback:ident) => {
        $callback![
            migrate_is_idempotent,
            task_insert_round_trips_every_field,
            task_get_unknown_is_none,
            task_find_prefix_matches_id_prefixes,
            claim_orders_by_priority_then_due_then_id,
            claim_marks_task_running,
            claim_respects_free_slots,
            claim_fills_slots_past_tasks_that_no_longer_fit,
            claim_filters_queues,
            claim_is_exactly_once_under_contention,
            finish_is_compare_and_set,
            finish_never_overwrites_terminal_state,
            finish_inserts_next_occurrence_atomically,
            finish_with_retry_records_the_attempt,
            mark_spawned_records_process_while_running,
            after_link_waits_for_completion,
            after_link_cancels_chain_when_predecessor_fails_or_is_canceled,
            after_link_resolves_at_insert,
            cancel_outcomes,
            reschedule_returns_claimed_task_to_pending,
            orphans_are_foreign_tasks_past_deadline_and_grace,
            next_due_is_earliest_future_due_time,
            schedule_apply_creates_once_then_is_a_no_op,
            schedule_apply_moves_changed_pending_occurrence,
            schedule_apply_removes_schedule,
            schedule_apply_concurrently_keeps_one_live_occurrence,
            schedule_after_links_to_upstream_occurrence,
            schedule_after_occurrence_replaced_when_upstream_fails,
            schedule_completion_sets_last_completed_at,
            finish_skips_next_of_removed_schedule,
            job_settings_apply_to_pending_tasks,
            instances_register_heartbeat_stop_list,
            task_list_filters_newest_first,
            logs_local_lists_finished_tasks_with_local_logs_on_a_host,
            log_uploaded_is_compare_and_set,
            prunable_lists_only_finished_tasks_ended_before,
            prunable_is_oldest_first_across_statuses,
            delete_finished_leaves_live_tasks,
            parent_with_children_waits_then_settles_with_its_callback,
            ending_a_parent_failed_or_canceled_cancels_its_open_children,
            unique_key_admits_one_live_task,
            paused_queues_are_not_claimed_until_resumed,
            starved_task_is_claimed_before_higher_priorities,
            expire_requests_reach_the_instance_holding_the_task,
            attempt_logs_local_lists_retried_attempts_with_local_logs_on_a_host,
            attempt_log_uploaded_is_compare_and_set,
            stats_snapshot_counts_what_the_database_holds,
            timeline_counts_ended_and_pending_per_minute,
            worker_apply_tracks_generations_and_state,
            worker_replicas_and_rolling_step,
            claim_records_log_location_and_held_tasks,
        ];
    };
}
#[cfg(test)]
pub(crate) use with_cases;

with_cases!(cases);
