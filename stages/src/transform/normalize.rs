//! WhatsApp message → Genesys inbound normalized message: a pure function, one rule per type.
//!
//! The agent must understand every message the customer sent, so each type becomes text (or an
//! attachment) a human can read; what machines need (button payloads, the quoted message, ad
//! referrals) goes into `metadata`. `channel.messageId` is the wamid, `channel.time` Meta's
//! timestamp, `channel.from` the user with the profile name as nickname.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Map;
use wabaflow_schemas::StoredMedia;
use wabaflow_schemas::genesys::{
    Attachment, Content as GenesysContent, IdType, InboundChannel, InboundMessage, MediaType, Party,
};
use wabaflow_schemas::meta::{Contact, Content, Media, Message, SharedContact};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("message has no sender (neither from nor from_user_id)")]
    NoSender,
    #[error("{0} message reached transform without its stored media")]
    MediaMissing(String),
}

/// Builds the Genesys message for `message`. `media` is what the media stage stored.
pub fn normalize(
    message: &Message,
    contact: Option<&Contact>,
    media: Option<&StoredMedia>,
    received_at: DateTime<Utc>,
) -> Result<InboundMessage, NormalizeError> {
    let user = message.sender().ok_or(NormalizeError::NoSender)?;
    let profile = contact.and_then(|c| c.profile.as_ref());
    let nickname = profile.and_then(|p| p.name.clone().or_else(|| p.username.clone()));
    let id_type = if message.from.as_deref().is_some_and(|f| !f.is_empty()) {
        IdType::Phone
    } else {
        IdType::Opaque
    };
    let mut metadata = BTreeMap::new();
    metadata.insert("whatsapp.type".to_owned(), message.kind.clone());
    if let Some(context) = &message.context {
        if let Some(id) = &context.id {
            metadata.insert("whatsapp.reply_to".into(), id.clone());
        }
        if context.forwarded == Some(true) || context.frequently_forwarded == Some(true) {
            metadata.insert("whatsapp.forwarded".into(), "true".into());
        }
    }
    if let Some(referral) = &message.referral {
        for (key, value) in [
            ("whatsapp.referral.source_url", &referral.source_url),
            ("whatsapp.referral.headline", &referral.headline),
            ("whatsapp.referral.ctwa_clid", &referral.ctwa_clid),
        ] {
            if let Some(value) = value {
                metadata.insert(key.into(), value.clone());
            }
        }
    }

    let (text, content) = render(message, media, &mut metadata)?;
    Ok(InboundMessage {
        channel: InboundChannel {
            message_id: Some(message.id.clone()),
            from: Party {
                id: user.to_owned(),
                id_type,
                nickname,
                first_name: None,
                last_name: None,
                image: None,
                extra: Map::new(),
            },
            time: message.timestamp.to_datetime().unwrap_or(received_at),
            metadata: None,
            extra: Map::new(),
        },
        text,
        content,
        metadata,
        extra: Map::new(),
    })
}

type Rendered = (Option<String>, Vec<GenesysContent>);

fn render(
    message: &Message,
    media: Option<&StoredMedia>,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Rendered, NormalizeError> {
    let text = |t: String| Ok((Some(t), Vec::new()));
    match message.content() {
        Content::Text(t) => text(t.body.clone().unwrap_or_default()),
        Content::Image(m) => attachment(message, m, media, MediaType::Image),
        Content::Video(m) => attachment(message, m, media, MediaType::Video),
        Content::Audio(m) => {
            if m.voice == Some(true) || message.kind == "voice" {
                metadata.insert("whatsapp.voice".into(), "true".into());
            }
            attachment(message, m, media, MediaType::Audio)
        }
        Content::Document(m) => attachment(message, m, media, MediaType::File),
        Content::Sticker(m) => attachment(message, m, media, MediaType::Image),
        Content::Location(l) => {
            let lat = l.latitude.as_ref().and_then(|n| n.as_f64());
            let lon = l.longitude.as_ref().and_then(|n| n.as_f64());
            let mut out = String::from("📍 Location");
            if let Some(name) = &l.name {
                let _ = write!(out, ": {name}");
            }
            if let Some(address) = &l.address {
                let _ = write!(out, "\n{address}");
            }
            if let (Some(lat), Some(lon)) = (lat, lon) {
                let _ = write!(
                    out,
                    "\n{lat}, {lon}\nhttps://www.google.com/maps/search/?api=1&query={lat},{lon}"
                );
            }
            if let Some(url) = &l.url {
                let _ = write!(out, "\n{url}");
            }
            text(out)
        }
        Content::Contacts(cards) => text(contacts(cards)),
        Content::Interactive(i) => {
            if let Some(choice) = i.button_reply.as_ref().or(i.list_reply.as_ref()) {
                if let Some(id) = &choice.id {
                    metadata.insert("whatsapp.reply_id".into(), id.clone());
                }
                let mut out = choice.title.clone().unwrap_or_default();
                if let Some(description) = &choice.description {
                    let _ = write!(out, " — {description}");
                }
                return text(out);
            }
            if let Some(flow) = &i.nfm_reply {
                if let Some(response) = &flow.response_json {
                    metadata.insert("whatsapp.flow_response".into(), response.clone());
                }
                let body = flow.body.clone().unwrap_or_else(|| "Sent".into());
                let response = flow.response_json.clone().unwrap_or_default();
                return text(format!("{body} (form response: {response})"));
            }
            text(format!(
                "[Interactive reply of type {}, without content]",
                i.kind.as_deref().unwrap_or("unknown")
            ))
        }
        Content::Button(b) => {
            if let Some(payload) = &b.payload {
                metadata.insert("whatsapp.button_payload".into(), payload.clone());
            }
            text(
                b.text
                    .clone()
                    .or_else(|| b.payload.clone())
                    .unwrap_or_default(),
            )
        }
        Content::Reaction(r) => {
            let original = r.message_id.as_deref().unwrap_or("an earlier message");
            metadata.insert("whatsapp.reaction_to".into(), original.to_owned());
            text(match r.emoji.as_deref().filter(|e| !e.is_empty()) {
                Some(emoji) => format!("Reacted {emoji} to message {original}"),
                None => format!("Removed their reaction to message {original}"),
            })
        }
        Content::Order(o) => {
            let mut out = String::from("🛒 Order");
            if let Some(catalog) = &o.catalog_id {
                let _ = write!(out, " (catalog {catalog})");
            }
            let mut total = 0.0;
            let mut currency = None;
            for item in o.product_items.iter().flatten() {
                let quantity = item.quantity.as_ref().and_then(|q| q.as_f64()).unwrap_or(0.0);
                let price = item.item_price.as_ref().and_then(|p| p.as_f64()).unwrap_or(0.0);
                total += quantity * price;
                currency = currency.or(item.currency.clone());
                let _ = write!(
                    out,
                    "\n- {quantity} × {} at {price} {}",
                    item.product_retailer_id.as_deref().unwrap_or("?"),
                    item.currency.as_deref().unwrap_or("")
                );
            }
            let _ = write!(out, "\nTotal: {total} {}", currency.unwrap_or_default());
            if let Some(note) = &o.text {
                let _ = write!(out, "\nNote: {note}");
            }
            text(out)
        }
        Content::System(s) => text(format!(
            "[WhatsApp notice] {}",
            s.body.clone().unwrap_or_else(|| s.kind.clone().unwrap_or_default())
        )),
        Content::Unsupported(u) => {
            let kind = u
                .and_then(|u| u.kind.as_deref())
                .unwrap_or("unknown")
                .to_owned();
            text(format!(
                "[Unsupported message] The customer sent a {kind} message, which WhatsApp does not deliver to businesses. Ask them to send it another way."
            ))
        }
        Content::Unknown { kind, .. } => text(match kind {
            "edit" => "[The customer edited an earlier message; WhatsApp does not share edits with businesses]".to_owned(),
            "revoke" => "[The customer deleted a message]".to_owned(),
            other => format!("[The customer sent a {other} message, which cannot be shown here]"),
        }),
    }
}

fn attachment(
    message: &Message,
    webhook_media: &Media,
    stored: Option<&StoredMedia>,
    media_type: MediaType,
) -> Result<Rendered, NormalizeError> {
    let stored = stored.ok_or_else(|| NormalizeError::MediaMissing(message.kind.clone()))?;
    let caption = webhook_media.caption.clone().filter(|c| !c.is_empty());
    let filename = stored.filename.clone().or_else(|| {
        let name = stored.key.rsplit('/').next().unwrap_or_default();
        (!name.is_empty()).then(|| name.to_owned())
    });
    let attachment = Attachment {
        media_type,
        url: Some(stored.url.clone()),
        mime: Some(stored.mime_type.clone()),
        filename,
        text: caption.clone(),
        sha256: Some(stored.sha256.clone()),
        id: None,
        content_size_bytes: Some(stored.size),
        extra: Map::new(),
    };
    Ok((caption, vec![GenesysContent::attachment(attachment)]))
}

fn contacts(cards: &[SharedContact]) -> String {
    let mut out = String::from("📇 Shared contact");
    if cards.len() > 1 {
        out.push('s');
    }
    for card in cards {
        let name = card
            .name
            .as_ref()
            .and_then(|n| n.formatted_name.clone().or_else(|| n.first_name.clone()))
            .unwrap_or_else(|| "(no name)".into());
        let _ = write!(out, "\n{name}");
        for phone in card.phones.iter().flatten() {
            let number = phone
                .phone
                .as_deref()
                .or(phone.wa_id.as_deref())
                .unwrap_or("?");
            match &phone.kind {
                Some(kind) => {
                    let _ = write!(out, "\n  Phone ({kind}): {number}");
                }
                None => {
                    let _ = write!(out, "\n  Phone: {number}");
                }
            }
        }
        for email in card.emails.iter().flatten() {
            if let Some(address) = &email.email {
                let _ = write!(out, "\n  Email: {address}");
            }
        }
        if let Some(birthday) = &card.birthday {
            let _ = write!(out, "\n  Birthday: {birthday}");
        }
    }
    out
}
