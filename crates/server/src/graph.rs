//! Microsoft Graph-compatible reads: `GET /v1.0/auditLogs/signIns[/{id}]` and
//! `/v1.0/auditLogs/directoryAudits[/{id}]` with `$filter`, `$top` (default and maximum 1000),
//! `$orderby`, `$select` and `$skiptoken` paging through `@odata.nextLink`. Records are served
//! as stored (the original Graph JSON), so existing scripts parse them unchanged.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use signet_model::LogKind;
use signet_query::{cursor, odata, ListQuery, SortOrder};
use signet_store::RecordRef;

use crate::access_log::AuditNote;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

const MAX_TOP: usize = 1000;

pub async fn list_signins(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: RawQuery,
) -> ApiResult<Response> {
    list(state, caller, LogKind::SignIn, "signIns", headers, query).await
}

pub async fn list_directory_audits(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: RawQuery,
) -> ApiResult<Response> {
    list(state, caller, LogKind::DirectoryAudit, "directoryAudits", headers, query).await
}

pub async fn get_signin(state: State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    get(state, caller, LogKind::SignIn, "signIns", id).await
}

pub async fn get_directory_audit(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    get(state, caller, LogKind::DirectoryAudit, "directoryAudits", id).await
}

/// Decodes `a=b&c=d` keeping order; `+` is a space as in forms.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    url_pairs(raw)
}

fn url_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'$' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    kind: LogKind,
    resource: &'static str,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = parse_query(raw.as_deref());
    for (key, _) in &params {
        let known = ["$filter", "$top", "$orderby", "$skiptoken", "$select", "$count", "api-version"];
        if key.starts_with('$') && !known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(ApiError::BadRequest(format!("query option {key} is not supported on auditLogs/{resource}")));
        }
    }
    let filter = odata::parse_filter(kind, param(&params, "$filter").unwrap_or(""))?;
    let top = match param(&params, "$top") {
        None => MAX_TOP,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|t| (1..=MAX_TOP).contains(t))
            .ok_or_else(|| ApiError::BadRequest(format!("$top must be 1-{MAX_TOP}")))?,
    };
    let order = match param(&params, "$orderby").map(|o| o.trim().to_ascii_lowercase()) {
        None => SortOrder::Desc,
        Some(o) => {
            let time_field = if kind == LogKind::SignIn { "createddatetime" } else { "activitydatetime" };
            let mut parts = o.split_whitespace();
            if parts.next() != Some(time_field) {
                return Err(ApiError::Query(signet_query::QueryError::Unsupported(format!(
                    "$orderby {o:?}: only {time_field} asc|desc"
                ))));
            }
            match parts.next() {
                None | Some("asc") => SortOrder::Asc,
                Some("desc") => SortOrder::Desc,
                Some(other) => return Err(ApiError::BadRequest(format!("$orderby direction {other:?}"))),
            }
        }
    };
    let after = param(&params, "$skiptoken").map(cursor::decode).transpose()?;
    let select: Option<Vec<String>> = param(&params, "$select")
        .map(|s| s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect());
    let query = ListQuery {
        org: caller.org().to_string(),
        kind,
        filter,
        order,
        limit: top,
        after,
        columns: signet_store::record_columns(kind),
    };
    let engine = state.engine.clone();
    let (bodies, next) = tokio::task::spawn_blocking(move || -> ApiResult<(Vec<Vec<u8>>, Option<String>)> {
        let rows = engine.store().list(&query)?;
        let more = rows.len() > query.limit;
        let refs = rows
            .iter()
            .take(query.limit)
            .map(|row| {
                RecordRef::from_row(row).ok_or_else(|| ApiError::Internal(format!("unexpected row shape {row:?}")))
            })
            .collect::<ApiResult<Vec<RecordRef>>>()?;
        let last = refs.last().map(|r| cursor::encode(r.time_us, &r.id));
        let bodies = engine.bodies(&query.org, kind, &refs)?;
        Ok((bodies, if more { last } else { None }))
    })
    .await??;

    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let base = format!("http://{host}/v1.0/auditLogs/{resource}");
    let mut out = Vec::with_capacity(bodies.iter().map(Vec::len).sum::<usize>() + 256);
    out.extend_from_slice(
        format!("{{\"@odata.context\":\"http://{host}/v1.0/$metadata#auditLogs/{resource}\",").as_bytes(),
    );
    if let Some(token) = next {
        let mut kept: Vec<String> = params
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        kept.push(format!("$skiptoken={token}"));
        let link = format!("{base}?{}", kept.join("&"));
        out.extend_from_slice(format!("\"@odata.nextLink\":{},", serde_json::Value::String(link)).as_bytes());
    }
    out.extend_from_slice(b"\"value\":[");
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match &select {
            Some(fields) => out.extend_from_slice(&project(body, fields)),
            None => out.extend_from_slice(body),
        }
    }
    out.extend_from_slice(b"]}");
    let answer = ([(header::CONTENT_TYPE, "application/json; odata.metadata=minimal")], out);
    Ok(AuditNote::rows(bodies.len()).attach(answer))
}

/// `$select`: keeps the named top-level properties.
fn project(body: &[u8], fields: &[String]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let kept: serde_json::Map<String, serde_json::Value> =
        map.into_iter().filter(|(k, _)| fields.iter().any(|f| f.eq_ignore_ascii_case(k))).collect();
    serde_json::to_vec(&kept).unwrap_or_default()
}

async fn get(
    State(state): State<AppState>,
    caller: Caller,
    kind: LogKind,
    resource: &'static str,
    id: String,
) -> ApiResult<Response> {
    let org = caller.org().to_string();
    let engine = state.engine.clone();
    let lookup = id.clone();
    let body = tokio::task::spawn_blocking(move || engine.latest_body(&org, kind, &lookup)).await??;
    let body = body.ok_or_else(|| ApiError::NotFound(format!("auditLogs/{resource}('{id}') does not exist")))?;
    // The record exactly as stored, like the list.
    let answer = ([(header::CONTENT_TYPE, "application/json; odata.metadata=minimal")], body);
    Ok(AuditNote { rows: Some(1), target: Some(id), detail: None }.attach(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let pairs = parse_query(Some("%24filter=userId+eq+%27a%27&$top=5&x"));
        assert_eq!(pairs[0], ("$filter".into(), "userId eq 'a'".into()));
        assert_eq!(pairs[1], ("$top".into(), "5".into()));
        assert_eq!(pairs[2], ("x".into(), "".into()));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode(&percent_encode("a b&c='d'")), "a b&c='d'");
    }
}
