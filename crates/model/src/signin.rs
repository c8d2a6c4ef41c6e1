//! Sign-ins: the Microsoft Graph `signIn` resource (v1.0 plus the beta properties
//! `authenticationDetails`, `authenticationRequirement`, `signInEventTypes`, `userAgent`,
//! `userType`), parsed leniently and normalised into the sign-in columns.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use crate::event::{Cells, Event, RecordError};
use crate::json::NodeKind;
use crate::json::{opt_bool, opt_f64, opt_i64, opt_text, text_list};
use crate::kind::LogKind;
use crate::status::{is_legacy_client, SignInStatus};
use crate::tape::{read_members, Scanned};

/// A sign-in record as read. Its strings are borrowed from the record's text where the fast
/// path ([`scanned`]) reads them and they hold no escapes; serde's path gives owned ones.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphSignIn<'a> {
    #[serde(deserialize_with = "opt_text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub created_date_time: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub user_principal_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub user_display_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub user_type: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub app_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub app_display_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub resource_display_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub resource_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub client_app_used: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub ip_address: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub correlation_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub conditional_access_status: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_bool")]
    pub is_interactive: Option<bool>,
    #[serde(deserialize_with = "text_list")]
    pub sign_in_event_types: Vec<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub authentication_requirement: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub risk_detail: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub risk_level_aggregated: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub risk_level_during_sign_in: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub risk_state: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "text_list")]
    pub risk_event_types: Vec<Cow<'a, str>>,
    #[serde(rename = "riskEventTypes_v2", deserialize_with = "text_list")]
    pub risk_event_types_v2: Vec<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub service_principal_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub service_principal_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub token_issuer_type: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_i64")]
    pub processing_time_in_milliseconds: Option<i64>,
    pub status: Option<GraphStatus<'a>>,
    pub device_detail: Option<GraphDevice<'a>>,
    pub location: Option<GraphLocation<'a>>,
    #[serde(deserialize_with = "auth_details")]
    pub authentication_details: Vec<GraphAuthDetail<'a>>,
    pub mfa_detail: Option<GraphMfaDetail<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphStatus<'a> {
    #[serde(deserialize_with = "opt_i64")]
    pub error_code: Option<i64>,
    #[serde(deserialize_with = "opt_text")]
    pub failure_reason: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub additional_details: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphDevice<'a> {
    #[serde(deserialize_with = "opt_text")]
    pub device_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub display_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub operating_system: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub browser: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_bool")]
    pub is_compliant: Option<bool>,
    #[serde(deserialize_with = "opt_bool")]
    pub is_managed: Option<bool>,
    #[serde(deserialize_with = "opt_text")]
    pub trust_type: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphLocation<'a> {
    #[serde(deserialize_with = "opt_text")]
    pub city: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub state: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub country_or_region: Option<Cow<'a, str>>,
    pub geo_coordinates: Option<GraphGeo>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphGeo {
    #[serde(deserialize_with = "opt_f64")]
    pub latitude: Option<f64>,
    #[serde(deserialize_with = "opt_f64")]
    pub longitude: Option<f64>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphAuthDetail<'a> {
    #[serde(deserialize_with = "opt_text")]
    pub authentication_method: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_bool")]
    pub succeeded: Option<bool>,
    #[serde(deserialize_with = "opt_text")]
    pub authentication_step_result_detail: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub authentication_step_requirement: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphMfaDetail<'a> {
    #[serde(deserialize_with = "opt_text")]
    pub auth_method: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "opt_text")]
    pub auth_detail: Option<Cow<'a, str>>,
}

/// `authenticationDetails`: a list, or (Log Analytics) a JSON list inside a string, or null.
fn auth_details<'de, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<GraphAuthDetail<'a>>, D::Error> {
    struct Details<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de, 'a> serde::de::Visitor<'de> for Details<'a> {
        type Value = Vec<GraphAuthDetail<'a>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of authentication steps, a JSON list inside a string, or null")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(step) = seq.next_element::<Option<GraphAuthDetail>>()? {
                out.extend(step);
            }
            Ok(out)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().is_empty() {
                return Ok(Vec::new());
            }
            serde_json::from_str(v).map_err(|e| E::custom(format!("list inside string: {e}")))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(Details(std::marker::PhantomData))
        }
    }
    d.deserialize_any(Details(std::marker::PhantomData))
}

/// Methods that sign a user in without a password.
const PASSWORDLESS_METHODS: &[&str] = &[
    "Passwordless phone sign-in",
    "Windows Hello for Business",
    "FIDO2 security key",
    "Passkey (device-bound)",
    "Passkey (Microsoft Authenticator)",
    "X.509 Certificate",
    "Temporary Access Pass",
];

/// Parses and normalises one Graph-shaped sign-in record.
/// `text`: the same bytes as text, if the caller has validated them.
pub fn normalize(body: &Bytes, text: Option<&str>) -> Result<Event, RecordError> {
    let text = text.or_else(|| std::str::from_utf8(body).ok());
    if let Some((record, content_hash)) = text.and_then(scanned) {
        return from_record(record, body, content_hash);
    }
    let record: GraphSignIn = crate::event::parse_record(body)?;
    from_record(record, body, crate::json::content_hash(body))
}

thread_local! {
    /// The tape of [`scanned`], kept between records.
    static TAPE: std::cell::RefCell<Vec<crate::json::Node>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The fast path: the record read from the pass that computes its content hash
/// ([`crate::json::scan`]), with the record and the hash; `None` for anything the serde path
/// must decide (see [`crate::tape`]), including every record it would refuse.
fn scanned(json: &str) -> Option<(GraphSignIn<'_>, u64)> {
    TAPE.with(|tape| {
        let mut tape = tape.try_borrow_mut().ok()?;
        let hash = crate::json::scan(json, &mut tape)?;
        let record = scanned_record(&Scanned { json, tape: &tape })?;
        Some((record, hash))
    })
}

fn scanned_record<'a>(s: &Scanned<'a, '_>) -> Option<GraphSignIn<'a>> {
    let mut r = GraphSignIn::default();
    let string = |at| s.string(at);
    let list = |at| s.list(at);
    read_members!(s, 0, r, {
        0 "id" => id = string,
        1 "createdDateTime" => created_date_time = string,
        2 "userId" => user_id = string,
        3 "userPrincipalName" => user_principal_name = string,
        4 "userDisplayName" => user_display_name = string,
        5 "userType" => user_type = string,
        6 "appId" => app_id = string,
        7 "appDisplayName" => app_display_name = string,
        8 "resourceDisplayName" => resource_display_name = string,
        9 "resourceId" => resource_id = string,
        10 "clientAppUsed" => client_app_used = string,
        11 "userAgent" => user_agent = string,
        12 "ipAddress" => ip_address = string,
        13 "correlationId" => correlation_id = string,
        14 "conditionalAccessStatus" => conditional_access_status = string,
        15 "isInteractive" => is_interactive = |at| s.boolean(at),
        16 "signInEventTypes" => sign_in_event_types = list,
        17 "authenticationRequirement" => authentication_requirement = string,
        18 "riskDetail" => risk_detail = string,
        19 "riskLevelAggregated" => risk_level_aggregated = string,
        20 "riskLevelDuringSignIn" => risk_level_during_sign_in = string,
        21 "riskState" => risk_state = string,
        22 "riskEventTypes" => risk_event_types = list,
        23 "riskEventTypes_v2" => risk_event_types_v2 = list,
        24 "servicePrincipalId" => service_principal_id = string,
        25 "servicePrincipalName" => service_principal_name = string,
        26 "tokenIssuerType" => token_issuer_type = string,
        27 "processingTimeInMilliseconds" => processing_time_in_milliseconds = |at| s.int(at),
        28 "status" => status = |at| optional(s, at, scanned_status),
        29 "deviceDetail" => device_detail = |at| optional(s, at, scanned_device),
        30 "location" => location = |at| optional(s, at, scanned_location),
        31 "authenticationDetails" => authentication_details = |at| scanned_auth_details(s, at),
        32 "mfaDetail" => mfa_detail = |at| optional(s, at, scanned_mfa),
    });
    Some(r)
}

/// An `Option<T>` member: null, or an object read by `read`.
fn optional<'a, T>(
    s: &Scanned<'a, '_>,
    at: usize,
    read: fn(&Scanned<'a, '_>, usize) -> Option<T>,
) -> Option<Option<T>> {
    match s.kind(at) {
        NodeKind::Null => Some(None),
        NodeKind::Object => read(s, at).map(Some),
        _ => None,
    }
}

fn scanned_status<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<GraphStatus<'a>> {
    let mut r = GraphStatus::default();
    let string = |at| s.string(at);
    read_members!(s, at, r, {
        0 "errorCode" => error_code = |at| s.int(at),
        1 "failureReason" => failure_reason = string,
        2 "additionalDetails" => additional_details = string,
    });
    Some(r)
}

fn scanned_device<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<GraphDevice<'a>> {
    let mut r = GraphDevice::default();
    let string = |at| s.string(at);
    let boolean = |at| s.boolean(at);
    read_members!(s, at, r, {
        0 "deviceId" => device_id = string,
        1 "displayName" => display_name = string,
        2 "operatingSystem" => operating_system = string,
        3 "browser" => browser = string,
        4 "isCompliant" => is_compliant = boolean,
        5 "isManaged" => is_managed = boolean,
        6 "trustType" => trust_type = string,
    });
    Some(r)
}

fn scanned_location<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<GraphLocation<'a>> {
    let mut r = GraphLocation::default();
    let string = |at| s.string(at);
    read_members!(s, at, r, {
        0 "city" => city = string,
        1 "state" => state = string,
        2 "countryOrRegion" => country_or_region = string,
        3 "geoCoordinates" => geo_coordinates = |at| optional(s, at, scanned_geo),
    });
    Some(r)
}

fn scanned_geo(s: &Scanned<'_, '_>, at: usize) -> Option<GraphGeo> {
    let mut r = GraphGeo::default();
    read_members!(s, at, r, {
        0 "latitude" => latitude = |at| s.float(at),
        1 "longitude" => longitude = |at| s.float(at),
    });
    Some(r)
}

fn scanned_mfa<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<GraphMfaDetail<'a>> {
    let mut r = GraphMfaDetail::default();
    read_members!(s, at, r, {
        0 "authMethod" => auth_method = |at| s.string(at),
        1 "authDetail" => auth_detail = |at| s.string(at),
    });
    Some(r)
}

/// As [`auth_details`]: a list of steps (null steps skipped), null, or (through serde) a JSON
/// list inside a string.
fn scanned_auth_details<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<Vec<GraphAuthDetail<'a>>> {
    match s.kind(at) {
        NodeKind::Null => Some(Vec::new()),
        NodeKind::Array => {
            let mut out = Vec::new();
            for step in s.elements(at)? {
                if let Some(step) = optional(s, step, scanned_auth_step)? {
                    out.push(step);
                }
            }
            Some(out)
        }
        _ => s.exact(at, |de| auth_details(de)),
    }
}

fn scanned_auth_step<'a>(s: &Scanned<'a, '_>, at: usize) -> Option<GraphAuthDetail<'a>> {
    let mut r = GraphAuthDetail::default();
    let string = |at| s.string(at);
    read_members!(s, at, r, {
        0 "authenticationMethod" => authentication_method = string,
        1 "succeeded" => succeeded = |at| s.boolean(at),
        2 "authenticationStepResultDetail" => authentication_step_result_detail = string,
        3 "authenticationStepRequirement" => authentication_step_requirement = string,
    });
    Some(r)
}

/// The distinct-user key: the user id, or the lower-cased UPN when there is no id.
pub fn user_key(user_id: Option<&str>, upn: Option<&str>) -> Option<String> {
    let mut key = String::new();
    write_user_key(&mut key, user_id, upn).then_some(key)
}

/// [`user_key`] appended to `out`; false (nothing appended) when there is none.
fn write_user_key(out: &mut String, user_id: Option<&str>, upn: Option<&str>) -> bool {
    let (text, ascii_only) = match (user_id, upn) {
        (Some(id), _) if !id.is_empty() && id != "00000000-0000-0000-0000-000000000000" => (id, true),
        (_, Some(upn)) if !upn.is_empty() => (upn, false),
        _ => return false,
    };
    if ascii_only || text.is_ascii() {
        let from = out.len();
        out.push_str(text);
        out[from..].make_ascii_lowercase();
    } else {
        out.push_str(&text.to_lowercase());
    }
    true
}

fn from_record(r: GraphSignIn<'_>, body: &Bytes, content_hash: u64) -> Result<Event, RecordError> {
    let id = crate::event::required_id(r.id.map(Cow::into_owned), "id")?;
    let time_us = crate::event::required_time(r.created_date_time.as_deref(), "createdDateTime")?;

    let status = r.status.unwrap_or_default();
    let error_code = status.error_code.unwrap_or(0);
    let device = r.device_detail.unwrap_or_default();
    let location = r.location.unwrap_or_default();
    let geo = location.geo_coordinates.unwrap_or_default();

    let mut risk_events: Vec<&str> = r.risk_event_types_v2.iter().map(|e| e.as_ref()).collect();
    for legacy in &r.risk_event_types {
        if !risk_events.iter().any(|e| e.eq_ignore_ascii_case(legacy)) {
            risk_events.push(legacy);
        }
    }
    let at_risk_level = |level: &Option<Cow<str>>| matches!(level.as_deref(), Some("low" | "medium" | "high"));
    let risk_detected = at_risk_level(&r.risk_level_aggregated)
        || at_risk_level(&r.risk_level_during_sign_in)
        || matches!(r.risk_state.as_deref(), Some("atRisk" | "confirmedCompromised"))
        || !risk_events.is_empty();

    let inferred;
    let event_types: Vec<&str> = if r.sign_in_event_types.is_empty() {
        inferred = infer_event_type(r.is_interactive, r.user_id.as_deref(), r.service_principal_id.as_deref());
        vec![inferred]
    } else {
        r.sign_in_event_types.iter().map(|e| e.as_ref()).collect()
    };

    let (methods, succeeded, by_claim) = auth_method_summary(&r.authentication_details, r.mfa_detail.as_ref());
    let method_set = auth_method_set(&methods, &succeeded);
    let passwordless = !methods.is_empty()
        && !methods.iter().any(|m| m.eq_ignore_ascii_case("Password"))
        && methods.iter().any(|m| PASSWORDLESS_METHODS.iter().any(|p| p.eq_ignore_ascii_case(m)));

    let legacy = r.client_app_used.as_deref().map(is_legacy_client);

    // A sign-in's column strings take about a third of its record; a big record (unknown
    // members) does not reserve more than a few KiB for them up front.
    let mut cells = Cells::with_capacity(crate::schema::SIGNIN_COLUMNS.len(), (body.len() / 2).min(4096));
    cells.push_opt_str(r.user_id.as_deref());
    cells.push_opt_str(r.user_principal_name.as_deref());
    cells.push_opt_str(r.user_display_name.as_deref());
    cells.push_opt_str(r.user_type.as_deref());
    cells.push_written(|out| write_user_key(out, r.user_id.as_deref(), r.user_principal_name.as_deref()));
    let key_hash = cells.get(cells.len() - 1).and_then(|key| key.as_str()).map(user_hash);
    cells.push_int(key_hash);
    cells.push_opt_str(r.app_id.as_deref());
    cells.push_opt_str(r.app_display_name.as_deref());
    cells.push_opt_str(r.resource_display_name.as_deref());
    cells.push_opt_str(r.resource_id.as_deref());
    cells.push_opt_str(r.client_app_used.as_deref());
    cells.push_bool(legacy);
    cells.push_opt_str(r.user_agent.as_deref());
    cells.push_opt_str(r.ip_address.as_deref());
    cells.push_written(|out| r.ip_address.as_deref().is_some_and(|ip| write_ip_key(out, ip)));
    cells.push_opt_str(location.city.as_deref());
    cells.push_opt_str(location.state.as_deref());
    cells.push_opt_str(location.country_or_region.as_deref());
    cells.push_float(geo.latitude);
    cells.push_float(geo.longitude);
    cells.push_opt_str(r.correlation_id.as_deref());
    cells.push_str(SignInStatus::from_error_code(error_code).as_str());
    cells.push_int(Some(error_code));
    cells.push_opt_str(status.failure_reason.as_deref());
    cells.push_opt_str(status.additional_details.as_deref());
    cells.push_opt_str(device.device_id.as_deref());
    cells.push_opt_str(device.display_name.as_deref());
    cells.push_opt_str(device.operating_system.as_deref());
    cells.push_opt_str(device.browser.as_deref());
    cells.push_bool(device.is_compliant);
    cells.push_bool(device.is_managed);
    cells.push_opt_str(device.trust_type.as_deref());
    cells.push_opt_str(r.conditional_access_status.as_deref());
    cells.push_bool(r.is_interactive);
    cells.push_list(event_types);
    cells.push_opt_str(r.authentication_requirement.as_deref());
    cells.push_opt_str(r.risk_detail.as_deref());
    cells.push_opt_str(r.risk_level_aggregated.as_deref());
    cells.push_opt_str(r.risk_level_during_sign_in.as_deref());
    cells.push_opt_str(r.risk_state.as_deref());
    cells.push_list(risk_events);
    cells.push_bool(Some(risk_detected));
    cells.push_list(methods);
    cells.push_list(succeeded);
    cells.push_bool(Some(by_claim));
    cells.push_bool(Some(passwordless));
    cells.push_opt_str(r.service_principal_id.as_deref());
    cells.push_opt_str(r.service_principal_name.as_deref());
    cells.push_opt_str(r.token_issuer_type.as_deref());
    cells.push_int(r.processing_time_in_milliseconds);
    cells.push_int(Some(method_set));
    Ok(Event::from_parts_hashed(LogKind::SignIn, id, time_us, cells, body, content_hash))
}

fn infer_event_type(interactive: Option<bool>, user_id: Option<&str>, sp_id: Option<&str>) -> &'static str {
    let has_user = user_id.is_some_and(|u| !u.is_empty());
    let has_sp = sp_id.is_some_and(|s| !s.is_empty() && s != "00000000-0000-0000-0000-000000000000");
    match interactive {
        Some(true) => "interactiveUser",
        _ if !has_user && has_sp => "servicePrincipal",
        Some(false) => "nonInteractiveUser",
        None => "interactiveUser",
    }
}

/// (methods used, methods that succeeded, MFA satisfied by a claim in the token)
fn auth_method_summary<'r>(
    details: &'r [GraphAuthDetail<'_>],
    mfa: Option<&'r GraphMfaDetail<'_>>,
) -> (Vec<&'r str>, Vec<&'r str>, bool) {
    let mut methods: Vec<&str> = Vec::new();
    let mut succeeded: Vec<&str> = Vec::new();
    let mut by_claim = false;
    for step in details {
        let detail = step.authentication_step_result_detail.as_deref().unwrap_or("");
        if satisfied_by_claim(detail) {
            by_claim = true;
        }
        let Some(method) = step.authentication_method.as_deref() else { continue };
        if method.is_empty() || method.eq_ignore_ascii_case("Previously satisfied") {
            continue;
        }
        if !methods.contains(&method) {
            methods.push(method);
        }
        if step.succeeded == Some(true) && !succeeded.contains(&method) {
            succeeded.push(method);
        }
    }
    if let Some(method) = mfa.and_then(|m| m.auth_method.as_deref()) {
        if !method.is_empty() && !methods.contains(&method) {
            methods.push(method);
        }
    }
    (methods, succeeded, by_claim)
}

/// Whether a step's result says "MFA requirement satisfied by claim" (or "by token") anywhere.
fn satisfied_by_claim(detail: &str) -> bool {
    const SATISFIED: &[u8] = b"MFA requirement satisfied by ";
    // Built once: a finder per call was 0.6 % of the HTTP threads' time during ingest.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(SATISFIED));
    FINDER.find_iter(detail.as_bytes()).any(|at| {
        let rest = &detail.as_bytes()[at + SATISFIED.len()..];
        rest.starts_with(b"claim") || rest.starts_with(b"token")
    })
}

/// The key of a sign-in's (methods, methods succeeded) pair, stored beside the two lists:
/// xxh3-64 of each list's length and each name's length and bytes (little-endian u32s), as a
/// signed integer. Sign-ins share a few dozen such pairs; reports group by
/// the key and read the names from a small table of the pairs instead of unnesting every
/// sign-in's lists.
pub fn auth_method_set<S: AsRef<str>>(methods: &[S], succeeded: &[S]) -> i64 {
    let mut bytes = Vec::with_capacity(64);
    for list in [methods, succeeded] {
        bytes.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for name in list {
            bytes.extend_from_slice(&(name.as_ref().len() as u32).to_le_bytes());
            bytes.extend_from_slice(name.as_ref().as_bytes());
        }
    }
    xxhash_rust::xxh3::xxh3_64(&bytes) as i64
}

/// The distinct-user hash stored beside the key (xxh3-64 of the key, as a signed integer).
pub fn user_hash(key: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as i64
}

/// A sortable, prefix-comparable key for an IP address: 32 hex digits of the IPv6 form
/// (IPv4 mapped into `::ffff:0:0/96`). CIDR filters become ranges over this key.
pub fn ip_key(ip: &str) -> Option<String> {
    let mut key = String::with_capacity(32);
    write_ip_key(&mut key, ip).then_some(key)
}

/// [`ip_key`] appended to `out`; false (nothing appended) when `ip` is not an address.
fn write_ip_key(out: &mut String, ip: &str) -> bool {
    let Ok(addr) = ip.trim().parse::<std::net::IpAddr>() else { return false };
    // As `format!("{:032x}", ..)`, without the formatting machinery (on every sign-in).
    let value = ip_to_u128(addr);
    out.extend((0..32).rev().map(|nibble| char::from(b"0123456789abcdef"[(value >> (nibble * 4)) as usize & 0xf])));
    true
}

pub fn ip_to_u128(addr: std::net::IpAddr) -> u128 {
    match addr {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Cell;
    use crate::schema::SIGNIN_COLUMNS;
    use proptest::prelude::*;

    /// The kind's normaliser over plain bytes.
    fn normalize(body: &[u8]) -> Result<Event, RecordError> {
        super::normalize(&bytes::Bytes::copy_from_slice(body), None)
    }

    fn cell(event: &Event, name: &str) -> Cell {
        let index = SIGNIN_COLUMNS.iter().position(|c| c.name == name).unwrap();
        event.cells.get(index).unwrap().to_cell()
    }

    #[test]
    fn graph_example_normalises() {
        let body = br#"{"id":"66ea54eb","createdDateTime":"2020-03-13T19:15:41.6195833Z","userPrincipalName":"A@Contoso.com",
            "appDisplayName":"Graph explorer","ipAddress":"131.107.159.37","clientAppUsed":"Browser","isInteractive":true,
            "status":{"errorCode":50074,"failureReason":"Strong auth required"},"riskEventTypes_v2":["unfamiliarFeatures"],
            "location":{"city":"Redmond","countryOrRegion":"US","geoCoordinates":{"latitude":47.6,"longitude":-122.1}},
            "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true},
              {"authenticationMethod":"Mobile app notification","succeeded":false}]}"#;
        let event = normalize(body).unwrap();
        assert_eq!(event.id, "66ea54eb");
        assert_eq!(cell(&event, "status"), Cell::Str("interrupted".into()));
        assert_eq!(cell(&event, "error_code"), Cell::Int(50074));
        assert_eq!(cell(&event, "user_key"), Cell::Str("a@contoso.com".into()));
        assert_eq!(cell(&event, "risk_detected"), Cell::Bool(true));
        assert_eq!(cell(&event, "event_types"), Cell::List(vec!["interactiveUser".into()]));
        assert_eq!(cell(&event, "is_legacy_client"), Cell::Bool(false));
        assert_eq!(cell(&event, "auth_methods"), Cell::List(vec!["Password".into(), "Mobile app notification".into()]));
        assert_eq!(cell(&event, "auth_methods_succeeded"), Cell::List(vec!["Password".into()]));
        assert_eq!(cell(&event, "ip_key"), Cell::Str("00000000000000000000ffff836b9f25".into()));
    }

    #[test]
    fn lenient_types_are_accepted() {
        let body = br#"{"id":"x","createdDateTime":"2020-03-13T19:15:41Z","isInteractive":"True",
            "status":{"errorCode":"0"},"processingTimeInMilliseconds":"239",
            "authenticationDetails":"[{\"authenticationMethod\":\"FIDO2 security key\",\"succeeded\":true}]"}"#;
        let event = normalize(body).unwrap();
        assert_eq!(cell(&event, "is_interactive"), Cell::Bool(true));
        assert_eq!(cell(&event, "status"), Cell::Str("success".into()));
        assert_eq!(cell(&event, "processing_time_ms"), Cell::Int(239));
        let methods = cell(&event, "auth_methods").clone();
        let expected = match (methods, cell(&event, "auth_methods_succeeded")) {
            (Cell::List(m), Cell::List(s)) => auth_method_set(&m, &s),
            other => panic!("{other:?}"),
        };
        assert_eq!(cell(&event, "auth_method_set"), Cell::Int(expected));
        assert_eq!(cell(&event, "passwordless"), Cell::Bool(true));
    }

    #[test]
    fn errors_name_the_field() {
        let err = normalize(br#"{"createdDateTime":"2020-03-13T19:15:41Z"}"#).unwrap_err();
        assert_eq!(err.field, "id");
        let err = normalize(br#"{"id":"a","createdDateTime":"soon"}"#).unwrap_err();
        assert_eq!(err.field, "createdDateTime");
        let err = normalize(br#"{"id":"a","createdDateTime":"2020-03-13T19:15:41Z","status":{"errorCode":"abc"}}"#)
            .unwrap_err();
        assert_eq!(err.field, "status.errorCode");
        let err = normalize(br#"[1,2]"#).unwrap_err();
        assert_eq!(err.field, "(record)");
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let body = br#"{"id":"d","createdDateTime":"2020-03-13T19:15:41Z","userDisplayName":"first","userDisplayName":"last"}"#;
        let event = normalize(body).unwrap();
        assert_eq!(cell(&event, "user_display_name"), Cell::Str("last".into()));
    }

    #[test]
    fn service_principal_sign_ins_are_typed() {
        let body =
            br#"{"id":"s","createdDateTime":"2020-03-13T19:15:41Z","servicePrincipalId":"abc","isInteractive":false}"#;
        let event = normalize(body).unwrap();
        assert_eq!(cell(&event, "event_types"), Cell::List(vec!["servicePrincipal".into()]));
    }

    /// The fast path must read what serde reads, or leave the record to serde.
    fn agrees_with_serde(body: &str) -> Option<()> {
        let slow = crate::event::parse_record::<GraphSignIn>(body.as_bytes());
        let (fast, hash) = scanned(body)?;
        assert_eq!(Ok(&fast), slow.as_ref(), "{body}");
        assert_eq!(hash, crate::json::content_hash(body.as_bytes()), "{body}");
        Some(())
    }

    #[test]
    fn typical_sign_ins_take_the_fast_path() {
        let full = r#"{"id":"66ea54eb-6301-4ee5-be62-ff5a759b8100","createdDateTime":"2020-03-13T19:15:41.6195833Z",
            "userDisplayName":"Test contoso","userPrincipalName":"testaccount1@contoso.com","userId":"26be570a-ae82-4189-b4e2-a37c6808512d",
            "userType":"member","appId":"de8bc8b5-d9f9-48b1-a8ad-b748da725064","appDisplayName":"Graph explorer",
            "resourceDisplayName":"Microsoft Graph","resourceId":"00000003-0000-0000-c000-000000000000",
            "ipAddress":"131.107.159.37","clientAppUsed":"Browser","userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "correlationId":"d79f5bee-5860-4832-928f-3133e22ae912","conditionalAccessStatus":"notApplied",
            "isInteractive":true,"signInEventTypes":["interactiveUser"],"authenticationRequirement":"multiFactorAuthentication",
            "riskDetail":"none","riskLevelAggregated":"none","riskLevelDuringSignIn":"none","riskState":"none",
            "riskEventTypes":[],"riskEventTypes_v2":[],"servicePrincipalId":"","servicePrincipalName":null,
            "tokenIssuerType":"AzureAD","processingTimeInMilliseconds":239,
            "status":{"errorCode":0,"failureReason":null,"additionalDetails":null},
            "deviceDetail":{"deviceId":"","displayName":null,"operatingSystem":"Windows 10","browser":"Chrome 80.0.3987",
              "isCompliant":false,"isManaged":false,"trustType":null},
            "location":{"city":"Redmond","state":"Washington","countryOrRegion":"US",
              "geoCoordinates":{"altitude":null,"latitude":47.68050003051758,"longitude":-122.1206059}},
            "authenticationDetails":[{"authenticationStepDateTime":"2020-03-13T19:15:41Z","authenticationMethod":"Password",
              "authenticationMethodDetail":"Password Hash Sync","succeeded":true,
              "authenticationStepResultDetail":"Correct password","authenticationStepRequirement":"Primary authentication"},null],
            "mfaDetail":{"authMethod":"Mobile app notification","authDetail":null},
            "appliedConditionalAccessPolicies":[{"id":"x","enforcedGrantControls":["Mfa"],"result":"success"}]}"#;
        assert_eq!(agrees_with_serde(full), Some(()), "a full Graph sign-in is read on the fast path");
        let event = normalize(full.as_bytes()).unwrap();
        let slow = from_record(
            crate::event::parse_record(full.as_bytes()).unwrap(),
            &Bytes::from_static(full.as_bytes()),
            crate::json::content_hash(full.as_bytes()),
        )
        .unwrap();
        assert_eq!((event.cells, event.content_hash), (slow.cells, slow.content_hash));
        // What the fast path leaves to serde, which decides (and names the field if it refuses).
        for body in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"\u0069d":"a"}"#,
            r#"{"id":"a\ud83d"}"#,
            "{\"id\":\"a\u{1}\"}",
            r#"{"id":"a","status":{"errorCode":01}}"#,
            r#"{"id":"a","status":"oops"}"#,
        ] {
            assert_eq!(scanned(body).map(|_| ()), None, "{body}");
        }
    }

    /// Raw JSON texts for a member's value: valid and not, plain and odd.
    fn value_text() -> impl Strategy<Value = String> {
        let scalars = prop::sample::select(vec![
            r#""text""#,
            r#""""#,
            r#""esc\"aped\u00e9\/""#,
            "\"a\u{1}b\"",
            r#""\ud83d\ude00""#,
            r#""\udc00""#,
            "null",
            "true",
            "false",
            "0",
            "-0",
            "42",
            "-7",
            "01",
            "1.0",
            "1.5",
            "2e3",
            "1e999",
            "-",
            "1.",
            "18446744073709551616",
            r#""42""#,
            r#"" 7 ""#,
            r#""True""#,
            r#""no""#,
            r#""[\"a\",\"b\"]""#,
            r#""a, b""#,
            r#""[{\"authenticationMethod\":\"FIDO2 security key\",\"succeeded\":true}]""#,
            r#"["a","",null]"#,
            r#"["a",1]"#,
            "[]",
            "{}",
            r#""2020-03-13T19:15:41Z""#,
            "47.68050003051758",
            "-122.1206059",
        ])
        .prop_map(str::to_owned);
        let nested_keys = prop::sample::select(vec![
            "errorCode",
            "failureReason",
            "additionalDetails",
            "deviceId",
            "displayName",
            "operatingSystem",
            "browser",
            "isCompliant",
            "isManaged",
            "trustType",
            "city",
            "state",
            "countryOrRegion",
            "geoCoordinates",
            "latitude",
            "longitude",
            "authMethod",
            "authDetail",
            "authenticationMethod",
            "succeeded",
            "authenticationStepResultDetail",
            "authenticationStepRequirement",
            "other",
        ]);
        scalars.prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                prop::collection::vec((nested_keys.clone(), inner.clone()), 0..6).prop_map(|members| {
                    let members: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
                prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            ]
        })
    }

    /// Records of random members (known, unknown, repeated, with an escaped key) holding
    /// random values, valid and not: the fast path reads each as serde does, or leaves it.
    #[test]
    fn the_fast_path_reads_what_serde_reads() {
        let keys = prop::sample::select(vec![
            "id",
            "createdDateTime",
            "userId",
            "userPrincipalName",
            "userDisplayName",
            "userType",
            "appId",
            "appDisplayName",
            "resourceDisplayName",
            "resourceId",
            "clientAppUsed",
            "userAgent",
            "ipAddress",
            "correlationId",
            "conditionalAccessStatus",
            "isInteractive",
            "signInEventTypes",
            "authenticationRequirement",
            "riskDetail",
            "riskLevelAggregated",
            "riskLevelDuringSignIn",
            "riskState",
            "riskEventTypes",
            "riskEventTypes_v2",
            "servicePrincipalId",
            "servicePrincipalName",
            "tokenIssuerType",
            "processingTimeInMilliseconds",
            "status",
            "deviceDetail",
            "location",
            "authenticationDetails",
            "mfaDetail",
            "ID",
            "\\u0069d",
            "unknown",
        ]);
        let record =
            (prop::collection::vec((keys, value_text()), 0..14), prop::sample::select(vec!["", " ", "\n  ", "\t"]))
                .prop_map(|(members, space)| {
                    let members: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{space}{v}")).collect();
                    format!("{{{space}{}{space}}}", members.join(&format!(",{space}")))
                });
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast, mut slow_only, mut refused) = (0, 0, 0);
        for _ in 0..10_000 {
            let body = proptest::strategy::ValueTree::current(&record.new_tree(&mut runner).unwrap());
            let serde_reads = crate::event::parse_record::<GraphSignIn>(body.as_bytes()).is_ok();
            match agrees_with_serde(&body) {
                Some(()) => fast += 1,
                None if serde_reads => slow_only += 1,
                None => refused += 1,
            }
        }
        // Each way is exercised (counts for 10,000 records, deterministic).
        assert!(fast > 1000 && slow_only > 250 && refused > 1000, "fast {fast}, slow {slow_only}, refused {refused}");
    }

    #[test]
    fn claims_and_ip_keys_are_what_they_were() {
        for (detail, expected) in [
            ("MFA requirement satisfied by claim in the token", true),
            ("MFA requirement satisfied by token", true),
            ("Note: MFA requirement satisfied by claim", true),
            ("MFA requirement satisfied by ", false),
            ("MFA requirement satisfied by text message; MFA requirement satisfied by claim", true),
            ("MFA completed in Azure AD", false),
            ("", false),
        ] {
            let reference = detail.contains("MFA requirement satisfied by claim")
                || detail.contains("MFA requirement satisfied by token");
            assert_eq!((satisfied_by_claim(detail), reference), (expected, expected), "{detail}");
        }
        for ip in ["131.107.159.37", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::ff00:42:8329", " 10.0.0.1 "] {
            let addr: std::net::IpAddr = ip.trim().parse().unwrap();
            assert_eq!(ip_key(ip), Some(format!("{:032x}", ip_to_u128(addr))), "{ip}");
        }
        assert_eq!(ip_key("not an address"), None);
    }

    #[test]
    fn method_set_keys_tell_lists_apart() {
        let key = |m: &[&str], s: &[&str]| auth_method_set(m, s);
        let pairs: [(&[&str], &[&str]); 6] =
            [(&["a"], &[]), (&[], &["a"]), (&["a", ""], &[]), (&["a"], &[""]), (&["ab"], &[]), (&["a", "b"], &[])];
        let keys: std::collections::HashSet<i64> = pairs.iter().map(|(m, s)| key(m, s)).collect();
        assert_eq!(keys.len(), pairs.len());
        assert_eq!(key(&["Password"], &["Password"]), key(&["Password"], &["Password"]));
    }
}
