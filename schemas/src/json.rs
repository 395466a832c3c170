//! Decoding JSON from a record's or a request's bytes: checked as UTF-8 once, then parsed as text.
//!
//! `serde_json::from_slice` checks every string it reads as UTF-8 on its own, one call per string;
//! JSON is UTF-8 as a whole (RFC 8259), so checking the whole input once and parsing it as `&str`
//! accepts and refuses the same documents for fewer instructions (an envelope's decode took about a
//! sixth fewer under callgrind, docs/benchmarks.md).

use serde::Deserialize;
use serde::de::Error as _;

/// Decodes `bytes` as [`serde_json::from_slice`] would; strings may be borrowed from `bytes`.
pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        serde_json::Error::custom(format_args!(
            "invalid UTF-8 at byte {} of the JSON text",
            err.valid_up_to()
        ))
    })?;
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn accepts_and_refuses_what_from_slice_does() {
        let documents: [&[u8]; 8] = [
            b"{\"a\":\"caf\xc3\xa9\",\"b\":[1,2.5,null,true]}",
            b"{\"escaped\":\"\\u00e9\\n\\\"\",\"emoji\":\"\xf0\x9f\x91\x8d\"}",
            b"\"\xff\"",
            b"{\"a\":1}\xfe",
            b"[\"\xc3\"]",
            br#"{"a":}"#,
            b"",
            b"  [ ]  ",
        ];
        let mut accepted = 0;
        for bytes in documents {
            let ours = from_bytes::<Value>(bytes);
            accepted += usize::from(ours.is_ok());
            let theirs = serde_json::from_slice::<Value>(bytes);
            assert_eq!(
                ours.as_ref().ok(),
                theirs.as_ref().ok(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(accepted, 3, "the first two and the last are JSON");
        let invalid = from_bytes::<Value>(b"{\"a\":\"\xff\"}").expect_err("not UTF-8");
        assert!(
            invalid.to_string().contains("invalid UTF-8 at byte 6"),
            "{invalid}"
        );
    }

    #[test]
    fn strings_are_borrowed_from_the_input() {
        #[derive(Deserialize)]
        struct View<'a> {
            name: &'a str,
        }
        let bytes = br#"{"name":"wabaflow"}"#;
        let view: View<'_> = from_bytes(bytes).expect("valid");
        assert_eq!(view.name, "wabaflow");
        assert!(bytes.as_ptr_range().contains(&view.name.as_ptr()));
    }
}
