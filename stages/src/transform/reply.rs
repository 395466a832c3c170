//! Genesys outbound message → WhatsApp send request: a pure function.
//!
//! - `Text` with text only → a `text` send (≤ 4096 characters, Meta's limit);
//! - an attachment → `image` / `video` / `audio` / `document` by `link` (the presigned copy the
//!   media stage stored), the message text as its caption where WhatsApp takes one (not audio);
//!   `Link` attachments become text with the URL;
//! - a `Notification` (template) → a `template` send: Genesys gives `namespace@name` as `id`, the
//!   language (`en-US` or `en_US`) and body/header parameters by name; numeric names are
//!   positional, other names are Meta's named parameters (`parameter_name`).
//!
//! A BSUID customer (no phone number) is addressed with `recipient` instead of `to`.

use serde_json::{Map, Value, json};
use wabaflow_schemas::StoredMedia;
use wabaflow_schemas::genesys::{MediaType, NotificationTemplate, OutboundMessage, TemplatePart};
use wabaflow_schemas::whatsapp::{
    MAX_TEXT_CHARS, MediaBody, SendBody, SendRequest, TemplateBody, TemplateLanguage, TextBody,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply has neither text, an attachment nor a template")]
    Empty,
    #[error("text is {0} characters; WhatsApp takes at most {MAX_TEXT_CHARS}")]
    TooLong(usize),
    #[error("the attachment reached transform without its stored copy")]
    MediaMissing,
    #[error("template id {0:?} is not namespace@name")]
    TemplateName(String),
}

/// The send request for `message` to `user`; `callback` goes to `biz_opaque_callback_data`.
pub fn to_send_request(
    message: &OutboundMessage,
    media: Option<&StoredMedia>,
    user: &str,
    callback: &str,
) -> Result<SendRequest, ReplyError> {
    let text = message.text.clone().filter(|t| !t.trim().is_empty());
    let template = message
        .content
        .iter()
        .find(|c| c.content_type == "Notification")
        .and_then(|c| c.template());
    let attachment = message.content.iter().find_map(|c| c.attachment.as_ref());

    let body = if let Some(template) = template {
        SendBody::Template {
            template: template_body(&template)?,
        }
    } else if let Some(attachment) = attachment {
        if attachment.media_type == MediaType::Link {
            let url = attachment.url.clone().unwrap_or_default();
            let text = match text {
                Some(text) => format!("{text}\n{url}"),
                None => url,
            };
            text_body(text)?
        } else {
            let stored = media.ok_or(ReplyError::MediaMissing)?;
            let mut body = MediaBody {
                link: Some(stored.url.clone()),
                ..MediaBody::default()
            };
            match attachment.media_type {
                MediaType::Image => {
                    body.caption = text;
                    SendBody::Image { image: body }
                }
                MediaType::Video => {
                    body.caption = text;
                    SendBody::Video { video: body }
                }
                MediaType::Audio => SendBody::Audio { audio: body },
                MediaType::File | MediaType::Link => {
                    body.caption = text;
                    body.filename = attachment.filename.clone().or(stored.filename.clone());
                    SendBody::Document { document: body }
                }
            }
        }
    } else {
        text_body(text.ok_or(ReplyError::Empty)?)?
    };

    let bsuid = !user.chars().all(|c| c.is_ascii_digit());
    Ok(SendRequest {
        messaging_product: "whatsapp".into(),
        recipient_type: Some("individual".into()),
        to: (!bsuid).then(|| user.to_owned()),
        recipient: bsuid.then(|| user.to_owned()),
        biz_opaque_callback_data: Some(callback.to_owned()),
        context: None,
        body,
    })
}

fn text_body(text: String) -> Result<SendBody, ReplyError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ReplyError::TooLong(chars));
    }
    Ok(SendBody::Text {
        text: TextBody {
            body: text,
            preview_url: Some(false),
        },
    })
}

fn template_body(template: &NotificationTemplate) -> Result<TemplateBody, ReplyError> {
    let id = template.id.clone().unwrap_or_default();
    let name = match id.split_once('@') {
        Some((_, name)) => name,
        None => id.as_str(),
    };
    if name.is_empty() {
        return Err(ReplyError::TemplateName(id.clone()));
    }
    let language = template
        .language
        .clone()
        .unwrap_or_else(|| "en_US".into())
        .replace('-', "_");
    let mut components = Vec::new();
    if let Some(header) = &template.header {
        if let Some(media) = &header.media
            && let Some(url) = &media.url
        {
            let kind = match media.media_type {
                MediaType::Image => "image",
                MediaType::Video => "video",
                _ => "document",
            };
            components.push(
                json!({"type": "header", "parameters": [{"type": kind, kind: {"link": url}}]}),
            );
        } else if !header.parameters.is_empty() {
            components.push(component("header", header));
        }
    }
    if !template.body.parameters.is_empty() {
        components.push(component("body", &template.body));
    }
    Ok(TemplateBody {
        name: name.to_owned(),
        language: TemplateLanguage { code: language },
        components,
    })
}

fn component(kind: &str, part: &TemplatePart) -> Value {
    let parameters: Vec<Value> = part
        .parameters
        .iter()
        .map(|p| {
            let mut parameter = Map::new();
            parameter.insert("type".into(), json!("text"));
            parameter.insert("text".into(), json!(p.text));
            if let Some(name) = p.name.as_deref().filter(|n| n.parse::<u32>().is_err()) {
                parameter.insert("parameter_name".into(), json!(name));
            }
            Value::Object(parameter)
        })
        .collect();
    json!({"type": kind, "parameters": parameters})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<OutboundMessage> {
        let path = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("../../shared/fixtures/genesys")
        .join(name);
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    #[test]
    fn a_real_text_webhook_becomes_a_text_send() {
        let Some(message) = fixture("outbound-webhook-text-real.bluesky-log.json") else {
            return;
        };
        let request =
            to_send_request(&message, None, "16505551234", "send:genesys:x").expect("maps");
        let json = serde_json::to_value(&request).expect("encodes");
        assert_eq!(json["type"], "text");
        assert_eq!(json["text"]["body"], "Hi");
        assert_eq!(json["to"], "16505551234");
        assert_eq!(json["biz_opaque_callback_data"], "send:genesys:x");
    }

    #[test]
    fn a_notification_becomes_a_template_with_named_parameters() {
        let Some(mut message) = fixture("openmessaging-outbound-notification.go-gcloudcx.json")
        else {
            return;
        };
        message.content[0]
            .extra
            .get_mut("template")
            .expect("template")["id"] = json!("ns@order_update");
        let request = to_send_request(&message, None, "US.123", "k").expect("maps");
        let json = serde_json::to_value(&request).expect("encodes");
        assert_eq!(json["type"], "template");
        assert_eq!(json["template"]["name"], "order_update");
        assert_eq!(json["recipient"], "US.123");
        assert!(json.get("to").is_none());
        assert_eq!(
            json["template"]["components"][0]["parameters"][0]["parameter_name"],
            "name"
        );
        assert_eq!(
            json["template"]["components"][0]["parameters"][0]["text"],
            "Happy"
        );
    }

    #[test]
    fn an_attachment_needs_its_stored_copy_and_goes_by_link() {
        let Some(message) = fixture("outbound-webhook-attachment-image-real.dgurwan.json") else {
            return;
        };
        assert_eq!(
            to_send_request(&message, None, "1", "k"),
            Err(ReplyError::MediaMissing)
        );
        let stored = StoredMedia {
            bucket: "media-outbound".into(),
            key: "acme/1/x.png".into(),
            url: "https://s3/x.png?sig".into(),
            url_expires_at: chrono::Utc::now(),
            mime_type: "image/png".into(),
            sha256: String::new(),
            size: 1,
            filename: None,
        };
        let request = to_send_request(&message, Some(&stored), "1", "k").expect("maps");
        let json = serde_json::to_value(&request).expect("encodes");
        assert_eq!(json["type"], "image");
        assert_eq!(json["image"]["link"], "https://s3/x.png?sig");
    }
}
