//! A normalised event: typed cells for the columns, plus the JSON it came from.

use bytes::Bytes;
use serde::Serialize;

use crate::kind::LogKind;

/// One typed value of a column (see [`crate::schema::ColType`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    Time(i64),
    List(Vec<String>),
}

impl Cell {
    pub fn opt_str(value: Option<String>) -> Cell {
        match value {
            Some(s) => Cell::Str(s),
            None => Cell::Null,
        }
    }

    pub fn opt_int(value: Option<i64>) -> Cell {
        value.map_or(Cell::Null, Cell::Int)
    }

    pub fn opt_float(value: Option<f64>) -> Cell {
        value.map_or(Cell::Null, Cell::Float)
    }

    pub fn opt_bool(value: Option<bool>) -> Cell {
        value.map_or(Cell::Null, Cell::Bool)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A validated, normalised event, ready for the event log and the column store.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: LogKind,
    /// The record's own id (Graph `id`, O365 `Id`); unique per organisation and kind.
    pub id: String,
    /// Event time (createdDateTime / activityDateTime / CreationTime), microseconds UTC.
    pub time_us: i64,
    /// Hash of the JSON value of the record ([`crate::json::content_hash`]: whitespace, member
    /// order, escapes and number spelling aside): identical re-sends are duplicates, anything
    /// else under the same id is a new revision.
    pub content_hash: u64,
    /// Values of [`crate::schema::kind_columns`] for this kind, in order.
    pub cells: Vec<Cell>,
    /// The record in Graph shape (for activities, the O365 shape): what the APIs serve. The
    /// events of one request share its body ([`normalize_shared`]).
    pub body: Bytes,
    /// The record exactly as the source system wrote it, when an importer reshaped it.
    pub original: Option<Vec<u8>>,
}

impl Event {
    /// The value of a kind-specific column by name, if the kind has it.
    pub fn cell(&self, name: &str) -> Option<&Cell> {
        let at = crate::schema::kind_columns(self.kind).iter().position(|c| c.name == name)?;
        self.cells.get(at)
    }

    /// The content hash this record would have had when stored by a version before the
    /// value hash ([`crate::json::legacy_content_hash`] of the source record, or of the body):
    /// a record stored then and re-sent now is a duplicate if this matches.
    pub fn legacy_content_hash(&self) -> u64 {
        crate::json::legacy_content_hash(self.original.as_deref().unwrap_or(&self.body))
    }

    /// The source application the event reports itself from: a sign-in's application (id or
    /// name), a directory audit's logging service, an activity's workload or service name.
    pub fn source_apps(&self) -> Vec<&str> {
        let names: &[&str] = match self.kind {
            LogKind::SignIn => &["app_id", "app_display_name"],
            LogKind::DirectoryAudit => &["logged_by_service"],
            LogKind::Activity => &["workload", "service_name"],
        };
        names.iter().filter_map(|n| self.cell(n)?.as_str()).collect()
    }
}

/// Rejects anything but a JSON object before it reaches a typed parser (serde would otherwise
/// read an array positionally into the struct's fields).
pub fn require_object(body: &[u8]) -> Result<(), RecordError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => Err(RecordError::new("(record)", "a record must be a JSON object")),
        None => Err(RecordError::new("(record)", "empty record")),
    }
}

/// Parses a record into a typed struct. Real exports repeat keys (the Graph beta examples do);
/// typed parsing refuses a repeated known field, so such a record is read again through a
/// generic value, where the last occurrence wins as in most JSON parsers.
pub fn parse_record<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RecordError> {
    require_object(body)?;
    // The fast path tracks no paths; only a failed record is parsed again to name the field.
    // Parsed from text, validated once: from bytes serde_json validates every string on its
    // own, a call per string (4 % of the server's CPU during ingest).
    let fast = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    match fast {
        Ok(record) => return Ok(record),
        Err(err) if !err.to_string().starts_with("duplicate field") => {
            let mut de = serde_json::Deserializer::from_slice(body);
            return match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(with_path) => Err(RecordError::from_serde(with_path)),
                Ok(_) => Err(RecordError::new("(record)", err.to_string())),
            };
        }
        Err(_) => {}
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RecordError::new("(record)", e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        RecordError::new(if path == "." { "(record)".to_string() } else { path }, e.into_inner().to_string())
    })
}

/// A record's id: required, at most 256 characters.
pub(crate) fn required_id(id: Option<String>, field: &str) -> Result<String, RecordError> {
    let id = id.ok_or_else(|| RecordError::new(field, "required"))?;
    if id.len() > 256 {
        return Err(RecordError::new(field, "longer than 256 characters"));
    }
    Ok(id)
}

/// A record's event time: required, in one of the formats of [`crate::time::parse_time`].
pub(crate) fn required_time(text: Option<String>, field: &str) -> Result<i64, RecordError> {
    let text = text.ok_or_else(|| RecordError::new(field, "required"))?;
    crate::time::parse_time(&text).map_err(|e| RecordError::new(field, e))
}

impl Event {
    /// An event from its normalised parts; the content hash is taken over `body`.
    pub(crate) fn from_parts(kind: LogKind, id: String, time_us: i64, cells: Vec<Cell>, body: &Bytes) -> Event {
        Event::from_parts_hashed(kind, id, time_us, cells, body, crate::json::content_hash(body))
    }

    /// As [`Event::from_parts`], with `body`'s content hash already computed.
    pub(crate) fn from_parts_hashed(
        kind: LogKind,
        id: String,
        time_us: i64,
        cells: Vec<Cell>,
        body: &Bytes,
        content_hash: u64,
    ) -> Event {
        debug_assert_eq!(cells.len(), crate::schema::kind_columns(kind).len());
        Event { kind, id, time_us, content_hash, cells, body: body.clone(), original: None }
    }
}

/// Why one record was rejected: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RecordError {
    pub field: String,
    pub reason: String,
}

impl RecordError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> RecordError {
        RecordError { field: field.into(), reason: reason.into() }
    }

    /// Turns a serde error with its path into a record error.
    pub fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> RecordError {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path == "." || path.is_empty() { "(record)".to_string() } else { path };
        let reason = inner.to_string();
        // serde_json appends " at line L column C", which points into the body, not the record.
        let reason = match reason.rfind(" at line ") {
            Some(cut) => reason[..cut].to_string(),
            None => reason,
        };
        RecordError { field, reason }
    }
}

/// Parses and normalises one record of a kind from its (Graph- or O365-shaped) JSON body.
pub fn normalize(kind: LogKind, body: &[u8]) -> Result<Event, RecordError> {
    normalize_shared(kind, &Bytes::copy_from_slice(body), None)
}

/// As [`normalize`], for a record held in shared bytes: the event's body is `body` itself, not
/// a copy (the records of a request body are slices of it, and share it). `text`: the same
/// bytes as text when the caller has them (validated once for a whole body), or `None`.
pub fn normalize_shared(kind: LogKind, body: &Bytes, text: Option<&str>) -> Result<Event, RecordError> {
    if let Some(text) = text {
        assert!(text.as_ptr() == body.as_ptr() && text.len() == body.len(), "the text of the body");
    }
    match kind {
        LogKind::SignIn => crate::signin::normalize(body, text),
        LogKind::DirectoryAudit => crate::audit::normalize(body),
        LogKind::Activity => crate::activity::normalize(body),
    }
}
