//! Runs the importers over the public sample logs in `../shared/datasets` (real exports with
//! their quirks) when that folder exists, and says clearly when it does not.

use std::path::{Path, PathBuf};

use signet_import::{import_bytes, Format, ImportError};

fn datasets() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/import -> repository root -> its parent holds shared/
    let candidates = [manifest.join("../../../shared/datasets"), manifest.join("../../shared/datasets")];
    candidates.into_iter().find(|p| p.is_dir())
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_none_or(|e| e != "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn public_sample_logs_import() {
    let Some(dir) = datasets() else {
        eprintln!("SKIPPED: ../shared/datasets is absent; the importers were not checked against real samples");
        return;
    };
    let mut total_events = 0;
    for path in files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let result = import_bytes(&bytes, Format::Auto);
        if name.contains("AS-PUBLISHED-invalid-trailing-comma") {
            let err = result.expect_err("the published Graph example has a trailing comma and is not JSON");
            assert!(matches!(err, ImportError::Json { .. }), "{name}: {err}");
            continue;
        }
        if name.contains("expected.json") {
            // Elastic's expected output, not an identity-provider export.
            continue;
        }
        let imported = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} events ({:?} by kind), {} rejected {:?}",
            imported.events.len(),
            imported.by_kind,
            imported.rejected.len(),
            imported.rejected.iter().take(2).collect::<Vec<_>>()
        );
        total_events += imported.events.len();
        match name.as_str() {
            n if n.starts_with("signinlogs__test-time-formats") => {
                // Records with only a time and a category: every one must be rejected with a reason.
                assert!(imported.events.is_empty());
                assert!(imported.rejected.iter().all(|r| !r.reason.is_empty()));
            }
            n if n.starts_with("AuditLogs_Hunting") => {
                // This Log Analytics CSV export has no time column at all.
                assert_eq!(imported.rejected.len(), 5, "{:?}", imported.rejected);
                assert!(imported.rejected[0].reason.contains("no time column"));
            }
            n if n.starts_with("system__test-okta") => {
                // Okta System Log: a sign-in to Okta, then a sign-out and a sign-on policy
                // evaluation (directory audits).
                assert!(imported.rejected.is_empty(), "{:?}", imported.rejected);
                assert_eq!(imported.by_kind, [1, 2, 0]);
                okta_sample(&imported);
            }
            _ => {
                assert!(!imported.events.is_empty(), "{name}: nothing imported; rejected {:?}", imported.rejected);
                assert!(imported.rejected.is_empty(), "{name}: {:?}", imported.rejected);
            }
        }
    }
    assert!(total_events >= 20, "only {total_events} events imported from the samples");
}

/// The Elastic Okta sample, field by field: what an administrator filters on survives.
fn okta_sample(imported: &signet_import::Imported) {
    let body = |e: &signet_model::Event| serde_json::from_slice::<serde_json::Value>(&e.body).unwrap();
    let audit = imported.events.iter().map(body).find(|b| b["activityDisplayName"] == "User logout from Okta").unwrap();
    assert_eq!(audit["id"], "faf7398a-4f77-11ea-97fb-5925e98228bd");
    assert_eq!(audit["activityDisplayName"], "User logout from Okta");
    assert_eq!(audit["loggedByService"], "Okta");
    assert_eq!(audit["initiatedBy"]["user"]["userPrincipalName"], "username@elastic.co");
    assert_eq!(audit["initiatedBy"]["user"]["ipAddress"], "175.16.199.1");
    let sign_in = imported
        .events
        .iter()
        .map(body)
        .find(|b| b["status"]["additionalDetails"].as_str().is_some_and(|d| d.contains("user.session.start")))
        .unwrap();
    assert_eq!(sign_in["userId"], "00u1abvz4pYqdM8ms4x6");
    assert_eq!(sign_in["appDisplayName"], "Okta");
    assert_eq!(sign_in["status"]["errorCode"], 0);
    assert_eq!(sign_in["location"]["city"], "Dublin");
    assert_eq!(sign_in["deviceDetail"]["operatingSystem"], "Mac OS X");
    // 2020-02-14T20:18:57.718Z
    let event = imported.events.iter().find(|e| body(e)["id"] == sign_in["id"]).unwrap();
    assert_eq!(event.time_us, 1_581_711_537_718_000);
    assert!(event.original.is_some(), "the Okta record is kept as the source record");
}

#[test]
fn log_analytics_portal_csv_sample_fields() {
    let Some(dir) = datasets() else {
        eprintln!("SKIPPED: ../shared/datasets is absent");
        return;
    };
    let bytes =
        std::fs::read(dir.join("azure-sentinel-training-lab/sign-in_adelete.EXCERPT-first-3-rows.csv")).unwrap();
    let imported = import_bytes(&bytes, Format::Auto).unwrap();
    assert_eq!(imported.events.len(), 3, "{:?}", imported.rejected);
    let first: serde_json::Value = serde_json::from_slice(&imported.events[0].body).unwrap();
    assert_eq!(first["id"], "cfb68155-70f5-4e28-b046-0a3a7086c401");
    assert_eq!(first["appDisplayName"], "Azure Portal");
    assert_eq!(first["ipAddress"], "175.45.176.99");
    assert_eq!(first["location"]["countryOrRegion"], "IL");
    assert_eq!(first["deviceDetail"]["browser"], "Edge 90.0.818");
    // 4/28/2021, 2:08:45.221 PM UTC
    assert_eq!(imported.events[0].time_us, 1_619_618_925_221_000);
}
