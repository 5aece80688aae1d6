//! `stockpile-projector serve --nats URL --data DIR`: folds the ledger's event stream into
//! holdings views and serves the `stockpile-projector` micro service: holdings, history and
//! stock reports, and publishes the reports partners submit.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use stockpile_ledger::service::access::Identity;
use stockpile_projector::service::{run, ProjectorConfig};

#[derive(Parser)]
#[command(name = "stockpile-projector", version, about = "Holdings views over the stockpile ledger's event stream")]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Follow STOCKPILE_EVENTS and serve holdings queries until ctrl-c.
    Serve {
        #[arg(long, env = "STOCKPILE_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// The projector's own data directory.
        #[arg(long, default_value = "./stockpile-projector-data")]
        data: PathBuf,
        /// Durable consumer name (one per projector that keeps its own views).
        #[arg(long, default_value = "stockpile-projector")]
        durable: String,
        /// NKey seed file of the NATS user to connect as (the `projector` user of
        /// `stockpile nats-config`).
        #[arg(long, env = "STOCKPILE_NATS_NKEY")]
        nkey: Option<PathBuf>,
        /// NKey seed file of the publisher connection's user (`projector-publisher`): reads
        /// JetStream, asks the ledger's range, publishes reports. Without it the `--nkey`
        /// connection does both (development, unauthenticated servers).
        #[arg(long, env = "STOCKPILE_NATS_PUBLISHER_NKEY")]
        publisher_nkey: Option<PathBuf>,
        /// Report schedule (JSON, schemas/v1/report-schedule.schema.json): publish each listed
        /// partner's report by itself once its deadline has passed by ledger time, and a new
        /// revision when a back-dated event changes it. Without it, reports are published only
        /// when asked (`stockpile report --submit`).
        #[arg(long, env = "STOCKPILE_REPORT_SCHEDULE")]
        schedule: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let Verb::Serve { nats, data, durable, nkey, publisher_nkey, schedule } = Cli::parse().command;
    let schedule = schedule.map(|path| {
        let read = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| stockpile_projector::schedule::Schedule::from_json(&bytes).map_err(|e| e.to_string()));
        read.unwrap_or_else(|e| {
            eprintln!("error: --schedule {}: {e}", path.display());
            std::process::exit(2);
        })
    });
    let load = |path: Option<PathBuf>| match path.as_deref().map(Identity::from_file).transpose() {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (identity, publisher_identity) = (load(nkey), load(publisher_nkey));
    let config =
        ProjectorConfig { durable, identity, publisher_identity, schedule, ..ProjectorConfig::new(nats, data) };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = run(config, shutdown).await {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
