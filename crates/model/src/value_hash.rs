//! The value hash of a JSON record ([`content_hash`]), and the same pass recording where the
//! values are (`scan`, the fast path of sign-ins: `crate::tape`).

use crate::json::legacy_content_hash;

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

/// Where the first byte that ends a string's plain run is: a quote, a backslash or a control
/// character (below 0x20). Most of a record's bytes are in its strings, most strings short:
/// sixteen bytes at a time with SSE2 (part of every x86-64), the rest eight at a time.
fn plain_run(bytes: &[u8]) -> Option<usize> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..at + 16) {
        if let Some(found) = sse2_stop(chunk.try_into().expect("sixteen bytes")) {
            return Some(at + found);
        }
        at += 16;
    }
    swar_plain_run(&bytes[at..]).map(|found| at + found)
}

/// The first stop of [`plain_run`] among sixteen bytes.
#[cfg(target_arch = "x86_64")]
fn sse2_stop(chunk: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline; the load reads the sixteen bytes of `chunk`
    // (unaligned loads allowed).
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // min(v, 0x1f) == v exactly for the bytes up to 0x1f (unsigned).
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`plain_run`] eight bytes at a time in one pass. For each test a byte `b` of a word `w` is
/// flagged by `(x - 0x01..01) & !x & 0x80..80` (`x = w ^ '"'`, `w ^ '\\'`) or `(w - 0x20..20) &
/// !w & 0x80..80`: a borrow only carries into bytes above a flagged one, so the lowest flag is
/// exact.
fn swar_plain_run(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let stops = |w: u64| {
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let found = stops(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = chunks.remainder();
    let mut tail = [b'a'; 8];
    tail[..rest.len()].copy_from_slice(rest);
    match stops(u64::from_le_bytes(tail)) {
        0 => None,
        found => Some(at + found.trailing_zeros() as usize / 8),
    }
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
        let first = self.plain_end(start)?;
        if self.json[first] == b'"' {
            self.at = first + 1;
            self.escaped = false;
            return Some(xxhash_rust::xxh3::xxh3_64_with_seed(&self.json[start..first], 1));
        }
        self.escaped = true;
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.json[start..first]);
        let mut at = self.escape(first)?;
        loop {
            let next = self.plain_end(at)?;
            self.scratch.extend_from_slice(&self.json[at..next]);
            if self.json[next] == b'"' {
                self.at = next + 1;
                return Some(xxhash_rust::xxh3::xxh3_64_with_seed(&self.scratch, 1));
            }
            at = self.escape(next)?;
        }
    }

    /// The position of the quote or backslash that ends the plain run of a string's text at
    /// `from`. Strict (with a tape), a control character there makes the text not JSON, as
    /// serde_json reads it; otherwise it is part of the run.
    fn plain_end(&self, from: usize) -> Option<usize> {
        let mut at = from;
        loop {
            let stop = at + plain_run(self.json.get(at..)?)?;
            if self.json[stop] >= 0x20 {
                return Some(stop);
            }
            if self.tape.is_some() {
                return None;
            }
            at = stop + 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_a_string_are_hashed_leniently_and_refused_strictly() {
        for text in ["\"a\u{1}b\"", "\"a\u{1}\\nb\u{1f}\"", "{\"k\u{0}\":\"\n\"}"] {
            assert_eq!(scan(text, &mut Vec::new()), None, "{text:?}");
            assert!(serde_json::from_str::<serde_json::Value>(text).is_err(), "{text:?}");
        }
        let seed_one = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64_with_seed(bytes, 1);
        assert_eq!(content_hash(b"\"a\x01b\""), seed_one(b"a\x01b"));
        assert_eq!(content_hash(b"\"a\x01\\nb\x1f\""), seed_one(b"a\x01\nb\x1f"));
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| [b' ', b'~', 0x7f, 0x80, 0xff, b'a', b'!', b'#'][i % 8]).collect();
            assert_eq!(plain_run(&clean), None, "{clean:?}");
            for at in 0..len {
                for stop in [0x00, 0x01, 0x0a, 0x1f, b'"', b'\\'] {
                    let mut bytes = clean.clone();
                    bytes[at] = stop;
                    // A second stop after the first must not move it.
                    if at + 1 < len {
                        bytes[at + 1] = [b'"', 0x00][at % 2];
                    }
                    assert_eq!(plain_run(&bytes), Some(at), "{bytes:?}");
                }
            }
        }
    }
}
