//! `jobslot schema check` and `jobslot schema apply`.

use super::{Ctx, output};
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

/// Schema actions.
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Validate schema/ and jobs/ and print what they define.
    Check,
    /// Validate, then apply schedules and job settings to the database.
    Apply,
}

/// Runs a schema action.
pub async fn run(ctx: &Ctx, action: SchemaAction) -> Result<i32> {
    let schema = match crate::schema::load(&ctx.project) {
        Ok(s) => s,
        Err(errors) => return Ok(report_errors(ctx, &errors)),
    };
    // Users and groups exist only on some machines: `check` is asked on the
    // machine that runs the tasks and fails; `apply` (from anywhere) warns.
    if let Err(errors) = crate::scheduler::resolve_identities(&schema) {
        match action {
            SchemaAction::Check => return Ok(report_errors(ctx, &errors)),
            SchemaAction::Apply => {
                for e in &errors.0 {
                    eprintln!("warning: {e} (jobslot run on this machine would refuse to start)");
                }
            }
        }
    }
    for w in &schema.warnings {
        eprintln!("warning: {w}");
    }
    let summary = json!({
        "ok": true,
        "jobs": schema.jobs.keys().collect::<Vec<_>>(),
        "schedules": schema.schedules.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "workers": schema.workers.iter().map(|w| &w.name).collect::<Vec<_>>(),
        "warnings": schema.warnings,
    });
    match action {
        SchemaAction::Check => {
            if ctx.json {
                output::print_json(&summary);
            } else {
                println!(
                    "schema OK: {} jobs, {} schedules, {} workers",
                    schema.jobs.len(),
                    schema.schedules.len(),
                    schema.workers.len()
                );
            }
        }
        SchemaAction::Apply => {
            let store = ctx.store().await?;
            let report =
                crate::scheduler::apply_schema(store.as_ref(), &schema.jobs, &schema.schedules)
                    .await?;
            let workers = crate::scheduler::workers::apply_workers(
                store.as_ref(),
                &schema.jobs,
                &schema.workers,
            )
            .await?;
            if ctx.json {
                let mut v = summary;
                v["workers_applied"] = json!({
                    "added": workers.added,
                    "changed": workers.changed,
                    "scaled": workers.scaled,
                    "removed": workers.removed,
                });
                v["created"] = json!(report.created);
                v["updated"] = json!(report.updated);
                v["removed"] = json!(report.removed);
                v["unchanged"] = json!(report.unchanged);
                output::print_json(&v);
            } else {
                println!(
                    "schema applied: {} created, {} updated, {} removed, {} unchanged",
                    report.created.len(),
                    report.updated.len(),
                    report.removed.len(),
                    report.unchanged.len()
                );
                let changes = [
                    ("added", &workers.added),
                    ("changed (rolling restart)", &workers.changed),
                    ("scaled", &workers.scaled),
                    ("removed", &workers.removed),
                ];
                for (what, names) in changes {
                    if !names.is_empty() {
                        println!("workers {what}: {}", names.join(", "));
                    }
                }
            }
        }
    }
    Ok(0)
}

/// Prints schema errors (one per line, or a JSON object); returns exit status 1.
fn report_errors(ctx: &Ctx, errors: &crate::schema::SchemaErrors) -> i32 {
    if ctx.json {
        let list: Vec<_> = errors
            .0
            .iter()
            .map(|e| json!({"file": e.file, "line": e.line, "key": e.key, "message": e.message, "error": e.to_string()}))
            .collect();
        output::print_json(&json!({"ok": false, "errors": list}));
    } else {
        eprintln!("{errors}");
    }
    1
}
