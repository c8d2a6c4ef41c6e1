//! A tower layer for axum applications that records, for every request of a signed-in user:
//! - user access (`UserAccessviaWeb` for browsers, `UserAccessviaWebServices` for API
//!   calls), at most once per user, access type and interval (Signet decides in the end; the
//!   layer only avoids sending what Signet would drop);
//! - the activity: the operation from the method and the route (`GET /accounts/{id}` is a
//!   `Retrieve`, `GET /accounts` a `RetrieveMultiple`, `POST /accounts` a `Create`,
//!   `PATCH|PUT` an `Update`, `DELETE` a `Delete`, `POST /leads/{id}/qualify` a `Qualify`), the
//!   entity from the path (`accounts` -> `account`), the record id from the route parameter,
//!   `ItemUrl`, `Query` and (when the handler says) `QueryResults`, the result, the client
//!   address and a correlation id.
//!
//! The organisation's audit settings (read from Signet, cached) are respected: what they turn
//! off is not sent. Handlers refine or replace what is recorded with an [`AuditActivity`]
//! response extension; the user comes from an [`AuditUser`] extension (put there by the
//! application's authentication, on the request or the response) or a custom extractor.
//! Each request gets a [`CorrelationId`] request extension, for activities a handler records
//! itself.
//!
//! Add it with `Router::layer`, so the matched route is known (outside the router the layer
//! falls back to guessing ids in the path).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, Method};
use axum::response::Response;
use parking_lot::Mutex;
use tower::{Layer, Service};
use tracing::warn;

use crate::event::{new_id, AccessType, Activity};
use crate::settings::Access;
use crate::Client;

/// The signed-in user of a request (a user principal name or another stable sign-in name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditUser(pub String);

/// The correlation id of a request: from `x-correlation-id` / `request-id`, or a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// What a handler says about its request's activity (a response extension).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditActivity {
    pub operation: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// The ids of the records a multiple-record view returned (`QueryResults`).
    pub results: Option<Vec<String>>,
    /// The handler recorded its activities itself: record only the user access.
    pub recorded: bool,
}

impl AuditActivity {
    /// A multiple-record view that returned these records.
    pub fn results(ids: impl IntoIterator<Item = impl Into<String>>) -> AuditActivity {
        AuditActivity { results: Some(ids.into_iter().map(Into::into).collect()), ..AuditActivity::default() }
    }

    /// The handler recorded the request's activities itself.
    pub fn recorded() -> AuditActivity {
        AuditActivity { recorded: true, ..AuditActivity::default() }
    }
}

type OfRequest = dyn Fn(&Request) -> Option<String> + Send + Sync;

/// The layer; clone it freely.
#[derive(Clone)]
pub struct SignetLayer {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    user_of: Box<OfRequest>,
    address_of: Box<OfRequest>,
    service_name: Option<String>,
    entity_names: HashMap<String, String>,
    skip_prefixes: Vec<String>,
    /// (user, access type) -> the interval last recorded, by this process.
    seen: Mutex<HashMap<(String, AccessType), u64>>,
}

const MAX_SEEN: usize = 100_000;

impl SignetLayer {
    /// Records through `client`; the user comes from an [`AuditUser`] extension.
    pub fn new(client: Client) -> SignetLayer {
        SignetLayer {
            shared: Arc::new(Shared {
                client,
                user_of: Box::new(|request| request.extensions().get::<AuditUser>().map(|u| u.0.clone())),
                address_of: Box::new(|request| {
                    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
                }),
                service_name: None,
                entity_names: HashMap::new(),
                skip_prefixes: Vec::new(),
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configure the layer before cloning it")
    }

    /// How to tell the signed-in user from a request (instead of the [`AuditUser`] extension).
    pub fn user(mut self, user_of: impl Fn(&Request) -> Option<String> + Send + Sync + 'static) -> Self {
        self.shared_mut().user_of = Box::new(user_of);
        self
    }

    /// How to tell the client's address from a request. The default is the TCP peer (from
    /// axum's `ConnectInfo`), which behind a reverse proxy is the proxy: there, pass the
    /// address your application already resolves from the proxy's `X-Forwarded-For` /
    /// `Forwarded` header, believing it only from your own proxies.
    pub fn client_address(mut self, address_of: impl Fn(&Request) -> Option<String> + Send + Sync + 'static) -> Self {
        self.shared_mut().address_of = Box::new(address_of);
        self
    }

    /// `ServiceName` of every activity.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.shared_mut().service_name = Some(name.into());
        self
    }

    /// The entity a path segment names, where the plural-to-singular rule is wrong
    /// (`people` -> `contact`).
    pub fn entity_name(mut self, segment: &str, entity: impl Into<String>) -> Self {
        self.shared_mut().entity_names.insert(segment.to_lowercase(), entity.into());
        self
    }

    /// Paths not recorded (health checks, static assets).
    pub fn skip_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.shared_mut().skip_prefixes.push(prefix.into());
        self
    }
}

impl<S> Layer<S> for SignetLayer {
    type Service = SignetService<S>;

    fn layer(&self, inner: S) -> SignetService<S> {
        SignetService { inner, shared: self.shared.clone() }
    }
}

#[derive(Clone)]
pub struct SignetService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for SignetService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let shared = self.shared.clone();
        let skipped = shared.skip_prefixes.iter().any(|p| request.uri().path().starts_with(p.as_str()));
        let correlation = request
            .headers()
            .get("x-correlation-id")
            .or_else(|| request.headers().get("request-id"))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(new_id, str::to_string);
        request.extensions_mut().insert(CorrelationId(correlation.clone()));
        let seen = (!skipped).then(|| Seen::of(&request, &shared, correlation));
        // The service that was made ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            if let Some(seen) = seen {
                seen.record(&shared, &response);
            }
            Ok(response)
        })
    }
}

/// What the layer noted of a request before handing it on.
struct Seen {
    user: Option<String>,
    access: AccessType,
    method: Method,
    route: Route,
    item_url: String,
    query: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    correlation: String,
}

impl Seen {
    fn of(request: &Request, shared: &Shared, correlation: String) -> Seen {
        let headers = request.headers();
        let browser = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        let template = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
        let route = Route::parse(template.as_deref(), request.uri().path(), request.method());
        Seen {
            user: (shared.user_of)(request),
            access: if browser { AccessType::Web } else { AccessType::WebServices },
            method: request.method().clone(),
            route,
            item_url: request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().path().to_string(), |p| p.to_string()),
            query: request.uri().query().filter(|q| !q.is_empty()).map(str::to_string),
            client_ip: (shared.address_of)(request),
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
            correlation,
        }
    }

    fn record(self, shared: &Shared, response: &Response) {
        let said = response.extensions().get::<AuditActivity>().cloned().unwrap_or_default();
        let user = response.extensions().get::<AuditUser>().map(|u| u.0.clone()).or(self.user.clone());
        let Some(user) = user else { return };
        let settings = shared.client.audit_settings().unwrap_or_default();
        if settings.records_user_access() && shared.first_in_interval(&user, self.access, settings.interval()) {
            let access = Activity::user_access(self.access, &user).correlation_id(&self.correlation);
            self.send(shared, self.with_request(access));
        }
        if said.recorded {
            return;
        }
        let Some(entity_segment) = said.entity.clone().or(self.route.entity.clone()) else { return };
        let entity = shared.entity_of(&entity_segment);
        let operation = said.operation.clone().unwrap_or_else(|| self.route.operation(&self.method));
        let access = match operation.as_str() {
            "Retrieve" => Access::Read,
            "RetrieveMultiple" => Access::ReadMultiple,
            _ => Access::Change,
        };
        if !settings.records(access, &entity) {
            return;
        }
        let status = response.status();
        let mut activity = Activity::new(operation)
            .user(&user)
            .entity(&entity, said.entity_id.clone().or(self.route.entity_id.clone()))
            .item_url(&self.item_url)
            .correlation_id(&self.correlation)
            .result_status(if status.is_client_error() || status.is_server_error() { "Failed" } else { "Succeeded" });
        if access == Access::ReadMultiple {
            activity.query = self.query.clone();
            activity.query_results = said.results.map(|ids| ids.join(","));
        }
        if let Some(service) = &shared.service_name {
            activity = activity.service(service, None);
        }
        let activity = self.with_request(activity);
        self.send(shared, activity);
    }

    fn with_request(&self, mut activity: Activity) -> Activity {
        activity.client_ip = self.client_ip.clone();
        activity.user_agent = self.user_agent.clone();
        activity
    }

    fn send(&self, shared: &Shared, activity: Activity) {
        if let Err(err) = shared.client.record(activity) {
            warn!(error = %err, "the Signet client did not take a request's audit record");
        }
    }
}

impl Shared {
    fn entity_of(&self, segment: &str) -> String {
        let segment = segment.to_lowercase();
        self.entity_names.get(&segment).cloned().unwrap_or_else(|| singular(&segment))
    }

    /// Whether this is the user's first access of this type in the current interval (as far
    /// as this process knows).
    fn first_in_interval(&self, user: &str, access: AccessType, interval: std::time::Duration) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let index = now.as_secs() / interval.as_secs().max(1);
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_SEEN {
            seen.clear();
        }
        seen.insert((user.to_lowercase(), access), index) != Some(index)
    }
}

/// The entity, record id and action a route names.
#[derive(Debug, Default, PartialEq, Eq)]
struct Route {
    /// The collection segment (`accounts`).
    entity: Option<String>,
    entity_id: Option<String>,
    /// A literal after the record id of a POST (`/leads/{id}/qualify`).
    action: Option<String>,
}

impl Route {
    /// From the matched route template (`/api/accounts/{id}`) and the path; without a template
    /// a segment that looks like an id (digits, a GUID) is taken for one.
    fn parse(template: Option<&str>, path: &str, method: &Method) -> Route {
        let actual: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let shape: Vec<bool> = match template {
            Some(template) => template
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.starts_with('{') || s.starts_with(':') || s.starts_with('*'))
                .collect(),
            None => actual.iter().map(|s| looks_like_id(s)).collect(),
        };
        let mut route = Route::default();
        for (i, is_param) in shape.iter().enumerate() {
            let Some(value) = actual.get(i) else { break };
            match (is_param, &route.entity, &route.entity_id) {
                (false, Some(_), Some(_)) if *method == Method::POST && i + 1 == shape.len() => {
                    route.action = Some(value.to_string());
                }
                (false, _, _) => {
                    route.entity = Some(value.to_string());
                    route.entity_id = None;
                }
                (true, Some(_), None) => route.entity_id = Some(value.to_string()),
                (true, _, _) => {}
            }
        }
        route
    }

    fn operation(&self, method: &Method) -> String {
        let with_id = self.entity_id.is_some();
        match (method, with_id, &self.action) {
            (&Method::POST, true, Some(action)) => capitalised(action),
            (&Method::GET | &Method::HEAD, true, _) => "Retrieve".into(),
            (&Method::GET | &Method::HEAD, false, _) => "RetrieveMultiple".into(),
            (&Method::POST, false, _) => "Create".into(),
            (&Method::POST | &Method::PUT | &Method::PATCH, _, _) => "Update".into(),
            (&Method::DELETE, _, _) => "Delete".into(),
            (other, _, _) => capitalised(&other.as_str().to_lowercase()),
        }
    }
}

fn looks_like_id(segment: &str) -> bool {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let guid = segment.len() == 36 && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    digits || guid
}

/// `qualify` -> `Qualify`, `send-email` -> `SendEmail`.
fn capitalised(action: &str) -> String {
    action
        .split(['-', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
        })
        .collect()
}

/// `accounts` -> `account`, `opportunities` -> `opportunity`, `addresses` -> `address`.
fn singular(segment: &str) -> String {
    if let Some(stem) = segment.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if segment.ends_with(suffix) {
            return segment[..segment.len() - 2].to_string();
        }
    }
    match segment.strip_suffix('s') {
        Some(stem) if !segment.ends_with("ss") && !segment.ends_with("us") && !stem.is_empty() => stem.to_string(),
        _ => segment.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_address_is_the_peer_unless_the_application_says() {
        let client = Client::builder("http://127.0.0.1:9", "key").build().unwrap();
        let request = || {
            let mut request = Request::builder()
                .uri("/api/accounts/42")
                .header("x-forwarded-for", "198.51.100.4")
                .body(axum::body::Body::empty())
                .unwrap();
            request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 2], 5000))));
            request
        };
        let peer = SignetLayer::new(client.clone());
        assert_eq!(Seen::of(&request(), &peer.shared, "c".into()).client_ip.as_deref(), Some("10.0.0.2"));
        let behind_proxy = SignetLayer::new(client)
            .client_address(|r| r.headers().get("x-forwarded-for")?.to_str().ok().map(str::to_string));
        let seen = Seen::of(&request(), &behind_proxy.shared, "c".into());
        assert_eq!(seen.client_ip.as_deref(), Some("198.51.100.4"));
    }

    fn parse(template: Option<&str>, path: &str, method: Method) -> (Route, String) {
        let route = Route::parse(template, path, &method);
        let operation = route.operation(&method);
        (route, operation)
    }

    #[test]
    fn routes_name_the_operation_entity_and_record() {
        let (route, op) = parse(Some("/api/accounts/{id}"), "/api/accounts/42", Method::GET);
        assert_eq!(
            (route.entity.as_deref(), route.entity_id.as_deref(), op.as_str()),
            (Some("accounts"), Some("42"), "Retrieve")
        );
        let (route, op) = parse(Some("/api/accounts"), "/api/accounts", Method::GET);
        assert_eq!(
            (route.entity.as_deref(), route.entity_id, op.as_str()),
            (Some("accounts"), None, "RetrieveMultiple")
        );
        assert_eq!(parse(Some("/api/accounts"), "/api/accounts", Method::POST).1, "Create");
        assert_eq!(parse(Some("/api/accounts/{id}"), "/api/accounts/7", Method::PATCH).1, "Update");
        assert_eq!(parse(Some("/api/accounts/{id}"), "/api/accounts/7", Method::DELETE).1, "Delete");
        let (route, op) = parse(Some("/api/leads/{id}/qualify"), "/api/leads/9/qualify", Method::POST);
        assert_eq!(
            (route.entity.as_deref(), route.entity_id.as_deref(), op.as_str()),
            (Some("leads"), Some("9"), "Qualify")
        );
        let (route, op) = parse(Some("/api/accounts/{id}/contacts"), "/api/accounts/9/contacts", Method::GET);
        assert_eq!(
            (route.entity.as_deref(), route.entity_id, op.as_str()),
            (Some("contacts"), None, "RetrieveMultiple")
        );
    }

    #[test]
    fn without_a_template_ids_are_guessed() {
        let guid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        let (route, op) = parse(None, &format!("/accounts/{guid}"), Method::GET);
        assert_eq!(
            (route.entity.as_deref(), route.entity_id.as_deref(), op.as_str()),
            (Some("accounts"), Some(guid), "Retrieve")
        );
        assert_eq!(parse(None, "/reports/weekly", Method::GET).0.entity.as_deref(), Some("weekly"));
    }

    #[test]
    fn collections_become_entity_names() {
        for (plural, entity) in [
            ("accounts", "account"),
            ("opportunities", "opportunity"),
            ("addresses", "address"),
            ("boxes", "box"),
            ("status", "status"),
            ("access", "access"),
            ("contact", "contact"),
        ] {
            assert_eq!(singular(plural), entity, "{plural}");
        }
        assert_eq!(capitalised("send-email"), "SendEmail");
        assert_eq!(capitalised("qualify"), "Qualify");
    }
}
