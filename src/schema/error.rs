//! The schema module's errors: one [`SchemaError`] per problem, each naming the
//! file (relative to the project), the line and the dotted key when they are
//! known, and [`SchemaErrors`], all of them together, which is what
//! [`load`](super::load) returns so a user fixes every problem in one pass.

use std::fmt;
use std::path::PathBuf;

/// One problem in `schema/` or `jobs/`.
///
/// Displayed as `schema/reports.toml:12: jobs.send-report.max_execution_time:
/// invalid duration "10 minutes": …`; the line and key parts are left out when
/// they are unknown (problems with files in `jobs/` have neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The file, relative to the project: `schema/reports.toml`, `jobs/x.sh`.
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: Option<usize>,
    /// Dotted key, e.g. `jobs.send-report.max_execution_time` or
    /// `schedules[1].cron` (array indexes count from 0, as in TOML tooling).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl SchemaError {
    /// A problem with a whole file or directory: no line, no key.
    pub fn in_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SchemaError {}

/// Every problem found while loading the schema, in file and line order.
/// Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SchemaErrors(pub Vec<SchemaError>);

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let full = SchemaError {
            file: "schema/reports.toml".into(),
            line: Some(12),
            key: Some("jobs.send-report.slots".into()),
            message: "must be at least 1".into(),
        };
        assert_eq!(
            full.to_string(),
            "schema/reports.toml:12: jobs.send-report.slots: must be at least 1"
        );
        let bare = SchemaError::in_file("jobs/x.py", "clash");
        assert_eq!(bare.to_string(), "jobs/x.py: clash");
        let all = SchemaErrors(vec![full, bare]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
