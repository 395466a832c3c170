//! The S3 object store against a real S3 API: s3s-fs on `WABAFLOW_S3_ENDPOINT` (default
//! `http://127.0.0.1:8014`, started by `scripts/services.sh up`), SigV4 enforced.

use std::time::Duration;

use bytes::Bytes;
use wabaflow_schemas::Secret;
use wabaflow_store::objects::{ObjectStore, S3Settings, S3Store};

fn store() -> S3Store {
    S3Store::new(S3Settings {
        endpoint: std::env::var("WABAFLOW_S3_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:8014".into()),
        region: "us-east-1".into(),
        access_key: "minioadmin".into(),
        secret_key: Secret::new("minioadmin"),
        path_style: true,
        bucket_prefix: format!("t{}-", rand_suffix()),
    })
    .expect("settings")
}

fn rand_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
}

#[tokio::test]
async fn s3_round_trip_list_and_presigned_get() {
    let store = store();
    store.ensure_bucket("media-inbound").await.expect("bucket");
    store
        .ensure_bucket("media-inbound")
        .await
        .expect("idempotent");
    let body = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>());
    store
        .put(
            "media-inbound",
            "acme/1065/a.jpg",
            body.clone(),
            "image/jpeg",
        )
        .await
        .expect("put");
    store
        .put(
            "media-inbound",
            "other/1/b.jpg",
            Bytes::from_static(b"x"),
            "image/jpeg",
        )
        .await
        .expect("put");
    assert!(
        store
            .exists("media-inbound", "acme/1065/a.jpg")
            .await
            .expect("head")
    );
    assert!(
        !store
            .exists("media-inbound", "acme/none")
            .await
            .expect("head")
    );
    assert_eq!(
        store
            .get("media-inbound", "acme/1065/a.jpg")
            .await
            .expect("get"),
        Some(body.clone())
    );
    assert_eq!(
        store.list("media-inbound", "acme/").await.expect("list"),
        vec!["acme/1065/a.jpg".to_owned()]
    );

    // A presigned URL works without credentials; tampering with it does not.
    let url = store
        .presign_get("media-inbound", "acme/1065/a.jpg", Duration::from_secs(600))
        .expect("presign");
    let fetched = reqwest::get(&url).await.expect("GET");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.expect("body"), body);
    let forged = url.replace("a.jpg", "b.jpg");
    assert_eq!(reqwest::get(&forged).await.expect("GET").status(), 403);
}
