//! The S3 client for task logs.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Where logs go and how to reach the storage. Credentials come from
/// `access_key_id`/`secret_access_key` when set, else from the standard AWS
/// chain (environment, profile, instance role).
#[derive(Clone, Default)]
pub struct StorageConfig {
    /// The bucket; without one, logs stay local.
    pub bucket: Option<String>,
    /// Key prefix, default `logs/`.
    pub prefix: String,
    /// Endpoint URL of an S3-compatible server (MinIO, …).
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), needed by most
    /// S3-compatible servers.
    pub path_style: bool,
    /// Access key id overriding the AWS chain.
    pub access_key_id: Option<String>,
    /// Secret key overriding the AWS chain.
    pub secret_access_key: Option<String>,
    /// Logs at least this large are sent as a multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (at least 5 MiB).
    pub part_size: u64,
}

impl fmt::Debug for StorageConfig {
    // Credentials never appear in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.access_key_id.as_ref().map(|_| "<set>"))
            .field("multipart_threshold", &self.multipart_threshold)
            .finish()
    }
}

/// A storage operation failed. The message never holds a credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(String);

/// The storage client.
#[derive(Clone)]
pub struct Storage {
    client: Client,
    config: StorageConfig,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("config", &self.config)
            .finish()
    }
}

/// Splits `s3://bucket/key`.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("s3://")?.split_once('/')
}

const MIN_PART: u64 = 5 * 1024 * 1024;

impl Storage {
    /// Builds a client; nothing is contacted yet.
    pub async fn new(config: StorageConfig) -> Storage {
        // The region comes from the setting, the environment or the profile;
        // never from the instance metadata service, which would mean a network
        // call (and a delay) on every machine that is not an EC2 instance.
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            config.region.clone().map(Region::new),
        )
        .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else(Region::new("us-east-1"));
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .load()
            .await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(e) = &config.endpoint {
            b = b.endpoint_url(e);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            b = b.credentials_provider(Credentials::new(id, secret, None, None, "jobslot"));
        }
        Storage {
            client: Client::from_conf(b.build()),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The bucket logs are uploaded to, if one is configured.
    pub fn bucket(&self) -> Option<&str> {
        self.config.bucket.as_deref()
    }

    /// The URL a log file named `name` gets: `s3://<bucket>/<prefix><name>`,
    /// where `name` is the log's file name ([`crate::model::log_file_name`]:
    /// `<task id>.log`, `<task id>.attempt-N.log`).
    pub fn url_for(&self, name: &str) -> Option<String> {
        let bucket = self.bucket()?;
        Some(format!("s3://{bucket}/{}{name}", self.config.prefix))
    }

    /// Turns an SDK error into a message without credentials.
    fn error(&self, what: String, e: impl std::error::Error) -> StorageError {
        let mut msg = format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e));
        for secret in [&self.config.secret_access_key, &self.config.access_key_id]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
        {
            msg = msg.replace(secret.as_str(), "<redacted>");
        }
        StorageError(msg)
    }

    /// Uploads a log file as `name` (see [`Storage::url_for`]) and returns its
    /// URL. Files of at least the multipart threshold go up in parts.
    pub async fn upload(&self, name: &str, path: &Path) -> Result<String, StorageError> {
        let url = self
            .url_for(name)
            .ok_or_else(|| StorageError("no bucket configured".to_string()))?;
        let Some((bucket, key)) = parse_s3_url(&url) else {
            return Err(StorageError(format!("bad log URL {url}")));
        };
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display())))?
            .len();
        if len >= self.config.multipart_threshold.max(MIN_PART) {
            self.upload_multipart(bucket, key, path, &url).await?;
        } else {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display())))?;
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("text/plain; charset=utf-8")
                .body(body)
                .send()
                .await
                .map_err(|e| self.error(format!("cannot upload {url}"), e))?;
        }
        Ok(url)
    }

    async fn upload_multipart(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        url: &str,
    ) -> Result<(), StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("text/plain; charset=utf-8")
            .send()
            .await
            .map_err(|e| self.error(format!("cannot start a multipart upload of {url}"), e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(StorageError(format!("no upload id for {url}")));
        };
        let result = self.upload_parts(bucket, key, path, url, &upload_id).await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        url: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let part_size = self.config.part_size.max(MIN_PART) as usize;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display())))?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = Vec::with_capacity(part_size);
            let read = (&mut file)
                .take(part_size as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display())))?;
            if read == 0 && number > 1 {
                break;
            }
            let done = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| self.error(format!("cannot upload part {number} of {url}"), e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(done.e_tag().map(str::to_string))
                    .part_number(number)
                    .build(),
            );
            number += 1;
            if read < part_size {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error(format!("cannot complete the upload of {url}"), e))?;
        Ok(())
    }

    /// Reads a stored log from byte `from` on (an empty result past its end).
    pub async fn read(&self, url: &str, from: u64) -> Result<Vec<u8>, StorageError> {
        let Some((bucket, key)) = parse_s3_url(url) else {
            return Err(StorageError(format!("bad log URL {url}")));
        };
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if from > 0 {
            req = req.range(format!("bytes={from}-"));
        }
        match req.send().await {
            Ok(out) => Ok(out
                .body
                .collect()
                .await
                .map_err(|e| StorageError(format!("cannot read {url}: {e}")))?
                .into_bytes()
                .to_vec()),
            Err(e) => {
                let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                if from > 0 && text.contains("InvalidRange") {
                    return Ok(Vec::new());
                }
                Err(self.error(format!("cannot read {url}"), e))
            }
        }
    }

    /// Deletes stored logs; returns how many were deleted.
    pub async fn delete(&self, urls: &[String]) -> Result<usize, StorageError> {
        let mut by_bucket: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for url in urls {
            if let Some((b, k)) = parse_s3_url(url) {
                by_bucket.entry(b).or_default().push(k);
            }
        }
        let mut deleted = 0;
        for (bucket, keys) in by_bucket {
            for chunk in keys.chunks(1000) {
                let objects = chunk
                    .iter()
                    .map(|k| ObjectIdentifier::builder().key(*k).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StorageError(format!("bad key: {e}")))?;
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(|e| StorageError(format!("bad delete request: {e}")))?;
                let out = self
                    .client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| self.error(format!("cannot delete logs in s3://{bucket}"), e))?;
                if let Some(err) = out.errors().first() {
                    return Err(StorageError(format!(
                        "cannot delete s3://{bucket}/{}: {}",
                        err.key().unwrap_or("?"),
                        err.message().unwrap_or("unknown error")
                    )));
                }
                deleted += chunk.len();
            }
        }
        Ok(deleted)
    }
}
