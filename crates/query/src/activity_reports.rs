//! The preconfigured activity reports Dynamics 365 activity logging offers, as filters over the
//! activity log: which entity types were accessed (out-of-box, custom, administrative, other),
//! bulk actions, the admin center, internal management tools, sign-in and sign-out, process and
//! plug-in activation, and exports of data out of the system.
//!
//! Each report is a plain [`Expr`], so it combines with every list filter, pages, exports and
//! facets like any other filter (`?report=bulk-actions`). The rules are spelled out in
//! [`ActivityReport::rule`] and shown with the report, so an auditor sees what is counted.

use signet_model::schema::{find_column, Column};
use signet_model::LogKind;

use crate::ast::{Expr, Literal};

/// One preconfigured report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityReport {
    /// URL name (`?report=`).
    pub id: &'static str,
    pub title: &'static str,
    /// What is counted, in words.
    pub rule: &'static str,
}

pub const ACTIVITY_REPORTS: &[ActivityReport] = &[
    ActivityReport {
        id: "out-of-box-entity",
        title: "Accessed out-of-box entity",
        rule: "Any operation on a standard Dynamics 365 business entity (account, contact, lead, opportunity, incident, ...).",
    },
    ActivityReport {
        id: "custom-entity",
        title: "Accessed custom entity",
        rule: "Any operation on an entity whose name carries a publisher prefix (new_project, cr7f3_invoice): a name with '_' that is not standard or administrative.",
    },
    ActivityReport {
        id: "admin-entity",
        title: "Accessed admin entity",
        rule: "Any operation on an administrative entity (systemuser, team, role, businessunit, organization, solution, workflow, plug-in registrations, field security, ...).",
    },
    ActivityReport {
        id: "bulk-actions",
        title: "Performed bulk actions",
        rule: "BulkDelete*, Import*, CreateMultiple, UpdateMultiple, UpsertMultiple, DeleteMultiple, ExecuteMultiple and the import pipeline (ParseImport, TransformImport, ImportRecordsImport).",
    },
    ActivityReport {
        id: "other-entity",
        title: "Accessed other entity type",
        rule: "Any operation on a named entity that is neither standard, custom nor administrative.",
    },
    ActivityReport {
        id: "admin-center",
        title: "Accessed the admin center",
        rule: "ItemUrl on admin.powerplatform.microsoft.com or admin.microsoft.com, or a ServiceName naming an admin center.",
    },
    ActivityReport {
        id: "internal-tool",
        title: "Accessed an internal management tool",
        rule: "Records by a Microsoft datacenter operator (UserType DcAdmin), or whose ServiceName names an internal or support tool.",
    },
    ActivityReport {
        id: "sign-in-out",
        title: "Signed in or out",
        rule: "UserAccessviaWeb, UserAccessviaWebServices, UserLoggedIn, UserLoggedOut, SignIn, SignOut, Login, Logout.",
    },
    ActivityReport {
        id: "process-activation",
        title: "Activated a process or plug-in",
        rule: "Activate*/Deactivate* operations, and SetState or SetStateDynamicEntity on a process (workflow) or plug-in step (sdkmessageprocessingstep).",
    },
    ActivityReport {
        id: "exports",
        title: "Exported data out of the system",
        rule: "Export* operations (ExportToExcel, ExportReport, ExportSolution, ...), report downloads (DownloadReport*, RenderReport*) and Signet's own exports (SignInsExported, ...); group by user for exports by user.",
    },
];

/// Dynamics 365 business entities (the common out-of-box ones, logical names).
pub const OUT_OF_BOX_ENTITIES: &[&str] = &[
    "account",
    "activitypointer",
    "annotation",
    "appointment",
    "campaign",
    "campaignactivity",
    "campaignresponse",
    "competitor",
    "connection",
    "contact",
    "contract",
    "contractdetail",
    "email",
    "entitlement",
    "equipment",
    "fax",
    "goal",
    "incident",
    "invoice",
    "invoicedetail",
    "knowledgearticle",
    "lead",
    "letter",
    "list",
    "opportunity",
    "opportunityproduct",
    "phonecall",
    "pricelevel",
    "product",
    "queue",
    "queueitem",
    "quote",
    "quotedetail",
    "recurringappointmentmaster",
    "salesorder",
    "salesorderdetail",
    "serviceappointment",
    "socialactivity",
    "socialprofile",
    "task",
    "territory",
];

/// Administrative entities: users, security, the organisation, customisation and processes.
pub const ADMIN_ENTITIES: &[&str] = &[
    "businessunit",
    "fieldpermission",
    "fieldsecurityprofile",
    "organization",
    "pluginassembly",
    "plugintype",
    "position",
    "privilege",
    "publisher",
    "role",
    "roleprivileges",
    "sdkmessage",
    "sdkmessageprocessingstep",
    "solution",
    "solutioncomponent",
    "systemuser",
    "systemuserroles",
    "team",
    "teamroles",
    "usersettings",
    "workflow",
];

fn col(name: &str) -> &'static Column {
    find_column(LogKind::Activity, name).unwrap_or_else(|| panic!("activities have no column {name}"))
}

fn in_list(column: &str, values: &[&str]) -> Expr {
    Expr::InList { column: col(column), values: values.iter().map(|v| v.to_string()).collect() }
}

fn starts(column: &str, prefixes: &[&str]) -> Expr {
    Expr::or(prefixes.iter().map(|p| Expr::StartsWith { column: col(column), prefix: p.to_string() }).collect())
}

fn contains(column: &str, needles: &[&str]) -> Expr {
    Expr::or(needles.iter().map(|n| Expr::Contains { column: col(column), needle: n.to_string() }).collect())
}

/// "The entity is one of these" is false (or unknown) for the row.
fn not_in(column: &str, values: &[&str]) -> Expr {
    Expr::NotTrue(Box::new(in_list(column, values)))
}

fn named_entity() -> Expr {
    Expr::Not(Box::new(Expr::eq(col("entity_name"), Literal::Str(String::new()))))
}

/// The filter of a report; `None` for an unknown id.
pub fn filter(id: &str) -> Option<Expr> {
    let custom = || {
        Expr::and(vec![
            contains("entity_name", &["_"]),
            not_in("entity_name", OUT_OF_BOX_ENTITIES),
            not_in("entity_name", ADMIN_ENTITIES),
        ])
    };
    let expr = match id {
        "out-of-box-entity" => in_list("entity_name", OUT_OF_BOX_ENTITIES),
        "admin-entity" => in_list("entity_name", ADMIN_ENTITIES),
        "custom-entity" => custom(),
        "other-entity" => Expr::and(vec![
            named_entity(),
            not_in("entity_name", OUT_OF_BOX_ENTITIES),
            not_in("entity_name", ADMIN_ENTITIES),
            Expr::NotTrue(Box::new(contains("entity_name", &["_"]))),
        ]),
        "bulk-actions" => Expr::or(vec![
            starts("operation", &["BulkDelete", "Import"]),
            in_list(
                "operation",
                &[
                    "CreateMultiple",
                    "UpdateMultiple",
                    "UpsertMultiple",
                    "DeleteMultiple",
                    "ExecuteMultiple",
                    "ParseImport",
                    "TransformImport",
                    "ImportRecordsImport",
                ],
            ),
        ]),
        "admin-center" => Expr::or(vec![
            contains("item_url", &["admin.powerplatform.microsoft.com", "admin.microsoft.com"]),
            contains("service_name", &["admin center"]),
        ]),
        "internal-tool" => Expr::or(vec![
            Expr::eq(col("user_type"), Literal::Str("DcAdmin".into())),
            contains("service_name", &["internal tool", "support tool", "management tool"]),
        ]),
        "sign-in-out" => in_list(
            "operation",
            &[
                "UserAccessviaWeb",
                "UserAccessviaWebServices",
                "UserLoggedIn",
                "UserLoggedOut",
                "SignIn",
                "SignOut",
                "Login",
                "Logout",
            ],
        ),
        "process-activation" => Expr::or(vec![
            starts("operation", &["Activate", "Deactivate"]),
            Expr::and(vec![
                in_list("operation", &["SetState", "SetStateDynamicEntity"]),
                in_list("entity_name", &["workflow", "sdkmessageprocessingstep", "processsession"]),
            ]),
        ]),
        "exports" => Expr::or(vec![
            starts("operation", &["Export", "DownloadReport", "RenderReport"]),
            contains("operation", &["Exported"]),
        ]),
        _ => return None,
    };
    Some(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{compile_expr, Dialect};

    #[test]
    fn every_report_has_a_filter_that_compiles_for_both_dialects() {
        for report in ACTIVITY_REPORTS {
            let expr = filter(report.id).unwrap_or_else(|| panic!("{} has no filter", report.id));
            for dialect in [Dialect::DuckDb, Dialect::ClickHouse] {
                let sql = compile_expr(&expr, dialect);
                assert!(!sql.is_empty() && sql != "TRUE", "{}: {sql}", report.id);
            }
        }
        assert!(filter("nope").is_none());
    }

    #[test]
    fn entity_lists_do_not_overlap() {
        for name in OUT_OF_BOX_ENTITIES {
            assert!(!ADMIN_ENTITIES.contains(name), "{name} is in both lists");
            assert!(!name.contains('_'), "{name} would count as custom");
        }
    }
}
