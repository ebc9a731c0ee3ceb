//! Reading a task's result file (`$JOBSLOT_RESULT_FILE`) without trusting it.
//!
//! The path is in a directory the task may write to, so the task decides what
//! is there: a FIFO (whose open or read would block forever), a symbolic link
//! to `/dev/zero` (endless) or to some file of the scheduler's, a directory, a
//! huge file. The file is opened with `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`
//! (a link is refused, a FIFO or device does not block the open), the opened
//! descriptor is checked with `fstat` to be a regular file, and at most
//! [`RESULT_LIMIT`] + 1 bytes are read. All of it runs on the blocking pool.
//! Whatever is found, the path is removed afterwards (a link is unlinked, never
//! its target).

use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest result file read, in bytes.
pub const RESULT_LIMIT: u64 = 1024 * 1024;

/// How many times an open that failed for want of descriptors is tried again.
const SHORTAGE_TRIES: u32 = 20;

/// Reads and removes the task's result file, if it wrote one. `Ok(None)`: no
/// file, or only whitespace. `Err`: why the task has no result, for its log.
pub async fn read_and_remove(path: PathBuf) -> Result<Option<Value>, String> {
    tokio::task::spawn_blocking(move || {
        let out = read(&path);
        remove(&path);
        out
    })
    .await
    .unwrap_or_else(|e| Err(format!("cannot read the result file: {e}")))
}

/// Reads the file at `path` as described in the module's documentation.
fn read(path: &Path) -> Result<Option<Value>, String> {
    let what = "the result file ($JOBSLOT_RESULT_FILE)";
    let mut tries = 0;
    let file = loop {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        match opened {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(format!(
                    "{what} is a symbolic link; links are not followed; the task has no result"
                ));
            }
            // Out of descriptors for a moment (many tasks ending at once):
            // the result is worth a short wait.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && tries < SHORTAGE_TRIES =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10 * u64::from(tries)));
            }
            Err(e) => return Err(format!("cannot open {what}: {e}; the task has no result")),
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {what}: {e}; the task has no result"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "{what} is {}, not a regular file; the task has no result",
            kind(&meta.file_type())
        ));
    }
    let mut bytes = Vec::new();
    file.take(RESULT_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what}: {e}; the task has no result"))?;
    if bytes.len() as u64 > RESULT_LIMIT {
        return Err(format!(
            "{what} has {} bytes, over the limit of {RESULT_LIMIT}; the task has no result",
            meta.len().max(RESULT_LIMIT + 1)
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{what} is not valid JSON ({e}); the task has no result"))
}

/// What a file that is not a regular file is, in words.
fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a plain file"
    }
}

/// Removes whatever is at `path`: a file, a link (not its target) or a
/// directory the task made there.
fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            // remove_dir_all does not follow links inside the directory.
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the result directory");
            }
        }
        Ok(_) => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the result file");
            }
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn a_regular_file_is_read_and_removed() {
        let dir = scratch();
        let p = dir.path().join("r.json");
        std::fs::write(&p, br#"{"n": 1}"#).expect("write");
        assert_eq!(read(&p), Ok(Some(serde_json::json!({"n": 1}))));
        remove(&p);
        assert!(!p.exists());
        assert_eq!(read(&p), Ok(None));
        std::fs::write(&p, b" \n").expect("write");
        assert_eq!(read(&p), Ok(None));
    }

    #[test]
    fn links_fifos_directories_and_big_files_give_no_result() {
        let dir = scratch();
        let target = dir.path().join("target.json");
        std::fs::write(&target, b"{}").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let e = read(&link).expect_err("link refused");
        assert!(e.contains("symbolic link"), "{e}");
        remove(&link);
        assert!(std::fs::symlink_metadata(&link).is_err());

        let link = dir.path().join("link2");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(read(&link).is_err());
        remove(&link);
        assert!(target.exists(), "the link's target is kept");

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("cstring");
        // SAFETY: a valid NUL-terminated path and a mode; no memory is kept.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo).expect_err("fifo refused");
        assert!(e.contains("a FIFO"), "{e}");
        remove(&fifo);
        assert!(std::fs::symlink_metadata(&fifo).is_err());

        let sub = dir.path().join("sub");
        std::fs::create_dir_all(sub.join("deeper")).expect("mkdir");
        assert!(read(&sub).expect_err("dir").contains("a directory"));
        remove(&sub);
        assert!(!sub.exists());

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b' '; RESULT_LIMIT as usize + 1]).expect("write");
        assert!(read(&big).expect_err("too big").contains("over the limit"));
        std::fs::write(&big, vec![b' '; RESULT_LIMIT as usize]).expect("write");
        assert_eq!(read(&big), Ok(None));
    }
}
