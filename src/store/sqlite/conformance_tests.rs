//! The storage conformance suite ([`crate::store::conformance`]) run against
//! SQLite: one test per case, each on a fresh database file.

use crate::store::Store;
use crate::store::conformance::{self, Harness};
use async_trait::async_trait;
use std::sync::Arc;

/// A fresh database file in a temporary directory; every handle opens it anew.
struct SqliteHarness {
    _dir: tempfile::TempDir,
    url: String,
}

impl SqliteHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("jobslot.db").display());
        Self { _dir: dir, url }
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn Store> {
        crate::store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }
}

/// One test per case of the suite (`conformance::with_cases!` lists them all).
macro_rules! cases {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn $name() {
                conformance::$name(&SqliteHarness::new()).await;
            }
        )*

    };
}

conformance::with_cases!(cases);
