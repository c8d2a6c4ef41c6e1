//! Authentication and authorisation of every request.
//!
//! [`guard`] runs in front of each route with that route's [`RouteSpec`]: it verifies the
//! credential (a bearer API key, or the session cookie plus a CSRF token on state-changing
//! requests), checks the route's permission against the matrix in [`signet_auth::role`],
//! inserts the [`Caller`] handlers take their organisation from, and records the access in the
//! organisation's own activity log ([`crate::access_log`]).
//!
//! A handler can only learn its organisation from [`Caller`], and a `Caller` exists only after
//! the check passed: a route cannot forget the check.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use signet_auth::{Permission, Principal};

use crate::access_log;
use crate::error::ApiError;
use crate::routes::{Access, RouteSpec};
use crate::AppState;

/// Name of the console's session cookie.
pub const SESSION_COOKIE: &str = "signet_session";
/// Header carrying the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The verified caller of a request: who, for which organisation, from where.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The session's CSRF token, for session callers.
    pub csrf: Option<String>,
}

impl Caller {
    /// The organisation the request is confined to, from the verified credential.
    pub fn org(&self) -> &str {
        &self.principal.org
    }

    pub fn allows(&self, permission: Permission) -> bool {
        self.principal.allows(permission)
    }

    /// Fails with 403 unless the caller holds `permission` (for checks that depend on the
    /// request body, such as the kind of key being created).
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        match self.allows(permission) {
            true => Ok(()),
            false => Err(ApiError::Forbidden(format!("this needs the {permission:?} permission"))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // Only reachable if a route were built outside the route table.
            ApiError::Internal("route has no access check".into())
        })
    }
}

/// The client address: as [`crate::forwarded::resolve`] found it (the TCP peer, or behind a
/// trusted proxy the address it forwarded for).
pub fn client_address(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    match request_extensions.get::<crate::forwarded::ClientAddress>() {
        Some(crate::forwarded::ClientAddress(address)) => Some(*address),
        None => request_extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip()),
    }
}

/// Value of a cookie in the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, token) = t.split_once(' ').ok_or(())?;
        match scheme.eq_ignore_ascii_case("bearer") {
            true => Ok(token.trim()),
            false => Err(()),
        }
    }))
}

enum Verified {
    Anonymous,
    Caller(Caller),
}

/// Verifies the credential of a request, if any. A credential that is present but wrong is
/// an error (401), not a fallback to anonymous: a client with a revoked key must find out.
fn verify(state: &AppState, request: &Request) -> Result<Verified, ApiError> {
    let headers = request.headers();
    let address = client_address(request.extensions());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(token) = bearer(headers) {
        let token =
            token.map_err(|()| ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into()))?;
        let principal = state
            .directory
            .authenticate_key(token)
            .ok_or_else(|| ApiError::Unauthorized("the API key is not valid (unknown, wrong or revoked)".into()))?;
        return Ok(Verified::Caller(Caller { principal: Arc::new(principal), address, user_agent, csrf: None }));
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(Verified::Anonymous);
    };
    let now = signet_model::time::now_micros();
    let Some(session) = state.sessions.lookup(token, now) else {
        return Err(ApiError::Unauthorized("the session has expired or ended; sign in again".into()));
    };
    let Some(principal) = state.directory.principal_for_user(&session.user_id) else {
        state.sessions.remove(token);
        return Err(ApiError::Unauthorized("the account no longer exists or is disabled".into()));
    };
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !signet_auth::secret::digests_equal(sent, &session.csrf) {
            return Err(ApiError::Forbidden(format!(
                "missing or wrong {CSRF_HEADER} header: state-changing requests from the console must carry the session's CSRF token"
            )));
        }
    }
    Ok(Verified::Caller(Caller { principal: Arc::new(principal), address, user_agent, csrf: Some(session.csrf) }))
}

/// The room a request holds in the ingest queue while its body is read and parsed
/// ([`signet_store::Pipeline::admit`]); the handler releases it just before it submits the
/// events, and it is released with the request otherwise.
#[derive(Clone, Debug)]
pub struct Admitted(pub Arc<signet_store::Admission>);

/// What the queue counts for a body of `declared` bytes: the records' bytes plus 256 per event
/// (`Pipeline::submit`); a quarter more covers that for records of 1 KB and more.
pub(crate) fn queued_size(declared: usize) -> usize {
    declared.saturating_add(declared / 4)
}

/// Answers a request with an error without keeping its body: the body is read and dropped
/// chunk by chunk (bounded time, no buffering), so that the client, which is still sending,
/// receives the answer instead of a reset connection.
async fn refuse_unread(request: Request, error: ApiError, limit: usize) -> Response {
    use futures::StreamExt;
    let mut stream = request.into_body().into_data_stream();
    let drained = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drained).await;
    error.into_response()
}

/// The middleware in front of every route: authenticate, authorise, run, record.
pub async fn guard(
    State((state, spec)): State<(AppState, &'static RouteSpec)>,
    mut request: Request,
    next: Next,
) -> Response {
    // Public routes ignore credentials: a stale cookie must not stop anyone signing in.
    if spec.access == Access::Public {
        return next.run(request).await;
    }
    let verified = match verify(&state, &request) {
        Ok(verified) => verified,
        Err(err) => return err.into_response(),
    };
    let caller = match verified {
        Verified::Anonymous => {
            return ApiError::Unauthorized("sign in, or send `Authorization: Bearer <key>`".into()).into_response()
        }
        Verified::Caller(caller) => caller,
    };
    if let Access::Needs(permission) = spec.access {
        if !caller.allows(permission) {
            let denied = ApiError::Forbidden(format!("your role does not include {permission:?}"));
            access_log::record_denied(&state, &caller, spec, request.uri());
            return denied.into_response();
        }
    }
    // Writes are turned away before their body is read: when the disk is below its reserve
    // (507), or when every ingest slot is busy or the queue has no room for the body (503), so
    // that memory stays bounded and an overloaded server does not parse what it must refuse.
    let _slot = if spec.access == Access::Needs(signet_auth::Permission::IngestEvents) {
        if let Err(full) = state.engine.disk().check() {
            return refuse_unread(request, ApiError::Store(full), state.config.max_body_bytes).await;
        }
        // A plain body is admitted for its declared size: concurrent requests each hold room
        // in the queue while their bodies are read and parsed, so that they are not all parsed
        // and then refused for the room the others took (`Pipeline::admit`).
        let declared = crate::body_pool::declared_length(request.headers());
        let pipeline = state.engine.pipeline();
        let admitted = state.ingest_slots.clone().try_acquire_owned().ok().and_then(|permit| match declared {
            None => Some((permit, None)),
            // Past max_body_bytes the read answers 413: no more room is held than that.
            Some(bytes) => pipeline
                .admit(queued_size(bytes.min(state.config.max_body_bytes)))
                .map(|admission| (permit, Some(admission))),
        });
        let Some((permit, admission)) = admitted else {
            pipeline.metrics().overloaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let busy = ApiError::Store(signet_store::StoreError::Overloaded { retry_after_secs: 1 });
            return refuse_unread(request, busy, state.config.max_body_bytes).await;
        };
        if let Some(admission) = admission {
            request.extensions_mut().insert(Admitted(Arc::new(admission)));
        }
        Some(permit)
    } else {
        None
    };
    let uri = request.uri().clone();
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    access_log::record(&state, &caller, spec, &uri, response).await
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("signet_session=; Max-Age=0"))
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    let text = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("signet_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_parse() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; signet_session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "signet_session"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        assert!(bearer(&headers).is_none());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer sgk_x"));
        assert_eq!(bearer(&headers), Some(Ok("sgk_x")));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), Some(Err(())));
    }
}
