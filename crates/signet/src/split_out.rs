//! `signet export --max-record-bytes N`: NDJSON for a destination with a record size limit.
//! Lines longer than the limit are activity records cut into parts (`signet_import::parts`);
//! `signet import` puts them back together.

use std::io::{self, Write};

use signet_import::parts;

/// Writes NDJSON through, cutting lines longer than `limit` into parts.
pub struct SplitWriter<W: Write> {
    inner: W,
    limit: usize,
    pending: Vec<u8>,
    /// Records cut, and the parts they made.
    pub split: usize,
    pub parts: usize,
}

impl<W: Write> SplitWriter<W> {
    pub fn new(inner: W, limit: usize) -> SplitWriter<W> {
        SplitWriter { inner, limit, pending: Vec::new(), split: 0, parts: 0 }
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.len() <= self.limit {
            self.inner.write_all(line)?;
            return self.inner.write_all(b"\n");
        }
        let record: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| io::Error::other(format!("a record longer than the limit is not a JSON object: {e}")))?;
        let cut = parts::split(&record, self.limit).map_err(|e| io::Error::other(e.to_string()))?;
        self.split += 1;
        self.parts += cut.len();
        for part in cut {
            serde_json::to_writer(&mut self.inner, &part)?;
            self.inner.write_all(b"\n")?;
        }
        Ok(())
    }
}

impl<W: Write> Write for SplitWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line[..end])?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_become_parts_and_short_ones_pass() {
        let big = serde_json::json!({
            "Id": "r1", "CreationTime": "2026-11-20T10:00:00Z", "Operation": "RetrieveMultiple",
            "QueryResults": "a".repeat(10_000),
        });
        let mut out = SplitWriter::new(Vec::new(), 3072);
        write!(out, "{{\"Id\":\"small\"}}\n{big}\n").unwrap();
        out.flush().unwrap();
        let (split, parts) = (out.split, out.parts);
        let text = String::from_utf8(out.inner).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "{\"Id\":\"small\"}");
        assert_eq!((split, parts, lines.len()), (1, lines.len() - 1, 1 + parts));
        assert!(lines.iter().all(|l| l.len() <= 3072));
        let imported = signet_import::import_bytes(text.as_bytes(), signet_import::Format::Json).unwrap();
        let whole = imported.events.iter().find(|e| e.id == "r1").expect("reassembled");
        assert_eq!(whole.cell("query_results").and_then(|c| c.as_str()).map(str::len), Some(10_000));
    }
}
