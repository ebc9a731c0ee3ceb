//! Opening one new database file from many connections at the same instant
//! (issue 15, case 11): every open succeeds and leaves the file in WAL mode.

use super::SqliteStore;
use std::sync::{Arc, Barrier};

/// Connections per round, and rounds (each on a new file): the switch to WAL
/// under contention failed some rounds in a few dozen before opening retried.
const OPENERS: usize = 10;
const ROUNDS: usize = 60;

#[test]
fn connections_opening_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("temp dir");
    for round in 0..ROUNDS {
        let path = Arc::new(dir.path().join(format!("new-{round}.db")));
        let barrier = Arc::new(Barrier::new(OPENERS));
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|_| ())
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("opener thread");
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
        let conn = rusqlite::Connection::open(&*path).expect("reopen");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal", "round {round}");
    }
}
