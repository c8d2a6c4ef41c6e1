//! Realistic demo sign-ins: many users with skewed activity, skewed application use,
//! working-hours load, failures with real error codes, interrupts, risky sign-ins, travel,
//! legacy clients, MFA and passwordless methods, and a few later revisions (risk processing
//! finished). Deterministic for a given `--seed` and `--end`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub signins: usize,
    pub days: i64,
    pub users: usize,
    pub seed: u64,
    /// End of the generated period (microseconds); sign-ins fall in `[end - days, end)`.
    pub end_us: i64,
}

const FIRST: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Sara",
    "Wei",
    "Yuki",
    "Amara",
    "Bjorn",
    "Chidi",
    "Dana",
    "Farah",
];
const LAST: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Cline",
    "Berg",
    "Siciliani",
    "Braun",
    "Bonelli",
    "Archie",
    "Ortiz",
    "Henneberg",
    "Grayson",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Valdez",
    "Bowen",
    "Hardin",
    "Sorensen",
    "Fernandes",
    "Gupta",
    "Davis",
    "Chen",
    "Tanaka",
    "Okafor",
    "Larsen",
    "Nwosu",
    "Kim",
    "Haddad",
];
/// (city, state, country, latitude, longitude, first IPv4 octets)
const PLACES: &[(&str, &str, &str, f64, f64, &str)] = &[
    ("Redmond", "Washington", "US", 47.67, -122.12, "131.107"),
    ("New York", "New York", "US", 40.71, -74.0, "64.233"),
    ("London", "England", "GB", 51.5, -0.12, "81.2"),
    ("Paris", "Ile-de-France", "FR", 48.85, 2.35, "90.84"),
    ("Berlin", "Berlin", "DE", 52.52, 13.4, "85.214"),
    ("Bangalore", "Karnataka", "IN", 12.97, 77.59, "49.207"),
    ("Sydney", "New South Wales", "AU", -33.86, 151.2, "1.128"),
];
/// Places seen only when travelling or attacking.
const FOREIGN: &[(&str, &str, &str, f64, f64, &str)] = &[
    ("Lagos", "Lagos", "NG", 6.52, 3.37, "102.89"),
    ("Sao Paulo", "Sao Paulo", "BR", -23.55, -46.63, "177.71"),
    ("Moscow", "Moscow", "RU", 55.75, 37.61, "95.165"),
    ("Singapore", "Singapore", "SG", 1.35, 103.82, "103.6"),
];
/// (name, app id, weight)
const APPS: &[(&str, &str, u32)] = &[
    ("Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", 300),
    ("Microsoft Teams", "1fec8e78-bce4-4aaf-ab1b-5451cc387264", 250),
    ("Office 365 SharePoint Online", "00000003-0000-0ff1-ce00-000000000000", 150),
    ("Microsoft Outlook", "5d661950-3475-41cd-a2c3-d671a3162bc1", 90),
    ("Azure Portal", "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", 50),
    ("Salesforce", "5e4e0d94-2a1c-4d8e-a1a3-8c0c6b7f1a11", 40),
    ("Workday", "7a1b9e3c-55f2-4a9e-8c1d-2b3c4d5e6f70", 25),
    ("ServiceNow", "9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e", 20),
    ("GitHub Enterprise", "2f3e4d5c-6b7a-4980-8a1b-2c3d4e5f6a7b", 20),
    ("Zoom", "3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d", 15),
    ("Graph Explorer", "de8bc8b5-d9f9-48b1-a8ad-b748da725064", 8),
    ("Azure CLI", "04b07795-8ddb-461a-bbee-02f9e1bf7b46", 12),
];
/// (code, reason, weight) of failures.
const FAILURES: &[(i64, &str, u32)] = &[
    (50126, "Error validating credentials due to invalid username or password.", 50),
    (500121, "Authentication failed during strong authentication request.", 12),
    (53003, "Access has been blocked by Conditional Access policies.", 10),
    (
        50053,
        "Account is locked because the user tried to sign in too many times with an incorrect user ID or password.",
        8,
    ),
    (50055, "The password is expired.", 4),
    (50057, "The user account is disabled.", 3),
    (53000, "Device is not in required device state: compliant.", 5),
    (70043, "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access.", 4),
    (50034, "The user account does not exist in the directory.", 4),
    (7000215, "Invalid client secret provided.", 2),
];
/// (code, reason, weight) of interrupts.
const INTERRUPTS: &[(i64, &str, u32)] = &[
    (50074, "Strong Authentication is required.", 30),
    (50140, "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.", 25),
    (50058, "Session information is not sufficient for single-sign-on.", 15),
    (16000, "Either multiple user identities are available for the current request or selected account is not supported for the scenario.", 10),
    (50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.", 12),
    (50072, "Users account is required to register for multi-factor authentication.", 3),
];
const MFA_METHODS: &[(&str, u32)] = &[
    ("Mobile app notification", 50),
    ("Text message", 15),
    ("OATH verification code", 10),
    ("Phone call approval (Authentication phone)", 5),
];
const PASSWORDLESS: &[&str] = &["Windows Hello for Business", "FIDO2 security key", "Passwordless phone sign-in"];
const DEVICES: &[(&str, &str, u32)] = &[
    ("Windows 10", "Edge 120.0.2210", 30),
    ("Windows 11", "Edge 121.0.2277", 25),
    ("Windows 10", "Chrome 120.0.6099", 15),
    ("MacOs", "Safari 17.2", 10),
    ("MacOs", "Chrome 120.0.6099", 6),
    ("Ios", "Mobile Safari 17.2", 8),
    ("Android", "Chrome Mobile 120.0", 5),
    ("Linux", "Firefox 121.0", 1),
];
const LEGACY_CLIENTS: &[&str] =
    &["IMAP4", "POP3", "Exchange ActiveSync", "Authenticated SMTP", "Exchange Web Services"];

struct User {
    id: String,
    upn: String,
    name: String,
    home: usize,
    host: u32,
    device: usize,
    passwordless: bool,
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let v: u128 = rng.gen();
    let h = format!("{v:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut pick = rng.gen_range(0..total);
    for item in items {
        let w = weight(item);
        if pick < w {
            return item;
        }
        pick -= w;
    }
    &items[items.len() - 1]
}

/// Hour-of-day weights for working hours (UTC-ish, for the demo).
const HOUR_WEIGHTS: [u32; 24] = [1, 1, 1, 1, 1, 2, 4, 10, 22, 30, 30, 28, 22, 26, 30, 30, 26, 18, 10, 6, 4, 3, 2, 1];

fn sample_time(rng: &mut ChaCha8Rng, start: i64, days: i64) -> i64 {
    loop {
        let day = rng.gen_range(0..days);
        let day_start = (start.div_euclid(DAY) + day) * DAY;
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        let weekday = (day_start.div_euclid(DAY) + 3).rem_euclid(7);
        if weekday >= 5 && rng.gen_bool(0.8) {
            continue;
        }
        let hours: Vec<usize> = (0..24).collect();
        let hour = *weighted(rng, &hours, |h| HOUR_WEIGHTS[*h]) as i64;
        let t = day_start + hour * HOUR + rng.gen_range(0..HOUR);
        if t >= start && t < start + days * DAY {
            return t;
        }
    }
}

/// Generates sign-ins in time order, plus a few later revisions (same id, risk processed).
pub fn signins(options: &DemoOptions) -> Vec<Vec<u8>> {
    signins_slice(options, 0)
}

/// One of several slices of a larger data set (generated one after another to bound memory):
/// the same users as [`signins`] with these options, other sign-ins (slice 0 is [`signins`]).
pub fn signins_slice(options: &DemoOptions, slice: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let users: Vec<User> = (0..options.users.max(1))
        .map(|i| {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len() + i * 7) % LAST.len()];
            let suffix = if i < FIRST.len() { String::new() } else { (i / FIRST.len()).to_string() };
            User {
                id: uuid(&mut rng),
                upn: format!("{}.{}{}@contoso.com", first.to_lowercase(), last.to_lowercase(), suffix),
                name: format!("{first} {last}"),
                home: rng.gen_range(0..PLACES.len()),
                host: rng.gen_range(2..250),
                device: rng.gen_range(0..DEVICES.len()),
                passwordless: rng.gen_bool(0.15),
            }
        })
        .collect();
    if slice > 0 {
        rng = ChaCha8Rng::seed_from_u64(options.seed ^ slice.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    let start = options.end_us - options.days * DAY;
    let mut times: Vec<i64> = (0..options.signins).map(|_| sample_time(&mut rng, start, options.days.max(1))).collect();
    times.sort_unstable();
    let mut out = Vec::with_capacity(options.signins + options.signins / 100);
    for t in times {
        // Skewed activity: a few users sign in far more often than most.
        let u: f64 = rng.gen();
        let user = &users[((u * u) * users.len() as f64) as usize % users.len()];
        let record = one_signin(&mut rng, user, t);
        if rng.gen_bool(0.005) {
            // Entra logs some sign-ins again once risk processing finished: a new revision.
            let mut revised = record.clone();
            revised["riskState"] = json!("remediated");
            revised["riskDetail"] = json!("userPassedMFADrivenByRiskBasedPolicy");
            out.push(serde_json::to_vec(&record).unwrap_or_default());
            out.push(serde_json::to_vec(&revised).unwrap_or_default());
        } else {
            out.push(serde_json::to_vec(&record).unwrap_or_default());
        }
    }
    out
}

fn one_signin(rng: &mut ChaCha8Rng, user: &User, t: i64) -> Value {
    let app = weighted(rng, APPS, |a| a.2);
    let event_type = weighted(
        rng,
        &[("interactiveUser", 70u32), ("nonInteractiveUser", 26), ("servicePrincipal", 2), ("managedIdentity", 2)],
        |e| e.1,
    )
    .0;
    let travelling = rng.gen_bool(0.01);
    let attack = rng.gen_bool(0.005);
    let place = if travelling || attack { FOREIGN[rng.gen_range(0..FOREIGN.len())] } else { PLACES[user.home] };
    let legacy = rng.gen_bool(if attack { 0.6 } else { 0.03 });
    let client = if legacy {
        LEGACY_CLIENTS[rng.gen_range(0..LEGACY_CLIENTS.len())]
    } else if rng.gen_bool(0.6) {
        "Browser"
    } else {
        "Mobile Apps and Desktop clients"
    };
    let roll: f64 = rng.gen();
    let (code, reason) = if attack || (legacy && roll < 0.3) {
        let f = weighted(rng, &FAILURES[..2], |f| f.2);
        (f.0, f.1)
    } else if roll < 0.07 {
        let f = weighted(rng, FAILURES, |f| f.2);
        (f.0, f.1)
    } else if roll < 0.12 {
        let f = weighted(rng, INTERRUPTS, |f| f.2);
        (f.0, f.1)
    } else {
        (0, "")
    };
    let mfa_required = !legacy && (rng.gen_bool(0.45) || travelling || matches!(code, 50074 | 50076 | 500121));
    let mut steps = Vec::new();
    if user.passwordless && !legacy && rng.gen_bool(0.8) {
        let method = PASSWORDLESS[user.host as usize % PASSWORDLESS.len()];
        steps.push(json!({"authenticationMethod": method, "succeeded": code == 0, "authenticationStepRequirement": "Primary authentication", "authenticationStepResultDetail": if code == 0 { "MFA successfully completed" } else { "Authentication failed" }}));
    } else if event_type == "nonInteractiveUser" && rng.gen_bool(0.7) {
        steps.push(json!({"authenticationMethod": "Previously satisfied", "succeeded": true, "authenticationStepRequirement": "Primary authentication", "authenticationStepResultDetail": "First factor requirement satisfied by claim in the token"}));
        if mfa_required {
            steps.push(json!({"authenticationMethod": "Previously satisfied", "succeeded": true, "authenticationStepRequirement": "Multi-factor authentication", "authenticationStepResultDetail": "MFA requirement satisfied by claim in the token"}));
        }
    } else {
        let password_ok = !matches!(code, 50126 | 50053 | 50055 | 50057 | 50034);
        steps.push(json!({"authenticationMethod": "Password", "succeeded": password_ok, "authenticationStepRequirement": "Primary authentication", "authenticationStepResultDetail": if password_ok { "Correct password" } else { "Invalid username or password or Invalid on-premise username or password." }}));
        if mfa_required && password_ok {
            let method = weighted(rng, MFA_METHODS, |m| m.1).0;
            let ok = code != 500121 && code != 50074;
            steps.push(json!({"authenticationMethod": method, "succeeded": ok, "authenticationStepRequirement": "Multi-factor authentication", "authenticationStepResultDetail": if ok { "MFA successfully completed" } else { "MFA denied; user declined the authentication" }}));
        }
    }
    let risky = attack || (travelling && rng.gen_bool(0.5)) || rng.gen_bool(0.01);
    let (risk_level, risk_events): (&str, Vec<&str>) = if risky {
        let level = if attack {
            "high"
        } else if rng.gen_bool(0.5) {
            "medium"
        } else {
            "low"
        };
        let events = if attack {
            vec!["passwordSpray", "unfamiliarFeatures"]
        } else if travelling {
            vec!["impossibleTravel"]
        } else {
            vec![*["anonymizedIPAddress", "unfamiliarFeatures", "maliciousIPAddress"]
                .choose(rng)
                .unwrap_or(&"unfamiliarFeatures")]
        };
        (level, events)
    } else {
        ("none", vec![])
    };
    let ca_status = if code == 53003 || code == 53000 {
        "failure"
    } else if rng.gen_bool(0.7) {
        "success"
    } else {
        "notApplied"
    };
    let (os, browser, _) = DEVICES[user.device];
    let ip = if travelling || attack {
        format!("{}.{}.{}", place.5, rng.gen_range(0..255), rng.gen_range(1..255))
    } else {
        format!("{}.{}.{}", place.5, user.host % 250, user.host)
    };
    let is_sp = matches!(event_type, "servicePrincipal" | "managedIdentity");
    json!({
        "id": uuid(rng),
        "createdDateTime": signet_model::time::format_time(t),
        "userDisplayName": if is_sp { Value::Null } else { json!(user.name) },
        "userPrincipalName": if is_sp { Value::Null } else { json!(user.upn) },
        "userId": if is_sp { Value::Null } else { json!(user.id) },
        "userType": "member",
        "appId": app.1,
        "appDisplayName": app.0,
        "ipAddress": ip,
        "clientAppUsed": client,
        "userAgent": format!("Mozilla/5.0 ({os}) {browser}"),
        "correlationId": uuid(rng),
        "conditionalAccessStatus": ca_status,
        "isInteractive": event_type == "interactiveUser",
        "signInEventTypes": [event_type],
        "authenticationRequirement": if mfa_required { "multiFactorAuthentication" } else { "singleFactorAuthentication" },
        "riskDetail": "none",
        "riskLevelAggregated": risk_level,
        "riskLevelDuringSignIn": risk_level,
        "riskState": if risky { "atRisk" } else { "none" },
        "riskEventTypes_v2": risk_events,
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": "00000003-0000-0000-c000-000000000000",
        "servicePrincipalId": if is_sp { json!(app.1) } else { json!("") },
        "status": { "errorCode": code, "failureReason": if code == 0 { Value::Null } else { json!(reason) }, "additionalDetails": Value::Null },
        "deviceDetail": { "deviceId": "", "displayName": Value::Null, "operatingSystem": os, "browser": browser, "isCompliant": !user.host.is_multiple_of(3), "isManaged": !user.host.is_multiple_of(3), "trustType": if !user.host.is_multiple_of(3) { json!("Azure AD joined") } else { Value::Null } },
        "location": { "city": place.0, "state": place.1, "countryOrRegion": place.2, "geoCoordinates": { "latitude": place.3, "longitude": place.4 } },
        "appliedConditionalAccessPolicies": [
            { "id": "de7e60eb-ed89-4d73-8205-2227def6b7c9", "displayName": "Require MFA for admins and risky sign-ins", "enforcedGrantControls": if mfa_required { json!(["Mfa"]) } else { json!([]) }, "enforcedSessionControls": [], "result": if ca_status == "failure" { "failure" } else if mfa_required { "success" } else { "notApplied" } }
        ],
        "authenticationDetails": steps,
    })
}

/// A few directory audits over the same period.
pub fn directory_audits(options: &DemoOptions, count: usize) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xa0d1);
    let activities = [
        ("Add member to group", "GroupManagement", "Add"),
        ("Update user", "UserManagement", "Update"),
        ("Reset user password", "UserManagement", "Update"),
        ("Add app role assignment to service principal", "ApplicationManagement", "Assign"),
        ("Update application – Certificates and secrets management", "ApplicationManagement", "Update"),
        ("Delete user", "UserManagement", "Delete"),
        ("Add member to role", "RoleManagement", "Assign"),
    ];
    let start = options.end_us - options.days * DAY;
    let mut times: Vec<i64> = (0..count).map(|_| sample_time(&mut rng, start, options.days.max(1))).collect();
    times.sort_unstable();
    times
        .into_iter()
        .map(|t| {
            let (name, category, operation) = activities[rng.gen_range(0..activities.len())];
            let admin = format!("admin{}@contoso.com", rng.gen_range(1..4));
            let target = format!("{}.{}@contoso.com", FIRST[rng.gen_range(0..FIRST.len())].to_lowercase(), LAST[rng.gen_range(0..LAST.len())].to_lowercase());
            let record = json!({
                "id": format!("Directory_{}", uuid(&mut rng)),
                "category": category,
                "correlationId": uuid(&mut rng),
                "result": if rng.gen_bool(0.97) { "success" } else { "failure" },
                "resultReason": "",
                "activityDisplayName": name,
                "activityDateTime": signet_model::time::format_time(t),
                "loggedByService": "Core Directory",
                "operationType": operation,
                "initiatedBy": { "user": { "id": uuid(&mut rng), "displayName": Value::Null, "userPrincipalName": admin, "ipAddress": "131.107.10.20" }, "app": Value::Null },
                "targetResources": [{ "id": uuid(&mut rng), "displayName": Value::Null, "type": "User", "userPrincipalName": target, "modifiedProperties": [] }],
                "additionalDetails": [],
            });
            serde_json::to_vec(&record).unwrap_or_default()
        })
        .collect()
}

/// Dynamics 365 activities of the demo users over the same period: record reads and grid
/// views, changes, exports, bulk actions, user access, on standard, custom and administrative
/// entities, so that every preconfigured activity report has something to show.
pub fn activities(options: &DemoOptions, count: usize) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xac71);
    // (operation, entity, weight)
    let operations: &[(&str, &str, u32)] = &[
        ("Retrieve", "account", 30),
        ("RetrieveMultiple", "account", 20),
        ("Retrieve", "contact", 20),
        ("RetrieveMultiple", "contact", 10),
        ("Update", "opportunity", 8),
        ("Create", "lead", 6),
        ("Update", "lead", 6),
        ("Create", "contact", 5),
        ("Retrieve", "new_project", 6),
        ("Update", "new_project", 3),
        ("Retrieve", "savedquery", 3),
        ("UserAccessviaWeb", "", 12),
        ("UserAccessviaWebServices", "", 4),
        ("ExportToExcel", "account", 3),
        ("ExportToExcel", "contact", 2),
        ("BulkDelete", "lead", 1),
        ("ImportRecordsImport", "contact", 1),
        ("Update", "systemuser", 1),
        ("Associate", "role", 1),
        ("SetState", "workflow", 1),
        ("Delete", "opportunity", 1),
    ];
    let users: Vec<String> = (0..40)
        .map(|_| {
            let first = FIRST[rng.gen_range(0..FIRST.len())].to_lowercase();
            let last = LAST[rng.gen_range(0..LAST.len())].to_lowercase();
            format!("{first}.{last}@contoso.com")
        })
        .collect();
    let start = options.end_us - options.days * DAY;
    let mut times: Vec<i64> = (0..count).map(|_| sample_time(&mut rng, start, options.days.max(1))).collect();
    times.sort_unstable();
    // Signet keeps one user-access record per user, type and 4-hour interval: so does the demo.
    let mut accessed = std::collections::HashSet::new();
    times
        .into_iter()
        .filter_map(|t| {
            let (operation, entity, _) = *weighted(&mut rng, operations, |o| o.2);
            // A few users do most of the work, as in the sign-ins.
            let user = &users[(rng.gen_range(0..users.len() * users.len()) as f64).sqrt() as usize];
            if operation.starts_with("UserAccess") && !accessed.insert((user.clone(), operation, t / (4 * 3_600_000_000))) {
                return None;
            }
            let record_id = uuid(&mut rng);
            let mut record = json!({
                "Id": uuid(&mut rng),
                "CreationTime": signet_model::time::format_time(t),
                "Operation": operation,
                "RecordType": "CRM",
                "Workload": "CRM",
                "OrganizationId": "7a2c0c1e-0b55-4d8f-9e8a-5a1d7c3e0f11",
                "UserType": "Regular",
                "User": user,
                "ClientIP": format!("10.20.{}.{}", rng.gen_range(0..8), rng.gen_range(1..255)),
                "CorrelationId": uuid(&mut rng),
                "ResultStatus": if rng.gen_bool(0.98) { "Succeeded" } else { "Failed" },
                "ServiceName": "Microsoft Dynamics 365",
                "InstanceUrl": "https://contoso.crm.dynamics.com",
                "UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36 Edg/130.0",
            });
            if !entity.is_empty() {
                record["EntityName"] = json!(entity);
                record["ItemType"] = json!(entity);
            }
            if matches!(operation, "Retrieve" | "Update" | "Create" | "Delete" | "SetState" | "Associate") {
                record["EntityId"] = json!(record_id);
                record["ItemUrl"] = json!(format!(
                    "https://contoso.crm.dynamics.com/main.aspx?etn={entity}&id={record_id}&pagetype=entityrecord"
                ));
            }
            if matches!(operation, "RetrieveMultiple" | "ExportToExcel") {
                let shown: Vec<String> = (0..rng.gen_range(3..12)).map(|_| uuid(&mut rng)).collect();
                record["Query"] = json!(format!("<fetch><entity name=\"{entity}\"><filter><condition attribute=\"statecode\" operator=\"eq\" value=\"0\"/></filter></entity></fetch>"));
                record["QueryResults"] = json!(shown.join(","));
            }
            Some(serde_json::to_vec(&record).unwrap_or_default())
        })
        .collect()
}

/// Submits events to a local engine, waiting and trying again while its queue is full (a local
/// load runs faster than the projection can keep up with).
pub fn submit_patiently(
    engine: &signet_store::Engine,
    org: &str,
    events: Vec<signet_model::Event>,
) -> anyhow::Result<signet_store::Outcome> {
    loop {
        match engine.pipeline().submit_blocking(org, events.clone()) {
            Err(signet_store::StoreError::Overloaded { retry_after_secs }) => {
                std::thread::sleep(
                    std::time::Duration::from_millis(250).max(std::time::Duration::from_secs(retry_after_secs) / 4),
                );
            }
            other => return Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(seed: u64) -> DemoOptions {
        DemoOptions { signins: 2000, days: 14, users: 50, seed, end_us: 1_704_067_200_000_000 }
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(signins(&options(7)), signins(&options(7)));
        assert_ne!(signins(&options(7)), signins(&options(8)));
    }

    #[test]
    fn realistic_mix() {
        let records = signins(&options(1));
        assert!(records.len() >= 2000);
        let mut failures = 0;
        let mut interrupts = 0;
        let mut risky = 0;
        for r in &records {
            let event = signet_model::normalize(signet_model::LogKind::SignIn, r).expect("demo records normalise");
            let status = event.cell("status").unwrap();
            match status.as_str() {
                Some("failure") => failures += 1,
                Some("interrupted") => interrupts += 1,
                _ => {}
            }
            if event.cell("risk_detected") == Some(signet_model::CellRef::Bool(true)) {
                risky += 1;
            }
            assert!(event.time_us < 1_704_067_200_000_000 && event.time_us >= 1_704_067_200_000_000 - 14 * DAY);
        }
        assert!(failures > 40 && failures < 400, "failures {failures}");
        assert!(interrupts > 40 && interrupts < 400, "interrupts {interrupts}");
        assert!(risky > 5, "risky {risky}");
    }

    #[test]
    fn demo_activities_are_valid_and_feed_the_entity_and_export_reports() {
        let records = activities(&options(7), 2000);
        assert!(records.len() > 1800, "only repeated user access is left out: {}", records.len());
        let mut operations = std::collections::BTreeSet::new();
        let mut access = std::collections::HashSet::new();
        for record in &records {
            let event = signet_model::normalize(signet_model::LogKind::Activity, record).expect("valid activity");
            let operation = event.cell("operation").and_then(|c| c.as_str()).unwrap().to_string();
            if operation.starts_with("UserAccess") {
                let user = event.cell("user_key").and_then(|c| c.as_str()).unwrap().to_string();
                let interval = event.time_us.div_euclid(4 * 3_600_000_000);
                assert!(access.insert((user, operation.clone(), interval)), "one user access per interval");
            }
            operations.insert(operation);
        }
        for expected in ["Retrieve", "RetrieveMultiple", "ExportToExcel", "BulkDelete", "UserAccessviaWeb", "SetState"]
        {
            assert!(operations.contains(expected), "{expected} missing from {operations:?}");
        }
    }
}
