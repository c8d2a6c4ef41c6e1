//! Builds Arrow record batches from events, column by column, for the projection's inserts
//! (DuckDB scans a batch column by column: several times faster than row-by-row appends).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use signet_model::schema::{self, ColType, Column, COMMON_COLUMNS};
use signet_model::{Cell, CellRef, LogKind};

use crate::engine::StoredEvent;
use crate::error::{Result, StoreError};

enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(ty: ColType, capacity: usize) -> Builder {
        match ty {
            ColType::Str => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColType::Int => Builder::Int(Int64Builder::with_capacity(capacity)),
            ColType::Float => Builder::Float(Float64Builder::with_capacity(capacity)),
            ColType::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColType::Time => Builder::Time(TimestampMicrosecondBuilder::with_capacity(capacity)),
            ColType::StrList => Builder::List(ListBuilder::new(StringBuilder::new())),
        }
    }

    /// Common columns' values, pushed without making cells of them.
    fn push_str(&mut self, value: &str) {
        match self {
            Builder::Str(b) => b.append_value(value),
            other => other.push(CellRef::Null),
        }
    }

    fn push_int(&mut self, value: i64) {
        match self {
            Builder::Int(b) => b.append_value(value),
            other => other.push(CellRef::Null),
        }
    }

    fn push_time(&mut self, value: i64) {
        match self {
            Builder::Time(b) => b.append_value(value),
            other => other.push(CellRef::Null),
        }
    }

    fn push(&mut self, cell: CellRef) {
        match (self, cell) {
            (Builder::Str(b), CellRef::Str(s)) => b.append_value(s),
            (Builder::Str(b), _) => b.append_null(),
            (Builder::Int(b), CellRef::Int(i)) => b.append_value(i),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Float(b), CellRef::Float(f)) => b.append_value(f),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), CellRef::Bool(v)) => b.append_value(v),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Time(b), CellRef::Time(t)) => b.append_value(t),
            (Builder::Time(b), _) => b.append_null(),
            (Builder::List(b), CellRef::List(items)) => {
                for item in items.iter() {
                    b.values().append_value(item);
                }
                b.append(true);
            }
            (Builder::List(b), _) => b.append(true),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::List(mut b) => Arc::new(b.finish()),
        }
    }
}

pub fn arrow_type(ty: ColType) -> DataType {
    match ty {
        ColType::Str => DataType::Utf8,
        ColType::Int => DataType::Int64,
        ColType::Float => DataType::Float64,
        ColType::Bool => DataType::Boolean,
        ColType::Time => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColType::StrList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

fn schema_of(columns: &[&Column]) -> Arc<Schema> {
    Arc::new(Schema::new(columns.iter().map(|c| Field::new(c.name, arrow_type(c.ty), true)).collect::<Vec<_>>()))
}

/// Every table the projection inserts Arrow batches into, with the batches' schema.
pub fn batch_tables() -> Vec<(&'static str, Arc<Schema>)> {
    let kinds = LogKind::ALL
        .iter()
        .map(|kind| (schema::table(*kind), schema_of(&schema::all_columns(*kind).collect::<Vec<_>>())));
    kinds.chain([("revisions", schema_of(&REVISION_COLUMNS.iter().collect::<Vec<_>>()))]).collect()
}

/// The common cells of a stored event, in [`schema::common_columns`] order.
pub(crate) fn common_cells(e: &StoredEvent) -> [Cell; COMMON_COLUMNS] {
    [
        Cell::Str(e.org.clone()),
        Cell::Str(e.event.id.clone()),
        Cell::Int(i64::from(e.revision)),
        Cell::Int(e.event.content_hash as i64),
        Cell::Time(e.event.time_us),
        Cell::Time(e.received_us),
        Cell::Int(e.ptr.frame_pos as i64),
        Cell::Int(i64::from(e.ptr.index)),
    ]
}

/// Pushes a stored event's common columns (see [`common_cells`]) into the first builders, the
/// kind after the organisation when `kind` is given (the `revisions` table).
fn push_common(builders: &mut [Builder], e: &StoredEvent, kind: Option<LogKind>) {
    let mut builders = builders.iter_mut();
    let mut next = || builders.next().expect("a builder for every common column");
    next().push_str(&e.org);
    if let Some(kind) = kind {
        next().push_int(i64::from(kind.code()));
    }
    next().push_str(&e.event.id);
    next().push_int(i64::from(e.revision));
    next().push_int(e.event.content_hash as i64);
    next().push_time(e.event.time_us);
    next().push_time(e.received_us);
    next().push_int(e.ptr.frame_pos as i64);
    next().push_int(i64::from(e.ptr.index));
}

/// Builders for `columns`, `rows` each. (Sizing the string buffers exactly, from a first pass
/// over the cells, was slower: docs/benchmarks.md run 32.)
fn builders_for(columns: &[&Column], rows: usize) -> Vec<Builder> {
    columns.iter().map(|c| Builder::new(c.ty, rows)).collect()
}

/// A batch for a kind's table: common columns then the kind's columns.
pub fn kind_batch(kind: LogKind, events: &[&StoredEvent]) -> Result<RecordBatch> {
    let columns: Vec<&Column> = schema::all_columns(kind).collect();
    let mut builders = builders_for(&columns, events.len());
    for e in events {
        debug_assert_eq!(e.event.kind, kind);
        push_common(&mut builders, e, None);
        for (builder, cell) in builders[COMMON_COLUMNS..].iter_mut().zip(e.event.cells.iter()) {
            builder.push(cell);
        }
    }
    finish(&columns, builders)
}

/// Columns of the `revisions` table.
pub const REVISION_COLUMNS: &[Column] = &[
    Column { name: "org_id", api: "organizationId", graph_path: None, ty: ColType::Str },
    Column { name: "kind", api: "kind", graph_path: None, ty: ColType::Int },
    Column { name: "id", api: "id", graph_path: None, ty: ColType::Str },
    Column { name: "revision", api: "revision", graph_path: None, ty: ColType::Int },
    Column { name: "content_hash", api: "contentHash", graph_path: None, ty: ColType::Int },
    Column { name: "event_time", api: "eventTime", graph_path: None, ty: ColType::Time },
    Column { name: "received_at", api: "receivedDateTime", graph_path: None, ty: ColType::Time },
    Column { name: "log_pos", api: "logPosition", graph_path: None, ty: ColType::Int },
    Column { name: "log_idx", api: "logIndex", graph_path: None, ty: ColType::Int },
];

/// A batch for the `revisions` table: the common cells with the kind after the organisation.
pub fn revisions_batch(events: &[&StoredEvent]) -> Result<RecordBatch> {
    let columns: Vec<&Column> = REVISION_COLUMNS.iter().collect();
    let mut builders = builders_for(&columns, events.len());
    for e in events {
        push_common(&mut builders, e, Some(e.event.kind));
    }
    finish(&columns, builders)
}

fn finish(columns: &[&Column], builders: Vec<Builder>) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    RecordBatch::try_new(schema_of(columns), arrays).map_err(|e| StoreError::Database(format!("arrow batch: {e}")))
}

#[cfg(test)]
mod tests {
    use ::arrow::array::{Array, AsArray};
    use ::arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    use super::*;

    /// A batch's value at (column, row) as a cell, for the types the common columns use.
    fn cell_at(batch: &RecordBatch, column: usize, row: usize) -> Cell {
        let array = batch.column(column);
        match array.data_type() {
            DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_string()),
            DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
            DataType::Timestamp(..) => Cell::Time(array.as_primitive::<TimestampMicrosecondType>().value(row)),
            other => panic!("no common column is {other}"),
        }
    }

    #[test]
    fn batches_hold_the_common_cells_and_the_kind_cells_in_order() {
        let json = crate::conformance::signin_json("id-1", 7, "u@x", "Teams", 50126, "");
        let mut first = crate::conformance::stored("org-a", LogKind::SignIn, &json, 3, 42);
        first.received_us = 1_700_000_000_000_000;
        let second = crate::conformance::stored("b", LogKind::SignIn, &json, 1, 43);
        let events = [&first, &second];

        let batch = kind_batch(LogKind::SignIn, &events).unwrap();
        assert_eq!(batch.num_rows(), 2);
        for (row, e) in events.iter().enumerate() {
            let common: Vec<Cell> = (0..COMMON_COLUMNS).map(|c| cell_at(&batch, c, row)).collect();
            assert_eq!(common, common_cells(e).to_vec(), "row {row}");
            for (i, cell) in e.event.cells.iter().enumerate() {
                if let CellRef::Str(text) = cell {
                    let column = batch.column(COMMON_COLUMNS + i).as_string::<i32>();
                    assert_eq!(column.value(row), text, "column {}", COMMON_COLUMNS + i);
                }
            }
        }

        let revisions = revisions_batch(&events).unwrap();
        let mut expected = common_cells(&first).to_vec();
        expected.insert(1, Cell::Int(i64::from(LogKind::SignIn.code())));
        let row: Vec<Cell> = (0..REVISION_COLUMNS.len()).map(|c| cell_at(&revisions, c, 0)).collect();
        assert_eq!(row, expected);
    }
}
