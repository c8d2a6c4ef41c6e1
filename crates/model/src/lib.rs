//! Signet's event model: what a sign-in, a directory audit and an activity record are, once
//! normalised, and the facts about them that do not depend on storage or transport.
//!
//! # Layout
//! - [`kind`]: the three log kinds and the organisation id every event belongs to.
//! - [`schema`]: the typed columns of each kind. One table drives the database DDL, the Arrow
//!   batches, the filter fields, the CSV export and the column chooser.
//! - [`event`]: a normalised event (typed cells + the Graph-shaped JSON body + the original record).
//! - [`signin`], [`audit`], [`activity`]: parse a record of each kind and normalise it.
//! - [`status`]: sign-in status (success / failure / interrupted) and the interrupt codes.
//! - [`catalog`]: the sign-in error-code catalogue with meanings and remediation.
//! - [`time`]: the timestamp formats identity providers really emit.
//! - [`json`]: lenient scalar deserialisers and the whitespace-insensitive content hash.
//! - [`value_hash`]: the value hash of a record, and the pass that also records its values.
//! - `tape`: reading a record from the pass that hashes it (the fast path of sign-ins).

pub mod activity;
pub mod audit;
pub mod catalog;
pub mod event;
pub mod json;
pub mod kind;
pub mod schema;
pub mod signin;
pub mod status;
mod tape;
pub mod time;
pub mod value_hash;

pub use event::{normalize, normalize_shared, Cell, CellRef, Cells, Event, ListIter, ListRef, RecordError};
pub use kind::{LogKind, OrgId};
