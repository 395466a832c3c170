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

/// The claim values in Redis are what earlier builds wrote (`pending:{owner}`, then
/// `done:{owner}`), whichever call made them: a rolling upgrade, or a restart onto a newer build,
/// resumes and recognises the claims the older one left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_values_are_those_earlier_builds_wrote() {
    let store = store(&prefix()).await;
    let ttl = Duration::from_secs(60);
    let value = |key: &'static str| {
        let store = store.clone();
        async move {
            let raw = store.get(key).await.expect("get").expect("a claim value");
            String::from_utf8(raw).expect("text")
        }
    };
    let owner = "wa.inbound.v1/3@1207";
    store.claim("one", owner, ttl).await.expect("claim");
    let claims = [
        ("two".to_owned(), owner.to_owned()),
        ("three".to_owned(), "x/0@1".to_owned()),
    ];
    store.claim_all(&claims, ttl).await.expect("claim_all");
    store
        .claim_with_fields("four", owner, ttl, "record")
        .await
        .expect("claim_with_fields");
    assert_eq!(value("one").await, format!("pending:{owner}"));
    assert_eq!(value("two").await, format!("pending:{owner}"));
    assert_eq!(value("three").await, "pending:x/0@1");
    assert_eq!(value("four").await, format!("pending:{owner}"));

    store.complete("one", owner).await.expect("complete");
    store.complete_all(&claims).await.expect("complete_all");
    store
        .complete("four", "someone else")
        .await
        .expect("complete");
    assert_eq!(value("one").await, format!("done:{owner}"));
    assert_eq!(value("two").await, format!("done:{owner}"));
    assert_eq!(value("three").await, "done:x/0@1");
    assert_eq!(value("four").await, format!("pending:{owner}"));

    // A claim an older build left is resumed, or recognised as finished, by its owner.
    store
        .put("left", format!("pending:{owner}").as_bytes(), Some(ttl))
        .await
        .expect("put");
    store
        .put("finished", format!("done:{owner}").as_bytes(), Some(ttl))
        .await
        .expect("put");
    assert_eq!(
        store.claim("left", owner, ttl).await.expect("claim"),
        Claim::Resumed
    );
    let found = store
        .claim_all(&[("finished".to_owned(), owner.to_owned())], ttl)
        .await
        .expect("claim_all");
    assert_eq!(found, [Claim::Completed]);
}
