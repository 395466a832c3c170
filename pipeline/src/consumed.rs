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
}
