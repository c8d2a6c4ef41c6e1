//! Tamper-evidence API: the node's public key, signed tree heads, inclusion and consistency
//! proofs. Everything returned here can be checked offline with the public key alone
//! (`signet proof verify`); nothing here has to be trusted.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use signet_model::LogKind;

use crate::access_log::AuditNote;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::graph::parse_query;
use crate::AppState;

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn number(params: &[(String, String)], name: &str) -> ApiResult<Option<u64>> {
    param(params, name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("{name} must be a whole number, not {v:?}")))
        })
        .transpose()
}

fn blocking_err(err: tokio::task::JoinError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// `GET /api/v1/trust/key`: the public key that signs tree heads, for auditors to pin.
pub async fn public_key(State(state): State<AppState>) -> Json<Value> {
    let key = state.engine.ledger().public_key();
    Json(json!({ "publicKey": key.to_string(), "keyId": key.id(), "algorithm": "Ed25519" }))
}

/// `GET /api/v1/trust/head`: the organisation's latest signed head, signing a new one first
/// when events arrived since the last. `head` is null while the organisation has no events.
pub async fn head(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let head =
        tokio::task::spawn_blocking(move || engine.ledger().current_head(&org)).await.map_err(blocking_err)??;
    Ok(Json(json!({ "head": head })))
}

/// `GET /api/v1/trust/heads?fromSize=N&limit=M`: signed heads of the organisation, oldest first.
pub async fn heads(State(state): State<AppState>, caller: Caller, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let params = parse_query(raw.as_deref());
    let from = number(&params, "fromSize")?.unwrap_or(0);
    let limit = number(&params, "limit")?.unwrap_or(1000).clamp(1, 10_000) as usize;
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let heads = tokio::task::spawn_blocking(move || engine.ledger().heads_since(&org, from, limit))
        .await
        .map_err(blocking_err)??;
    Ok(Json(json!({ "value": heads })))
}

/// `GET /api/v1/trust/proof/inclusion?kind=signins&id=ID[&revision=R][&treeSize=N]`: proof that
/// the event (latest revision unless given) is in the tree the head (latest unless given) signs.
pub async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::response::Response> {
    let params = parse_query(raw.as_deref());
    let kind_text = param(&params, "kind").unwrap_or("signins");
    let kind = LogKind::parse(kind_text).ok_or_else(|| {
        ApiError::BadRequest(format!("kind {kind_text:?}: expected signins, directory-audits or activities"))
    })?;
    let id = param(&params, "id").ok_or_else(|| ApiError::BadRequest("id is required".into()))?.to_string();
    let revision = number(&params, "revision")?;
    let tree_size = number(&params, "treeSize")?;
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let lookup = id.clone();
    let bundle = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let revisions = engine.store().revisions(&org, kind, &lookup)?;
        let chosen = match revision {
            Some(r) => revisions.iter().find(|v| u64::from(v.revision) == r),
            None => revisions.last(),
        }
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {lookup:?} does not exist")))?;
        let ledger = engine.ledger();
        let head = match tree_size {
            Some(size) => ledger
                .head_at(&org, size)?
                .ok_or_else(|| ApiError::NotFound(format!("no signed head of size {size}")))?,
            None => ledger
                .current_head(&org)?
                .ok_or_else(|| ApiError::Conflict("no signed head covers this event yet".into()))?,
        };
        let size = head.tree_size;
        if let Some(node) = &chosen.node {
            return Err(ApiError::Conflict(format!(
                "this revision was logged by node {node}: its trees and signed heads prove it (ask that node)"
            )));
        }
        ledger.inclusion(&engine.record(chosen.ptr)?, chosen.ptr, &head)?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "the head of size {size} does not cover this event (it arrived later): ask without treeSize"
            ))
        })
    })
    .await
    .map_err(blocking_err)??;
    let note = AuditNote { rows: Some(1), target: Some(id), detail: None };
    Ok(note.attach(Json(serde_json::to_value(&bundle).map_err(|e| ApiError::Internal(e.to_string()))?)))
}

/// `GET /api/v1/trust/proof/consistency?first=N[&second=M]`: proof that the tree signed at size
/// M (the latest head unless given) extends the tree of size N.
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = parse_query(raw.as_deref());
    let first =
        number(&params, "first")?.ok_or_else(|| ApiError::BadRequest("first (a tree size) is required".into()))?;
    let second = number(&params, "second")?;
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let bundle = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let ledger = engine.ledger();
        let second = match second {
            Some(size) => ledger
                .head_at(&org, size)?
                .ok_or_else(|| ApiError::NotFound(format!("no signed head of size {size}")))?,
            None => ledger.current_head(&org)?.ok_or_else(|| ApiError::NotFound("no signed head yet".into()))?,
        };
        if first > second.tree_size {
            return Err(ApiError::BadRequest(format!(
                "first ({first}) is larger than the second head's size ({})",
                second.tree_size
            )));
        }
        Ok(ledger.consistency(first, second)?)
    })
    .await
    .map_err(blocking_err)??;
    Ok(Json(serde_json::to_value(&bundle).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `GET /api/v1/trust/status`: the organisation's tree size, signed size and last signing
/// time, and whether signing is halted on this node.
pub async fn status(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let status = state.engine.ledger().status();
    let org = status.orgs.get(caller.org());
    Json(json!({
        "publicKey": status.public_key,
        "keyId": status.key_id,
        "treeSize": org.map_or(0, |o| o.tree_size),
        "signedSize": org.map_or(0, |o| o.signed_size),
        "lastSigned": org.and_then(|o| o.last_signed.clone()),
        "signingHalted": status.halted.is_some(),
    }))
}
