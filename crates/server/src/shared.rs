//! Accounts, API keys and settings shared by the nodes of a ClickHouse deployment.
//!
//! Each document (`auth/accounts.json`, `settings/audit.json`, `settings/retention.json`) is
//! versioned in ClickHouse's `signet_documents` (see
//! [`ClickHouseStore::store_document`]), and mirrored in the node's data directory under the same
//! name: a node that starts while ClickHouse is unreachable signs users in with the copy it last
//! saw (changes wait for ClickHouse). Nodes notice each other's changes within
//! [`REFRESH_INTERVAL`]. On a node that ran alone before, the first change writes its own file
//! into ClickHouse when ClickHouse has no such document yet; once ClickHouse has one, a node's
//! own different file is moved aside (`<name>.before-sharing`, with a warning), never merged.
//! Saved views (`console/views.json`) are such a document too. The users directory's entries
//! are shared one at a time instead ([`Documents::entries`], `signet_entries`).
//!
//! The accounts document holds password hashes (Argon2id) and key digests (SHA-256), as the
//! file does: give ClickHouse's `signet` user a password and keep its tables from other users.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use signet_auth::document::{Document, Documents, Entry, EntrySet, FileDocument};
use signet_store::clickhouse::{ClickHouseStore, SharedEntry};
use signet_store::StoreError;
use tracing::warn;

/// How often a node reads the shared documents' versions.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The documents of a deployment whose nodes share a ClickHouse database.
pub struct ClickHouseDocuments {
    store: Arc<ClickHouseStore>,
    data_dir: PathBuf,
}

impl ClickHouseDocuments {
    pub fn new(store: Arc<ClickHouseStore>, data_dir: PathBuf) -> ClickHouseDocuments {
        ClickHouseDocuments { store, data_dir }
    }
}

impl Documents for ClickHouseDocuments {
    fn document(&self, name: &str) -> Box<dyn Document> {
        Box::new(SharedDocument {
            store: self.store.clone(),
            name: name.to_string(),
            local: FileDocument::in_data_dir(&self.data_dir, name),
        })
    }

    fn entries(&self, name: &str) -> Option<Box<dyn EntrySet>> {
        Some(Box::new(SharedEntries { store: self.store.clone(), name: name.to_string() }))
    }
}

/// An [`EntrySet`] in ClickHouse's `signet_entries`.
struct SharedEntries {
    store: Arc<ClickHouseStore>,
    name: String,
}

impl EntrySet for SharedEntries {
    fn put(&self, entries: &[Entry]) -> std::io::Result<()> {
        let rows: Vec<SharedEntry> = entries
            .iter()
            .map(|e| SharedEntry {
                org: e.org.clone(),
                key: e.key.clone(),
                rank: e.rank,
                written: e.written,
                body: e.body.clone(),
            })
            .collect();
        off_runtime(|| self.store.put_entries(&self.name, &rows)).map_err(io)
    }

    fn since(&self, after: i64) -> std::io::Result<Vec<Entry>> {
        let rows = off_runtime(|| self.store.entries_since(&self.name, after)).map_err(io)?;
        Ok(rows
            .into_iter()
            .map(|e| Entry { org: e.org, key: e.key, rank: e.rank, written: e.written, body: e.body })
            .collect())
    }

    fn forget_before(&self, before: i64) -> std::io::Result<()> {
        off_runtime(|| self.store.forget_entries(&self.name, before)).map_err(io)
    }
}

struct SharedDocument {
    store: Arc<ClickHouseStore>,
    name: String,
    /// The copy in the data directory.
    local: FileDocument,
}

fn io(err: StoreError) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

/// Runs `call` (a blocking ClickHouse request) off the async runtime when called on it: the
/// account handlers change the directory from async code, and the blocking HTTP client must not
/// run there.
fn off_runtime<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return call();
    }
    std::thread::scope(|scope| scope.spawn(call).join()).unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl SharedDocument {
    /// Beside the local copy: the shared version it mirrors. Its absence marks a file this node
    /// wrote on its own before it shared the document.
    fn marker(&self) -> PathBuf {
        self.local.path().with_extension("json.shared-version")
    }

    /// Keeps `bytes` (version `version` of the shared document) as the local copy. When it came
    /// from another node (`theirs`), a different file this node had before sharing is moved
    /// aside first, not silently replaced.
    fn mirror(&self, version: u64, bytes: &[u8], theirs: bool) {
        let path = self.local.path();
        if theirs && !self.marker().exists() && std::fs::read(path).is_ok_and(|own| own != bytes) {
            let aside = path.with_extension("json.before-sharing");
            match std::fs::rename(path, &aside) {
                Ok(()) => warn!(
                    document = %self.name,
                    kept = %aside.display(),
                    "this node's own copy differs from the document the nodes share: the shared one is used, \
                     this node's is kept aside"
                ),
                Err(err) => warn!(document = %self.name, error = %err, "could not keep this node's own copy aside"),
            }
        }
        let kept = self.local.store(version, bytes).and_then(|_| std::fs::write(self.marker(), format!("{version}\n")));
        if let Err(err) = kept {
            warn!(document = %self.name, error = %err, "could not keep a local copy of a shared document");
        }
    }
}

impl Document for SharedDocument {
    fn load(&self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        match off_runtime(|| self.store.load_document(&self.name)) {
            Ok(Some((version, bytes))) => {
                self.mirror(version, &bytes, true);
                Ok(Some((version, bytes)))
            }
            // Not shared yet: this node's own file (version 0), which its first change shares.
            Ok(None) => Ok(self.local.load()?.map(|(_, bytes)| (0, bytes))),
            Err(StoreError::Unreachable(why)) => {
                warn!(document = %self.name, %why, "ClickHouse is unreachable: using the local copy of a shared document");
                self.local.load()
            }
            Err(err) => Err(io(err)),
        }
    }

    fn store(&self, version: u64, bytes: &[u8]) -> std::io::Result<bool> {
        if !off_runtime(|| self.store.store_document(&self.name, version, bytes)).map_err(io)? {
            return Ok(false);
        }
        self.mirror(version, bytes, false);
        Ok(true)
    }

    fn version(&self) -> std::io::Result<Option<u64>> {
        off_runtime(|| self.store.document_version(&self.name)).map_err(io)
    }

    fn describe(&self) -> String {
        format!("shared document {} (ClickHouse signet_documents)", self.name)
    }
}
