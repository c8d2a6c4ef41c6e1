//! Schema migrations of the DuckDB file ([`SCHEMA_VERSION`]; docs/storage.md lists the versions).

use super::*;

impl DuckStore {
    pub(super) fn migrate(conn: &Connection) -> Result<()> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS signet_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")?;
        let found: Option<String> =
            conn.query_row("SELECT value FROM signet_meta WHERE key = 'schema_version'", [], |r| r.get(0)).ok();
        let found: u32 = found.and_then(|v| v.parse().ok()).unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::UnsupportedVersion {
                path: "signet.duckdb".into(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        if found >= 1 {
            if found == 1 {
                Self::migrate_1_to_2(conn)?;
            }
            if found <= 2 {
                Self::migrate_2_to_3(conn)?;
            }
            return Self::migrate_3_to_4(conn);
        }
        // Version 0: the current schema, from scratch.
        let mut ddl = Vec::new();
        for kind in LogKind::ALL {
            let columns: Vec<&Column> = schema::all_columns(kind).collect();
            ddl.push(create_table_sql(schema::table(kind), &columns));
        }
        ddl.push(METHOD_SETS_DDL.into());
        let revision_columns: Vec<&Column> = arrow::REVISION_COLUMNS.iter().collect();
        ddl.push(create_table_sql("revisions", &revision_columns));
        ddl.push("INSERT OR REPLACE INTO signet_meta VALUES ('applied_position', '0')".into());
        ddl.push(format!("INSERT OR REPLACE INTO signet_meta VALUES ('schema_version', '{SCHEMA_VERSION}')"));
        conn.execute_batch(&format!("BEGIN TRANSACTION; {}; COMMIT;", ddl.join("; ")))?;
        Ok(())
    }

    /// Version 1 -> 2: activities get `operation_category`, filled from `operation` by the
    /// same function that fills it at ingest (one UPDATE per distinct operation name).
    fn migrate_1_to_2(conn: &Connection) -> Result<()> {
        Self::in_transaction(conn, |conn| {
            conn.execute_batch("ALTER TABLE activities ADD COLUMN operation_category VARCHAR")?;
            let operations: Vec<String> = {
                let mut statement =
                    conn.prepare("SELECT DISTINCT operation FROM activities WHERE operation IS NOT NULL")?;
                let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let mut update = conn.prepare("UPDATE activities SET operation_category = ? WHERE operation = ?")?;
            for operation in &operations {
                update.execute(duckdb::params![signet_model::activity::operation_category(operation), operation])?;
            }
            conn.execute_batch("INSERT OR REPLACE INTO signet_meta VALUES ('schema_version', '2')")?;
            Ok(())
        })
    }

    /// Version 2 -> 3: sign-ins get `auth_method_set`, the key of their pair of method lists,
    /// and the pairs get their table (`auth_method_sets`), filled from the stored rows with the
    /// function that fills them at ingest.
    fn migrate_2_to_3(conn: &Connection) -> Result<()> {
        Self::in_transaction(conn, |conn| {
            conn.execute_batch(&format!("ALTER TABLE signins ADD COLUMN auth_method_set BIGINT; {METHOD_SETS_DDL}"))?;
            let pairs: Vec<(Vec<String>, Vec<String>)> = {
                let mut statement =
                    conn.prepare("SELECT DISTINCT auth_methods, auth_methods_succeeded FROM signins")?;
                let rows = statement.query_map([], |r| Ok((r.get::<_, Value>(0)?, r.get::<_, Value>(1)?)))?;
                let list = |value: Value| match cells::to_cell(value, None) {
                    Cell::List(items) => items,
                    _ => Vec::new(),
                };
                rows.map(|row| row.map(|(m, s)| (list(m), list(s)))).collect::<std::result::Result<_, _>>()?
            };
            let keyed = pairs.iter().map(|(m, s)| {
                (
                    signet_model::signin::auth_method_set(m, s),
                    m.iter().map(String::as_str),
                    s.iter().map(String::as_str),
                )
            });
            if let Some((_, insert)) = new_method_sets(&HashSet::new(), keyed) {
                conn.execute_batch(&insert)?;
            }
            conn.execute_batch(
                "UPDATE signins SET auth_method_set = p.set_key FROM auth_method_sets p \
                 WHERE coalesce(signins.auth_methods, CAST([] AS VARCHAR[])) = p.methods \
                 AND coalesce(signins.auth_methods_succeeded, CAST([] AS VARCHAR[])) = p.succeeded; \
                 INSERT OR REPLACE INTO signet_meta VALUES ('schema_version', '3')",
            )?;
            Ok(())
        })
    }

    /// Version 3 -> 4: `revisions` no longer holds the revisions the hot tables hold (see
    /// [`revision_index`]).
    fn migrate_3_to_4(conn: &Connection) -> Result<()> {
        let deletes: Vec<String> = LogKind::ALL
            .iter()
            .map(|kind| {
                format!(
                    "DELETE FROM revisions WHERE kind = {} AND log_pos * 65536 + log_idx IN \
                     (SELECT log_pos * 65536 + log_idx FROM {})",
                    kind.code(),
                    schema::table(*kind)
                )
            })
            .collect();
        Self::in_transaction(conn, |conn| {
            let sql =
                format!("{}; INSERT OR REPLACE INTO signet_meta VALUES ('schema_version', '4')", deletes.join("; "));
            Ok(conn.execute_batch(&sql)?)
        })
    }
}
