//! The simulators refuse what the real services refuse: missing or wrong credentials, expired
//! media URLs, malformed bodies, too many requests.

use std::time::Duration;

use serde_json::json;
use wabaflow_sims::genesys::{GenesysSim, GenesysSimConfig};
use wabaflow_sims::meta::{MetaSim, MetaSimConfig};

fn local() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

#[tokio::test]
async fn meta_media_needs_the_token_and_urls_expire() {
    let sim = MetaSim::start(MetaSimConfig {
        listen: local(),
        tokens: vec!["good".into()],
        ..MetaSimConfig::default()
    })
    .await
    .expect("start");
    let media = sim.add_media(b"jpeg bytes".to_vec(), "image/jpeg");
    let http = reqwest::Client::new();
    let lookup = format!("{}/v23.0/{}", sim.base_url(), media.id);

    let anonymous = http.get(&lookup).send().await.expect("send");
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], 190);
    let unknown = http
        .get(format!("{}/v23.0/404404", sim.base_url()))
        .bearer_auth("good")
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.expect("json")["error"]["error_subcode"],
        33
    );

    let found: serde_json::Value = http
        .get(&lookup)
        .bearer_auth("good")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(found["sha256"], media.sha256_hex);
    assert_eq!(found["file_size"], 10);
    let url = found["url"].as_str().expect("url");
    // The download URL needs the Bearer token too.
    assert_eq!(http.get(url).send().await.expect("send").status(), 401);
    let bytes = http
        .get(url)
        .bearer_auth("good")
        .send()
        .await
        .expect("send");
    assert_eq!(bytes.status(), 200);
    assert_eq!(bytes.bytes().await.expect("body").as_ref(), b"jpeg bytes");

    sim.expire_next_urls(1);
    let stale: serde_json::Value = http
        .get(&lookup)
        .bearer_auth("good")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let expired = http
        .get(stale["url"].as_str().expect("url"))
        .bearer_auth("good")
        .send()
        .await
        .expect("send");
    assert_eq!(expired.status(), 404);
    assert_eq!(sim.downloads(&media.id), 1);
}

#[tokio::test]
async fn meta_upload_takes_multipart_like_the_cloud_api() {
    let sim = MetaSim::start(MetaSimConfig {
        listen: local(),
        ..MetaSimConfig::default()
    })
    .await
    .expect("start");
    let http = reqwest::Client::new();
    let url = format!("{}/v23.0/1065/media", sim.base_url());
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "application/pdf")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF".to_vec()).file_name("a.pdf"),
        );
    let uploaded: serde_json::Value = http
        .post(&url)
        .bearer_auth("t")
        .multipart(form)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = uploaded["id"].as_str().expect("media id");
    let found: serde_json::Value = http
        .get(format!("{}/v23.0/{id}", sim.base_url()))
        .bearer_auth("t")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(found["mime_type"], "application/pdf");

    let without_product = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
    );
    let refused = http
        .post(&url)
        .bearer_auth("t")
        .multipart(without_product)
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 400);
}

async fn genesys(rate_limit: u32) -> (GenesysSim, reqwest::Client, String) {
    let sim = GenesysSim::start(GenesysSimConfig {
        listen: local(),
        clients: vec![("id".into(), "secret".into())],
        integrations: vec!["int-1".into()],
        rate_limit,
        rate_window: Duration::from_secs(60),
        ..GenesysSimConfig::default()
    })
    .await
    .expect("start");
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("id", Some("secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 86_400);
    let token = token["access_token"].as_str().expect("token").to_owned();
    (sim, http, token)
}

#[tokio::test]
async fn genesys_oauth_refuses_unknown_clients_and_other_grants() {
    let (sim, http, _) = genesys(300).await;
    let url = format!("{}/oauth/token", sim.base_url());
    let wrong = http
        .post(&url)
        .basic_auth("id", Some("nope"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let password = http
        .post(&url)
        .basic_auth("id", Some("secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .expect("send");
    assert_eq!(password.status(), 400);
}

#[tokio::test]
async fn genesys_inbound_validates_auth_shape_integration_and_rate() {
    let (sim, http, token) = genesys(3).await;
    let url = |integration: &str| {
        format!(
            "{}/api/v2/conversations/messages/{integration}/inbound/open/message?prefetchConversationId=true",
            sim.base_url()
        )
    };
    let message = json!({
        "channel": {"messageId": "wamid.1", "from": {"id": "16505551234", "idType": "Phone", "nickname": "S"},
                    "time": "2026-11-22T10:00:00.000Z"},
        "text": "hi"
    });
    let anonymous = http
        .post(url("int-1"))
        .json(&message)
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), 401);

    let mut empty = message.clone();
    empty.as_object_mut().expect("object").remove("text");
    let refused = http
        .post(url("int-1"))
        .bearer_auth(&token)
        .json(&empty)
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("required property 'content'")
    );

    let unknown = http
        .post(url("int-404"))
        .bearer_auth(&token)
        .json(&message)
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 404);

    let accepted = http
        .post(url("int-1"))
        .bearer_auth(&token)
        .json(&message)
        .send()
        .await
        .expect("send");
    assert_eq!(accepted.status(), 200);
    let answer: serde_json::Value = accepted.json().await.expect("json");
    assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(answer["conversationId"].as_str().is_some());

    // Three requests in this window were counted (two refused after auth, one accepted)…
    let limited = http
        .post(url("int-1"))
        .bearer_auth(&token)
        .json(&message)
        .send()
        .await
        .expect("send");
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(sim.messages().len(), 1);
    assert_eq!(sim.stats().rate_limited, 1);
}

#[tokio::test]
async fn the_customer_driver_signs_and_retries_until_a_200() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode};
    use wabaflow_sims::meta::driver::{CustomerDriver, RetryPolicy, signature};
    use wabaflow_sims::meta::webhooks::{BusinessNumber, Customer};

    // A callback that fails twice (a deploy, an outage), then accepts.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let signed = headers["x-hub-signature-256"]
                    .to_str()
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(signed, signature("app-secret", &body));
                if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let driver = CustomerDriver::new(
        format!("http://{addr}/hook"),
        "app-secret",
        RetryPolicy {
            first: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
    );
    let number = BusinessNumber::new("waba", "1065", "15550783881");
    let body = number.webhook(&Customer::new("16505551234", "S").text("hi", 1_749_416_383));
    let delivery = driver.post(&body).await;
    assert_eq!(delivery.statuses, vec![503, 503, 200]);
    assert!(delivery.delivered());
}

#[tokio::test]
async fn meta_sends_are_validated_and_limited_like_the_cloud_api() {
    let sim = MetaSim::start(MetaSimConfig {
        listen: local(),
        throughput_mps: 2.0,
        pair_interval: Duration::from_secs(60),
        pair_burst: 1.0,
        ..MetaSimConfig::default()
    })
    .await
    .expect("start");
    let http = reqwest::Client::new();
    let url = format!("{}/v23.0/1065/messages", sim.base_url());
    let post = |body: serde_json::Value| http.post(&url).bearer_auth("t").json(&body).send();
    let text = |to: &str| json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}});

    let empty = post(
        json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": " "}}),
    )
    .await
    .expect("send");
    assert_eq!(empty.status(), 400);
    let both = post(json!({"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {"id": "1", "link": "https://x"}}))
        .await
        .expect("send");
    assert_eq!(both.status(), 400);
    let read =
        post(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}))
            .await
            .expect("send");
    assert_eq!(
        read.json::<serde_json::Value>().await.expect("json")["success"],
        true
    );
    // The business number cannot message itself.
    let itself = post(text(&MetaSimConfig::default().display_phone_number))
        .await
        .expect("send");
    assert_eq!(itself.status(), 400);
    let itself: serde_json::Value = itself.json().await.expect("json");
    assert_eq!(itself["error"]["code"], 131021, "{itself}");

    // The pair limit: a second message to the same customer within the interval → 131056.
    let first: serde_json::Value = post(text("111"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        first["messages"][0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("wamid."))
    );
    assert_eq!(first["messages"][0]["message_status"], "accepted");
    let again: serde_json::Value = post(text("111"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["error"]["code"], 131056);
    // Throughput: 2 per second for the number, refused requests included (the pair-limited one
    // counted); the next ones at once → 130429.
    let _ = post(text("222")).await.expect("send");
    let over: serde_json::Value = post(text("333"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(over["error"]["code"], 130429);
    let stats = sim.send_stats();
    assert_eq!(
        (stats.accepted, stats.pair_limited, stats.throughput_limited),
        (1, 1, 2),
        "{stats:?}"
    );
}

#[tokio::test]
async fn paths_and_methods_the_services_do_not_have_get_their_error_bodies() {
    let meta = MetaSim::start(MetaSimConfig {
        listen: local(),
        ..MetaSimConfig::default()
    })
    .await
    .expect("start");
    let http = reqwest::Client::new();
    let answer = |request: reqwest::RequestBuilder| async move {
        let response = request.bearer_auth("any").send().await.expect("send");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("a JSON error body");
        (status, body)
    };

    // A misspelt edge: Graph's 2500, not a bare 404.
    let (status, body) = answer(http.post(format!("{}/v23.0/110/mesages", meta.base_url()))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 2500);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert_eq!(
        body["error"]["message"],
        "Unknown path components: /v23.0/110/mesages"
    );
    // The messages edge only takes POST.
    let (status, body) =
        answer(http.delete(format!("{}/v23.0/110/messages", meta.base_url()))).await;
    assert_eq!(status, 400);
    assert_eq!(
        (&body["error"]["code"], &body["error"]["error_subcode"]),
        (&json!(100), &json!(33))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Unsupported delete request. Object with ID '110'")),
        "{body}"
    );

    let (genesys, http, token) = genesys(300).await;
    let response = http
        .post(format!(
            "{}/api/v2/conversations/messages/int-1/inbound/open/messages",
            genesys.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!("not.found"), &json!(404))
    );
    assert!(body["contextId"].is_string(), "{body}");

    // The inbound message resource only takes POST: a 405 naming it, with Genesys' error body.
    let response = http
        .get(format!(
            "{}/api/v2/conversations/messages/int-1/inbound/open/message",
            genesys.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!("method.not.allowed"), &json!(405))
    );
}
