//! Sign-in, sign-out, "who am I", "my sign-ins", accounts, API keys and security settings.
//!
//! Every console sign-in attempt is itself a sign-in event in Signet's log, with the Entra
//! error code of its outcome (50126 wrong password, 50034 unknown account, 50053 locked,
//! 50057 disabled, 50056 no password): the product audits itself.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use signet_auth::{KeyKind, LoginOutcome, NewUser, Principal, Role, Secret, Subject, User, UserPatch};
use signet_model::schema::find_column;
use signet_model::LogKind;
use signet_query::{CmpOp, Expr, Literal};

use crate::access_log::AuditNote;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::ingest::SIGNET_APP_ID;
use crate::AppState;

/// Largest sign-in request body.
const LOGIN_BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: Secret,
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON request body with a clear error.
fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        ApiError::BadRequest(format!("invalid request body at {path}: {}", e.inner()))
    })
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(request: Request, limit: usize) -> ApiResult<T> {
    if !is_json(request.headers()) {
        return Err(ApiError::UnsupportedMediaType("send the request as application/json".into()));
    }
    let bytes =
        axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| ApiError::PayloadTooLarge { limit })?;
    parse_body(&bytes)
}

/// One attempt to sign in to Signet itself, as its own sign-in log records it.
pub(crate) struct SignInRecord<'a> {
    pub user: Option<&'a User>,
    /// The name the attempt was made with (or the identity provider's).
    pub username: &'a str,
    /// Entra error code of the outcome (0: success).
    pub code: i64,
    pub failure: &'a str,
    /// `Password`, or the identity provider's name.
    pub method: &'a str,
    pub step_detail: &'a str,
    /// The identity provider reports multi-factor authentication.
    pub mfa: bool,
    /// The OpenID Connect issuer, for federated sign-ins.
    pub issuer: Option<&'a str>,
    pub address: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a str>,
}

impl SignInRecord<'_> {
    fn event(&self) -> Value {
        let now = signet_model::time::format_time(signet_model::time::now_micros());
        json!({
            "id": signet_auth::secret::random_uuid(),
            "createdDateTime": now,
            "userDisplayName": self.user.map(|u| u.display_name.as_str()),
            "userPrincipalName": self.username,
            "userId": self.user.map(|u| u.id.as_str()),
            "userType": "member",
            "appId": SIGNET_APP_ID,
            "appDisplayName": "Signet console",
            "resourceDisplayName": "Signet",
            "resourceId": SIGNET_APP_ID,
            "ipAddress": self.address.map(|a| a.to_string()),
            "clientAppUsed": "Browser",
            "userAgent": self.user_agent,
            "isInteractive": true,
            "signInEventTypes": ["interactiveUser"],
            "authenticationRequirement": if self.mfa { "multiFactorAuthentication" } else { "singleFactorAuthentication" },
            "conditionalAccessStatus": "notApplied",
            "tokenIssuerType": if self.issuer.is_none() { Some("AzureAD") } else { None },
            "tokenIssuerName": self.issuer,
            "status": { "errorCode": self.code, "failureReason": self.failure, "additionalDetails": null },
            "authenticationDetails": [{
                "authenticationMethod": self.method,
                "authenticationStepDateTime": now,
                "succeeded": self.code == 0,
                "authenticationStepResultDetail": self.step_detail,
                "authenticationStepRequirement": "Primary authentication",
            }],
        })
    }

    /// Stores the attempt in `org`'s sign-in log. An attempt that cannot be recorded signs
    /// no one in: the caller fails with 503.
    pub async fn store(&self, state: &AppState, org: &str) -> ApiResult<()> {
        let bytes = serde_json::to_vec(&self.event()).map_err(|e| ApiError::Internal(e.to_string()))?;
        let normalized = signet_model::normalize(LogKind::SignIn, &bytes)
            .map_err(|e| ApiError::Internal(format!("a console sign-in does not normalise: {}", e.reason)))?;
        crate::ingest::store_events(state, org, vec![normalized]).await.map_err(|err| {
            tracing::error!(error = %err, "could not record a console sign-in");
            ApiError::AuditUnavailable
        })?;
        Ok(())
    }
}

/// What the console needs about the caller.
fn me_json(principal: &Principal, csrf: Option<&str>) -> Value {
    let (kind, username, display_name, role) = match (&principal.subject, &principal.grant) {
        (Subject::User { username, display_name, .. }, signet_auth::Grant::Account(role)) => {
            ("account", username.as_str(), display_name.as_str(), role.map(Role::as_str))
        }
        (Subject::Key { name, .. }, signet_auth::Grant::ReadKey(role)) => {
            ("readKey", name.as_str(), name.as_str(), Some(role.as_str()))
        }
        (Subject::Key { name, .. }, _) => ("ingestKey", name.as_str(), name.as_str(), None),
        (Subject::User { username, display_name, .. }, _) => {
            ("account", username.as_str(), display_name.as_str(), None)
        }
    };
    let permissions: Vec<String> =
        signet_auth::role::ALL_PERMISSIONS.iter().filter(|p| principal.allows(**p)).map(|p| format!("{p:?}")).collect();
    json!({
        "kind": kind,
        "organization": principal.org,
        "username": username,
        "displayName": display_name,
        "role": role,
        "permissions": permissions,
        "csrfToken": csrf,
    })
}

/// `POST /api/v1/auth/login` with `{"username", "password"}`: a session cookie on success.
pub async fn login(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let address = auth::client_address(request.extensions());
    let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    // A session id presented at sign-in is ended, never upgraded (no session fixation).
    if let Some(old) = auth::cookie(request.headers(), auth::SESSION_COOKIE) {
        state.sessions.remove(old);
    }
    let body: LoginBody = read_json(request, LOGIN_BODY_LIMIT).await?;
    let guard = state.login.clone();
    let username = body.username.trim().to_lowercase();
    let attempt_name = username.clone();
    let ip = address.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let now = signet_model::time::now_micros();
    let outcome = tokio::task::spawn_blocking(move || guard.attempt(&attempt_name, &body.password, ip, now)).await?;
    if let LoginOutcome::Throttled { retry_after_secs } = outcome {
        tracing::warn!(address = %ip, "sign-in attempts throttled");
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let user = match &outcome {
        LoginOutcome::Success(user) => Some(user.clone()),
        LoginOutcome::Failure { user, .. } => user.clone(),
        LoginOutcome::Throttled { .. } => None,
    };
    let org = user.as_ref().map_or_else(|| state.directory.home_org().to_string(), |u| u.org.clone());
    let code = outcome.error_code().unwrap_or_default();
    let failure = match &outcome {
        LoginOutcome::Failure { reason, .. } => *reason,
        _ => "",
    };
    let step_detail = match code {
        0 => "Correct password",
        signet_auth::login::codes::WRONG_PASSWORD => "Invalid username or password",
        _ => failure,
    };
    SignInRecord {
        user: user.as_ref(),
        username: &username,
        code,
        failure,
        method: "Password",
        step_detail,
        mfa: false,
        issuer: None,
        address,
        user_agent: user_agent.as_deref(),
    }
    .store(&state, &org)
    .await?;
    let user = match outcome {
        LoginOutcome::Success(user) => user,
        LoginOutcome::Failure { code, .. } => {
            let message = match code {
                signet_auth::login::codes::LOCKED => {
                    "the account is locked after repeated failed sign-ins; try again later or ask an administrator"
                }
                signet_auth::login::codes::DISABLED => "the account is disabled",
                _ => "wrong user name or password",
            };
            return Err(ApiError::Unauthorized(message.into()));
        }
        LoginOutcome::Throttled { .. } => unreachable!("handled above"),
    };
    let (token, session) = state.sessions.create(&user.id, &user.org, now);
    let principal = state
        .directory
        .principal_for_user(&user.id)
        .ok_or_else(|| ApiError::Unauthorized("the account changed during sign-in; try again".into()))?;
    tracing::info!(user = %user.username, org = %user.org, "console sign-in");
    let cookie =
        auth::session_cookie(token.expose(), state.config.session_lifetime.as_secs(), state.config.secure_cookies);
    let mut response = Json(me_json(&principal, Some(&session.csrf))).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/v1/auth/logout`: ends the session.
pub async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let mut provider_sign_out = None;
    if let Some(token) = auth::cookie(request.headers(), auth::SESSION_COOKIE) {
        state.sessions.remove(token);
        provider_sign_out = state.oidc.sign_out_url(token).await;
    }
    // A session made through a provider with `sign_out`: the console sends the browser there.
    let mut response = match provider_sign_out {
        Some(url) => (StatusCode::OK, Json(json!({ "providerSignOut": url }))).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::SET_COOKIE, auth::clear_session_cookie(state.config.secure_cookies));
    response
}

/// `GET /api/v1/auth/me`: who the credential is and what it may do.
pub async fn me(caller: Caller) -> Response {
    let mut response = Json(me_json(&caller.principal, caller.csrf.as_deref())).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/v1/me/signins`: the native sign-in list confined to the caller's own account.
pub async fn my_signins(state: State<AppState>, caller: Caller, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let Some(username) = caller.principal.username() else {
        return Err(ApiError::Forbidden("an API key has no sign-ins of its own".into()));
    };
    // The account name is the user principal name its sign-ins carry (compared
    // case-insensitively, as Graph does).
    let upn = find_column(LogKind::SignIn, "user_principal_name")
        .ok_or_else(|| ApiError::Internal("no user_principal_name column".into()))?;
    let own = Expr::Compare { column: upn, op: CmpOp::Eq, value: Literal::Str(username.to_string()) };
    crate::api::list_for(state, caller.org().to_string(), LogKind::SignIn, raw, Some(own)).await
}

/// `GET /api/v1/settings`: the organisation and its security policy.
pub async fn settings(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let org = state.directory.organizations().into_iter().find(|o| o.id == caller.org());
    let policy = state.login.policy();
    Json(json!({
        "organization": org.map(|o| json!({ "id": o.id, "displayName": o.display_name })),
        "security": {
            "sessionIdleMinutes": state.config.session_idle.as_secs() / 60,
            "sessionLifetimeMinutes": state.config.session_lifetime.as_secs() / 60,
            "secureCookies": state.config.secure_cookies,
            "lockoutThreshold": policy.max_failures,
            "lockoutMinutes": policy.lockout.as_secs() / 60,
            "signInAttemptsPerAddress": policy.attempts_per_address,
            "signInAttemptWindowSeconds": policy.address_window.as_secs(),
            "minimumPasswordLength": signet_auth::secret::MIN_PASSWORD_CHARS,
        },
    }))
}

pub async fn list_users(State(state): State<AppState>, caller: Caller) -> Response {
    let users: Vec<_> = state.directory.users(caller.org()).iter().map(User::view).collect();
    let note = AuditNote::rows(users.len());
    note.attach(Json(json!({ "value": users })))
}

fn parse_role(text: &str) -> ApiResult<Role> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::BadRequest(format!("unknown role {text:?}; expected one of {}", names.join(", ")))
    })
}

fn check_grantable(caller: &Caller, role: Role) -> ApiResult<()> {
    match role.grantable_by(&caller.principal.grant.permissions()) {
        true => Ok(()),
        false => Err(ApiError::Forbidden(format!("you cannot grant {} (it has permissions you lack)", role.as_str()))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUserBody {
    username: String,
    display_name: Option<String>,
    role: Option<String>,
    password: Option<Secret>,
}

pub async fn create_user(State(state): State<AppState>, caller: Caller, request: Request) -> ApiResult<Response> {
    let body: CreateUserBody = read_json(request, LOGIN_BODY_LIMIT).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if let Some(role) = role {
        check_grantable(&caller, role)?;
    }
    let directory = state.directory.clone();
    let org = caller.org().to_string();
    let new = NewUser { username: body.username, display_name: body.display_name, role, password: body.password };
    let user = tokio::task::spawn_blocking(move || directory.create_user(&org, new)).await??;
    Ok(AuditNote::target(&user.username).attach((StatusCode::CREATED, Json(user.view()))))
}

pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let body: Map<String, Value> = read_json(request, LOGIN_BODY_LIMIT).await?;
    let mut patch = UserPatch::default();
    for (field, value) in body {
        let text = |v: &Value| {
            v.as_str().map(str::to_string).ok_or_else(|| ApiError::BadRequest(format!("{field} must be a string")))
        };
        match field.as_str() {
            "displayName" => patch.display_name = Some(text(&value)?),
            "role" => {
                let role = match &value {
                    Value::Null => None,
                    other => Some(parse_role(&text(other)?)?),
                };
                if let Some(role) = role {
                    check_grantable(&caller, role)?;
                }
                patch.role = Some(role);
            }
            "disabled" => {
                patch.disabled =
                    Some(value.as_bool().ok_or_else(|| ApiError::BadRequest("disabled must be true or false".into()))?)
            }
            "password" => patch.password = Some(Secret::new(text(&value)?)),
            "unlock" => patch.unlock = value.as_bool().unwrap_or(false),
            other => return Err(ApiError::BadRequest(format!("unknown field {other:?}"))),
        }
    }
    let ends_sessions = patch.disabled == Some(true) || patch.password.is_some();
    let directory = state.directory.clone();
    let org = caller.org().to_string();
    let user_id = id.clone();
    let user = tokio::task::spawn_blocking(move || directory.update_user(&org, &user_id, patch)).await??;
    if ends_sessions {
        state.sessions.remove_user(&user.org, &user.id);
    }
    Ok(AuditNote::target(&user.username).attach(Json(user.view())))
}

pub async fn delete_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let user = state.directory.delete_user(caller.org(), &id)?;
    state.sessions.remove_user(&user.org, &user.id);
    Ok(AuditNote::target(&user.username).attach(StatusCode::NO_CONTENT))
}

pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> Response {
    let keys = state.directory.keys(caller.org());
    AuditNote::rows(keys.len()).attach(Json(json!({ "value": keys })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateKeyBody {
    name: String,
    /// `ingest` or `read`.
    #[serde(rename = "type")]
    kind: String,
    /// Ingest keys: the one source application the key may write.
    app: Option<String>,
    /// Read keys: the role whose read permissions the key has.
    role: Option<String>,
}

/// The permission managing a key of this kind needs.
fn manage_permission(kind: &KeyKind) -> signet_auth::Permission {
    match kind {
        KeyKind::Ingest { .. } => signet_auth::Permission::ManageIngestKeys,
        KeyKind::Read { .. } => signet_auth::Permission::ManageReadKeys,
    }
}

pub async fn create_key(State(state): State<AppState>, caller: Caller, request: Request) -> ApiResult<Response> {
    let body: CreateKeyBody = read_json(request, LOGIN_BODY_LIMIT).await?;
    let kind = match body.kind.to_ascii_lowercase().as_str() {
        "ingest" => {
            if body.role.is_some() {
                return Err(ApiError::BadRequest("ingest keys have no role; use type \"read\"".into()));
            }
            KeyKind::Ingest { app: body.app.map(|a| a.trim().to_string()) }
        }
        "read" => {
            if body.app.is_some() {
                return Err(ApiError::BadRequest("read keys are not bound to an application".into()));
            }
            let role = body.role.as_deref().ok_or_else(|| ApiError::BadRequest("read keys need a role".into()))?;
            let role = parse_role(role)?;
            check_grantable(&caller, role)?;
            KeyKind::Read { role }
        }
        other => return Err(ApiError::BadRequest(format!("key type {other:?}: expected \"ingest\" or \"read\""))),
    };
    caller.require(manage_permission(&kind))?;
    let (key, token) = state.directory.create_key(caller.org(), &body.name, kind, &caller.principal.name())?;
    let view = state.directory.keys(caller.org()).into_iter().find(|k| k.id == key.id);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "key": view,
            "token": token.expose(),
            "notice": "the token is shown once; store it now, Signet keeps only a digest",
        })),
    )
        .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(AuditNote::target(format!("key:{} ({})", key.name, key.id)).attach(response))
}

pub async fn revoke_key(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let key = state.directory.key(caller.org(), &id).ok_or_else(|| ApiError::NotFound(format!("no key {id}")))?;
    caller.require(manage_permission(&key.kind))?;
    let key = state.directory.revoke_key(caller.org(), &id)?;
    Ok(AuditNote::target(format!("key:{} ({})", key.name, key.id)).attach(StatusCode::NO_CONTENT))
}
