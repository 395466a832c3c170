//! The outbound flow end to end: an agent's reply, posted by the Genesys simulator's agent driver
//! (signed base64, retried like Genesys), through the real pipeline to the Meta simulator, and the
//! statuses Meta then posts back becoming receipts in Genesys.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wabaflow_sims::genesys::GenesysSimConfig;
use wabaflow_sims::meta::MetaSimConfig;
use wabaflow_sims::meta::send::StatusChaos;
use wabaflow_sims::meta::webhooks::Customer;
use wabaflow_store::objects::ObjectStore;

use support::flow::{PHONE_NUMBER_ID, Rig, now};

/// The customer writes first (opening the 24-hour window), and the message reaches the agent.
async fn customer_writes(rig: &Rig, customer: &Customer, already: usize) {
    rig.send(&customer.text("hello, a question", now() - 5))
        .await;
    rig.meta.customer_wrote(PHONE_NUMBER_ID, &customer.wa_id);
    let seen = rig
        .genesys
        .wait_for_messages(already + 1, Duration::from_secs(60))
        .await;
    assert_eq!(
        seen.len(),
        already + 1,
        "the customer's message reached Genesys"
    );
}

fn statuses_for(receipts: &[(String, Value)], genesys_id: &str) -> Vec<String> {
    receipts
        .iter()
        .filter(|(_, r)| r["id"] == genesys_id)
        .map(|(_, r)| r["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_text_reaches_the_customer_once_and_receipts_come_back() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    let customer = Customer::new("16505551234", "Sheena");
    customer_writes(&rig, &customer, 0).await;

    let reply = rig
        .agent
        .text(&customer.wa_id, "Hi Sheena, your order ships today.");
    let genesys_id = reply["id"].as_str().expect("id").to_owned();
    assert!(rig.agent.post(&reply).await.accepted());
    // Genesys retries a webhook it thinks failed: the copy must not reach the customer.
    assert!(rig.agent.post(&reply).await.accepted());

    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            statuses_for(r, &genesys_id).contains(&"Read".to_owned())
        })
        .await;
    assert_eq!(
        statuses_for(&receipts, &genesys_id),
        vec!["Sent", "Delivered", "Read"],
        "{receipts:?}"
    );
    let sends = rig.meta.sends();
    assert_eq!(sends.len(), 1, "exactly one send: {sends:?}");
    let request = serde_json::to_value(&sends[0].request).expect("json");
    assert_eq!(request["type"], "text");
    assert_eq!(request["to"], "16505551234");
    assert_eq!(
        request["text"]["body"],
        "Hi Sheena, your order ships today."
    );
    assert_eq!(
        request["biz_opaque_callback_data"],
        format!("send:genesys:{genesys_id}")
    );
    let tracking = rig
        .records()
        .await
        .tracking(&sends[0].wamid)
        .await
        .expect("read")
        .expect("tracked");
    assert_eq!(
        tracking.genesys_message_id.as_deref(),
        Some(genesys_id.as_str())
    );
    assert_eq!(tracking.status.as_deref(), Some("read"));
    assert_eq!(tracking.direction.as_deref(), Some("outbound"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_documents_and_images_reach_the_customer_with_the_bytes_genesys_served() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    let customer = Customer::new("447700900123", "Ana");
    customer_writes(&rig, &customer, 0).await;

    let pdf: Vec<u8> = (0..90_000u32).map(|i| (i % 251) as u8).collect();
    let png: Vec<u8> = (0..30_000u32).map(|i| (i % 13) as u8).collect();
    let pdf_url = rig.genesys.add_download(pdf.clone(), "application/pdf");
    let png_url = rig.genesys.add_download(png.clone(), "image/png");
    let document = rig.agent.attachment(
        &customer.wa_id,
        "File",
        &pdf_url,
        "application/pdf",
        "invoice-42.pdf",
    );
    let image = rig
        .agent
        .attachment(&customer.wa_id, "Image", &png_url, "image/png", "label.png");
    assert!(rig.agent.post(&document).await.accepted());
    assert!(rig.agent.post(&image).await.accepted());

    let sends = rig.meta.wait_for_sends(2, Duration::from_secs(60)).await;
    assert_eq!(sends.len(), 2);
    let by_type: HashMap<String, _> = sends
        .iter()
        .map(|s| (s.request.body.kind().to_owned(), s))
        .collect();
    let doc = by_type["document"];
    let media = doc.request.body.media().expect("media");
    assert_eq!(media.filename.as_deref(), Some("invoice-42.pdf"));
    assert!(media.link.is_some() && media.id.is_none());
    // What Meta fetched from the link — what the customer downloads — is what Genesys served.
    assert_eq!(
        doc.fetched.clone().and_then(|(_, sha)| sha),
        Some(hex::encode(Sha256::digest(&pdf)))
    );
    assert_eq!(
        by_type["image"].fetched.clone().and_then(|(_, sha)| sha),
        Some(hex::encode(Sha256::digest(&png)))
    );
    let keys = support::flow::s3(&rig.config)
        .list("media-outbound", "acme/")
        .await
        .expect("list");
    assert!(
        keys.iter().any(|k| k.ends_with("/invoice-42.pdf")),
        "{keys:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_text_fails_with_a_reason_and_a_template_is_sent() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    // This customer never wrote: the 24-hour window is closed.
    let stranger = "5511912345678";
    let text = rig.agent.text(stranger, "Following up on your ticket");
    let text_id = text["id"].as_str().expect("id").to_owned();
    assert!(rig.agent.post(&text).await.accepted());
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            !statuses_for(r, &text_id).is_empty()
        })
        .await;
    let failed = receipts
        .iter()
        .find(|(_, r)| r["id"] == text_id.as_str())
        .map(|(_, r)| r.clone())
        .expect("a receipt");
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["reasons"][0]["code"], "MessageExpired");
    assert!(
        failed["reasons"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("24-hour")),
        "{failed}"
    );
    assert!(rig.meta.sends().is_empty(), "nothing was sent to Meta");

    let template = rig
        .agent
        .template(stranger, "ns@ticket_update", "en-US", &[("1", "4711")]);
    assert!(rig.agent.post(&template).await.accepted());
    let sends = rig.meta.wait_for_sends(1, Duration::from_secs(60)).await;
    assert_eq!(sends.len(), 1);
    let request = serde_json::to_value(&sends[0].request).expect("json");
    assert_eq!(request["type"], "template");
    assert_eq!(request["template"]["name"], "ticket_update");
    assert_eq!(request["template"]["language"]["code"], "en_US");
    assert_eq!(
        request["template"]["components"][0]["parameters"][0]["text"],
        "4711"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_statuses_never_move_a_receipt_backwards() {
    let rig = Rig::start_with(
        GenesysSimConfig::default(),
        MetaSimConfig {
            status_chaos: StatusChaos::Realistic,
            pair_interval: Duration::from_millis(50),
            pair_burst: 20.0,
            ..MetaSimConfig::default()
        },
        |config| {
            config.whatsapp.pair_interval_ms = 50;
            config.whatsapp.pair_burst = 20;
        },
    )
    .await;
    let customer = Customer::new("4915112345678", "Lena");
    customer_writes(&rig, &customer, 0).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let reply = rig.agent.text(&customer.wa_id, &format!("answer {i}"));
        ids.push(reply["id"].as_str().expect("id").to_owned());
        assert!(rig.agent.post(&reply).await.accepted());
    }
    rig.meta.wait_for_sends(12, Duration::from_secs(60)).await;
    // Every message ends at its furthest status; wait until each has a final receipt.
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            ids.iter()
                .all(|id| statuses_for(r, id).last().is_some_and(|s| s == "Read"))
        })
        .await;
    let rank = |s: &str| match s {
        "Sent" => 1,
        "Delivered" => 2,
        "Read" => 3,
        _ => 9,
    };
    for id in &ids {
        let statuses = statuses_for(&receipts, id);
        assert!(!statuses.is_empty(), "{id}: no receipt");
        assert!(
            statuses.windows(2).all(|w| rank(&w[0]) < rank(&w[1])),
            "{id}: receipts went backwards or repeated: {statuses:?}"
        );
        assert_eq!(statuses.last().map(String::as_str), Some("Read"), "{id}");
    }
    // The customer got the answers in the agent's order.
    let bodies: Vec<String> = rig
        .meta
        .sends()
        .iter()
        .map(|s| {
            serde_json::to_value(&s.request).expect("json")["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..12).map(|i| format!("answer {i}")).collect();
    assert_eq!(bodies, expected);
    rig.stop().await;
}
