//! Saved views of the console: per account, a name, a page and the page's URL state (filters,
//! columns, range). Kept in `DATA/console/views.json`, replaced atomically on every change (or
//! in ClickHouse, shared by the nodes).

use axum::extract::{Request, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use signet_auth::Subject;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Pages a view may belong to (the console's explorer pages).
const PAGES: &[&str] = &["/signins", "/audits", "/activities", "/me"];
const MAX_VIEWS: usize = 100;
const MAX_QUERY: usize = 4096;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SavedView {
    pub name: String,
    pub page: String,
    /// The page's URL query (`user=alice*&status=failure&columns=...`).
    pub query: String,
}

#[derive(Debug, Deserialize)]
struct ViewsBody {
    views: Vec<SavedView>,
}

/// Every account's views, keyed by "organisation/account id", in the document
/// [`VIEWS_DOCUMENT`] (shared by the nodes of one ClickHouse database, like the accounts).
pub type ViewStore = crate::audit_settings::OrgSettingsFile<Vec<SavedView>>;

/// The saved views' document (`DATA/console/views.json`, or shared by the nodes).
pub const VIEWS_DOCUMENT: &str = "console/views.json";

fn owner(caller: &Caller) -> ApiResult<String> {
    match &caller.principal.subject {
        Subject::User { id, .. } => Ok(format!("{}/{id}", caller.org())),
        Subject::Key { .. } => Err(ApiError::Forbidden("saved views belong to accounts; an API key has none".into())),
    }
}

/// `GET /api/v1/me/views`: the caller's saved views.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let owner = owner(&caller)?;
    Ok(Json(json!({ "views": state.views.get(&owner) })))
}

/// `PUT /api/v1/me/views` with `{"views": [...]}`: replaces the caller's saved views.
pub async fn replace(State(state): State<AppState>, caller: Caller, request: Request) -> ApiResult<Json<Value>> {
    let owner = owner(&caller)?;
    let body: ViewsBody = crate::accounts::read_json(request, 1 << 20).await?;
    if body.views.len() > MAX_VIEWS {
        return Err(ApiError::BadRequest(format!("views: at most {MAX_VIEWS}")));
    }
    for (i, view) in body.views.iter().enumerate() {
        let name = view.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::BadRequest(format!("views[{i}].name: 1-100 characters")));
        }
        if !PAGES.contains(&view.page.as_str()) {
            return Err(ApiError::BadRequest(format!("views[{i}].page: {:?} is not one of {PAGES:?}", view.page)));
        }
        if view.query.len() > MAX_QUERY {
            return Err(ApiError::BadRequest(format!("views[{i}].query: at most {MAX_QUERY} bytes")));
        }
    }
    let store = state.views.clone();
    let views = body.views.clone();
    tokio::task::spawn_blocking(move || store.replace(&owner, views).map(drop))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("saving views: {e}")))?;
    Ok(Json(json!({ "views": body.views })))
}
