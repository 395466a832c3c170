//! The row an envelope becomes in the analytics tables (`migrations/0001_events.sql`): read from
//! the record's bytes as [`Analytics`] (only the fields the tables need, borrowed), then typed
//! rows encoded straight into the `JSONEachRow` body — no envelope, no JSON tree per row.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;
use wabaflow_schemas::SCHEMA_VERSION;
use wabaflow_schemas::billing::UsageRecord;
use wabaflow_schemas::envelope::EnvelopeError;
use wabaflow_schemas::rfc3339;

/// One row and the table it goes to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Row<'a> {
    Message(MessageRow<'a>),
    Status(StatusRow<'a>),
    Usage(UsageRow<'a>),
}

impl Row<'_> {
    pub fn table(&self) -> &'static str {
        match self {
            Row::Message(_) => "message_events",
            Row::Status(_) => "status_events",
            Row::Usage(_) => "usage",
        }
    }
}

/// `message_events`: a customer message (inbound) or an accepted send (outbound).
#[derive(Debug, Serialize)]
pub struct MessageRow<'a> {
    event_id: Uuid,
    tenant: &'a str,
    phone_number_id: &'a str,
    conversation_key: &'a str,
    direction: &'static str,
    message_type: &'a str,
    wamid: &'a str,
    genesys_message_id: &'a str,
    campaign: &'a str,
    occurred_at: ClickHouseDateTime,
    ingested_at: ClickHouseDateTime,
    day: ClickHouseDate,
}

/// `status_events`: a delivery status, with its error code and pricing.
#[derive(Debug, Serialize)]
pub struct StatusRow<'a> {
    event_id: Uuid,
    tenant: &'a str,
    phone_number_id: &'a str,
    conversation_key: &'a str,
    wamid: &'a str,
    status: &'a str,
    error_code: i64,
    pricing_model: &'a str,
    pricing_category: &'a str,
    pricing_type: &'a str,
    billable: u8,
    occurred_at: ClickHouseDateTime,
    ingested_at: ClickHouseDateTime,
    day: ClickHouseDate,
}

/// `usage`: a metered unit (a conversation or a message).
#[derive(Debug, Serialize)]
pub struct UsageRow<'a> {
    unit: String,
    tenant: &'a str,
    phone_number_id: &'a str,
    wamid: &'a str,
    conversation_id: &'a str,
    pricing_model: &'a str,
    category: &'a str,
    pricing_type: &'a str,
    billable: u8,
    country: &'a str,
    cost_micros: i64,
    currency: &'a str,
    occurred_at: ClickHouseDateTime,
    ingested_at: ClickHouseDateTime,
    day: ClickHouseDate,
}

/// ClickHouse's `DateTime` text form, `2026-01-31 23:59:59` (UTC: the server's zone must be UTC,
/// as in the images).
#[derive(Debug, Clone, Copy)]
pub struct ClickHouseDateTime(pub DateTime<Utc>);

impl Serialize for ClickHouseDateTime {
    /// Written into a buffer on the stack rather than through `fmt` (a character at a time, 3 % of
    /// the sink's CPU for its two times per row).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Read from the naive UTC time: each accessor of a `DateTime` adds its offset again.
        let at = self.0.naive_utc();
        let mut text = *b"0000-00-00 00:00:00";
        match u32::try_from(at.year()) {
            Ok(year @ 0..=9999) => {
                digits(&mut text[0..4], year);
                digits(&mut text[5..7], at.month());
                digits(&mut text[8..10], at.day());
                digits(&mut text[11..13], at.hour());
                digits(&mut text[14..16], at.minute());
                digits(&mut text[17..19], at.second());
                serializer.serialize_str(std::str::from_utf8(&text).expect("ASCII digits"))
            }
            // Outside what ClickHouse's `DateTime` holds anyway; written as before, for its error.
            _ => serializer.collect_str(&format_args!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                at.year(),
                at.month(),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )),
        }
    }
}

/// `value`'s last `slot.len()` decimal digits into `slot`, zero-padded.
fn digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// ClickHouse's `Date` text form, `2026-01-31`.
#[derive(Debug, Clone, Copy)]
pub struct ClickHouseDate(pub NaiveDate);

impl Serialize for ClickHouseDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let day = self.0;
        serializer.collect_str(&format_args!(
            "{:04}-{:02}-{:02}",
            day.year(),
            day.month(),
            day.day()
        ))
    }
}

/// An envelope as the analytics tables read it: the few fields they need, borrowed from the
/// record's bytes. Message bodies, contacts, media and every other field are skipped unread, which
/// makes this several times cheaper than decoding the whole `Envelope` (whose Meta objects keep
/// their unknown fields, and are read twice for it). The tests check it against what [`Envelope`]
/// writes.
#[derive(Debug, Deserialize)]
pub struct Analytics<'a> {
    event_id: Uuid,
    #[serde(default, borrow)]
    tenant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    conversation_key: Cow<'a, str>,
    schema_version: u16,
    /// Read as the stages read them (`rfc3339`): chrono's own `Deserialize` took 4 % of the sink.
    #[serde(default, deserialize_with = "rfc3339::optional")]
    occurred_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "rfc3339::time")]
    received_at: DateTime<Utc>,
    #[serde(borrow)]
    event: EventFields<'a>,
}

/// The fields of every event kind the tables read, side by side: `kind` says which are there.
#[derive(Debug, Deserialize)]
struct EventFields<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    phone_number_id: Option<Cow<'a, str>>,
    /// `meta_message`.
    #[serde(default, borrow)]
    message: Option<MessageFields<'a>>,
    /// `meta_status`.
    #[serde(default, borrow)]
    status: Option<StatusFields<'a>>,
    /// `send_result`.
    #[serde(default, borrow)]
    genesys_message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    wamid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    outcome: Option<OutcomeFields<'a>>,
    /// `usage`: read whole, it is all columns.
    #[serde(default)]
    usage: Option<UsageRecord>,
}

#[derive(Debug, Deserialize)]
struct MessageFields<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct StatusFields<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    errors: Option<Vec<ErrorFields>>,
    #[serde(default, borrow)]
    pricing: Option<PricingFields<'a>>,
}

#[derive(Debug, Deserialize)]
struct ErrorFields {
    #[serde(default)]
    code: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct PricingFields<'a> {
    #[serde(default)]
    billable: Option<bool>,
    #[serde(default, borrow)]
    pricing_model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct OutcomeFields<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
}

impl<'a> Analytics<'a> {
    /// Reads an envelope's analytics fields; refuses what `Envelope::from_json` refuses for
    /// its shape or its schema version.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let analytics: Analytics<'a> = wabaflow_schemas::json::from_bytes(bytes)?;
        if analytics.schema_version > SCHEMA_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(analytics.schema_version));
        }
        Ok(analytics)
    }

    /// The row this envelope becomes, if it is analytics data (customer messages, statuses,
    /// accepted sends, usage); `ingested_at` is when the sink wrote it (the version of a
    /// replayed row).
    pub fn row(&self, ingested_at: DateTime<Utc>) -> Option<Row<'_>> {
        let tenant = self.tenant.as_deref().unwrap_or_default();
        let occurred = self.occurred_at.unwrap_or(self.received_at);
        let event = &self.event;
        let phone_number_id = event.phone_number_id.as_deref().unwrap_or_default();
        let message = |direction, message_type, wamid, genesys_message_id| {
            Row::Message(MessageRow {
                event_id: self.event_id,
                tenant,
                phone_number_id,
                conversation_key: &self.conversation_key,
                direction,
                message_type,
                wamid,
                genesys_message_id,
                campaign: "",
                occurred_at: ClickHouseDateTime(occurred),
                ingested_at: ClickHouseDateTime(ingested_at),
                day: ClickHouseDate(occurred.date_naive()),
            })
        };
        match (&*event.kind, event) {
            (
                "meta_message",
                EventFields {
                    message: Some(customer),
                    ..
                },
            ) => Some(message(
                "inbound",
                customer.kind.as_deref().unwrap_or_default(),
                customer.id.as_deref().unwrap_or_default(),
                "",
            )),
            (
                "meta_status",
                EventFields {
                    status: Some(status),
                    ..
                },
            ) => {
                let pricing = status.pricing.as_ref();
                Some(Row::Status(StatusRow {
                    event_id: self.event_id,
                    tenant,
                    phone_number_id,
                    conversation_key: &self.conversation_key,
                    wamid: &status.id,
                    status: &status.status,
                    error_code: status
                        .errors
                        .as_ref()
                        .and_then(|errors| errors.first())
                        .and_then(|error| error.code)
                        .unwrap_or(0),
                    pricing_model: pricing
                        .and_then(|p| p.pricing_model.as_deref())
                        .unwrap_or_default(),
                    pricing_category: pricing
                        .and_then(|p| p.category.as_deref())
                        .unwrap_or_default(),
                    pricing_type: pricing.and_then(|p| p.kind.as_deref()).unwrap_or_default(),
                    billable: u8::from(pricing.and_then(|p| p.billable).unwrap_or(false)),
                    occurred_at: ClickHouseDateTime(occurred),
                    ingested_at: ClickHouseDateTime(ingested_at),
                    day: ClickHouseDate(occurred.date_naive()),
                }))
            }
            (
                "send_result",
                EventFields {
                    wamid: Some(wamid),
                    outcome: Some(OutcomeFields { status: accepted }),
                    ..
                },
            ) if accepted == "accepted" => Some(message(
                "outbound",
                event.message_type.as_deref().unwrap_or_default(),
                wamid,
                event.genesys_message_id.as_deref().unwrap_or_default(),
            )),
            (
                "usage",
                EventFields {
                    usage: Some(usage), ..
                },
            ) => Some(Row::Usage(UsageRow {
                unit: match &usage.conversation_id {
                    Some(id) => format!("conversation:{id}"),
                    None => format!("message:{}", usage.wamid),
                },
                tenant: &usage.tenant,
                phone_number_id: &usage.phone_number_id,
                wamid: &usage.wamid,
                conversation_id: usage.conversation_id.as_deref().unwrap_or_default(),
                pricing_model: &usage.pricing_model,
                category: &usage.category,
                pricing_type: usage.pricing_type.as_deref().unwrap_or_default(),
                billable: u8::from(usage.billable),
                country: &usage.country,
                cost_micros: usage.cost_micros,
                currency: &usage.currency,
                occurred_at: ClickHouseDateTime(usage.occurred_at),
                ingested_at: ClickHouseDateTime(ingested_at),
                day: ClickHouseDate(usage.day),
            })),
            _ => None,
        }
    }
}

/// Rows are read from envelopes as `Envelope` writes them.
#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};
    use wabaflow_schemas::{ConversationKey, Envelope, Event, SendOutcome, Source};

    use super::*;

    #[test]
    fn clickhouse_times_are_written_as_the_formatter_wrote_them() {
        let formatted = |at: DateTime<Utc>| {
            format!(
                "\"{:04}-{:02}-{:02} {:02}:{:02}:{:02}\"",
                at.year(),
                at.month(),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )
        };
        let times = [
            at(),
            DateTime::UNIX_EPOCH,
            Utc.with_ymd_and_hms(2105, 12, 31, 23, 59, 59)
                .single()
                .expect("time"),
            Utc.with_ymd_and_hms(9999, 1, 2, 3, 4, 5)
                .single()
                .expect("time"),
            Utc.with_ymd_and_hms(12_000, 6, 7, 8, 9, 10)
                .single()
                .expect("time"),
            Utc.with_ymd_and_hms(-1, 6, 7, 8, 9, 10)
                .single()
                .expect("time"),
        ];
        for at in times {
            let written = serde_json::to_string(&ClickHouseDateTime(at)).expect("writes");
            assert_eq!(written, formatted(at), "{at:?}");
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-31T23:59:58.9Z")
            .expect("time")
            .to_utc()
    }

    fn envelope(event: Event) -> Envelope {
        let mut envelope = Envelope::new(
            Source::Meta,
            ConversationKey::conversation("110", "447700900001"),
            Some(at()),
            at(),
            None,
            event,
        );
        envelope.tenant = Some("acme".into());
        envelope
    }

    /// The row `envelope` becomes once written and read back, as JSON, and its table.
    fn row_of(envelope: &Envelope) -> Option<(&'static str, Value)> {
        let bytes = envelope.to_json();
        let analytics = Analytics::decode(&bytes).expect("decodes");
        let row = analytics.row(at() + chrono::Duration::seconds(3))?;
        Some((row.table(), serde_json::to_value(&row).expect("encodes")))
    }

    #[test]
    fn a_status_row_has_every_column_of_its_table() {
        let status = serde_json::from_value(json!({
            "id": "wamid.S", "status": "delivered", "timestamp": "1767225600",
            "recipient_id": "447700900001",
            "errors": [{"code": 131049, "title": "ecosystem"}],
            "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
        }))
        .expect("status");
        let envelope = envelope(Event::MetaStatus {
            phone_number_id: "110".into(),
            contact: None,
            status: Box::new(status),
        });
        assert_eq!(
            row_of(&envelope),
            Some((
                "status_events",
                json!({
                    "event_id": envelope.event_id.to_string(), "tenant": "acme",
                    "phone_number_id": "110", "conversation_key": "110:447700900001",
                    "wamid": "wamid.S", "status": "delivered", "error_code": 131049,
                    "pricing_model": "PMP", "pricing_category": "marketing", "pricing_type": "regular",
                    "billable": 1, "occurred_at": "2026-01-31 23:59:58",
                    "ingested_at": "2026-02-01 00:00:01", "day": "2026-01-31",
                })
            ))
        );
    }

    #[test]
    fn a_customer_message_is_an_inbound_row_whatever_its_body_holds() {
        let message = serde_json::from_value(json!({
            "from": "447700900001", "id": "wamid.M\"1", "timestamp": "1767225600", "type": "text",
            "text": {"body": "café \"quoted\" {\"kind\": \"usage\"}"},
            "context": {"from": "110", "id": "wamid.C"},
            "some_future_field": {"status": {"id": 1}},
        }))
        .expect("message");
        let envelope = envelope(Event::MetaMessage {
            phone_number_id: "110".into(),
            display_phone_number: Some("15550001111".into()),
            contact: None,
            message: Box::new(message),
            media: None,
        });
        let (table, row) = row_of(&envelope).expect("a row");
        assert_eq!(table, "message_events");
        assert_eq!(row["direction"], "inbound");
        assert_eq!(row["message_type"], "text");
        assert_eq!(
            row["wamid"], "wamid.M\"1",
            "an escaped id is read unescaped"
        );
        assert_eq!(row["tenant"], "acme");
    }

    #[test]
    fn only_accepted_sends_are_outbound_rows() {
        let result = |wamid: Option<&str>, outcome| {
            envelope(Event::SendResult {
                phone_number_id: "110".into(),
                send_key: "send:genesys:g1".into(),
                genesys_message_id: Some("g1".into()),
                recipient: "447700900001".into(),
                message_type: "text".into(),
                wamid: wamid.map(Into::into),
                outcome,
            })
        };
        let (table, row) = row_of(&result(
            Some("wamid.OUT"),
            SendOutcome::Accepted {
                message_status: None,
            },
        ))
        .expect("a row");
        assert_eq!(table, "message_events");
        assert_eq!(
            (&row["direction"], &row["wamid"], &row["genesys_message_id"]),
            (&json!("outbound"), &json!("wamid.OUT"), &json!("g1"))
        );
        let failed = SendOutcome::Failed {
            code: Some(131026),
            reason: "undeliverable".into(),
            receipt_reason: "RecipientUnreachable".into(),
        };
        assert_eq!(row_of(&result(None, failed)), None);
    }

    #[test]
    fn other_events_are_not_analytics_rows() {
        let change = envelope(Event::MetaChange {
            waba_id: "waba1".into(),
            field: Some("message_template_status_update".into()),
            value: json!({"message": {"id": 7}, "status": "APPROVED", "usage": [1]}),
        });
        assert_eq!(row_of(&change), None);
    }

    #[test]
    fn a_newer_schema_version_is_refused() {
        let mut envelope = envelope(Event::MetaChange {
            waba_id: "waba1".into(),
            field: None,
            value: json!({}),
        });
        envelope.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            Analytics::decode(&envelope.to_json()),
            Err(EnvelopeError::UnsupportedVersion(_))
        ));
        assert!(Analytics::decode(b"{\"event_id\": 1}").is_err());
    }
}
