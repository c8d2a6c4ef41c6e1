//! The web console: static assets compiled into the binary (no npm, no CDN, no build step),
//! served with a strict Content Security Policy. The console is a client of the public API
//! and nothing else: every page is built from the same routes scripts use.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Path (under `/assets/`), content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../console/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../console/app.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../console/charts.js")),
    ("explorer.js", "text/javascript; charset=utf-8", include_str!("../console/explorer.js")),
    ("pages.js", "text/javascript; charset=utf-8", include_str!("../console/pages.js")),
    ("util.js", "text/javascript; charset=utf-8", include_str!("../console/util.js")),
    ("favicon.svg", "image/svg+xml", include_str!("../console/favicon.svg")),
];

const INDEX: &str = include_str!("../console/index.html");

/// Scripts and styles only from this origin; no inline script, no framing, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A version tag for the assets: changes whenever any of them does (cache busting via ETag).
fn etag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, _, body) in ASSETS.iter().chain(std::iter::once(&("index", "", INDEX))) {
            for byte in name.bytes().chain(body.bytes()) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
        format!("\"{hash:016x}\"")
    })
}

fn page(content_type: &'static str, body: &'static str, request: &HeaderMap) -> Response {
    let tag = etag();
    let mut response = if request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(tag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /`: the console shell. Pages are routed in the browser (`/#/signins?...`), so every
/// view, with its filters and columns, is a bookmarkable URL.
pub async fn index(headers: HeaderMap) -> Response {
    page("text/html; charset=utf-8", INDEX, &headers)
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound(format!("no console asset {file:?}")))?;
    Ok(page(content_type, body, &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_need_no_network() {
        for (name, _, body) in ASSETS.iter().chain(std::iter::once(&("index.html", "", INDEX))) {
            // XML namespace names look like URLs but are identifiers, never fetched.
            let body = body.replace("http://www.w3.org/2000/svg", "SVG_NS");
            for forbidden in ["http://", "https://", "//cdn", "fonts.googleapis"] {
                let hits: Vec<&str> = body
                    .lines()
                    .filter(|l| l.contains(forbidden) && !l.contains("login.microsoftonline.com"))
                    .collect();
                assert!(hits.is_empty(), "{name} refers to the network: {hits:?}");
            }
        }
    }

    #[test]
    fn index_has_no_inline_script() {
        assert!(!INDEX.contains("<script>"), "inline scripts are blocked by the CSP");
        assert!(!INDEX.contains("style=\""), "inline styles are blocked by the CSP");
    }
}
