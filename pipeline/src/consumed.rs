//! [`RawRecord`]: a record as a runner consumed it — key, bytes and headers untouched — owned, so
//! that librdkafka's fetch buffer is not pinned while the record waits its turn or its write.
//!
//! Both runners read one topic, so every record's [`Origin`] shares that topic's name rather than
//! allocating its own copy.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::stage::Origin;

/// A record as consumed, bytes and headers untouched.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    /// Copies `message` out of librdkafka's buffer. `topic` is the name of the topic the runner
    /// reads, which the record's origin shares when it names the same topic.
    pub(crate) fn read(message: &BorrowedMessage<'_>, topic: &Arc<str>) -> Self {
        let topic = match message.topic() {
            read if read == &**topic => Arc::clone(topic),
            other => Arc::from(other),
        };
        Self {
            origin: Origin {
                topic,
                partition: message.partition(),
                offset: message.offset(),
            },
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of the first header called `name`.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The record's key as text, for the records made from it.
    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|key| String::from_utf8_lossy(key).into_owned())
    }

    /// The record's key as text, moved out of the record (a forwarded record's output takes it).
    pub fn take_key_text(&mut self) -> Option<String> {
        self.key.take().map(|key| {
            String::from_utf8(key)
                .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: &[u8]) -> RawRecord {
        RawRecord {
            origin: Origin {
                topic: Arc::from("t"),
                partition: 0,
                offset: 7,
            },
            key: Some(key.to_vec()),
            payload: b"{}".to_vec(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_taken_key_leaves_the_record_and_reads_as_the_copy_would() {
        for key in [&b"110:447700900123"[..], b"bad \xff byte"] {
            let mut record = keyed(key);
            let copied = record.key_text();
            assert_eq!(record.take_key_text(), copied);
            assert_eq!(record.key, None);
            assert_eq!(record.take_key_text(), None);
        }
        assert_eq!(
            keyed(b"bad \xff byte").take_key_text().as_deref(),
            Some("bad \u{fffd} byte")
        );
    }
}
