//! OpenID Connect sign-in to the console: `GET /api/v1/auth/providers`,
//! `GET /api/v1/auth/oidc/{provider}/login` (to the provider, with state, nonce and PKCE) and
//! `GET /api/v1/auth/oidc/{provider}/callback` (code exchange, ID token checks, the userinfo
//! endpoint for claims the ID token lacks, account, session).
//!
//! Every callback, successful or not, is a sign-in event in the provider's organisation's log,
//! with an Entra error code: 50057 disabled account, 50105 no role while one is required,
//! 50020 an identity that cannot be given an account, 50012 a token that fails its checks,
//! 7000215 a client secret the provider rejects, 54005 a code already used, 65004 the user
//! declined at the provider, 9002313 a callback that matches no sign-in of this browser.
//! The browser always comes back to the console: to `/` signed in, or to `/?sso_error=...`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_auth::oidc::{
    self, Discovery, Expected, Identity, PendingError, PendingLogins, ProviderSettings, TokenError,
};
use signet_auth::{ExternalIdentity, ExternalLogin, ExternalSignIn, Role, Secret};

use crate::accounts::SignInRecord;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Cookie tying a callback to the browser that started the sign-in.
const BINDING_COOKIE: &str = "signet_oidc";
/// Largest document Signet reads from a provider.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Discovery documents are read again after this long (keys rotate more often: see below).
const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
/// A key set is fetched again for an unknown key id at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(30);

mod codes {
    pub const TOKEN_INVALID: i64 = 50012;
    pub const NOT_LINKABLE: i64 = 50020;
    pub const DISABLED: i64 = 50057;
    pub const NO_ROLE: i64 = 50105;
    pub const CODE_REDEEMED: i64 = 54005;
    pub const DECLINED: i64 = 65004;
    pub const BAD_SECRET: i64 = 7000215;
    pub const BAD_REQUEST: i64 = 9002313;
}

/// What Signet has read from a provider.
struct Metadata {
    discovery: Discovery,
    keys: JwkSet,
    discovered: Instant,
    keys_fetched: Instant,
}

/// A configured provider and what Signet has learned about it.
pub struct Provider {
    pub settings: ProviderSettings,
    roles: BTreeMap<String, Role>,
    secret: Option<Secret>,
    org: String,
    metadata: tokio::sync::Mutex<Option<Arc<Metadata>>>,
}

/// The configured providers, the sign-ins in progress and the HTTP client to reach them.
pub struct Providers {
    by_name: HashMap<String, Provider>,
    order: Vec<String>,
    pending: PendingLogins,
    http: reqwest::Client,
    /// Sessions to end at their provider too when they sign out (`sign_out`), by the session
    /// id's digest: the provider and the ID token the sign-in received (for `id_token_hint`).
    /// Kept by this node only, in memory.
    sign_outs: parking_lot::Mutex<HashMap<String, SignOut>>,
}

struct SignOut {
    provider: String,
    id_token: Secret,
    signed_in: Instant,
}

/// Sessions remembered for a provider sign-out at most (the oldest are dropped beyond it).
const MAX_SIGN_OUTS: usize = 100_000;

impl Providers {
    /// Checks every provider's settings (and reads secrets from files); `home_org` is the
    /// organisation of providers that name none.
    pub fn new(settings: &[ProviderSettings], home_org: &str) -> Result<Providers, String> {
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for provider in settings {
            let roles = provider.check()?;
            let secret = provider.load_secret()?;
            let org = provider.organization.clone().unwrap_or_else(|| home_org.to_string());
            if by_name.contains_key(&provider.name) {
                return Err(format!("two oidc providers are named {:?}", provider.name));
            }
            order.push(provider.name.clone());
            by_name.insert(
                provider.name.clone(),
                Provider { settings: provider.clone(), roles, secret, org, metadata: tokio::sync::Mutex::new(None) },
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Providers { by_name, order, pending: PendingLogins::default(), http, sign_outs: Default::default() })
    }

    /// Remembers that the session `token` signed in through `provider` with `id_token`, when
    /// the provider is to be signed out of with it. Sessions older than `lifetime` are
    /// forgotten meanwhile.
    fn remember_sign_out(&self, token: &Secret, provider: &Provider, id_token: Secret, lifetime: Duration) {
        if !provider.settings.sign_out {
            return;
        }
        let mut sign_outs = self.sign_outs.lock();
        sign_outs.retain(|_, s| s.signed_in.elapsed() < lifetime);
        if sign_outs.len() >= MAX_SIGN_OUTS {
            if let Some(oldest) = sign_outs.iter().min_by_key(|(_, s)| s.signed_in).map(|(k, _)| k.clone()) {
                sign_outs.remove(&oldest);
            }
        }
        let entry = SignOut { provider: provider.settings.name.clone(), id_token, signed_in: Instant::now() };
        sign_outs.insert(signet_auth::secret::token_digest(token.expose()), entry);
    }

    /// Where to send the browser of a session that signs out, to sign out of its provider too:
    /// `None` for sessions not made through a provider with `sign_out`, or when the provider
    /// has no end-session endpoint.
    pub async fn sign_out_url(&self, session_token: &str) -> Option<String> {
        let sign_out = self.sign_outs.lock().remove(&signet_auth::secret::token_digest(session_token))?;
        let provider = self.by_name.get(&sign_out.provider)?;
        let metadata = match self.metadata(provider, false).await {
            Ok(metadata) => metadata,
            Err(err) => {
                tracing::warn!(provider = %sign_out.provider, error = %err, "cannot sign out of the identity provider");
                return None;
            }
        };
        oidc::end_session_url(&metadata.discovery, &provider.settings, sign_out.id_token.expose())
    }

    /// Shares the sign-ins in progress with the other nodes through `set` (when there is one):
    /// the provider may then send the browser back to any node.
    pub fn share_pending(mut self, set: Option<Box<dyn signet_auth::document::EntrySet>>) -> Providers {
        if let Some(set) = set {
            self.pending = PendingLogins::shared(set);
        }
        self
    }

    /// Deletes the shared entries of sign-ins in progress that are over anyway.
    pub fn forget_old_sign_ins(&self, now_us: i64) -> std::io::Result<()> {
        self.pending.forget_old(now_us)
    }

    pub fn none() -> Providers {
        Providers::new(&[], signet_model::OrgId::DEFAULT).expect("no providers, no errors")
    }

    fn get(&self, name: &str) -> ApiResult<&Provider> {
        self.by_name.get(name).ok_or_else(|| ApiError::NotFound(format!("no identity provider named {name:?}")))
    }

    /// Names of the organisations' providers, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let bytes = read_limited(response).await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not the expected JSON: {e}"))
    }

    /// The provider's discovery document and keys, fetched when missing or stale;
    /// `refresh_keys` fetches the key set again (a token named a key Signet has not seen).
    async fn metadata(&self, provider: &Provider, refresh_keys: bool) -> Result<Arc<Metadata>, String> {
        let mut slot = provider.metadata.lock().await;
        let fresh = slot.as_ref().filter(|m| m.discovered.elapsed() < DISCOVERY_TTL).cloned();
        let metadata = match fresh {
            Some(current) if !refresh_keys => return Ok(current),
            Some(current) if current.keys_fetched.elapsed() < JWKS_REFRESH_MIN => return Ok(current),
            Some(current) => {
                let keys = self.fetch_json::<JwkSet>(&current.discovery.jwks_uri).await?;
                Metadata {
                    discovery: current.discovery.clone(),
                    keys,
                    discovered: current.discovered,
                    keys_fetched: Instant::now(),
                }
            }
            None => {
                let url = Discovery::url(&provider.settings.issuer);
                let discovery: Discovery = self.fetch_json(&url).await?;
                discovery.check(&provider.settings.issuer)?;
                let keys = self.fetch_json::<JwkSet>(&discovery.jwks_uri).await?;
                Metadata { discovery, keys, discovered: Instant::now(), keys_fetched: Instant::now() }
            }
        };
        let metadata = Arc::new(metadata);
        *slot = Some(metadata.clone());
        Ok(metadata)
    }
}

async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES) {
        return Err("the answer is too large".into());
    }
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err("the answer is too large".into());
        }
    }
    Ok(body)
}

/// `GET /api/v1/auth/providers`: the sign-in buttons of the console's sign-in page.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let providers = &state.oidc;
    let value: Vec<Value> = providers
        .names()
        .filter_map(|name| providers.by_name.get(name))
        .map(|p| {
            json!({
                "name": p.settings.name,
                "displayName": p.settings.label(),
                "loginUrl": format!("/api/v1/auth/oidc/{}/login", p.settings.name),
            })
        })
        .collect();
    Json(json!({ "value": value }))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    no_store(response)
}

fn binding_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    // Lax, not Strict: the callback is a cross-site navigation from the provider.
    let text = format!(
        "{BINDING_COOKIE}={value}; Path=/api/v1/auth/oidc/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("signet_oidc=; Max-Age=0"))
}

/// `GET /api/v1/auth/oidc/{provider}/login`: sends the browser to the provider. Not throttled
/// (the callback is, as an attempt); sign-ins in progress are bounded instead.
pub async fn login(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let provider = state.oidc.get(&name)?;
    let now = signet_model::time::now_micros();
    let metadata = state.oidc.metadata(provider, false).await.map_err(|reason| {
        tracing::warn!(provider = %name, %reason, "identity provider unavailable");
        ApiError::BadGateway(format!("the identity provider {} cannot be reached: {reason}", provider.settings.label()))
    })?;
    let started = state.oidc.pending.start(&name, now);
    let location = oidc::authorization_url(&metadata.discovery, &provider.settings, &started);
    let mut response = redirect(&location);
    let cookie = binding_cookie(started.binding.expose(), oidc::PENDING_LIFETIME_SECS, state.config.secure_cookies);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    /// For the userinfo endpoint only; never logged or stored.
    access_token: Option<Secret>,
}

/// What the token endpoint gave for a code.
struct Tokens {
    id_token: String,
    access_token: Option<Secret>,
}

#[derive(Deserialize, Default)]
struct TokenRefusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A sign-in that did not come through: the code, what to tell the user, what to record.
struct Refusal {
    code: i64,
    reason: String,
    identity: Option<Identity>,
    user: Option<signet_auth::User>,
}

impl Refusal {
    fn new(code: i64, reason: impl Into<String>) -> Refusal {
        Refusal { code, reason: reason.into(), identity: None, user: None }
    }
}

/// Keeps provider-supplied text short and on one line before it is shown or stored.
fn tidy(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// `GET /api/v1/auth/oidc/{provider}/callback`: where the provider sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let provider = state.oidc.get(&name)?;
    let address = auth::client_address(request.extensions());
    let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let now = signet_model::time::now_micros();
    if let Some(retry_after_secs) = state.login.throttle(address.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])), now)
    {
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let binding = auth::cookie(request.headers(), BINDING_COOKIE).map(str::to_string);
    let query = callback_query(raw.as_deref());
    let outcome = finish(&state, provider, &name, &query, binding.as_deref(), now).await;
    let (user, identity, code, failure) = match &outcome {
        Ok((user, identity, _)) => (Some(user.clone()), Some(identity.clone()), 0, String::new()),
        Err(refusal) => (refusal.user.clone(), refusal.identity.clone(), refusal.code, refusal.reason.clone()),
    };
    let username = identity.as_ref().map(|i| i.username.clone()).unwrap_or_default();
    let method = format!("OpenID Connect ({})", provider.settings.label());
    let step_detail = if code == 0 { "Identity provider token accepted".to_string() } else { failure.clone() };
    SignInRecord {
        user: user.as_ref(),
        username: &username,
        code,
        failure: &failure,
        method: &method,
        step_detail: &step_detail,
        mfa: identity.as_ref().is_some_and(|i| i.mfa),
        issuer: Some(&provider.settings.issuer),
        address,
        user_agent: user_agent.as_deref(),
    }
    .store(&state, &provider.org)
    .await?;
    let mut response = match outcome {
        Ok((user, _, id_token)) => {
            let (token, _session) = state.sessions.create(&user.id, &user.org, now);
            state.oidc.remember_sign_out(&token, provider, id_token, state.config.session_lifetime);
            tracing::info!(user = %user.username, org = %user.org, provider = %name, "console sign-in through OpenID Connect");
            let mut response = redirect("/");
            let cookie = auth::session_cookie(
                token.expose(),
                state.config.session_lifetime.as_secs(),
                state.config.secure_cookies,
            );
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(refusal) => {
            tracing::warn!(provider = %name, code = refusal.code, reason = %refusal.reason, "OpenID Connect sign-in refused");
            let message = format!(
                "Sign-in through {} failed (AADSTS{}): {}",
                provider.settings.label(),
                refusal.code,
                refusal.reason
            );
            redirect(&format!("/?sso_error={}", oidc::percent_encode(&message)))
        }
    };
    response.headers_mut().append(header::SET_COOKIE, binding_cookie("", 0, state.config.secure_cookies));
    Ok(response)
}

/// The callback's fields from its query string (the first of repeated fields).
fn callback_query(raw: Option<&str>) -> CallbackQuery {
    let mut map = serde_json::Map::new();
    for (k, v) in crate::graph::parse_query(raw) {
        map.entry(k).or_insert(Value::String(v));
    }
    serde_json::from_value(Value::Object(map)).unwrap_or_default()
}

async fn finish(
    state: &AppState,
    provider: &Provider,
    name: &str,
    query: &CallbackQuery,
    binding: Option<&str>,
    now: i64,
) -> Result<(signet_auth::User, Identity, Secret), Refusal> {
    let Some(state_param) = query.state.as_deref() else {
        return Err(Refusal::new(codes::BAD_REQUEST, "the identity provider's answer has no state"));
    };
    let pending = state
        .oidc
        .pending
        .finish(state_param, binding, now)
        .map_err(|e| Refusal::new(codes::BAD_REQUEST, e.reason()))?;
    if pending.provider != name {
        return Err(Refusal::new(codes::BAD_REQUEST, PendingError::Unknown.reason()));
    }
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().map(tidy).unwrap_or_default();
        let code = if error == "access_denied" { codes::DECLINED } else { codes::TOKEN_INVALID };
        return Err(Refusal::new(code, format!("the identity provider answered {}: {detail}", tidy(error))));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Refusal::new(codes::BAD_REQUEST, "the identity provider's answer has no code"));
    };
    let unavailable = |reason: String| {
        Refusal::new(codes::TOKEN_INVALID, format!("the identity provider cannot be reached: {reason}"))
    };
    let metadata = state.oidc.metadata(provider, false).await.map_err(unavailable)?;
    let tokens = exchange(state, provider, &metadata.discovery, code, pending.verifier.expose()).await?;
    let id_token = tokens.id_token;
    let expected =
        Expected { issuer: &provider.settings.issuer, client_id: &provider.settings.client_id, nonce: &pending.nonce };
    let claims = match oidc::verify_id_token(&id_token, &metadata.keys, &expected) {
        Err(TokenError::UnknownKey(_)) => {
            // The provider may have rotated its keys since Signet last fetched them.
            let refreshed = state.oidc.metadata(provider, true).await.map_err(unavailable)?;
            oidc::verify_id_token(&id_token, &refreshed.keys, &expected)
        }
        other => other,
    }
    .map_err(|e| Refusal::new(codes::TOKEN_INVALID, e.to_string()))?;
    let mut claims = claims;
    if oidc::needs_userinfo(&claims, &provider.settings) {
        if let (Some(endpoint), Some(access_token)) = (&metadata.discovery.userinfo_endpoint, &tokens.access_token) {
            let userinfo = userinfo(state, endpoint, access_token).await?;
            oidc::merge_userinfo(&mut claims, userinfo)
                .map_err(|e| Refusal::new(codes::TOKEN_INVALID, e.to_string()))?;
        }
    }
    let identity = Identity::from_claims(&claims, &provider.settings)
        .map_err(|e| Refusal::new(codes::TOKEN_INVALID, e.to_string()))?;
    let role = provider.settings.role_claim.as_ref().map(|_| identity.role(&provider.roles));
    if provider.settings.require_role && role.flatten().is_none() {
        let claim = provider.settings.role_claim.as_deref().unwrap_or_default();
        let reason = if identity.role_values.is_empty() && oidc::claim_is_elsewhere(&claims, claim) {
            format!(
                "the provider left the {claim} claim out of the token and points elsewhere for it (Entra ID does so \
                 for a user in more than 200 groups): map app roles (the roles claim) instead"
            )
        } else {
            let values =
                if identity.role_values.is_empty() { "none".to_string() } else { identity.role_values.join(", ") };
            format!("no value of the role claim maps to a Signet role (values: {values})")
        };
        return Err(Refusal { identity: Some(identity), ..Refusal::new(codes::NO_ROLE, reason) });
    }
    let login = ExternalLogin {
        org: provider.org.clone(),
        identity: ExternalIdentity {
            provider: name.to_string(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
        },
        username: identity.username.clone(),
        display_name: identity.display_name.clone(),
        role,
    };
    let directory = state.directory.clone();
    let outcome = tokio::task::spawn_blocking(move || directory.sign_in_external(&login))
        .await
        .map_err(|e| Refusal::new(codes::TOKEN_INVALID, format!("internal error: {e}")))?
        .map_err(|e| Refusal {
            identity: Some(identity.clone()),
            ..Refusal::new(codes::NOT_LINKABLE, e.to_string())
        })?;
    match outcome {
        ExternalSignIn::Ready(user) => Ok((user, identity, Secret::new(id_token))),
        ExternalSignIn::Disabled(user) => Err(Refusal {
            identity: Some(identity),
            user: Some(user),
            ..Refusal::new(codes::DISABLED, "the account is disabled")
        }),
        ExternalSignIn::Refused(reason) => {
            Err(Refusal { identity: Some(identity), ..Refusal::new(codes::NOT_LINKABLE, reason) })
        }
    }
}

/// The claims of the provider's userinfo endpoint for an access token (OpenID Connect Core
/// §5.3): a JSON object. A signed or encrypted answer (`application/jwt`) is refused: Signet
/// asks for none.
async fn userinfo(
    state: &AppState,
    endpoint: &str,
    access_token: &Secret,
) -> Result<serde_json::Map<String, Value>, Refusal> {
    let failed = |reason: String| Refusal::new(codes::TOKEN_INVALID, format!("the userinfo endpoint: {reason}"));
    let response = state
        .oidc
        .http
        .get(endpoint)
        .header(header::ACCEPT, "application/json")
        .bearer_auth(access_token.expose())
        .send()
        .await
        .map_err(|e| failed(format!("cannot be reached: {e}")))?;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let bytes = read_limited(response).await.map_err(failed)?;
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    if !json {
        return Err(failed("the answer is not JSON (a signed or encrypted answer is not supported)".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| failed(format!("the answer is not a JSON object: {e}")))
}

/// Exchanges the code for tokens at the provider's token endpoint.
async fn exchange(
    state: &AppState,
    provider: &Provider,
    discovery: &Discovery,
    code: &str,
    verifier: &str,
) -> Result<Tokens, Refusal> {
    let settings = &provider.settings;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", settings.redirect_url.as_str()),
        ("code_verifier", verifier),
        ("client_id", settings.client_id.as_str()),
    ];
    let mut request = state.oidc.http.post(&discovery.token_endpoint).header(header::ACCEPT, "application/json");
    match &provider.secret {
        // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
        Some(secret) if discovery.uses_basic_auth() => {
            use base64::Engine as _;
            let pair =
                format!("{}:{}", oidc::percent_encode(&settings.client_id), oidc::percent_encode(secret.expose()));
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
            request = request.header(header::AUTHORIZATION, value);
        }
        Some(secret) => form.push(("client_secret", secret.expose())),
        None => {}
    }
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", oidc::percent_encode(v))).collect();
    let response = request
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .map_err(|e| Refusal::new(codes::TOKEN_INVALID, format!("the token endpoint cannot be reached: {e}")))?;
    let status = response.status();
    let bytes = read_limited(response)
        .await
        .map_err(|e| Refusal::new(codes::TOKEN_INVALID, format!("the token endpoint's answer: {e}")))?;
    if !status.is_success() {
        let refusal: TokenRefusal = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = match refusal.error.as_str() {
            "invalid_client" | "unauthorized_client" => codes::BAD_SECRET,
            "invalid_grant" => codes::CODE_REDEEMED,
            _ => codes::TOKEN_INVALID,
        };
        let detail = refusal.error_description.as_deref().map(tidy).unwrap_or_default();
        return Err(Refusal::new(
            code,
            format!("the token endpoint answered {status} {}: {detail}", tidy(&refusal.error)),
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::new(codes::TOKEN_INVALID, format!("the token endpoint's answer is not JSON: {e}")))?;
    let id_token = answer.id_token.ok_or_else(|| {
        Refusal::new(codes::TOKEN_INVALID, "the token endpoint sent no ID token (is the openid scope allowed?)")
    })?;
    Ok(Tokens { id_token, access_token: answer.access_token })
}
