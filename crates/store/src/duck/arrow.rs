//! Builds Arrow record batches from events, column by column, for the projection's inserts
//! (DuckDB scans a batch column by column: several times faster than row-by-row appends).

use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
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

/// What a text or list column of a kind's last batch held: (rows, list items, text bytes).
type Held = (usize, usize, usize);

/// Per kind (in [`LogKind::ALL`] order), what its last batch's columns held, so that the next
/// batch's buffers start at about their final size: a buffer that grows doubles, copying what it
/// holds at each size (`memmove` 8.7 % of the projector's samples before, 6.0 % after:
/// docs/benchmarks.md run 43).
static LAST_HELD: Mutex<[Vec<Held>; 3]> = Mutex::new([Vec::new(), Vec::new(), Vec::new()]);

impl Builder {
    /// A builder for `capacity` rows; `held`: what the column held in the kind's last batch.
    fn new(ty: ColType, capacity: usize, held: Option<Held>) -> Builder {
        // The last batch's per-row sizes, an eighth more, for `capacity` rows.
        let scaled = |n: usize, default: usize| match held {
            Some((rows, ..)) if rows > 0 => n.saturating_mul(capacity) / rows + n / 8 * capacity / rows + 64,
            _ => default,
        };
        let (items, bytes) = held.map_or((0, 0), |(_, items, bytes)| (items, bytes));
        match ty {
            ColType::Str => Builder::Str(StringBuilder::with_capacity(capacity, scaled(bytes, capacity * 16))),
            ColType::Int => Builder::Int(Int64Builder::with_capacity(capacity)),
            ColType::Float => Builder::Float(Float64Builder::with_capacity(capacity)),
            ColType::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColType::Time => Builder::Time(TimestampMicrosecondBuilder::with_capacity(capacity)),
            ColType::StrList => Builder::List(ListBuilder::with_capacity(
                StringBuilder::with_capacity(scaled(items, 0), scaled(bytes, 0)),
                capacity,
            )),
        }
    }

    /// What a text or list column holds (for the next batch's [`Builder::new`]).
    fn held(&self, rows: usize) -> Option<Held> {
        match self {
            Builder::Str(b) => Some((rows, 0, b.values_slice().len())),
            Builder::List(b) => Some((rows, b.values_ref().len(), b.values_ref().values_slice().len())),
            _ => None,
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

/// Builders for `columns`, `rows` each, text sized as `held` says (what the columns held last
/// time; empty: 16 bytes a row). (Sizing the string buffers exactly, from a first pass over the
/// cells, was slower: docs/benchmarks.md run 32.)
fn builders_for(columns: &[&Column], rows: usize, held: &[Held]) -> Vec<Builder> {
    columns.iter().enumerate().map(|(i, c)| Builder::new(c.ty, rows, held.get(i).copied())).collect()
}

/// A batch for a kind's table: common columns then the kind's columns.
pub fn kind_batch(kind: LogKind, events: &[&StoredEvent]) -> Result<RecordBatch> {
    let columns: Vec<&Column> = schema::all_columns(kind).collect();
    let slot = LogKind::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL");
    let held = std::mem::take(&mut LAST_HELD.lock().unwrap_or_else(|e| e.into_inner())[slot]);
    let mut builders = builders_for(&columns, events.len(), &held);
    for e in events {
        debug_assert_eq!(e.event.kind, kind);
        push_common(&mut builders, e, None);
        for (builder, cell) in builders[COMMON_COLUMNS..].iter_mut().zip(e.event.cells.iter()) {
            builder.push(cell);
        }
    }
    let now: Vec<Held> = builders.iter().map(|b| b.held(events.len()).unwrap_or_default()).collect();
    LAST_HELD.lock().unwrap_or_else(|e| e.into_inner())[slot] = now;
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
    let mut builders = builders_for(&columns, events.len(), &[]);
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
