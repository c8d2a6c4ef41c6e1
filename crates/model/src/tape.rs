//! Reading a record from the values [`crate::json::scan`] found while hashing it, instead of
//! parsing it a second time with serde.
//!
//! Every read gives exactly what the serde deserialisers of [`crate::json`] give for that
//! value, or `None`: the record then goes the slow way (serde, with the field named in its
//! error). Common values (plain strings, integers, booleans, null) are read here; anything else
//! (escapes, numbers written as strings, JSON inside strings) is read by the same serde
//! deserialiser, over that value's text alone.

use std::borrow::Cow;

use serde_json::de::StrRead;

use crate::json::{Node, NodeKind};

/// A scanned JSON text and its tape.
pub(crate) struct Scanned<'a, 't> {
    pub json: &'a str,
    pub tape: &'t [Node],
}

impl<'a, 't> Scanned<'a, 't> {
    pub fn kind(&self, at: usize) -> NodeKind {
        self.tape[at].kind
    }

    fn text(&self, at: usize) -> &'a str {
        let node = &self.tape[at];
        &self.json[node.start as usize..node.end as usize]
    }

    /// A plain string's text (no escapes), without its quotes.
    fn plain(&self, at: usize) -> Option<&'a str> {
        let node = &self.tape[at];
        (node.kind == NodeKind::Str && !node.escaped)
            .then(|| &self.json[node.start as usize + 1..node.end as usize - 1])
    }

    /// The members of the object at `at` as (key, value's node); a key with escapes is `None`
    /// (it may spell a known field, so the caller leaves the record to serde).
    /// `None` too when they are nested too deep to be on the tape.
    pub fn members(&self, at: usize) -> Option<impl Iterator<Item = (Option<&'a str>, usize)> + use<'a, 't>> {
        (self.kind(at) == NodeKind::Object && self.tape[at].complete).then(|| self.children(at))
    }

    /// The elements of the array at `at`, as node indexes (`None` as for [`Scanned::members`]).
    pub fn elements(&self, at: usize) -> Option<impl Iterator<Item = usize> + use<'a, 't>> {
        (self.kind(at) == NodeKind::Array && self.tape[at].complete).then(|| self.children(at).map(|(_, at)| at))
    }

    fn children(&self, at: usize) -> impl Iterator<Item = (Option<&'a str>, usize)> + use<'a, 't> {
        let (tape, json) = (self.tape, self.json);
        let end = tape[at].next as usize;
        let mut next = at + 1;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let at = next;
            let node = &tape[at];
            next = node.next as usize;
            let key = (!node.key_escaped).then(|| &json[node.key_start as usize..node.key_end as usize]);
            Some((key, at))
        })
    }

    /// The value read by a serde deserialiser over its own text.
    pub fn exact<T>(
        &self,
        at: usize,
        read: impl FnOnce(&mut serde_json::Deserializer<StrRead<'a>>) -> serde_json::Result<T>,
    ) -> Option<T> {
        let mut de = serde_json::Deserializer::from_str(self.text(at));
        let value = read(&mut de).ok()?;
        de.end().ok()?;
        Some(value)
    }

    /// As [`crate::json::opt_string`]; a plain string is borrowed from the text.
    pub fn string(&self, at: usize) -> Option<Option<Cow<'a, str>>> {
        if let Some(text) = self.plain(at) {
            return Some((!text.is_empty()).then_some(Cow::Borrowed(text)));
        }
        match self.kind(at) {
            NodeKind::Null => Some(None),
            _ => self.exact(at, |de| crate::json::opt_text(de)),
        }
    }

    /// As [`crate::json::opt_i64`].
    pub fn int(&self, at: usize) -> Option<Option<i64>> {
        match self.kind(at) {
            NodeKind::Null => Some(None),
            NodeKind::Num => match self.text(at).parse::<i64>() {
                Ok(n) => Some(Some(n)),
                Err(_) => self.exact(at, |de| crate::json::opt_i64(de)),
            },
            _ => self.exact(at, |de| crate::json::opt_i64(de)),
        }
    }

    /// As [`crate::json::opt_bool`].
    pub fn boolean(&self, at: usize) -> Option<Option<bool>> {
        match self.kind(at) {
            NodeKind::True => Some(Some(true)),
            NodeKind::False => Some(Some(false)),
            NodeKind::Null => Some(None),
            _ => self.exact(at, |de| crate::json::opt_bool(de)),
        }
    }

    /// As [`crate::json::opt_f64`] (always through serde_json's own number parsing).
    pub fn float(&self, at: usize) -> Option<Option<f64>> {
        match self.kind(at) {
            NodeKind::Null => Some(None),
            _ => self.exact(at, |de| crate::json::opt_f64(de)),
        }
    }

    /// As [`crate::json::string_list`]; plain strings are borrowed from the text.
    pub fn list(&self, at: usize) -> Option<Vec<Cow<'a, str>>> {
        if self.kind(at) == NodeKind::Null {
            return Some(Vec::new());
        }
        if let Some(elements) = self.elements(at) {
            let mut out = Vec::new();
            for element in elements {
                match (self.kind(element), self.plain(element)) {
                    (NodeKind::Null, _) => {}
                    (_, Some(text)) if !text.is_empty() => out.push(Cow::Borrowed(text)),
                    (_, Some(_)) => {}
                    _ => return self.exact(at, |de| crate::json::text_list(de)),
                }
            }
            return Some(out);
        }
        self.exact(at, |de| crate::json::text_list(de))
    }
}

/// Reads the members of a scanned object into a struct's fields, as serde's derived
/// `Deserialize` with `#[serde(default)]` would: unknown members are skipped, and a known one
/// that comes twice leaves the record to serde (which takes the last, through a generic value).
/// Each arm: a distinct bit (< 64), the member's name, the field of `$into`, how to read it.
///
/// A key finds its arm by its [`key_print`] (one integer compared per arm, the name's bytes
/// once): a `match` on the names compared the key's bytes with every name of its length, a
/// `memcmp` call each (about 1.5 % of the HTTP threads' samples; docs/benchmarks.md run 43).
macro_rules! read_members {
    ($scanned:expr, $object:expr, $into:ident, { $($bit:literal $name:literal => $field:ident = $read:expr),* $(,)? }) => {{
        const {
            assert!(
                $crate::tape::all_distinct(&[$($crate::tape::key_print($name.as_bytes())),*]),
                "two member names with one key print"
            )
        };
        let mut seen = 0u64;
        'members: for (key, at) in $scanned.members($object)? {
            let key = key?.as_bytes();
            let print = $crate::tape::print_of(key);
            $(
                if print == const { $crate::tape::key_print($name.as_bytes()) }
                    && $crate::tape::is_name(key, &const { $crate::tape::name_bytes::<{ $name.len() }>($name) })
                {
                    if seen & (1u64 << $bit) != 0 {
                        return None;
                    }
                    seen |= 1u64 << $bit;
                    $into.$field = ($read)(at)?;
                    continue 'members;
                }
            )*
        }
    }};
}
pub(crate) use read_members;

/// A member name's print for [`read_members`]: its length, its first and its last eight bytes
/// (all of them when shorter). The names one reader matches differ in it (checked when
/// compiled); a key with the print of a name is then compared with that name alone.
pub(crate) const fn key_print(name: &[u8]) -> u64 {
    let n = name.len();
    let (mut first, mut last, mut i) = (0u64, 0u64, 0);
    while i < 8 && i < n {
        first |= (name[i] as u64) << (8 * i);
        last |= (name[n - 1 - i] as u64) << (8 * i);
        i += 1;
    }
    mix_print(first, last, n)
}

const fn mix_print(first: u64, last: u64, len: usize) -> u64 {
    first ^ last.rotate_left(31) ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// [`key_print`] at run time: two loads for a key of eight bytes or more.
#[inline(always)]
pub(crate) fn print_of(key: &[u8]) -> u64 {
    match (key.first_chunk::<8>(), key.last_chunk::<8>()) {
        (Some(first), Some(last)) => mix_print(u64::from_le_bytes(*first), u64::from_be_bytes(*last), key.len()),
        _ => key_print(key),
    }
}

/// Whether no two prints are the same.
pub(crate) const fn all_distinct(prints: &[u64]) -> bool {
    let mut i = 0;
    while i < prints.len() {
        let mut j = i + 1;
        while j < prints.len() {
            if prints[i] == prints[j] {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// A name's bytes as an array, so that [`is_name`] compares a known number of bytes (inline
/// loads rather than a `memcmp` call).
pub(crate) const fn name_bytes<const N: usize>(name: &str) -> [u8; N] {
    let (bytes, mut out, mut i) = (name.as_bytes(), [0u8; N], 0);
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[inline(always)]
pub(crate) fn is_name<const N: usize>(key: &[u8], name: &[u8; N]) -> bool {
    key == name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned<T>(json: &str, read: impl FnOnce(&Scanned) -> T) -> T {
        let mut tape = Vec::new();
        crate::json::scan(json, &mut tape).expect("scans");
        read(&Scanned { json, tape: &tape })
    }

    #[test]
    fn each_read_gives_what_the_serde_deserialiser_gives() {
        let values = [
            r#""text""#,
            r#""""#,
            r#""esc\u00e9\"aped""#,
            "null",
            "true",
            "false",
            "0",
            "-0",
            "17",
            "-17",
            "18446744073709551615",
            "1.0",
            "1.5",
            "2e3",
            r#""42""#,
            r#"" 42 ""#,
            r#""True""#,
            r#""a, b""#,
            r#""[\"x\",\"y\"]""#,
            r#"["a","","b",null]"#,
            r#"["a",1,true,{"k":"v"}]"#,
            r#"{"k":[1,2]}"#,
            "[]",
            "{}",
        ];
        macro_rules! serde {
            ($text:expr, $read:path) => {
                $read(&mut serde_json::Deserializer::from_str($text)).ok()
            };
        }
        for text in values {
            let string = scanned(text, |s| s.string(0).map(|s| s.map(Cow::into_owned)));
            assert_eq!(string, serde!(text, crate::json::opt_string), "string {text}");
            assert_eq!(scanned(text, |s| s.int(0)), serde!(text, crate::json::opt_i64), "int {text}");
            assert_eq!(scanned(text, |s| s.boolean(0)), serde!(text, crate::json::opt_bool), "bool {text}");
            assert_eq!(scanned(text, |s| s.float(0)), serde!(text, crate::json::opt_f64), "float {text}");
            let list = scanned(text, |s| s.list(0).map(|l| l.into_iter().map(Cow::into_owned).collect::<Vec<_>>()));
            assert_eq!(list, serde!(text, crate::json::string_list), "list {text}");
        }
    }

    #[test]
    fn a_key_print_at_run_time_is_the_compiled_one_and_tells_names_apart() {
        let names = [
            "",
            "a",
            "id",
            "userAgent",
            "ipAddress",
            "riskEventTypes",
            "riskEventTypes_v2",
            "authenticationRequirement",
        ];
        for name in names {
            assert_eq!(print_of(name.as_bytes()), key_print(name.as_bytes()), "{name:?}");
        }
        let prints: Vec<u64> = names.iter().map(|n| key_print(n.as_bytes())).collect();
        assert!(all_distinct(&prints));
        assert!(!all_distinct(&[prints[3], prints[4], prints[3]]));
        // Same length, same first and last eight bytes: one print, told apart by `is_name`.
        let (a, b) = ("userPrincipal__Name", "userPrinXipal__Name");
        assert_eq!(key_print(a.as_bytes()), key_print(b.as_bytes()));
        assert!(is_name(a.as_bytes(), &name_bytes::<19>(a)) && !is_name(b.as_bytes(), &name_bytes::<19>(a)));
        // A member whose name shares a known one's print but is not it is skipped, as unknown.
        #[derive(Default)]
        struct Two<'a> {
            agent: Option<Cow<'a, str>>,
            other: Option<Cow<'a, str>>,
        }
        let read = |json: &str| {
            scanned(json, |s| {
                let mut r = Two::default();
                (|| {
                    read_members!(s, 0, r, { 0 "userPrincipal__Name" => agent = |at| s.string(at), 1 "id" => other = |at| s.string(at) });
                    Some(())
                })()?;
                Some((r.agent.map(Cow::into_owned), r.other.map(Cow::into_owned)))
            })
        };
        assert_eq!(read(r#"{"userPrinXipal__Name":"x","id":"y"}"#), Some((None, Some("y".into()))));
        assert_eq!(read(r#"{"userPrincipal__Name":"x","id":"y"}"#), Some((Some("x".into()), Some("y".into()))));
        assert_eq!(read(r#"{"id":"y","id":"z"}"#), None, "a member twice goes to serde");
    }

    #[test]
    fn members_come_in_order_with_their_keys() {
        let json = r#"{"a":1,"b":{"c":[1,2]},"d\u0065":null,"e":"x"}"#;
        let keys = scanned(json, |s| {
            s.members(0).unwrap().map(|(k, at)| (k.map(str::to_owned), s.kind(at))).collect::<Vec<_>>()
        });
        assert_eq!(
            keys,
            vec![
                (Some("a".to_owned()), NodeKind::Num),
                (Some("b".to_owned()), NodeKind::Object),
                (None, NodeKind::Null),
                (Some("e".to_owned()), NodeKind::Str),
            ]
        );
        assert!(scanned(json, |s| s.elements(0).is_none()));
        // Below the tape's depth an object's members are not there to read.
        let deep = r#"{"a":{"b":{"c":{"d":1}}}}"#;
        assert!(scanned(deep, |s| s.members(3).is_none() && s.members(2).unwrap().count() == 1));
    }
}
