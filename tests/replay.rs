//! A smoke run of `wabaflow replay` at tiny scale, so the tool the benchmarks rely on cannot rot:
//! the shared fixtures (or the project's golden cases) replayed, re-signed for a tenant, against
//! a real edge; every request is accepted and every message and status lands in Kafka.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use wabaflow::node::{Node, Role};
use wabaflow::replay::{ReplayArgs, load, run};
use wabaflow_pipeline::Shutdown;
use wabaflow_schemas::Secret;
use wabaflow_schemas::tenant::{GenesysIntegration, Tenant};
use wabaflow_schemas::topics::WA_INBOUND;
use wabaflow_store::tenants::EncryptionKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_at_the_rate_and_every_event_lands() {
    let mut config = support::isolated_config();
    config.tenancy.encryption_key = Secret::new(EncryptionKey::generate().to_base64());
    config.tenants = vec![Tenant {
        id: "acme".into(),
        phone_number_id: "106540352242922".into(),
        display_phone_number: None,
        app_secret: Secret::new("replay-secret"),
        verify_token: Secret::new("v"),
        whatsapp_token: Secret::new("t"),
        genesys: GenesysIntegration {
            region: "mypurecloud.ie".into(),
            integration_id: "int".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            webhook_secret: Secret::default(),
        },
    }];
    support::create_topics(&config).await;
    let node = Node::start(&config, &[Role::Ingest], None, Shutdown::new())
        .await
        .expect("node starts");
    let fixtures = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../shared/fixtures/meta");
    let source = if fixtures.is_dir() {
        fixtures
    } else {
        PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("tests/golden/meta")
    };
    let args = ReplayArgs {
        paths: vec![source.clone()],
        url: format!(
            "http://{}/webhooks/meta/acme",
            node.ingest_addr.expect("edge")
        ),
        secret: "replay-secret".into(),
        phone_number_id: "106540352242922".into(),
        rate: 200.0,
        count: 120,
        max_in_flight: 256,
        quiet: true,
    };
    // Warm up: the first produce waits for the idempotent producer's id and the topic metadata.
    let warmup = run(&ReplayArgs {
        count: 1,
        ..args.clone()
    })
    .await
    .expect("warm-up");
    assert_eq!(warmup.accepted, 1, "{warmup}");
    let report = run(&args).await.expect("replayed");
    println!("{report}");
    assert_eq!(
        (report.sent, report.accepted, report.skipped),
        (120, 120, 0),
        "{report}"
    );
    assert!(
        report.elapsed >= Duration::from_millis(590),
        "open loop paces at 200/s: {report}"
    );

    // Each copy's messages and statuses got their own ids: every one is an event in wa.inbound.v1
    // or, if the edge cannot key it (a sample without a sender), a dead letter with the reason.
    let bodies = load(&[source]).expect("bodies");
    let ids = |n: usize| -> usize {
        let body: serde_json::Value = serde_json::from_slice(&wabaflow::replay::personalize(
            &bodies[n % bodies.len()],
            "x",
            0,
        ))
        .expect("json");
        body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["changes"].as_array().into_iter().flatten())
            .map(|c| {
                let count = |k: &str| c["value"][k].as_array().map_or(0, Vec::len);
                count("messages") + count("statuses")
            })
            .sum()
    };
    let expected = ids(0) + (0..120).map(ids).sum::<usize>();
    let prefix = &config.kafka.topic_prefix;
    let events = support::TopicReader::new(&WA_INBOUND.qualified(prefix), WA_INBOUND.partitions);
    let dead = support::TopicReader::new(&WA_INBOUND.dlq(prefix), WA_INBOUND.partitions);
    let mut landed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while landed < expected && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(_) = events.next(Duration::from_secs(2)) => landed += 1,
            Some(_) = dead.next(Duration::from_secs(2)) => landed += 1,
            else => {}
        }
    }
    assert_eq!(landed, expected, "events plus dead letters");
    node.shutdown.trigger();
    node.wait().await.expect("node stops");
}
