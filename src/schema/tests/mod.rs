//! Tests of [`load`](super::load) on real project directories: what a good
//! schema becomes, and, for every kind of mistake, an error that names the
//! file, the line and the key.

mod bad_jobs;
mod bad_schedules;
mod good;
mod too_long;
mod users;
mod workers;

use super::{SchemaError, SchemaSet, load};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A project directory with `jobs/` and `schema/`, removed when dropped.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("jobs")).expect("jobs/");
        fs::create_dir(dir.path().join("schema")).expect("schema/");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `rel` with `text`, not executable.
    fn write(&self, rel: &str, text: &str) -> &Self {
        fs::write(self.path().join(rel), text).expect("write file");
        self
    }

    /// Adds an executable `jobs/<file>`.
    fn job(&self, file: &str) -> &Self {
        let path = self.path().join("jobs").join(file);
        fs::write(&path, "#!/bin/sh\nexit 0\n").expect("write job");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }

    fn load_ok(&self) -> SchemaSet {
        match load(self.path()) {
            Ok(set) => set,
            Err(e) => panic!("expected the schema to load, got:\n{e}"),
        }
    }

    fn load_err(&self) -> Vec<SchemaError> {
        match load(self.path()) {
            Ok(set) => panic!("expected errors, got {set:#?}"),
            Err(e) => e.0,
        }
    }
}

/// Asserts that one of `errors` is at `file:line` under `key` and that its
/// message contains `needle`; returns it.
#[track_caller]
fn assert_error<'a>(
    errors: &'a [SchemaError],
    file: &str,
    line: usize,
    key: &str,
    needle: &str,
) -> &'a SchemaError {
    let found = errors.iter().find(|e| {
        e.file == Path::new(file)
            && e.line == Some(line)
            && e.key.as_deref() == Some(key)
            && e.message.contains(needle)
    });
    match found {
        Some(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{file}:{line}: {key}: ")),
                "{shown}"
            );
            e
        }
        None => panic!("no error {file}:{line}: {key}: …{needle}… among:\n{errors:#?}"),
    }
}
