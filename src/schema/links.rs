//! Checks that need the whole schema at once: a `[jobs.X]` defined twice or
//! naming no executable, schedule names used twice (across all files), a
//! schedule whose job does not exist, and `after` naming an unknown schedule or
//! closing a cycle. Each error names both places when two are involved.

use super::error::SchemaError;
use super::location::SourceFile;
use super::raw::{RawFile, ScheduleEntry};
use super::validate::{NAME_RULE, apply_job_settings};
use crate::model::{Job, is_valid_name};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// `schema/x.toml:12`, for messages that point at a second place.
fn place(source: &SourceFile, span: Range<usize>) -> String {
    format!("{}:{}", source.rel.display(), source.line_of(span.start))
}

/// Applies each `[jobs.X]` entry to its job in `jobs`. `jobs_dir_found` is
/// false when `jobs/` is missing: then unknown jobs are not reported again.
pub(crate) fn apply_job_entries(
    files: &[RawFile],
    jobs: &mut BTreeMap<String, Job>,
    jobs_dir_found: bool,
    errors: &mut Vec<SchemaError>,
) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for file in files {
        let source = &file.source;
        for entry in &file.jobs {
            let name = entry.name.get_ref().as_str();
            let span = entry.name.span();
            if let Some(first) = seen.get(name) {
                let message = format!("job {name:?} is already defined at {first}");
                errors.push(source.at(span, &entry.key, message));
                continue;
            }
            seen.insert(name, place(source, span.clone()));
            if let Some(callback) = &entry.raw.on_children_done
                && jobs_dir_found
                && !jobs.contains_key(callback.get_ref())
            {
                let c = callback.get_ref();
                let message = format!(
                    "unknown job {c:?} in on_children_done: no executable jobs/{c} or jobs/{c}.<ext>"
                );
                errors.push(source.at(
                    callback.span(),
                    &entry.key.key("on_children_done"),
                    message,
                ));
            }
            if let Some(job) = jobs.get_mut(name) {
                apply_job_settings(job, &entry.raw, source, &entry.key, errors);
                continue;
            }
            if !is_valid_name(name) {
                let message = format!("invalid job name {name:?}: {NAME_RULE}");
                errors.push(source.at(span, &entry.key, message));
            } else if jobs_dir_found {
                let message =
                    format!("unknown job {name:?}: no executable jobs/{name} or jobs/{name}.<ext>");
                errors.push(source.at(span, &entry.key, message));
            }
            // Still check the settings, so every problem shows up at once.
            let mut scratch = Job::with_defaults(name, None);
            apply_job_settings(&mut scratch, &entry.raw, source, &entry.key, errors);
        }
    }
}

/// A schedule's first definition.
struct Def<'a> {
    order: usize,
    source: &'a SourceFile,
    entry: &'a ScheduleEntry,
}

/// Checks schedule names, jobs and `after` links across all files. `jobs` is
/// `None` when `jobs/` is missing: then unknown jobs are not reported again.
pub(crate) fn check_schedule_links(
    files: &[RawFile],
    jobs: Option<&BTreeMap<String, Job>>,
    errors: &mut Vec<SchemaError>,
) {
    let mut defs: HashMap<&str, Def<'_>> = HashMap::new();
    let mut keys: HashMap<&str, String> = HashMap::new();
    let entries = files
        .iter()
        .flat_map(|f| f.schedules.iter().map(move |e| (&f.source, e)));
    for (order, (source, entry)) in entries.enumerate() {
        if let (Some(job), Some(jobs)) = (&entry.raw.job, jobs)
            && !jobs.contains_key(job.get_ref())
        {
            let j = job.get_ref();
            let message = format!("unknown job {j:?}: no executable jobs/{j} or jobs/{j}.<ext>");
            errors.push(source.at(job.span(), &entry.key.key("job"), message));
        }
        let Some(name) = &entry.raw.name else {
            continue;
        };
        if let Some(first) = defs.get(name.get_ref().as_str()) {
            let first_name = first.entry.raw.name.as_ref().map(|n| n.span());
            let at = place(first.source, first_name.unwrap_or(first.entry.span.clone()));
            let message = format!(
                "duplicate schedule name {:?}: already used at {at} ({})",
                name.get_ref(),
                first.entry.key
            );
            errors.push(source.at(name.span(), &entry.key.key("name"), message));
            continue;
        }
        if let Some(key) = &entry.raw.unique_key {
            if let Some(first) = keys.get(key.get_ref().as_str()) {
                let message = format!(
                    "unique_key {:?} is already the key of schedule {first:?}: two schedules cannot share one",
                    key.get_ref()
                );
                errors.push(source.at(key.span(), &entry.key.key("unique_key"), message));
            } else {
                keys.insert(key.get_ref(), name.get_ref().clone());
            }
        }
        defs.insert(
            name.get_ref(),
            Def {
                order,
                source,
                entry,
            },
        );
    }
    check_after(&defs, errors);
}

/// `after` must name a schedule, and following `after` must never come back.
fn check_after(defs: &HashMap<&str, Def<'_>>, errors: &mut Vec<SchemaError>) {
    let after_of = |name: &str| -> Option<&str> {
        let after = defs.get(name)?.entry.raw.after.as_ref()?;
        Some(after.get_ref().as_str())
    };
    let mut ordered: Vec<(&str, &Def<'_>)> = defs.iter().map(|(n, d)| (*n, d)).collect();
    ordered.sort_by_key(|(_, d)| d.order);
    for (_, def) in &ordered {
        if let Some(after) = &def.entry.raw.after
            && !defs.contains_key(after.get_ref().as_str())
        {
            let message = format!("unknown schedule {:?}", after.get_ref());
            errors.push(
                def.source
                    .at(after.span(), &def.entry.key.key("after"), message),
            );
        }
    }
    // Each schedule has at most one `after`, so walking from each schedule
    // either ends, reaches a schedule already walked, or closes a cycle.
    let mut done: HashMap<&str, bool> = HashMap::new(); // true: finished; false: on the current walk
    for (start, _) in &ordered {
        let mut path: Vec<&str> = Vec::new();
        let mut current = Some(*start);
        while let Some(name) = current {
            match done.get(name) {
                Some(true) => break,
                Some(false) => {
                    let from = path.iter().position(|n| *n == name).unwrap_or(0);
                    report_cycle(defs, &path[from..], errors);
                    break;
                }
                None => {}
            }
            done.insert(name, false);
            path.push(name);
            current = after_of(name).filter(|next| defs.contains_key(next));
        }
        for name in path {
            done.insert(name, true);
        }
    }
}

/// Reports a cycle once, at the `after` of its member defined first.
fn report_cycle(defs: &HashMap<&str, Def<'_>>, cycle: &[&str], errors: &mut Vec<SchemaError>) {
    let Some(first) = (0..cycle.len()).min_by_key(|i| defs.get(cycle[*i]).map(|d| d.order)) else {
        return;
    };
    let Some(def) = defs.get(cycle[first]) else {
        return;
    };
    let Some(after) = &def.entry.raw.after else {
        return;
    };
    let message = if cycle.len() == 1 {
        format!("schedule {:?} runs after itself", cycle[0])
    } else {
        let members: Vec<String> = cycle[first..]
            .iter()
            .chain(&cycle[..first])
            .chain(std::iter::once(&cycle[first]))
            .enumerate()
            .map(|(i, name)| match defs.get(name) {
                Some(d) if i > 0 && i < cycle.len() => {
                    let span = d
                        .entry
                        .raw
                        .name
                        .as_ref()
                        .map_or(d.entry.span.clone(), |n| n.span());
                    format!("{name} ({})", place(d.source, span))
                }
                _ => name.to_string(),
            })
            .collect();
        format!("`after` forms a cycle: {}", members.join(" → "))
    };
    errors.push(
        def.source
            .at(after.span(), &def.entry.key.key("after"), message),
    );
}
