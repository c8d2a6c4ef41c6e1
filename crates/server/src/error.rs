//! The one place where errors become HTTP responses. Every error body has the Microsoft Graph
//! / OData shape `{"error": {"code": "...", "message": "..."}}`, so Graph clients and scripts
//! parse Signet's errors as they parse Graph's. Internal details are logged, never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use signet_auth::AuthError;
use signet_query::QueryError;
use signet_store::StoreError;
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No credential, or one that is not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential without the permission.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many sign-in attempts from this address; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// The access could not be recorded in the access log, so its answer is withheld.
    #[error("the access could not be recorded in the audit log; try again shortly")]
    AuditUnavailable,
    #[error(transparent)]
    Auth(#[from] signet_auth::AuthError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A service Signet depends on (an identity provider) cannot be reached or answers wrongly.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "Request_ResourceNotFound"),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Authorization_RequestDenied"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::AuditUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "BadGateway"),
            ApiError::Auth(AuthError::Invalid(_)) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Auth(AuthError::NotFound(_)) => (StatusCode::NOT_FOUND, "Request_ResourceNotFound"),
            ApiError::Auth(AuthError::Conflict(_)) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Auth(AuthError::Forbidden(_)) => (StatusCode::FORBIDDEN, "Authorization_RequestDenied"),
            ApiError::Auth(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
            ApiError::Query(QueryError::Unsupported(_)) => (StatusCode::BAD_REQUEST, "Request_UnsupportedQuery"),
            ApiError::Query(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Store(StoreError::Query(_)) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Store(StoreError::Overloaded { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::Store(StoreError::ShuttingDown) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::Store(StoreError::WriterFailed(_)) => (StatusCode::SERVICE_UNAVAILABLE, "WriterStopped"),
            ApiError::Store(StoreError::Trust(_)) => (StatusCode::SERVICE_UNAVAILABLE, "TamperEvidenceUnavailable"),
            ApiError::Store(StoreError::DiskFull { .. }) => (StatusCode::INSUFFICIENT_STORAGE, "InsufficientStorage"),
            ApiError::Store(_) | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Store(StoreError::Overloaded { .. } | StoreError::ShuttingDown | StoreError::Query(_)) => self.to_string(),
            ApiError::Store(StoreError::DiskFull { .. }) => {
                "the server's disk is full: nothing of this request was stored; retry later (ingest resumes by itself once space is freed)".into()
            }
            ApiError::Store(StoreError::WriterFailed(_)) => {
                "the event writer stopped after a failed disk write; nothing more is accepted until an operator restarts Signet".into()
            }
            ApiError::Store(StoreError::Trust(_)) => {
                "tree heads cannot be signed on this node right now; an administrator should run `signet verify` \
                 (details in the server log)"
                    .into()
            }
            ApiError::Store(_) | ApiError::Internal(_) => "internal error; see the server log".into(),
            ApiError::Auth(AuthError::Io { .. } | AuthError::Corrupt { .. } | AuthError::Internal(_)) => {
                "internal error; see the server log".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            error!(error = %self, status = status.as_u16(), "request failed");
        }
        let body = json!({ "error": { "code": code, "message": self.public_message() } });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"signet\""));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::INSUFFICIENT_STORAGE
        {
            let retry_after = match &self {
                ApiError::Store(StoreError::Overloaded { retry_after_secs }) => *retry_after_secs,
                ApiError::TooManyRequests { retry_after_secs } => *retry_after_secs,
                _ => 5,
            };
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// A request body as axum read it: over `limit` is 413 (`max_body_bytes`), anything else that
/// kept it from being read is 400.
pub fn request_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> ApiResult<axum::body::Bytes> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
        _ => ApiError::BadRequest(format!("could not read the request body: {rejection}")),
    })
}

/// Request body encodings Signet decompresses (`Content-Encoding`).
pub const CONTENT_ENCODINGS: [&str; 3] = ["gzip", "deflate", "zstd"];

/// Refuses a request body in an encoding Signet cannot decompress with a 415 that says which
/// it can (the decompression layer's own 415 has no body).
pub async fn accepted_content_encoding(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let encoding = request
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => next.run(request).await,
        Some(e) if CONTENT_ENCODINGS.contains(&e) => next.run(request).await,
        Some(other) => {
            let accepted = CONTENT_ENCODINGS.join(", ");
            let mut response = ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {other} is not accepted: send the body uncompressed or as {accepted}"
            ))
            .into_response();
            // RFC 9110 12.5.3: a 415 for a content coding says which codings are accepted.
            if let Ok(accepted) = axum::http::HeaderValue::from_str(&accepted) {
                response.headers_mut().insert(axum::http::header::ACCEPT_ENCODING, accepted);
            }
            response
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(err.to_string())
    }
}
