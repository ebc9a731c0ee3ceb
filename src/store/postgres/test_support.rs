//! Test support for the PostgreSQL backend: where the test server is
//! (`JOBSLOT_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`),
//! and a fresh schema per test, dropped when the test ends (passed or not).
//!
//! Outside CI a test that cannot reach PostgreSQL is skipped with a message;
//! under `CI=true` it fails, so a broken setup never passes silently.

use std::time::Duration;
use tokio_postgres::NoTls;

/// The server the tests use.
pub fn base_url() -> String {
    std::env::var("JOBSLOT_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `base` with its search path set to `schema` (and extra `key=value` settings).
pub fn url_with(base: &str, schema: &str, extra: &[(&str, &str)]) -> String {
    let mut url = base.to_string();
    let mut add = |key: &str, value: &str| {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("{key}={value}"));
    };
    add("options", &format!("-csearch_path%3D{schema}"));
    for (k, v) in extra {
        add(k, v);
    }
    url
}

/// A schema of its own for one test; dropped with everything in it on drop.
pub struct TestSchema {
    /// The schema's name.
    pub name: String,
    /// The server's URL without the search path.
    pub base: String,
    /// A URL whose connections use this schema.
    pub url: String,
}

impl TestSchema {
    /// A fresh schema name on a reachable server, or `None` (after saying why)
    /// when the server cannot be reached outside CI.
    pub async fn fresh() -> Option<Self> {
        let base = base_url();
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            let (client, conn) = tokio_postgres::connect(&base, NoTls).await?;
            let driver = tokio::spawn(conn);
            client.simple_query("SELECT 1").await?;
            drop(client);
            let _ = driver.await;
            Ok::<_, tokio_postgres::Error>(())
        })
        .await;
        let why = match reached {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(super::conn::message(&e)),
            Err(_) => Some("no answer within 5 s".to_string()),
        };
        if let Some(why) = why {
            let text = format!(
                "PostgreSQL is not reachable at {} ({why}); set JOBSLOT_TEST_POSTGRES to a server",
                super::redact_url(&base)
            );
            assert!(!in_ci(), "{text}");
            eprintln!("skipping: {text}");
            return None;
        }
        let name = format!("js_test_{}", uuid::Uuid::now_v7().simple());
        let url = url_with(&base, &name, &[]);
        Some(Self { name, base, url })
    }

    /// A plain connection on this schema (which may not exist yet).
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url));
        tokio::spawn(conn);
        client
    }
}

/// Runs `sql` on `url` from a thread and runtime of its own: a drop may run
/// while a runtime unwinds.
fn execute_apart(url: &str, sql: String) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await.map_err(|e| e.to_string())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the thread panicked".to_string()))
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            super::conn::quote_ident(&self.name)
        );
        if let Err(e) = execute_apart(&base, sql) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// `base` naming database `db` instead of its own.
fn with_database(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    // `postgres://user@host:port/db`: the path starts after the authority.
    let authority_end = head
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| head[start..].find('/').map(|j| start + j))
        .unwrap_or(head.len());
    let mut url = format!("{}/{db}", &head[..authority_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A database of its own for one test (for what other tests' transactions
/// must not disturb, such as what VACUUM may remove: its horizon covers the
/// transactions of one database); dropped on drop.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// The server's URL (the database it was created from).
    admin: String,
    /// A schema in it.
    pub schema: Option<TestSchema>,
}

impl TestDatabase {
    /// A fresh database on a reachable server with a fresh schema in it, or
    /// `None` when the server cannot be reached outside CI.
    pub async fn fresh() -> Option<Self> {
        let mut schema = TestSchema::fresh().await?;
        let admin = schema.base.clone();
        let name = format!("js_db_{}", uuid::Uuid::now_v7().simple());
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", super::redact_url(&admin)));
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE DATABASE {}",
                super::conn::quote_ident(&name)
            ))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        schema.base = with_database(&admin, &name);
        schema.url = url_with(&schema.base, &schema.name, &[]);
        Some(Self {
            name,
            admin,
            schema: Some(schema),
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The schema first (its connections end), then the database.
        drop(self.schema.take());
        let admin = self.admin.clone();
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            super::conn::quote_ident(&self.name)
        );
        if let Err(e) = execute_apart(&admin, sql) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
