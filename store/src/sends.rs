//! The send record `send:{send key}`: what became of one message the WhatsApp sink sends to Meta.
//!
//! Meta does not deduplicate sends, so the sink marks the attempt *before* its call and the wamid
//! after it. An attempt without a wamid is *unanswered*: the request may have reached Meta, and
//! sending again could give the customer a second copy. The send key also travels in the request's
//! `biz_opaque_callback_data`, which Meta echoes in every status webhook of the message, so the
//! first status of an unanswered send confirms it ([`Records::confirm_send`]): the status path
//! writes the wamid there and starts the message's tracking from what the attempt recorded, and
//! the sink, waiting for that, reports the send accepted.
//!
//! Fields: `attempt` (`1` before the call, `0` once Meta answered that it did not take the
//! message), `attempted_at`, what the send is about (`conversation`, `tenant`, `media_type`,
//! `genesys_message_id`), then `wamid` and `message_status`, and `confirmed_by` when a status
//! webhook, not Meta's answer, gave the wamid.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::StoreError;
use crate::records::{MessageTracking, Records};

/// The key of a send's record (the claim that guards the send is `claim:{send key}`).
pub fn send_record_key(send_key: &str) -> String {
    format!("send:{send_key}")
}

/// What a send is about: written on its record before the call, so that a status webhook can
/// start the message's tracking when the call's answer was lost.
#[derive(Debug, Clone, Copy)]
pub struct OutboundSend<'a> {
    pub conversation: &'a str,
    pub tenant: &'a str,
    /// The send request's type (`text`, `image`, `template`, …).
    pub media_type: &'a str,
    /// The agent's message, for a reply from Genesys.
    pub genesys_message_id: Option<&'a str>,
}

impl<'a> OutboundSend<'a> {
    /// The fields of the message's tracking once Meta took it.
    fn tracking(&self) -> Vec<(&'a str, &'a str)> {
        let mut fields = vec![
            ("conversation", self.conversation),
            ("tenant", self.tenant),
            ("direction", "outbound"),
            ("status", "accepted"),
            ("media_type", self.media_type),
        ];
        if let Some(id) = self.genesys_message_id {
            fields.push(("genesys_message_id", id));
        }
        fields
    }

    fn from_fields(fields: &'a HashMap<String, String>) -> Option<Self> {
        Some(Self {
            conversation: fields.get("conversation")?,
            tenant: fields.get("tenant")?,
            media_type: fields.get("media_type").map_or("", String::as_str),
            genesys_message_id: fields.get("genesys_message_id").map(String::as_str),
        })
    }
}

/// Where a send stands, read from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendState {
    /// Never attempted, or Meta answered that it did not take the message: sending is safe.
    Unsent,
    /// Meta took it as this wamid.
    Sent {
        wamid: String,
        message_status: Option<String>,
    },
    /// Attempted, and no answer recorded: it may have reached Meta. `since` is `None` for a
    /// record written before attempts were timed.
    Unanswered { since: Option<DateTime<Utc>> },
}

impl SendState {
    pub fn from_fields(fields: &HashMap<String, String>) -> Self {
        if let Some(wamid) = fields.get("wamid") {
            return Self::Sent {
                wamid: wamid.clone(),
                message_status: fields.get("message_status").cloned(),
            };
        }
        match fields.get("attempt").map(String::as_str) {
            Some("1") => Self::Unanswered {
                since: fields
                    .get("attempted_at")
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                    .map(|at| at.with_timezone(&Utc)),
            },
            _ => Self::Unsent,
        }
    }
}

impl Records {
    /// Before the call to Meta: the attempt, its time and what the send is about. The record
    /// expires `ttl` after this write, with the claim that guards the send.
    pub async fn attempt_send(
        &self,
        send_key: &str,
        send: &OutboundSend<'_>,
        at: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut fields = vec![
            ("attempt", "1"),
            ("attempted_at", at.as_str()),
            ("conversation", send.conversation),
            ("tenant", send.tenant),
            ("media_type", send.media_type),
        ];
        if let Some(id) = send.genesys_message_id {
            fields.push(("genesys_message_id", id));
        }
        self.store()
            .set_fields(&send_record_key(send_key), &fields, Some(ttl))
            .await
    }

    /// Meta answered that it did not take the message: a retry may send it.
    pub async fn not_sent(&self, send_key: &str) -> Result<(), StoreError> {
        self.store()
            .set_fields(&send_record_key(send_key), &[("attempt", "0")], None)
            .await
    }

    /// Meta took the message: the wamid on the send record and the message's tracking, written
    /// side by side.
    pub async fn sent(
        &self,
        send_key: &str,
        wamid: &str,
        message_status: &str,
        send: &OutboundSend<'_>,
    ) -> Result<(), StoreError> {
        let record = send_record_key(send_key);
        let answered = [("wamid", wamid), ("message_status", message_status)];
        let tracking = send.tracking();
        tokio::try_join!(
            self.store().set_fields(&record, &answered, None),
            self.track(wamid, &tracking),
        )?;
        Ok(())
    }

    /// A status webhook of `wamid` carried `send_key` in `biz_opaque_callback_data`. When that
    /// send is unanswered, Meta took it after all: its record gets the wamid and the message its
    /// tracking, which is returned. Anything else (no such send, one already answered, a record
    /// without what the attempt writes) confirms nothing.
    pub async fn confirm_send(
        &self,
        send_key: &str,
        wamid: &str,
    ) -> Result<Option<MessageTracking>, StoreError> {
        let record = send_record_key(send_key);
        let fields = self.store().fields(&record).await?;
        if !matches!(
            SendState::from_fields(&fields),
            SendState::Unanswered { .. }
        ) {
            return Ok(None);
        }
        let Some(send) = OutboundSend::from_fields(&fields) else {
            return Ok(None);
        };
        // The tracking first: a sink that sees the wamid reports the send accepted, and the
        // message's statuses must then find it tracked.
        self.track(wamid, &send.tracking()).await?;
        let confirmed = [
            ("wamid", wamid),
            ("message_status", "accepted"),
            ("confirmed_by", "status_webhook"),
        ];
        self.store().set_fields(&record, &confirmed, None).await?;
        self.tracking(wamid).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::MemoryStore;

    const REPLY: OutboundSend<'static> = OutboundSend {
        conversation: "1065:16505551234",
        tenant: "acme",
        media_type: "text",
        genesys_message_id: Some("g-1"),
    };

    async fn state(records: &Records, send_key: &str) -> SendState {
        let fields = records
            .store()
            .fields(&send_record_key(send_key))
            .await
            .expect("fields");
        SendState::from_fields(&fields)
    }

    #[tokio::test]
    async fn a_send_moves_from_unsent_to_unanswered_to_sent() {
        let records = Records::new(Arc::new(MemoryStore::new()));
        assert_eq!(state(&records, "send:genesys:g-1").await, SendState::Unsent);
        let at = Utc::now();
        records
            .attempt_send("send:genesys:g-1", &REPLY, at, Duration::from_secs(60))
            .await
            .expect("attempt");
        let SendState::Unanswered { since: Some(since) } =
            state(&records, "send:genesys:g-1").await
        else {
            panic!("an attempt without an answer is unanswered, since its time");
        };
        assert!((since - at).num_milliseconds().abs() <= 1);
        records.not_sent("send:genesys:g-1").await.expect("refused");
        assert_eq!(state(&records, "send:genesys:g-1").await, SendState::Unsent);

        records
            .attempt_send("send:genesys:g-1", &REPLY, at, Duration::from_secs(60))
            .await
            .expect("attempt");
        records
            .sent("send:genesys:g-1", "wamid.A", "accepted", &REPLY)
            .await
            .expect("sent");
        assert_eq!(
            state(&records, "send:genesys:g-1").await,
            SendState::Sent {
                wamid: "wamid.A".into(),
                message_status: Some("accepted".into())
            }
        );
        let tracking = records.tracking("wamid.A").await.expect("read");
        assert_eq!(
            tracking.and_then(|t| t.genesys_message_id),
            Some("g-1".into())
        );
    }

    #[tokio::test]
    async fn a_status_confirms_only_an_unanswered_send() {
        let records = Records::new(Arc::new(MemoryStore::new()));
        // No such send: a message another tool sent with callback data of its own.
        assert_eq!(
            records
                .confirm_send("send:genesys:g-1", "wamid.A")
                .await
                .expect("read"),
            None
        );
        records
            .attempt_send(
                "send:genesys:g-1",
                &REPLY,
                Utc::now(),
                Duration::from_secs(60),
            )
            .await
            .expect("attempt");
        let tracking = records
            .confirm_send("send:genesys:g-1", "wamid.A")
            .await
            .expect("confirm")
            .expect("an unanswered send is confirmed");
        assert_eq!(tracking.direction.as_deref(), Some("outbound"));
        assert_eq!(tracking.status.as_deref(), Some("accepted"));
        assert_eq!(tracking.conversation.as_deref(), Some("1065:16505551234"));
        assert_eq!(tracking.genesys_message_id.as_deref(), Some("g-1"));
        assert_eq!(
            state(&records, "send:genesys:g-1").await,
            SendState::Sent {
                wamid: "wamid.A".into(),
                message_status: Some("accepted".into())
            }
        );
        // Answered now: a status of another wamid with the same callback data confirms nothing.
        assert_eq!(
            records
                .confirm_send("send:genesys:g-1", "wamid.B")
                .await
                .expect("read"),
            None
        );
        assert_eq!(records.tracking("wamid.B").await.expect("read"), None);
    }
}
