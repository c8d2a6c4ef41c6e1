//! Tamper-evidence API end to end: heads, inclusion and consistency proofs and exports with
//! proofs, each checked with the offline verifier and nothing but the published key.

use signet_trust::bundle::{verify_consistency, verify_export, verify_inclusion};
use signet_trust::{PublicKey, SignedHead};

use crate::{signin, TestServer};

async fn key(server: &TestServer) -> PublicKey {
    // Anonymous: auditors fetch it once and pin it.
    let answer: serde_json::Value =
        server.anonymous.get(server.url("/api/v1/trust/key")).send().await.unwrap().json().await.unwrap();
    PublicKey::parse(answer["publicKey"].as_str().unwrap()).unwrap()
}

async fn head(server: &TestServer) -> SignedHead {
    let (status, answer) = server.get("/api/v1/trust/head").await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_value(answer["head"].clone()).unwrap()
}

#[tokio::test]
async fn proofs_check_out_offline_and_forgeries_do_not() {
    let server = TestServer::start().await;
    let key = key(&server).await;
    server
        .load(&(0..10).map(|i| signin(&format!("p{i}"), 1, "ann@contoso.com", "Outlook", 0, "")).collect::<Vec<_>>())
        .await;
    let first = head(&server).await;
    assert!(first.tree_size >= 10, "{first:?}");
    first.verify(&key).unwrap();

    // Inclusion of one event under the latest head.
    let (status, bundle) = server.get("/api/v1/trust/proof/inclusion?kind=signins&id=p3").await;
    assert_eq!(status, 200, "{bundle}");
    let bytes = serde_json::to_vec(&bundle).unwrap();
    let verified = verify_inclusion(&bytes, &key).unwrap();
    assert_eq!((verified.id.as_str(), verified.kind, verified.org.as_str()), ("p3", "signins", "default"));
    // A forged leaf (the record with another user) or a path from another event fails.
    let mut forged = bundle.clone();
    let record = base64_decode(forged["record"].as_str().unwrap());
    let text = String::from_utf8_lossy(&record).replace("ann@contoso.com", "bob@contoso.com");
    forged["record"] = serde_json::json!(base64_encode(text.as_bytes()));
    assert!(verify_inclusion(&serde_json::to_vec(&forged).unwrap(), &key).is_err());
    let (_, other) = server.get("/api/v1/trust/proof/inclusion?kind=signins&id=p4").await;
    let mut swapped = bundle.clone();
    swapped["audit_path"] = other["audit_path"].clone();
    assert!(verify_inclusion(&serde_json::to_vec(&swapped).unwrap(), &key).is_err());

    // More events, a new head (on-demand heads are at least a second apart), and the proof
    // that it extends the first one.
    tokio::time::sleep(std::time::Duration::from_millis(signet_store::ledger::ON_DEMAND_GAP_MS as u64 + 50)).await;
    server
        .load(&(10..25).map(|i| signin(&format!("p{i}"), 1, "ann@contoso.com", "Outlook", 0, "")).collect::<Vec<_>>())
        .await;
    let second = head(&server).await;
    assert!(second.tree_size > first.tree_size);
    let (status, consistency) = server.get(&format!("/api/v1/trust/proof/consistency?first={}", first.tree_size)).await;
    assert_eq!(status, 200, "{consistency}");
    let bytes = serde_json::to_vec(&consistency).unwrap();
    assert_eq!(verify_consistency(&bytes, &key, Some(&first)).unwrap(), (first.tree_size, second.tree_size));
    // Against a head the server never signed (another root), it fails.
    let mut fake = first.clone();
    fake.root_hash[0] ^= 1;
    assert!(verify_consistency(&bytes, &key, Some(&fake)).is_err());

    // An old head still proves an old event.
    let (status, old) =
        server.get(&format!("/api/v1/trust/proof/inclusion?kind=signins&id=p0&treeSize={}", first.tree_size)).await;
    assert_eq!(status, 200, "{old}");
    assert_eq!(verify_inclusion(&serde_json::to_vec(&old).unwrap(), &key).unwrap().tree_size, first.tree_size);
    let (status, _) =
        server.get(&format!("/api/v1/trust/proof/inclusion?kind=signins&id=p20&treeSize={}", first.tree_size)).await;
    assert_eq!(status, 409, "an event newer than the head is not covered by it");

    let heads = server.get("/api/v1/trust/heads").await.1;
    assert!(heads["value"].as_array().unwrap().len() >= 2, "{heads}");
    let status = server.get("/api/v1/trust/status").await.1;
    assert_eq!(status["signingHalted"], false);
}

#[tokio::test]
async fn exports_carry_proofs_for_every_row() {
    let server = TestServer::start().await;
    let key = key(&server).await;
    server
        .load(
            &(0..300)
                .map(|i| signin(&format!("x{i}"), i % 48, "ann@contoso.com", "Outlook", 0, ""))
                .collect::<Vec<_>>(),
        )
        .await;
    let (status, text) = server.get_text("/api/v1/signins/export?format=ndjson&proofs=true&range=90d").await;
    assert_eq!(status, 200, "{text}");
    let check = verify_export(text.as_bytes(), &key).unwrap();
    assert_eq!((check.verified, check.unproven), (300, 0));

    // Change one exported event: the verifier names the line.
    let tampered = text.replacen("ann@contoso.com", "eve@contoso.com", 1);
    let err = verify_export(tampered.as_bytes(), &key).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    // Drop the head line: refused.
    let headless: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(verify_export(headless.as_bytes(), &key).is_err());

    let (status, answer) = server.get("/api/v1/signins/export?format=csv&proofs=true").await;
    assert_eq!(status, 400, "{answer}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
