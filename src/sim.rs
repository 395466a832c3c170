//! `wabaflow sim meta|genesys`: the simulators as standalone servers, for local development,
//! load tests and anyone who wants to point a wabaflow at them by hand.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use wabaflow_sims::genesys::{GenesysSim, GenesysSimConfig};
use wabaflow_sims::meta::{MetaSim, MetaSimConfig, Template};

#[derive(Subcommand)]
pub enum SimCommand {
    /// The Meta WhatsApp Cloud API (media endpoints).
    Meta(MetaArgs),
    /// Genesys Cloud (OAuth and Open Messaging inbound).
    Genesys(GenesysArgs),
}

#[derive(Args)]
pub struct MetaArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Accepted access tokens (repeatable); none accepts any non-empty token.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Lifetime of media download URLs.
    #[arg(long, default_value_t = 300)]
    media_url_ttl_secs: u64,
    /// Messages per second per business number before 130429.
    #[arg(long, default_value_t = 80.0)]
    throughput_mps: f64,
    /// Seconds between messages to one recipient before 131056 (bursts of 3 allowed).
    #[arg(long, default_value_t = 6.0)]
    pair_interval_secs: f64,
    /// Status webhooks for a number: `PHONE_NUMBER_ID=URL=APP_SECRET` (repeatable).
    #[arg(long = "subscribe")]
    subscriptions: Vec<String>,
    /// An approved message template, `NAME:LANGUAGE:BODY_PARAMS`, e.g. `renewal:en_US:1`
    /// (repeatable); a template send not among them is refused with 132001, as Meta does.
    #[arg(long = "template", value_parser = Template::parse_approved)]
    templates: Vec<Template>,
    /// A recipient that is not on WhatsApp (repeatable): sends to it are accepted, then fail
    /// with 131026 "Message undeliverable".
    #[arg(long = "not-on-whatsapp", value_name = "WA_ID")]
    not_on_whatsapp: Vec<String>,
}

#[derive(Args)]
pub struct GenesysArgs {
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// OAuth clients as `id:secret` (repeatable).
    #[arg(long = "client", required = true)]
    clients: Vec<String>,
    /// Known integration ids (repeatable); none accepts any.
    #[arg(long = "integration")]
    integrations: Vec<String>,
    #[arg(long, default_value_t = 86_400)]
    token_ttl_secs: u64,
    /// Requests per token per minute before 429 (Genesys documents 300).
    #[arg(long, default_value_t = 300)]
    rate_limit_per_minute: u32,
}

pub async fn run(command: SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Meta(args) => {
            let sim = MetaSim::start(MetaSimConfig {
                listen: args.listen,
                tokens: args.tokens,
                media_url_ttl: Duration::from_secs(args.media_url_ttl_secs),
                throughput_mps: args.throughput_mps,
                pair_interval: Duration::from_secs_f64(args.pair_interval_secs),
                templates: args.templates,
                ..MetaSimConfig::default()
            })
            .await
            .with_context(|| format!("binding {}", args.listen))?;
            for subscription in &args.subscriptions {
                let mut parts = subscription.splitn(3, '=');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(number), Some(url), Some(secret)) => sim.subscribe(number, url, secret),
                    _ => anyhow::bail!(
                        "--subscribe {subscription:?} is not PHONE_NUMBER_ID=URL=APP_SECRET"
                    ),
                }
            }
            for user in &args.not_on_whatsapp {
                sim.not_on_whatsapp(user);
            }
            println!("Meta Cloud API simulator on {}", sim.base_url());
            println!("  GET  /v23.0/{{media-id}}   POST /v23.0/{{phone-number-id}}/media|messages");
            tokio::signal::ctrl_c().await?;
        }
        SimCommand::Genesys(args) => {
            let clients = args
                .clients
                .iter()
                .map(|c| {
                    c.split_once(':')
                        .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
                        .with_context(|| format!("--client {c:?} is not id:secret"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sim = GenesysSim::start(GenesysSimConfig {
                listen: args.listen,
                clients,
                integrations: args.integrations,
                token_ttl: Duration::from_secs(args.token_ttl_secs),
                rate_limit: args.rate_limit_per_minute,
                rate_window: Duration::from_secs(60),
                download_attachments: true,
            })
            .await
            .with_context(|| format!("binding {}", args.listen))?;
            println!("Genesys Cloud simulator on {}", sim.base_url());
            println!(
                "  POST /oauth/token   POST /api/v2/conversations/messages/{{integrationId}}/inbound/open/message|receipt|event"
            );
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
