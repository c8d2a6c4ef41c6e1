//! RFC 4180 CSV output that spreadsheets cannot be tricked with: a cell starting with
//! `= + - @`, a tab or a carriage return is prefixed with `'` so it is never run as a formula.

/// Appends one cell, quoted when it needs to be.
pub fn push_cell(out: &mut String, value: &str) {
    let neutralise = matches!(value.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
    // A leading byte-order mark would be eaten by readers at the start of a file.
    let needs_quotes = neutralise
        || value.contains([',', '"', '\n', '\r'])
        || value.starts_with([' ', '\u{feff}'])
        || value.ends_with(' ');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    if neutralise {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends one record, CRLF-terminated as RFC 4180 says.
pub fn push_row<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    let cells: Vec<&str> = cells.into_iter().collect();
    if cells.len() == 1 && cells[0].is_empty() {
        // A lone empty cell would be a blank line, which readers skip.
        out.push_str("\"\"\r\n");
        return;
    }
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, cell);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formulas_are_neutralised() {
        let mut out = String::new();
        push_row(&mut out, ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "plain"]);
        assert_eq!(out, "\"'=HYPERLINK(\"\"x\"\")\",\"'+1\",\"'-2\",\"'@SUM(A1)\",\"'\tx\",plain\r\n");
    }

    proptest! {
        /// Every row reads back, with the same cells, through an RFC 4180 reader; formula
        /// cells come back prefixed with a quote.
        #[test]
        fn rows_round_trip(cells in proptest::collection::vec(".{0,12}", 1..6)) {
            let mut out = String::new();
            push_row(&mut out, cells.iter().map(String::as_str));
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(out.as_bytes());
            let record = reader.records().next().unwrap().unwrap();
            let back: Vec<String> = record.iter().map(str::to_string).collect();
            let expected: Vec<String> = cells
                .iter()
                .map(|c| if matches!(c.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')) { format!("'{c}") } else { c.clone() })
                .collect();
            prop_assert_eq!(back, expected);
        }
    }
}
