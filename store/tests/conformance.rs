//! One conformance suite for every `StateStore` implementation reachable here: memory always,
//! Redis at `WABAFLOW_REDIS_URL` (default `redis://127.0.0.1:6379`, started by
//! `scripts/services.sh up`). A ScyllaDB store, when it is written, joins the same suite.

use std::sync::Arc;
use std::time::Duration;

use wabaflow_store::{Claim, MemoryStore, RedisStore, StateStore};

async fn claim_protocol(store: &dyn StateStore) {
    let key = format!("dedupe:{}", uuid::Uuid::now_v7());
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.claim(&key, "p0@10", ttl).await.expect("claim"),
        Claim::New
    );
    // The same record again before completing: it crashed mid-way, redo the work.
    assert_eq!(
        store.claim(&key, "p0@10", ttl).await.expect("claim"),
        Claim::Resumed
    );
    // A different record with the same key: a duplicate.
    assert_eq!(
        store.claim(&key, "p3@99", ttl).await.expect("claim"),
        Claim::Taken
    );
    // Completing by a non-owner changes nothing.
    store.complete(&key, "p3@99").await.expect("complete");
    assert_eq!(
        store.claim(&key, "p0@10", ttl).await.expect("claim"),
        Claim::Resumed
    );
    store.complete(&key, "p0@10").await.expect("complete");
    assert_eq!(
        store.claim(&key, "p0@10", ttl).await.expect("claim"),
        Claim::Completed
    );
    assert_eq!(
        store.claim(&key, "p3@99", ttl).await.expect("claim"),
        Claim::Taken
    );
}

/// Claims made together answer as the same claims made one after another.
async fn claims_in_one_step(store: &dyn StateStore) {
    let id = uuid::Uuid::now_v7();
    let (a, b, c) = (
        format!("dedupe:{id}:a"),
        format!("dedupe:{id}:b"),
        format!("dedupe:{id}:c"),
    );
    let ttl = Duration::from_secs(60);
    let pair = |key: &str, owner: &str| (key.to_owned(), owner.to_owned());
    assert!(store.claim_all(&[], ttl).await.expect("nothing").is_empty());
    assert_eq!(
        store.claim(&c, "p1@4", ttl).await.expect("claim"),
        Claim::New
    );
    store.complete(&c, "p1@4").await.expect("complete");
    let found = store
        .claim_all(
            &[
                pair(&a, "p0@1"),
                pair(&b, "p0@2"),
                pair(&a, "p0@3"),
                pair(&c, "p1@4"),
                pair(&b, "p0@2"),
            ],
            ttl,
        )
        .await
        .expect("claims");
    assert_eq!(
        found,
        [
            Claim::New,
            Claim::New,
            Claim::Taken,
            Claim::Completed,
            Claim::Resumed
        ],
        "in order, each seeing the ones before it"
    );
    // Completing by a non-owner changes nothing; the owners' completions stick.
    store
        .complete_all(&[pair(&a, "p0@3"), pair(&b, "p0@2")])
        .await
        .expect("completes");
    store.complete_all(&[]).await.expect("nothing");
    assert_eq!(
        store.claim(&a, "p0@1", ttl).await.expect("claim"),
        Claim::Resumed
    );
    assert_eq!(
        store.claim(&b, "p0@2", ttl).await.expect("claim"),
        Claim::Completed
    );
}

/// A claim and its record read in one step agree with the two read apart.
async fn claim_with_fields(store: &dyn StateStore) {
    let id = uuid::Uuid::now_v7();
    let (key, record) = (format!("claim:{id}"), format!("send:{id}"));
    let ttl = Duration::from_secs(60);
    let (claim, fields) = store
        .claim_with_fields(&key, "p0@1", ttl, &record)
        .await
        .expect("claim");
    assert_eq!((claim, fields.len()), (Claim::New, 0));
    store
        .set_fields(&record, &[("attempt", "1"), ("wamid", "wamid.A")], None)
        .await
        .expect("set");
    let (claim, fields) = store
        .claim_with_fields(&key, "p0@1", ttl, &record)
        .await
        .expect("claim");
    assert_eq!(claim, Claim::Resumed);
    assert_eq!(fields.get("wamid").map(String::as_str), Some("wamid.A"));
    assert_eq!(fields.get("attempt").map(String::as_str), Some("1"));
    // A duplicate learns nothing of the record it does not own.
    let (claim, fields) = store
        .claim_with_fields(&key, "p2@7", ttl, &record)
        .await
        .expect("claim");
    assert_eq!((claim, fields.len()), (Claim::Taken, 0));
    store.complete(&key, "p0@1").await.expect("complete");
    let (claim, fields) = store
        .claim_with_fields(&key, "p0@1", ttl, &record)
        .await
        .expect("claim");
    assert_eq!((claim, fields.len()), (Claim::Completed, 0));
}

async fn claims_expire(store: &dyn StateStore) {
    let key = format!("dedupe:{}", uuid::Uuid::now_v7());
    assert_eq!(
        store
            .claim(&key, "a", Duration::from_millis(50))
            .await
            .expect("claim"),
        Claim::New
    );
    // Wait for the expiry by polling, bounded: no fixed sleep decides the outcome.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store
            .claim(&key, "b", Duration::from_secs(60))
            .await
            .expect("claim")
        {
            Claim::New => break,
            Claim::Taken => assert!(
                tokio::time::Instant::now() < deadline,
                "claim never expired"
            ),
            other => panic!("unexpected {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn concurrent_claimers_see_one_winner(store: Arc<dyn StateStore>) {
    let key = format!("dedupe:{}", uuid::Uuid::now_v7());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                store
                    .claim(&key, &format!("owner-{i}"), Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("join").expect("claim") == Claim::New {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn values_and_records(store: &dyn StateStore) {
    let id = uuid::Uuid::now_v7();
    let key = format!("tenant:{id}");
    assert_eq!(store.get(&key).await.expect("get"), None);
    store.put(&key, b"sealed", None).await.expect("put");
    assert_eq!(
        store.get(&key).await.expect("get").as_deref(),
        Some(&b"sealed"[..])
    );

    let short = format!("token:{id}");
    store
        .put(&short, b"t", Some(Duration::from_millis(30)))
        .await
        .expect("put");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get(&short).await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "value never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Two writers, each with its own fields: neither erases the other's.
    let record = format!("mapping:wa:{id}");
    assert!(store.fields(&record).await.expect("fields").is_empty());
    store
        .set_fields(
            &record,
            &[("tenant", "acme"), ("last_inbound_at", "t1")],
            None,
        )
        .await
        .expect("set");
    store
        .set_fields(&record, &[("genesys_conversation_id", "c1")], None)
        .await
        .expect("set");
    store
        .set_fields(&record, &[("last_inbound_at", "t2")], None)
        .await
        .expect("set");
    let fields = store.fields(&record).await.expect("fields");
    assert_eq!(fields.len(), 3, "{fields:?}");
    assert_eq!(fields["tenant"], "acme");
    assert_eq!(fields["last_inbound_at"], "t2");
    assert_eq!(fields["genesys_conversation_id"], "c1");
}

async fn counters_move_once_per_marker(store: &dyn StateStore) {
    let id = uuid::Uuid::now_v7();
    let balance = format!("wallet:{id}:balance");
    assert_eq!(
        store.add(&balance, 5_000_000).await.expect("add"),
        5_000_000
    );
    let debit = |reference: &'static str| {
        let marker = format!("wallet:{id}:entry:{reference}");
        let balance = balance.clone();
        async move {
            store
                .add_once(&marker, &balance, -62_500)
                .await
                .expect("add once")
        }
    };
    assert_eq!(debit("wamid.A").await, (true, 4_937_500));
    assert_eq!(
        debit("wamid.A").await,
        (false, 4_937_500),
        "a repeat applies nothing"
    );
    assert_eq!(debit("wamid.B").await, (true, 4_875_000));
}

/// A record written with a TTL expires; a later write without one keeps that expiry, and a
/// record written without one stays.
async fn records_expire(store: &dyn StateStore) {
    let id = uuid::Uuid::now_v7();
    let (expiring, lasting) = (format!("track:wa:{id}"), format!("mapping:wa:{id}"));
    store
        .set_fields(
            &expiring,
            &[("status", "sent")],
            Some(Duration::from_millis(300)),
        )
        .await
        .expect("set");
    store
        .set_fields(&expiring, &[("status", "delivered")], None)
        .await
        .expect("set");
    store
        .set_fields(&lasting, &[("tenant", "acme")], None)
        .await
        .expect("set");
    assert_eq!(
        store.fields(&expiring).await.expect("fields")["status"],
        "delivered"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store.fields(&expiring).await.expect("fields").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.fields(&lasting).await.expect("fields").len(), 1);
    // Written again after expiring, it starts afresh (only the new fields).
    store
        .set_fields(
            &expiring,
            &[("status", "read")],
            Some(Duration::from_secs(60)),
        )
        .await
        .expect("set");
    let fields = store.fields(&expiring).await.expect("fields");
    assert_eq!(fields.len(), 1, "{fields:?}");
}

async fn suite(store: Arc<dyn StateStore>) {
    counters_move_once_per_marker(&*store).await;
    values_and_records(&*store).await;
    claim_protocol(&*store).await;
    claims_in_one_step(&*store).await;
    claim_with_fields(&*store).await;
    claims_expire(&*store).await;
    records_expire(&*store).await;
    concurrent_claimers_see_one_winner(store).await;
}

#[tokio::test]
async fn memory_store_conforms() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms() {
    let url =
        std::env::var("WABAFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("test-{}:", uuid::Uuid::now_v7());
    let store = RedisStore::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} ({e}); start it with scripts/services.sh up"));
    suite(Arc::new(store)).await;
}
