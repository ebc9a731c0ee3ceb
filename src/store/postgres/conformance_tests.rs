//! The storage conformance suite ([`crate::store::conformance`]) run against
//! PostgreSQL: one test per case, each in a fresh schema of the test server
//! (see [`super::test_support`]), so the cases run in parallel.

use super::test_support::TestSchema;
use crate::store::Store;
use crate::store::conformance::{self, Harness};
use async_trait::async_trait;
use std::sync::Arc;

/// A fresh schema; every handle opens it anew through `store::open`.
struct PostgresHarness {
    schema: TestSchema,
}

#[async_trait]
impl Harness for PostgresHarness {
    async fn open(&self) -> Arc<dyn Store> {
        crate::store::open(&self.schema.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.schema.url))
    }
}

/// One test per case of the suite (`conformance::with_cases!` lists them all).
macro_rules! cases {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn $name() {
                let Some(schema) = TestSchema::fresh().await else { return };
                conformance::$name(&PostgresHarness { schema }).await;
            }
        )*

    };
}

conformance::with_cases!(cases);
