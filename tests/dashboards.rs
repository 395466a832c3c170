//! The Grafana dashboards in `dashboards/` are proven here, since Grafana itself cannot run on
//! this machine: every ClickHouse panel's SQL, taken from the JSON, runs against the real
//! ClickHouse after a known scenario went through the real pipeline, and returns exactly the
//! expected numbers; every Prometheus expression passes `promtool` and names a metric the binary
//! exports. A broken panel fails the build.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wabaflow_sims::genesys::GenesysSimConfig;
use wabaflow_sims::meta::Template;
use wabaflow_sims::meta::webhooks::Customer;
use wabaflow_sinks::clickhouse::ClickHouseClient;

use support::flow::{PHONE_NUMBER_ID, Rig, now};

fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let json: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("valid JSON");
            (json["title"].as_str().expect("a title").to_owned(), json)
        })
        .collect()
}

/// (dashboard, panel, query) for every target of `datasource_type`.
fn queries(datasource_type: &str, field: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (dashboard, json) in dashboards() {
        for panel in json["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if target["datasource"]["type"] == datasource_type {
                    out.push((
                        dashboard.clone(),
                        panel["title"].as_str().unwrap_or_default().to_owned(),
                        target[field].as_str().expect("a query").to_owned(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_prometheus_expression_is_valid_and_names_an_exported_metric() {
    let expressions = queries("prometheus", "expr");
    assert!(
        expressions.len() >= 6,
        "the pipeline dashboard has its panels"
    );
    let exported = wabaflow_pipeline::telemetry::metrics().names();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, (_, panel, expr)) in expressions.iter().enumerate() {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("wabaflow_"))
        {
            assert!(
                exported.iter().any(|m| m == name),
                "{panel}: {name} is not a metric wabaflow exports"
            );
        }
        rules.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::to_string(expr).expect("quoted")
        ));
    }
    let file = std::env::temp_dir().join(format!("wabaflow-dashboards-{}.yml", std::process::id()));
    std::fs::write(&file, rules).expect("rules file");
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (scripts/services.sh installs Debian's prometheus package)");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "promtool refused an expression:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The panel's SQL with Grafana's macros (`$__timeFilter` for DateTime, `$__dateFilter` for Date
/// columns) and variables filled in as Grafana would for the test's
/// tenant, number and a time range covering the scenario.
fn render(sql: &str, database: &str) -> String {
    let mut sql = sql
        .replace("wabaflow.", &format!("{database}."))
        .replace("${tenant:singlequote}", "'acme'")
        .replace(
            "${phone_number_id:singlequote}",
            &format!("'{PHONE_NUMBER_ID}'"),
        );
    while let Some(start) = sql.find("$__dateFilter(") {
        let end = start + sql[start..].find(')').expect("closing parenthesis");
        let column = &sql[start + "$__dateFilter(".len()..end];
        let filter =
            format!("{column} >= toDate('2020-01-01') AND {column} <= toDate('2099-01-01')");
        sql.replace_range(start..=end, &filter);
    }
    while let Some(start) = sql.find("$__timeFilter(") {
        let end = start + sql[start..].find(')').expect("closing parenthesis");
        let column = &sql[start + "$__timeFilter(".len()..end];
        let filter = format!(
            "{column} >= toDateTime('2020-01-01 00:00:00') AND {column} <= toDateTime('2099-01-01 00:00:00')"
        );
        sql.replace_range(start..=end, &filter);
    }
    sql
}

/// Rows as `column=value` maps; a `time` column (the bucket of a time series) is summed away, so
/// the numbers do not depend on the hour the test runs in.
fn rows(tsv: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let mut rows: Vec<BTreeMap<String, String>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(str::to_owned))
                .collect()
        })
        .collect();
    if header.contains(&"time") {
        let mut summed: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
        let value = header.last().expect("a value column").to_string();
        for row in &rows {
            let key: Vec<(String, String)> = row
                .iter()
                .filter(|(k, _)| *k != "time" && **k != value)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            *summed.entry(key).or_default() += row[&value].parse::<f64>().unwrap_or(0.0);
        }
        rows = summed
            .into_iter()
            .map(|(key, total)| {
                let mut row: BTreeMap<String, String> = key.into_iter().collect();
                row.insert(value.clone(), format!("{total}"));
                row
            })
            .collect();
    }
    rows
}

fn row(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clickhouse_panel_returns_the_expected_numbers() {
    let rig = Rig::start(GenesysSimConfig::default()).await;
    // Two customers write (one twice, with Meta repeating a webhook); the agent answers both and
    // sends a template to a third person; Meta reports sent, delivered, read with pricing.
    let ana = Customer::new("5511987654321", "Ana");
    let ben = Customer::new("447700900123", "Ben");
    let first = ana.text("hello", now() - 100);
    rig.send(&first).await;
    rig.send(&first).await;
    rig.send(&ana.text("anyone?", now() - 90)).await;
    let photo = rig.meta.add_media(vec![1u8; 2_000], "image/jpeg");
    rig.send(&ben.media("image", &photo, None, None, now() - 100))
        .await;
    for user in [&ana.wa_id, &ben.wa_id] {
        rig.meta.customer_wrote(PHONE_NUMBER_ID, user);
    }
    assert_eq!(
        rig.genesys
            .wait_for_messages(3, Duration::from_secs(60))
            .await
            .len(),
        3
    );
    rig.meta
        .add_template(Template::approved("renewal", "en_US", 1));
    let replies = [
        rig.agent.text(&ana.wa_id, "Hi Ana"),
        rig.agent.text(&ben.wa_id, "Hi Ben"),
        rig.agent
            .template("16505550199", "ns@renewal", "en_US", &[("1", "May")]),
    ];
    for reply in &replies {
        assert!(rig.agent.post(reply).await.accepted());
    }
    let ids: Vec<String> = replies
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    rig.genesys
        .wait_for_receipts(Duration::from_secs(60), |r| {
            ids.iter().all(|id| {
                r.iter()
                    .any(|(_, x)| x["id"] == id.as_str() && x["status"] == "Read")
            })
        })
        .await;

    let clickhouse = ClickHouseClient::new(&rig.config.clickhouse).expect("client");
    let db = rig.config.clickhouse.database.clone();
    // Wait until the analytics feeds caught up: 6 messages, 9 statuses, 3 metered units.
    let settled = format!(
        "SELECT (SELECT uniqExact(event_id) FROM {db}.message_events), (SELECT uniqExact(event_id) FROM {db}.status_events), (SELECT uniqExact(unit) FROM {db}.usage)"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut counts = String::new();
    while tokio::time::Instant::now() < deadline {
        counts = clickhouse
            .query(&settled)
            .await
            .expect("query")
            .trim()
            .to_owned();
        if counts == "6\t9\t3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counts, "6\t9\t3");

    // A top-up: the balance panel shows it minus what was metered.
    wabaflow::wallet::credit(&rig.config, "acme", "topup-1", 1_000_000)
        .await
        .expect("credited");

    let expected: BTreeMap<(&str, &str), Vec<BTreeMap<String, String>>> = BTreeMap::from([
        (
            ("wabaflow · Usage", "Messages by direction"),
            vec![
                row(&[("direction", "inbound"), ("messages", "3")]),
                row(&[("direction", "outbound"), ("messages", "3")]),
            ],
        ),
        (
            ("wabaflow · Usage", "Messages by type"),
            vec![
                row(&[("message_type", "image"), ("messages", "1")]),
                row(&[("message_type", "template"), ("messages", "1")]),
                row(&[("message_type", "text"), ("messages", "4")]),
            ],
        ),
        (
            ("wabaflow · Usage", "Messages per tenant and number"),
            vec![row(&[
                ("tenant", "acme"),
                ("phone_number_id", PHONE_NUMBER_ID),
                ("messages", "6"),
            ])],
        ),
        (
            ("wabaflow · Delivery", "Delivery funnel"),
            vec![
                row(&[("status", "sent"), ("messages", "3")]),
                row(&[("status", "delivered"), ("messages", "3")]),
                row(&[("status", "read"), ("messages", "3")]),
            ],
        ),
        (("wabaflow · Delivery", "Failures by error code"), vec![]),
        (
            ("wabaflow · Cost", "Cost by category and country"),
            vec![
                row(&[("category", "service"), ("country", "BR"), ("cost", "0")]),
                row(&[("category", "service"), ("country", "GB"), ("cost", "0")]),
                row(&[
                    ("category", "utility"),
                    ("country", "US"),
                    ("cost", "0.004"),
                ]),
            ],
        ),
        (
            ("wabaflow · Cost", "Cost per day"),
            vec![row(&[("cost", "0.004")])],
        ),
        (
            ("wabaflow · Cost", "Wallet balance"),
            vec![row(&[("tenant", "acme"), ("balance", "0.996")])],
        ),
        (
            ("wabaflow · Cost", "Billable messages by category"),
            vec![
                row(&[("category", "service"), ("billable", "0")]),
                row(&[("category", "utility"), ("billable", "1")]),
            ],
        ),
    ]);
    let panels = queries("grafana-clickhouse-datasource", "rawSql");
    assert!(panels.len() >= 11, "{} ClickHouse panels", panels.len());
    for (dashboard, panel, sql) in &panels {
        let sql = render(sql, &db);
        let answer = clickhouse
            .query(&format!("{sql} FORMAT TabSeparatedWithNames"))
            .await
            .unwrap_or_else(|e| panic!("{dashboard} / {panel}: {e}\n{sql}"));
        let got = rows(&answer);
        if panel == "Delivery latency (seconds)" {
            // The simulator delivers within a second or two of sending.
            let stats = &got[0];
            assert_eq!(stats["messages"], "3", "{answer}");
            let p95: f64 = stats["p95"].parse().expect("number");
            assert!((0.0..=5.0).contains(&p95), "p95 {p95}: {answer}");
            continue;
        }
        if panel == "First agent reply (seconds)" {
            // Ana and Ben got answers, the template's recipient never wrote: two conversations,
            // answered about 90–100 s after their first message (plus the test's own pace).
            let stats = &got[0];
            assert_eq!(stats["conversations"], "2", "{answer}");
            let p50: f64 = stats["p50"].parse().expect("number");
            assert!((90.0..=160.0).contains(&p50), "p50 {p50}: {answer}");
            continue;
        }
        let want = expected
            .get(&(dashboard.as_str(), panel.as_str()))
            .unwrap_or_else(|| panic!("no expectation for {dashboard} / {panel}"));
        assert_eq!(&got, want, "{dashboard} / {panel}\n{sql}");
    }
    rig.stop().await;
}
