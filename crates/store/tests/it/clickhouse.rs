//! The conformance suite on real ClickHouse engines, one fresh database per check: Debian's
//! `clickhouse-server` (18.16; `.ci/run` installs it), and a current release (PyPI `chdb`
//! behind a small HTTP shim), so the generated SQL is checked on both.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signet_store::clickhouse::{chdb_server, server, ClickHouseSettings, ClickHouseStore, LocalServer};
use signet_store::EventStore;

/// A store on a fresh database of Debian's server.
pub fn store(prefix: &str) -> ClickHouseStore {
    store_on(server(), prefix)
}

fn store_on(server: &LocalServer, prefix: &str) -> ClickHouseStore {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let settings = ClickHouseSettings {
        url: server.url.clone(),
        database: format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
        user: None,
        password_file: None,
        node: "node-1".into(),
    };
    ClickHouseStore::open(&settings).expect("open the ClickHouse store")
}

fn fresh() -> Arc<dyn EventStore> {
    Arc::new(store("conformance"))
}

mod conformance_clickhouse {
    signet_store::event_store_conformance_tests!(super::fresh);
}

fn fresh_current() -> Arc<dyn EventStore> {
    Arc::new(store_on(chdb_server(), "current"))
}

mod conformance_current_clickhouse {
    signet_store::event_store_conformance_tests!(super::fresh_current);
}

#[test]
fn migrations_are_versioned_and_idempotent() {
    let store = store("migrations");
    assert_eq!(store.migrate().unwrap(), 2);
    assert_eq!(store.migrate().unwrap(), 2, "a second run changes nothing");
}

/// An insert retried after a timeout (the first attempt did land) must not double-count: the
/// same batch applied twice, and a second revision applied twice, count once.
#[test]
fn a_batch_applied_twice_counts_once() {
    use signet_model::{normalize, LogKind};
    use signet_query::Expr;
    use signet_store::conformance::signin_json;
    use signet_store::{RecordPtr, StoredEvent};
    let store = store("retry");
    let event = |id: &str, code: i64, revision: u32, position: u64| StoredEvent {
        org: "a".into(),
        revision,
        received_us: signet_store::conformance::T0,
        ptr: RecordPtr { frame_pos: position, index: 0 },
        event: normalize(LogKind::SignIn, signin_json(id, 1, "alice@contoso.com", "Outlook", code, "").as_bytes())
            .unwrap(),
    };
    let batch: Vec<StoredEvent> = (0..50).map(|i| event(&format!("e{i}"), 0, 1, 10 + i)).collect();
    store.apply(&batch, 100).unwrap();
    store.apply(&batch, 100).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 50);
    let revised = vec![event("e7", 50126, 2, 200)];
    store.apply(&revised, 300).unwrap();
    store.apply(&revised, 300).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &Expr::True).unwrap(), 50);
    let failures = signet_query::native::filter(LogKind::SignIn, &[("status".into(), "failure".into())], 0).unwrap();
    assert_eq!(store.count("a", LogKind::SignIn, &failures).unwrap(), 1, "the latest revision, once");
    assert_eq!(store.revisions("a", LogKind::SignIn, "e7").unwrap().len(), 2);
    assert_eq!(store.applied_position().unwrap(), 300);
}
