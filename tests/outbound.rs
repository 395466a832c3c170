//! The outbound flow end to end: an agent's reply, posted by the Genesys simulator's agent driver
//! (signed base64, retried like Genesys), through the real pipeline to the Meta simulator, and the
//! statuses Meta then posts back becoming receipts in Genesys.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wabaflow_sims::genesys::GenesysSimConfig;
use wabaflow_sims::meta::send::StatusChaos;
use wabaflow_sims::meta::webhooks::Customer;
use wabaflow_sims::meta::{MetaSimConfig, Template};
use wabaflow_store::objects::ObjectStore;

use support::flow::{PHONE_NUMBER_ID, Rig, now};
use wabaflow::node::{Node, Role};
use wabaflow_pipeline::Shutdown;
use wabaflow_schemas::topics::WA_SEND;

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
    // The message's tracking, its send record and the conversation's mappings expire: Redis keeps
    // recent messages and live conversations only.
    let conversation = format!("{PHONE_NUMBER_ID}:{}", customer.wa_id);
    let mapping = rig
        .records()
        .await
        .conversation(&conversation)
        .await
        .expect("read")
        .expect("mapped");
    let linked = mapping
        .genesys_conversation_id
        .expect("linked to a Genesys conversation");
    let mut redis = redis::Client::open(rig.config.store.redis_url.as_str())
        .and_then(|client| client.get_connection())
        .expect("redis");
    for key in [
        format!("track:wa:{}", sends[0].wamid),
        format!("send:send:genesys:{genesys_id}"),
        format!("mapping:wa:{conversation}"),
        format!("mapping:conv:{linked}"),
    ] {
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(format!("{}{key}", rig.config.store.key_prefix))
            .query(&mut redis)
            .expect("PTTL");
        assert!(ttl_ms > 0, "{key} exists and expires (PTTL {ttl_ms})");
    }
    // Both copies of Genesys' webhook are archived raw in webhooks-outbound.
    let store = support::flow::s3(&rig.config);
    let keys = support::flow::wait_for_objects(&store, "webhooks-outbound", "acme/").await;
    let mut archived = 0;
    for key in keys {
        let body = store
            .get("webhooks-outbound", &key)
            .await
            .expect("get")
            .expect("object");
        archived += String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.contains(&genesys_id))
            .count();
    }
    assert_eq!(archived, 2, "both deliveries of the agent's webhook");

    // Analytics: both directions and the three statuses reached ClickHouse, once each.
    let clickhouse =
        wabaflow_sinks::clickhouse::ClickHouseClient::new(&rig.config.clickhouse).expect("client");
    let db = rig.config.clickhouse.database.clone();
    let query = format!(
        "SELECT (SELECT uniqExact(event_id) FROM {db}.message_events WHERE direction = 'inbound'), \
                (SELECT uniqExact(event_id) FROM {db}.message_events WHERE direction = 'outbound'), \
                (SELECT uniqExact(event_id) FROM {db}.status_events WHERE wamid = '{}')",
        sends[0].wamid
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut counts = String::new();
    while tokio::time::Instant::now() < deadline {
        counts = clickhouse
            .query(&query)
            .await
            .expect("query")
            .trim()
            .to_owned();
        if counts == "1\t1\t3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts, "1\t1\t3",
        "inbound, outbound, statuses of the reply"
    );
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

    rig.meta
        .add_template(Template::approved("ticket_update", "en_US", 1));
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
    // The template is billable (utility, outside the window): the meter prices its status from
    // the sample price book (utility, any market: 0.0040) and debits acme's wallet once.
    let store = wabaflow_store::RedisStore::connect(
        &rig.config.store.redis_url,
        &rig.config.store.key_prefix,
    )
    .await
    .expect("redis");
    let wallets = wabaflow_store::wallet::Wallets::new(std::sync::Arc::new(store));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while wallets.balance("acme").await.expect("balance") == 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wallets.balance("acme").await.expect("balance"), -4_000);
    let ledger = wallets.ledger("acme").await.expect("ledger");
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(
        ledger[0].reference,
        format!("meter:message:{}", sends[0].wamid)
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_meta_refuses_fails_once_with_its_reason_and_is_not_retried() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    rig.meta
        .add_template(Template::approved("renewal", "en_US", 1));
    let customer = "5511912345678";
    // Not in the business account's templates in this language, then one body parameter short.
    let unknown = rig
        .agent
        .template(customer, "ns@renewal", "pt-BR", &[("1", "maio")]);
    let short = rig.agent.template(customer, "ns@renewal", "en-US", &[]);
    for template in [&unknown, &short] {
        assert!(rig.agent.post(template).await.accepted());
    }
    let ids = [&unknown, &short].map(|t| t["id"].as_str().expect("id").to_owned());
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            ids.iter().all(|id| !statuses_for(r, id).is_empty())
        })
        .await;
    let receipt = |id: &str| {
        let found: Vec<_> = receipts
            .iter()
            .filter(|(_, r)| r["id"] == id)
            .map(|(_, r)| r.clone())
            .collect();
        assert_eq!(found.len(), 1, "one receipt for {id}: {found:?}");
        found[0].clone()
    };
    let (unknown, short) = (receipt(&ids[0]), receipt(&ids[1]));
    for (failed, meta_says) in [
        (&unknown, "template name (renewal) does not exist in pt_BR"),
        (
            &short,
            "body: number of localizable_params (0) does not match the expected number of params (1)",
        ),
    ] {
        assert_eq!(failed["status"], "Failed", "{failed}");
        assert_eq!(failed["reasons"][0]["code"], "InvalidMessageStructure");
        assert!(
            failed["reasons"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(meta_says)),
            "{failed}"
        );
    }
    // Each was asked once and refused once: a refusal is final, not retried.
    assert!(rig.meta.sends().is_empty(), "Meta took nothing");
    assert_eq!(rig.meta.send_stats().rejected, 2);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_to_a_number_not_on_whatsapp_reaches_the_agent_as_an_invalid_destination() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    rig.meta
        .add_template(Template::approved("renewal", "en_US", 1));
    let landline = "551133334444";
    rig.meta.not_on_whatsapp(landline);
    let template = rig
        .agent
        .template(landline, "ns@renewal", "en-US", &[("1", "May")]);
    let id = template["id"].as_str().expect("id").to_owned();
    assert!(rig.agent.post(&template).await.accepted());
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            statuses_for(r, &id).iter().any(|s| s == "Failed")
        })
        .await;
    assert_eq!(statuses_for(&receipts, &id), ["Failed"], "{receipts:?}");
    let failed = &receipts
        .iter()
        .find(|(_, r)| r["id"] == id.as_str())
        .expect("the receipt")
        .1;
    assert_eq!(
        failed["reasons"][0]["code"], "InvalidDestination",
        "{failed}"
    );
    assert!(
        failed["reasons"][0]["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("undeliverable")),
        "{failed}"
    );
    // Meta took it once: an undeliverable recipient is not retried.
    assert_eq!(rig.meta.sends().len(), 1);
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

/// Meta takes a reply but its answer is lost (the sink times out): the reply is not sent again,
/// its first status webhook confirms it through `biz_opaque_callback_data`, and the agent gets
/// Sent, Delivered and Read as for any reply. When no status comes within
/// `whatsapp.confirm_secs`, the reply is reported failed, still sent only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_whose_answer_was_lost_is_confirmed_by_its_status_and_never_sent_twice() {
    use wabaflow_store::StateStore;
    use wabaflow_store::sends::{SendState, send_record_key};

    let rig = Rig::start_with(
        GenesysSimConfig::default(),
        MetaSimConfig::default(),
        |config| {
            // Shorter than the status webhook's way through the inbound chain: the sink is left
            // waiting for it.
            config.whatsapp.timeout_ms = 300;
            config.whatsapp.confirm_secs = 5;
        },
    )
    .await;
    let customer = Customer::new("16505551234", "Sheena");
    customer_writes(&rig, &customer, 0).await;
    let store = wabaflow_store::RedisStore::connect(
        &rig.config.store.redis_url,
        &rig.config.store.key_prefix,
    )
    .await
    .expect("redis");

    rig.meta.lose_next_answers(1);
    let reply = rig
        .agent
        .text(&customer.wa_id, "Your refund is on its way.");
    let confirmed_id = reply["id"].as_str().expect("id").to_owned();
    assert!(rig.agent.post(&reply).await.accepted());
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            statuses_for(r, &confirmed_id).contains(&"Read".to_owned())
        })
        .await;
    assert_eq!(
        statuses_for(&receipts, &confirmed_id),
        vec!["Sent", "Delivered", "Read"],
        "{receipts:?}"
    );
    let sends = rig.meta.sends();
    assert_eq!(sends.len(), 1, "sent once: {sends:?}");
    let record = store
        .fields(&send_record_key(&format!("send:genesys:{confirmed_id}")))
        .await
        .expect("send record");
    assert_eq!(
        SendState::from_fields(&record),
        SendState::Sent {
            wamid: sends[0].wamid.clone(),
            message_status: Some("accepted".into())
        }
    );
    assert_eq!(
        record.get("confirmed_by").map(String::as_str),
        Some("status_webhook"),
        "the wamid came from the status, not from Meta's answer"
    );

    // Now the statuses go nowhere: the next lost answer is never confirmed.
    rig.meta
        .subscribe(PHONE_NUMBER_ID, "http://127.0.0.1:9/", "acme-app-secret");
    rig.meta.lose_next_answers(1);
    let reply = rig
        .agent
        .text(&customer.wa_id, "And a voucher for the delay.");
    let lost_id = reply["id"].as_str().expect("id").to_owned();
    assert!(rig.agent.post(&reply).await.accepted());
    let receipts = rig
        .genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            !statuses_for(r, &lost_id).is_empty()
        })
        .await;
    let failed = receipts
        .iter()
        .find(|(_, r)| r["id"] == lost_id.as_str())
        .map(|(_, r)| r.clone())
        .expect("a receipt");
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert!(
        failed["reasons"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not sent again")),
        "{failed}"
    );
    let sends = rig.meta.sends();
    assert_eq!(sends.len(), 2, "each reply sent once: {sends:?}");
    assert_eq!(
        sends[1].request.biz_opaque_callback_data.as_deref(),
        Some(format!("send:genesys:{lost_id}").as_str())
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_replies_run_at_the_number_limit_without_a_single_130429() {
    // Everything but the sender first: the 1 000 sends queue up in wa.send.v1, so what is measured
    // is the sender's pacing, not how fast the test machine runs the stages before it.
    let upstream: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::WhatsApp)
        .collect();
    let rig = Rig::start_roles(
        GenesysSimConfig::default(),
        MetaSimConfig::default(),
        &upstream,
        |_| {},
    )
    .await;
    let records = rig.records().await;
    let customers: Vec<String> = (0..500).map(|i| format!("4477009{i:05}")).collect();
    // The customers wrote earlier today: their windows are open (mapping and Meta agree).
    for user in &customers {
        let contact = wabaflow_store::records::InboundContact {
            tenant: "acme",
            phone_number_id: PHONE_NUMBER_ID,
            user,
            wa_id: Some(user),
            user_id: None,
            contact_name: None,
            at: chrono::Utc::now() - chrono::Duration::hours(1),
        };
        records
            .touch_inbound(&format!("{PHONE_NUMBER_ID}:{user}"), &contact)
            .await
            .expect("mapping");
        rig.meta.customer_wrote(PHONE_NUMBER_ID, user);
    }
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..2 {
        for user in &customers {
            let text = format!("reply {round} to {user}");
            assert!(
                rig.agent
                    .post(&rig.agent.text(user, &text))
                    .await
                    .accepted()
            );
            expected.entry(user.clone()).or_default().push(text);
        }
    }
    let queued = support::TopicReader::new(
        &WA_SEND.qualified(&rig.config.kafka.topic_prefix),
        WA_SEND.partitions,
    )
    .until(Duration::from_secs(60), |r| r.len() >= 1_000)
    .await;
    assert_eq!(
        queued.len(),
        1_000,
        "the stages before the sender queued every send"
    );
    let sender = Node::start(&rig.config, &[Role::WhatsApp], None, Shutdown::new())
        .await
        .expect("sender starts");
    let sends = rig
        .meta
        .wait_for_sends(1_000, Duration::from_secs(120))
        .await;
    assert_eq!(sends.len(), 1_000);
    sender.shutdown.trigger();
    sender.wait().await.expect("sender stops");
    let stats = rig.meta.send_stats();
    assert_eq!(stats.throughput_limited, 0, "{stats:?}");
    assert_eq!(stats.pair_limited, 0, "{stats:?}");

    // Throughput between the first and the last send, against the simulator's 80/s.
    let first = sends.first().expect("sends").at;
    let last = sends.last().expect("sends").at;
    let rate = 999.0 / last.duration_since(first).as_secs_f64();
    println!("sink:whatsapp sent {rate:.1} messages/s against a limit of 80/s");
    assert!(
        (72.0..=80.0 * 1.02).contains(&rate),
        "{rate:.1}/s is not within 10% of 80/s"
    );

    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for send in &sends {
        let json = serde_json::to_value(&send.request).expect("json");
        got.entry(json["to"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(json["text"]["body"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(got, expected, "every reply once, in order per customer");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_replies_to_one_customer_are_paced_under_the_pair_limit() {
    // The pair limit scaled down (one per 150 ms, bursts of 3) so the test takes seconds.
    let rig = Rig::start_with(
        GenesysSimConfig::default(),
        MetaSimConfig {
            pair_interval: Duration::from_millis(150),
            pair_burst: 3.0,
            ..MetaSimConfig::default()
        },
        |config| {
            config.whatsapp.pair_interval_ms = 150;
            config.whatsapp.pair_burst = 3;
        },
    )
    .await;
    let customer = Customer::new("16505550000", "Pat");
    customer_writes(&rig, &customer, 0).await;
    let expected: Vec<String> = (0..30).map(|i| format!("step {i}")).collect();
    for text in &expected {
        assert!(
            rig.agent
                .post(&rig.agent.text(&customer.wa_id, text))
                .await
                .accepted()
        );
    }
    let sends = rig.meta.wait_for_sends(30, Duration::from_secs(60)).await;
    let bodies: Vec<String> = sends
        .iter()
        .map(|s| {
            serde_json::to_value(&s.request).expect("json")["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(bodies, expected);
    assert_eq!(
        rig.meta.send_stats().pair_limited,
        0,
        "{:?}",
        rig.meta.send_stats()
    );
    let span = sends[29].at.duration_since(sends[0].at);
    assert!(
        span >= Duration::from_millis(150 * 26),
        "not paced: {span:?}"
    );
    rig.stop().await;
}

/// `sink:whatsapp` as its own process, SIGKILLed while it sends 300 replies and restarted: the
/// customer never receives a message twice, and every send is accounted for — delivered to Meta,
/// or (at most the one in flight at the kill) reported failed as "not sent again".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whatsapp_sink_killed_mid_stream_sends_nothing_twice_and_loses_nothing() {
    use std::process::Stdio;

    use wabaflow_pipeline::Record;
    use wabaflow_schemas::topics::{WA_SEND, WA_SEND_RESULTS};
    use wabaflow_schemas::whatsapp::{SendBody, SendRequest, TextBody};
    use wabaflow_schemas::{ConversationKey, Envelope, Event, SendOutcome, Source};
    use wabaflow_store::tenants::TenantRegistry;

    const TOTAL: usize = 300;
    let meta = wabaflow_sims::meta::MetaSim::start(MetaSimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        throughput_mps: 1_000.0,
        ..MetaSimConfig::default()
    })
    .await
    .expect("meta sim");
    let mut config = support::isolated_config();
    support::create_topics(&config).await;
    let key = wabaflow_store::tenants::EncryptionKey::generate();
    let store =
        wabaflow_store::RedisStore::connect(&config.store.redis_url, &config.store.key_prefix)
            .await
            .expect("redis");
    let registry = TenantRegistry::new(std::sync::Arc::new(store), &key);
    registry
        .put(&wabaflow_schemas::tenant::Tenant {
            id: "acme".into(),
            phone_number_id: PHONE_NUMBER_ID.into(),
            display_phone_number: None,
            app_secret: wabaflow_schemas::Secret::new("a"),
            verify_token: wabaflow_schemas::Secret::new("v"),
            whatsapp_token: wabaflow_schemas::Secret::new("t"),
            genesys: wabaflow_schemas::tenant::GenesysIntegration {
                region: "mypurecloud.ie".into(),
                integration_id: "int-acme".into(),
                client_id: "c".into(),
                client_secret: wabaflow_schemas::Secret::new("s"),
                webhook_secret: wabaflow_schemas::Secret::default(),
            },
        })
        .await
        .expect("tenant");
    config.kafka.message_timeout_ms = 30_000;
    let prefix = config.kafka.topic_prefix.clone();
    let logs = std::env::temp_dir().join(format!("{prefix}whatsapp"));
    std::fs::create_dir_all(&logs).expect("log dir");
    let spawn = |run: usize| {
        let log = std::fs::File::create(logs.join(format!("run-{run}.log"))).expect("log file");
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wabaflow"))
            .args(["run", "--roles", "sink:whatsapp"])
            .env("WABAFLOW_KAFKA__BROKERS", &config.kafka.brokers)
            .env("WABAFLOW_KAFKA__TOPIC_PREFIX", &prefix)
            .env("WABAFLOW_KAFKA__INSTANCE_ID", "whatsapp-0")
            .env("WABAFLOW_STORE__REDIS_URL", &config.store.redis_url)
            .env("WABAFLOW_STORE__KEY_PREFIX", &config.store.key_prefix)
            .env("WABAFLOW_TENANCY__ENCRYPTION_KEY", key.to_base64())
            .env("WABAFLOW_META__GRAPH_URL", meta.base_url())
            .env("WABAFLOW_WHATSAPP__MPS", "200")
            // No status webhooks here: a send in flight at the kill is not confirmed.
            .env("WABAFLOW_WHATSAPP__CONFIRM_SECS", "2")
            .env("WABAFLOW_ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("wabaflow starts")
    };

    let topic = WA_SEND.qualified(&prefix);
    let mut records = Vec::new();
    for i in 0..TOTAL {
        let user = format!("3161234{i:04}");
        let send_key = format!("send:test:{i}");
        let mut envelope = Envelope::new(
            Source::Genesys,
            ConversationKey::conversation(PHONE_NUMBER_ID, &user),
            None,
            chrono::Utc::now(),
            None,
            Event::WhatsAppSend {
                phone_number_id: PHONE_NUMBER_ID.into(),
                send_key: send_key.clone(),
                genesys_message_id: Some(format!("g{i}")),
                window_open: true,
                request: Box::new(SendRequest {
                    messaging_product: "whatsapp".into(),
                    recipient_type: Some("individual".into()),
                    to: Some(user.clone()),
                    recipient: None,
                    biz_opaque_callback_data: Some(send_key),
                    context: None,
                    body: SendBody::Text {
                        text: TextBody {
                            body: format!("reply {i}"),
                            preview_url: None,
                        },
                    },
                }),
            },
        );
        envelope.tenant = Some("acme".into());
        records.push(Record::new(
            topic.as_str(),
            Some(envelope.conversation_key.to_string()),
            envelope.to_json(),
        ));
    }
    // Each record a batch of its own: the sink is killed and restarted (see `send_unbatched`).
    support::send_unbatched(&config.kafka, &records).await;

    let mut child = spawn(1);
    let sent = meta
        .wait_for_sends(TOTAL / 3, Duration::from_secs(60))
        .await;
    assert!(sent.len() >= TOTAL / 3, "the sink never got going");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let killed_at = meta.sends().len();
    let mut child = spawn(2);

    let results = support::TopicReader::new(
        &WA_SEND_RESULTS.qualified(&prefix),
        WA_SEND_RESULTS.partitions,
    );
    let mut accounted: HashMap<String, SendOutcome> = HashMap::new();
    // Generous bounds: the restarted process rejoins the group and works through the rest while
    // the other test of this binary competes for the two cores.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while accounted.len() < TOTAL && tokio::time::Instant::now() < deadline {
        let Some(record) = results.next(Duration::from_secs(90)).await else {
            break;
        };
        if let Ok(Envelope {
            event: Event::SendResult {
                send_key, outcome, ..
            },
            ..
        }) = Envelope::from_json(&record.payload)
        {
            accounted.insert(send_key, outcome);
        }
    }
    child.start_kill().expect("stop");
    let _ = child.wait().await;

    let sends = meta.sends();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for send in &sends {
        *per_key
            .entry(
                send.request
                    .biz_opaque_callback_data
                    .clone()
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    let doubled: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");
    let missing: Vec<String> = (0..TOTAL)
        .map(|i| format!("send:test:{i}"))
        .filter(|k| !accounted.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "every send has a result; missing {missing:?} ({} of them sent to Meta); logs in {}",
        missing.iter().filter(|k| per_key.contains_key(*k)).count(),
        logs.display()
    );
    let failed: Vec<_> = accounted
        .iter()
        .filter(|(_, o)| matches!(o, SendOutcome::Failed { .. }))
        .collect();
    // The sink sends to many customers at once, so a handful of requests can be in flight when
    // the process dies; only those may be unknown.
    assert!(
        failed.len() <= 10,
        "only the sends in flight at the kill may be unknown: {failed:?}"
    );
    for (key, outcome) in &accounted {
        let copies = per_key.get(key).copied().unwrap_or(0);
        match outcome {
            SendOutcome::Accepted { .. } => {
                assert_eq!(copies, 1, "{key} accepted but sent {copies} times")
            }
            // Ambiguous: the request may or may not have reached Meta before the kill; it was
            // not sent again either way.
            SendOutcome::Failed { .. } => assert!(copies <= 1, "{key}"),
        }
    }
    assert!(
        per_key.keys().all(|k| accounted.contains_key(k)),
        "a send without a result"
    );
    println!(
        "killed after {killed_at} sends; {} sent in all, {} reported as not sent again",
        sends.len(),
        failed.len()
    );
}
