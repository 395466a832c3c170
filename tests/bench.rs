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
    let args = BenchArgs {
        only: Vec::new(),
        scale: 0.01,
        exe: Some(env!("CARGO_BIN_EXE_wabaflow").into()),
        rounds: 1,
        before_each: None,
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
