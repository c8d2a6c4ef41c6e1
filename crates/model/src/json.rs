//! JSON helpers: lenient scalar deserialisers (exports write numbers as strings, booleans as
//! "True", nested objects as JSON inside strings) and the content hash.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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

/// Content hash of a record: a hash of the JSON *value* it holds, so that two serialisations
/// of one record are duplicates, not revisions. Ignored: whitespace, the order of an
/// object's members, how a string is escaped (`"\u00e9"` is `"é"`, `"\/"` is `"/"`) and how a
/// number is written (`1`, `1.0` and `1e0` are one number, `47.60` is `47.6`). Array order,
/// every key and every value count. Definition (for a third party; `docs/trust.md`):
///
/// - string: xxh3-64 of its decoded UTF-8 bytes, seed 1 (keys are strings too);
/// - number: an integer (in text, or a fraction-free float) within i64: xxh3-64 of its 8
///   little-endian bytes, seed 2; another float: of its IEEE-754 bits, seed 3; an integer
///   beyond i64: of its text, seed 4;
/// - `true`, `false`, `null`: 5, 6, 7;
/// - array: `h = 8`, then `h = mix(h, element)` for each element in order, then `mix(h, n)`;
/// - object: `mix(9 ^ Σ mix(key, value), n)`, the sum wrapping at 2^64 (order-free);
/// - `mix(a, b)`: xxh3-64 of the 16 little-endian bytes of `a` then `b`, seed 10.
///
/// Text that is not one JSON value (never the case for a stored record, which was parsed
/// first) is hashed with [`legacy_content_hash`].
pub fn content_hash(json: &[u8]) -> u64 {
    let mut hasher = ValueHasher { json, at: 0, scratch: Vec::new(), tape: None, escaped: false };
    match hasher.value(0, NO_KEY) {
        Some(hash) if hasher.at_end() => hash,
        _ => legacy_content_hash(json),
    }
}

/// What a [`Node`] of a scanned text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Object,
    Array,
    Str,
    Num,
    True,
    False,
    Null,
}

/// One value of a JSON text as [`scan`] read it; its members and elements follow it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// A string value holds escapes.
    pub escaped: bool,
    /// Its key (an object member's) holds escapes.
    pub key_escaped: bool,
    /// Its members or elements are on the tape (not so below [`TAPE_DEPTH`]).
    pub complete: bool,
    /// The value's text, `json[start..end]` (a string's with its quotes).
    pub start: u32,
    pub end: u32,
    /// An object member's key, `json[key_start..key_end]` between its quotes; empty otherwise.
    pub key_start: u32,
    pub key_end: u32,
    /// The index of the node after this value and everything inside it.
    pub next: u32,
}

/// A key span, its escapes, for a value that is not an object member.
const NO_KEY: (u32, u32, bool) = (0, 0, false);

/// Nesting [`scan`] reads; deeper text goes the slow way (serde_json stops at 128).
const SCAN_DEPTH: usize = 100;

/// Values [`scan`] records: the record (0), its members (1), theirs (2) and theirs (3), what a
/// Graph sign-in's fields need. Deeper values are hashed and checked, not recorded.
const TAPE_DEPTH: usize = 3;

/// [`content_hash`] of a JSON text and, in the same pass, where each of its values down to
/// [`TAPE_DEPTH`] is (`tape`, cleared first; the first node is the whole value). `None` unless the text is
/// strictly one JSON value as serde_json reads it: control characters in a string, `\u`
/// escapes of surrogates, numbers JSON does not allow, nesting deeper than [`SCAN_DEPTH`] and
/// text after the value all give `None`, and the caller takes the slow path (serde).
pub(crate) fn scan(json: &str, tape: &mut Vec<Node>) -> Option<u64> {
    tape.clear();
    let json = json.as_bytes();
    if json.len() > u32::MAX as usize {
        return None;
    }
    let mut hasher = ValueHasher { json, at: 0, scratch: Vec::new(), tape: Some(tape), escaped: false };
    let hash = hasher.value(0, NO_KEY)?;
    hasher.at_end().then_some(hash)
}

/// Whether `bytes` hold a control character (below 0x20), eight bytes at a time (most of a
/// record's bytes are in its strings, most strings short): a byte `b` of a word `w` is below
/// 0x20 exactly when the word `(w - 0x20..20) & !w & 0x80..80` is not zero (no early exit).
fn has_control(bytes: &[u8]) -> bool {
    const LOW: u64 = 0x2020_2020_2020_2020;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64| w.wrapping_sub(LOW) & !w & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        found |= below(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
    }
    let mut tail = [0x20u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    found |= below(u64::from_le_bytes(tail));
    found != 0
}

/// A strict JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn strict_number(text: &[u8]) -> bool {
    let digits = |at: usize| text[at.min(text.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = usize::from(text.first() == Some(&b'-'));
    match (text.get(at), digits(at)) {
        (Some(b'0'), 1) => at += 1,
        (Some(b'1'..=b'9'), n) => at += n,
        _ => return false,
    }
    if text.get(at) == Some(&b'.') {
        match digits(at + 1) {
            0 => return false,
            n => at += 1 + n,
        }
    }
    if let Some(b'e' | b'E') = text.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = text.get(at) {
            at += 1;
        }
        match digits(at) {
            0 => return false,
            n => at += n,
        }
    }
    at == text.len()
}

/// Deeper than any record serde accepts (its limit is 128).
const MAX_DEPTH: usize = 512;

fn mix(a: u64, b: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, 10)
}

fn int_hash(n: i64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_le_bytes(), 2)
}

/// One pass over a JSON text computing [`content_hash`]; `None` when it is not JSON.
struct ValueHasher<'a, 't> {
    json: &'a [u8],
    at: usize,
    /// A string's decoded bytes, when it has escapes.
    scratch: Vec<u8>,
    /// Where [`scan`] records the values; it also makes the pass strict (see there).
    tape: Option<&'t mut Vec<Node>>,
    /// The last string read had escapes.
    escaped: bool,
}

impl ValueHasher<'_, '_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.json.get(self.at) {
            self.at += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.json.len()
    }

    fn next_significant(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.json.get(self.at).copied()
    }

    /// The hash of the value that starts at the next significant byte; `key` is its key's span
    /// and escapes when it is an object member (for the tape).
    fn value(&mut self, depth: usize, key: (u32, u32, bool)) -> Option<u64> {
        let first = self.next_significant()?;
        if depth > if self.tape.is_some() { SCAN_DEPTH } else { MAX_DEPTH } {
            return None;
        }
        let tape = match self.tape.as_deref_mut() {
            Some(tape) if depth <= TAPE_DEPTH => tape,
            _ => return self.untaped_value(first, depth),
        };
        let slot = tape.len();
        let kind = match first {
            b'{' => NodeKind::Object,
            b'[' => NodeKind::Array,
            b'"' => NodeKind::Str,
            b't' => NodeKind::True,
            b'f' => NodeKind::False,
            b'n' => NodeKind::Null,
            _ => NodeKind::Num,
        };
        let start = self.at as u32;
        tape.push(Node {
            kind,
            escaped: false,
            key_escaped: key.2,
            complete: depth < TAPE_DEPTH || !matches!(kind, NodeKind::Object | NodeKind::Array),
            start,
            end: start,
            key_start: key.0,
            key_end: key.1,
            next: 0,
        });
        self.escaped = false;
        let hash = self.untaped_value(first, depth)?;
        let (end, escaped) = (self.at as u32, self.escaped);
        let tape = self.tape.as_deref_mut()?;
        let next = tape.len() as u32;
        let node = &mut tape[slot];
        (node.end, node.escaped, node.next) = (end, escaped && kind == NodeKind::Str, next);
        Some(hash)
    }

    fn untaped_value(&mut self, first: u8, depth: usize) -> Option<u64> {
        match first {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string(),
            b't' => self.literal(b"true", 5),
            b'f' => self.literal(b"false", 6),
            b'n' => self.literal(b"null", 7),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, text: &[u8], hash: u64) -> Option<u64> {
        let end = self.at + text.len();
        (self.json.get(self.at..end)? == text).then(|| {
            self.at = end;
            hash
        })
    }

    fn object(&mut self, depth: usize) -> Option<u64> {
        self.at += 1;
        let (mut sum, mut count) = (0u64, 0u64);
        if self.next_significant()? == b'}' {
            self.at += 1;
            return Some(mix(9, 0));
        }
        loop {
            if self.next_significant()? != b'"' {
                return None;
            }
            let key_start = self.at as u32 + 1;
            let key = self.string()?;
            let key_span = (key_start, self.at as u32 - 1, self.escaped);
            if self.next_significant()? != b':' {
                return None;
            }
            self.at += 1;
            let value = self.value(depth + 1, key_span)?;
            sum = sum.wrapping_add(mix(key, value));
            count += 1;
            match self.next_significant()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(mix(9 ^ sum, count));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<u64> {
        self.at += 1;
        let (mut hash, mut count) = (8u64, 0u64);
        if self.next_significant()? == b']' {
            self.at += 1;
            return Some(mix(hash, 0));
        }
        loop {
            hash = mix(hash, self.value(depth + 1, NO_KEY)?);
            count += 1;
            match self.next_significant()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(mix(hash, count));
                }
                _ => return None,
            }
        }
    }

    /// A string literal at `at` (its opening quote), hashed by its decoded bytes.
    fn string(&mut self) -> Option<u64> {
        let start = self.at + 1;
        let rest = self.json.get(start..)?;
        let first = memchr::memchr2(b'"', b'\\', rest)?;
        let strict = self.tape.is_some();
        // serde_json refuses control characters inside a string.
        if strict && has_control(&rest[..first]) {
            return None;
        }
        if rest[first] == b'"' {
            self.at = start + first + 1;
            self.escaped = false;
            return Some(xxhash_rust::xxh3::xxh3_64_with_seed(&rest[..first], 1));
        }
        self.escaped = true;
        self.scratch.clear();
        self.scratch.extend_from_slice(&rest[..first]);
        let mut at = start + first;
        loop {
            let rest = self.json.get(at..)?;
            let next = memchr::memchr2(b'"', b'\\', rest)?;
            if strict && has_control(&rest[..next]) {
                return None;
            }
            self.scratch.extend_from_slice(&rest[..next]);
            at += next;
            if self.json[at] == b'"' {
                self.at = at + 1;
                return Some(xxhash_rust::xxh3::xxh3_64_with_seed(&self.scratch, 1));
            }
            at = self.escape(at)?;
        }
    }

    /// Decodes the escape at `at` (its backslash) into `scratch`; the position after it.
    fn escape(&mut self, at: usize) -> Option<usize> {
        let byte = match *self.json.get(at + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4(at + 2)?;
                let (code, end) = match unit {
                    0xd800..=0xdbff if self.json.get(at + 6..at + 8) == Some(b"\\u") => {
                        let low = self.hex4(at + 8)?;
                        match low {
                            0xdc00..=0xdfff => (0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), at + 12),
                            _ => (0xfffd, at + 6),
                        }
                    }
                    // A lone surrogate: what serde_json and most parsers make of it.
                    0xd800..=0xdfff => (0xfffd, at + 6),
                    _ => (unit, at + 6),
                };
                // serde_json refuses a lone surrogate where it reads a string; scan leaves
                // every one to it.
                if self.tape.is_some() && code == 0xfffd && unit != 0xfffd {
                    return None;
                }
                let c = char::from_u32(code).unwrap_or('\u{fffd}');
                self.scratch.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                return Some(end);
            }
            _ => return None,
        };
        self.scratch.push(byte);
        Some(at + 2)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = std::str::from_utf8(self.json.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.json.get(self.at) {
            self.at += 1;
        }
        if self.tape.is_some() && !strict_number(&self.json[start..self.at]) {
            return None;
        }
        let text = std::str::from_utf8(&self.json[start..self.at]).ok()?;
        let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
        if integer {
            return Some(match text.parse::<i64>() {
                Ok(n) => int_hash(n),
                Err(_)
                    if text.strip_prefix('-').unwrap_or(text).bytes().all(|b| b.is_ascii_digit())
                        && text.len() > 18 =>
                {
                    xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), 4)
                }
                Err(_) => return None,
            });
        }
        let float: f64 = text.parse().ok()?;
        // serde_json refuses a number out of f64's range.
        if self.tape.is_some() && !float.is_finite() {
            return None;
        }
        // Within ±2^63 a fraction-free float is that integer exactly.
        if float.fract() == 0.0 && float.abs() < 9.223_372_036_854_775e18 {
            return Some(int_hash(float as i64));
        }
        Some(xxhash_rust::xxh3::xxh3_64_with_seed(&float.to_bits().to_le_bytes(), 3))
    }
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
    fn control_characters_are_found_wherever_they_are() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| [b' ', b'~', 0x7f, 0x80, 0xff, b'a'][i % 6]).collect();
            assert!(!has_control(&clean), "{clean:?}");
            for at in 0..len {
                for control in [0x00, 0x01, 0x0a, 0x1f] {
                    let mut bytes = clean.clone();
                    bytes[at] = control;
                    assert!(has_control(&bytes), "{bytes:?}");
                }
            }
        }
    }

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
            proptest::sample::select(vec![b'"', b'\\', b' ', b'{', b'}', b'[', b']', b':', b',', b'1', b'.', b'e', b'-', b'u', b'd', b'8', b'n']),
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
