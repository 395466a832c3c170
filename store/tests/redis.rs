//! What only the Redis store has: calls made concurrently travel as pipelines, and each caller must
//! still get its own answer — its own error too — and scripts Redis forgot must be loaded again.
//! Redis at `WABAFLOW_REDIS_URL` (default `redis://127.0.0.1:6379`, started by
//! `scripts/services.sh up`).

use std::sync::Arc;
use std::time::Duration;

use wabaflow_store::{Claim, RedisStore, StateStore};

fn url() -> String {
    std::env::var("WABAFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn store(prefix: &str) -> Arc<dyn StateStore> {
    let url = url();
    let store = RedisStore::connect(&url, prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} ({e}); start it with scripts/services.sh up"));
    Arc::new(store)
}

fn prefix() -> String {
    format!("test-{}:", uuid::Uuid::now_v7())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_each_get_their_own_answer() {
    let store = store(&prefix()).await;
    store.put("plain", b"not a hash", None).await.expect("put");
    let ttl = Duration::from_secs(60);
    // 200 keys, each claimed by two owners at once, and between them reads of a plain value as
    // a record, which Redis refuses (WRONGTYPE): only those callers may see an error.
    let mut calls = Vec::new();
    for i in 0..200 {
        for owner in ["a", "b"] {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                let claim = store.claim(&format!("k{i}"), owner, ttl).await;
                (i, Some(claim), None)
            }));
        }
        if i % 20 == 0 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                (i, None, Some(store.fields("plain").await))
            }));
        }
    }
    let mut claims = vec![Vec::new(); 200];
    let mut refused = 0;
    for call in calls {
        match call.await.expect("join") {
            (i, Some(claim), None) => claims[i].push(claim.expect("a claim is answered")),
            (_, None, Some(read)) => {
                assert!(read.is_err(), "a plain value read as a record: {read:?}");
                refused += 1;
            }
            other => unreachable!("{other:?}"),
        }
    }
    assert_eq!(refused, 10);
    for (i, mut seen) in claims.into_iter().enumerate() {
        seen.sort_by_key(|claim| *claim == Claim::Taken);
        assert_eq!(seen, [Claim::New, Claim::Taken], "key k{i}");
    }
    // Each key's record of its winner is there to be completed.
    store.complete("k7", "a").await.expect("complete");
    store.complete("k7", "b").await.expect("complete");
    let replays = [
        store.claim("k7", "a", ttl).await.expect("claim"),
        store.claim("k7", "b", ttl).await.expect("claim"),
    ];
    assert!(replays.contains(&Claim::Completed), "{replays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_that_redis_forgot_are_loaded_again() {
    let prefix = prefix();
    let store = store(&prefix).await;
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.claim("once", "a", ttl).await.expect("claim"),
        Claim::New
    );

    // As after a Redis restart: the script cache is empty, every EVALSHA answers NOSCRIPT.
    let client = redis::Client::open(url()).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .expect("SCRIPT FLUSH");

    let again: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.claim(&format!("after-{i}"), "a", ttl).await })
        })
        .collect();
    for claim in again {
        assert_eq!(claim.await.expect("join").expect("claim"), Claim::New);
    }
    assert_eq!(
        store.claim("once", "b", ttl).await.expect("claim"),
        Claim::Taken
    );
    store
        .set_fields("record", &[("status", "sent")], Some(ttl))
        .await
        .expect("a script-backed write after the flush");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}record"))
        .query_async(&mut admin)
        .await
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
}
