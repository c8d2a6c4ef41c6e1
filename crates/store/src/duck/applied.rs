//! How far the tables reach into the event log: `signet_meta`'s `applied_position` (a frame's
//! position; every record before it is applied) and `applied_in_frame` (how many records of the
//! frame there are applied too: a projection batch may end inside a frame).

use duckdb::Connection;

use crate::engine::StoredEvent;
use crate::error::{Result, StoreError};

/// `signet_meta`'s key for how many records of the frame at the applied position the tables
/// hold.
const IN_FRAME_KEY: &str = "applied_in_frame";

/// Adds the key to files from before it (none of the frame's records applied); run at open.
pub(super) fn add_in_frame_key_sql() -> String {
    format!("INSERT OR IGNORE INTO signet_meta VALUES ('{IN_FRAME_KEY}', '0')")
}

pub(super) fn stored_position(conn: &Connection) -> Result<u64> {
    stored(conn, "applied_position")
}

fn stored<T: std::str::FromStr>(conn: &Connection, key: &str) -> Result<T> {
    let value: String = conn.query_row("SELECT value FROM signet_meta WHERE key = ?", [key], |r| r.get(0))?;
    value.parse().map_err(|_| StoreError::Database(format!("bad {key} {value:?}")))
}

/// A log position and the first records of the frame there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct FramePrefix {
    position: u64,
    records: u32,
}

impl FramePrefix {
    /// What the file records.
    pub(super) fn stored(conn: &Connection) -> Result<FramePrefix> {
        Ok(FramePrefix { position: stored_position(conn)?, records: stored(conn, IN_FRAME_KEY)? })
    }

    /// Records it, in the transaction that applies the rows it covers.
    pub(super) fn update_sql(&self) -> String {
        format!(
            "UPDATE signet_meta SET value = CASE key WHEN 'applied_position' THEN '{}' ELSE '{}' END \
             WHERE key IN ('applied_position', '{IN_FRAME_KEY}')",
            self.position, self.records
        )
    }

    /// How many events at the start of `events` the tables hold already: the first records
    /// of the frame at the applied position, applied again from its start.
    pub(super) fn held(&self, events: &[StoredEvent]) -> usize {
        match self.records {
            0 => 0,
            held => {
                events.iter().take_while(|e| e.ptr.frame_pos == self.position && u32::from(e.ptr.index) < held).count()
            }
        }
    }

    /// The prefix once `events` are applied through `through`: the events of the frame at
    /// `through` (the batch's last ones) are its first records.
    pub(super) fn after(&self, events: &[StoredEvent], through: u64) -> Result<FramePrefix> {
        let before = match self.position == through {
            true => self.records,
            false => 0,
        };
        match events.last() {
            Some(last) if last.ptr.frame_pos > through => Err(StoreError::Database(format!(
                "an event at log position {} is beyond the applied position {through} of its batch",
                last.ptr.frame_pos
            ))),
            Some(last) if last.ptr.frame_pos == through => {
                Ok(FramePrefix { position: through, records: before.max(u32::from(last.ptr.index) + 1) })
            }
            _ => Ok(FramePrefix { position: through, records: before }),
        }
    }
}
