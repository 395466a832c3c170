//! JSON for records and requests: decoded by serde_json, checked as UTF-8 once and parsed as
//! text; encoded by sonic-rs.
//!
//! Encoding, serde_json escapes strings a byte at a time through a table (more than half of an
//! envelope's encoding, and not something its `Formatter` can replace); sonic-rs' serializer scans
//! 32 bytes at a time with SIMD and writes the same bytes for the same values — checked here, over
//! every shared Meta fixture (`tests/fixtures.rs`) and over the Genesys messages transform makes of
//! them (the stages' `transform_fixtures`). Both go through the types' `Serialize`; the one thing
//! sonic-rs cannot write is serde_json's `RawValue` (serde_json's own private token), which no
//! encoded type holds: it is only read (`meta::webhook`).
//!
//! Decoding, `serde_json::from_slice` checks every string it reads as UTF-8 on its own, one call
//! per string; JSON is UTF-8 as a whole (RFC 8259), so checking the whole input once and parsing it
//! as `&str` accepts and refuses the same documents for fewer instructions (an envelope's decode
//! took about a sixth fewer under callgrind, docs/benchmarks.md).

use serde::de::Error as _;
use serde::{Deserialize, Serialize};

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

/// Encodes `value` as JSON onto the end of `out`.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> sonic_rs::Result<()> {
    sonic_rs::to_writer(out, value)
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
    fn the_encoder_writes_what_serde_json_writes() {
        let mut long = "ünïcødé 👍 and plain ASCII, ".repeat(40);
        long.push('"');
        let strings: Vec<String> = [
            "",
            "plain",
            "quote \" and backslash \\ and slash /",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} controls",
            "\u{7f} delete, \u{2028} line and \u{2029} paragraph separators",
            "caf\u{e9} \u{1F600} 中文 العربية",
            "exactly thirty-two bytes long!!!",
            "thirty-one bytes, one escape: \n",
            &long,
        ]
        .into_iter()
        .map(str::to_owned)
        .chain((0u8..0x80).map(|b| format!("{}x{}", "a".repeat(usize::from(b % 40)), b as char)))
        .collect();
        let value = serde_json::json!({
            "strings": strings,
            "numbers": [0, -1, u64::MAX, i64::MIN, 1.5, -0.25, 37.483307, 1e-7],
            "nested": { "a": [null, true, false, {}] },
        });
        let mut ours = Vec::new();
        to_writer(&mut ours, &value).expect("encodes");
        assert_eq!(
            String::from_utf8(ours).expect("UTF-8"),
            serde_json::to_string(&value).expect("encodes")
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
