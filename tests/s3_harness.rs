//! Self-test of the in-process S3 server used by the log-upload tests.

mod common;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::time::Duration;
use tokio::io::AsyncReadExt;

const BUCKET: &str = "logs";

fn client(endpoint: &str, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .behavior_version(BehaviorVersion::latest())
        .build();
    Client::from_conf(conf)
}

async fn put(c: &Client, key: &str, body: &[u8]) -> Result<(), String> {
    let fut = c
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send();
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => panic!("put {key} hung"),
    }
}

async fn get(c: &Client, key: &str) -> Vec<u8> {
    let out = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get_object");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_put_multipart_auth_outage_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("s3");
    let server = S3Server::start(&root, None).await;
    server.create_bucket(BUCKET);
    let c = client(&server.endpoint(), ACCESS_KEY, SECRET_KEY);

    // Single PUT, read back from disk and through the API. A key that needs percent-encoding.
    let key = "tasks/0001/std out.log";
    put(&c, key, b"hello log\n").await.expect("put");
    assert_eq!(
        server.object(BUCKET, key).as_deref(),
        Some(&b"hello log\n"[..])
    );
    assert_eq!(get(&c, key).await, b"hello log\n");
    assert_eq!(server.writes(BUCKET, key), 1);
    assert_eq!(server.multipart_completions(BUCKET, key), 0);
    assert_eq!(server.object(BUCKET, "tasks/0001/missing.log"), None);

    // Multipart: 5 MiB + a small last part.
    let mkey = "tasks/0002/big.log";
    let part1: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let part2 = b"tail of the log\n".to_vec();
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(mkey)
        .send()
        .await
        .expect("create_multipart_upload");
    let upload_id = up.upload_id().expect("upload id").to_string();
    let mut parts = Vec::new();
    for (n, data) in [(1, &part1), (2, &part2)] {
        let r = c
            .upload_part()
            .bucket(BUCKET)
            .key(mkey)
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("upload_part");
        let mut p = CompletedPart::builder()
            .part_number(n)
            .e_tag(r.e_tag().expect("etag"));
        if let Some(crc) = r.checksum_crc32() {
            p = p.checksum_crc32(crc);
        }
        parts.push(p.build());
        // Parts are neither objects nor writes.
        assert_eq!(server.writes(BUCKET, mkey), 0);
    }
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key(mkey)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete_multipart_upload");
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert_eq!(
        server.object(BUCKET, mkey).expect("multipart object"),
        whole
    );
    assert_eq!(server.multipart_completions(BUCKET, mkey), 1);
    assert_eq!(server.writes(BUCKET, mkey), 1);
    assert_eq!(
        server.keys(BUCKET, ""),
        vec![key.to_string(), mkey.to_string()]
    );
    assert_eq!(server.keys(BUCKET, "tasks/0002/"), vec![mkey.to_string()]);
    assert!(server.keys("no-such-bucket", "").is_empty());

    // Wrong credentials: 403, nothing written.
    for bad in [
        client(&server.endpoint(), ACCESS_KEY, "wrong-secret-0123456789"),
        client(&server.endpoint(), "someone-else", SECRET_KEY),
    ] {
        let err = bad
            .put_object()
            .bucket(BUCKET)
            .key("tasks/evil.log")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("wrong credentials must be rejected");
        let status = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(403), "{err:?} code={:?}", err.code());
    }
    assert_eq!(server.object(BUCKET, "tasks/evil.log"), None);
    assert_eq!(server.writes(BUCKET, "tasks/evil.log"), 0);

    // Outage: an open keep-alive connection is dropped, new requests fail.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("raw connect");
    let requests_before = server.requests();
    assert!(requests_before >= 8, "requests: {requests_before}");
    let counters = server.counters();
    let port = server.stop().await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("open connection got {n} bytes after stop"),
        Err(_) => panic!("open connection still alive after stop"),
    }
    put(&c, "tasks/0003/during-outage.log", b"lost")
        .await
        .expect_err("put during the outage must fail");
    assert_eq!(counters.requests(), requests_before);

    // Back on the same port with the same data; the pooled client works again.
    let server = S3Server::start_with(&root, Some(port), counters.clone()).await;
    assert_eq!(server.port(), port);
    assert_eq!(
        server.object(BUCKET, key).as_deref(),
        Some(&b"hello log\n"[..])
    );
    assert_eq!(get(&c, key).await, b"hello log\n");
    put(&c, "tasks/0003/after.log", b"back")
        .await
        .expect("put after restart");
    assert_eq!(
        server.object(BUCKET, "tasks/0003/after.log").as_deref(),
        Some(&b"back"[..])
    );
    put(&c, key, b"hello again\n").await.expect("overwrite");
    // Counters carried across the outage.
    assert_eq!(server.writes(BUCKET, key), 2);
    assert_eq!(server.writes(BUCKET, mkey), 1);
    assert_eq!(server.writes(BUCKET, "tasks/0003/during-outage.log"), 0);
    assert!(server.requests() > requests_before);
    assert_eq!(
        server.keys(BUCKET, "tasks/"),
        vec![
            key.to_string(),
            mkey.to_string(),
            "tasks/0003/after.log".to_string()
        ]
    );

    // A fresh server (fresh counters) over the same root sees the same objects.
    let port = server.stop().await;
    let server = S3Server::start(&root, Some(port)).await;
    assert_eq!(server.requests(), 0);
    assert_eq!(get(&c, key).await, b"hello again\n");
    assert_eq!(server.writes(BUCKET, key), 0);
    server.stop().await;
}
