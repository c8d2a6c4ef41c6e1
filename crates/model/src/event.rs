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
    pub cells: Cells,
    /// The record in Graph shape (for activities, the O365 shape): what the APIs serve. The
    /// events of one request share its body ([`normalize_shared`]).
    pub body: Bytes,
    /// The record exactly as the source system wrote it, when an importer reshaped it.
    pub original: Option<Vec<u8>>,
}

/// The values of an event's columns. Their strings lie end to end in one buffer and the
/// values in a second, so an event costs the same few allocations whatever its number of
/// strings: a sign-in's forty-odd strings were forty-odd blocks to allocate while parsing and
/// to free again on the projector's thread, another thread than the one that parsed them.
#[derive(Clone, Debug, Default)]
pub struct Cells {
    text: String,
    slots: Vec<Slot>,
    /// The ranges of `text` of the items of the lists.
    items: Vec<(u32, u32)>,
}

/// One value of [`Cells`]: a string or a list is a range of their `text` or `items`.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Null,
    Str(u32, u32),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(i64),
    List(u32, u32),
}

/// A value of [`Cells`], borrowed: as [`Cell`], without owning its text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CellRef<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    Time(i64),
    List(ListRef<'a>),
}

/// A list value of [`Cells`]: its items, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct ListRef<'a> {
    text: &'a str,
    items: &'a [(u32, u32)],
}

impl<'a> ListRef<'a> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> ListIter<'a> {
        self.into_iter()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl<'a> IntoIterator for ListRef<'a> {
    type Item = &'a str;
    type IntoIter = ListIter<'a>;

    fn into_iter(self) -> ListIter<'a> {
        ListIter { text: self.text, items: self.items.iter() }
    }
}

/// The items of a [`ListRef`].
#[derive(Clone, Debug)]
pub struct ListIter<'a> {
    text: &'a str,
    items: std::slice::Iter<'a, (u32, u32)>,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.items.next().map(|&(from, to)| &self.text[from as usize..to as usize])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for ListIter<'_> {}

impl PartialEq for ListRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a> CellRef<'a> {
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            CellRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an owned [`Cell`].
    pub fn to_cell(&self) -> Cell {
        match *self {
            CellRef::Null => Cell::Null,
            CellRef::Str(s) => Cell::Str(s.to_owned()),
            CellRef::Int(v) => Cell::Int(v),
            CellRef::Float(v) => Cell::Float(v),
            CellRef::Bool(v) => Cell::Bool(v),
            CellRef::Time(v) => Cell::Time(v),
            CellRef::List(list) => Cell::List(list.to_vec()),
        }
    }
}

impl Cells {
    /// Room for `columns` values and `text` bytes of their strings.
    pub fn with_capacity(columns: usize, text: usize) -> Cells {
        Cells { text: String::with_capacity(text), slots: Vec::with_capacity(columns), items: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, at: usize) -> Option<CellRef<'_>> {
        self.slots.get(at).map(|slot| self.value(*slot))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = CellRef<'_>> + '_ {
        self.slots.iter().map(|slot| self.value(*slot))
    }

    /// The values as owned [`Cell`]s.
    pub fn to_vec(&self) -> Vec<Cell> {
        self.iter().map(|c| c.to_cell()).collect()
    }

    fn value(&self, slot: Slot) -> CellRef<'_> {
        match slot {
            Slot::Null => CellRef::Null,
            Slot::Str(from, to) => CellRef::Str(&self.text[from as usize..to as usize]),
            Slot::Int(v) => CellRef::Int(v),
            Slot::Float(v) => CellRef::Float(v),
            Slot::Bool(v) => CellRef::Bool(v),
            Slot::Time(v) => CellRef::Time(v),
            Slot::List(from, to) => {
                CellRef::List(ListRef { text: &self.text, items: &self.items[from as usize..to as usize] })
            }
        }
    }

    /// Where the text ends: a string's bounds. An event's strings come from its record, which
    /// the body limits keep far below 4 GiB.
    fn end(&self) -> u32 {
        u32::try_from(self.text.len()).expect("an event's strings take less than 4 GiB")
    }

    fn push_text(&mut self, s: &str) -> (u32, u32) {
        let from = self.end();
        self.text.push_str(s);
        (from, self.end())
    }

    pub fn push_null(&mut self) {
        self.slots.push(Slot::Null);
    }

    pub fn push_str(&mut self, s: &str) {
        let (from, to) = self.push_text(s);
        self.slots.push(Slot::Str(from, to));
    }

    pub fn push_opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.push_str(s),
            None => self.push_null(),
        }
    }

    /// A string written in place by `write` (which only appends), or null when it returns false.
    pub fn push_written(&mut self, write: impl FnOnce(&mut String) -> bool) {
        let from = self.end();
        if write(&mut self.text) {
            let to = self.end();
            self.slots.push(Slot::Str(from, to));
        } else {
            self.text.truncate(from as usize);
            self.push_null();
        }
    }

    pub fn push_int(&mut self, v: Option<i64>) {
        self.slots.push(v.map_or(Slot::Null, Slot::Int));
    }

    pub fn push_float(&mut self, v: Option<f64>) {
        self.slots.push(v.map_or(Slot::Null, Slot::Float));
    }

    pub fn push_bool(&mut self, v: Option<bool>) {
        self.slots.push(v.map_or(Slot::Null, Slot::Bool));
    }

    pub fn push_list<'s>(&mut self, items: impl IntoIterator<Item = &'s str>) {
        if self.items.capacity() == 0 {
            // Room for a few short lists at once (a sign-in has four, most of one item).
            self.items.reserve(8);
        }
        let from = self.items.len();
        for item in items {
            let range = self.push_text(item);
            self.items.push(range);
        }
        let to = self.items.len();
        self.slots.push(Slot::List(from as u32, to as u32));
    }

    /// An owned value.
    pub fn push(&mut self, cell: &Cell) {
        match cell {
            Cell::Null => self.push_null(),
            Cell::Str(s) => self.push_str(s),
            Cell::Int(v) => self.slots.push(Slot::Int(*v)),
            Cell::Float(v) => self.slots.push(Slot::Float(*v)),
            Cell::Bool(v) => self.slots.push(Slot::Bool(*v)),
            Cell::Time(v) => self.slots.push(Slot::Time(*v)),
            Cell::List(items) => self.push_list(items.iter().map(String::as_str)),
        }
    }
}

impl PartialEq for Cells {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl From<&[Cell]> for Cells {
    fn from(cells: &[Cell]) -> Cells {
        let text = cells.iter().map(|c| if let Cell::Str(s) = c { s.len() } else { 0 }).sum();
        let mut out = Cells::with_capacity(cells.len(), text);
        for cell in cells {
            out.push(cell);
        }
        out
    }
}

impl Event {
    /// The value of a kind-specific column by name, if the kind has it.
    pub fn cell(&self, name: &str) -> Option<CellRef<'_>> {
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
pub(crate) fn required_time(text: Option<&str>, field: &str) -> Result<i64, RecordError> {
    let text = text.ok_or_else(|| RecordError::new(field, "required"))?;
    crate::time::parse_time(text).map_err(|e| RecordError::new(field, e))
}

impl Event {
    /// An event from its normalised parts; the content hash is taken over `body`.
    pub(crate) fn from_parts(kind: LogKind, id: String, time_us: i64, cells: Vec<Cell>, body: &Bytes) -> Event {
        Event::from_parts_hashed(kind, id, time_us, Cells::from(&cells[..]), body, crate::json::content_hash(body))
    }

    /// As [`Event::from_parts`], with `body`'s content hash already computed.
    pub(crate) fn from_parts_hashed(
        kind: LogKind,
        id: String,
        time_us: i64,
        cells: Cells,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_give_back_what_was_pushed() {
        let owned = vec![
            Cell::Str("Teams".into()),
            Cell::Null,
            Cell::Str(String::new()),
            Cell::Int(-7),
            Cell::Float(1.5),
            Cell::Bool(false),
            Cell::Time(1_700_000_000_000_000),
            Cell::List(vec!["Password".into(), "".into(), "FIDO2 security key".into()]),
            Cell::List(Vec::new()),
            Cell::Str("é😀".into()),
        ];
        let cells = Cells::from(&owned[..]);
        assert_eq!(cells.len(), owned.len());
        assert_eq!(cells.to_vec(), owned);
        assert_eq!(cells.get(0), Some(CellRef::Str("Teams")));
        assert_eq!(cells.get(owned.len()), None);
        let Some(CellRef::List(list)) = cells.get(7) else { panic!("a list") };
        assert_eq!((list.len(), list.iter().collect::<Vec<_>>()), (3, vec!["Password", "", "FIDO2 security key"]));
        assert_eq!(cells, Cells::from(&owned[..]));
        assert_ne!(cells, Cells::from(&owned[1..]));
    }

    #[test]
    fn a_string_written_in_place_is_a_value_or_a_null_that_leaves_no_text() {
        let mut cells = Cells::with_capacity(3, 0);
        cells.push_written(|out| {
            out.push_str("ABC");
            out.make_ascii_lowercase();
            true
        });
        cells.push_written(|out| {
            out.push_str("half-written");
            false
        });
        cells.push_str("next");
        assert_eq!(cells.to_vec(), vec![Cell::Str("abc".into()), Cell::Null, Cell::Str("next".into())]);
        assert_eq!(cells.text, "abcnext");
    }
}
