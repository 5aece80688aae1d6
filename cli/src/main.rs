//! `stockpile`: the operator's and auditor's command-line tool.
//!
//! Parse, pick a backend (embedded on `--data DIR`, or remote with `--nats URL`), dispatch,
//! and map the outcome to an exit code: 0 success, 1 rejected by the ledger (or an unknown
//! id, or a failed audit check), 2 usage or operational error — a panic included.

mod args;
mod client;
mod commands;
mod error;
mod keystore;
mod known;
mod output;
mod parse;
mod refusal;
mod remote;

use args::{Cli, KeysVerb, Verb, WitnessVerb};
use clap::{CommandFactory, FromArgMatches};
use client::{Backend, Embedded};
use commands::Ctx;
use error::{operational, usage, Result};
use keystore::Keystore;
use stockpile_ledger::service::access::Identity;

fn main() {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`stockpile … | head`) would panic;
    // a command-line tool should end quietly there, as every Unix tool does.
    // SAFETY: called first thing, before any other thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::panic::set_hook(Box::new(report_panic));
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| refuse_arguments(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| refuse_arguments(e));
    JSON_ERRORS.store(cli.format == args::Format::Json, std::sync::atomic::Ordering::Relaxed);
    // Whether --data / --keys were given (flag or environment), not their defaults: the
    // demo uses its --dir for what was not given.
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        )
    };
    let places = commands::demo::Places { data: given("data"), keys: given("keys") };
    #[cfg(debug_assertions)]
    test_panic();
    let json = cli.format == args::Format::Json;
    let code = match run(cli, places) {
        Ok(()) => 0,
        Err(e) => {
            if json && !e.json_printed() {
                println!("{}", e.json());
            }
            eprintln!("{}: {e}", output::bad("error"));
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Whether failures are also written as a JSON error object on stdout (`--format json`);
/// read by the panic hook, which has no other way to know.
static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Bad arguments (clap's refusal): with `--format json` among them, the error object first
/// (code `usage`, clap's suggestions), then clap's own message and exit code 2. Help and
/// version requests print as clap prints them.
fn refuse_arguments(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !shown && wants_json(std::env::args()) {
        let mut suggestions = Vec::new();
        for kind in [ContextKind::SuggestedSubcommand, ContextKind::SuggestedArg, ContextKind::SuggestedValue] {
            match e.get(kind) {
                Some(ContextValue::String(s)) => suggestions.push(s.clone()),
                Some(ContextValue::Strings(list)) => suggestions.extend(list.iter().cloned()),
                _ => {}
            }
        }
        let text = e.render().to_string();
        let message = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
        println!("{}", error::json_object("usage", message, e.exit_code(), &suggestions));
    }
    e.exit()
}

/// Whether raw arguments ask for `--format json` (read before they could be parsed).
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter().any(|a| a == "--format=json") || args.windows(2).any(|w| w[0] == "--format" && w[1] == "json")
}

/// Any panic, on any thread (the writer's, sled's, rayon's), ends the process as an
/// operational error: one line on stderr and exit 2, not Rust's backtrace hint and 101. The
/// ledger commits whole records or none (ARCHITECTURE.md, Durability), so stopping here
/// loses nothing acknowledged.
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
    let message = format!(
        "internal failure: {what}{at}; the command stopped (the ledger keeps whole records only, so everything acknowledged is safe): check the data directory and its disk (space, permissions), then retry; if it happens again, report this message"
    );
    if JSON_ERRORS.load(std::sync::atomic::Ordering::Relaxed) {
        // Straight to the file descriptor: the panicking thread may be the one holding
        // stdout's lock, and `println!` would then wait for ever.
        let line = format!("{}\n", error::json_object("internal", &message, 2, &[]));
        // SAFETY: writes a valid buffer of its stated length to fd 1; a short or failed
        // write only loses the JSON copy of a message that stderr carries anyway.
        unsafe {
            libc::write(1, line.as_ptr().cast(), line.len());
        }
    }
    eprintln!("{}: {message}", output::bad("error"));
    std::process::exit(2);
}

/// Test-only, in debug builds only (the integration tests run those; a release build has
/// no such code): `STOCKPILE_TEST_PANIC=<text>` panics with `<text>` on a thread of its own,
/// as a panic inside sled or the writer would, so the tests can see [`report_panic`] work.
#[cfg(debug_assertions)]
fn test_panic() {
    if let Some(text) = std::env::var_os("STOCKPILE_TEST_PANIC") {
        let text = text.to_string_lossy().into_owned();
        let _ = std::thread::spawn(move || panic!("{text}")).join();
    }
}

fn run(cli: Cli, places: commands::demo::Places) -> Result<()> {
    let keys = Keystore::new(&cli.keys);
    match &cli.command {
        Verb::Keys(KeysVerb::Generate { id, party, role }) => {
            return commands::keys::generate(&keys, id, party.clone(), *role)
        }
        Verb::Keys(KeysVerb::List) => return commands::keys::list(&keys, cli.format),
        Verb::Demo { dir } => {
            if let Some(url) = &cli.nats {
                return Err(usage(commands::demo::refuse_nats(url)));
            }
            let data = places.data.then_some(cli.data.as_path());
            let keys = places.keys.then_some(cli.keys.as_path());
            return commands::demo::run(dir, data, keys);
        }
        Verb::Completions { shell } => return commands::completions::script(*shell),
        Verb::Man => return commands::completions::man(),
        Verb::NatsConfig { out, partners, listen, store_dir, witnesses } => {
            return commands::nats_config::run(out, partners, witnesses, listen, store_dir.as_deref())
        }
        Verb::Bench(a) => return commands::bench::run(a, cli.format),
        Verb::Witness(WitnessVerb::Key { key, name }) => return commands::witness::key(key, name),
        Verb::Witness(WitnessVerb::Show) => return commands::witness::show(&cli.data),
        Verb::Witness(WitnessVerb::LedgerKey { checkpoint }) => {
            let remote = match checkpoint {
                None => cli.nats.as_deref().map(|url| connect(&cli, url)).transpose()?,
                Some(_) => None,
            };
            return commands::witness::ledger_key(checkpoint.as_deref(), remote.as_ref(), &cli.data);
        }
        Verb::Witness(WitnessVerb::Serve { key, name, ledgers }) => {
            let Some(url) = &cli.nats else {
                return Err(usage("a witness serves over NATS: pass --nats URL (or set STOCKPILE_NATS_URL)"));
            };
            let identity = nats_identity(&cli)?;
            return commands::witness::serve(url, identity.as_ref(), &cli.data, key, name, ledgers);
        }
        Verb::List { what } if !commands::list::needs_log(*what) => {
            return commands::list::reference(cli.format, *what)
        }
        Verb::Audit(verb) => {
            // Offline verbs (check, replay, reproduce, verify FILE) never connect, even with
            // STOCKPILE_NATS_URL set: an auditor's tools work without the operator's server.
            let url = cli.nats.as_deref().filter(|_| verb.reads_the_ledger());
            let remote = url.map(|url| connect(&cli, url)).transpose()?;
            return commands::audit::run(&cli.data, remote.as_ref(), cli.format, verb);
        }
        Verb::Reports(verb) => {
            let Some(url) = &cli.nats else {
                return Err(usage(
                    "reports reads STOCKPILE_REPORTS over NATS: pass --nats URL (or set STOCKPILE_NATS_URL)",
                ));
            };
            return commands::reports::run(&connect(&cli, url)?, cli.format, verb);
        }
        Verb::Services { wait } => {
            let Some(url) = &cli.nats else {
                return Err(usage("services asks over NATS: pass --nats URL (or set STOCKPILE_NATS_URL)"));
            };
            let identity = nats_identity(&cli)?;
            let user = cli.nats_nkey.as_deref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned());
            let wait = wait.map(std::time::Duration::from_secs);
            return commands::services::run(url, identity.as_ref().zip(user), wait, cli.format);
        }
        Verb::Watch { filter } => {
            let Some(url) = &cli.nats else {
                return Err(usage("watch follows live events over NATS: pass --nats URL (or set STOCKPILE_NATS_URL)"));
            };
            let identity = nats_identity(&cli)?;
            let user = cli.nats_nkey.as_deref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned());
            let watch = commands::watch::Watch {
                url,
                identity: identity.as_ref().zip(user),
                partner: cli.nats_partner.as_deref().map(str::to_ascii_uppercase),
                format: cli.format,
            };
            return commands::watch::run(watch, filter);
        }
        _ => {}
    }
    if let Verb::Report(a) = &cli.command {
        commands::report::request(a)?; // bad arguments fail before a ledger is opened
        if a.submit && cli.nats.is_none() {
            return Err(usage(
                "--submit asks the projector service to build and publish the report from the ledger's log: pass --nats URL (or set STOCKPILE_NATS_URL); figures of a local --data directory are never submitted",
            ));
        }
    }
    let create = matches!(cli.command, Verb::Init { .. });
    let mut backend: Box<dyn Backend> = match &cli.nats {
        Some(url) => Box::new(connect(&cli, url)?),
        _ => Box::new(Embedded::open(&cli.data, create)?),
    };
    let result = dispatch(&cli, keys, backend.as_mut());
    let closed = backend.close();
    result.and(closed)
}

/// The NATS user of `--nats-nkey`, if given; an unreadable or invalid seed file is an
/// operational error naming it.
fn nats_identity(cli: &Cli) -> Result<Option<Identity>> {
    cli.nats_nkey.as_deref().map(|path| Identity::from_file(path).map_err(operational)).transpose()
}

/// Connects to the services at `url` as `--nats-nkey`'s user (and `--nats-partner`'s partner).
fn connect(cli: &Cli, url: &str) -> Result<remote::Remote> {
    let partner = cli.nats_partner.as_deref().map(str::to_ascii_uppercase);
    let identity = nats_identity(cli)?;
    // The user's name as `stockpile nats-config` wrote it: `users/<name>.nk`.
    let user = cli.nats_nkey.as_deref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned());
    let identity = identity.as_ref().zip(user);
    Ok(remote::Remote::connect(url, identity)?.acting_for(partner))
}

fn dispatch(cli: &Cli, keys: Keystore, backend: &mut dyn Backend) -> Result<()> {
    let mut ctx = Ctx { keys, format: cli.format, backend };
    match &cli.command {
        Verb::Init { ledger, admin_key } => commands::demo::init(&mut ctx, ledger, admin_key),
        Verb::Keys(KeysVerb::Revoke { key_id, reason, common }) => {
            commands::register::revoke(&mut ctx, key_id, reason, common)
        }
        Verb::Register(verb) => commands::register::run(&mut ctx, verb),
        Verb::Acquire(a) => commands::movements::acquire(&mut ctx, a),
        Verb::Store(a) => commands::movements::store(&mut ctx, a),
        Verb::Transfer(a) => commands::movements::transfer(&mut ctx, a),
        Verb::Release(a) => commands::movements::release(&mut ctx, a),
        Verb::Convert(a) => commands::movements::convert(&mut ctx, a),
        Verb::Adjust(a) => commands::movements::adjust(&mut ctx, a),
        Verb::Reverse(a) => commands::movements::reverse(&mut ctx, a),
        Verb::Post(a) => commands::post::run(&mut ctx, a),
        Verb::Holdings(a) => commands::query::holdings(&mut ctx, a),
        Verb::History(a) => commands::query::history(&mut ctx, a),
        Verb::List { what } => commands::list::run(&mut ctx, *what),
        Verb::Report(a) => commands::report::run(&mut ctx, a),
        Verb::Watch { .. }
        | Verb::Demo { .. }
        | Verb::Completions { .. }
        | Verb::Man
        | Verb::NatsConfig { .. }
        | Verb::Bench(_)
        | Verb::Witness(_)
        | Verb::Services { .. }
        | Verb::Keys(_)
        | Verb::Audit(_)
        | Verb::Reports(_) => {
            unreachable!("handled before a backend is opened")
        }
    }
}
