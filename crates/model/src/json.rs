//! JSON helpers: lenient scalar deserialisers (exports write numbers as strings, booleans as
//! "True", nested objects as JSON inside strings) and the legacy content hash; the value hash
//! is in [`crate::value_hash`] (re-exported here).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

pub use crate::value_hash::content_hash;
pub(crate) use crate::value_hash::{scan, Node, NodeKind};

/// Calls `visit` with each run of JSON text between whitespace outside string literals, in order.
/// String literals are skipped with `memchr` (most of a record's bytes are in them), which made
/// this several times faster than looking at every byte.
fn significant_runs(json: &[u8], mut visit: impl FnMut(&[u8])) {
    let mut run_start = 0;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = string_end(json, i + 1),
            b' ' | b'\t' | b'\n' | b'\r' => {
                if run_start < i {
                    visit(&json[run_start..i]);
                }
                i += 1;
                run_start = i;
            }
            _ => i += 1,
        }
    }
    if run_start < json.len() {
        visit(&json[run_start..]);
    }
}

/// The position after the quote that closes the string literal whose text starts at `from`, or
/// the end of `json` when it is not closed.
fn string_end(json: &[u8], mut from: usize) -> usize {
    while from < json.len() {
        match memchr::memchr2(b'"', b'\\', &json[from..]) {
            Some(offset) if json[from + offset] == b'"' => return from + offset + 1,
            // A backslash escapes the next byte, whatever it is.
            Some(offset) => from += offset + 2,
            None => return json.len(),
        }
    }
    json.len()
}

/// Removes whitespace outside string literals. Valid JSON in, equivalent valid JSON out.
pub fn minify(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    significant_runs(json, |run| out.extend_from_slice(run));
    out
}

/// The content hash of records stored by builds before the value hash ([`content_hash`]):
/// xxh3-64 of the minified JSON, computed without copying it. Records keep the hash they were
/// stored with, so a record re-sent after an upgrade is compared by this too
/// (`Event::legacy_content_hash`).
pub fn legacy_content_hash(json: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    significant_runs(json, |run| hasher.update(run));
    hasher.digest()
}

struct LenientString;

impl<'de> Visitor<'de> for LenientString {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientString)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(value.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Some(value.to_string()))
    }
}

/// A string; numbers and booleans become their text, objects their JSON, null `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(d.deserialize_any(LenientString)?.filter(|s| !s.is_empty()))
}

struct LenientI64;

impl<'de> Visitor<'de> for LenientI64 {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer, a string holding an integer, or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("expected an integer, found {v}")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<i64>()
            .map(Some)
            .or_else(|_| t.parse::<f64>().map_err(|_| ()).and_then(|f| self.visit_f64::<E>(f).map_err(|_| ())))
            .map_err(|_| E::custom(format!("expected an integer, found {v:?}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientI64)
    }
}

/// An integer, possibly written as a string.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(LenientI64)
}

struct LenientF64;

impl<'de> Visitor<'de> for LenientF64 {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string holding a number, or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<f64>().map(Some).map_err(|_| E::custom(format!("expected a number, found {v:?}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientF64)
    }
}

/// A number, possibly written as a string.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(LenientF64)
}

struct LenientBool;

impl<'de> Visitor<'de> for LenientBool {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, \"true\"/\"false\", 0/1 or null")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match v {
            0 => Ok(Some(false)),
            1 => Ok(Some(true)),
            _ => Err(E::custom(format!("expected a boolean, found {v}"))),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i64(v.min(2) as i64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(E::custom(format!("expected a boolean, found {v:?}"))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientBool)
    }
}

/// A boolean, possibly written as a string ("True") or 0/1.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(LenientBool)
}

struct LenientList;

impl<'de> Visitor<'de> for LenientList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings, a JSON list inside a string, or null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            match item {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) if s.is_empty() => {}
                serde_json::Value::String(s) => out.push(s),
                other => out.push(other.to_string()),
            }
        }
        Ok(out)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(Vec::new());
        }
        if t.starts_with('[') {
            let mut de = serde_json::Deserializer::from_str(t);
            return de.deserialize_any(LenientList).map_err(|e| E::custom(format!("list inside string: {e}")));
        }
        Ok(t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientList)
    }
}

/// As [`opt_string`], into a `Cow` (owned; the fast path of sign-ins borrows instead).
pub fn opt_text<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(opt_string(d)?.map(Cow::Owned))
}

/// As [`string_list`], into `Cow`s (owned).
pub fn text_list<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error> {
    Ok(string_list(d)?.into_iter().map(Cow::Owned).collect())
}

/// A list of strings; also accepts a JSON list inside a string, a comma-separated string, null.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(LenientList)
}

/// Deserialises `T` from either the value itself or a JSON document inside a string
/// (Log Analytics exports write nested objects as strings). Empty strings and null give `None`.
pub fn nested<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => serde_json::from_str(&s).map(Some).map_err(de::Error::custom),
        other => serde_json::from_value(other).map(Some).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn minify_keeps_strings() {
        let text = br#"{ "a" : "x y\" z" ,
            "b": [1, 2] }"#;
        assert_eq!(minify(text), br#"{"a":"x y\" z","b":[1,2]}"#.to_vec());
    }

    #[test]
    fn legacy_hash_is_the_hash_of_the_minified_text() {
        let text = br#"{ "a" : "x y\" z" ,
            "b": [1, 2] }"#;
        assert_eq!(legacy_content_hash(text), xxhash_rust::xxh3::xxh3_64(&minify(text)));
    }

    fn same(a: &str, b: &str) {
        assert_eq!(content_hash(a.as_bytes()), content_hash(b.as_bytes()), "{a} vs {b}");
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(content_hash(a.as_bytes()), content_hash(b.as_bytes()), "{a} vs {b}");
    }

    #[test]
    fn one_value_written_differently_has_one_hash() {
        same(r#"{"a": 1}"#, "{\"a\":1}\n");
        same(r#"{"a":1,"b":{"c":[1,2],"d":null}}"#, r#"{"b":{"d":null,"c":[1,2]},"a":1}"#);
        same(r#"{"s":"caf\u00e9 \/ \"q\""}"#, r#"{"s":"café / \"q\""}"#);
        same(r#"{"e":"\ud83d\ude00"}"#, r#"{"e":"😀"}"#);
        same(r#"{"n":1}"#, r#"{"n":1.0}"#);
        same(r#"{"n":100}"#, r#"{"n":1e2}"#);
        same(r#"{"n":47.60}"#, r#"{"n":47.6}"#);
        same(r#"{"n":-0}"#, r#"{"n":0}"#);
    }

    #[test]
    fn different_values_have_different_hashes() {
        differ(r#"{"a":1}"#, r#"{"a":2}"#);
        differ(r#"{"a":1}"#, r#"{"b":1}"#);
        differ(r#"{"a":"b"}"#, r#"{"b":"a"}"#);
        differ(r#"{"a":1,"b":2}"#, r#"{"a":2,"b":1}"#);
        differ(r#"[1,2]"#, r#"[2,1]"#);
        differ(r#"{"a":[]}"#, r#"{"a":{}}"#);
        differ(r#"{"a":[]}"#, r#"{"a":null}"#);
        differ(r#"{"a":"1"}"#, r#"{"a":1}"#);
        differ(r#"{"a":true}"#, r#"{"a":"true"}"#);
        differ(r#"{"a":[[1],[2]]}"#, r#"{"a":[[1,2]]}"#);
        differ(r#"{"a":{"b":1},"c":2}"#, r#"{"a":{"b":1,"c":2}}"#);
        differ(r#"{"a":12345678901234567890123}"#, r#"{"a":12345678901234567890124}"#);
        differ(r#"{"a":0.1}"#, r#"{"a":0.2}"#);
    }

    #[test]
    fn text_that_is_not_one_value_gets_the_legacy_hash() {
        for text in ["", "{", r#"{"a":}"#, r#"{"a":1} x"#, r#"["\q"]"#, "[1,]", "\"open"] {
            assert_eq!(content_hash(text.as_bytes()), legacy_content_hash(text.as_bytes()), "{text}");
        }
        let deep = "[".repeat(10_000);
        assert_eq!(content_hash(deep.as_bytes()), legacy_content_hash(deep.as_bytes()));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            // Binary fractions: serde_json reads them back exactly (the check of `reversed`).
            any::<i32>().prop_map(|n| serde_json::Value::from(f64::from(n) / 1024.0)),
            "[a-zé\"\\/\n😀 ]{0,8}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The value with every object's members in reverse order, written compactly.
    fn reversed(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::Object(map) => {
                let members: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), reversed(v)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
            serde_json::Value::Array(items) => {
                format!("[{}]", items.iter().map(reversed).collect::<Vec<_>>().join(","))
            }
            // Non-ASCII written as \u escapes, as PowerShell and some shippers do.
            serde_json::Value::String(s) => {
                let mut out = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
                        c => {
                            for unit in c.encode_utf16(&mut [0u16; 2]) {
                                out.push_str(&format!("\\u{unit:04x}"));
                            }
                        }
                    }
                }
                out.push('"');
                out
            }
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn serialisations_of_one_value_hash_alike(value in json_value()) {
            let compact = serde_json::to_string(&value).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let other = reversed(&value);
            let read = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
            prop_assert_eq!(read(&other), read(&compact));
            prop_assert_eq!(content_hash(compact.as_bytes()), content_hash(pretty.as_bytes()));
            prop_assert_eq!(content_hash(compact.as_bytes()), content_hash(other.as_bytes()));
            // The pass that also records the tape hashes alike, and its tape covers the text.
            let mut tape = Vec::new();
            for text in [&compact, &pretty, &other] {
                prop_assert_eq!(scan(text, &mut tape), Some(content_hash(text.as_bytes())));
                prop_assert_eq!(tape[0].next as usize, tape.len());
                prop_assert_eq!(&text[tape[0].start as usize..tape[0].end as usize], text.trim());
            }
        }

        #[test]
        fn different_values_hash_apart(a in json_value(), b in json_value()) {
            prop_assume!(a != b);
            let (a, b) = (serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
            prop_assert_ne!(content_hash(a.as_bytes()), content_hash(b.as_bytes()));
        }

        #[test]
        fn any_bytes_hash_without_panicking(bytes in proptest::collection::vec(
            proptest::sample::select(vec![b'"', b'\\', b' ', b'{', b'}', b'[', b']', b':', b',', b'1', b'.', b'e', b'-', b'u', b'd', b'8', b'n', b'\n', 0x01]),
            0..48,
        )) {
            let hash = content_hash(&bytes);
            // What the strict pass accepts is JSON serde_json reads, with the same hash.
            if let Ok(text) = std::str::from_utf8(&bytes) {
                if let Some(scanned) = scan(text, &mut Vec::new()) {
                    prop_assert_eq!(scanned, hash);
                    prop_assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "{}", text);
                }
            }
        }
    }

    /// The byte-by-byte definition `significant_runs` must match exactly (content hashes are
    /// stored: a different result would turn re-sent events into new revisions).
    fn minify_reference(json: &[u8]) -> Vec<u8> {
        let (mut out, mut in_string, mut escaped) = (Vec::new(), false, false);
        for &b in json {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            } else if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
        out
    }

    proptest! {
        #[test]
        fn minify_matches_the_byte_by_byte_definition(bytes in proptest::collection::vec(
            proptest::sample::select(vec![b'"', b'\\', b' ', b'\n', b'\t', b'\r', b'a', b'{', b':', b'1', 0xc3, 0xa9]),
            0..64,
        )) {
            prop_assert_eq!(minify(&bytes), minify_reference(&bytes));
        }

        #[test]
        fn minify_preserves_meaning(v in proptest::collection::btree_map("[a-z \\\\\"]{0,6}", "[ -~]{0,8}", 0..6)) {
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            let minified = minify(&pretty);
            let back: std::collections::BTreeMap<String, String> = serde_json::from_slice(&minified).unwrap();
            prop_assert_eq!(back, v);
        }
    }
}
