//! The tamper test: a log with signed heads (and heads published outside the data directory)
//! is attacked 1,000 times, each time on a fresh copy, by one random mutation applied to the
//! stored files directly, and `signet verify` (`verify_data_dir`) must report every one.
//!
//! Mutations rewrite the log the way an attacker who knows the format would (valid frames and
//! checksums), so detection has to come from the Merkle trees and the signed heads, not from
//! a checksum: change a field, delete, swap two events, insert a forged event, truncate, roll
//! back to an older copy, flip raw bytes, edit the tree files, and rewrite everything
//! including the heads with the node's own key.

use std::path::{Path, PathBuf};

use signet_model::{normalize, LogKind};
use signet_store::conformance::signin_json;
use signet_store::ledger::{Ledger, TrustConfig};
use signet_store::verify::{load_external_heads, verify_data_dir, ProblemKind, VerifyOptions, VerifyReport};
use signet_store::{Engine, EventLog, IngestConfig, LogRecord};
use signet_trust::fuzzing::SplitMix64;

const ORGS: [&str; 2] = ["default", "tenant-b"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "signet.duckdb" && entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn read_records(data: &Path) -> Vec<LogRecord> {
    let log = EventLog::open_read_only(data.join("log")).unwrap();
    let mut out = Vec::new();
    log.scan(0, 10_000, |batch, _| {
        out.extend(batch.into_iter().map(|(_, r)| r));
        Ok(())
    })
    .unwrap();
    out
}

/// Replaces the log with these records, in valid frames (as a format-aware attacker would).
fn rewrite_log(data: &Path, records: &[LogRecord]) {
    std::fs::remove_dir_all(data.join("log")).unwrap();
    let log = EventLog::open(data.join("log")).unwrap();
    for chunk in records.chunks(37) {
        log.append(chunk).unwrap();
    }
}

fn options(published: &Path) -> VerifyOptions {
    VerifyOptions { external_heads: load_external_heads(&[published.to_path_buf()]).unwrap(), ..Default::default() }
}

struct Fixture {
    _root: tempfile::TempDir,
    /// The data directory after all events, with every event covered by a signed head.
    full: PathBuf,
    /// A copy taken halfway (for roll-back).
    half: PathBuf,
    published: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let (full, half, published) = (root.path().join("full"), root.path().join("half"), root.path().join("published"));
    let trust = TrustConfig { publish_dir: Some(published.clone()), ..TrustConfig::default() };
    let engine = Engine::open_with(&full, IngestConfig::default(), &trust).unwrap();
    let mut n = 0;
    for round in 0..8 {
        for org in ORGS {
            let events: Vec<_> = (0..20 + round * 3)
                .map(|_| {
                    n += 1;
                    let json = signin_json(
                        &format!("ev-{n}"),
                        (n % 28 + 1) as i64,
                        &format!("user{}@contoso.com", n % 7),
                        "Outlook",
                        0,
                        "",
                    );
                    normalize(LogKind::SignIn, json.as_bytes()).unwrap()
                })
                .collect();
            engine.pipeline().submit_blocking(org, events).unwrap();
        }
        engine.ledger().sign_heads(None).unwrap();
        if round == 3 {
            copy_dir(&full, &half);
        }
    }
    engine.shutdown();
    drop(engine);
    let report = verify_data_dir(&full, &options(&published)).unwrap();
    assert!(report.ok, "the untouched log verifies: {report:#?}");
    assert_eq!(
        report.orgs.values().map(|o| o.heads_checked).sum::<u64>(),
        32,
        "8 rounds x 2 organisations, local and published"
    );
    Fixture { _root: root, full, half, published }
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    ChangeField,
    Delete,
    Swap,
    Insert,
    Truncate,
    RollBackWhole,
    RollBackLog,
    FlipBytes,
    EditTree,
    RewriteAndResign,
}

const MUTATIONS: [Mutation; 10] = [
    Mutation::ChangeField,
    Mutation::Delete,
    Mutation::Swap,
    Mutation::Insert,
    Mutation::Truncate,
    Mutation::RollBackWhole,
    Mutation::RollBackLog,
    Mutation::FlipBytes,
    Mutation::EditTree,
    Mutation::RewriteAndResign,
];

/// Applies one mutation to `data`; returns what the verifier should call it, if the
/// classification is certain.
fn mutate(fx: &Fixture, data: &Path, mutation: Mutation, rng: &mut SplitMix64) -> Option<ProblemKind> {
    let mut records = read_records(data);
    let len = records.len();
    match mutation {
        Mutation::ChangeField => {
            let i = rng.below(len);
            let r = &mut records[i];
            match rng.below(6) {
                0 => {
                    // A character of the body (e.g. a user name) replaced by another.
                    let at = rng.below(r.body.len());
                    let mut body = r.body.to_vec();
                    body[at] = if body[at] == b'x' { b'y' } else { b'x' };
                    r.body = body.into();
                }
                1 => r.revision += 1,
                2 => r.received_us += 1 + rng.below(1_000_000) as i64,
                3 => r.time_us -= 1 + rng.below(86_400_000_000) as i64,
                4 => r.id.push('9'),
                _ => {
                    r.content_hash ^= 1 << rng.below(64);
                }
            }
            rewrite_log(data, &records);
            Some(ProblemKind::Modified)
        }
        Mutation::Delete => {
            records.remove(rng.below(len));
            rewrite_log(data, &records);
            None // Missing, or Truncated when it was an organisation's last event
        }
        Mutation::Swap => {
            // Two events of one organisation (the order between organisations is not attested).
            let org = ORGS[rng.below(2)];
            let positions: Vec<usize> = (0..len).filter(|&i| records[i].org == org).collect();
            let a = rng.below(positions.len());
            let mut b = rng.below(positions.len());
            if a == b {
                b = (a + 1) % positions.len();
            }
            records.swap(positions[a], positions[b]);
            rewrite_log(data, &records);
            Some(ProblemKind::Reordered)
        }
        Mutation::Insert => {
            let mut forged = records[rng.below(len)].clone();
            forged.id = format!("forged-{}", rng.next_u64());
            forged.revision = 1;
            records.insert(rng.below(len + 1), forged);
            rewrite_log(data, &records);
            None // Inserted, or Modified when appended after an organisation's signed events
        }
        Mutation::Truncate => {
            let keep = rng.below(len);
            records.truncate(keep);
            rewrite_log(data, &records);
            Some(ProblemKind::Truncated)
        }
        Mutation::RollBackWhole => {
            std::fs::remove_dir_all(data).unwrap();
            copy_dir(&fx.half, data);
            Some(ProblemKind::RolledBack)
        }
        Mutation::RollBackLog => {
            std::fs::remove_dir_all(data.join("log")).unwrap();
            copy_dir(&fx.half.join("log"), &data.join("log"));
            Some(ProblemKind::Truncated)
        }
        Mutation::FlipBytes => {
            let segment = std::fs::read_dir(data.join("log")).unwrap().next().unwrap().unwrap().path();
            let mut bytes = std::fs::read(&segment).unwrap();
            for _ in 0..1 + rng.below(3) {
                let at = 16 + rng.below(bytes.len() - 16);
                bytes[at] ^= 1 << rng.below(8);
            }
            std::fs::write(&segment, bytes).unwrap();
            None // Corrupt, or Truncated when only the last commit was hit
        }
        Mutation::EditTree => {
            let org = ORGS[rng.below(2)];
            let path = data.join("trust/trees").join(org).join("level-00.bin");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = rng.below(bytes.len());
            bytes[at] ^= 0x80;
            std::fs::write(&path, bytes).unwrap();
            Some(ProblemKind::Modified)
        }
        Mutation::RewriteAndResign => {
            // The attacker holds the node's key (it sits in the data directory by default):
            // change an event, rebuild the trees, re-sign every head. Only the published heads
            // can catch this.
            let i = rng.below(len);
            records[i].body = [&records[i].body[..], b" "].concat().into();
            rewrite_log(data, &records);
            for stale in ["trust/trees", "trust/heads.jsonl", "trust/checkpoint.json"] {
                let path = data.join(stale);
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            let log = EventLog::open(data.join("log")).unwrap();
            let ledger = Ledger::open(data, &log, &TrustConfig::default()).unwrap();
            ledger.sign_heads(None).unwrap();
            Some(ProblemKind::Modified)
        }
    }
}

fn describe(report: &VerifyReport) -> String {
    report.problems.iter().map(|p| format!("{:?}: {}", p.kind, p.detail)).collect::<Vec<_>>().join("; ")
}

#[test]
fn a_thousand_random_mutations_are_all_detected() {
    let fx = fixture();
    let work = tempfile::tempdir().unwrap();
    let seed = std::env::var("TAMPER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5167_4e37);
    let mut rng = SplitMix64(seed);
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..1000 {
        let data = work.path().join(format!("r{round}"));
        copy_dir(&fx.full, &data);
        let mutation = MUTATIONS[round % MUTATIONS.len()];
        let expected = mutate(&fx, &data, mutation, &mut rng);
        let report = verify_data_dir(&data, &options(&fx.published)).unwrap();
        assert!(!report.ok, "round {round}: {mutation:?} went undetected (seed {seed})");
        if let Some(kind) = expected {
            assert!(
                report.problems.iter().any(|p| p.kind == kind),
                "round {round}: {mutation:?} should be reported as {kind:?}, got {}",
                describe(&report)
            );
        }
        *by_kind.entry(format!("{mutation:?}")).or_default() += 1;
        std::fs::remove_dir_all(&data).unwrap();
    }
    assert_eq!(by_kind.values().sum::<usize>(), 1000);
}

#[test]
fn the_first_bad_position_is_named() {
    let fx = fixture();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d");
    copy_dir(&fx.full, &data);
    let mut records = read_records(&data);
    // The 10th event of tenant-b gets another user.
    let (at, _) = records.iter().enumerate().filter(|(_, r)| r.org == "tenant-b").nth(9).unwrap();
    let body = String::from_utf8(records[at].body.to_vec()).unwrap().replace("@contoso.com", "@evil.example");
    records[at].body = body.into_bytes().into();
    rewrite_log(&data, &records);
    let report = verify_data_dir(&data, &options(&fx.published)).unwrap();
    let first = &report.problems[0];
    assert_eq!(
        (first.kind, first.org.as_deref(), first.leaf),
        (ProblemKind::Modified, Some("tenant-b"), Some(9)),
        "{report:#?}"
    );
    assert!(first.detail.contains(&records[at].id), "{}", first.detail);
    assert!(report.orgs["default"].events > 0);
}
