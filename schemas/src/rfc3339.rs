//! Reading the RFC 3339 timestamps of an [`Envelope`](crate::Envelope).
//!
//! chrono's own `Deserialize` goes through its relaxed `FromStr` and its generic format parser:
//! 333 ns per timestamp on the benchmark machine, against 63 ns for `parse_from_rfc3339` — and an
//! envelope carries two, decoded by every stage. What wabaflow writes (chrono's `Serialize`) is
//! strict RFC 3339, so that parser comes first; text it refuses still gets the relaxed parse
//! (an offset without its colon, or after a space, as foreign producers may write it).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserializer, de};

/// For `#[serde(deserialize_with = "rfc3339::time")]`.
pub fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(Rfc3339)
}

/// For an optional timestamp (`null` or absent is `None`).
pub fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    deserializer.deserialize_option(Optional)
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| text.parse())
        .ok()
}

struct Rfc3339;

impl de::Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

struct Optional;

impl<'de> de::Visitor<'de> for Optional {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        time(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Times {
        #[serde(deserialize_with = "time")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "optional")]
        maybe: Option<DateTime<Utc>>,
    }

    fn read(json: &str) -> Result<Times, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn what_chrono_writes_reads_back_unchanged() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 23, 18, 45, 20)
            .single()
            .expect("a time")
            + chrono::Duration::nanoseconds(123_456_789);
        let written = serde_json::to_string(&at).expect("encodes");
        let times = read(&format!(r#"{{"at": {written}, "maybe": {written}}}"#)).expect("reads");
        assert_eq!(times.at, at);
        assert_eq!(times.maybe, Some(at));
    }

    #[test]
    fn offsets_and_the_relaxed_form_are_read_as_chrono_reads_them() {
        for text in [
            "2026-11-23T20:45:20+02:00",
            "2026-11-23T18:45:20.5Z",
            "2026-11-23 18:45:20Z",
            "2026-11-23T20:45:20+0200",
            "2026-11-23T20:45:20 +02:00",
        ] {
            let times = read(&format!(r#"{{"at": "{text}"}}"#)).expect(text);
            let chrono: DateTime<Utc> = text.parse().expect(text);
            assert_eq!(times.at, chrono, "{text}");
            assert_eq!(times.maybe, None);
        }
        let times = read(r#"{"at": "2026-11-23T18:45:20Z", "maybe": null}"#).expect("reads");
        assert_eq!(
            times.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "2026-11-23T18:45:20Z"
        );
        assert_eq!(times.maybe, None);
    }

    #[test]
    fn anything_else_is_refused_with_the_text() {
        for json in [
            r#"{"at": "yesterday"}"#,
            r#"{"at": "2026-13-23T18:45:20Z"}"#,
            r#"{"at": 1767225600}"#,
            r#"{"at": "2026-11-23T18:45:20Z", "maybe": "soon"}"#,
        ] {
            let err = read(json).expect_err(json).to_string();
            assert!(
                err.contains("RFC 3339") || err.contains("invalid type"),
                "{json}: {err}"
            );
        }
        let err = read(r#"{"at": "yesterday"}"#)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("\"yesterday\""), "{err}");
    }
}
