//! The ClickHouse schema: tables, their versioned migrations, and the cluster variant.

use serde_json::Value;
use signet_model::schema::{self, ColType, Column};
use signet_model::LogKind;

use super::{db_err, int_of, ClickHouseStore, DIALECT};
use crate::error::{Result, StoreError};

/// One step of a migration; each is idempotent (a migration cut short is run again whole).
enum Step {
    Sql(String),
    /// `ALTER TABLE .. ADD COLUMN` unless the column is there (18.16 has no `IF NOT EXISTS`).
    AddColumn {
        table: &'static str,
        column: &'static str,
        ty: &'static str,
    },
}

/// Columns every kind table gets after the first migration, besides the schema's: the node
/// whose event log holds the row's record ('' in rows of databases from before nodes shared
/// them) and the record itself (its Graph-shaped body and original), which other nodes serve.
const RECORD_COLUMNS: [(&str, &str); 3] =
    [("node", "String DEFAULT ''"), ("body", "String DEFAULT ''"), ("original", "Nullable(String)")];

/// Schema migrations, in order: (version, steps).
fn migrations() -> Vec<(u32, Vec<Step>)> {
    let mut first = Vec::new();
    for kind in LogKind::ALL {
        first.push(Step::Sql(create_kind_table(kind)));
    }
    first.push(Step::Sql(format!(
        "CREATE TABLE IF NOT EXISTS superseded ({SUPERSEDED_COLUMNS}) ENGINE = ReplacingMergeTree \
         ORDER BY (org_id, kind, id, revision)"
    )));
    first.push(Step::Sql(format!(
        "CREATE TABLE IF NOT EXISTS signet_applied ({APPLIED_COLUMNS}) ENGINE = ReplacingMergeTree \
         ORDER BY (node, position)"
    )));
    // Sign-ins' method set key (DuckDB's schema 3; ClickHouse unnests the lists themselves, the
    // column keeps the tables alike).
    let method_set = Step::AddColumn { table: "signins", column: "auth_method_set", ty: "Nullable(Int64)" };
    let records = LogKind::ALL
        .iter()
        .flat_map(|kind| {
            RECORD_COLUMNS.iter().map(|(column, ty)| Step::AddColumn { table: schema::table(*kind), column, ty })
        })
        .collect();
    let documents = Step::Sql(format!(
        "CREATE TABLE IF NOT EXISTS signet_documents ({DOCUMENT_COLUMNS}) ENGINE = ReplacingMergeTree \
         ORDER BY (name, version, node)"
    ));
    let entries = Step::Sql(format!(
        "CREATE TABLE IF NOT EXISTS signet_entries ({ENTRY_COLUMNS}) ENGINE = ReplacingMergeTree ORDER BY {ENTRY_KEY}"
    ));
    vec![(1, first), (2, vec![method_set]), (3, records), (4, vec![documents]), (5, vec![entries])]
}

/// Entries the nodes share one at a time (the users directory; see
/// [`ClickHouseStore::put_entries`]): appended, read back by the time they were written.
const ENTRY_COLUMNS: &str = "name String, org String, key String, rank UInt64, written Int64, node String, body String";
const ENTRY_KEY: &str = "(name, written, org, key, node)";

/// Accounts, keys and settings the nodes share (see [`ClickHouseStore::store_document`]).
const DOCUMENT_COLUMNS: &str = "name String, version UInt64, node String, body String, written_at Int64";

/// Columns that are never empty (the rest are `Nullable`).
fn required(column: &Column) -> bool {
    matches!(
        column.name,
        "org_id" | "id" | "revision" | "content_hash" | "event_time" | "received_at" | "log_pos" | "log_idx"
    )
}

fn column_type(column: &Column) -> String {
    let base = match column.ty {
        ColType::Str => "String",
        ColType::Int | ColType::Time => "Int64",
        ColType::Float => "Float64",
        ColType::Bool => "UInt8",
        // Arrays cannot be Nullable: an empty list stands for none.
        ColType::StrList => return "Array(String)".into(),
    };
    if required(column) {
        base.to_string()
    } else {
        format!("Nullable({base})")
    }
}

/// Columns added by a later migration than the first (ClickHouse 18.16 has no `ADD COLUMN IF
/// NOT EXISTS`, so the first creates the tables without them).
const ADDED_LATER: &[&str] = &["auth_method_set"];

/// A kind table's partitioning and order.
const KIND_KEY: &str = "PARTITION BY (org_id, toYYYYMM(toDateTime(intDiv(event_time, 1000000), 'UTC'))) \
                        ORDER BY (org_id, event_time, id, revision)";

const SUPERSEDED_COLUMNS: &str = "org_id String, kind UInt8, id String, revision Int64";
const APPLIED_COLUMNS: &str = "node String, position UInt64";

fn create_kind_table(kind: LogKind) -> String {
    let columns: Vec<String> = schema::all_columns(kind)
        .filter(|c| !ADDED_LATER.contains(&c.name))
        .map(|c| format!("{} {}", c.name, column_type(c)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = ReplacingMergeTree {KIND_KEY}",
        schema::table(kind),
        columns.join(", ")
    )
}

/// A kind table's columns at the latest version: (name, type).
fn kind_columns(kind: LogKind) -> Vec<(String, String)> {
    schema::all_columns(kind)
        .map(|c| (c.name.to_string(), column_type(c)))
        .chain(RECORD_COLUMNS.iter().map(|(name, ty)| (name.to_string(), ty.to_string())))
        .collect()
}

/// The statements that bring a cluster's kind tables to the latest columns, given the columns
/// they have (`(table, column)` as `system.columns` lists them): `ADD COLUMN` on every shard's
/// local table (`ON CLUSTER`: ClickHouse runs it on one replica of each shard, the others
/// replicate it), then the `Distributed` table in front of them made again with every column.
/// ClickHouse 18.16 refuses `ALTER ... ON CLUSTER` on a table that is not replicated in a
/// cluster of replicated shards; a `Distributed` table holds no rows (Signet inserts through it
/// synchronously), so dropping and creating it loses nothing, but a query or insert on another
/// node in that moment fails (and the insert is retried). Columns are only ever added: every
/// migration of a kind table so far is an `ADD COLUMN`.
pub fn cluster_column_steps(
    database: &str,
    cluster: &str,
    present: &std::collections::HashSet<(String, String)>,
) -> Vec<String> {
    let mut statements = Vec::new();
    for kind in LogKind::ALL {
        let table = schema::table(kind);
        let columns = kind_columns(kind);
        let missing = |name: &str| -> Vec<&(String, String)> {
            columns.iter().filter(|(c, _)| !present.contains(&(name.to_string(), c.clone()))).collect()
        };
        let local = format!("{table}_local");
        for (column, ty) in missing(&local) {
            statements.push(format!("ALTER TABLE {database}.{local} ON CLUSTER {cluster} ADD COLUMN {column} {ty}"));
        }
        if !missing(table).is_empty() {
            statements.push(format!("DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {cluster}"));
            statements.push(distributed_table(database, cluster, table, &columns_sql(&columns)));
        }
    }
    statements
}

fn columns_sql(columns: &[(String, String)]) -> String {
    columns.iter().map(|(name, ty)| format!("{name} {ty}")).collect::<Vec<_>>().join(", ")
}

/// The `Distributed` table `table` in front of every shard's `<table>_local`, sharded by
/// `cityHash64(org_id, id)`.
fn distributed_table(database: &str, cluster: &str, table: &str, columns: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} ({columns}) ENGINE = \
         Distributed({cluster}, {database}, {table}_local, cityHash64(org_id, id))"
    )
}

/// The schema on a cluster, at the latest version at once (a cluster database starts there):
///
/// - each kind's rows and `superseded` in `<table>_local`, a `ReplicatedReplacingMergeTree`
///   per shard (ZooKeeper path `/clickhouse/tables/{shard}/<database>/<table>`, replica
///   `{replica}`: the servers' `<macros>`), behind a `Distributed` table of the plain name
///   sharded by `cityHash64(org_id, id)`: every revision and re-send of an event lands on one
///   shard, where `FINAL` collapses re-sends and `superseded_local` holds its replaced revisions
///   (queries read it shard-locally);
/// - `signet_applied` replicated to every server of the cluster (one ZooKeeper path, replica
///   `{shard}-{replica}`), so a node reads its position from whichever server it talks to.
///
/// Every statement runs `ON CLUSTER` (ClickHouse's distributed DDL, through ZooKeeper).
pub fn cluster_schema(database: &str, cluster: &str) -> Vec<String> {
    let replicated = |table: &str, shard: &str, replica: &str| {
        format!("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')")
    };
    let pair = |table: &str, columns: &str, key: &str| {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {database}.{table}_local ON CLUSTER {cluster} ({columns}) ENGINE = {} {key}",
                replicated(table, "{shard}", "{replica}")
            ),
            distributed_table(database, cluster, table, columns),
        ]
    };
    let mut statements = vec![format!("CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}")];
    for kind in LogKind::ALL {
        statements.extend(pair(schema::table(kind), &columns_sql(&kind_columns(kind)), KIND_KEY));
    }
    statements.extend(pair("superseded", SUPERSEDED_COLUMNS, "ORDER BY (org_id, kind, id, revision)"));
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {database}.signet_applied ON CLUSTER {cluster} ({APPLIED_COLUMNS}) ENGINE = {} \
         ORDER BY (node, position)",
        replicated("signet_applied", "all", "{shard}-{replica}")
    ));
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {database}.signet_documents ON CLUSTER {cluster} ({DOCUMENT_COLUMNS}) ENGINE = {} \
         ORDER BY (name, version, node)",
        replicated("signet_documents", "all", "{shard}-{replica}")
    ));
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {database}.signet_entries ON CLUSTER {cluster} ({ENTRY_COLUMNS}) ENGINE = {} \
         ORDER BY {ENTRY_KEY}",
        replicated("signet_entries", "all", "{shard}-{replica}")
    ));
    statements
}

impl ClickHouseStore {
    /// Applies the migrations not applied yet; returns the schema version.
    pub fn migrate(&self) -> Result<u32> {
        if let Some(cluster) = &self.cluster {
            return self.migrate_cluster(cluster);
        }
        self.execute(
            "CREATE TABLE IF NOT EXISTS signet_migrations (version UInt32, applied_at DateTime) ENGINE = TinyLog",
        )?;
        let applied = self.query_json("SELECT max(version) FROM signet_migrations")?;
        let mut version = applied.first().and_then(|r| r.first()).and_then(Value::as_u64).unwrap_or(0) as u32;
        for (target, statements) in migrations() {
            if target <= version {
                continue;
            }
            for step in statements {
                match step {
                    Step::Sql(sql) => self.execute(&sql)?,
                    Step::AddColumn { table, column, ty } => {
                        let there = self.query_json(&format!(
                            "SELECT count() FROM system.columns WHERE database = {} AND table = '{table}' AND name = \
                             '{column}'",
                            DIALECT.quote_str(&self.database)
                        ))?;
                        if there.first().and_then(|r| r.first()).map_or(0, int_of) == 0 {
                            self.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
                        }
                    }
                }
            }
            self.execute(&format!("INSERT INTO signet_migrations VALUES ({target}, now())"))?;
            version = target;
        }
        Ok(version)
    }

    /// [`ClickHouseStore::migrate`] on a cluster: [`cluster_schema`] when a table is missing (every
    /// statement idempotent), then [`cluster_column_steps`] for the columns a table made by an
    /// earlier version lacks. Both converge from whatever the server has: a statement cut short
    /// is run again by the next start, and ClickHouse's distributed DDL queue applies each on a
    /// server that was down when it comes back.
    fn migrate_cluster(&self, cluster: &str) -> Result<u32> {
        let version = migrations().last().map_or(0, |(v, _)| *v);
        // Distributed DDL waits for every server: not run when this server has every table (a
        // node starting while a replica is down must not wait for it).
        let tables: Vec<String> = LogKind::ALL
            .iter()
            .map(|k| schema::table(*k))
            .chain(["superseded"])
            .flat_map(|t| [format!("'{t}'"), format!("'{t}_local'")])
            .chain(["'signet_applied'", "'signet_documents'", "'signet_entries'"].map(String::from))
            .collect();
        let there = self.post(
            None,
            &format!(
                "SELECT count() FROM system.tables WHERE database = {} AND name IN ({})",
                DIALECT.quote_str(&self.database),
                tables.join(", ")
            ),
            None,
        )?;
        if there.text().map_err(db_err)?.trim().parse::<usize>().ok() != Some(tables.len()) {
            for statement in cluster_schema(&self.database, cluster) {
                self.post(None, &statement, None)?.text().map_err(db_err)?;
            }
        }
        // A cluster made by an earlier version lacks the columns added since.
        let kind_tables: Vec<String> = LogKind::ALL
            .iter()
            .flat_map(|k| [format!("'{}'", schema::table(*k)), format!("'{}_local'", schema::table(*k))])
            .collect();
        let rows = self.query_json(&format!(
            "SELECT table, name FROM system.columns WHERE database = {} AND table IN ({})",
            DIALECT.quote_str(&self.database),
            kind_tables.join(", ")
        ))?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let present = rows.iter().map(|row| (text(&row[0]), text(&row[1]))).collect();
        for statement in cluster_column_steps(&self.database, cluster, &present) {
            tracing::info!(%statement, "migrating the cluster's tables");
            match self.post(None, &statement, None).and_then(|answer| answer.text().map_err(db_err)) {
                Ok(_) => {}
                // Another node starting at the same moment added the column first.
                Err(StoreError::Database(why)) if why.contains("already exists") => {
                    tracing::info!(%statement, "another node migrated the cluster's tables first");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(version)
    }
}
