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
macro_rules! read_members {
    ($scanned:expr, $object:expr, $into:ident, { $($bit:literal $name:literal => $field:ident = $read:expr),* $(,)? }) => {{
        let mut seen = 0u64;
        for (key, at) in $scanned.members($object)? {
            match key? {
                $($name => {
                    if seen & (1u64 << $bit) != 0 {
                        return None;
                    }
                    seen |= 1u64 << $bit;
                    $into.$field = ($read)(at)?;
                })*
                _ => {}
            }
        }
    }};
}
pub(crate) use read_members;

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
