//! Retention on ClickHouse (docs/adr/0003): expired rows deleted by the expiry run, whole
//! months by dropping their partitions; what keeps a node's log segments.

use std::time::Duration;

use signet_model::schema;
use signet_model::LogKind;
use signet_query::{sql, Expr};

use super::{db_err, int_of, ClickHouseStore, DIALECT};
use crate::error::Result;

impl ClickHouseStore {
    /// `ALTER TABLE .. DELETE` (18.16 has no TTL; docs/adr/0003), waited for: mutations run in
    /// the background. Without a filter, whole months before the cutoff go first by `DROP
    /// PARTITION` (the tables are partitioned by organisation and month), which rewrites
    /// nothing. On a cluster, on every shard's local table (`ON CLUSTER`; replicas replicate it).
    pub(super) fn delete_expired(&self, org: &str, kind: LogKind, before_us: i64, filter: &Expr) -> Result<u64> {
        self.ensure_ready()?;
        let table = schema::table(kind);
        let condition = format!(
            "org_id = {} AND event_time < {before_us} AND {}",
            DIALECT.quote_str(org),
            sql::compile_expr(filter, DIALECT)
        );
        let count = || -> Result<u64> {
            let rows = self.query_json(&format!("SELECT count() FROM {table} WHERE {condition}"))?;
            Ok(rows.first().and_then(|r| r.first()).map_or(0, int_of) as u64)
        };
        let rows = count()?;
        if rows == 0 {
            return Ok(0);
        }
        let target = match &self.cluster {
            Some(cluster) => format!("{}.{table}_local ON CLUSTER {cluster}", self.database),
            None => table.to_string(),
        };
        if matches!(filter, Expr::True) {
            // Whole months before the cutoff: their partitions are dropped (nothing rewritten);
            // the month the cutoff falls in is left to the mutation below.
            let months = self.query_json(&format!(
                "SELECT DISTINCT toYYYYMM(toDateTime(intDiv(event_time, 1000000), 'UTC')) FROM {table} \
                 WHERE {condition}"
            ))?;
            for month in months.iter().filter_map(|row| row.first()).map(int_of) {
                if month_end_us(month).is_some_and(|end| end <= before_us) {
                    let partition = format!("({}, {month})", DIALECT.quote_str(org));
                    self.execute(&format!("ALTER TABLE {target} DROP PARTITION {partition}"))?;
                }
            }
            if count()? == 0 {
                return Ok(rows);
            }
        }
        self.execute(&format!("ALTER TABLE {target} DELETE WHERE {condition}"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        while count()? > 0 {
            if std::time::Instant::now() > deadline {
                return Err(db_err(format!(
                    "deleting {rows} row(s) of {table} before {before_us}: the mutation did not finish in 10 minutes \
                     (it goes on in the background; the next run checks again)"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(rows)
    }

    /// This node's rows (and rows from before nodes were named, `node = ''`) from log positions
    /// `from..to`, in every kind table, every revision: while one is left (not deleted by retention yet), its
    /// log segment stays (there is no archive here).
    pub(super) fn rows_from_log(&self, from: u64, to: u64) -> Result<u64> {
        self.ensure_ready()?;
        let mut rows = 0;
        for kind in LogKind::ALL {
            let found = self.query_json(&format!(
                "SELECT count() FROM {} WHERE node IN ({}, '') AND log_pos >= {from} AND log_pos < {to}",
                schema::table(kind),
                DIALECT.quote_str(&self.node)
            ))?;
            rows += found.first().and_then(|r| r.first()).map_or(0, int_of) as u64;
        }
        Ok(rows)
    }
}

/// The first microsecond after the month `yyyymm` (UTC), as ClickHouse's `toYYYYMM` names it.
fn month_end_us(yyyymm: i64) -> Option<i64> {
    let (year, month) = (yyyymm / 100, yyyymm % 100);
    let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, u32::try_from(month).ok()?, 1)?;
    Some(first.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_month_ends_where_the_next_begins() {
        assert_eq!(super::month_end_us(202611), Some(1_796_083_200_000_000)); // 2026-12-01
        assert_eq!(super::month_end_us(202612), Some(1_798_761_600_000_000)); // 2027-01-01
        assert_eq!(super::month_end_us(202613), None);
    }
}
