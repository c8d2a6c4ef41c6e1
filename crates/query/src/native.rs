//! The native query API's filters: what the console and scripts send as query parameters.
//!
//! Text filters match exactly (case-insensitively); a trailing `*` makes a prefix match.
//! Several values may be given comma-separated, or by repeating the parameter (any of them).
//! Any column may be filtered by its API name (`?operatingSystem=Windows*`); the named filters
//! below add the combinations an administrator expects (user = id, UPN or display name, ...).

use signet_model::schema::{find_column, ColType, Column};
use signet_model::status::SignInStatus;
use signet_model::LogKind;

use crate::ast::{coerce, CmpOp, Expr, ListQuery, Literal, SortOrder};
use crate::{cursor, odata, QueryError, Result};

/// Parameters that are not column filters.
const RESERVED: &[&str] = &[
    "sort",
    "order",
    "limit",
    "cursor",
    "columns",
    "format",
    "range",
    "from",
    "to",
    "days",
    "bucket",
    "n",
    "tz",
    "filter",
    "$filter",
    "$top",
    "$orderby",
    "$skiptoken",
    "$select",
    "$count",
    "user",
    "app",
    "status",
    "ip",
    "resource",
    "clientapp",
    "risk",
    "risklevel",
    "mfa",
    "eventtype",
    "location",
    "search",
];

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// A parsed native request: filter, order, page size, cursor, columns.
#[derive(Clone, Debug)]
pub struct NativeRequest {
    pub filter: Expr,
    pub order: SortOrder,
    pub limit: usize,
    pub after: Option<(i64, String)>,
    pub columns: Vec<&'static Column>,
}

impl NativeRequest {
    pub fn into_list_query(self, org: &str, kind: LogKind) -> ListQuery {
        ListQuery {
            org: org.to_string(),
            kind,
            filter: self.filter,
            order: self.order,
            limit: self.limit,
            after: self.after,
            columns: self.columns,
        }
    }
}

fn col(kind: LogKind, name: &str) -> &'static Column {
    find_column(kind, name).unwrap_or_else(|| panic!("schema has no column {name}"))
}

fn values(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// Exact (case-insensitive) or, with a trailing `*`, prefix match of a text column.
pub fn text_match(column: &'static Column, value: &str) -> Expr {
    match value.strip_suffix('*') {
        Some(prefix) => Expr::StartsWith { column, prefix: prefix.to_string() },
        None => Expr::eq(column, Literal::Str(value.to_string())),
    }
}

fn any_of(columns: &[&'static Column], raw: &str) -> Expr {
    let mut alternatives = Vec::new();
    for value in values(raw) {
        for column in columns {
            alternatives.push(text_match(column, value));
        }
    }
    Expr::or(alternatives)
}

/// Time range: `range=24h|7d|1m|30d|90d|...`, or `from`/`to` (ISO 8601), or `days=N`.
pub fn time_range(params: &[(String, String)], now_us: i64) -> Result<(Option<i64>, Option<i64>)> {
    let get = |name: &str| params.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let parse = |field: &str, text: &str| {
        signet_model::time::parse_time(text)
            .map_err(|message| QueryError::InvalidValue { field: field.into(), message })
    };
    let from = get("from").map(|t| parse("from", t)).transpose()?;
    let to = get("to").map(|t| parse("to", t)).transpose()?;
    if from.is_some() || to.is_some() {
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(QueryError::InvalidValue { field: "from".into(), message: "must be before 'to'".into() });
            }
        }
        return Ok((from, to));
    }
    if let Some(range) = get("range") {
        return Ok((Some(now_us - preset_micros(range)?), None));
    }
    if let Some(days) = get("days") {
        let days: i64 = days
            .parse()
            .ok()
            .filter(|d| (1..=36_600).contains(d))
            .ok_or_else(|| QueryError::InvalidValue { field: "days".into(), message: "expected 1-36600".into() })?;
        return Ok((Some(now_us - days * 86_400_000_000), None));
    }
    Ok((None, None))
}

/// `24h`, `7d`, `1m` (one month = 30 days), `90d`, `1y`.
pub fn preset_micros(preset: &str) -> Result<i64> {
    let bad = || QueryError::InvalidValue {
        field: "range".into(),
        message: format!("{preset:?}: expected e.g. 24h, 7d, 1m, 90d"),
    };
    let (number, unit) = preset.split_at(preset.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = number.parse().map_err(|_| bad())?;
    let hour = 3_600_000_000i64;
    let unit_micros = match unit {
        "h" => hour,
        "d" => 24 * hour,
        "w" => 7 * 24 * hour,
        "m" => 30 * 24 * hour,
        "y" => 365 * 24 * hour,
        _ => return Err(bad()),
    };
    if !(1..=100_000).contains(&n) {
        return Err(bad());
    }
    Ok(n * unit_micros)
}

/// Builds the filter of a native request (without paging options).
pub fn filter(kind: LogKind, params: &[(String, String)], now_us: i64) -> Result<Expr> {
    let time = col(kind, "event_time");
    let (from, to) = time_range(params, now_us)?;
    let mut parts = vec![Expr::time_range(time, from, to)];
    for (key, raw) in params {
        let key_lower = key.to_ascii_lowercase();
        if raw.trim().is_empty() && key_lower != "filter" {
            continue;
        }
        // `not.<filter>=value`: everything the filter would not match, including rows where the
        // field is empty (what "exclude this value" means in a facet panel).
        if let Some(inner) = key_lower.strip_prefix("not.") {
            if RESERVED_NOT_NEGATABLE.contains(&inner) || inner.starts_with("not.") {
                return Err(QueryError::InvalidValue {
                    field: key.clone(),
                    message: "this parameter cannot be negated".into(),
                });
            }
            if let Some(positive) = filter_part(kind, &key[4..], inner, raw)? {
                parts.push(Expr::NotTrue(Box::new(positive)));
            }
            continue;
        }
        if let Some(part) = filter_part(kind, key, &key_lower, raw)? {
            parts.push(part);
        }
    }
    Ok(Expr::and(parts))
}

/// Parameters that are not filters, so `not.` cannot apply to them.
const RESERVED_NOT_NEGATABLE: &[&str] =
    &["sort", "order", "limit", "cursor", "columns", "format", "range", "from", "to", "days", "bucket", "n", "tz"];

/// One query parameter as a filter; `None` for parameters that are not filters.
fn filter_part(kind: LogKind, key: &str, key_lower: &str, raw: &str) -> Result<Option<Expr>> {
    let key = key.to_string();
    {
        let part = match (kind, key_lower) {
            (_, "filter" | "$filter") => odata::parse_filter(kind, raw)?,
            (LogKind::SignIn, "user") => {
                any_of(&[col(kind, "user_id"), col(kind, "user_principal_name"), col(kind, "user_display_name")], raw)
            }
            (LogKind::DirectoryAudit, "user") => any_of(
                &[
                    col(kind, "initiated_by_user_id"),
                    col(kind, "initiated_by_upn"),
                    col(kind, "initiated_by_user_name"),
                ],
                raw,
            ),
            (LogKind::Activity, "user") => any_of(&[col(kind, "user_upn"), col(kind, "user_id")], raw),
            (LogKind::Activity, "report") => crate::activity_reports::filter(raw.trim()).ok_or_else(|| {
                let known: Vec<&str> = crate::activity_reports::ACTIVITY_REPORTS.iter().map(|r| r.id).collect();
                QueryError::InvalidValue {
                    field: "report".into(),
                    message: format!("{raw:?} is not a report; one of {}", known.join(", ")),
                }
            })?,
            (LogKind::SignIn, "app") => any_of(&[col(kind, "app_display_name"), col(kind, "app_id")], raw),
            (LogKind::SignIn, "resource") => {
                any_of(&[col(kind, "resource_display_name"), col(kind, "resource_id")], raw)
            }
            (LogKind::SignIn, "status") => status_filter(kind, raw)?,
            (LogKind::SignIn, "ip") => ip_filter(kind, raw)?,
            (LogKind::SignIn, "location") => {
                any_of(&[col(kind, "city"), col(kind, "state"), col(kind, "country")], raw)
            }
            (LogKind::SignIn, "clientapp") => client_app_filter(kind, raw),
            (LogKind::SignIn, "risk") => Expr::eq(col(kind, "risk_detected"), Literal::Bool(parse_bool("risk", raw)?)),
            (LogKind::SignIn, "risklevel") => Expr::or(
                values(raw)
                    .flat_map(|level| {
                        [col(kind, "risk_level_during_sign_in"), col(kind, "risk_level_aggregated")]
                            .map(|c| Expr::eq(c, Literal::Str(level.to_string())))
                    })
                    .collect(),
            ),
            (LogKind::SignIn, "mfa") => mfa_filter(kind, raw)?,
            (LogKind::SignIn, "eventtype") => Expr::or(
                values(raw)
                    .map(|t| Expr::ListContains { column: col(kind, "event_types"), value: t.to_string() })
                    .collect(),
            ),
            (_, k) if RESERVED.contains(&k) => return Ok(None),
            (_, k) => match find_column(kind, k) {
                Some(column) => column_filter(column, raw)?,
                None => return Err(QueryError::UnknownField(key.clone())),
            },
        };
        Ok(Some(part))
    }
}

fn parse_bool(field: &str, raw: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(QueryError::InvalidValue { field: field.into(), message: format!("{raw:?}: expected true or false") }),
    }
}

/// A filter on one column by its API name: text with `*` prefix, numbers, booleans, lists.
fn column_filter(column: &'static Column, raw: &str) -> Result<Expr> {
    let mut alternatives = Vec::new();
    for value in values(raw) {
        let expr = match column.ty {
            ColType::Str => text_match(column, value),
            ColType::StrList => Expr::ListContains { column, value: value.to_string() },
            ColType::Bool => Expr::eq(column, Literal::Bool(parse_bool(column.api, value)?)),
            ColType::Int => Expr::eq(column, coerce(column, Literal::Str(value.to_string()))?),
            ColType::Float | ColType::Time => {
                return Err(QueryError::InvalidValue {
                    field: column.api.into(),
                    message: "not filterable by equality; use $filter with gt/lt".into(),
                })
            }
        };
        alternatives.push(expr);
    }
    Ok(Expr::or(alternatives))
}

fn status_filter(kind: LogKind, raw: &str) -> Result<Expr> {
    let mut statuses = Vec::new();
    for value in values(raw) {
        let status = SignInStatus::parse(value).ok_or_else(|| QueryError::InvalidValue {
            field: "status".into(),
            message: format!("{value:?}: expected success, failure or interrupted"),
        })?;
        statuses.push(status.as_str().to_string());
    }
    Ok(Expr::InList { column: col(kind, "status"), values: statuses })
}

fn client_app_filter(kind: LogKind, raw: &str) -> Expr {
    let column = col(kind, "client_app_used");
    Expr::or(
        values(raw)
            .map(|value| match value.to_ascii_lowercase().as_str() {
                "legacy" => Expr::eq(col(kind, "is_legacy_client"), Literal::Bool(true)),
                "modern" => Expr::eq(col(kind, "is_legacy_client"), Literal::Bool(false)),
                _ => text_match(column, value),
            })
            .collect(),
    )
}

fn mfa_filter(kind: LogKind, raw: &str) -> Result<Expr> {
    let column = col(kind, "authentication_requirement");
    let value = match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "multifactorauthentication" | "mfa" => "multiFactorAuthentication",
        "false" | "no" | "singlefactorauthentication" | "single" => "singleFactorAuthentication",
        _ => {
            return Err(QueryError::InvalidValue {
                field: "mfa".into(),
                message: format!(
                    "{raw:?}: expected true/false or multiFactorAuthentication/singleFactorAuthentication"
                ),
            })
        }
    };
    Ok(Expr::eq(column, Literal::Str(value.into())))
}

/// Exact address, prefix (`10.1.*`) or CIDR (`10.0.0.0/8`, `2001:db8::/32`).
fn ip_filter(kind: LogKind, raw: &str) -> Result<Expr> {
    let mut alternatives = Vec::new();
    for value in values(raw) {
        if let Some((addr, bits)) = value.split_once('/') {
            let (lo, hi) = cidr_range(addr, bits).ok_or_else(|| QueryError::InvalidValue {
                field: "ip".into(),
                message: format!("{value:?} is not a CIDR range"),
            })?;
            let key = col(kind, "ip_key");
            alternatives.push(Expr::and(vec![
                Expr::Compare { column: key, op: CmpOp::Ge, value: Literal::Str(format!("{lo:032x}")) },
                Expr::Compare { column: key, op: CmpOp::Le, value: Literal::Str(format!("{hi:032x}")) },
            ]));
        } else {
            alternatives.push(text_match(col(kind, "ip_address"), value));
        }
    }
    Ok(Expr::or(alternatives))
}

/// The inclusive range of a CIDR block in the 128-bit (IPv4-mapped) address space.
pub fn cidr_range(addr: &str, bits: &str) -> Option<(u128, u128)> {
    let ip: std::net::IpAddr = addr.trim().parse().ok()?;
    let bits: u32 = bits.trim().parse().ok()?;
    let (value, prefix) = match ip {
        std::net::IpAddr::V4(_) if bits <= 32 => (signet_model::signin::ip_to_u128(ip), bits + 96),
        std::net::IpAddr::V6(_) if bits <= 128 => (signet_model::signin::ip_to_u128(ip), bits),
        _ => return None,
    };
    let host_mask = if prefix == 0 { u128::MAX } else { u128::MAX.checked_shr(prefix).unwrap_or(0) };
    Some((value & !host_mask, value | host_mask))
}

/// Parses a whole native list request: filters, `sort` (`createdDateTime desc|asc`, `asc`,
/// `desc`), `limit`, `cursor`, `columns` (comma-separated API names).
pub fn request(kind: LogKind, params: &[(String, String)], now_us: i64) -> Result<NativeRequest> {
    let get = |name: &str| params.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let order = match get("sort").or(get("order")).map(|s| s.to_ascii_lowercase()) {
        None => SortOrder::Desc,
        Some(s) if s.ends_with("asc") => SortOrder::Asc,
        Some(s) if s.ends_with("desc") || s == "createddatetime" || s == "time" => SortOrder::Desc,
        Some(s) => {
            return Err(QueryError::InvalidValue {
                field: "sort".into(),
                message: format!("{s:?}: sorting is by event time, 'asc' or 'desc'"),
            })
        }
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
            QueryError::InvalidValue { field: "limit".into(), message: format!("expected 1-{MAX_LIMIT}") }
        })?,
    };
    let after = get("cursor").filter(|c| !c.is_empty()).map(cursor::decode).transpose()?;
    let columns = match get("columns") {
        None => Vec::new(),
        Some(list) => columns(kind, list)?,
    };
    Ok(NativeRequest { filter: filter(kind, params, now_us)?, order, limit, after, columns })
}

/// Resolves a comma-separated list of column names; `id` and the event time are always included.
pub fn columns(kind: LogKind, list: &str) -> Result<Vec<&'static Column>> {
    let mut out = vec![col(kind, "id"), col(kind, "event_time")];
    for name in values(list) {
        let column = find_column(kind, name).ok_or_else(|| QueryError::UnknownField(name.to_string()))?;
        if !out.iter().any(|c| c.name == column.name) {
            out.push(column);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{compile_expr, Dialect};

    fn sql(params: &[(&str, &str)]) -> String {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        compile_expr(&filter(LogKind::SignIn, &params, 0).unwrap(), Dialect::DuckDb)
    }

    #[test]
    fn user_matches_id_upn_or_name_and_prefix() {
        assert_eq!(
            sql(&[("user", "bob*")]),
            "(user_id ILIKE 'bob%' OR user_principal_name ILIKE 'bob%' OR user_display_name ILIKE 'bob%')"
        );
    }

    #[test]
    fn status_and_legacy_clients() {
        assert_eq!(sql(&[("status", "failure,interrupted")]), "status IN ('failure', 'interrupted')");
        assert_eq!(sql(&[("clientApp", "legacy")]), "is_legacy_client = TRUE");
        assert!(filter(LogKind::SignIn, &[("status".into(), "bogus".into())], 0).is_err());
    }

    #[test]
    fn not_prefix_excludes_and_keeps_empty_fields() {
        assert_eq!(
            sql(&[("not.app", "Teams")]),
            "(((app_display_name ILIKE 'teams' OR app_id ILIKE 'teams')) IS NOT TRUE)"
        );
        assert_eq!(sql(&[("not.status", "failure")]), "((status IN ('failure')) IS NOT TRUE)");
        assert!(filter(LogKind::SignIn, &[("not.limit".into(), "5".into())], 0).is_err());
        assert!(filter(LogKind::SignIn, &[("not.bogus".into(), "5".into())], 0).is_err());
    }

    #[test]
    fn cidr_ranges() {
        assert_eq!(cidr_range("10.0.0.0", "8"), Some((0xffff_0a00_0000, 0xffff_0aff_ffff)));
        assert_eq!(cidr_range("::", "0"), Some((0, u128::MAX)));
        assert!(cidr_range("10.0.0.0", "33").is_none());
        let s = sql(&[("ip", "10.0.0.0/8")]);
        assert!(s.contains("ip_key >= '00000000000000000000ffff0a000000'"), "{s}");
    }

    #[test]
    fn generic_column_filters_and_unknown_fields() {
        assert_eq!(sql(&[("operatingSystem", "Windows*")]), "operating_system ILIKE 'windows%'");
        assert_eq!(sql(&[("errorCode", "50126,50053")]), "(error_code = 50126 OR error_code = 50053)");
        let err = filter(LogKind::SignIn, &[("nosuch".into(), "1".into())], 0).unwrap_err();
        assert_eq!(err, QueryError::UnknownField("nosuch".into()));
    }

    #[test]
    fn time_presets() {
        let now = 1_000_000_000_000_000;
        let (from, to) = time_range(&[("range".into(), "24h".into())], now).unwrap();
        assert_eq!((from, to), (Some(now - 86_400_000_000), None));
        assert!(time_range(&[("range".into(), "7x".into())], now).is_err());
        let (from, to) = time_range(
            &[("from".into(), "2024-01-01T00:00:00Z".into()), ("to".into(), "2024-01-02T00:00:00Z".into())],
            now,
        )
        .unwrap();
        assert!(from.unwrap() < to.unwrap());
    }

    #[test]
    fn request_options() {
        let params = vec![
            ("limit".to_string(), "5".to_string()),
            ("sort".into(), "asc".into()),
            ("columns".into(), "ipAddress".into()),
        ];
        let r = request(LogKind::SignIn, &params, 0).unwrap();
        assert_eq!(r.limit, 5);
        assert_eq!(r.order, SortOrder::Asc);
        assert_eq!(r.columns.iter().map(|c| c.name).collect::<Vec<_>>(), vec!["id", "event_time", "ip_address"]);
        assert!(request(LogKind::SignIn, &[("limit".into(), "0".into())], 0).is_err());
    }
}
