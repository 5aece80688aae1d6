//! `stockpile-ledger serve --nats URL --data DIR [--replicas N] [--replicate] [--standby]`: the
//! ledger service (with `--standby`, a member of a failover group).
//! `stockpile-ledger restore (--from-stream URL | --from-export FILE) --data DIR`: rebuilds a
//! ledger directory from a verified copy of its log.
//!
//! Parses arguments, logs to stderr (`RUST_LOG`, default `info`), and runs
//! [`stockpile_ledger::service::run`] until ctrl-c or SIGTERM. Exit code 0 after a clean
//! shutdown, 1 when the service could not start or failed (a commit that failed stops it:
//! run it under a supervisor, and the restart recovers from the log), 2 for bad arguments
//! (clap).

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use stockpile_ledger::service::config::{CHECKPOINT_INTERVAL_DEFAULT, STREAM_REPLICAS_DEFAULT};
use stockpile_ledger::service::{self, ServiceConfig};

#[derive(Debug, Parser)]
#[command(name = "stockpile-ledger", version, about = "The stockpile ledger service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the ledger in DIR over NATS: stockpile.v1.ledger.{append,range}, and publish
    /// every record to the STOCKPILE_EVENTS stream.
    Serve(ServeArgs),
    /// Rebuild a ledger directory from the STOCKPILE_EVENTS stream or an `audit export`
    /// file, verifying every record as `stockpile audit verify` does. DIR must be missing or
    /// empty; nothing is left behind when the source does not verify.
    Restore(RestoreArgs),
    /// Write a new checkpoint key to FILE (mode 0600; an existing file is refused) and print
    /// its public key: the one key every ledger of a failover group is given
    /// (`serve --standby --checkpoint-key FILE`). Keep a copy off the ledgers' machines.
    NewKey {
        /// Where to write the key.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// Read the records from the STOCKPILE_EVENTS stream (and the checkpoints from
    /// STOCKPILE_CHECKPOINTS) on this NATS server; several URLs separated by commas.
    #[arg(long, value_name = "URL", required_unless_present = "from_export", conflicts_with = "from_export")]
    from_stream: Option<String>,
    /// Read the records and checkpoints from this `audit export` file.
    #[arg(long, value_name = "FILE")]
    from_export: Option<PathBuf>,
    /// The directory to create (missing or empty).
    #[arg(long)]
    data: PathBuf,
    /// The ledger's `checkpoint.key` (kept apart from the data directory): the source's
    /// checkpoints must be signed with it, and they are kept. Without it they are verified
    /// but not kept, and the restored ledger signs with a new key.
    #[arg(long, value_name = "FILE")]
    checkpoint_key: Option<PathBuf>,
    /// NKey seed file of the NATS user to read the streams as (the `auditor` or the
    /// `ledger-publisher` user of `stockpile nats-config`).
    #[arg(long, env = "STOCKPILE_NATS_NKEY", requires = "from_stream")]
    nkey: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// NATS server URL; several separated by commas.
    #[arg(long, env = "STOCKPILE_NATS_URL")]
    nats: String,
    /// The ledger's data directory (created if missing).
    #[arg(long, env = "STOCKPILE_DATA")]
    data: PathBuf,
    /// Replicas of the STOCKPILE_EVENTS stream (3 on a JetStream cluster).
    #[arg(long, default_value_t = STREAM_REPLICAS_DEFAULT, value_parser = clap::value_parser!(u8).range(1..=5).map(usize::from))]
    replicas: usize,
    /// Seconds between signed checkpoints (only when the log grew).
    #[arg(long, default_value_t = CHECKPOINT_INTERVAL_DEFAULT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// NKey seed file of the NATS user to connect as (the `ledger` user of
    /// `stockpile nats-config`).
    #[arg(long, env = "STOCKPILE_NATS_NKEY")]
    nkey: Option<PathBuf>,
    /// NKey seed file of the NATS user the outbox and checkpoints publish as (the
    /// `ledger-publisher` user); without it, the --nkey connection does both.
    #[arg(long, env = "STOCKPILE_NATS_PUBLISHER_NKEY", requires = "nkey")]
    publisher_nkey: Option<PathBuf>,
    /// Partners (comma-separated ISO codes) whose durable consumers on STOCKPILE_FEEDS and
    /// STOCKPILE_REPORTS, and the Commission's, are created at start for the accounts of
    /// `stockpile nats-config` to read through.
    #[arg(long, env = "STOCKPILE_PARTNERS", value_delimiter = ',')]
    partners: Vec<String>,
    /// A witness to ask for a cosignature on every new checkpoint: its verifier key as
    /// `stockpile witness key` prints it (`<name>+<key ID>+<base64>`), optionally as
    /// `NAME=VKEY`, and optionally followed by `@SUBJECT` when it does not serve
    /// `stockpile.v1.witness.<name>.add-checkpoint`. Repeat for each witness.
    #[arg(long = "witness", value_name = "[NAME=]VKEY[@SUBJECT]")]
    witnesses: Vec<String>,
    /// Cosignatures every checkpoint should carry (default: one from every --witness). A
    /// checkpoint with fewer is still published; the log warns and names the missing.
    #[arg(long, requires = "witnesses")]
    witness_quorum: Option<usize>,
    /// Replicated commit: answer an append only once its records are stored in the
    /// STOCKPILE_EVENTS stream as well as fsynced here (use with --replicas 3 on a
    /// three-node cluster); after 10 s without the stream's ack the answer is
    /// `not_replicated` (the commands are committed here; resend them until acknowledged).
    #[arg(long)]
    replicate: bool,
    /// Failover: follow the STOCKPILE_EVENTS stream into DATA, verifying every record, and
    /// take over as the active ledger (serving with --replicate) when the active one stops
    /// renewing its lease (the JetStream KV bucket STOCKPILE_LEDGER_LEASE). Start every
    /// ledger of a failover group this way; the first finds the lease free and serves.
    #[arg(long, requires = "checkpoint_key")]
    standby: bool,
    /// The ledger's checkpoint key, kept apart from the data directory: installed into DATA
    /// when it has none, refused when it holds another. Every ledger of a failover group is
    /// given the same key.
    #[arg(long, value_name = "FILE")]
    checkpoint_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    stockpile_ledger::malloc::return_large_frees_to_os();
    // A file-size limit (`ulimit -f`) reached while writing the log is then an `EFBIG` error
    // the writer handles — the frame cut back, the service stopped, exit 1 — instead of a
    // core dump in the middle of a frame.
    // SAFETY: ignoring a signal at start, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stockpile-ledger: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Restore(args) => return restore(&runtime, args),
        Command::NewKey { file } => {
            return match stockpile_ledger::audit::LedgerKey::create_file(&file) {
                Ok(key) => {
                    println!("{}", key.public_key_hex());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("stockpile-ledger: error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let mut config = ServiceConfig::new(args.nats, args.data);
    config.stream_replicas = args.replicas;
    config.replicate = args.replicate || args.standby;
    config.standby = args.standby;
    config.checkpoint_key = args.checkpoint_key;
    config.checkpoint_interval = std::time::Duration::from_secs(args.checkpoint_every);
    config.partners = args.partners.iter().map(|p| p.trim().to_ascii_uppercase()).filter(|p| !p.is_empty()).collect();
    for entry in &args.witnesses {
        match stockpile_ledger::audit::witness::WitnessKey::parse(entry) {
            Ok(w) if config.witnesses.iter().any(|o| o.key.name == w.key.name) => {
                eprintln!("stockpile-ledger: error: --witness {}: given twice", w.key.name);
                return ExitCode::from(2);
            }
            Ok(w) => config.witnesses.push(w),
            Err(e) => {
                eprintln!("stockpile-ledger: error: --witness: {e}");
                return ExitCode::from(2);
            }
        }
    }
    config.witness_quorum = args.witness_quorum.unwrap_or(config.witnesses.len());
    if config.witness_quorum > config.witnesses.len() {
        eprintln!(
            "stockpile-ledger: error: --witness-quorum {} is more than the {} witnesses given",
            config.witness_quorum,
            config.witnesses.len()
        );
        return ExitCode::from(2);
    }
    for (path, slot) in [(&args.nkey, &mut config.identity), (&args.publisher_nkey, &mut config.publisher_identity)] {
        if let Some(path) = path {
            match service::access::Identity::from_file(path) {
                Ok(identity) => *slot = Some(identity),
                Err(e) => {
                    eprintln!("stockpile-ledger: error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    match runtime.block_on(service::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stockpile-ledger: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `restore`: prints what was restored on stdout; exit 1 with the reason when refused.
fn restore(runtime: &tokio::runtime::Runtime, args: RestoreArgs) -> ExitCode {
    use stockpile_ledger::restore::{self, Source, Staging, STREAM_COPY_FILE};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("stockpile-ledger: error: {e}");
        ExitCode::FAILURE
    };
    let identity = match args.nkey.as_deref().map(service::access::Identity::from_file).transpose() {
        Ok(identity) => identity,
        Err(e) => return fail(&e),
    };
    let staging = match Staging::new(&args.data) {
        Ok(staging) => staging,
        Err(e) => return fail(&e),
    };
    let (source, kind) = match (&args.from_stream, &args.from_export) {
        (Some(url), _) => {
            let copy = staging.path().join(STREAM_COPY_FILE);
            match runtime.block_on(service::restore::copy_stream(url, identity.as_ref(), &copy)) {
                Ok(copied) => {
                    eprintln!(
                        "copied {} records and {} checkpoints from the stream",
                        copied.records, copied.checkpoints
                    )
                }
                Err(e) => return fail(&e),
            }
            (copy, Source::Stream)
        }
        (None, Some(file)) => (file.clone(), Source::Export),
        (None, None) => unreachable!("clap requires one source"),
    };
    match restore::restore(staging, &source, kind, args.checkpoint_key.as_deref(), &mut |_| {}) {
        Ok(r) => {
            println!("restored {} records into {}", r.records, args.data.display());
            println!("head: seq {} hash {}", r.records, stockpile_ledger::canonical::hex(&r.head_hash));
            if r.checkpoints_stored {
                println!("checkpoints: {} kept, signed by {}", r.checkpoints, r.ledger_key);
            } else {
                println!(
                    "checkpoints: {} verified (signed by {}) but not kept: without --checkpoint-key the ledger signs with a new key when it serves",
                    r.checkpoints, r.ledger_key
                );
            }
            if r.covered < r.records {
                println!(
                    "records {} to {} are after the last checkpoint: verified by signature, chain and re-execution; the ledger signs a checkpoint over them when it serves",
                    r.covered + 1,
                    r.records
                );
            }
            println!("outbox cursor: {}", r.outbox_cursor);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Completes on ctrl-c (SIGINT) or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
