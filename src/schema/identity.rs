//! A job's `user` and `group` keys: what can be said of them anywhere (the
//! spelling, `group` only with `user`), and where they are written
//! ([`IdentityKeys`]), so that the checks only the machine that runs the tasks
//! can make (does the user exist here? may jobslot switch to it?) name the
//! file, line and key like every other schema error. Those checks are not part
//! of [`load`](super::load): `enqueue` or `serve` may run elsewhere, or as
//! another user; `schema check` and `jobslot run` make them
//! (`scheduler::resolve_identities`).

use super::error::SchemaError;
use super::location::{KeyPath, SourceFile};
use super::raw::{RawFile, RawJob};
use crate::model::Job;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// Where one key was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlace {
    /// The file, relative to the project.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// Dotted key, e.g. `jobs.report.user`.
    pub key: String,
}

impl KeyPlace {
    /// An error about the value at this place.
    pub fn error(&self, message: impl Into<String>) -> SchemaError {
        SchemaError {
            file: self.file.clone(),
            line: Some(self.line),
            key: Some(self.key.clone()),
            message: message.into(),
        }
    }
}

/// Where a job's `user` and `group` keys were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityKeys {
    /// The `user` key, when given.
    pub user: Option<KeyPlace>,
    /// The `group` key, when given.
    pub group: Option<KeyPlace>,
}

/// Applies `user` and `group` of one `[jobs.X]` entry to `job`, checking what
/// can be checked on any machine.
pub(crate) fn apply(
    job: &mut Job,
    raw: &RawJob,
    source: &SourceFile,
    key: &KeyPath,
    errors: &mut Vec<SchemaError>,
) {
    let mut check = |v: &Spanned<String>, field: &str| -> Option<String> {
        let name = v.get_ref();
        let bad = name.is_empty()
            || name.starts_with('-')
            || name
                .chars()
                .any(|c| c == ':' || c == '/' || c.is_whitespace() || c.is_control());
        if bad {
            let message = format!(
                "invalid {field} name {name:?}: a {field} name or a numeric id, without ':', '/', spaces or a leading '-'"
            );
            errors.push(source.at(v.span(), &key.key(field), message));
            return None;
        }
        Some(name.clone())
    };
    if let Some(v) = &raw.user {
        job.user = check(v, "user");
    }
    if let Some(v) = &raw.group {
        job.group = check(v, "group");
        if raw.user.is_none() {
            let message = "`group` needs `user`: set the user the job runs as too (a job without `user` runs as jobslot's own user and group)";
            errors.push(source.at(v.span(), &key.key("group"), message));
        }
    }
}

/// Where the `user` and `group` keys of each job that has them were written.
/// A job defined twice is an error of its own; its first entry counts here.
pub(crate) fn places(files: &[RawFile]) -> BTreeMap<String, IdentityKeys> {
    let mut out: BTreeMap<String, IdentityKeys> = BTreeMap::new();
    for file in files {
        for entry in &file.jobs {
            let name = entry.name.get_ref();
            if out.contains_key(name) || (entry.raw.user.is_none() && entry.raw.group.is_none()) {
                continue;
            }
            let place = |v: &Option<Spanned<String>>, field: &str| {
                v.as_ref().map(|v| KeyPlace {
                    file: file.source.rel.clone(),
                    line: file.source.line_of(v.span().start),
                    key: entry.key.key(field).to_string(),
                })
            };
            let keys = IdentityKeys {
                user: place(&entry.raw.user, "user"),
                group: place(&entry.raw.group, "group"),
            };
            out.insert(name.clone(), keys);
        }
    }
    out
}
