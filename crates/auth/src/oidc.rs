//! OpenID Connect sign-in: the authorization code flow with PKCE (RFC 7636), state and nonce,
//! against any provider that publishes a discovery document (Entra ID, Okta, Keycloak, ...).
//!
//! This module holds everything that is not HTTP: provider settings and their checks, the
//! discovery document, pending sign-ins (state, nonce, PKCE verifier, browser binding), the
//! ID token checks (signature against the provider's JWKS, issuer, audience, lifetime, nonce)
//! and the mapping from a claim to a [`Role`]. The server fetches documents and exchanges codes.
//!
//! Only asymmetric signatures are accepted (RS*, PS*, ES*, EdDSA): a token signed with an HMAC
//! or `none` is refused, whatever the provider's discovery document says.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::pending::{Pending, PendingError, PendingLogins, Started, PENDING_ENTRIES};
use crate::role::Role;
use crate::secret::{self, Secret};

/// Seconds of clock difference tolerated between Signet and the provider.
pub const CLOCK_LEEWAY_SECS: u64 = 60;
/// How long a browser may take at the provider before the sign-in must start again.
pub const PENDING_LIFETIME_SECS: i64 = 600;
/// Sign-ins started and not finished, at most (oldest dropped first beyond).
pub const MAX_PENDING: usize = 10_000;

/// One identity provider, as configured (`[[oidc]]` in `signet.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Short name used in URLs (`/api/v1/auth/oidc/<name>/login`): `a-z`, `0-9`, `-`.
    pub name: String,
    /// What the sign-in button says ("Sign in with <display_name>").
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer, exactly as the provider's tokens carry it
    /// (e.g. `https://login.microsoftonline.com/<tenant id>/v2.0`).
    pub issuer: String,
    pub client_id: String,
    /// The client secret (confidential clients); prefer `client_secret_file`.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (trailing whitespace ignored).
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The callback URL registered at the provider:
    /// `https://<signet>/api/v1/auth/oidc/<name>/callback`.
    pub redirect_url: String,
    /// The organisation whose accounts this provider signs in (default: the home organisation).
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Claims tried in order for the account name.
    #[serde(default = "default_username_claims")]
    pub username_claims: Vec<String>,
    /// The claim whose values decide the role (a dotted path such as `realm_access.roles` for
    /// Keycloak; `roles` for Entra app roles, `groups` for Okta). Without it, roles of accounts
    /// signing in through the provider are managed in Signet.
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Claim value -> role name ("Global administrator", "SecurityReader", ...). When several
    /// values match, the most privileged role wins.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Refuse sign-in (AADSTS50105) when no claim value maps to a role, instead of letting the
    /// user in to see their own sign-ins only.
    #[serde(default)]
    pub require_role: bool,
    /// Signing out of Signet signs out of the provider too (OpenID Connect RP-Initiated
    /// Logout), when the provider has an `end_session_endpoint`: on a shared computer, the next
    /// person who clicks the provider's button must sign in again.
    #[serde(default)]
    pub sign_out: bool,
    /// Where the provider sends the browser after signing out (register it at the provider;
    /// default: the console, the origin of `redirect_url`).
    #[serde(default)]
    pub post_logout_redirect_url: Option<String>,
}

fn redact<S: serde::Serializer>(value: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_str("[redacted]"),
        None => serializer.serialize_none(),
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_username_claims() -> Vec<String> {
    vec!["preferred_username".into(), "email".into(), "upn".into()]
}

/// Whether a URL is `https://`, or `http://` to this machine (a provider on loopback, for
/// development and tests). Anything else would send codes and tokens in the clear.
pub fn is_safe_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return url.len() > "https://".len();
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl ProviderSettings {
    /// Checks the settings; `home_org` is used when no organisation is named. Returns the
    /// role table with parsed roles.
    pub fn check(&self) -> Result<BTreeMap<String, Role>, String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let who = format!("oidc provider {:?}", self.name);
        if !name_ok {
            return Err(format!("{who}: the name must be 1-32 characters of a-z, 0-9 and -"));
        }
        for (field, url) in [("issuer", &self.issuer), ("redirect_url", &self.redirect_url)] {
            if !is_safe_url(url) {
                return Err(format!("{who}: {field} must be an https:// URL (http:// only to localhost), not {url:?}"));
            }
        }
        if self.client_id.trim().is_empty() {
            return Err(format!("{who}: client_id is empty"));
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            return Err(format!("{who}: set client_secret or client_secret_file, not both"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(format!("{who}: scopes must include \"openid\""));
        }
        if self.username_claims.is_empty() {
            return Err(format!("{who}: username_claims is empty"));
        }
        if let Some(org) = &self.organization {
            crate::directory::check_org_id(org).map_err(|e| format!("{who}: organization: {e}"))?;
        }
        if let Some(url) = &self.post_logout_redirect_url {
            if !is_safe_url(url) {
                return Err(format!(
                    "{who}: post_logout_redirect_url must be an https:// URL (http:// only to localhost)"
                ));
            }
        }
        if self.role_claim.is_none() && (!self.roles.is_empty() || self.require_role) {
            return Err(format!("{who}: roles and require_role need role_claim"));
        }
        self.roles
            .iter()
            .map(|(value, role)| match Role::parse(role) {
                Some(parsed) => Ok((value.clone(), parsed)),
                None => Err(format!("{who}: roles.{value:?} = {role:?} is not a role")),
            })
            .collect()
    }

    /// The client secret, read from the file when configured that way.
    pub fn load_secret(&self) -> Result<Option<Secret>, String> {
        if let Some(path) = &self.client_secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("oidc provider {:?}: client_secret_file {}: {e}", self.name, path.display()))?;
            return Ok(Some(Secret::new(text.trim_end())));
        }
        Ok(self.client_secret.clone())
    }

    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// Where the provider sends the browser after signing out: the configured URL, or the
    /// console (the origin of `redirect_url`, then `/`).
    pub fn after_sign_out_url(&self) -> String {
        if let Some(url) = &self.post_logout_redirect_url {
            return url.clone();
        }
        let url = &self.redirect_url;
        let host_start = url.find("://").map_or(0, |i| i + 3);
        let origin_end = url[host_start..].find('/').map_or(url.len(), |i| host_start + i);
        format!("{}/", &url[..origin_end])
    }
}

/// The parts of a provider's discovery document (`/.well-known/openid-configuration`) Signet uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Where claims the ID token leaves out are read (OpenID Connect Core §5.3).
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Where the browser goes to sign out of the provider (RP-Initiated Logout 1.0).
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

impl Discovery {
    /// The discovery URL of an issuer.
    pub fn url(issuer: &str) -> String {
        format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
    }

    /// OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the configured one,
    /// exactly; every endpoint must be safe to send codes and secrets to.
    pub fn check(&self, issuer: &str) -> Result<(), String> {
        if self.issuer != issuer {
            return Err(format!(
                "the discovery document names issuer {:?}, not the configured {issuer:?}",
                self.issuer
            ));
        }
        let userinfo = self.userinfo_endpoint.as_ref().map(|url| ("userinfo_endpoint", url));
        let end_session = self.end_session_endpoint.as_ref().map(|url| ("end_session_endpoint", url));
        for (field, url) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ]
        .into_iter()
        .chain(userinfo)
        .chain(end_session)
        {
            if !is_safe_url(url) {
                return Err(format!("the discovery document's {field} {url:?} is not https://"));
            }
        }
        Ok(())
    }

    /// How Signet authenticates at the token endpoint: HTTP Basic unless the provider lists
    /// only `client_secret_post`.
    pub fn uses_basic_auth(&self) -> bool {
        let methods = &self.token_endpoint_auth_methods_supported;
        methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic")
    }
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Why an ID token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token is not a signed JWT: {0}")]
    Malformed(String),
    #[error("the ID token is signed with {0}, which Signet does not accept (asymmetric signatures only)")]
    Algorithm(String),
    /// No key of the provider's JWKS matches; fetch the JWKS again once (keys rotate).
    #[error("no key of the provider's key set matches the ID token (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token has expired (or is not valid yet)")]
    Expired,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token is meant for another client (audience)")]
    Audience,
    #[error("the ID token's nonce does not match the sign-in's (a replayed or injected token)")]
    Nonce,
    #[error("the ID token lacks {0}")]
    Missing(&'static str),
    #[error("the userinfo answer is about another user than the ID token")]
    OtherSubject,
}

/// What an ID token is checked against.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn name_of<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The key of `keys` that signed a token with this header.
fn signing_key<'k>(keys: &'k JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<&'k Jwk, TokenError> {
    let usable = |k: &&Jwk| {
        !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption))
            && k.common.key_algorithm.as_ref().is_none_or(|a| name_of(a) == name_of(&alg))
    };
    let mut candidates = keys.keys.iter().filter(usable);
    let key = match kid {
        Some(kid) => candidates.find(|k| k.common.key_id.as_deref() == Some(kid)),
        // Without a kid, only an unambiguous key set will do.
        None => {
            let all: Vec<&Jwk> = candidates.collect();
            if all.len() == 1 {
                Some(all[0])
            } else {
                None
            }
        }
    };
    key.ok_or_else(|| TokenError::UnknownKey(kid.map(str::to_string)))
}

/// Verifies an ID token (OpenID Connect Core §3.1.3.7) and returns its claims.
pub fn verify_id_token(token: &str, keys: &JwkSet, expected: &Expected<'_>) -> Result<Map<String, Value>, TokenError> {
    use jsonwebtoken::errors::ErrorKind;
    let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if !ACCEPTED.contains(&header.alg) {
        return Err(TokenError::Algorithm(name_of(&header.alg)));
    }
    let jwk = signing_key(keys, header.kid.as_deref(), header.alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Malformed(format!("unusable key: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = CLOCK_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Missing(match claim.as_str() {
            "exp" => "an expiry (exp)",
            "iss" => "an issuer (iss)",
            "aud" => "an audience (aud)",
            _ => "a subject (sub)",
        }),
        other => TokenError::Malformed(format!("{other:?}")),
    })?;
    let claims = data.claims;
    // §3.1.3.7 item 4: with several audiences, the authorised party must be Signet.
    if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
        && claims.get("azp").and_then(Value::as_str) != Some(expected.client_id)
    {
        return Err(TokenError::Audience);
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(nonce) if secret::digests_equal(nonce, expected.nonce) => {}
        Some(_) => return Err(TokenError::Nonce),
        None => return Err(TokenError::Missing("the nonce Signet sent")),
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(TokenError::Missing("a subject (sub)"));
    }
    Ok(claims)
}

/// The value at a dotted path (`realm_access.roles`) of the claims.
fn claim_at<'c>(claims: &'c Map<String, Value>, path: &str) -> Option<&'c Value> {
    // A claim whose own name contains dots (some providers use URLs as claim names) wins.
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The strings of a claim that is a string or an array of strings.
pub fn claim_values(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    match claim_at(claims, path) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Whether the ID token lacks a claim Signet needs (a user name, or the role claim when one is
/// configured): providers that follow OpenID Connect Core to the letter put profile and group
/// claims in the userinfo answer only, not in the ID token of the code flow.
pub fn needs_userinfo(claims: &Map<String, Value>, settings: &ProviderSettings) -> bool {
    let has_name = settings
        .username_claims
        .iter()
        .any(|c| claims.get(c).and_then(Value::as_str).is_some_and(|v| !v.trim().is_empty()));
    let has_role = settings.role_claim.as_deref().is_none_or(|c| claim_at(claims, c).is_some());
    !has_name || !has_role
}

/// Adds the claims of a userinfo answer the ID token does not have (the signed ID token wins
/// where both have a claim). OpenID Connect Core §5.3.2: an answer about another subject than
/// the ID token's must not be used.
pub fn merge_userinfo(claims: &mut Map<String, Value>, userinfo: Map<String, Value>) -> Result<(), TokenError> {
    if userinfo.get("sub") != claims.get("sub") {
        return Err(TokenError::OtherSubject);
    }
    for (name, value) in userinfo {
        claims.entry(name).or_insert(value);
    }
    Ok(())
}

/// Whether the provider replaced the claim with a reference to fetch it elsewhere (Entra ID
/// does so for `groups` when a user is in more than 200 groups: "group overage").
pub fn claim_is_elsewhere(claims: &Map<String, Value>, claim: &str) -> bool {
    claim_at(claims, "_claim_names").and_then(Value::as_object).is_some_and(|names| names.contains_key(claim))
}

/// Who a verified ID token says the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    /// Account name: the first of the configured claims present, lowercase.
    pub username: String,
    pub display_name: Option<String>,
    /// The provider reports multi-factor authentication (`amr` contains `mfa`).
    pub mfa: bool,
    /// Values of the role claim (empty without one).
    pub role_values: Vec<String>,
}

impl Identity {
    pub fn from_claims(claims: &Map<String, Value>, settings: &ProviderSettings) -> Result<Identity, TokenError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let username = settings
            .username_claims
            .iter()
            .find_map(|claim| text(claim).filter(|v| !v.trim().is_empty()))
            .ok_or(TokenError::Missing("a user name claim (see username_claims)"))?;
        Ok(Identity {
            issuer: text("iss").unwrap_or_default(),
            subject: text("sub").unwrap_or_default(),
            username: username.trim().to_lowercase(),
            display_name: text("name"),
            mfa: claim_values(claims, "amr").iter().any(|m| m == "mfa"),
            role_values: settings.role_claim.as_deref().map(|c| claim_values(claims, c)).unwrap_or_default(),
        })
    }

    /// The most privileged role any of the claim's values maps to.
    pub fn role(&self, table: &BTreeMap<String, Role>) -> Option<Role> {
        let mapped: Vec<Role> = self.role_values.iter().filter_map(|v| table.get(v).copied()).collect();
        Role::ALL.into_iter().find(|role| mapped.contains(role))
    }
}

/// The provider's end-session URL for a user signing out of Signet (RP-Initiated Logout 1.0
/// §2): the ID token the sign-in received as `id_token_hint` (Okta requires it), the client,
/// and where to come back to. `None` when the provider has no end-session endpoint.
pub fn end_session_url(discovery: &Discovery, settings: &ProviderSettings, id_token: &str) -> Option<String> {
    let endpoint = discovery.end_session_endpoint.as_deref()?;
    let params = [
        ("id_token_hint", id_token),
        ("client_id", settings.client_id.as_str()),
        ("post_logout_redirect_uri", &settings.after_sign_out_url()),
    ];
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    Some(format!("{endpoint}{separator}{}", query.join("&")))
}

/// The provider's authorization URL for a started sign-in.
pub fn authorization_url(discovery: &Discovery, settings: &ProviderSettings, started: &Started) -> String {
    let scope = settings.scopes.join(" ");
    let params = [
        ("response_type", "code"),
        ("client_id", settings.client_id.as_str()),
        ("redirect_uri", settings.redirect_url.as_str()),
        ("scope", scope.as_str()),
        ("state", started.state.as_str()),
        ("nonce", started.nonce.as_str()),
        ("code_challenge", started.code_challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
    let separator = if discovery.authorization_endpoint.contains('?') { '&' } else { '?' };
    format!("{}{separator}{}", discovery.authorization_endpoint, query.join("&"))
}

/// Percent-encodes everything outside RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    // A key made for these tests only (testdata/test-only-rsa.pem), never used anywhere else.
    const PRIVATE_PEM: &str = include_str!("../testdata/test-only-rsa.pem");
    const JWKS: &str = include_str!("../testdata/test-only-jwks.json");
    const ISSUER: &str = "https://idp.example.com/tenant";

    fn keys() -> JwkSet {
        serde_json::from_str(JWKS).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": "signet", "sub": "00u1", "nonce": "n-1",
            "iat": now(), "exp": now() + 300,
            "preferred_username": "Ann@Example.com", "name": "Ann Example",
            "amr": ["pwd", "mfa"], "groups": ["staff", "signet-admins"],
            "realm_access": { "roles": ["auditor"] },
        })
    }

    fn sign(claims: &Value, header: Header) -> String {
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap()).unwrap()
    }

    fn rs256() -> Header {
        Header { kid: Some("test-key-1".into()), ..Header::new(Algorithm::RS256) }
    }

    fn expected() -> Expected<'static> {
        Expected { issuer: ISSUER, client_id: "signet", nonce: "n-1" }
    }

    fn verify_with(claims: &Value, header: Header) -> Result<Map<String, Value>, TokenError> {
        verify_id_token(&sign(claims, header), &keys(), &expected())
    }

    fn settings() -> ProviderSettings {
        serde_json::from_value(json!({
            "name": "okta", "issuer": ISSUER, "client_id": "signet",
            "redirect_url": "https://signet.example.com/api/v1/auth/oidc/okta/callback",
            "role_claim": "groups",
            "roles": { "signet-admins": "Global administrator", "staff": "reports-reader", "auditor": "SecurityReader" },
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_token_gives_the_identity_and_the_highest_role() {
        let verified = verify_with(&claims(), rs256()).unwrap();
        let settings = settings();
        let table = settings.check().unwrap();
        let identity = Identity::from_claims(&verified, &settings).unwrap();
        assert_eq!(identity.username, "ann@example.com");
        assert_eq!(identity.subject, "00u1");
        assert_eq!(identity.issuer, ISSUER);
        assert!(identity.mfa);
        assert_eq!(identity.role(&table), Some(Role::GlobalAdministrator), "admins outrank staff");

        let keycloak = ProviderSettings { role_claim: Some("realm_access.roles".into()), ..settings.clone() };
        let identity = Identity::from_claims(&verified, &keycloak).unwrap();
        assert_eq!(identity.role(&table), Some(Role::SecurityReader), "dotted claim path");

        let mut unmapped = claims();
        unmapped["groups"] = json!("visitors");
        let identity = Identity::from_claims(&verify_with(&unmapped, rs256()).unwrap(), &settings).unwrap();
        assert_eq!(identity.role(&table), None);
    }

    #[test]
    fn every_broken_promise_of_a_token_is_refused() {
        let mut expired = claims();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(verify_with(&expired, rs256()), Err(TokenError::Expired));

        let mut not_yet = claims();
        not_yet["nbf"] = json!(now() + 3600);
        assert_eq!(verify_with(&not_yet, rs256()), Err(TokenError::Expired));

        let mut other_issuer = claims();
        other_issuer["iss"] = json!("https://evil.example.com/");
        assert_eq!(verify_with(&other_issuer, rs256()), Err(TokenError::Issuer));

        let mut other_client = claims();
        other_client["aud"] = json!("someone-else");
        assert_eq!(verify_with(&other_client, rs256()), Err(TokenError::Audience));

        let mut shared = claims();
        shared["aud"] = json!(["signet", "someone-else"]);
        assert_eq!(verify_with(&shared, rs256()), Err(TokenError::Audience), "several audiences need azp");
        shared["azp"] = json!("signet");
        assert!(verify_with(&shared, rs256()).is_ok());

        let mut replayed = claims();
        replayed["nonce"] = json!("n-2");
        assert_eq!(verify_with(&replayed, rs256()), Err(TokenError::Nonce));
        let mut no_nonce = claims();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert!(matches!(verify_with(&no_nonce, rs256()), Err(TokenError::Missing(_))));

        let mut no_sub = claims();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert!(matches!(verify_with(&no_sub, rs256()), Err(TokenError::Missing(_))));

        let unknown_kid = Header { kid: Some("rotated-away".into()), ..Header::new(Algorithm::RS256) };
        assert_eq!(verify_with(&claims(), unknown_kid), Err(TokenError::UnknownKey(Some("rotated-away".into()))));
    }

    #[test]
    fn tampered_unsigned_and_symmetric_tokens_are_refused() {
        let token = sign(&claims(), rs256());
        let parts: Vec<&str> = token.split('.').collect();
        // Same signature, payload changed to another user.
        let mut payload = claims();
        payload["preferred_username"] = json!("mallory@example.com");
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
        assert_eq!(verify_id_token(&forged, &keys(), &expected()), Err(TokenError::Signature));

        // alg "none".
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(verify_id_token(&unsigned, &keys(), &expected()).is_err());

        // HS256 keyed with the public modulus (the classic key-confusion attack).
        let n = keys().keys[0].clone();
        let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &n.algorithm else { panic!("RSA key") };
        let hmac = jsonwebtoken::encode(
            &Header { kid: Some("test-key-1".into()), ..Header::new(Algorithm::HS256) },
            &claims(),
            &EncodingKey::from_secret(rsa.n.as_bytes()),
        )
        .unwrap();
        assert_eq!(verify_id_token(&hmac, &keys(), &expected()), Err(TokenError::Algorithm("HS256".into())));

        // Not a JWT at all.
        assert!(matches!(verify_id_token("not-a-token", &keys(), &expected()), Err(TokenError::Malformed(_))));
    }

    fn discovery() -> Discovery {
        Discovery {
            issuer: ISSUER.into(),
            authorization_endpoint: "https://idp.example.com/authorize?tenant=x".into(),
            token_endpoint: "https://idp.example.com/token".into(),
            jwks_uri: "https://idp.example.com/keys".into(),
            userinfo_endpoint: None,
            end_session_endpoint: None,
            token_endpoint_auth_methods_supported: vec![],
            code_challenge_methods_supported: vec![],
        }
    }

    #[test]
    fn claims_missing_from_the_id_token_come_from_userinfo() {
        let object = |v: Value| v.as_object().unwrap().clone();
        // A strictly conforming provider: the code flow's ID token names the subject only.
        let mut claims = object(json!({"iss": ISSUER, "sub": "00u1", "name": "From the token"}));
        assert!(needs_userinfo(&claims, &settings()));
        let userinfo = json!({"sub": "00u1", "preferred_username": "ann@example.com", "name": "From userinfo", "groups": ["staff"]});
        merge_userinfo(&mut claims, object(userinfo)).unwrap();
        assert!(!needs_userinfo(&claims, &settings()));
        let identity = Identity::from_claims(&claims, &settings()).unwrap();
        assert_eq!(identity.username, "ann@example.com");
        assert_eq!(identity.display_name.as_deref(), Some("From the token"), "the signed token wins");
        assert_eq!(identity.role_values, ["staff"]);

        // An answer about someone else (or about no one) is refused.
        let mut claims = object(json!({"sub": "00u1"}));
        for other in
            [json!({"sub": "00u2", "preferred_username": "eve@example.com"}), json!({"preferred_username": "x"})]
        {
            assert_eq!(merge_userinfo(&mut claims, object(other)), Err(TokenError::OtherSubject));
        }
        assert_eq!(claims.len(), 1, "nothing of a refused answer is kept");

        // A token with a name and the role claim needs no userinfo; without a role claim
        // configured, the name suffices.
        assert!(!needs_userinfo(&object(self::claims()), &settings()));
        let no_roles = ProviderSettings { role_claim: None, ..settings() };
        assert!(!needs_userinfo(&object(json!({"sub": "a", "email": "a@example.com"})), &no_roles));
    }

    #[test]
    fn group_overage_is_recognised() {
        // What Entra ID sends instead of `groups` for a user in more than 200 groups.
        let claims = json!({"sub": "a", "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/a/getMemberObjects"}}});
        let claims = claims.as_object().unwrap();
        assert!(claim_is_elsewhere(claims, "groups"));
        assert!(!claim_is_elsewhere(claims, "roles"));
        assert!(!claim_is_elsewhere(json!({"groups": []}).as_object().unwrap(), "groups"));
    }

    #[test]
    fn a_userinfo_endpoint_must_be_safe() {
        let discovery =
            |userinfo: Option<&str>| Discovery { userinfo_endpoint: userinfo.map(str::to_string), ..discovery() };
        assert!(discovery(None).check(ISSUER).is_ok());
        assert!(discovery(Some("https://idp.example.com/userinfo")).check(ISSUER).is_ok());
        assert!(discovery(Some("http://idp.example.com/userinfo"))
            .check(ISSUER)
            .unwrap_err()
            .contains("userinfo_endpoint"));
    }

    #[test]
    fn signing_out_at_the_provider() {
        let with_endpoint =
            Discovery { end_session_endpoint: Some("https://idp.example.com/logout?tenant=x".into()), ..discovery() };
        assert_eq!(end_session_url(&discovery(), &settings(), "tok"), None);
        assert_eq!(
            end_session_url(&with_endpoint, &settings(), "a.b.c").unwrap(),
            "https://idp.example.com/logout?tenant=x&id_token_hint=a.b.c&client_id=signet\
             &post_logout_redirect_uri=https%3A%2F%2Fsignet.example.com%2F"
        );
        let elsewhere =
            ProviderSettings { post_logout_redirect_url: Some("https://portal.example.com/bye".into()), ..settings() };
        assert_eq!(elsewhere.after_sign_out_url(), "https://portal.example.com/bye");
        let plain =
            ProviderSettings { post_logout_redirect_url: Some("http://portal.example.com/".into()), ..settings() };
        assert!(plain.check().unwrap_err().contains("post_logout_redirect_url"));
        let unsafe_endpoint =
            Discovery { end_session_endpoint: Some("http://idp.example.com/logout".into()), ..discovery() };
        assert!(unsafe_endpoint.check(ISSUER).unwrap_err().contains("end_session_endpoint"));
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn settings_are_checked() {
        let good = settings();
        assert!(good.check().is_ok());
        let plain_http = ProviderSettings { issuer: "http://idp.example.com".into(), ..good.clone() };
        assert!(plain_http.check().unwrap_err().contains("https://"));
        let loopback = ProviderSettings { issuer: "http://127.0.0.1:9000/oidc".into(), ..good.clone() };
        assert!(loopback.check().is_ok());
        let bad_role = ProviderSettings { roles: [("x".to_string(), "root".to_string())].into(), ..good.clone() };
        assert!(bad_role.check().unwrap_err().contains("not a role"));
        let bad_name = ProviderSettings { name: "Okta Prod".into(), ..good.clone() };
        assert!(bad_name.check().is_err());
        let no_openid = ProviderSettings { scopes: vec!["profile".into()], ..good.clone() };
        assert!(no_openid.check().is_err());
        for (url, safe) in [
            ("https://a", true),
            ("http://localhost:8080/x", true),
            ("http://[::1]:80/", true),
            ("http://127.0.0.1.evil.com/", false),
            ("http://localhost.evil.com/", false),
            ("ftp://localhost/", false),
        ] {
            assert_eq!(is_safe_url(url), safe, "{url}");
        }
        let with_secret = ProviderSettings { client_secret: Some(Secret::new("s3cr3t-value")), ..good };
        let shown = serde_json::to_string(&with_secret).unwrap();
        assert!(!shown.contains("s3cr3t-value") && shown.contains("[redacted]"));
        assert!(!format!("{with_secret:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_and_nonce() {
        let discovery = discovery();
        assert!(discovery.check(ISSUER).is_ok());
        assert!(discovery.check("https://idp.example.com/other").is_err());
        let started = PendingLogins::default().start("okta", 0);
        let url = authorization_url(&discovery, &settings(), &started);
        assert!(url.starts_with("https://idp.example.com/authorize?tenant=x&response_type=code&client_id=signet"));
        assert!(url.contains("&scope=openid%20profile%20email&"));
        assert!(url.contains(&format!("&state={}", started.state)));
        assert!(url.contains("&code_challenge_method=S256"));
        assert!(
            url.contains("redirect_uri=https%3A%2F%2Fsignet.example.com%2Fapi%2Fv1%2Fauth%2Foidc%2Fokta%2Fcallback")
        );
    }
}
