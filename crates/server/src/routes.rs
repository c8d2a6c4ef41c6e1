//! The route table: every route with the permission it needs and how its use is audited.
//!
//! The router is built from this table and nothing else, so a route cannot exist without an
//! access rule; the table-driven test in `tests/it/access.rs` lists every route and fails when
//! one is added here without an expectation there.

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use signet_auth::Permission::{self, *};

use crate::{
    accounts, activity_reports, api, audit_settings, console, explore, graph, import, ingest, oidc, reports, retention,
    trust, user_sessions, views, AppState,
};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health check, console shell, the sign-in call itself).
    Public,
    /// Any verified credential.
    SignedIn,
    /// A verified credential holding the permission.
    Needs(Permission),
}

/// How a route's use is recorded in the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audit {
    No,
    /// A read of audit data: recorded before the answer is released (fail closed).
    Read(&'static str),
    /// A change of accounts, keys or settings: recorded after it is made.
    Change(&'static str),
}

#[derive(Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub audit: Audit,
}

macro_rules! route_table {
    ($( $method:ident $path:literal, $access:expr, $audit:expr => $handler:expr; )*) => {
        /// Every route, in one place.
        pub static ROUTES: &[RouteSpec] = &[
            $( RouteSpec { method: Method::$method, path: $path, access: $access, audit: $audit }, )*
        ];

        /// The handlers, in the order of [`ROUTES`].
        fn handlers() -> Vec<MethodRouter<AppState>> {
            vec![ $( on(MethodFilter::$method, $handler), )* ]
        }
    };
}

use Access::{Needs, Public, SignedIn};
use Audit::{Change, Read};

route_table! {
    GET "/", Public, Audit::No => console::index;
    GET "/assets/{file}", Public, Audit::No => console::asset;
    GET "/healthz", Public, Audit::No => api::healthz;
    GET "/api/v1/openapi.json", Public, Audit::No => api::openapi;
    GET "/metrics", Needs(ReadMetrics), Audit::No => api::metrics;

    POST "/api/v1/auth/login", Public, Audit::No => accounts::login;
    GET "/api/v1/auth/providers", Public, Audit::No => oidc::list;
    GET "/api/v1/auth/oidc/{provider}/login", Public, Audit::No => oidc::login;
    GET "/api/v1/auth/oidc/{provider}/callback", Public, Audit::No => oidc::callback;
    POST "/api/v1/auth/logout", SignedIn, Audit::No => accounts::logout;
    GET "/api/v1/auth/me", SignedIn, Audit::No => accounts::me;

    POST "/api/v1/signins", Needs(IngestEvents), Audit::No => ingest::signins;
    POST "/api/v1/directory-audits", Needs(IngestEvents), Audit::No => ingest::directory_audits;
    POST "/api/v1/activities", Needs(IngestEvents), Audit::No => ingest::activities;
    POST "/api/v1/import", Needs(IngestEvents), Audit::No => import::import_file;
    GET "/api/v1/okta/event-hook", Needs(IngestEvents), Audit::No => import::okta_hook_verify;
    POST "/api/v1/okta/event-hook", Needs(IngestEvents), Audit::No => import::okta_hook_events;
    // What an application needs to know to send only what is recorded (the SDK's middleware).
    GET "/api/v1/ingest/settings", Needs(IngestEvents), Audit::No => audit_settings::get;
    POST "/api/v1/directory/users", Needs(IngestEvents), Change("UserDirectoryImported") => user_sessions::import_users;
    GET "/api/v1/directory/users", Needs(ReadLogs), Read("UserDirectoryListed") => user_sessions::list_users;

    GET "/api/v1/signins", Needs(ReadLogs), Read("SignInsListed") => api::list_signins;
    GET "/api/v1/directory-audits", Needs(ReadLogs), Read("DirectoryAuditsListed") => api::list_directory_audits;
    GET "/api/v1/activities", Needs(ReadLogs), Read("ActivitiesListed") => api::list_activities;
    GET "/api/v1/signins/export", Needs(Export), Read("SignInsExported") => api::export_signins;
    GET "/api/v1/directory-audits/export", Needs(Export), Read("DirectoryAuditsExported") => api::export_directory_audits;
    GET "/api/v1/activities/export", Needs(Export), Read("ActivitiesExported") => api::export_activities;
    GET "/api/v1/signins/facets", Needs(ReadLogs), Read("SignInFacetsViewed") => explore::signin_facets;
    GET "/api/v1/directory-audits/facets", Needs(ReadLogs), Read("DirectoryAuditFacetsViewed") => explore::directory_audit_facets;
    GET "/api/v1/activities/facets", Needs(ReadLogs), Read("ActivityFacetsViewed") => explore::activity_facets;
    GET "/api/v1/signins/histogram", Needs(ReadLogs), Read("SignInHistogramViewed") => explore::signin_histogram;
    GET "/api/v1/directory-audits/histogram", Needs(ReadLogs), Read("DirectoryAuditHistogramViewed") => explore::directory_audit_histogram;
    GET "/api/v1/activities/histogram", Needs(ReadLogs), Read("ActivityHistogramViewed") => explore::activity_histogram;
    GET "/api/v1/signins/live", Needs(ReadLogs), Read("SignInsLiveViewed") => explore::signin_live_route;
    GET "/api/v1/directory-audits/live", Needs(ReadLogs), Read("DirectoryAuditsLiveViewed") => explore::directory_audit_live_route;
    GET "/api/v1/activities/live", Needs(ReadLogs), Read("ActivitiesLiveViewed") => explore::activity_live_route;
    GET "/api/v1/schema/{kind}", SignedIn, Audit::No => explore::schema_route;
    GET "/api/v1/signins/{id}", Needs(ReadLogs), Read("SignInViewed") => api::signin_detail;
    GET "/api/v1/directory-audits/{id}", Needs(ReadLogs), Read("DirectoryAuditViewed") => api::directory_audit_detail;
    GET "/api/v1/activities/{id}", Needs(ReadLogs), Read("ActivityViewed") => api::activity_detail;
    GET "/api/v1/me/signins", Needs(ReadOwnSignIns), Read("OwnSignInsListed") => accounts::my_signins;
    GET "/api/v1/me/views", SignedIn, Audit::No => views::list;
    PUT "/api/v1/me/views", SignedIn, Change("SavedViewsChanged") => views::replace;

    GET "/api/v1/errors", SignedIn, Audit::No => api::error_codes;
    GET "/api/v1/errors/{code}", SignedIn, Audit::No => api::error_code;

    GET "/api/v1/reports/signins/timeline", Needs(ReadReports), Read("ReportViewed") => reports::timeline_route;
    GET "/api/v1/reports/apps/top", Needs(ReadReports), Read("ReportViewed") => reports::top_apps_route;
    GET "/api/v1/reports/summary", Needs(ReadReports), Read("ReportViewed") => reports::summary_route;
    GET "/api/v1/reports/users/{user}/pattern", Needs(ReadReports), Read("ReportViewed") => reports::user_pattern_route;
    GET "/api/v1/reports/auth-methods", Needs(ReadReports), Read("ReportViewed") => reports::auth_methods_route;
    GET "/api/v1/reports/sessions", Needs(ReadReports), Read("ReportViewed") => user_sessions::sessions_route;
    GET "/api/v1/reports/signed-in-users", Needs(ReadReports), Read("ReportViewed") => user_sessions::signed_in_users_route;
    GET "/api/v1/reports/activities", Needs(ReadReports), Read("ReportViewed") => activity_reports::overview_route;
    GET "/api/v1/reports/activities/{report}", Needs(ReadReports), Read("ReportViewed") => activity_reports::detail_route;

    GET "/v1.0/auditLogs/signIns", Needs(ReadLogs), Read("GraphSignInsListed") => graph::list_signins;
    GET "/v1.0/auditLogs/signIns/{id}", Needs(ReadLogs), Read("GraphSignInViewed") => graph::get_signin;
    GET "/v1.0/auditLogs/directoryAudits", Needs(ReadLogs), Read("GraphDirectoryAuditsListed") => graph::list_directory_audits;
    GET "/v1.0/auditLogs/directoryAudits/{id}", Needs(ReadLogs), Read("GraphDirectoryAuditViewed") => graph::get_directory_audit;

    GET "/api/v1/trust/key", Public, Audit::No => trust::public_key;
    GET "/api/v1/trust/head", Needs(ReadLogs), Audit::No => trust::head;
    GET "/api/v1/trust/heads", Needs(ReadLogs), Audit::No => trust::heads;
    GET "/api/v1/trust/status", Needs(ReadSettings), Audit::No => trust::status;
    GET "/api/v1/trust/proof/inclusion", Needs(ReadLogs), Read("InclusionProofViewed") => trust::inclusion;
    GET "/api/v1/trust/proof/consistency", Needs(ReadLogs), Audit::No => trust::consistency;

    GET "/api/v1/settings", Needs(ReadSettings), Read("SettingsViewed") => accounts::settings;
    GET "/api/v1/settings/audit", Needs(ReadSettings), Read("AuditSettingsViewed") => audit_settings::get;
    PUT "/api/v1/settings/audit", Needs(ManageSecuritySettings), Change("AuditSettingsChanged") => audit_settings::put;
    GET "/api/v1/settings/retention", Needs(ReadSettings), Read("RetentionPolicyViewed") => retention::get;
    PUT "/api/v1/settings/retention", Needs(ManageSecuritySettings), Change("RetentionPolicyChanged") => retention::put;
    POST "/api/v1/settings/retention/run", Needs(ManageSecuritySettings), Change("RetentionRun") => retention::run_now;
    GET "/api/v1/users", Needs(ReadSettings), Read("UsersListed") => accounts::list_users;
    POST "/api/v1/users", Needs(ManageUsers), Change("UserCreated") => accounts::create_user;
    PATCH "/api/v1/users/{id}", Needs(ManageUsers), Change("UserUpdated") => accounts::update_user;
    DELETE "/api/v1/users/{id}", Needs(ManageUsers), Change("UserDeleted") => accounts::delete_user;
    GET "/api/v1/keys", Needs(ManageIngestKeys), Read("ApiKeysListed") => accounts::list_keys;
    POST "/api/v1/keys", Needs(ManageIngestKeys), Change("ApiKeyCreated") => accounts::create_key;
    DELETE "/api/v1/keys/{id}", Needs(ManageIngestKeys), Change("ApiKeyRevoked") => accounts::revoke_key;
}

/// Every route with its handler, in table order.
pub fn routes() -> impl Iterator<Item = (&'static RouteSpec, MethodRouter<AppState>)> {
    ROUTES.iter().zip(handlers())
}
