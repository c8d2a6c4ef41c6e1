//! Store integration tests: the conformance suite on a real DuckDB file and a real ClickHouse
//! server, and the engine's
//! write path (duplicates, revisions, recovery, overload) on a real data directory.

mod clickhouse;
mod engine;
mod tamper;

use std::sync::Arc;

use signet_store::duck::DuckStore;
use signet_store::EventStore;

/// Each conformance check gets a fresh DuckDB file in its own temporary directory.
fn duck_file() -> Arc<dyn EventStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckStore::open(&dir.path().join("conformance.duckdb")).expect("open duckdb");
    // The directory must outlive the store; leak it for the test's lifetime.
    std::mem::forget(dir);
    Arc::new(store)
}

mod conformance_duckdb {
    signet_store::event_store_conformance_tests!(super::duck_file);
}
