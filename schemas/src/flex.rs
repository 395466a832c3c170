//! Scalars that Meta does not send consistently.
//!
//! WIRE.md §1.1: unix timestamps inside `messages[]`/`statuses[]` are strings (`"1749416383"`), but
//! SDK fixtures and some fields (`conversation.expiration_timestamp`) carry integers; location
//! coordinates are numbers, yet placeholder payloads carry strings. These types accept both and
//! re-encode exactly what they received, so a decode → encode round trip never changes a payload.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, de};

/// A unix timestamp in seconds, as a JSON string or a JSON integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum UnixTime {
    Integer(i64),
    Text(String),
}

/// Read by the form the value has (what `#[serde(untagged)]` would do by buffering the value and
/// trying each variant in turn, at the cost of a failed attempt on every string: this is on every
/// message and status).
impl<'de> Deserialize<'de> for UnixTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;

        impl de::Visitor<'_> for Form {
            type Value = UnixTime;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a unix timestamp, as an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<UnixTime, E> {
                Ok(UnixTime::Integer(secs))
            }

            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<UnixTime, E> {
                i64::try_from(secs)
                    .map(UnixTime::Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(secs), &self))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<UnixTime, E> {
                Ok(UnixTime::Text(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<UnixTime, E> {
                Ok(UnixTime::Text(text))
            }
        }

        deserializer.deserialize_any(Form)
    }
}

impl UnixTime {
    /// Seconds since the epoch, when the value is a number or a numeric string.
    pub fn seconds(&self) -> Option<i64> {
        match self {
            UnixTime::Integer(secs) => Some(*secs),
            UnixTime::Text(text) => text.trim().parse().ok(),
        }
    }

    /// The instant, when the value is a valid timestamp.
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        self.seconds()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
    }
}

impl From<i64> for UnixTime {
    fn from(secs: i64) -> Self {
        UnixTime::Text(secs.to_string())
    }
}

/// A number that may arrive as a JSON number or as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Numeric {
    Number(serde_json::Number),
    Text(String),
}

impl Numeric {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Numeric::Number(n) => n.as_f64(),
            Numeric::Text(text) => text.trim().parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_keeps_its_json_form() {
        let text: UnixTime = serde_json::from_str("\"1749416383\"").expect("string form");
        let int: UnixTime = serde_json::from_str("1669233778").expect("integer form");
        assert_eq!(text.seconds(), Some(1_749_416_383));
        assert_eq!(int.seconds(), Some(1_669_233_778));
        assert_eq!(
            serde_json::to_string(&text).expect("encode"),
            "\"1749416383\""
        );
        assert_eq!(serde_json::to_string(&int).expect("encode"), "1669233778");
        assert_eq!(UnixTime::Text("soon".into()).seconds(), None);
        for refused in ["1.5", "18446744073709551615", "true", "null", "{}"] {
            assert!(
                serde_json::from_str::<UnixTime>(refused).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn numeric_accepts_strings_and_numbers() {
        let n: Numeric = serde_json::from_str("37.4611978").expect("number");
        let s: Numeric = serde_json::from_str("\"-122.5\"").expect("string");
        assert_eq!(n.as_f64(), Some(37.461_197_8));
        assert_eq!(s.as_f64(), Some(-122.5));
        assert_eq!(Numeric::Text("LOCATION_LATITUDE".into()).as_f64(), None);
    }
}
