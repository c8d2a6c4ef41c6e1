//! Schema migrations and reading archived parts of older schemas.

use super::*;

/// The rows of a two-column query on the writer's connection.
fn pairs<A: duckdb::types::FromSql, B: duckdb::types::FromSql>(store: &DuckStore, sql: &str) -> Vec<(A, B)> {
    let conn = store.writer();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[test]
fn a_version_1_database_gets_operation_categories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    {
        // The version 1 schema: activities without operation_category.
        let conn = Connection::open(&path).unwrap();
        let v1: Vec<&Column> =
            schema::all_columns(LogKind::Activity).filter(|c| c.name != "operation_category").collect();
        conn.execute_batch(&format!(
            "CREATE TABLE signet_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
             INSERT INTO signet_meta VALUES ('schema_version', '1'), ('applied_position', '0');
             {}; {}; {};
             INSERT INTO activities (id, operation) VALUES ('a', 'RetrieveMultiple'), ('b', 'Create'), ('c', 'Create'), ('d', 'MailItemsAccessed');",
            create_table_sql("activities", &v1),
            create_table_sql("signins", &version_2_signins()),
            tables_unchanged_since_version_1(),
        ))
        .unwrap();
    }
    let store = DuckStore::open(&path).unwrap();
    let rows: Vec<(String, String)> = pairs(&store, "SELECT id, operation_category FROM activities ORDER BY id");
    let expected = [("a", "ReadMultiple"), ("b", "Create"), ("c", "Create"), ("d", "Other")];
    assert_eq!(rows, expected.map(|(a, b)| (a.to_string(), b.to_string())).to_vec());
    let conn = store.writer();
    let version: String =
        conn.query_row("SELECT value FROM signet_meta WHERE key = 'schema_version'", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION.to_string());
    // The new column is last, where the projection's `INSERT .. SELECT *` writes it.
    let last: String = conn
        .query_row("SELECT column_name FROM duckdb_columns() WHERE table_name = 'activities' ORDER BY column_index DESC LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, "operation_category");
}

/// The tables of schema version 1 that later versions did not alter.
fn tables_unchanged_since_version_1() -> String {
    let revisions: Vec<&Column> = arrow::REVISION_COLUMNS.iter().collect();
    let audits: Vec<&Column> = schema::all_columns(LogKind::DirectoryAudit).collect();
    format!("{}; {}", create_table_sql("revisions", &revisions), create_table_sql("directory_audits", &audits))
}

/// The sign-in columns of schema versions 1 and 2 (before `auth_method_set`).
fn version_2_signins() -> Vec<&'static Column> {
    schema::all_columns(LogKind::SignIn).filter(|c| c.name != "auth_method_set").collect()
}

#[test]
fn a_version_2_database_gets_method_sets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE signet_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
             INSERT INTO signet_meta VALUES ('schema_version', '2'), ('applied_position', '0');
             {};
             INSERT INTO signins (org_id, id, auth_methods, auth_methods_succeeded, user_hash) VALUES
               ('o', 'a', ['Password', 'Text message'], ['Password'], 1),
               ('o', 'b', ['Password', 'Text message'], ['Password'], 2),
               ('o', 'c', ['Password'], ['Password'], 1),
               ('o', 'd', [], [], 3),
               ('o', 'e', NULL, NULL, 3);
             {}; {};",
            create_table_sql("signins", &version_2_signins()),
            create_table_sql("activities", &schema::all_columns(LogKind::Activity).collect::<Vec<_>>()),
            tables_unchanged_since_version_1(),
        ))
        .unwrap();
    }
    let store = DuckStore::open(&path).unwrap();
    {
        let keys: Vec<(String, Option<i64>)> = pairs(&store, "SELECT id, auth_method_set FROM signins ORDER BY id");
        let key = |m: &[&str], s: &[&str]| Some(signet_model::signin::auth_method_set(m, s));
        let two = key(&["Password", "Text message"], &["Password"]);
        let empty = key(&[], &[]);
        let expected = [("a", two), ("b", two), ("c", key(&["Password"], &["Password"])), ("d", empty), ("e", empty)];
        assert_eq!(keys, expected.map(|(id, k)| (id.to_string(), k)).to_vec());
        let conn = store.writer();
        let pairs: i64 = conn.query_row("SELECT count(*) FROM auth_method_sets", [], |r| r.get(0)).unwrap();
        assert_eq!(pairs, 3);
        assert_eq!(conn.method_sets.len(), 3, "the writer knows them");
    }
    let methods = schema::find_column(LogKind::SignIn, "auth_methods").unwrap();
    let query = AggQuery {
        org: "o".into(),
        kind: LogKind::SignIn,
        filter: Expr::True,
        group_by: vec![signet_query::ast::GroupBy::Unnest(methods)],
        measures: vec![
            signet_query::ast::Measure::Count,
            signet_query::ast::Measure::CountWhereGroupIn(
                schema::find_column(LogKind::SignIn, "auth_methods_succeeded").unwrap(),
            ),
            signet_query::ast::Measure::CountDistinct(schema::find_column(LogKind::SignIn, "user_hash").unwrap()),
        ],
        order_by_first_measure_desc: true,
        limit: None,
    };
    let rows = store.aggregate(&query).unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Cell::Str("Password".into()), Cell::Int(3), Cell::Int(3), Cell::Int(2)],
            vec![Cell::Str("Text message".into()), Cell::Int(2), Cell::Int(0), Cell::Int(2)],
        ]
    );
}

#[test]
fn a_version_3_database_keeps_only_the_revisions_no_hot_row_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    {
        // Schema 3 indexed every revision in `revisions`, the hot rows' too.
        let conn = Connection::open(&path).unwrap();
        let tables: Vec<String> = [LogKind::SignIn, LogKind::Activity]
            .iter()
            .map(|k| create_table_sql(schema::table(*k), &schema::all_columns(*k).collect::<Vec<_>>()))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE signet_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
             INSERT INTO signet_meta VALUES ('schema_version', '3'), ('applied_position', '0');
             {}; {}; {METHOD_SETS_DDL};
             INSERT INTO signins (org_id, id, revision, log_pos, log_idx) VALUES ('o', 'a', 2, 20, 0), ('o', 'b', 1, 10, 1);
             INSERT INTO activities (org_id, id, revision, log_pos, log_idx) VALUES ('o', 'x', 1, 30, 0);
             INSERT INTO revisions (org_id, kind, id, revision, log_pos, log_idx) VALUES
               ('o', 1, 'a', 1, 10, 0), ('o', 1, 'a', 2, 20, 0), ('o', 1, 'b', 1, 10, 1),
               ('o', 1, 'archived', 1, 5, 0), ('o', 3, 'x', 1, 30, 0);
             UPDATE signins SET content_hash = 7, event_time = TIMESTAMP '2026-01-01', received_at = TIMESTAMP '2026-01-01';
             UPDATE activities SET content_hash = 7, event_time = TIMESTAMP '2026-01-01', received_at = TIMESTAMP '2026-01-01';
             UPDATE revisions SET content_hash = 7, event_time = TIMESTAMP '2026-01-01', received_at = TIMESTAMP '2026-01-01';",
            tables.join("; "),
            tables_unchanged_since_version_1(),
        ))
        .unwrap();
    }
    let store = DuckStore::open(&path).unwrap();
    let left: Vec<(String, i64)> = pairs(&store, "SELECT id, revision FROM revisions ORDER BY id, revision");
    assert_eq!(left, vec![("a".to_string(), 1), ("archived".to_string(), 1)]);
    let revisions =
        |id| -> Vec<u32> { store.revisions("o", LogKind::SignIn, id).unwrap().iter().map(|r| r.revision).collect() };
    assert_eq!([revisions("a"), revisions("b"), revisions("archived")], [vec![1, 2], vec![1], vec![1]]);
    assert_eq!(store.revisions("o", LogKind::Activity, "x").unwrap().len(), 1);
    assert_eq!(store.version_count().unwrap(), Some(5));
}

#[test]
fn revisions_holds_what_no_hot_row_does() {
    let store = DuckStore::open_in_memory().unwrap();
    let event = |id: &str, revision: u32, pos: u64| {
        let json = crate::conformance::signin_json(id, 1, "u@x", "Teams", 0, "");
        crate::conformance::stored("o", LogKind::SignIn, &json, revision, pos)
    };
    store.apply(&[event("a", 1, 10), event("b", 1, 11), event("b", 2, 12)], 12).unwrap();
    store.apply(&[event("a", 2, 13), event("c", 1, 14)], 14).unwrap();
    let left: Vec<(String, i64)> = pairs(&store, "SELECT id, revision FROM revisions ORDER BY id, revision");
    assert_eq!(left, vec![("a".to_string(), 1), ("b".to_string(), 1)], "only the replaced revisions");
    let hot: Vec<(String, i64)> = pairs(&store, "SELECT id, revision FROM signins ORDER BY id");
    assert_eq!(hot, vec![("a".to_string(), 2), ("b".to_string(), 2), ("c".to_string(), 1)]);
    assert_eq!(store.version_count().unwrap(), Some(5));
}

#[test]
fn parts_archived_before_schema_3_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part.parquet");
    {
        // A part as schema 2 wrote it: no auth_method_set.
        let conn = Connection::open_in_memory().unwrap();
        let mut ddl = create_table_sql("stage", &version_2_signins());
        ddl.pop();
        ddl.push_str(", latest BOOLEAN, leaf BIGINT, body BLOB, original BLOB)");
        conn.execute_batch(&ddl).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO stage (org_id, id, revision, event_time, app_display_name, auth_methods, latest) \
             VALUES ('o', 'old', 1, TIMESTAMP '2024-01-01 10:00:00', 'Teams', ['Password'], true); \
             COPY stage TO {} (FORMAT PARQUET)",
            path_literal(&part)
        ))
        .unwrap();
    }
    let store = DuckStore::open(&dir.path().join("signet.duckdb")).unwrap();
    let day = 1_704_067_200_000_000; // 2024-01-01
    store.set_archive(vec![ArchivedPart {
        org: "o".into(),
        kind: LogKind::SignIn,
        day_us: day,
        min_time_us: day + 36_000_000_000,
        max_time_us: day + 36_000_000_000,
        first_position: 0,
        last_position: 0,
        path: part,
        queried: true,
    }]);
    let column = |name| schema::find_column(LogKind::SignIn, name).unwrap();
    let since = Expr::Compare {
        column: column("event_time"),
        op: signet_query::ast::CmpOp::Ge,
        value: signet_query::ast::Literal::Time(day),
    };
    assert_eq!(store.count("o", LogKind::SignIn, &since).unwrap(), 1);
    let list = ListQuery {
        org: "o".into(),
        kind: LogKind::SignIn,
        filter: since.clone(),
        order: signet_query::ast::SortOrder::Desc,
        limit: 10,
        after: None,
        columns: vec![column("id"), column("auth_method_set"), &schema::ARCHIVED],
    };
    assert_eq!(store.list(&list).unwrap(), vec![vec![Cell::Str("old".into()), Cell::Null, Cell::Bool(true)]]);
    // The methods report reads the part's lists (the hot table's pairs do not cover it).
    let methods = AggQuery {
        org: "o".into(),
        kind: LogKind::SignIn,
        filter: since,
        group_by: vec![signet_query::ast::GroupBy::Unnest(column("auth_methods"))],
        measures: vec![signet_query::ast::Measure::Count],
        order_by_first_measure_desc: true,
        limit: None,
    };
    assert_eq!(store.aggregate(&methods).unwrap(), vec![vec![Cell::Str("Password".into()), Cell::Int(1)]]);
}

/// The views batches are inserted through live in the instance's in-memory catalog, made once
/// when the store opens: nothing of them reaches the file, and no projection transaction
/// changes the file's catalog (which would hold DuckDB's checkpoint lock for its length).
#[test]
fn the_views_batches_are_inserted_through_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    let views = |store: &DuckStore, database: &str| -> i64 {
        let conn = store.writer();
        let sql = format!("SELECT count(*) FROM duckdb_views() WHERE NOT internal AND database_name = '{database}'");
        conn.query_row(&sql, [], |r| r.get(0)).unwrap()
    };
    let batch_tables = arrow::batch_tables().len() as i64;
    {
        let store = DuckStore::open(&path).unwrap();
        let json = crate::conformance::signin_json("a", 1, "u@x", "Teams", 0, "");
        store.apply(&[crate::conformance::stored("o", LogKind::SignIn, &json, 1, 1)], 1).unwrap();
        let newer = crate::conformance::signin_json("a", 1, "u@x", "Teams", 50126, "");
        store.apply(&[crate::conformance::stored("o", LogKind::SignIn, &newer, 2, 2)], 2).unwrap();
        assert_eq!(views(&store, "signet"), 0);
        assert_eq!(views(&store, "memory"), batch_tables);
    }
    let store = DuckStore::open(&path).unwrap();
    assert_eq!(views(&store, "signet"), 0);
    assert_eq!(views(&store, "memory"), batch_tables);
    assert_eq!(pairs::<String, i64>(&store, "SELECT id, revision FROM signins"), vec![("a".to_string(), 2)]);
    assert_eq!(pairs::<String, i64>(&store, "SELECT id, revision FROM revisions"), vec![("a".to_string(), 1)]);
}

/// A batch goes in through its table's view only while its `INSERT` runs: a failed statement
/// leaves nothing for the next one, and a batch that is not the table's shape is refused.
#[test]
fn a_batch_view_holds_a_batch_for_one_insert() {
    let store = DuckStore::open_in_memory().unwrap();
    let json = crate::conformance::signin_json("a", 1, "u@x", "Teams", 0, "");
    let event = crate::conformance::stored("o", LogKind::SignIn, &json, 1, 1);
    let batch = arrow::kind_batch(LogKind::SignIn, &[&event]).unwrap();
    let writer = store.writer();
    let err = writer.raw.insert_arrow("no_such_table", &batch).unwrap_err();
    assert!(err.to_string().contains("no batch view for table no_such_table"), "{err}");
    let err = writer.raw.insert_arrow("revisions", &batch).unwrap_err();
    assert!(err.to_string().contains("not the view's"), "{err}");
    writer.raw.insert_arrow("signins", &batch).unwrap();
    writer.raw.insert_arrow("signins", &batch).unwrap();
    let count: i64 = writer.query_row("SELECT count(*) FROM signins WHERE id = 'a'", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 2, "each insert reads its batch once");
    let empty: i64 =
        writer.query_row("SELECT count(*) FROM memory.main.signet_batch_signins", [], |r| r.get(0)).unwrap();
    assert_eq!(empty, 0, "the view is empty between inserts");
}

/// The projection's inserts append straight to the transaction's storage
/// ([`raw::insert_statement`]): DuckDB plans them as a plain `INSERT`, where the same statement
/// without the empty union is a `BATCH_INSERT` (one more copy of every row).
#[test]
fn projected_rows_are_inserted_without_a_batch_insert() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "SET threads = 2;
         CREATE TABLE source (id VARCHAR, n BIGINT);
         CREATE TABLE target (id VARCHAR, n BIGINT);
         INSERT INTO source SELECT 'e' || i, i FROM range(5000) t(i);",
    )
    .unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(1)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    };
    let plain = plan("INSERT INTO target SELECT * FROM source");
    assert!(plain.contains("Batch Insert"), "{plain}");
    let statement = raw::insert_statement("target", "source", "id");
    let ours = plan(&statement);
    assert!(ours.contains("Insert") && !ours.contains("Batch Insert"), "{ours}");

    conn.execute_batch(&statement).unwrap();
    let rows: Vec<(String, i64)> = {
        let mut stmt = conn.prepare("SELECT id, n FROM target").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    let expected: Vec<(String, i64)> = (0..5000).map(|i| (format!("e{i}"), i)).collect();
    assert_eq!(rows, expected, "every row, in the source's order");
}

#[test]
fn ids_and_correlation_ids_are_checkpointed_uncompressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckStore::open(&dir.path().join("signet.duckdb")).unwrap();
    let events = numbered_signins(2_000);
    store.apply(&events, 2_000).unwrap();
    DuckStore::make_durable(&store.writer()).unwrap();
    let segments: Vec<(String, String)> = pairs(
        &store,
        "SELECT DISTINCT column_name, compression FROM pragma_storage_info('signins') \
         WHERE segment_type = 'VARCHAR' AND column_name IN ('id', 'correlation_id', 'user_principal_name') ORDER BY 1",
    );
    let of = |column: &str| -> Vec<&str> {
        segments.iter().filter(|(c, _)| c == column).map(|(_, compression)| compression.as_str()).collect()
    };
    assert_eq!(of("id"), ["Uncompressed"]);
    assert_eq!(of("correlation_id"), ["Uncompressed"]);
    assert!(
        !of("user_principal_name").is_empty() && !of("user_principal_name").contains(&"Uncompressed"),
        "{segments:?}"
    );
}

/// Sign-ins `id-00000`.. with correlation ids `c-00000`.., at log positions 1...
fn numbered_signins(n: i64) -> Vec<StoredEvent> {
    (0..n)
        .map(|i| {
            let correlation = format!(r#","correlationId":"c-{i:05}""#);
            let json = crate::conformance::signin_json(&format!("id-{i:05}"), i, "u@x", "Teams", 0, &correlation);
            crate::conformance::stored("o", LogKind::SignIn, &json, 1, i as u64 + 1)
        })
        .collect()
}

#[test]
fn a_batch_of_two_row_groups_is_stored_as_row_groups_of_the_files_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckStore::open(&dir.path().join("signet.duckdb")).unwrap();
    let n = 2 * ROW_GROUP_ROWS as i64;
    store.apply(&numbered_signins(n), n as u64).unwrap();
    DuckStore::make_durable(&store.writer()).unwrap();
    let groups: Vec<(i64, i64)> =
        pairs(&store, "SELECT row_group_id, max(count) FROM pragma_storage_info('signins') GROUP BY ALL ORDER BY 1");
    // DuckDB's default row group (122,880 rows) would hold them all in one.
    assert_eq!(groups, vec![(0, ROW_GROUP_ROWS as i64), (1, ROW_GROUP_ROWS as i64)]);
}

#[test]
fn a_frame_cut_by_a_batch_is_not_applied_twice_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.duckdb");
    let mut frame = numbered_signins(5);
    for (i, e) in frame.iter_mut().enumerate() {
        e.ptr = RecordPtr { frame_pos: 100, index: i as u16 };
    }
    {
        let store = DuckStore::open(&path).unwrap();
        store.apply(&frame[..3], 100).unwrap();
        DuckStore::make_durable(&store.writer()).unwrap();
    }
    // The restart's replay reads the log from the applied position: the whole frame.
    let store = DuckStore::open(&path).unwrap();
    assert_eq!(store.applied_position().unwrap(), 100);
    store.apply(&frame, 200).unwrap();
    let stored: Vec<(i64, i64)> = pairs(&store, "SELECT count(*), count(DISTINCT id) FROM signins");
    assert_eq!(stored, vec![(5, 5)]);
    let meta: Vec<(String, String)> =
        pairs(&store, "SELECT key, value FROM signet_meta WHERE key LIKE 'applied%' ORDER BY 1");
    assert_eq!(meta, vec![("applied_in_frame".into(), "0".into()), ("applied_position".into(), "200".into())]);
    // An event beyond the position a batch claims is refused, not half-recorded.
    let mut beyond = numbered_signins(1);
    beyond[0].ptr = RecordPtr { frame_pos: 300, index: 0 };
    assert!(store.apply(&beyond, 250).is_err());
    assert_eq!(store.applied_position().unwrap(), 200);
}
