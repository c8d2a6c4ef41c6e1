//! Cutting a large export file into pieces of whole records, each a document of its own, so a
//! file far larger than a request body (or than memory would like) is imported piece by piece.
//! Every record keeps its number in the file, so rejections name the file's record, not the
//! piece's.

use crate::{body, detect, parts, Format, ImportError};

/// Whole records of a file: JSON values (of an array, a Graph page, Azure `records` or NDJSON
/// lines) or CSV rows with the file's header.
#[derive(Debug)]
pub struct Piece<'a> {
    /// Each record with its number in the file (the line for NDJSON, the position in an
    /// array, the data row for CSV).
    records: Vec<(usize, &'a [u8])>,
    /// CSV: the header the rows need (with its line end).
    header: Option<&'a [u8]>,
    /// The file is NDJSON: the piece is too (a malformed line stays that line's rejection).
    ndjson: bool,
}

impl<'a> Piece<'a> {
    /// The format of [`Piece::document`].
    pub fn format(&self) -> Format {
        match (self.header, self.ndjson) {
            (Some(_), _) => Format::Csv,
            (None, true) => Format::Ndjson,
            (None, false) => Format::Json,
        }
    }

    /// The piece as a file of its own: NDJSON lines, a JSON array, or the CSV header and rows.
    pub fn document(&self) -> Vec<u8> {
        let size = self.records.iter().map(|(_, r)| r.len() + 2).sum::<usize>() + 2;
        match self.header {
            Some(header) => {
                let mut out = Vec::with_capacity(size + header.len());
                out.extend_from_slice(header);
                for (_, row) in &self.records {
                    out.extend_from_slice(row);
                }
                out
            }
            None if self.ndjson => {
                let mut out = Vec::with_capacity(size);
                for (_, record) in &self.records {
                    out.extend_from_slice(record);
                    out.push(b'\n');
                }
                out
            }
            None => {
                let mut out = Vec::with_capacity(size);
                out.push(b'[');
                for (i, (_, record)) in self.records.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b",\n");
                    }
                    out.extend_from_slice(record);
                }
                out.push(b']');
                out
            }
        }
    }

    /// The file's number of the piece's record `local` (1-based, as [`crate::import_bytes`]
    /// numbers the piece's records); 0 (no record) stays 0.
    pub fn number(&self, local: usize) -> usize {
        match local {
            0 => 0,
            n => self.records.get(n - 1).map_or(n, |(number, _)| *number),
        }
    }

    /// The piece cut in two (records in order), when it has more than one record: for a
    /// destination whose size limit the piece exceeds.
    pub fn halves(&self) -> Option<(Piece<'a>, Piece<'a>)> {
        if self.records.len() < 2 {
            return None;
        }
        let (first, second) = self.records.split_at(self.records.len() / 2);
        let half = |records: &[(usize, &'a [u8])]| Piece { records: records.to_vec(), ..*self };
        Some((half(first), half(second)))
    }

    /// The bytes of the file the piece covers (about: for a progress bar).
    pub fn len(&self) -> usize {
        self.records.iter().map(|(_, r)| r.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Cuts a file into pieces of about `max_bytes` of records at most (a record larger than that
/// is a piece alone). A JSON file holding parts of split records stays one piece: the parts of
/// a record are put back together, and they could straddle a cut.
pub fn pieces(bytes: &[u8], format: Format, max_bytes: usize) -> Result<Vec<Piece<'_>>, ImportError> {
    let text = crate::body::utf8(bytes).map_err(ImportError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}');
    let format = if format == Format::Auto { detect(text.as_bytes()) } else { format };
    let ndjson = match format {
        Format::Csv => false,
        Format::Ndjson => true,
        _ => body::detect_framing(text.as_bytes()) == body::Framing::Ndjson,
    };
    let (records, header) = match format {
        Format::Csv => csv_rows(text)?,
        _ => {
            let framing = if ndjson { body::Framing::Ndjson } else { body::Framing::Json };
            let records = body::split(text.as_bytes(), framing).map_err(|e| match e {
                body::BodyError::Json { line, column, message } => ImportError::Json { line, column, message },
                other => ImportError::Unrecognised(other.to_string()),
            })?;
            let marker = format!("\"{}\"", parts::PART_COUNT);
            let split_records = records.iter().any(|r| memchr::memmem::find(r.bytes, marker.as_bytes()).is_some());
            let records: Vec<(usize, &[u8])> = records.into_iter().map(|r| (r.number, r.bytes)).collect();
            if split_records {
                return Ok(vec![Piece { records, header: None, ndjson }]);
            }
            (records, None)
        }
    };
    let mut out = Vec::new();
    let mut current: Vec<(usize, &[u8])> = Vec::new();
    let mut size = 0;
    for record in records {
        if !current.is_empty() && size + record.1.len() > max_bytes {
            out.push(Piece { records: std::mem::take(&mut current), header, ndjson });
            size = 0;
        }
        size += record.1.len();
        current.push(record);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(Piece { records: current, header, ndjson });
    }
    Ok(out)
}

type Rows<'a> = (Vec<(usize, &'a [u8])>, Option<&'a [u8]>);

/// The header and every data row of a CSV file as byte ranges (rows may span lines).
fn csv_rows(text: &str) -> Result<Rows<'_>, ImportError> {
    let bytes = text.as_bytes();
    let mut reader = csv::ReaderBuilder::new().flexible(true).has_headers(false).from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut starts = Vec::new();
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(true) => starts.push(start),
            Ok(false) => break,
            // A malformed row is still a row: its piece's import reports it.
            Err(_) => starts.push(start),
        }
    }
    let Some(&first_row) = starts.get(1) else {
        // A header alone (or nothing): one piece, which the import reports as it would.
        return Ok((Vec::new(), Some(bytes)));
    };
    let mut rows = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate().skip(1) {
        let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
        rows.push((i, &bytes[start..end]));
    }
    Ok((rows, Some(&bytes[..first_row])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_bytes;

    fn import_in_pieces(bytes: &[u8], max: usize) -> (usize, Vec<(usize, String)>, usize) {
        let pieces = pieces(bytes, Format::Auto, max).unwrap();
        let (mut events, mut rejected) = (0, Vec::new());
        for piece in &pieces {
            let imported = import_bytes(&piece.document(), piece.format()).unwrap();
            events += imported.events.len();
            rejected.extend(imported.rejected.iter().map(|r| (piece.number(r.record), r.field.clone())));
        }
        (events, rejected, pieces.len())
    }

    fn signin(id: usize) -> String {
        format!(r#"{{"id":"s{id}","createdDateTime":"2024-01-01T00:00:00Z","userPrincipalName":"a@b.c"}}"#)
    }

    #[test]
    fn ndjson_and_arrays_cut_between_records_and_keep_record_numbers() {
        let mut lines: Vec<String> = (1..=10).map(signin).collect();
        lines[6] = r#"{"id":"bad","createdDateTime":"not a time"}"#.into();
        lines.insert(3, String::new()); // a blank line: line numbers go on counting
        let ndjson = lines.join("\n");
        let whole = import_bytes(ndjson.as_bytes(), Format::Auto).unwrap();
        let (events, rejected, count) = import_in_pieces(ndjson.as_bytes(), 200);
        assert!(count >= 3, "{count} pieces");
        assert_eq!(events, whole.events.len());
        assert_eq!(rejected, vec![(whole.rejected[0].record, whole.rejected[0].field.clone())]);
        assert_eq!(rejected[0].0, 8, "line 8 of the file (after the blank line 4)");

        let page = format!(
            r#"{{"@odata.context":"x","value":[{}]}}"#,
            lines.iter().filter(|l| !l.is_empty()).cloned().collect::<Vec<_>>().join(",")
        );
        let (events, rejected, count) = import_in_pieces(page.as_bytes(), 200);
        assert!(count >= 3);
        assert_eq!(events, 9);
        assert_eq!(rejected[0].0, 7, "the seventh value of the page");
    }

    #[test]
    fn a_malformed_line_is_its_own_rejection_in_whichever_piece_it_starts() {
        let mut lines: Vec<String> = (1..=6).map(signin).collect();
        lines[3] = r#"{"id":"cut off","createdDate"#.into();
        let ndjson = lines.join("\n");
        // Small pieces: the malformed line begins one of them.
        let (events, rejected, count) = import_in_pieces(ndjson.as_bytes(), 100);
        assert!(count >= 3, "{count} pieces");
        assert_eq!(events, 5);
        assert_eq!(rejected, vec![(4, "(record)".to_string())]);
    }

    #[test]
    fn csv_rows_spanning_lines_stay_whole_and_numbered() {
        let mut csv = String::from(
            "\u{feff}Id,CreatedDateTime [UTC],UserPrincipalName,LocationDetails_dynamic,TimeGenerated [UTC]\n",
        );
        for i in 1..=6 {
            let time = if i == 4 { "garbage".to_string() } else { "2021-04-28T14:08:45Z".to_string() };
            csv.push_str(&format!(
                "r{i},{time},a@b.c,\"{{\n  \"\"city\"\": \"\"Haifa\"\"\n}}\",2021-04-28T14:08:45Z\n"
            ));
        }
        let whole = import_bytes(csv.as_bytes(), Format::Auto).unwrap();
        assert_eq!(whole.rejected.len(), 1, "{:?}", whole.rejected);
        let (events, rejected, count) = import_in_pieces(csv.as_bytes(), 120);
        assert!(count >= 3, "{count} pieces");
        assert_eq!(events, whole.events.len());
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            whole.rejected.iter().map(|r| r.record).collect::<Vec<_>>()
        );
    }

    #[test]
    fn halves_keep_the_numbers() {
        let ndjson = (1..=5).map(signin).collect::<Vec<_>>().join("\n");
        let whole = pieces(ndjson.as_bytes(), Format::Auto, 1 << 20).unwrap();
        let (first, second) = whole[0].halves().unwrap();
        assert_eq!((first.number(1), first.number(2), second.number(1), second.number(3)), (1, 2, 3, 5));
        let single = signin(1);
        let one = pieces(single.as_bytes(), Format::Auto, 1 << 20).unwrap();
        assert!(one[0].halves().is_none());
    }

    #[test]
    fn files_with_parts_of_split_records_stay_one_piece() {
        let text = format!("{}\n{}\n", r#"{"Id":"x","PartCount":2,"PartNumber":1}"#, signin(1));
        assert_eq!(pieces(text.as_bytes(), Format::Auto, 10).unwrap().len(), 1);
    }
}
