//! The user's schema: `jobs/` (the executables) and `schema/*.toml` (job
//! settings and schedules) read into validated [`Job`]s and [`Schedule`]s.
//!
//! Reading goes raw input → validated input: each TOML file is parsed into raw
//! serde structs that mirror it exactly (`raw`, unknown keys are errors), each
//! entry is validated on its own (`validate`), then checks that need the whole
//! schema run (`links`: unknown jobs, duplicate names, `after` cycles). Every
//! problem is collected, not just the first, and each names its file, line and
//! dotted key ([`SchemaError`]).

mod error;
mod identity;
mod jobs_dir;
mod links;
mod location;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{SchemaError, SchemaErrors};
pub use identity::{IdentityKeys, KeyPlace};

use crate::model::{Job, Schedule, Worker};
use location::SourceFile;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The validated schema: every job (from `jobs/` and `schema/`) and every schedule.
#[derive(Debug, Clone, Default)]
pub struct SchemaSet {
    /// Every executable in `jobs/`, by job name, with its `[jobs.NAME]` settings
    /// or the defaults.
    pub jobs: BTreeMap<String, Job>,
    /// Every `[[schedules]]` entry, in file order (files sorted by name).
    pub schedules: Vec<Schedule>,
    /// Every `[[workers]]` entry, in file order (files sorted by name).
    pub workers: Vec<Worker>,
    /// Where the `user` and `group` keys of the jobs that have them are
    /// written, by job name, for checks made on the machine that runs tasks.
    pub identity_keys: BTreeMap<String, IdentityKeys>,
    /// Things worth fixing that do not stop the schema from loading, such as a
    /// job file that is not executable.
    pub warnings: Vec<String>,
}

/// Loads and validates `<project>/schema/*.toml` and `<project>/jobs/`.
///
/// A missing `schema/` means no settings and no schedules; a missing `jobs/` is
/// an error. All problems are returned together, in file and line order.
pub fn load(project: &Path) -> Result<SchemaSet, SchemaErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let found = jobs_dir::scan(project, &mut errors, &mut warnings);
    let jobs_dir_found = found.is_some();
    let mut jobs = found.unwrap_or_default();

    let files: Vec<raw::RawFile> = read_schema_dir(project, &mut errors, &mut warnings)
        .into_iter()
        .map(|source| raw::parse_file(source, &mut errors))
        .collect();

    links::apply_job_entries(&files, &mut jobs, jobs_dir_found, &mut errors);
    let identity_keys = identity::places(&files);
    links::check_schedule_links(&files, jobs_dir_found.then_some(&jobs), &mut errors);
    let mut schedules = Vec::new();
    for file in &files {
        for entry in &file.schedules {
            if let Some(s) = validate::check_schedule(entry, &file.source, &mut errors) {
                schedules.push(s);
            }
        }
    }

    let mut workers: Vec<Worker> = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for file in &files {
        for entry in &file.workers {
            let Some(w) = validate::check_worker(entry, &file.source, &mut errors) else {
                continue;
            };
            let here = format!(
                "{}:{}",
                file.source.rel.display(),
                file.source.line_of(entry.span.start)
            );
            if let Some(first) = seen.get(&w.name) {
                let message = format!("worker {:?} is already defined at {first}", w.name);
                errors.push(
                    file.source
                        .at(entry.span.clone(), &entry.key.key("name"), message),
                );
                continue;
            }
            if jobs_dir_found && !jobs.contains_key(&w.job) {
                let message = format!(
                    "unknown job {:?}: no executable jobs/{}[.ext]",
                    w.job, w.job
                );
                errors.push(
                    file.source
                        .at(entry.span.clone(), &entry.key.key("job"), message),
                );
                continue;
            }
            seen.insert(w.name.clone(), here);
            workers.push(w);
        }
    }

    if errors.is_empty() {
        Ok(SchemaSet {
            jobs,
            schedules,
            workers,
            identity_keys,
            warnings,
        })
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(SchemaErrors(errors))
    }
}

/// The `*.toml` files of `<project>/schema/`, sorted by name, with their text.
fn read_schema_dir(
    project: &Path,
    errors: &mut Vec<SchemaError>,
    warnings: &mut Vec<String>,
) -> Vec<SourceFile> {
    let dir = project.join("schema");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(SchemaError::in_file("schema", format!("cannot list: {e}")));
            return Vec::new();
        }
    };
    let mut names: Vec<_> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name()),
            Err(e) => errors.push(SchemaError::in_file("schema", format!("cannot list: {e}"))),
        }
    }
    names.sort();
    let mut files = Vec::new();
    for os_name in names {
        let rel = PathBuf::from("schema").join(&os_name);
        let path = dir.join(&os_name);
        let name = os_name.to_string_lossy();
        if jobs_dir::is_ignored(&name) {
            continue;
        }
        if !name.ends_with(".toml") || !path.is_file() {
            warnings.push(format!(
                "{} is not a .toml file and is ignored",
                rel.display()
            ));
            continue;
        }
        match fs::read_to_string(&path) {
            Ok(text) => files.push(SourceFile { rel, text }),
            Err(e) => errors.push(SchemaError::in_file(rel, format!("cannot read: {e}"))),
        }
    }
    files
}
