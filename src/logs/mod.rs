//! Task logs in S3-compatible storage: where they go, uploading them (single or
//! multipart), reading them back and deleting them. No database here: the
//! scheduler records where each log is and drives retries.

mod read;
mod storage;

pub use read::{Follower, LogError, LogReader};
pub use storage::{Storage, StorageConfig, StorageError, parse_s3_url};
