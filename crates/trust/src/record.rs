//! The canonical form of a stored event: the binary encoding of one record, exactly as a frame
//! of the event log holds it, and the bytes a Merkle leaf hashes (`SHA-256(0x00 || record)`).
//! A third party recomputes it from the fields below; `docs/trust.md` walks through it.
//!
//! ```text
//! u8  kind (1 sign-in, 2 directory audit, 3 activity)
//! u32 revision            (1 = first version of this id)
//! u64 content hash        (xxh3-64 of the minified JSON body)
//! i64 event time          (microseconds UTC)
//! i64 received at         (microseconds UTC)
//! u16 org length, org bytes
//! u16 id length,  id bytes
//! u32 body length, body bytes            (Graph-shaped JSON)
//! u32 original length or u32::MAX, bytes (source record, when an importer reshaped it)
//! ```
//! All integers little-endian.

use signet_model::LogKind;

/// One event as the log stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub kind: LogKind,
    pub revision: u32,
    pub content_hash: u64,
    pub time_us: i64,
    pub received_us: i64,
    pub org: String,
    pub id: String,
    /// Shared with the event it came from (an ingest request's events share its body).
    pub body: bytes::Bytes,
    pub original: Option<Vec<u8>>,
}

impl LogRecord {
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + 8
            + 8
            + 8
            + 2
            + self.org.len()
            + 2
            + self.id.len()
            + 4
            + self.body.len()
            + 4
            + self.original.as_ref().map_or(0, Vec::len)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(self.org.len() <= u16::MAX as usize && self.id.len() <= u16::MAX as usize);
        out.push(self.kind.code());
        out.extend_from_slice(&self.revision.to_le_bytes());
        out.extend_from_slice(&self.content_hash.to_le_bytes());
        out.extend_from_slice(&self.time_us.to_le_bytes());
        out.extend_from_slice(&self.received_us.to_le_bytes());
        out.extend_from_slice(&(self.org.len() as u16).to_le_bytes());
        out.extend_from_slice(self.org.as_bytes());
        out.extend_from_slice(&(self.id.len() as u16).to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        match &self.original {
            Some(original) => {
                out.extend_from_slice(&(original.len() as u32).to_le_bytes());
                out.extend_from_slice(original);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }

    /// Decodes one record from the front of `input`, returning it and the bytes consumed.
    pub fn decode(input: &[u8]) -> Result<(LogRecord, usize), String> {
        let mut r = Reader { input, at: 0 };
        let kind_code = r.take(1)?[0];
        let kind = LogKind::from_code(kind_code).ok_or_else(|| format!("unknown kind code {kind_code}"))?;
        let revision = u32::from_le_bytes(r.array()?);
        let content_hash = u64::from_le_bytes(r.array()?);
        let time_us = i64::from_le_bytes(r.array()?);
        let received_us = i64::from_le_bytes(r.array()?);
        let org_len = u16::from_le_bytes(r.array()?) as usize;
        let org = r.text(org_len)?;
        let id_len = u16::from_le_bytes(r.array()?) as usize;
        let id = r.text(id_len)?;
        let body_len = u32::from_le_bytes(r.array()?) as usize;
        // From a vector, so that `Vec::from` gives it back without a copy.
        let body = bytes::Bytes::from(r.take(body_len)?.to_vec());
        let original_len = u32::from_le_bytes(r.array()?);
        let original = if original_len == u32::MAX { None } else { Some(r.take(original_len as usize)?.to_vec()) };
        let record = LogRecord { kind, revision, content_hash, time_us, received_us, org, id, body, original };
        Ok((record, r.at))
    }
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.input.len()).ok_or("record truncated")?;
        let slice = &self.input[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn text(&mut self, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "text field is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(
            revision in 1u32..10, hash in any::<u64>(), time in any::<i64>(), org in "[a-z]{1,10}", id in ".{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            original in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
        ) {
            let record = LogRecord { kind: LogKind::Activity, revision, content_hash: hash, time_us: time, received_us: -time / 2, org, id, body: body.into(), original };
            let mut buf = Vec::new();
            record.encode(&mut buf);
            prop_assert_eq!(buf.len(), record.encoded_len());
            let (back, used) = LogRecord::decode(&buf).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(back, record);
        }

        #[test]
        fn truncated_input_is_an_error(cut in 0usize..40) {
            let record = LogRecord { kind: LogKind::SignIn, revision: 1, content_hash: 1, time_us: 1, received_us: 1, org: "o".into(), id: "i".into(), body: bytes::Bytes::from_static(b"{}"), original: None };
            let mut buf = Vec::new();
            record.encode(&mut buf);
            let cut = cut.min(buf.len() - 1);
            prop_assert!(LogRecord::decode(&buf[..cut]).is_err());
        }
    }
}
