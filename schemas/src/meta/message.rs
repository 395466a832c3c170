//! `messages[]`: what a customer sent (WIRE.md §1.3).
//!
//! A message carries its payload under the key named by `type` (`"type":"image"` → `"image":{…}`).
//! Each known payload is an optional field here; [`Message::content`] gives the typed view and an
//! unknown type ([`Content::Unknown`]) keeps its payload in `extra`, so it still reaches the
//! stages that decide what to tell the agent about it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, MetaError};
use crate::flex::{Numeric, UnixTime};

macro_rules! optional {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

/// One inbound message.
///
/// Every payload but `text` (the common case, and small) is boxed: unboxed, a `Message` was
/// 2.7 KiB, moved whole several times per decode — 7 % of decoding an envelope's instructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(
    description = "One inbound message, as Meta sent it: its payload is under the key its `type` names."
)]
pub struct Message {
    /// The sender's phone number (wa_id). Absent or empty for users with a username (BSUID only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_parent_user_id: Option<String>,
    /// The wamid: unique per message, the dedupe key for inbound traffic. Meta always sends it;
    /// an empty id (only seen in trimmed SDK fixtures) makes the edge dead-letter the message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub timestamp: UnixTime,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Box<MessageContext>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Box<Referral>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<MetaError>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<Media>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Box<Media>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Box<Media>>,
    /// On-Premises style voice note (`"type":"voice"`); Cloud API sends `audio` with `voice: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Box<Media>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Box<Media>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<Box<Media>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Box<Location>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<SharedContact>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<Box<Interactive>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<Box<Button>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Box<Reaction>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Box<Order>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Box<System>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<Box<Unsupported>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The typed view of a message's payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Content<'a> {
    Text(&'a Text),
    Image(&'a Media),
    Video(&'a Media),
    /// Audio; `voice == Some(true)` (or the legacy `voice` type) is a recorded voice note.
    Audio(&'a Media),
    Document(&'a Media),
    Sticker(&'a Media),
    Location(&'a Location),
    Contacts(&'a [SharedContact]),
    Interactive(&'a Interactive),
    Button(&'a Button),
    Reaction(&'a Reaction),
    Order(&'a Order),
    System(&'a System),
    Unsupported(Option<&'a Unsupported>),
    /// A type this build does not know (`edit`, `revoke`, …), or a known type without its payload.
    Unknown {
        kind: &'a str,
        payload: Option<&'a Value>,
    },
}

impl Message {
    /// The user this message came from: the wa_id when Meta gives one, else the BSUID.
    pub fn sender(&self) -> Option<&str> {
        non_empty(self.from.as_deref()).or(non_empty(self.from_user_id.as_deref()))
    }

    pub fn content(&self) -> Content<'_> {
        let unknown = || Content::Unknown {
            kind: &self.kind,
            payload: self.extra.get(&self.kind),
        };
        match self.kind.as_str() {
            "text" => self.text.as_ref().map_or_else(unknown, Content::Text),
            "image" => self.image.as_deref().map_or_else(unknown, Content::Image),
            "video" => self.video.as_deref().map_or_else(unknown, Content::Video),
            "audio" => self.audio.as_deref().map_or_else(unknown, Content::Audio),
            "voice" => self.voice.as_deref().map_or_else(unknown, Content::Audio),
            "document" => self
                .document
                .as_deref()
                .map_or_else(unknown, Content::Document),
            "sticker" => self
                .sticker
                .as_deref()
                .map_or_else(unknown, Content::Sticker),
            "location" => self
                .location
                .as_deref()
                .map_or_else(unknown, Content::Location),
            "contacts" => self
                .contacts
                .as_deref()
                .map_or_else(unknown, Content::Contacts),
            "interactive" => self
                .interactive
                .as_deref()
                .map_or_else(unknown, Content::Interactive),
            "button" => self.button.as_deref().map_or_else(unknown, Content::Button),
            "reaction" => self
                .reaction
                .as_deref()
                .map_or_else(unknown, Content::Reaction),
            "order" => self.order.as_deref().map_or_else(unknown, Content::Order),
            "system" => self.system.as_deref().map_or_else(unknown, Content::System),
            "unsupported" | "unknown" => Content::Unsupported(self.unsupported.as_deref()),
            _ => unknown(),
        }
    }

    /// The media object of an image, video, audio, voice, document or sticker message.
    pub fn media(&self) -> Option<&Media> {
        match self.content() {
            Content::Image(m)
            | Content::Video(m)
            | Content::Audio(m)
            | Content::Document(m)
            | Content::Sticker(m) => Some(m),
            _ => None,
        }
    }
}

pub(crate) fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

optional! {
    pub struct Text { body: String }
}

optional! {
    /// Image, video, audio, document or sticker. Webhooks carry a **base64** `sha256`; `url` is
    /// being rolled out since 2025-11 and is optional (fall back to `GET /{media-id}`).
    pub struct Media {
        id: String,
        mime_type: String,
        sha256: String,
        caption: String,
        filename: String,
        voice: bool,
        animated: bool,
        url: String,
    }
}

optional! {
    pub struct Location {
        latitude: Numeric,
        longitude: Numeric,
        name: String,
        address: String,
        url: String,
    }
}

optional! {
    /// A contact card the customer shared.
    pub struct SharedContact {
        name: ContactName,
        phones: Vec<ContactPhone>,
        emails: Vec<ContactEmail>,
        org: Value,
        urls: Vec<Value>,
        addresses: Vec<Value>,
        birthday: String,
    }
}

optional! {
    pub struct ContactName {
        formatted_name: String,
        first_name: String,
        last_name: String,
        middle_name: String,
        prefix: String,
        suffix: String,
    }
}

optional! {
    pub struct ContactPhone {
        phone: String,
        wa_id: String,
        #[serde(rename = "type")]
        kind: String,
    }
}

optional! {
    pub struct ContactEmail {
        email: String,
        #[serde(rename = "type")]
        kind: String,
    }
}

optional! {
    /// `button_reply {id,title}`, `list_reply {id,title,description}` or `nfm_reply` (a Flow).
    pub struct Interactive {
        #[serde(rename = "type")]
        kind: String,
        button_reply: ReplyChoice,
        list_reply: ReplyChoice,
        nfm_reply: FlowReply,
    }
}

optional! {
    pub struct ReplyChoice { id: String, title: String, description: String }
}

optional! {
    /// `response_json` is a JSON document inside a string.
    pub struct FlowReply { name: String, body: String, response_json: String }
}

optional! {
    /// A template quick-reply button press.
    pub struct Button { payload: String, text: String }
}

optional! {
    /// Removal of a reaction has `emoji` omitted or `""`.
    pub struct Reaction { message_id: String, emoji: String }
}

optional! {
    pub struct Order { catalog_id: String, text: String, product_items: Vec<ProductItem> }
}

optional! {
    pub struct ProductItem {
        product_retailer_id: String,
        quantity: Numeric,
        item_price: Numeric,
        currency: String,
    }
}

optional! {
    /// `user_changed_number` (with the new `wa_id`) or `customer_identity_changed`.
    pub struct System {
        body: String,
        #[serde(rename = "type")]
        kind: String,
        wa_id: String,
        new_wa_id: String,
        customer: String,
    }
}

optional! {
    /// `unsupported{type: "edit"|"poll_creation"|…}`, sent with error 131051.
    pub struct Unsupported {
        #[serde(rename = "type")]
        kind: String,
    }
}

optional! {
    /// Reply (`from`, `id`), forward flags, or the product a catalog "Message business" refers to.
    pub struct MessageContext {
        from: String,
        id: String,
        forwarded: bool,
        frequently_forwarded: bool,
        referred_product: ReferredProduct,
    }
}

optional! {
    pub struct ReferredProduct { catalog_id: String, product_retailer_id: String }
}

optional! {
    /// Click-to-WhatsApp ad referral.
    pub struct Referral {
        source_url: String,
        source_id: String,
        source_type: String,
        body: String,
        headline: String,
        media_type: String,
        image_url: String,
        video_url: String,
        thumbnail_url: String,
        ctwa_clid: String,
        welcome_message: Value,
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    /// Decoding moves a `Message` several times: its payloads stay boxed, so that it stays small.
    #[test]
    fn a_message_stays_small() {
        assert!(
            std::mem::size_of::<Message>() <= 512,
            "Message is {} bytes: box the payload that grew it",
            std::mem::size_of::<Message>()
        );
    }
}
