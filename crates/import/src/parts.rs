//! Large activity records and destinations with a record size limit (a SIEM that takes 3 KB, a
//! queue that takes 64 KB). Signet stores records whole; [`split`] cuts one into parts that
//! each fit, and [`reassemble`] (run by the importer) puts them back together.
//!
//! Every part is a valid activity on its own: it has the record's small fields (`Id`,
//! `CreationTime`, `Operation`, the user, ...) plus `PartNumber` (1-based) and `PartCount`, and
//! carries a piece of the large text fields (`QueryResults`, `Fields`, `Query`, ...), named in
//! `PartFields`. The parts share the record's `Id` and its `CorrelationId` (the `Id` when it had
//! none). Reassembly groups parts by (`Id`, `CorrelationId`), checks that parts 1..=PartCount are
//! all there once, and concatenates the pieces of the `PartFields` in order: the result is the
//! original record.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub const PART_NUMBER: &str = "PartNumber";
pub const PART_COUNT: &str = "PartCount";
/// The names of the fields that were cut (the same list in every part).
pub const PART_FIELDS: &str = "PartFields";

/// Fields never cut: they identify the record and go whole into every part.
const WHOLE: &[&str] =
    &["Id", "CreationTime", "Operation", "CorrelationId", "RecordType", "Workload", "User", "UserId", "UserKey"];
/// Text fields at least this long are cut; shorter ones go whole into every part.
const MIN_CUT: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("record {id}: parts need at least {needed} bytes (the fields that cannot be cut), more than the limit of {limit}")]
    TooSmall { id: String, needed: usize, limit: usize },
    #[error("not an activity record (no Id)")]
    NoId,
}

fn size(value: &Map<String, Value>) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// The JSON length of a string (with quotes and escapes).
fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(usize::MAX, |s| s.len())
}

/// Cuts `record` into parts of at most `limit` bytes of JSON each; a record that fits is
/// returned as it is.
pub fn split(record: &Map<String, Value>, limit: usize) -> Result<Vec<Map<String, Value>>, SplitError> {
    if size(record) <= limit {
        return Ok(vec![record.clone()]);
    }
    let id = record.get("Id").and_then(Value::as_str).ok_or(SplitError::NoId)?.to_string();
    let cut: Vec<(&String, &str)> = record
        .iter()
        .filter(|(k, _)| !WHOLE.contains(&k.as_str()) && ![PART_NUMBER, PART_COUNT, PART_FIELDS].contains(&k.as_str()))
        .filter_map(|(k, v)| v.as_str().filter(|s| s.len() >= MIN_CUT).map(|s| (k, s)))
        .collect();
    let mut base: Map<String, Value> =
        record.iter().filter(|(k, _)| !cut.iter().any(|(c, _)| c == k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    base.entry("CorrelationId").or_insert_with(|| Value::String(id.clone()));
    base.insert(PART_FIELDS.into(), Value::from(cut.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()));
    // What every part carries whatever its pieces: the whole fields, the part numbers.
    let mut probe = base.clone();
    probe.insert(PART_NUMBER.into(), Value::from(u32::MAX));
    probe.insert(PART_COUNT.into(), Value::from(u32::MAX));
    let overhead = size(&probe);
    // A piece costs its field's name, a colon and a comma on top of its text.
    let field_cost = |field: &str| json_len(field) + 2;
    let too_small = || SplitError::TooSmall {
        id: id.clone(),
        needed: overhead + cut.iter().map(|(k, _)| field_cost(k)).max().unwrap_or(0) + 8,
        limit,
    };
    let budget = limit.checked_sub(overhead).ok_or_else(too_small)?;
    let mut parts: Vec<Map<String, Value>> = Vec::new();
    let mut current = base.clone();
    let mut used = 0;
    for (field, text) in &cut {
        let mut rest = *text;
        while !rest.is_empty() {
            let room = budget.saturating_sub(used + field_cost(field));
            let piece = longest_prefix_within(rest, room);
            if piece.is_empty() {
                if used == 0 {
                    // Not even one character fits in an empty part.
                    return Err(too_small());
                }
                parts.push(std::mem::replace(&mut current, base.clone()));
                used = 0;
                continue;
            }
            // Pieces of one field in one part are one string: a field is cut only at part ends.
            debug_assert!(!current.contains_key(field.as_str()));
            current.insert(field.to_string(), Value::String(piece.to_string()));
            used += json_len(piece) + field_cost(field);
            rest = &rest[piece.len()..];
        }
    }
    parts.push(current);
    let count = parts.len();
    for (i, part) in parts.iter_mut().enumerate() {
        part.insert(PART_NUMBER.into(), Value::from(i + 1));
        part.insert(PART_COUNT.into(), Value::from(count));
        debug_assert!(size(part) <= limit, "part {} of {count} is {} bytes", i + 1, size(part));
    }
    Ok(parts)
}

/// The longest prefix of `text`, cut at a character boundary, whose JSON form fits in `room`.
fn longest_prefix_within(text: &str, room: usize) -> &str {
    // A prefix's JSON form is at least as long as its bytes: look no further than `room` bytes.
    let mut end = room.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = &text[..end];
    let bounds: Vec<usize> = window.char_indices().map(|(i, _)| i).skip(1).chain([window.len()]).collect();
    // The JSON length grows with the prefix, so the prefixes that fit come first.
    let fitting = bounds.partition_point(|&b| json_len(&text[..b]) <= room);
    match fitting {
        0 => "",
        n => &text[..bounds[n - 1]],
    }
}

/// A part's problem, by the position of the record in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartError {
    pub index: usize,
    pub field: String,
    pub reason: String,
}

fn part_numbers(record: &Map<String, Value>) -> Option<Result<(u64, u64), String>> {
    let count = record.get(PART_COUNT)?;
    let (Some(count), Some(number)) = (count.as_u64(), record.get(PART_NUMBER).and_then(Value::as_u64)) else {
        return Some(Err("PartNumber and PartCount must be whole numbers".into()));
    };
    if count == 0 || number == 0 || number > count || count > 100_000 {
        return Some(Err(format!("part {number} of {count} is not a part number between 1 and the count")));
    }
    Some(Ok((number, count)))
}

/// Where a part is: (index in the input, part number, part count).
type PartAt = (usize, u64, u64);

/// Puts split records back together. Takes the records in input order (each `Some(object)`,
/// or `None` for records that are not JSON objects, which pass through); returns, per input
/// position, what to keep there: the record itself, the reassembled record (at its first
/// part's position), or nothing (later parts). Incomplete sets are errors for each of their
/// parts; nothing else is affected.
pub fn reassemble(records: &[Option<Map<String, Value>>]) -> (Vec<Option<Map<String, Value>>>, Vec<PartError>) {
    let mut out: Vec<Option<Map<String, Value>>> = records.to_vec();
    let mut errors = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<PartAt>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let Some(record) = record else { continue };
        match part_numbers(record) {
            None => {}
            Some(Err(reason)) => {
                errors.push(PartError { index, field: PART_NUMBER.into(), reason });
                out[index] = None;
            }
            Some(Ok((1, 1))) => {
                let mut whole = record.clone();
                whole.remove(PART_NUMBER);
                whole.remove(PART_COUNT);
                out[index] = Some(whole);
            }
            Some(Ok((number, count))) => {
                let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                groups.entry((text("Id"), text("CorrelationId"))).or_default().push((index, number, count));
                out[index] = None;
            }
        }
    }
    for ((id, correlation), mut parts) in groups {
        parts.sort_by_key(|(index, number, _)| (*number, *index));
        let count = parts[0].2;
        let numbers: Vec<u64> = parts.iter().map(|p| p.1).collect();
        let complete = parts.iter().all(|p| p.2 == count) && numbers == (1..=count).collect::<Vec<_>>();
        if !complete {
            let missing: Vec<u64> = (1..=count).filter(|n| !numbers.contains(n)).collect();
            let reason = format!(
                "record {id} (CorrelationId {correlation}): parts {missing:?} of {count} missing, or a part repeated; the record is not imported until all its parts are"
            );
            errors.extend(parts.iter().map(|(index, ..)| PartError {
                index: *index,
                field: PART_NUMBER.into(),
                reason: reason.clone(),
            }));
            continue;
        }
        let mut whole = records[parts[0].0].clone().expect("grouped parts are objects");
        let cut: Vec<String> = match whole.get(PART_FIELDS) {
            Some(Value::Array(names)) => names.iter().filter_map(|n| n.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        for field in &cut {
            let joined: String = parts
                .iter()
                .filter_map(|(index, ..)| records[*index].as_ref()?.get(field)?.as_str().map(str::to_string))
                .collect();
            whole.insert(field.clone(), Value::String(joined));
        }
        whole.remove(PART_FIELDS);
        whole.remove(PART_NUMBER);
        whole.remove(PART_COUNT);
        let first = parts[0].0;
        out[first] = Some(whole);
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn record(results: &str, query: &str) -> Map<String, Value> {
        let value = json!({
            "Id": "r-1", "CreationTime": "2026-11-20T10:00:00Z", "Operation": "RetrieveMultiple",
            "User": "ann@contoso.com", "EntityName": "account", "Query": query, "QueryResults": results,
        });
        value.as_object().unwrap().clone()
    }

    fn round_trip(original: &Map<String, Value>, limit: usize) {
        let parts = split(original, limit).unwrap();
        for part in &parts {
            assert!(size(part) <= limit, "{} > {limit}", size(part));
            assert_eq!(part["Id"], original["Id"]);
        }
        let input: Vec<Option<Map<String, Value>>> = parts.into_iter().rev().map(Some).collect();
        let (out, errors) = reassemble(&input);
        assert!(errors.is_empty(), "{errors:?}");
        let kept: Vec<&Map<String, Value>> = out.iter().flatten().collect();
        assert_eq!(kept.len(), 1);
        let mut expected = original.clone();
        expected.entry("CorrelationId").or_insert_with(|| original["Id"].clone());
        if size(original) <= limit {
            expected = original.clone();
        }
        assert_eq!(kept[0], &expected);
    }

    #[test]
    fn a_large_grid_view_splits_into_3_kb_parts_and_comes_back_whole() {
        let ids: Vec<String> = (0..400).map(|i| format!("{i:08}-0000-4000-8000-000000000000")).collect();
        let original = record(&ids.join(","), &"<fetch><entity name=\"account\"/></fetch>".repeat(20));
        let parts = split(&original, 3072).unwrap();
        assert!(parts.len() > 4, "{} parts", parts.len());
        assert_eq!(parts[0]["PartNumber"], 1);
        assert_eq!(parts[0]["PartCount"], parts.len());
        assert_eq!(parts[1]["CorrelationId"], "r-1", "parts share a CorrelationId");
        round_trip(&original, 3072);
    }

    #[test]
    fn missing_parts_are_reported_and_other_records_kept() {
        let original = record(&"x".repeat(5000), "q");
        let mut parts = split(&original, 1024).unwrap();
        parts.remove(1);
        let other = record("small", "q");
        let mut input: Vec<Option<Map<String, Value>>> = parts.into_iter().map(Some).collect();
        input.push(Some(other.clone()));
        let (out, errors) = reassemble(&input);
        assert_eq!(errors.len(), input.len() - 1, "every part of the broken set is reported");
        assert!(errors[0].reason.contains("parts [2]"), "{}", errors[0].reason);
        assert_eq!(out.iter().flatten().collect::<Vec<_>>(), vec![&other]);
    }

    #[test]
    fn a_record_whose_fixed_fields_exceed_the_limit_cannot_be_split() {
        let mut original = record(&"x".repeat(5000), "q");
        original.insert("User".into(), Value::String("u".repeat(2000)));
        assert!(matches!(split(&original, 1024), Err(SplitError::TooSmall { .. })));
    }

    proptest! {
        #[test]
        fn split_then_reassemble_is_the_identity(results in "[a-z0-9,é😀\"\\\\]{0,3000}", query in ".{0,600}", limit in 700usize..4000) {
            round_trip(&record(&results, &query), limit);
        }
    }
}
