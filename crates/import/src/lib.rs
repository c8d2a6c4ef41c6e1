//! Importers: turn what identity providers export into Signet's Graph-shaped records.
//!
//! # Layout
//! - [`body`]: splitting a request body or file into records (JSON object, array, Graph page
//!   `{"value": [...]}`, Azure `{"records": [...]}`, NDJSON). Shared with HTTP ingest.
//! - [`convert`]: one record of any supported shape -> (log kind, Graph-shaped JSON):
//!   Graph `signIn` / `directoryAudit`, Office 365 / Dynamics activity records, Log Analytics /
//!   Sentinel rows (`SigninLogs`, `AADNonInteractiveUserSignInLogs`, ..., `AuditLogs`,
//!   `OfficeActivity`), Azure Monitor diagnostic records (`time`, `category`, `properties`).
//! - [`okta`]: Okta System Log events -> sign-ins (authentication events) and directory audits.
//! - [`csv_rows`]: the Log Analytics portal CSV (`CreatedDateTime [UTC]`, `_dynamic`/`_string`
//!   pairs, multi-line JSON cells) and the Entra portal sign-in CSV download.
//! - [`parts`]: splitting large activity records for destinations with a size limit, and putting
//!   the parts back together on import.
//! - [`import_bytes`] (here): a whole file, format detected, to normalised events + rejections;
//!   [`pieces`]: a large file cut into documents of whole records, imported one by one.

pub mod body;
pub mod convert;
pub mod csv_rows;
pub mod okta;
pub mod parts;
pub mod pieces;

use serde::Serialize;
use signet_model::Event;

/// A source format, or `Auto` to detect it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Auto,
    /// JSON documents: Graph pages, arrays, NDJSON; every record's shape is detected.
    Json,
    /// One JSON record per line, whatever the first line looks like (a malformed line is that
    /// record's rejection, not the file's).
    Ndjson,
    /// Log Analytics portal CSV or Entra portal CSV.
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(Format::Auto),
            "json" | "graph" | "log-analytics" | "azure-diagnostics" | "o365" | "okta" => Some(Format::Json),
            "ndjson" => Some(Format::Ndjson),
            "csv" | "portal-csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A record that could not be imported: where, which field, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based record number in the file (the line for NDJSON, the row for CSV).
    pub record: usize,
    pub field: String,
    pub reason: String,
}

/// A whole file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("malformed CSV: {0}")]
    Csv(String),
    #[error("unrecognised format: {0}")]
    Unrecognised(String),
}

/// Everything a file yielded.
#[derive(Debug, Default)]
pub struct Imported {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
    pub by_kind: [usize; 3],
}

/// Detects the format from the first bytes.
pub fn detect(bytes: &[u8]) -> Format {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF);
    match first {
        Some(b'{') | Some(b'[') => Format::Json,
        Some(_) => Format::Csv,
        None => Format::Json,
    }
}

/// Imports a whole file.
pub fn import_bytes(bytes: &[u8], format: Format) -> Result<Imported, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ImportError::NotUtf8(e.valid_up_to()))?;
    let text = text.trim_start_matches('\u{feff}');
    let format = if format == Format::Auto { detect(text.as_bytes()) } else { format };
    let mut out = Imported::default();
    let converted: Vec<(usize, Result<convert::Converted, Rejected>)> = match format {
        Format::Csv => csv_rows::convert_csv(text)?,
        _ => {
            let framing = match format {
                Format::Ndjson => body::Framing::Ndjson,
                _ => body::Framing::Detect,
            };
            let records = body::split(text.as_bytes(), framing).map_err(|e| match e {
                body::BodyError::Json { line, column, message } => ImportError::Json { line, column, message },
                other => ImportError::Unrecognised(other.to_string()),
            })?;
            let convert = |number: usize, bytes: &[u8]| {
                let converted = convert::convert_record(bytes).map_err(|(field, reason)| Rejected {
                    record: number,
                    field,
                    reason,
                });
                (number, converted)
            };
            // Parts of split records (`PartCount`) are put back together first.
            let marker = format!("\"{}\"", parts::PART_COUNT);
            let is_part = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            if !records.iter().any(|r| is_part(r.bytes)) {
                records.iter().map(|r| convert(r.number, r.bytes)).collect()
            } else {
                let parsed: Vec<Option<serde_json::Map<String, serde_json::Value>>> = records
                    .iter()
                    .map(|r| if is_part(r.bytes) { serde_json::from_slice(r.bytes).ok() } else { None })
                    .collect();
                let (whole, errors) = parts::reassemble(&parsed);
                let mut out = Vec::with_capacity(records.len());
                for (index, record) in records.iter().enumerate() {
                    if parsed[index].is_none() {
                        out.push(convert(record.number, record.bytes));
                    } else if let Some(error) = errors.iter().find(|e| e.index == index) {
                        let rejected = Rejected {
                            record: record.number,
                            field: error.field.clone(),
                            reason: error.reason.clone(),
                        };
                        out.push((record.number, Err(rejected)));
                    } else if let Some(whole) = &whole[index] {
                        let bytes = serde_json::to_vec(whole).unwrap_or_default();
                        out.push(convert(record.number, &bytes));
                    }
                }
                out
            }
        }
    };
    for (number, converted) in converted {
        match converted
            .and_then(|c| to_event(c).map_err(|e| Rejected { record: number, field: e.field, reason: e.reason }))
        {
            Ok(event) => {
                out.by_kind[event.kind.code() as usize - 1] += 1;
                out.events.push(event);
            }
            Err(rejected) => out.rejected.push(rejected),
        }
    }
    Ok(out)
}

/// Normalises a converted record, keeping the source record and hashing it for duplicates.
pub fn to_event(c: convert::Converted) -> Result<Event, signet_model::RecordError> {
    let mut event = signet_model::normalize(c.kind, &c.body)?;
    if let Some(original) = c.original {
        event.content_hash = signet_model::json::content_hash(&original);
        event.original = Some(original);
    }
    Ok(event)
}
