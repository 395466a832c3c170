//! Sender: `sink:whatsapp` sends/s against the Meta simulator (limits raised) vs a bare HTTP
//! client loop posting the same requests to the same endpoint. Both are timed by the simulator,
//! from the first accepted send to the last, so start-up (a consumer group join) is not counted.
//! The sink does everything a real send needs: a claim and an attempt mark in Redis before the
//! call, the wamid and tracking after it, pacing, and the result event with its ack.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use futures::StreamExt;
use tokio::time::Instant;
use wabaflow_pipeline::Config;
use wabaflow_schemas::topics::WA_SEND;
use wabaflow_schemas::whatsapp::{SendBody, SendRequest, TextBody};
use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};

use super::rig;
use super::{Bench, Outcome, Ratio, Target, scaled, until};
use crate::node::Role;

const CONCURRENCY: usize = 64;

pub async fn run(base: &Config, scale: f64) -> anyhow::Result<Outcome> {
    let mut config = rig::isolated(base, "sender");
    let sims = rig::Sims::start().await?;
    sims.wire(&mut config);
    wabaflow_pipeline::topics::create_all(&config.kafka).await?;
    let meta = &sims.meta;
    let n = scaled(10_000.0, scale, 200);

    // Baseline: the same requests, straight from a client loop.
    let url = format!(
        "{}/{}/{}/messages",
        config.meta.graph_url,
        config.meta.api_version,
        rig::PHONE_NUMBER_ID
    );
    let http = crate::replay::client(CONCURRENCY)?;
    let requests: Vec<SendRequest> = (0..n).map(request).collect();
    futures::stream::iter(&requests)
        .for_each_concurrent(CONCURRENCY, |request| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let _ = http
                    .post(url)
                    .bearer_auth(rig::WA_TOKEN)
                    .json(request)
                    .send()
                    .await;
            }
        })
        .await;
    ensure!(
        meta.send_stats().accepted as u64 == n,
        "the simulator accepted {} of the baseline's {n} sends",
        meta.send_stats().accepted
    );
    let baseline = span(&meta.sends(), 0)?;

    // wabaflow: the same requests as send events, produced beforehand.
    let events: Vec<Envelope> = (n..2 * n).map(send_event).collect();
    rig::preload(
        &config,
        &WA_SEND.qualified(&config.kafka.topic_prefix),
        &events,
    )
    .await?;
    let node = rig::node(&config, &[Role::WhatsApp]).await?;
    until(
        "every send at the Meta simulator",
        Duration::from_secs(600),
        || meta.send_stats().accepted as u64 >= 2 * n,
    )
    .await?;
    rig::stop(node).await?;
    let sends = meta.sends();
    ensure!(
        sends.len() as u64 == 2 * n,
        "{} sends for {} requests: something was sent twice",
        sends.len(),
        2 * n
    );
    let ours = span(&sends, n as usize)?;

    let rate = |took: Duration| (n - 1).max(1) as f64 / took.as_secs_f64().max(1e-6);
    Ok(Outcome {
        bench: Bench::Sender,
        ratios: vec![Ratio {
            what: "sink:whatsapp vs bare HTTP loop".into(),
            ours: rate(ours),
            baseline: rate(baseline),
            unit: "sends/s",
            target: Target::AtLeast(0.25),
        }],
        details: vec![format!(
            "{n} texts to {n} customers each; baseline {CONCURRENCY} concurrent requests; the sink at max_in_flight {}",
            config.kafka.max_in_flight
        )],
    })
}

/// First to last acceptance among `sends[from..]`.
fn span(
    sends: &[wabaflow_sims::meta::send::AcceptedSend],
    from: usize,
) -> anyhow::Result<Duration> {
    let times: Vec<Instant> = sends.iter().skip(from).map(|s| s.at).collect();
    let first = times.iter().min().context("no send")?;
    let last = times.iter().max().context("no send")?;
    Ok(*last - *first)
}

/// The `i`th send: every one to a different customer.
fn request(i: u64) -> SendRequest {
    SendRequest {
        messaging_product: "whatsapp".into(),
        recipient_type: Some("individual".into()),
        to: Some(format!("{}", 31_610_000_000u64 + i)),
        recipient: None,
        biz_opaque_callback_data: Some(format!("send:bench:{i}")),
        context: None,
        body: SendBody::Text {
            text: TextBody {
                body: "Your order has shipped and arrives tomorrow.".into(),
                preview_url: None,
            },
        },
    }
}

fn send_event(i: u64) -> Envelope {
    let request = request(i);
    let to = request.to.clone().unwrap_or_default();
    let mut envelope = Envelope::new(
        Source::Genesys,
        ConversationKey::conversation(rig::PHONE_NUMBER_ID, &to),
        None,
        chrono::Utc::now(),
        None,
        Event::WhatsAppSend {
            phone_number_id: rig::PHONE_NUMBER_ID.into(),
            send_key: format!("send:bench:{i}"),
            genesys_message_id: Some(format!("g-{i}")),
            window_open: true,
            request: Box::new(request),
        },
    );
    envelope.tenant = Some(rig::TENANT.into());
    envelope
}
