//! Query results as [`Cell`]s: from DuckDB's Arrow batches, column by column (what
//! `DuckStore::query_cells` reads), or from duckdb-rs values row by row (for types the Arrow
//! conversion does not know).

use duckdb::types::{TimeUnit, Value};
use signet_model::schema::{ColType, Column};
use signet_model::Cell;

/// The rows of an Arrow batch as cells, as [`to_cell`] makes them from duckdb-rs values;
/// `None` when a column has a type this does not convert.
pub(super) fn arrow_cells(
    batch: &::arrow::record_batch::RecordBatch,
    types: Option<&[&Column]>,
) -> Option<Vec<Vec<Cell>>> {
    use ::arrow::array::{Array, AsArray};
    use ::arrow::datatypes::{self as dt, DataType};
    let rows = batch.num_rows();
    let mut out: Vec<Vec<Cell>> = (0..rows).map(|_| Vec::with_capacity(batch.num_columns())).collect();
    for (i, column) in batch.columns().iter().enumerate() {
        let time = types.and_then(|t| t.get(i)).is_some_and(|c| c.ty == ColType::Time);
        let int = |v: i64| if time { Cell::Time(v) } else { Cell::Int(v) };
        let cell: Box<dyn Fn(usize) -> Cell + '_> = match column.data_type() {
            DataType::Null => Box::new(|_| Cell::Null),
            DataType::Boolean => {
                let a = column.as_boolean();
                Box::new(move |r| Cell::Bool(a.value(r)))
            }
            DataType::Int8 => primitive::<dt::Int8Type>(column, move |v| int(i64::from(v))),
            DataType::Int16 => primitive::<dt::Int16Type>(column, move |v| int(i64::from(v))),
            DataType::Int32 => primitive::<dt::Int32Type>(column, move |v| int(i64::from(v))),
            DataType::Int64 => primitive::<dt::Int64Type>(column, int),
            DataType::UInt8 => primitive::<dt::UInt8Type>(column, move |v| int(i64::from(v))),
            DataType::UInt16 => primitive::<dt::UInt16Type>(column, move |v| int(i64::from(v))),
            DataType::UInt32 => primitive::<dt::UInt32Type>(column, move |v| int(i64::from(v))),
            DataType::UInt64 => primitive::<dt::UInt64Type>(column, move |v| int(v as i64)),
            DataType::Decimal128(_, 0) => primitive::<dt::Decimal128Type>(column, move |v| int(v as i64)),
            DataType::Float32 => primitive::<dt::Float32Type>(column, |v| Cell::Float(f64::from(v))),
            DataType::Float64 => primitive::<dt::Float64Type>(column, Cell::Float),
            DataType::Utf8 => {
                let a = column.as_string::<i32>();
                Box::new(move |r| Cell::Str(a.value(r).to_string()))
            }
            DataType::LargeUtf8 => {
                let a = column.as_string::<i64>();
                Box::new(move |r| Cell::Str(a.value(r).to_string()))
            }
            DataType::Timestamp(unit, _) => {
                let (multiply, divide) = match unit {
                    dt::TimeUnit::Second => (1_000_000, 1),
                    dt::TimeUnit::Millisecond => (1_000, 1),
                    dt::TimeUnit::Microsecond => (1, 1),
                    dt::TimeUnit::Nanosecond => (1, 1_000),
                };
                let raw = ::arrow::compute::cast(column, &DataType::Int64).ok()?;
                let values = raw.as_primitive::<dt::Int64Type>().clone();
                Box::new(move |r| Cell::Time(values.value(r) * multiply / divide))
            }
            DataType::List(field) if matches!(field.data_type(), DataType::Utf8) => {
                let a = column.as_list::<i32>();
                Box::new(move |r| {
                    let items = a.value(r);
                    let items = items.as_string::<i32>();
                    Cell::List(items.iter().flatten().map(str::to_string).collect())
                })
            }
            _ => return None,
        };
        for (r, row) in out.iter_mut().enumerate() {
            row.push(if column.is_null(r) { Cell::Null } else { cell(r) });
        }
    }
    Some(out)
}

fn primitive<'a, T: ::arrow::datatypes::ArrowPrimitiveType>(
    column: &'a ::arrow::array::ArrayRef,
    make: impl Fn(T::Native) -> Cell + 'a,
) -> Box<dyn Fn(usize) -> Cell + 'a> {
    use ::arrow::array::AsArray;
    let a = column.as_primitive::<T>();
    Box::new(move |r| make(a.value(r)))
}

pub(super) fn to_cell(value: Value, ty: Option<ColType>) -> Cell {
    let cell = match value {
        Value::Null => Cell::Null,
        Value::Boolean(b) => Cell::Bool(b),
        Value::TinyInt(i) => Cell::Int(i64::from(i)),
        Value::SmallInt(i) => Cell::Int(i64::from(i)),
        Value::Int(i) => Cell::Int(i64::from(i)),
        Value::BigInt(i) => Cell::Int(i),
        Value::HugeInt(i) => Cell::Int(i as i64),
        Value::UTinyInt(i) => Cell::Int(i64::from(i)),
        Value::USmallInt(i) => Cell::Int(i64::from(i)),
        Value::UInt(i) => Cell::Int(i64::from(i)),
        Value::UBigInt(i) => Cell::Int(i as i64),
        Value::Float(f) => Cell::Float(f64::from(f)),
        Value::Double(f) => Cell::Float(f),
        Value::Text(s) => Cell::Str(s),
        Value::Timestamp(unit, t) => Cell::Time(match unit {
            TimeUnit::Second => t * 1_000_000,
            TimeUnit::Millisecond => t * 1_000,
            TimeUnit::Microsecond => t,
            TimeUnit::Nanosecond => t / 1_000,
        }),
        Value::List(items) => Cell::List(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Text(s) => Some(s),
                    Value::Null => None,
                    other => Some(format!("{other:?}")),
                })
                .collect(),
        ),
        other => Cell::Str(format!("{other:?}")),
    };
    match (ty, cell) {
        (Some(ColType::Time), Cell::Int(t)) => Cell::Time(t),
        (_, cell) => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both conversions of one query's rows.
    fn both(sql: &str, types: Option<&[&Column]>) -> (Option<Vec<Vec<Cell>>>, Vec<Vec<Cell>>) {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let mut from_arrow = Some(Vec::new());
        for batch in stmt.stream_arrow([]).unwrap() {
            match (arrow_cells(&batch.unwrap(), types), &mut from_arrow) {
                (Some(rows), Some(all)) => all.extend(rows),
                _ => from_arrow = None,
            }
        }
        let mut stmt = conn.prepare(sql).unwrap();
        let width = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut by_value = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let ty = |i: usize| types.and_then(|t| t.get(i)).map(|c| c.ty);
            by_value.push((0..width).map(|i| to_cell(row.get::<_, Value>(i).unwrap(), ty(i))).collect());
        }
        (from_arrow, by_value)
    }

    #[test]
    fn arrow_batches_give_the_cells_values_give() {
        let sql = "SELECT * FROM (VALUES \
            (true, 1::TINYINT, 2::SMALLINT, 3::INTEGER, 4::BIGINT, 5::UTINYINT, 6::UBIGINT, 1.5::FLOAT, 2.25::DOUBLE, \
             'é x', TIMESTAMP '2026-11-24 10:00:00.123456', ['a', NULL, 'b'], 1700000000000000::BIGINT, (SELECT sum(x) FROM range(3) t(x))), \
            (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL))";
        let time = signet_model::schema::common_columns(signet_model::LogKind::SignIn)
            .iter()
            .find(|c| c.ty == ColType::Time)
            .unwrap();
        let other = &signet_model::schema::kind_columns(signet_model::LogKind::SignIn)[0];
        // The 13th column is microseconds a query asks to read as a time.
        let types: Vec<&Column> = (0..14).map(|i| if i == 12 { time } else { other }).collect();
        let (from_arrow, by_value) = both(sql, Some(&types));
        assert_eq!(from_arrow.as_ref(), Some(&by_value));
        assert_eq!(by_value[0][11], Cell::List(vec!["a".into(), "b".into()]));
        assert_eq!(by_value[0][12], Cell::Time(1_700_000_000_000_000));
        assert_eq!(by_value[0][13], Cell::Int(3));
        assert!(by_value[1].iter().all(|c| *c == Cell::Null));
        // Nothing at all, and many batches.
        let (from_arrow, by_value) = both("SELECT 1 WHERE false", None);
        assert_eq!(from_arrow, Some(by_value));
        let (from_arrow, by_value) = both("SELECT x, x::VARCHAR FROM range(5000) t(x)", None);
        assert_eq!((from_arrow.as_ref().map(Vec::len), by_value.len()), (Some(5000), 5000));
        assert_eq!(from_arrow, Some(by_value));
    }

    #[test]
    fn types_arrow_does_not_convert_are_read_value_by_value() {
        // A fractional decimal, a date: left to the row path (the caller falls back).
        for sql in ["SELECT 1.25::DECIMAL(5, 2)", "SELECT DATE '2026-11-24'"] {
            assert_eq!(both(sql, None).0, None, "{sql}");
        }
    }
}
