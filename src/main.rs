//! `wabaflow`: one binary, many roles (docs/ARCHITECTURE.md). This file is the CLI only.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wabaflow_pipeline::telemetry::init_tracing;
use wabaflow_pipeline::{Config, Shutdown};

use wabaflow::demo;
use wabaflow::node::{Node, Role};

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
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create every registered topic and its dead-letter twin; existing topics are left alone.
    Create,
    /// Print the topics `create` would make.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo narrates on stdout; only warnings go to the log there.
    init_tracing(if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    });
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
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
