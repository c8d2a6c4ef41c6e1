//! Reading parts back, and checking the archive: every part against its manifest, the
//! organisation's Merkle tree and the signed head, and the object store's copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use signet_model::LogKind;
use signet_trust::PublicKey;

use super::{parse_manifest, sha256_file, Archive, Manifest, Remote};
use crate::error::Result;
use crate::ledger::{leaf_of, org_dir_name};
use crate::log::{LogRecord, RecordPtr};

/// One archived record read back.
pub struct ArchivedRecord {
    pub record: LogRecord,
    pub leaf: u64,
    pub latest: bool,
    /// Where the record was in the event log.
    pub position: RecordPtr,
}

/// Reads a part's records back, in row order.
pub fn read_part(kind: LogKind, path: &Path) -> Result<Vec<ArchivedRecord>> {
    read_part_where(kind, path, "true")
}

/// A part's records by their log position.
pub fn read_part_records(kind: LogKind, path: &Path) -> Result<std::collections::HashMap<(u64, u16), LogRecord>> {
    Ok(read_part_where(kind, path, "true")?
        .into_iter()
        .map(|r| ((r.position.frame_pos, r.position.index), r.record))
        .collect())
}

fn read_part_where(kind: LogKind, path: &Path, condition: &str) -> Result<Vec<ArchivedRecord>> {
    let conn = duckdb::Connection::open_in_memory()?;
    let literal = path.display().to_string().replace('\'', "''");
    let mut stmt = conn.prepare(&format!(
        "SELECT org_id, id, revision, content_hash, epoch_us(event_time), epoch_us(received_at), latest, leaf, body, \
         original, log_pos, log_idx FROM read_parquet('{literal}') WHERE {condition}"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(ArchivedRecord {
            record: LogRecord {
                kind,
                org: row.get(0)?,
                id: row.get(1)?,
                revision: row.get::<_, i64>(2)? as u32,
                content_hash: row.get::<_, i64>(3)? as u64,
                time_us: row.get(4)?,
                received_us: row.get(5)?,
                body: row.get::<_, Vec<u8>>(8)?.into(),
                original: row.get(9)?,
            },
            latest: row.get(6)?,
            leaf: row.get::<_, i64>(7)? as u64,
            position: RecordPtr { frame_pos: row.get::<_, i64>(10)? as u64, index: row.get::<_, i64>(11)? as u16 },
        });
    }
    Ok(out)
}

/// A problem found in the archive.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveProblem {
    pub part: String,
    pub detail: String,
}

/// Checks every part: its file against the manifest's SHA-256, the manifest's head against
/// `key`, and every row's recomputed Merkle leaf against the organisation's stored tree
/// (`DATA/trust/trees/<org>/level-00.bin`, itself checked against the log and the heads by
/// `signet verify`) and the manifest's leaves digest. With an object store, also that it holds
/// every part and manifest, byte for byte the same. Returns the parts checked and the problems.
pub fn verify_archive(archive: &Archive, data_dir: &Path, key: &PublicKey) -> Result<(u64, Vec<ArchiveProblem>)> {
    use std::os::unix::fs::FileExt;
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut trees: BTreeMap<String, Option<std::fs::File>> = BTreeMap::new();
    let manifests = archive.manifests()?;
    if let Some(remote) = archive.remote() {
        verify_remote(archive, remote, &manifests, &mut problems)?;
    }
    for (path, manifest) in manifests {
        checked += 1;
        let part = path.with_file_name(&manifest.file);
        let name = part.display().to_string();
        let mut problem = |detail: String| problems.push(ArchiveProblem { part: name.clone(), detail });
        let Some(kind) = LogKind::parse(&manifest.kind) else {
            problem(format!("unknown kind {:?}", manifest.kind));
            continue;
        };
        if let Err(err) = manifest.head.verify(key) {
            problem(format!("the manifest's head does not verify: {err}"));
        }
        if manifest.head.org != manifest.organization {
            problem(format!("the manifest's head is of organisation {}", manifest.head.org));
        }
        match sha256_file(&part) {
            Ok(digest) if digest == manifest.sha256 => {}
            Ok(digest) => {
                problem(format!("the file's SHA-256 is {digest}, the manifest says {}", manifest.sha256));
            }
            Err(err) => {
                problem(format!("unreadable: {err}"));
                continue;
            }
        }
        let records = match read_part(kind, &part) {
            Ok(records) => records,
            Err(err) => {
                problem(format!("not a readable part: {err}"));
                continue;
            }
        };
        if records.len() as u64 != manifest.rows {
            problem(format!("{} rows, the manifest says {}", records.len(), manifest.rows));
        }
        let tree = trees.entry(manifest.organization.clone()).or_insert_with(|| {
            std::fs::File::open(
                data_dir.join("trust").join("trees").join(org_dir_name(&manifest.organization)).join("level-00.bin"),
            )
            .ok()
        });
        let mut leaves = Sha256::new();
        let mut buf = Vec::new();
        let mut first_bad = None;
        for (i, archived) in records.iter().enumerate() {
            let leaf = leaf_of(&archived.record, &mut buf);
            leaves.update(leaf);
            let what = || format!("row {i} ({} revision {})", archived.record.id, archived.record.revision);
            if archived.record.org != manifest.organization {
                first_bad.get_or_insert_with(|| format!("{}: organisation {}", what(), archived.record.org));
                continue;
            }
            if archived.leaf >= manifest.head.tree_size {
                first_bad.get_or_insert_with(|| format!("{}: leaf {} is beyond the head", what(), archived.leaf));
                continue;
            }
            let mut stored = [0u8; 32];
            let read = tree.as_ref().map(|file| file.read_exact_at(&mut stored, archived.leaf * 32));
            match read {
                Some(Ok(())) if stored == leaf => {}
                Some(Ok(())) => {
                    first_bad.get_or_insert_with(|| {
                        format!("{}: modified (its leaf hash differs from leaf {} of the tree)", what(), archived.leaf)
                    });
                }
                _ => {
                    first_bad
                        .get_or_insert_with(|| format!("{}: leaf {} is not in the stored tree", what(), archived.leaf));
                }
            }
        }
        if let Some(detail) = first_bad {
            problem(detail);
        }
        if hex::encode(leaves.finalize()) != manifest.leaves_sha256 {
            problem("the rows' leaf hashes do not match the manifest's digest".into());
        }
    }
    Ok((checked, problems))
}

/// Checks the object store against the directory's manifests: every manifest there and equal,
/// every part there with the manifest's SHA-256 (read in full), nothing archived only there.
fn verify_remote(
    archive: &Archive,
    remote: &Remote,
    manifests: &[(PathBuf, Manifest)],
    problems: &mut Vec<ArchiveProblem>,
) -> Result<()> {
    let mut objects: std::collections::BTreeSet<String> = super::archive_objects(remote)?.into_iter().collect();
    for (path, manifest) in manifests {
        let rel = archive.rel(path);
        let part_rel = archive.rel(&path.with_file_name(&manifest.file));
        objects.remove(&rel);
        objects.remove(&part_rel);
        let mut problem = |detail: String| problems.push(ArchiveProblem { part: remote.describe(&part_rel), detail });
        match remote.get_bytes(&rel)? {
            None => problem("its manifest is missing from the object store".into()),
            Some(bytes) => match parse_manifest(&remote.describe(&rel), &bytes) {
                Ok(theirs) if theirs == *manifest => {}
                Ok(_) => problem("the object store's manifest differs from the local one".into()),
                Err(err) => problem(err.to_string()),
            },
        }
        match remote.sha256(&part_rel)? {
            None => problem("missing from the object store".into()),
            Some(digest) if digest == manifest.sha256 => {}
            Some(digest) => {
                problem(format!("the object store's copy has SHA-256 {digest}, the manifest says {}", manifest.sha256))
            }
        }
    }
    for rel in objects.iter().filter(|r| r.ends_with(".json")) {
        problems.push(ArchiveProblem {
            part: remote.describe(rel),
            detail: "a manifest in the object store that the local copy lacks (the next expiry run or server \
                     start fetches it)"
                .into(),
        });
    }
    Ok(())
}
