//! Signet's query language, with no I/O.
//!
//! # Layout
//! - [`ast`]: the typed filter expression ([`Expr`]) and the list and aggregation queries built
//!   from it. Everything that reads events (Graph API, native API, reports, export, CLI) builds
//!   one of these; nothing builds SQL text by hand.
//! - [`odata`]: the OData `$filter` parser for the Graph-compatible API.
//! - [`native`]: the native query API's filters (user, app, status, IP/CIDR, time presets, ...).
//! - [`sql`]: the compiler from the AST to SQL, with one [`sql::Dialect`] per storage engine.
//! - [`cursor`]: opaque keyset-paging cursors.
//! - [`activity_reports`]: Dynamics 365's preconfigured activity reports as filters.

pub mod activity_reports;
pub mod ast;
pub mod cursor;
pub mod native;
pub mod odata;
pub mod sql;

pub use ast::{
    AggQuery, CmpOp, Expr, FacetQuery, Facets, GroupBy, GroupSet, ListQuery, Literal, Measure, MultiAggQuery,
    SortOrder, Zone,
};

/// Errors a query can have before it reaches storage. Every message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid $filter at position {position}: {message}")]
    Syntax { position: usize, message: String },
    #[error("unsupported in $filter: {0}")]
    Unsupported(String),
    #[error("invalid value for {field}: {message}")]
    InvalidValue { field: String, message: String },
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
