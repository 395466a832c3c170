//! `wabaflow`: one binary, many roles (docs/ARCHITECTURE.md). This file is the CLI only.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wabaflow_pipeline::telemetry::init_tracing;
use wabaflow_pipeline::{Config, Shutdown};

use wabaflow::node::{Node, Role};
use wabaflow::{demo, sim};

/// mimalloc: every event is decoded, re-encoded and copied through several small buffers, and
/// glibc's malloc was a sixth of the CPU profile of a stage (docs/benchmarks.md). Its `override`
/// feature makes it the C allocator too: librdkafka allocates and frees every message and header
/// it produces or reads, often on another thread than the one that allocated, which glibc's malloc
/// served at about 7 % of transform's CPU (docs/benchmarks-log.md, 3 December).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for them on its regions, and
/// every first touch of one then zeroes 2 MiB: each role's peak RSS was 12–18 MiB (a third) higher
/// with them, and zeroing pages for the Redis client's pipeline buffers was 7 % of dedupe's CPU
/// (docs/benchmarks.md). A process-wide flag, so it also holds where the host's THP mode is
/// `always`.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %err, "transparent huge pages stay on");
    }
}

#[derive(Parser)]
#[command(
    name = "wabaflow",
    version,
    about = "WhatsApp Business messaging pipeline on Kafka"
)]
struct Cli {
    /// TOML configuration file; `WABAFLOW_*` environment variables override it.
    #[arg(long, short, env = "WABAFLOW_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run roles against the configured services (all roles by default).
    Run {
        /// Comma-separated: ingest, stage:dedupe.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<Role>,
    },
    /// Manage the registered topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Run the pipeline on embedded defaults (in-process Kafka, in-memory state) and show it work.
    Demo(demo::DemoArgs),
    /// Run a simulator of a service wabaflow talks to, until Ctrl-C.
    Sim {
        #[command(subcommand)]
        which: sim::SimCommand,
    },
    /// Replay Meta webhooks against a running wabaflow at a fixed rate (open loop), re-signed for
    /// the target tenant; prints sent/accepted/rejected and latency percentiles.
    Replay(wabaflow::replay::ReplayArgs),
    /// Benchmarks against same-run baselines on the configured services (Kafka, Redis,
    /// ClickHouse, S3); each prints wabaflow's number, the baseline's and the ratio.
    Bench(wabaflow::bench::BenchArgs),
    /// Billing: price a past period again from the metered events in ClickHouse.
    Meter {
        #[command(subcommand)]
        action: MeterAction,
    },
    /// A tenant's prepaid wallet: top it up, read the balance and the ledger.
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
    },
    /// Register and inspect tenants (credentials are sealed with tenancy.encryption_key).
    Tenants {
        #[command(subcommand)]
        action: TenantsAction,
    },
}

#[derive(Subcommand)]
enum MeterAction {
    /// Cost per tenant, day, category and country between FROM and TO (inclusive), as billed
    /// and as the price book (meter.price_book, or --price-book) prices it now.
    Recompute {
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        #[arg(long)]
        price_book: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WalletAction {
    /// Credit AMOUNT (a decimal, in the price book's currency) under REFERENCE (applies once).
    Credit {
        tenant: String,
        amount: String,
        reference: String,
    },
    /// The balance and every ledger entry.
    Show { tenant: String },
}

#[derive(Subcommand)]
enum TenantsAction {
    /// Create or replace the tenants in FILE (JSON or TOML; one tenant, or `tenants = [...]`).
    Put { file: PathBuf },
    /// Show a tenant, credentials redacted.
    Get { id: String },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create every registered topic and its dead-letter twin; existing topics are left alone.
    Create,
    /// Print the topics `create` would make.
    List,
    /// Print the JSON Schema (2020-12) of the envelope every conversation topic carries, for
    /// consumers in other languages (the same as `schemas/json/envelope.v1.schema.json`).
    Schema,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo narrates on stdout; only warnings go to the log there.
    init_tracing(
        if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) {
            "warn"
        } else {
            "info"
        },
    );
    without_huge_pages();
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Sim { which } => sim::run(which).await,
        Command::Bench(args) => {
            let config = load(cli.config)?;
            let outcomes = wabaflow::bench::run(&args, &config).await?;
            let missed = outcomes
                .iter()
                .flat_map(|o| &o.ratios)
                .filter(|r| !r.met())
                .count();
            println!("{missed} target(s) missed");
            Ok(())
        }
        Command::Replay(args) => {
            let report = wabaflow::replay::run(&args).await?;
            println!("{report}");
            if report.accepted < report.sent {
                anyhow::bail!(
                    "{} of {} requests were not accepted",
                    report.sent - report.accepted,
                    report.sent
                );
            }
            Ok(())
        }
        Command::Meter {
            action:
                MeterAction::Recompute {
                    from,
                    to,
                    price_book,
                },
        } => {
            let config = load(cli.config)?;
            let path = price_book
                .map(|p| p.display().to_string())
                .unwrap_or(config.meter.price_book.clone());
            let book = if path.is_empty() {
                wabaflow_stages::meter::PriceBook::sample()
            } else {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
                wabaflow_stages::meter::PriceBook::parse(&text).context("the price book")?
            };
            let clickhouse = wabaflow_sinks::clickhouse::ClickHouseClient::new(&config.clickhouse)?;
            let lines = wabaflow::recompute::recompute(&clickhouse, &book, from, to).await?;
            println!(
                "tenant\tday\tcategory\tcountry\tunits\tbilled\trecomputed ({})",
                book.currency
            );
            let (mut billed, mut recomputed) = (0, 0);
            for line in &lines {
                billed += line.billed_micros;
                recomputed += line.recomputed_micros;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    line.tenant,
                    line.day,
                    line.category,
                    line.country,
                    line.units,
                    wabaflow::node::format_micros(line.billed_micros),
                    wabaflow::node::format_micros(line.recomputed_micros)
                );
            }
            println!(
                "total\t\t\t\t\t{}\t{}",
                wabaflow::node::format_micros(billed),
                wabaflow::node::format_micros(recomputed)
            );
            Ok(())
        }
        Command::Wallet { action } => {
            let config = load(cli.config)?;
            let wallets =
                wabaflow_store::wallet::Wallets::new(wabaflow::node::open_store(&config).await?);
            match action {
                WalletAction::Credit {
                    tenant,
                    amount,
                    reference,
                } => {
                    let micros = wabaflow_stages::meter::price_book::micros(&amount)
                        .with_context(|| format!("{amount:?} is not an amount"))?;
                    let movement =
                        wabaflow::wallet::credit(&config, &tenant, &reference, micros).await?;
                    println!(
                        "{}\tbalance {}",
                        if movement.applied {
                            "credited"
                        } else {
                            "already applied"
                        },
                        wabaflow::node::format_micros(movement.balance_micros)
                    );
                }
                WalletAction::Show { tenant } => {
                    let balance = wallets.balance(&tenant).await?;
                    println!(
                        "balance\t{}{}",
                        wabaflow::node::format_micros(balance),
                        if balance < 0 { "\t(negative)" } else { "" }
                    );
                    for entry in wallets.ledger(&tenant).await? {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            entry.at,
                            entry.kind,
                            wabaflow::node::format_micros(entry.amount_micros),
                            wabaflow::node::format_micros(entry.balance_micros),
                            entry.reference
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Tenants { action } => {
            let config = load(cli.config)?;
            let registry = wabaflow::node::open_tenants(&config).await?;
            match action {
                TenantsAction::Put { file } => {
                    for tenant in wabaflow::node::read_tenants(&file)? {
                        registry
                            .put(&tenant)
                            .await
                            .with_context(|| format!("storing tenant {}", tenant.id))?;
                        println!(
                            "stored\t{}\tphone {}\tintegration {}",
                            tenant.id, tenant.phone_number_id, tenant.genesys.integration_id
                        );
                    }
                    Ok(())
                }
                TenantsAction::Get { id } => match registry.get(&id).await? {
                    Some(tenant) => {
                        println!("{tenant:#?}");
                        Ok(())
                    }
                    None => anyhow::bail!("no tenant {id:?}"),
                },
            }
        }
        Command::Run { roles } => {
            let config = load(cli.config)?;
            let roles = if roles.is_empty() {
                Role::ALL.to_vec()
            } else {
                roles
            };
            let node = Node::start(&config, &roles, None, Shutdown::new().on_signals()).await?;
            node.wait().await
        }
        Command::Topics {
            action: TopicsAction::List,
        } => {
            let config = load(cli.config)?;
            for (name, partitions) in wabaflow_pipeline::topics::planned(&config.kafka) {
                println!("{name}\t{partitions}");
            }
            Ok(())
        }
        Command::Topics {
            action: TopicsAction::Schema,
        } => {
            print!("{}", wabaflow_schemas::json_schema::envelope_text());
            Ok(())
        }
        Command::Topics {
            action: TopicsAction::Create,
        } => {
            let config = load(cli.config)?;
            let reports = wabaflow_pipeline::topics::create_all(&config.kafka)
                .await
                .with_context(|| format!("creating topics on {}", config.kafka.brokers))?;
            for report in reports {
                let what = if report.created { "created" } else { "exists" };
                println!("{what}\t{}\t{} partitions", report.name, report.partitions);
            }
            Ok(())
        }
    }
}

fn load(file: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(file.as_deref()).context("loading configuration")
}
