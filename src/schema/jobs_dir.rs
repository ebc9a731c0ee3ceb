//! Finding jobs in `jobs/`: every regular file (or symlink to one) directly in
//! it is a job named after the file without its last extension
//! (`send-report.sh` → `send-report`, `a.b.py` → `a.b`). Hidden files, editor
//! backups (`x~`) and notes (`README*`, `*.md`, `*.txt`) are ignored;
//! subdirectories are skipped with a warning. A job file that is not
//! executable is only a warning: its tasks fail later with a spawn error.

use super::error::SchemaError;
use super::validate::NAME_RULE;
use crate::model::{Job, is_valid_name};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The jobs found in `<project>/jobs/`, each with all defaults, by name.
/// `None` when `jobs/` is missing or unreadable (then an error says so).
pub(crate) fn scan(
    project: &Path,
    errors: &mut Vec<SchemaError>,
    warnings: &mut Vec<String>,
) -> Option<BTreeMap<String, Job>> {
    let dir = project.join("jobs");
    if !dir.is_dir() {
        let message = format!(
            "jobs/ not found in {} (create it and put the job executables there)",
            project.display()
        );
        errors.push(SchemaError::in_file("jobs", message));
        return None;
    }
    let mut names: Vec<_> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| match e {
                Ok(e) => Some(e.file_name()),
                Err(err) => {
                    errors.push(SchemaError::in_file("jobs", format!("cannot list: {err}")));
                    None
                }
            })
            .collect(),
        Err(err) => {
            errors.push(SchemaError::in_file("jobs", format!("cannot list: {err}")));
            return None;
        }
    };
    names.sort();
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for os_name in names {
        let rel = Path::new("jobs").join(&os_name);
        let Some(file_name) = os_name.to_str() else {
            errors.push(SchemaError::in_file(&rel, "file name is not valid UTF-8"));
            continue;
        };
        if is_ignored(file_name) {
            continue;
        }
        let meta = match fs::metadata(dir.join(file_name)) {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!("{} is ignored: {e}", rel.display()));
                continue;
            }
        };
        if meta.is_dir() {
            warnings.push(format!(
                "{}/ is a directory and is ignored (jobs are files directly in jobs/)",
                rel.display()
            ));
            continue;
        }
        if !meta.is_file() {
            warnings.push(format!(
                "{} is not a regular file and is ignored",
                rel.display()
            ));
            continue;
        }
        let name = job_name(file_name);
        if !is_valid_name(name) {
            let message = format!("{name:?} is not a valid job name: {NAME_RULE}");
            errors.push(SchemaError::in_file(&rel, message));
            continue;
        }
        if let Some(first) = jobs.get(name) {
            let first = first.program.as_deref().unwrap_or(Path::new("?"));
            let message = format!(
                "{} and {} both give the job name {name:?}; rename one",
                first.display(),
                rel.display()
            );
            errors.push(SchemaError::in_file(&rel, message));
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            warnings.push(format!("{} is not executable (chmod +x)", rel.display()));
        }
        jobs.insert(name.to_string(), Job::with_defaults(name, Some(rel)));
    }
    Some(jobs)
}

/// The job name a file gives: its name without the last extension.
pub(crate) fn job_name(file_name: &str) -> &str {
    Path::new(file_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file_name)
}

/// Files in `jobs/` (and `schema/`) that are not meant to be read.
pub(crate) fn is_ignored(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    file_name.starts_with('.')
        || file_name.ends_with('~')
        || lower.starts_with("readme")
        || lower.ends_with(".md")
        || lower.ends_with(".txt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_name_strips_the_last_extension() {
        assert_eq!(job_name("send-report.sh"), "send-report");
        assert_eq!(job_name("a.b.py"), "a.b");
        assert_eq!(job_name("ping"), "ping");
    }

    #[test]
    fn notes_and_hidden_files_are_not_jobs() {
        for name in [
            ".env",
            "README",
            "readme.rst",
            "notes.md",
            "todo.TXT",
            "x.sh~",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        assert!(!is_ignored("report.py"));
    }
}
