//! Every benchmark of `wabaflow bench`, at a tiny scale, against the real services: they must keep
//! working (each one fails unless all of its load arrived where it should) and report a ratio.
//! No speed is asserted here; `scripts/bench.sh` measures.

mod support;

use wabaflow::bench::{Bench, BenchArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_runs_at_a_tiny_scale_and_reports_a_ratio() {
    let mut config = support::isolated_config();
    config.objects.s3_endpoint =
        std::env::var("WABAFLOW_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8014".into());
    let scratch = std::env::temp_dir().join(format!("wabaflow-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let json_path = scratch.join("report.json");
    let args = BenchArgs {
        only: Vec::new(),
        scale: 0.01,
        exe: Some(env!("CARGO_BIN_EXE_wabaflow").into()),
        rounds: 1,
        before_each: None,
        json: Some(json_path.clone()),
    };
    let outcomes = wabaflow::bench::run(&args, &config)
        .await
        .expect("every benchmark completes its load");
    let ran: Vec<Bench> = outcomes.iter().map(|o| o.bench).collect();
    assert_eq!(ran, Bench::ALL);
    for outcome in &outcomes {
        assert!(
            !outcome.ratios.is_empty(),
            "{:?} reports no ratio",
            outcome.bench
        );
        for ratio in &outcome.ratios {
            assert!(
                ratio.ours.is_finite() && ratio.ours > 0.0 && ratio.baseline > 0.0,
                "{:?}: {ratio}",
                outcome.bench
            );
        }
    }
    // The JSON report holds the same numbers as the outcomes printed.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("the report was written"))
            .expect("the report is JSON");
    let benches = report["benchmarks"].as_array().expect("benchmarks");
    assert_eq!(benches.len(), outcomes.len());
    for (written, outcome) in benches.iter().zip(&outcomes) {
        assert_eq!(
            written["bench"],
            format!("{:?}", outcome.bench).to_lowercase()
        );
        let ratios = written["ratios"].as_array().expect("ratios");
        assert_eq!(ratios.len(), outcome.ratios.len());
        for (written, ratio) in ratios.iter().zip(&outcome.ratios) {
            // Equal to the last digit or so: serde_json reads floats back to within an ulp.
            let read = written["ratio"].as_f64().expect("a number");
            assert!(
                (read - ratio.value()).abs() <= 1e-12 * ratio.value().abs(),
                "{ratio}: {read}"
            );
            assert_eq!(written["met"].as_bool(), Some(ratio.met()), "{ratio}");
            assert_eq!(
                written["runs"].as_array().map(Vec::len),
                Some(1),
                "one round"
            );
        }
    }
    assert_eq!(report["rounds"], 1);
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    std::fs::remove_dir_all(&scratch).ok();
    let memory = outcomes
        .iter()
        .find(|o| o.bench == Bench::Memory)
        .expect("memory ran");
    assert_eq!(
        memory
            .details
            .iter()
            .filter(|d| d.contains("peak RSS"))
            .count(),
        12,
        "one peak per role, and the ClickHouse sink's catching up"
    );
}
