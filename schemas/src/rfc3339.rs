//! Reading and writing the RFC 3339 timestamps of an [`Envelope`](crate::Envelope).
//!
//! chrono's own `Deserialize` goes through its relaxed `FromStr` and its generic format parser:
//! 333 ns per timestamp on the benchmark machine, against 63 ns for `parse_from_rfc3339` — and an
//! envelope carries two, decoded by every stage. What wabaflow writes is strict RFC 3339, so that
//! parser comes first; text it refuses still gets the relaxed parse (an offset without its colon,
//! or after a space, as foreign producers may write it).
//!
//! Writing, chrono's `Serialize` goes through `fmt` a character at a time: 4 % of the transform
//! stage's CPU. [`Rfc3339Text`] writes the same text (chrono's `to_rfc3339_opts(format, true)`)
//! into a buffer on the stack, and the serializers here hand it to serde in one piece.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserializer, Serializer, de};

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

/// For `#[serde(serialize_with = "rfc3339::write")]`: what chrono's `Serialize` writes (as many
/// fraction digits as the time needs: none, 3, 6 or 9).
pub fn write<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    write_as(time, SecondsFormat::AutoSi, serializer)
}

/// For an optional timestamp; pair it with `skip_serializing_if = "Option::is_none"`.
pub fn write_optional<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => write(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// `time` as `to_rfc3339_opts(seconds, true)` writes it.
pub fn write_as<S: Serializer>(
    time: &DateTime<Utc>,
    seconds: SecondsFormat,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match Rfc3339Text::new(time, seconds) {
        Some(text) => serializer.serialize_str(text.as_str()),
        None => serializer.serialize_str(&time.to_rfc3339_opts(seconds, true)),
    }
}

/// A UTC time as RFC 3339 text, `Z` for its offset, in a buffer on the stack.
pub struct Rfc3339Text {
    bytes: [u8; 30],
    len: usize,
}

impl Rfc3339Text {
    /// `None` for a year outside 0–9999, which needs a sign (chrono writes it).
    pub fn new(time: &DateTime<Utc>, seconds: SecondsFormat) -> Option<Self> {
        // The fields of the naive UTC time, read once: each accessor of a `DateTime` first adds
        // its offset (zero here) to the stored time again: more than half the text's cost when it did.
        let time = time.naive_utc();
        let year = u32::try_from(time.year()).ok().filter(|y| *y <= 9999)?;
        let mut text = Self {
            bytes: [0; 30],
            len: 0,
        };
        // A leap second is a nanosecond count past 1e9 in chrono, and second 60 in the text.
        let (nanos, leap) = match time.nanosecond() {
            n if n >= 1_000_000_000 => (n - 1_000_000_000, 1),
            n => (n, 0),
        };
        text.digits(year, 4);
        text.push(b'-');
        text.digits(time.month(), 2);
        text.push(b'-');
        text.digits(time.day(), 2);
        text.push(b'T');
        text.digits(time.hour(), 2);
        text.push(b':');
        text.digits(time.minute(), 2);
        text.push(b':');
        text.digits(time.second() + leap, 2);
        let (fraction, width) = match seconds {
            SecondsFormat::Secs => (0, 0),
            SecondsFormat::Millis => (nanos / 1_000_000, 3),
            SecondsFormat::Micros => (nanos / 1_000, 6),
            SecondsFormat::AutoSi if nanos == 0 => (0, 0),
            SecondsFormat::AutoSi if nanos % 1_000_000 == 0 => (nanos / 1_000_000, 3),
            SecondsFormat::AutoSi if nanos % 1_000 == 0 => (nanos / 1_000, 6),
            _ => (nanos, 9),
        };
        if width > 0 {
            text.push(b'.');
            text.digits(fraction, width);
        }
        text.push(b'Z');
        Some(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("RFC 3339 text is ASCII")
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// `value`'s last `width` decimal digits, zero-padded.
    fn digits(&mut self, mut value: u32, width: usize) {
        for slot in self.bytes[self.len..self.len + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }
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

    /// Times spread over the years 0–9999 with every kind of fraction, and the edges.
    fn times() -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let (first, last) = (
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0)
                .single()
                .expect("year 0"),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .single()
                .expect("year 9999"),
        );
        let span = (last - first).num_seconds();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let nanos = match i % 4 {
                0 => 0,
                1 => (seed % 1_000) as i64 * 1_000_000,
                2 => (seed % 1_000_000) as i64 * 1_000,
                _ => (seed % 1_000_000_000) as i64,
            };
            let at = first
                + chrono::Duration::seconds((seed % span as u64) as i64)
                + chrono::Duration::nanoseconds(nanos);
            times.push(at);
        }
        times.extend([
            first,
            last,
            last + chrono::Duration::nanoseconds(999_999_999),
        ]);
        times
    }

    #[test]
    fn writes_what_chrono_writes() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_250_000_000))
            .expect("a leap second")
            .and_utc();
        let out_of_range = [
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
                .single()
                .expect("year 10000"),
            Utc.with_ymd_and_hms(-1, 6, 1, 12, 0, 0)
                .single()
                .expect("year -1"),
        ];
        for time in times().into_iter().chain([leap]).chain(out_of_range) {
            let chrono = serde_json::to_string(&time).expect("chrono encodes");
            let ours = write(&time, serde_json::value::Serializer).expect("encodes");
            assert_eq!(ours.to_string(), chrono, "{time:?}");
            for seconds in [
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
            ] {
                let ours =
                    write_as(&time, seconds, serde_json::value::Serializer).expect("encodes");
                let chrono = time.to_rfc3339_opts(seconds, true);
                assert_eq!(ours.as_str(), Some(chrono.as_str()), "{time:?} {seconds:?}");
            }
        }
        let optional = write_optional(&None, serde_json::value::Serializer).expect("encodes");
        assert!(optional.is_null());
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
