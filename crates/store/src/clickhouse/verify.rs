//! `signet verify --projection` on ClickHouse: what ClickHouse holds for this node against the
//! node's event log (whose records the Merkle trees and signed heads vouch for).
//!
//! Every revision the log holds, up to the position ClickHouse has applied for this node, must
//! be one row with exactly the columns the record gives (the same conversion `apply` uses), and
//! no other row may be there. A row edited in place, removed, or added shows up, with the
//! columns that differ.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::Value;
use signet_model::schema;
use signet_model::{Cell, LogKind};

use super::{db_err, row_json, to_cell, ClickHouseStore};
use crate::engine::{EventStore, StoredEvent};
use crate::error::Result;
use crate::log::{EventLog, RecordPtr};
use crate::verify::{Problem, ProblemKind};
use crate::versions::version_key;

/// Examples named per kind of difference and table.
const EXAMPLES: usize = 5;

/// The record columns compared besides the schema's (the row's `node` is not: see the module).
const RECORD: [&str; 2] = ["body", "original"];

/// Common columns that differ between two nodes' rows of one revision (each node received and
/// logged it itself): received_at, log_pos, log_idx.
const PER_NODE: std::ops::Range<usize> = 5..8;

/// The names of what [`expected_cells`] gives, in order.
fn compared_columns(kind: LogKind) -> Vec<&'static str> {
    schema::all_columns(kind).map(|c| c.name).chain(RECORD).collect()
}

/// The cells a row should have, as ClickHouse gives them back (lists never null, booleans as
/// 0/1, non-finite floats null), then its record.
fn expected_cells(event: &StoredEvent) -> Vec<Cell> {
    let Value::Object(mut row) = row_json(event, "") else { unreachable!("row_json makes objects") };
    row_cells(event.event.kind, &mut row)
}

/// The compared cells of a row as ClickHouse answers it (`JSONEachRow`).
fn row_cells(kind: LogKind, row: &mut serde_json::Map<String, Value>) -> Vec<Cell> {
    let mut cells: Vec<Cell> =
        schema::all_columns(kind).map(|c| to_cell(row.remove(c.name).unwrap_or(Value::Null), Some(c.ty))).collect();
    cells.extend(RECORD.iter().map(|name| to_cell(row.remove(*name).unwrap_or(Value::Null), None)));
    cells
}

/// Digests of all the compared cells, and of those two nodes' rows of one revision share.
fn digests(cells: &[Cell]) -> (u64, u64) {
    let shared: Vec<Cell> =
        cells.iter().enumerate().filter(|(i, _)| !PER_NODE.contains(i)).map(|(_, c)| c.clone()).collect();
    (digest(cells), digest(&shared))
}

fn digest(cells: &[Cell]) -> u64 {
    let mut bytes = Vec::with_capacity(512);
    for cell in cells {
        match cell {
            Cell::Null => bytes.push(0),
            Cell::Str(s) => {
                bytes.push(1);
                bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
                bytes.extend_from_slice(s.as_bytes());
            }
            Cell::Int(i) => {
                bytes.push(2);
                bytes.extend_from_slice(&i.to_le_bytes());
            }
            Cell::Float(f) => {
                bytes.push(3);
                bytes.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Cell::Bool(b) => bytes.extend_from_slice(&[4, u8::from(*b)]),
            Cell::Time(t) => {
                bytes.push(5);
                bytes.extend_from_slice(&t.to_le_bytes());
            }
            Cell::List(items) => {
                bytes.push(6);
                bytes.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    bytes.extend_from_slice(&(item.len() as u64).to_le_bytes());
                    bytes.extend_from_slice(item.as_bytes());
                }
            }
        }
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Differences of one table, counted, with a few examples.
#[derive(Default)]
struct TableFindings {
    modified: Vec<String>,
    modified_count: u64,
    inserted: Vec<String>,
    inserted_count: u64,
    missing: Vec<String>,
    missing_count: u64,
}

fn note(examples: &mut Vec<String>, count: &mut u64, example: impl FnOnce() -> String) {
    *count += 1;
    if examples.len() < EXAMPLES {
        examples.push(example());
    }
}

impl ClickHouseStore {
    /// Compares what ClickHouse holds with this node's event log (see the module). The node
    /// should be stopped: what it applies meanwhile may show as differences.
    pub fn verify_against_log(&self, log: &EventLog) -> Result<(Vec<Problem>, String)> {
        let applied = self.applied_position()?;
        let mut expected: HashMap<(u128, u32), ((u64, u64), RecordPtr)> = HashMap::new();
        // (organisation, kind, id, revision) of every revision a newer one replaces.
        let mut superseded: std::collections::HashSet<(String, u8, String, u32)> = Default::default();
        let mut not_applied = 0u64;
        log.scan(log.start(), 20_000, |batch, _| {
            for (ptr, record) in batch {
                if ptr.frame_pos >= applied {
                    not_applied += 1;
                    continue;
                }
                let event = crate::stored_event(ptr, &record, true)?;
                for older in 1..record.revision {
                    superseded.insert((record.org.clone(), record.kind.code(), record.id.clone(), older));
                }
                let key = (version_key(&record.org, record.kind, &record.id), record.revision);
                expected.insert(key, (digests(&expected_cells(&event)), ptr));
            }
            Ok(())
        })?;
        let compared = expected.len();
        // Nodes that applied something here: their rows are theirs to vouch for (`signet verify`
        // on each); a row naming any other node was not written by a node.
        let nodes: std::collections::HashSet<String> = self
            .query_json("SELECT DISTINCT node FROM signet_applied")?
            .into_iter()
            .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut others: std::collections::BTreeMap<String, u64> = Default::default();
        // The newest revision of every id in the tables, whichever node stored it.
        let mut newest: HashMap<u128, u32> = HashMap::new();
        let mut findings: Vec<(LogKind, TableFindings)> = Vec::new();
        for kind in LogKind::ALL {
            let mut found = TableFindings::default();
            let columns = compared_columns(kind);
            let sql =
                format!("SELECT {}, node FROM {} FINAL FORMAT JSONEachRow", columns.join(", "), schema::table(kind));
            let response = self.post(Some(&self.database), &sql, None)?;
            for line in std::io::BufReader::new(response).lines() {
                let line = line.map_err(db_err)?;
                if line.is_empty() {
                    continue;
                }
                let Value::Object(mut row) = serde_json::from_str(&line).map_err(|e| db_err(format!("{e}: {line}")))?
                else {
                    return Err(db_err(format!("not a row: {line}")));
                };
                let node = self.foreign_node(row.get("node").and_then(Value::as_str));
                let cells = row_cells(kind, &mut row);
                let text = |i: usize| cells[i].as_str().unwrap_or_default().to_string();
                let (org, id) = (text(0), text(1));
                let revision = match cells[2] {
                    Cell::Int(r) => r as u32,
                    _ => 0,
                };
                let name = || format!("{org}/{id} revision {revision}");
                let key = (version_key(&org, kind, &id), revision);
                let top = newest.entry(key.0).or_default();
                *top = revision.max(*top);
                let (all, shared) = digests(&cells);
                let Some(&((want_all, want_shared), ptr)) = expected.get(&key) else {
                    match &node {
                        Some(node) if nodes.contains(node) => *others.entry(node.clone()).or_default() += 1,
                        Some(node) => note(&mut found.inserted, &mut found.inserted_count, || {
                            format!("{} (of node {node}, which applied nothing here)", name())
                        }),
                        None => note(&mut found.inserted, &mut found.inserted_count, name),
                    }
                    continue;
                };
                expected.remove(&key);
                // A revision both nodes logged (a client that retried on the other) is one row,
                // either node's: the same content counts.
                let same = match &node {
                    None => want_all == all,
                    Some(_) => want_shared == shared,
                };
                if !same {
                    let event = crate::stored_event(ptr, &log.read(ptr)?, true)?;
                    let differing: Vec<&str> = expected_cells(&event)
                        .iter()
                        .zip(&cells)
                        .zip(&columns)
                        .enumerate()
                        .filter(|(i, ((want, have), _))| want != have && (node.is_none() || !PER_NODE.contains(i)))
                        .map(|(_, (_, c))| *c)
                        .collect();
                    let whose = node.as_ref().map(|n| format!(" (the row is node {n}'s)")).unwrap_or_default();
                    note(&mut found.modified, &mut found.modified_count, || {
                        format!("{}{whose} ({})", name(), differing.join(", "))
                    });
                }
            }
            findings.push((kind, found));
        }
        for (_, ptr) in expected.into_values() {
            let record = log.read(ptr)?;
            let found = &mut findings.iter_mut().find(|(k, _)| *k == record.kind).expect("every kind").1;
            note(&mut found.missing, &mut found.missing_count, || {
                format!("{}/{} revision {}", record.org, record.id, record.revision)
            });
        }
        let mut problems = Vec::new();
        let mut forged_superseded = (Vec::new(), 0);
        let response = self.post(
            Some(&self.database),
            "SELECT org_id, kind, id, revision FROM superseded FINAL FORMAT JSONEachRow",
            None,
        )?;
        for line in std::io::BufReader::new(response).lines() {
            let line = line.map_err(db_err)?;
            #[derive(serde::Deserialize)]
            struct Entry {
                org_id: String,
                kind: u8,
                id: String,
                revision: u32,
            }
            let entry: Entry = match line.is_empty() {
                true => continue,
                false => serde_json::from_str(&line).map_err(|e| db_err(format!("{e}: {line}")))?,
            };
            let row = (entry.org_id, entry.kind, entry.id, entry.revision);
            // Not in this node's log: another node's newer revision of the id justifies it.
            let by_another = || {
                LogKind::from_code(row.1)
                    .and_then(|kind| newest.get(&version_key(&row.0, kind, &row.2)))
                    .is_some_and(|&newest| newest > row.3)
            };
            if !superseded.remove(&row) && !by_another() {
                note(&mut forged_superseded.0, &mut forged_superseded.1, || {
                    format!("{}/{} revision {} (kind {})", row.0, row.2, row.3, row.1)
                });
            }
        }
        let (forged, count) = forged_superseded;
        if count > 0 {
            problems.push(Problem::new(
                ProblemKind::Inserted,
                None,
                format!(
                    "ClickHouse table superseded: {count} entr(ies) not derived from the log (they hide revisions from \
                     lists and reports), e.g. {}",
                    forged.join("; ")
                ),
            ));
        }
        if !superseded.is_empty() {
            let examples: Vec<String> =
                superseded.iter().take(EXAMPLES).map(|(org, _, id, r)| format!("{org}/{id} revision {r}")).collect();
            problems.push(Problem::new(ProblemKind::Missing, None, format!(
                    "ClickHouse table superseded: {} entr(ies) of the log missing (older revisions shown as latest), e.g. {}",
                    superseded.len(),
                    examples.join("; ")
                )));
        }
        for (kind, found) in findings {
            let table = schema::table(kind);
            for (problem, count, examples, what) in [
                (
                    ProblemKind::Modified,
                    found.modified_count,
                    &found.modified,
                    "row(s) whose columns differ from the log",
                ),
                (ProblemKind::Inserted, found.inserted_count, &found.inserted, "row(s) not derived from the log"),
                (ProblemKind::Missing, found.missing_count, &found.missing, "revision(s) of the log missing"),
            ] {
                if count > 0 {
                    problems.push(Problem::new(
                        problem,
                        None,
                        format!("ClickHouse table {table}: {count} {what}, e.g. {}", examples.join("; ")),
                    ));
                }
            }
        }
        let summary = format!(
            "ClickHouse compared with the event log: {compared} revision(s) up to log position {applied}{}{}",
            match not_applied {
                0 => String::new(),
                n => format!(", {n} later one(s) not applied yet (start the node to apply them)"),
            },
            match others.is_empty() {
                true => String::new(),
                false => format!(
                    "; not checked here, other nodes' rows (verify on those nodes): {}",
                    others.iter().map(|(node, n)| format!("{node} {n}")).collect::<Vec<_>>().join(", ")
                ),
            }
        );
        Ok((problems, summary))
    }
}
