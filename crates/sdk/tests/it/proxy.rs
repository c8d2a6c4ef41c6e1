//! A loopback HTTP proxy in front of a real Signet that fails the first requests as scripted,
//! and notes when each request came.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

/// What the proxy does with one request; once the script is used up it forwards everything.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answers this status with `Retry-After` without forwarding (an overloaded server).
    Busy { status: u16, retry_after: u64 },
    /// Forwards the request (Signet stores it) and answers 502 (the answer lost on the way).
    ForwardThenFail,
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    script: Arc<Mutex<VecDeque<Fault>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
}

pub struct Proxy {
    pub base: String,
    shared: Shared,
}

impl Proxy {
    pub async fn start(upstream: &str, script: Vec<Fault>) -> Proxy {
        let shared = Shared {
            upstream: upstream.to_string(),
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
            http: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { base, shared }
    }

    /// The ingest requests that came, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().clone()
    }
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if method == Method::POST {
        shared.seen.lock().push(Seen { at: Instant::now() });
    }
    let fault = if method == Method::POST { shared.script.lock().pop_front() } else { None };
    if let Some(Fault::Busy { status, retry_after }) = fault {
        let status = StatusCode::from_u16(status).unwrap();
        return (status, [("retry-after", retry_after.to_string())], "busy").into_response();
    }
    let url = format!("{}{}", shared.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = shared.http.request(method, url).body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap();
    if let Some(Fault::ForwardThenFail) = fault {
        return (StatusCode::BAD_GATEWAY, "upstream answer lost").into_response();
    }
    (status, [("content-type", "application/json")], bytes).into_response()
}
