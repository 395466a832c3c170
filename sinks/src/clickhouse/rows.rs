//! The row an envelope becomes in the analytics tables (`migrations/0001_events.sql`), typed and
//! borrowed from the envelope, so a batch of ten thousand rows is encoded straight into the
//! `JSONEachRow` body without building a JSON tree per row.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;
use wabaflow_schemas::{Envelope, Event, SendOutcome};

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
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let at = self.0;
        serializer.collect_str(&format_args!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ))
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

/// The row `envelope` becomes, if it is analytics data (customer messages, statuses, accepted
/// sends, usage); `ingested_at` is when the sink wrote it (the version of a replayed row).
pub fn row(envelope: &Envelope, ingested_at: DateTime<Utc>) -> Option<Row<'_>> {
    let tenant = envelope.tenant.as_deref().unwrap_or_default();
    let occurred = envelope.occurred_at.unwrap_or(envelope.received_at);
    let message = |phone_number_id, direction, message_type, wamid, genesys_message_id| {
        Row::Message(MessageRow {
            event_id: envelope.event_id,
            tenant,
            phone_number_id,
            conversation_key: envelope.conversation_key.as_str(),
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
    match &envelope.event {
        Event::MetaMessage {
            phone_number_id,
            message: customer,
            ..
        } => Some(message(
            phone_number_id,
            "inbound",
            &customer.kind,
            &customer.id,
            "",
        )),
        Event::MetaStatus {
            phone_number_id,
            status,
            ..
        } => {
            let pricing = status.pricing.as_ref();
            Some(Row::Status(StatusRow {
                event_id: envelope.event_id,
                tenant,
                phone_number_id,
                conversation_key: envelope.conversation_key.as_str(),
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
        Event::SendResult {
            phone_number_id,
            genesys_message_id,
            message_type,
            wamid: Some(wamid),
            outcome: SendOutcome::Accepted { .. },
            ..
        } => Some(message(
            phone_number_id,
            "outbound",
            message_type,
            wamid,
            genesys_message_id.as_deref().unwrap_or_default(),
        )),
        Event::Usage { usage } => Some(Row::Usage(UsageRow {
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wabaflow_schemas::{ConversationKey, Source};

    use super::*;

    #[test]
    fn a_status_row_has_every_column_of_its_table() {
        let status = serde_json::from_value(json!({
            "id": "wamid.S", "status": "delivered", "timestamp": "1767225600",
            "recipient_id": "447700900001",
            "errors": [{"code": 131049, "title": "ecosystem"}],
            "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
        }))
        .expect("status");
        let at = DateTime::parse_from_rfc3339("2026-01-31T23:59:58.9Z")
            .expect("time")
            .to_utc();
        let mut envelope = Envelope::new(
            Source::Meta,
            ConversationKey::conversation("110", "447700900001"),
            Some(at),
            at,
            None,
            Event::MetaStatus {
                phone_number_id: "110".into(),
                contact: None,
                status: Box::new(status),
            },
        );
        envelope.tenant = Some("acme".into());
        let ingested = at + chrono::Duration::seconds(3);
        let row = row(&envelope, ingested).expect("a row");
        assert_eq!(row.table(), "status_events");
        assert_eq!(
            serde_json::to_value(&row).expect("encodes"),
            json!({
                "event_id": envelope.event_id.to_string(), "tenant": "acme",
                "phone_number_id": "110", "conversation_key": "110:447700900001",
                "wamid": "wamid.S", "status": "delivered", "error_code": 131049,
                "pricing_model": "PMP", "pricing_category": "marketing", "pricing_type": "regular",
                "billable": 1, "occurred_at": "2026-01-31 23:59:58",
                "ingested_at": "2026-02-01 00:00:01", "day": "2026-01-31",
            })
        );
    }
}
