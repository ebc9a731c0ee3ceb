//! Secrets read from files named by `*_FILE` environment variables
//! (`JOBSLOT_DATABASE_PASSWORD_FILE`, `JOBSLOT_S3_SECRET_ACCESS_KEY_FILE`), as
//! Docker and Kubernetes secrets are mounted: the secret never sits in the
//! process's environment, and the file's permissions decide who can read it.
//!
//! One trailing line ending (`\n` or `\r\n`) is dropped; anything else in the
//! file is the secret. An unreadable or empty file is an error naming the
//! variable and the path, never a silent fallback to another source.

use std::path::{Path, PathBuf};

/// A secret file that cannot be used. The message names the variable and the
/// path, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be read.
    #[error("cannot read {var} ({path}): {source}")]
    Unreadable {
        /// The environment variable naming the file.
        var: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds nothing (or only a line ending).
    #[error("{var} names an empty file ({path})")]
    Empty {
        /// The environment variable naming the file.
        var: String,
        /// The file.
        path: PathBuf,
    },
    /// The file's content is not UTF-8 text.
    #[error("{var} names a file that is not UTF-8 text ({path})")]
    NotText {
        /// The environment variable naming the file.
        var: String,
        /// The file.
        path: PathBuf,
    },
    /// The secret is given both directly and through a file.
    #[error("{direct} and {var} are both set; give the secret one way only")]
    Both {
        /// Where the secret was given directly (a variable, the URL).
        direct: String,
        /// The environment variable naming the file.
        var: String,
    },
}

/// Reads the secret in `path`, named by the variable `var` (for messages).
pub fn read(var: &str, path: &Path) -> Result<String, SecretFileError> {
    let bytes = std::fs::read(path).map_err(|source| SecretFileError::Unreadable {
        var: var.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let mut text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        var: var.to_string(),
        path: path.to_path_buf(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(SecretFileError::Empty {
            var: var.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// The secret given either directly (`direct`, from the variable or setting
/// called `direct_name`) or in the file `file` (named by the variable
/// `file_var`; `None` or empty when unset). Both at once is an error: which one
/// was meant cannot be known, and a stale leftover must not win silently.
pub fn resolve(
    direct_name: &str,
    direct: Option<String>,
    file_var: &str,
    file: Option<&std::ffi::OsStr>,
) -> Result<Option<String>, SecretFileError> {
    let from_file = match file {
        Some(path) if !path.is_empty() => Some(read(file_var, Path::new(path))?),
        _ => None,
    };
    match (direct, from_file) {
        (Some(_), Some(_)) => Err(SecretFileError::Both {
            direct: direct_name.to_string(),
            var: file_var.to_string(),
        }),
        (direct, from_file) => Ok(direct.or(from_file)),
    }
}

/// [`resolve`] with the file named by the environment variable `file_var`.
pub fn resolve_env(
    direct_name: &str,
    direct: Option<String>,
    file_var: &str,
) -> Result<Option<String>, SecretFileError> {
    let file = std::env::var_os(file_var);
    resolve(direct_name, direct, file_var, file.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_line_ending_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        for (content, want) in [
            ("s3cr3t\n", "s3cr3t"),
            ("s3cr3t\r\n", "s3cr3t"),
            ("s3cr3t", "s3cr3t"),
            (" two\nlines\n\n", " two\nlines\n"),
        ] {
            std::fs::write(&path, content).expect("write");
            assert_eq!(read("X_FILE", &path).expect("read"), want);
        }
    }

    #[test]
    fn empty_or_missing_files_name_the_variable_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "\n").expect("write");
        let e = read("X_FILE", &path).expect_err("empty").to_string();
        assert!(
            e.contains("X_FILE") && e.contains(&path.display().to_string()),
            "{e}"
        );
        assert!(e.contains("empty"), "{e}");
        let missing = dir.path().join("missing");
        let e = read("X_FILE", &missing).expect_err("missing").to_string();
        assert!(e.contains("X_FILE") && e.contains("missing"), "{e}");
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn s3_secret_key_comes_from_its_file_or_its_variable_not_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s3-secret");
        std::fs::write(&path, "from-the-file\n").expect("write");
        let (var, file_var) = (
            "JOBSLOT_S3_SECRET_ACCESS_KEY",
            "JOBSLOT_S3_SECRET_ACCESS_KEY_FILE",
        );
        let got = resolve(var, None, file_var, Some(path.as_os_str())).expect("file");
        assert_eq!(got.as_deref(), Some("from-the-file"));
        let got = resolve(var, Some("direct".into()), file_var, None).expect("direct");
        assert_eq!(got.as_deref(), Some("direct"));
        let got = resolve(var, None, file_var, Some("".as_ref())).expect("empty var");
        assert_eq!(got, None);
        let e = resolve(var, Some("direct".into()), file_var, Some(path.as_os_str()))
            .expect_err("both")
            .to_string();
        assert!(e.contains(var) && e.contains(file_var), "{e}");
        assert!(!e.contains("from-the-file") && !e.contains("direct"), "{e}");
    }
}
