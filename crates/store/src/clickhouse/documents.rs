//! Accounts, keys and settings the nodes share: versioned documents in `signet_documents`
//! (see `signet_server::shared`); and entries shared one at a time in `signet_entries` (the
//! users directory).

use serde_json::json;

use super::{int_of, ClickHouseStore, DIALECT};
use crate::error::Result;

impl ClickHouseStore {
    /// The latest version of a shared document (accounts, settings): (version, content).
    pub fn load_document(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        self.ensure_ready()?;
        let rows = self.query_json(&format!(
            "SELECT version, body FROM signet_documents FINAL WHERE name = {} ORDER BY version DESC, node ASC LIMIT 1",
            DIALECT.quote_str(name)
        ))?;
        Ok(rows.first().map(|row| (int_of(&row[0]) as u64, row[1].as_str().unwrap_or_default().as_bytes().to_vec())))
    }

    /// The latest version of a shared document, `None` when never written.
    pub fn document_version(&self, name: &str) -> Result<Option<u64>> {
        self.ensure_ready()?;
        let rows = self.query_json(&format!(
            "SELECT max(version), count() FROM signet_documents WHERE name = {}",
            DIALECT.quote_str(name)
        ))?;
        Ok(rows.first().filter(|row| int_of(&row[1]) > 0).map(|row| int_of(&row[0]) as u64))
    }

    /// Writes `version` of a shared document unless it (or a later one) is there. ClickHouse
    /// has no transactions: two nodes that write the same version at once both insert it, and
    /// the row of the node whose name sorts first is the version (what [`Self::load_document`]
    /// reads); the other learns it lost here and applies its change again on top. (On a
    /// cluster, a write that replication has not brought to this server yet is not seen.)
    pub fn store_document(&self, name: &str, version: u64, body: &[u8]) -> Result<bool> {
        self.ensure_ready()?;
        let quoted = DIALECT.quote_str(name);
        if self.document_version(name)?.is_some_and(|v| v >= version) {
            return Ok(false);
        }
        let row = json!({
            "name": name,
            "version": version,
            "node": self.node,
            "body": String::from_utf8_lossy(body),
            "written_at": signet_model::time::now_micros(),
        });
        self.insert("signet_documents", &[row])?;
        let winner = self.query_json(&format!(
            "SELECT node FROM signet_documents WHERE name = {quoted} AND version = {version} ORDER BY node LIMIT 1"
        ))?;
        Ok(winner.first().and_then(|row| row[0].as_str()) == Some(self.node.as_str()))
    }
}

/// One shared entry (see [`ClickHouseStore::put_entries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedEntry {
    pub org: String,
    pub key: String,
    /// Of two entries of one key, the higher rank is the entry.
    pub rank: u64,
    /// When it was written (microseconds, the writing node's clock).
    pub written: i64,
    pub body: String,
}

impl ClickHouseStore {
    /// Appends entries of the set `name`, written now by this node.
    pub fn put_entries(&self, name: &str, entries: &[SharedEntry]) -> Result<()> {
        self.ensure_ready()?;
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                json!({ "name": name, "org": e.org, "key": e.key, "rank": e.rank, "written": e.written,
                        "node": self.node, "body": e.body })
            })
            .collect();
        self.insert("signet_entries", &rows)
    }

    /// Deletes the entries of `name` written before `before` (microseconds): a mutation
    /// ClickHouse runs in the background (on a cluster the table's replicas all apply it).
    pub fn forget_entries(&self, name: &str, before: i64) -> Result<()> {
        self.ensure_ready()?;
        let name = DIALECT.quote_str(name);
        let old =
            self.query_json(&format!("SELECT count() FROM signet_entries WHERE name = {name} AND written < {before}"))?;
        if old.first().and_then(|r| r.first()).map_or(0, int_of) == 0 {
            return Ok(());
        }
        self.execute(&format!("ALTER TABLE signet_entries DELETE WHERE name = {name} AND written < {before}"))
    }

    /// The entries of `name` written after `after` (microseconds), oldest first.
    pub fn entries_since(&self, name: &str, after: i64) -> Result<Vec<SharedEntry>> {
        self.ensure_ready()?;
        let rows = self.query_json(&format!(
            "SELECT org, key, rank, written, body FROM signet_entries WHERE name = {} AND written > {after} \
             ORDER BY written",
            DIALECT.quote_str(name)
        ))?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Ok(rows
            .iter()
            .map(|row| SharedEntry {
                org: text(&row[0]),
                key: text(&row[1]),
                rank: int_of(&row[2]) as u64,
                written: int_of(&row[3]),
                body: text(&row[4]),
            })
            .collect())
    }
}
