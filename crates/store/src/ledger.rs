//! The tamper-evidence ledger of a data directory: one append-only Merkle tree per
//! organisation over the events of the log (in log order), signed tree heads, and their
//! publication.
//!
//! ```text
//! DATA/trust/signing.key        Ed25519 key (0600; its place is configurable)
//! DATA/trust/heads.jsonl        every signed head, one JSON object per line, fsync'd
//! DATA/trust/checkpoint.json    log position and tree sizes the tree files are synced to
//! DATA/trust/trees/<org>/       the organisation's tree (see `signet_trust::tree`)
//! ```
//! The trees are derived from the log: they are extended after every commit (after the fsync,
//! so a tree never holds an unacknowledged event), synced when heads are signed, and on open
//! cut back to the checkpoint and extended from the log. A head is only ever signed over a tree
//! whose last signed head still matches it: a ledger that finds its log contradicting its own
//! heads stops signing (it would launder the change) and says so.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use signet_trust::bundle::{ConsistencyBundle, InclusionBundle, InclusionProof};
use signet_trust::{merkle, DiskTree, HeadSigner, PublicKey, SignedHead};
use tracing::{error, info, warn};

use crate::error::{io_err, Result, StoreError};
use crate::log::{EventLog, LogRecord, RecordPtr};

/// Where the ledger keeps its key and publishes its heads.
#[derive(Clone, Debug, Default)]
pub struct TrustConfig {
    /// The signing key file; default `DATA/trust/signing.key`. Created when absent.
    pub signing_key: Option<PathBuf>,
    /// A directory (ideally on another machine's mount) where every head is appended to
    /// `heads.jsonl` as it is signed.
    pub publish_dir: Option<PathBuf>,
    /// How often heads are signed while running (None: only at shutdown and on demand).
    pub head_interval: Option<std::time::Duration>,
}

/// Something that receives heads as they are signed (a webhook, a test).
pub type HeadSink = Arc<dyn Fn(&[SignedHead]) + Send + Sync>;

/// A record's address as a tree stores it: frame position and index, packed and ascending.
pub fn leaf_address(ptr: RecordPtr) -> u64 {
    (ptr.frame_pos << 8) | u64::from(ptr.index)
}

/// The canonical bytes of a record and their leaf hash.
pub fn leaf_of(record: &LogRecord, buf: &mut Vec<u8>) -> merkle::Hash {
    buf.clear();
    record.encode(buf);
    merkle::leaf_hash(buf)
}

pub fn trust_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("trust")
}

pub fn default_key_path(data_dir: &Path) -> PathBuf {
    trust_dir(data_dir).join("signing.key")
}

/// An organisation id as a directory name: itself when plainly safe, else hex.
pub fn org_dir_name(org: &str) -> String {
    let plain = !org.is_empty()
        && org.len() <= 64
        && !org.starts_with('.')
        && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        org.to_string()
    } else {
        format!("x-{}", hex::encode(org))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub position: u64,
    pub trees: BTreeMap<String, u64>,
    /// Written by a clean shutdown, after the final heads: the log must not grow past this
    /// point until the node starts again (which clears the flag first).
    #[serde(default)]
    pub clean_shutdown: bool,
}

/// Where each head of an organisation sits in the heads file.
#[derive(Clone, Copy, Debug)]
struct HeadRef {
    tree_size: u64,
    offset: u64,
    len: u32,
}

struct State {
    trees: BTreeMap<String, DiskTree>,
    /// Log position the trees cover.
    position: u64,
    latest: BTreeMap<String, SignedHead>,
    heads: BTreeMap<String, Vec<HeadRef>>,
    heads_file: File,
    heads_len: u64,
    /// Why the ledger refuses to sign, if it does.
    halted: Option<String>,
}

/// Summary for the status API and metrics.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerStatus {
    pub public_key: String,
    pub key_id: String,
    pub position: u64,
    pub orgs: BTreeMap<String, OrgStatus>,
    /// Set when the ledger found its log contradicting its own signed heads.
    pub halted: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrgStatus {
    pub tree_size: u64,
    pub signed_size: u64,
    pub last_signed: Option<String>,
}

pub struct Ledger {
    dir: PathBuf,
    /// How the previous run ended: `Some(true)` clean, `Some(false)` crash or kill, `None` first start.
    previous_shutdown: Option<bool>,
    signer: HeadSigner,
    publish_dir: Option<PathBuf>,
    sinks: RwLock<Vec<HeadSink>>,
    state: Mutex<State>,
}

pub(crate) fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            offset: 0,
            reason: e.to_string(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err(path)(err)),
    }
}

/// Writes a file atomically: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Reads a heads file: the heads with their places. A torn last line (no newline) is ignored.
pub fn read_heads(path: &Path) -> Result<Vec<(SignedHead, u64, u32)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_err(path)(err)),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io_err(path))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        if !line.trim().is_empty() {
            let head: SignedHead = serde_json::from_str(line.trim()).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                offset,
                reason: format!("not a signed head: {e}"),
            })?;
            out.push((head, offset, n as u32));
        }
        offset += n as u64;
    }
    Ok(out)
}

/// The shortest time between two heads of one organisation signed on demand.
pub const ON_DEMAND_GAP_MS: i64 = 1000;

fn now_ms() -> i64 {
    signet_model::time::now_micros() / 1000
}

impl Ledger {
    /// Opens the ledger of `data_dir`, bringing the trees up to the log's end.
    pub fn open(data_dir: &Path, log: &EventLog, config: &TrustConfig) -> Result<Ledger> {
        let dir = trust_dir(data_dir);
        fs::create_dir_all(dir.join("trees")).map_err(io_err(&dir))?;
        let key_path = config.signing_key.clone().unwrap_or_else(|| default_key_path(data_dir));
        let signer = HeadSigner::load_or_create(&key_path).map_err(trust_err)?;

        let heads_path = dir.join("heads.jsonl");
        let heads = read_heads(&heads_path)?;
        let heads_file = OpenOptions::new().create(true).append(true).open(&heads_path).map_err(io_err(&heads_path))?;
        let heads_len = heads.last().map_or(0, |(_, offset, len)| offset + u64::from(*len));
        if heads_file.metadata().map_err(io_err(&heads_path))?.len() > heads_len {
            warn!(path = %heads_path.display(), "cutting a torn last line off the heads file");
            heads_file.set_len(heads_len).map_err(io_err(&heads_path))?;
        }
        let mut latest = BTreeMap::new();
        let mut refs: BTreeMap<String, Vec<HeadRef>> = BTreeMap::new();
        for (head, offset, len) in heads {
            refs.entry(head.org.clone()).or_default().push(HeadRef { tree_size: head.tree_size, offset, len });
            latest.insert(head.org.clone(), head);
        }

        let checkpoint = read_checkpoint(&dir.join("checkpoint.json"))?;
        let previous_shutdown = checkpoint.as_ref().map(|c| c.clean_shutdown);
        let checkpoint = checkpoint.unwrap_or_default();
        let mut trees = BTreeMap::new();
        let mut position = checkpoint.position.min(log.end());
        let mut opened = true;
        for (org, &size) in &checkpoint.trees {
            match DiskTree::open(&dir.join("trees").join(org_dir_name(org)), size) {
                Ok(tree) => {
                    trees.insert(org.clone(), tree);
                }
                Err(err) => {
                    warn!(org = %org, error = %err, "Merkle tree files are behind their checkpoint; rebuilding every tree from the log");
                    opened = false;
                    break;
                }
            }
        }
        // The oldest log segments may have been cut (their records are in the archive): the trees
        // cannot be rebuilt from the log then, nor extended from before its start.
        let cut = log.start() > crate::log::FIRST_FRAME;
        if cut && (!opened || position < log.start() - crate::log::FIRST_FRAME) {
            return Err(StoreError::Trust(format!(
                "the Merkle trees in {} are behind the event log's start ({}): the log's oldest segments were \
                 cut after archiving, so the trees cannot be rebuilt from it; restore {} from a backup",
                dir.display(),
                log.start(),
                dir.join("trees").display()
            )));
        }
        if !opened || checkpoint.position > log.end() {
            trees.clear();
            DiskTree::remove(&dir.join("trees")).map_err(trust_err)?;
            fs::create_dir_all(dir.join("trees")).map_err(io_err(&dir))?;
            position = 0;
        }
        let state = State { trees, position, latest, heads: refs, heads_file, heads_len, halted: None };
        let ledger = Ledger {
            previous_shutdown,
            dir,
            signer,
            publish_dir: config.publish_dir.clone(),
            sinks: RwLock::new(Vec::new()),
            state: Mutex::new(state),
        };
        let mut guard = ledger.state.lock();
        let state = &mut *guard;
        let mut appended = 0u64;
        let mut buf = Vec::new();
        log.scan(position, 20_000, |batch, through| {
            appended += batch.len() as u64;
            let leaves = batch.iter().map(|(p, r)| (*p, r.org.as_str(), leaf_of(r, &mut buf)));
            ledger.extend(state, leaves, through)
        })?;
        state.position = state.position.max(position);
        for (org, head) in &state.latest {
            let problem = match state.trees.get(org) {
                None => {
                    Some(format!("the log holds no events of {org}, its last signed head covers {}", head.tree_size))
                }
                Some(tree) if tree.size() < head.tree_size => Some(format!(
                    "the log holds {} events of {org}, its last signed head covers {}",
                    tree.size(),
                    head.tree_size
                )),
                Some(tree) => match tree.root(head.tree_size) {
                    Ok(root) if root == head.root_hash => None,
                    Ok(_) => {
                        Some(format!("the log of {org} does not match its signed head at size {}", head.tree_size))
                    }
                    Err(err) => Some(err.to_string()),
                },
            };
            if let Some(problem) = problem {
                error!(problem = %problem, "the event log contradicts a signed tree head; no new heads will be signed: run `signet verify`");
                state.halted.get_or_insert(problem);
            }
        }
        info!(orgs = state.trees.len(), replayed = appended, key_id = %ledger.signer.public().id(), "ledger ready");
        // Running from here on: a crash must not look like a clean shutdown.
        ledger.write_checkpoint(state, false)?;
        drop(guard);
        Ok(ledger)
    }

    /// How the previous run ended: `Some(true)` clean shutdown, `Some(false)` crash or kill,
    /// `None` when this is the first start.
    pub fn previous_shutdown_clean(&self) -> Option<bool> {
        self.previous_shutdown
    }

    /// Adds a receiver of newly signed heads.
    pub fn add_sink(&self, sink: HeadSink) {
        self.sinks.write().push(sink);
    }

    pub fn public_key(&self) -> PublicKey {
        self.signer.public()
    }

    /// Adds leaves (where each record is, its organisation, its leaf hash) to the trees.
    fn extend<'a>(
        &self,
        state: &mut State,
        leaves: impl Iterator<Item = (RecordPtr, &'a str, merkle::Hash)>,
        through: u64,
    ) -> Result<()> {
        let mut by_org: BTreeMap<&str, Vec<(merkle::Hash, u64)>> = BTreeMap::new();
        for (ptr, org, leaf) in leaves {
            by_org.entry(org).or_default().push((leaf, leaf_address(ptr)));
        }
        for (org, leaves) in by_org {
            if !state.trees.contains_key(org) {
                let tree = DiskTree::open(&self.dir.join("trees").join(org_dir_name(org)), 0).map_err(trust_err)?;
                state.trees.insert(org.to_string(), tree);
            }
            let tree = state.trees.get_mut(org).expect("inserted above");
            tree.append(&leaves).map_err(trust_err)?;
        }
        state.position = through;
        Ok(())
    }

    /// Extends the trees with a commit that is durable in the log: its records, their leaf
    /// hashes ([`leaf_of`], computed as the log wrote them) and where they are.
    pub fn append(&self, records: &[LogRecord], leaves: &[merkle::Hash], pointers: &[RecordPtr], through: u64) {
        let mut state = self.state.lock();
        let leaves =
            pointers.iter().zip(records).zip(leaves).map(|((ptr, record), leaf)| (*ptr, record.org.as_str(), *leaf));
        if let Err(err) = self.extend(&mut state, leaves, through) {
            error!(error = %err, "extending the Merkle trees failed; no new heads until restart (the log is intact)");
            state.halted.get_or_insert(format!("extending the Merkle trees failed: {err}"));
        }
    }

    /// Signs a head for every organisation whose tree grew (or only `only`), records them,
    /// syncs the trees and the checkpoint, and publishes. Returns the new heads.
    pub fn sign_heads(&self, only: Option<&str>) -> Result<Vec<SignedHead>> {
        let new = {
            let mut state = self.state.lock();
            if let Some(reason) = &state.halted {
                return Err(StoreError::Trust(format!("signing is halted: {reason}")));
            }
            let mut new = Vec::new();
            for (org, tree) in &state.trees {
                if only.is_some_and(|o| o != org) {
                    continue;
                }
                let last = state.latest.get(org);
                if tree.size() == 0 || last.is_some_and(|h| h.tree_size == tree.size()) {
                    continue;
                }
                let root = tree.root(tree.size()).map_err(trust_err)?;
                let timestamp = now_ms().max(last.map_or(0, |h| h.timestamp_ms + 1));
                new.push(self.signer.sign(org, tree.size(), root, timestamp));
            }
            if !new.is_empty() {
                let mut lines = String::new();
                for head in &new {
                    lines.push_str(&head.to_line());
                    lines.push('\n');
                }
                let path = self.dir.join("heads.jsonl");
                state.heads_file.write_all(lines.as_bytes()).map_err(io_err(&path))?;
                state.heads_file.sync_data().map_err(io_err(&path))?;
                let mut offset = state.heads_len;
                for head in &new {
                    let len = head.to_line().len() as u32 + 1;
                    state.heads.entry(head.org.clone()).or_default().push(HeadRef {
                        tree_size: head.tree_size,
                        offset,
                        len,
                    });
                    offset += u64::from(len);
                    state.latest.insert(head.org.clone(), head.clone());
                }
                state.heads_len = offset;
            }
            self.write_checkpoint(&state, false)?;
            new
        };
        if !new.is_empty() {
            self.publish(&new);
        }
        Ok(new)
    }

    /// Syncs the trees and records how far they reach.
    fn write_checkpoint(&self, state: &State, clean_shutdown: bool) -> Result<()> {
        for tree in state.trees.values() {
            tree.sync().map_err(trust_err)?;
        }
        let checkpoint = Checkpoint {
            position: state.position,
            trees: state.trees.iter().map(|(org, tree)| (org.clone(), tree.size())).collect(),
            clean_shutdown,
        };
        write_atomic(&self.dir.join("checkpoint.json"), &serde_json::to_vec(&checkpoint).expect("serialises"))
    }

    /// Signs the final heads and marks the shutdown clean (after the write path stopped).
    pub fn close(&self) -> Result<()> {
        self.sign_heads(None)?;
        let state = self.state.lock();
        self.write_checkpoint(&state, true)
    }

    fn publish(&self, heads: &[SignedHead]) {
        if let Some(dir) = &self.publish_dir {
            let path = dir.join("heads.jsonl");
            let result = fs::create_dir_all(dir)
                .and_then(|_| OpenOptions::new().create(true).append(true).open(&path))
                .and_then(|mut file| {
                    let mut lines = String::new();
                    for head in heads {
                        lines.push_str(&head.to_line());
                        lines.push('\n');
                    }
                    file.write_all(lines.as_bytes())?;
                    file.sync_data()
                });
            if let Err(err) = result {
                error!(path = %path.display(), error = %err, "publishing signed heads failed");
            }
        }
        for sink in self.sinks.read().iter() {
            sink(heads);
        }
    }

    /// The latest signed head of an organisation.
    pub fn latest_head(&self, org: &str) -> Option<SignedHead> {
        self.state.lock().latest.get(org).cloned()
    }

    /// The latest head, signing a new one first if the tree grew since, but at most one
    /// on-demand head per organisation per [`ON_DEMAND_GAP_MS`]: proof requests cannot turn
    /// into a signature and an fsync each.
    pub fn current_head(&self, org: &str) -> Result<Option<SignedHead>> {
        let sign = {
            let state = self.state.lock();
            let size = state.trees.get(org).map_or(0, DiskTree::size);
            let latest = state.latest.get(org);
            size > latest.map_or(0, |h| h.tree_size)
                && latest.is_none_or(|h| now_ms() - h.timestamp_ms >= ON_DEMAND_GAP_MS)
        };
        if sign {
            self.sign_heads(Some(org))?;
        }
        Ok(self.latest_head(org))
    }

    /// Syncs the trees and writes the checkpoint; returns the log position they cover (a
    /// restart extends them from there).
    pub fn sync(&self) -> Result<u64> {
        let state = self.state.lock();
        self.write_checkpoint(&state, false)?;
        Ok(state.position)
    }

    /// The leaf index of the record at `ptr` in its organisation's tree.
    pub fn leaf_index(&self, org: &str, ptr: RecordPtr) -> Result<Option<u64>> {
        let state = self.state.lock();
        let Some(tree) = state.trees.get(org) else { return Ok(None) };
        tree.index_of(leaf_address(ptr)).map_err(trust_err)
    }

    /// The signed head of an organisation at exactly `tree_size`.
    pub fn head_at(&self, org: &str, tree_size: u64) -> Result<Option<SignedHead>> {
        let state = self.state.lock();
        let Some(refs) = state.heads.get(org) else { return Ok(None) };
        let Some(head_ref) = refs.iter().rev().find(|r| r.tree_size == tree_size) else { return Ok(None) };
        let path = self.dir.join("heads.jsonl");
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut bytes = vec![0u8; head_ref.len as usize];
        file.read_exact_at(&mut bytes, head_ref.offset).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            offset: head_ref.offset,
            reason: e.to_string(),
        })
    }

    /// Heads of an organisation with a tree size of at least `from_size`, oldest first (at most `limit`).
    pub fn heads_since(&self, org: &str, from_size: u64, limit: usize) -> Result<Vec<SignedHead>> {
        let sizes: Vec<u64> = {
            let state = self.state.lock();
            state.heads.get(org).map_or_else(Vec::new, |refs| {
                refs.iter().filter(|r| r.tree_size >= from_size).take(limit).map(|r| r.tree_size).collect()
            })
        };
        let mut out = Vec::with_capacity(sizes.len());
        for size in sizes {
            out.extend(self.head_at(org, size)?);
        }
        Ok(out)
    }

    /// The inclusion proof of the record at `ptr` under `head` (which must cover it).
    pub fn inclusion(&self, record: &LogRecord, ptr: RecordPtr, head: &SignedHead) -> Result<Option<InclusionBundle>> {
        let state = self.state.lock();
        let Some(tree) = state.trees.get(&head.org) else { return Ok(None) };
        let Some(index) = tree.index_of(leaf_address(ptr)).map_err(trust_err)? else { return Ok(None) };
        if index >= head.tree_size {
            return Ok(None);
        }
        let audit_path = tree.inclusion_path(index, head.tree_size).map_err(trust_err)?;
        let mut bytes = Vec::with_capacity(record.encoded_len());
        record.encode(&mut bytes);
        Ok(Some(InclusionBundle {
            head: head.clone(),
            proof: InclusionProof {
                leaf_index: index,
                record: base64::engine::general_purpose::STANDARD.encode(&bytes),
                audit_path,
            },
        }))
    }

    /// The consistency proof from the tree of `first_size` leaves to the signed head `second`
    /// (with the signed head at `first_size`, when there is one).
    pub fn consistency(&self, first_size: u64, second: SignedHead) -> Result<ConsistencyBundle> {
        let first = self.head_at(&second.org, first_size)?;
        let state = self.state.lock();
        let tree = state
            .trees
            .get(&second.org)
            .ok_or_else(|| StoreError::Trust(format!("no tree for organisation {}", second.org)))?;
        let proof = tree.consistency_proof(first_size, second.tree_size).map_err(trust_err)?;
        Ok(ConsistencyBundle { first_size, first, second, proof })
    }

    pub fn status(&self) -> LedgerStatus {
        let state = self.state.lock();
        LedgerStatus {
            public_key: self.signer.public().to_string(),
            key_id: self.signer.public().id(),
            position: state.position,
            orgs: state
                .trees
                .iter()
                .map(|(org, tree)| {
                    let head = state.latest.get(org);
                    (
                        org.clone(),
                        OrgStatus {
                            tree_size: tree.size(),
                            signed_size: head.map_or(0, |h| h.tree_size),
                            last_signed: head.and_then(|h| h.timestamp.clone()),
                        },
                    )
                })
                .collect(),
            halted: state.halted.clone(),
        }
    }
}

pub(crate) fn trust_err(err: signet_trust::TrustError) -> StoreError {
    StoreError::Trust(err.to_string())
}
