//! Opaque keyset cursors: `(event time, id)` of the last row of a page, base64url-encoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{QueryError, Result};

pub fn encode(time_us: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{time_us}:{id}"))
}

pub fn decode(cursor: &str) -> Result<(i64, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|e| QueryError::InvalidCursor(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| QueryError::InvalidCursor("not UTF-8".into()))?;
    let (time, id) = text.split_once(':').ok_or_else(|| QueryError::InvalidCursor("malformed".into()))?;
    let time = time.parse().map_err(|_| QueryError::InvalidCursor("malformed time".into()))?;
    Ok((time, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(time in any::<i64>(), id in ".{0,40}") {
            prop_assert_eq!(decode(&encode(time, &id)).unwrap(), (time, id));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(decode("!!!").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("nocolon")).is_err());
    }
}
