//! `signet verify`: recomputes every Merkle tree from the event log and checks it against the
//! stored trees, the node's own signed heads and any heads published elsewhere. Read-only: it
//! works on a running server's data directory and never repairs anything.
//!
//! What each check catches (see `docs/trust.md`):
//! - frame checksums: bit rot, a byte edited without rewriting the frame;
//! - stored tree leaves: an event modified, removed, inserted or moved in a rewritten frame,
//!   named by leaf and log position;
//! - signed heads (local): the same when the tree files were rewritten too, and truncation;
//! - heads published outside the data directory: a roll-back or rewrite of the whole directory.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use signet_trust::merkle::{Frontier, Hash};
use signet_trust::{HeadSigner, PublicKey, SignedHead};

use crate::error::{Result, StoreError};
use crate::ledger::{default_key_path, leaf_of, org_dir_name, read_checkpoint, read_heads, trust_dir};
use crate::log::EventLog;

/// Leaves compared after a mismatch to tell a removal, insertion or move from an edit.
const LOOKAHEAD: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The key auditors pinned; default: the public half of the node's signing key.
    pub key: Option<PublicKey>,
    /// The node's signing key file, when not in the data directory.
    pub key_file: Option<PathBuf>,
    /// Heads kept outside the data directory (published copies, a head saved earlier), with
    /// where each came from.
    pub external_heads: Vec<(String, SignedHead)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An event's content differs from what was recorded.
    Modified,
    /// An event that was recorded is gone.
    Missing,
    /// An event is present that was never recorded there.
    Inserted,
    /// Recorded events appear in another order.
    Reordered,
    /// The log ends before events that were recorded.
    Truncated,
    /// The data directory is older than a head published outside it.
    RolledBack,
    /// A frame does not decode or its checksum fails.
    Corrupt,
    /// A head's signature does not verify, or was made by another key.
    BadSignature,
    /// Signed heads contradict each other.
    Forked,
    /// The query tables (the DuckDB projection) differ from what the log says.
    ProjectionDiffers,
    /// An archived part differs from its manifest, or its rows from the Merkle trees.
    ArchiveDiffers,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub org: Option<String>,
    /// Leaf index in the organisation's tree, when known.
    pub leaf: Option<u64>,
    /// Position in the event log, when known.
    pub log_position: Option<u64>,
    pub detail: String,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, org: Option<String>, detail: String) -> Problem {
        Problem { kind, org, leaf: None, log_position: None, detail }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OrgReport {
    pub events: u64,
    pub heads_checked: u64,
    pub latest_signed_size: u64,
    /// Events after the latest signed head: checked against the stored tree only.
    pub unsigned_tail: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub key_id: String,
    pub records: u64,
    pub orgs: BTreeMap<String, OrgReport>,
    /// Problems, most serious evidence first within an organisation, earliest leaf first.
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
}

/// Leaf hashes a tree file holds, read in order.
struct StoredLeaves {
    reader: Option<BufReader<File>>,
}

impl StoredLeaves {
    fn open(path: &Path) -> StoredLeaves {
        StoredLeaves { reader: File::open(path).ok().map(|f| BufReader::with_capacity(1 << 16, f)) }
    }

    fn next(&mut self) -> Option<Hash> {
        let reader = self.reader.as_mut()?;
        let mut hash = [0u8; 32];
        match reader.read_exact(&mut hash) {
            Ok(()) => Some(hash),
            Err(_) => {
                self.reader = None;
                None
            }
        }
    }
}

struct Mismatch {
    index: u64,
    log_position: u64,
    what: String,
    recomputed: Vec<Hash>,
    stored: Vec<Hash>,
}

struct Head {
    head: SignedHead,
    source: String,
    /// Kept outside the data directory.
    external: bool,
}

#[derive(Default)]
struct OrgCheck {
    frontier: Frontier,
    stored: Option<StoredLeaves>,
    stored_extra: u64,
    mismatch: Option<Mismatch>,
    /// Heads to check, ascending by size; `next_head` indexes the first not yet reached.
    heads: Vec<Head>,
    next_head: usize,
    /// Size of the last head that matched.
    last_good: u64,
    head_failed: bool,
    heads_checked: u64,
}

fn classify(m: &Mismatch) -> (ProblemKind, String) {
    let (r, s) = (&m.recomputed, &m.stored);
    let at = m.index;
    // Two recorded events that changed places.
    if let Some(j) = s.iter().position(|h| Some(h) == r.first()) {
        if r.get(j) == s.first() {
            return (ProblemKind::Reordered, format!("{} at leaf {at} was recorded as leaf {}", m.what, at + j as u64));
        }
    }
    // The log is the record shifted by one: one removed, or one added.
    if s.len() > 1 && r.first() == s.get(1) && r.get(1) == s.get(2) {
        return (ProblemKind::Missing, format!("the event recorded as leaf {at} is gone from the log"));
    }
    if r.len() > 1 && r.get(1) == s.first() && r.get(2) == s.get(1) {
        return (ProblemKind::Inserted, format!("{} at leaf {at} was never recorded there", m.what));
    }
    if let Some(j) = s.iter().position(|h| Some(h) == r.first()) {
        return (ProblemKind::Reordered, format!("{} at leaf {at} was recorded as leaf {}", m.what, at + j as u64));
    }
    if r.iter().any(|h| Some(h) == s.first()) {
        return (ProblemKind::Reordered, format!("the event recorded as leaf {at} appears later in the log"));
    }
    (ProblemKind::Modified, format!("{} at leaf {at} differs from what was recorded", m.what))
}

/// Verifies the data directory. Errors only when it cannot be read at all; everything wrong
/// with its contents is a [`Problem`] in the report.
pub fn verify_data_dir(data_dir: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let key_path = options.key_file.clone().unwrap_or_else(|| default_key_path(data_dir));
    let local_key = HeadSigner::load(&key_path).ok().map(|s| s.public());
    let key = match (options.key, local_key) {
        (Some(pinned), Some(local)) if pinned != local => {
            problems.push(Problem::new(
                ProblemKind::BadSignature,
                None,
                format!(
                    "the node's signing key ({}) is not the pinned key ({}): heads made by it are not trusted",
                    local.id(),
                    pinned.id()
                ),
            ));
            pinned
        }
        (Some(pinned), _) => pinned,
        (None, Some(local)) => local,
        (None, None) => {
            return Err(StoreError::Trust(format!(
                "no signing key at {} and no --key given: nothing to check signatures against",
                key_path.display()
            )))
        }
    };

    // Heads: local file, then external copies. Bad signatures are problems, not evidence.
    let mut orgs: BTreeMap<String, OrgCheck> = BTreeMap::new();
    let heads_path = trust_dir(data_dir).join("heads.jsonl");
    let mut local_latest: HashMap<String, (u64, Hash)> = HashMap::new();
    let mut candidates: Vec<Head> = Vec::new();
    for (head, offset, _) in read_heads(&heads_path)? {
        candidates.push(Head { head, source: format!("{} at byte {offset}", heads_path.display()), external: false });
    }
    let local_count = candidates.len();
    for (source, head) in &options.external_heads {
        candidates.push(Head { head: head.clone(), source: source.clone(), external: true });
    }
    for (i, candidate) in candidates.into_iter().enumerate() {
        let org = candidate.head.org.clone();
        if let Err(err) = candidate.head.verify(&key) {
            problems.push(Problem::new(
                ProblemKind::BadSignature,
                Some(org),
                format!("{} ({})", err, candidate.source),
            ));
            continue;
        }
        if i < local_count {
            let entry = local_latest.entry(org.clone()).or_insert((0, [0; 32]));
            if candidate.head.tree_size < entry.0 {
                problems.push(Problem::new(
                    ProblemKind::Forked,
                    Some(org.clone()),
                    format!(
                        "the heads file goes backwards: size {} after size {} ({})",
                        candidate.head.tree_size, entry.0, candidate.source
                    ),
                ));
            } else {
                *entry = (candidate.head.tree_size, candidate.head.root_hash);
            }
        }
        orgs.entry(org).or_default().heads.push(candidate);
    }
    for (org, check) in orgs.iter_mut() {
        check.heads.sort_by_key(|h| h.head.tree_size);
        for pair in check.heads.windows(2) {
            if pair[0].head.tree_size == pair[1].head.tree_size && pair[0].head.root_hash != pair[1].head.root_hash {
                problems.push(Problem::new(
                    ProblemKind::Forked,
                    Some(org.clone()),
                    format!(
                        "two signed heads of size {} disagree ({} and {})",
                        pair[0].head.tree_size, pair[0].source, pair[1].source
                    ),
                ));
            }
        }
    }

    // The log, recomputed.
    let log = EventLog::open_read_only(data_dir.join("log"));
    let log = match log {
        Ok(log) => Some(log),
        Err(StoreError::Corrupt { path, offset, reason }) => {
            problems.push(Problem::new(ProblemKind::Corrupt, None, format!("{path} at byte {offset}: {reason}")));
            None
        }
        Err(other) => return Err(other),
    };
    let mut records = 0u64;
    if let Some(log) = &log {
        if let Some(damage) = log.tail_damage() {
            notes.push(format!(
                "the log ends with {} damaged bytes at position {} ({}): an interrupted write, never acknowledged; \
                 the server cuts it off at its next start",
                damage.bytes, damage.position, damage.reason
            ));
        }
        let trees = trust_dir(data_dir).join("trees");
        if log.start() > crate::log::FIRST_FRAME {
            cut_prefix(log, &trees, &mut orgs, &mut problems, &mut notes)?;
        }
        let mut buf = Vec::new();
        let scanned = log.scan(0, 20_000, |batch, _| {
            for (ptr, record) in batch {
                records += 1;
                let leaf = leaf_of(&record, &mut buf);
                let check = orgs.entry(record.org.clone()).or_default();
                let stored = check
                    .stored
                    .get_or_insert_with(|| {
                        StoredLeaves::open(&trees.join(org_dir_name(&record.org)).join("level-00.bin"))
                    })
                    .next();
                let index = check.frontier.size();
                check.frontier.push(leaf);
                match &mut check.mismatch {
                    Some(m) => {
                        if m.recomputed.len() < LOOKAHEAD {
                            m.recomputed.push(leaf);
                        }
                        if let (Some(s), true) = (stored, m.stored.len() < LOOKAHEAD) {
                            m.stored.push(s);
                        }
                    }
                    None => {
                        if let Some(s) = stored.filter(|s| *s != leaf) {
                            check.mismatch = Some(Mismatch {
                                index,
                                log_position: ptr.frame_pos,
                                what: format!("{} {} (revision {})", record.kind.as_str(), record.id, record.revision),
                                recomputed: vec![leaf],
                                stored: vec![s],
                            });
                        }
                    }
                }
                check_heads(check, &record.org, ptr.frame_pos, &mut problems);
            }
            Ok(())
        });
        if let Err(StoreError::Corrupt { path, offset, reason }) = scanned {
            problems.push(Problem::new(ProblemKind::Corrupt, None, format!("{path} at byte {offset}: {reason}")));
        } else {
            scanned?;
        }
    }

    let checkpoint = read_checkpoint(&trust_dir(data_dir).join("checkpoint.json")).ok().flatten();
    // A running server keeps extending its trees past the log as this check read it.
    let live = data_dir_in_use(data_dir);
    let clean = checkpoint.as_ref().filter(|c| c.clean_shutdown && !live);
    let mut reports = BTreeMap::new();
    for (org, check) in orgs.iter_mut() {
        let size = check.frontier.size();
        if let Some(checkpoint) = clean {
            let recorded = checkpoint.trees.get(org).copied().unwrap_or(0);
            if size > recorded && check.mismatch.is_none() {
                problems.push(Problem {
                    kind: ProblemKind::Inserted,
                    org: Some(org.clone()),
                    leaf: Some(recorded),
                    log_position: None,
                    detail: format!(
                        "{} event(s) of {org} follow leaf {recorded}, where the node's last clean shutdown left the log",
                        size - recorded
                    ),
                });
            }
        }
        if let Some(stored) = check.stored.as_mut() {
            while stored.next().is_some() {
                check.stored_extra += 1;
            }
        } else if log.is_some() {
            let mut stored =
                StoredLeaves::open(&trust_dir(data_dir).join("trees").join(org_dir_name(org)).join("level-00.bin"));
            while stored.next().is_some() {
                check.stored_extra += 1;
            }
        }
        if let Some(m) = &check.mismatch {
            let (kind, detail) = classify(m);
            problems.push(Problem {
                kind,
                org: Some(org.clone()),
                leaf: Some(m.index),
                log_position: Some(m.log_position),
                detail,
            });
        }
        if check.stored_extra > 0 && log.is_some() && !live {
            problems.push(Problem {
                kind: ProblemKind::Truncated,
                org: Some(org.clone()),
                leaf: Some(size),
                log_position: None,
                detail: format!(
                    "the log holds {size} events of {org}, the stored tree held {} more",
                    check.stored_extra
                ),
            });
        }
        let local_latest_size = local_latest.get(org).map_or(0, |(s, _)| *s);
        // Only the first head beyond the log is reported: the rest say the same.
        if let Some(head) = check.heads[check.next_head..].first().filter(|_| log.is_some()) {
            let kind = if head.external && head.head.tree_size > local_latest_size {
                ProblemKind::RolledBack
            } else {
                ProblemKind::Truncated
            };
            problems.push(Problem {
                kind,
                org: Some(org.clone()),
                leaf: Some(size),
                log_position: None,
                detail: format!(
                    "the log holds {size} events of {org}, a head signed at {} covers {} ({})",
                    head.head.timestamp.as_deref().unwrap_or("?"),
                    head.head.tree_size,
                    head.source
                ),
            });
        }
        let latest_signed = check.heads.iter().map(|h| h.head.tree_size).max().unwrap_or(0);
        reports.insert(
            org.clone(),
            OrgReport {
                events: size,
                heads_checked: check.heads_checked,
                latest_signed_size: latest_signed,
                unsigned_tail: size.saturating_sub(latest_signed),
            },
        );
    }
    for (org, report) in &reports {
        if report.unsigned_tail > 0 {
            notes.push(format!(
                "{org}: the last {} events are not covered by a signed head yet (checked against the stored tree only)",
                report.unsigned_tail
            ));
        }
    }
    problems.sort_by_key(|p| (p.org.clone(), p.leaf.unwrap_or(u64::MAX)));
    Ok(VerifyReport { ok: problems.is_empty(), key_id: key.id(), records, orgs: reports, problems, notes })
}

/// Whether a server holds the data directory right now (its log may grow meanwhile).
fn data_dir_in_use(data_dir: &Path) -> bool {
    match std::fs::OpenOptions::new().write(true).open(data_dir.join("LOCK")) {
        Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Compares the recomputed root with every head whose size the frontier just reached.
/// The leaves of records whose log segments were cut after archiving: taken from the stored
/// trees and checked against the signed heads here (the archive check compares each archived
/// record with them).
fn cut_prefix(
    log: &EventLog,
    trees: &Path,
    orgs: &mut BTreeMap<String, OrgCheck>,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let first_address = log.start() << 8;
    let Ok(entries) = std::fs::read_dir(trees) else { return Ok(()) };
    for entry in entries {
        let dir = entry.map_err(crate::error::io_err(trees))?.path();
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let org = match name.strip_prefix("x-") {
            Some(encoded) => match hex::decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(org) => org,
                None => continue,
            },
            None => name,
        };
        let addresses = std::fs::read(dir.join("addr.bin")).unwrap_or_default();
        let prefix = addresses
            .chunks_exact(8)
            .take_while(|a| u64::from_le_bytes((*a).try_into().expect("8 bytes")) < first_address)
            .count() as u64;
        if prefix == 0 {
            continue;
        }
        let check = orgs.entry(org.clone()).or_default();
        check.stored.get_or_insert_with(|| StoredLeaves::open(&dir.join("level-00.bin")));
        for _ in 0..prefix {
            match check.stored.as_mut().and_then(StoredLeaves::next) {
                Some(leaf) => check.frontier.push(leaf),
                None => {
                    problems.push(Problem::new(
                        ProblemKind::Truncated,
                        Some(org.clone()),
                        format!("the stored tree ends before the {prefix} leaves that precede the cut event log"),
                    ));
                    break;
                }
            }
            check_heads(check, &org, 0, problems);
        }
        notes.push(format!(
            "{org}: the first {prefix} events' log segments were cut (their records archived, or deleted at the end \
             of their retention); their leaves are checked against the signed heads, and the archive check compares \
             every archived record with them"
        ));
    }
    Ok(())
}

fn check_heads(check: &mut OrgCheck, org: &str, log_position: u64, problems: &mut Vec<Problem>) {
    let size = check.frontier.size();
    while let Some(head) = check.heads.get(check.next_head) {
        if head.head.tree_size > size {
            break;
        }
        check.next_head += 1;
        if head.head.tree_size < size {
            continue; // size 0 heads, duplicates
        }
        check.heads_checked += 1;
        if check.frontier.root() == head.head.root_hash {
            check.last_good = size;
        } else if !check.head_failed {
            check.head_failed = true;
            problems.push(Problem {
                kind: ProblemKind::Modified,
                org: Some(org.to_string()),
                leaf: None,
                log_position: Some(log_position),
                detail: format!(
                    "the log differs from the head signed at {} over {} events ({}): between leaves {} and {} \
                     events were modified, removed, inserted or reordered",
                    head.head.timestamp.as_deref().unwrap_or("?"),
                    head.head.tree_size,
                    head.source,
                    check.last_good,
                    size
                ),
            });
        }
    }
}

/// Rebuilds the DuckDB projection from the log in a temporary file and compares every table
/// with the live one, row by row. Needs the data directory to itself (stop the server).
pub fn verify_projection(data_dir: &Path, archive_dir: &Path) -> Result<Vec<Problem>> {
    let _lock = crate::lock_data_dir(data_dir)?;
    let live_path = data_dir.join("signet.duckdb");
    if !live_path.exists() {
        return Ok(Vec::new());
    }
    let scratch = tempfile::Builder::new()
        .prefix("signet-verify")
        .tempdir_in(data_dir)
        .map_err(crate::error::io_err(data_dir))?;
    let fresh_path = scratch.path().join("fresh.duckdb");
    let log_start = {
        let log = EventLog::open_read_only(data_dir.join("log"))?;
        let fresh = crate::duck::DuckStore::open(&fresh_path)?;
        crate::replay(&log, &fresh)?;
        // What expiry moved to the archive is not in the live tables either (restored days are).
        let parts: Vec<crate::ArchivedPart> =
            crate::archive::Archive::new(archive_dir).parts()?.into_iter().filter(|p| p.queried).collect();
        let mut groups: BTreeMap<(String, u8), Vec<crate::ArchivedPart>> = BTreeMap::new();
        for part in parts {
            groups.entry((part.org.clone(), part.kind.code())).or_default().push(part);
        }
        for ((org, _), parts) in &groups {
            let from = parts.iter().map(|p| p.day_us).min().unwrap_or(0);
            let to = parts.iter().map(|p| p.day_us).max().unwrap_or(0) + 86_400_000_000;
            crate::EventStore::expire(&fresh, org, parts[0].kind, from, to, parts)?;
        }
        log.start()
    };
    let live = crate::duck::DuckStore::open(&live_path)?;
    let mut problems = Vec::new();
    for diff in live.differences(&fresh_path, log_start)? {
        problems.push(Problem::new(
            ProblemKind::ProjectionDiffers,
            None,
            format!(
                "table {}: {} row(s) not derived from the log, {} row(s) of the log missing (e.g. {}); \
                 delete signet.duckdb while Signet is stopped to rebuild it from the log",
                diff.table,
                diff.only_here,
                diff.only_there,
                diff.ids.join(", ")
            ),
        ));
    }
    Ok(problems)
}

/// `verify --projection` with the ClickHouse store: what ClickHouse holds for this node against
/// its event log (needs the node stopped). The problems, and a line saying what was compared.
pub fn verify_clickhouse_projection(
    data_dir: &Path,
    store: &crate::clickhouse::ClickHouseStore,
) -> Result<(Vec<Problem>, String)> {
    let _lock = crate::lock_data_dir(data_dir)?;
    let log = EventLog::open_read_only(data_dir.join("log"))?;
    store.verify_against_log(&log)
}

/// Reads heads from files or directories (`heads.jsonl` inside), for `--heads` / `--since`.
pub fn load_external_heads(paths: &[PathBuf]) -> Result<Vec<(String, SignedHead)>> {
    let mut out = Vec::new();
    for path in paths {
        let file = if path.is_dir() { path.join("heads.jsonl") } else { path.clone() };
        let text = std::fs::read_to_string(&file).map_err(crate::error::io_err(&file))?;
        let trimmed = text.trim();
        if trimmed.starts_with('{') && !trimmed.contains('\n') {
            let head: SignedHead = serde_json::from_str(trimmed).map_err(|e| StoreError::Corrupt {
                path: file.display().to_string(),
                offset: 0,
                reason: format!("not a signed head: {e}"),
            })?;
            out.push((file.display().to_string(), head));
            continue;
        }
        for (head, offset, _) in read_heads(&file)? {
            out.push((format!("{} at byte {offset}", file.display()), head));
        }
    }
    Ok(out)
}
