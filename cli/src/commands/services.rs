//! `services`: which stockpile services answer on NATS (`$SRV.PING`), and with `--wait` a
//! start-up gate for scripts: it returns once the ledger and the projector both answer.

use crate::args::Format;
use crate::error::{operational, Result};
use crate::output;
use crate::remote::{Pong, Remote};
use std::time::{Duration, Instant};
use stockpile_ledger::service::access::Identity;

/// How long one `$SRV.PING` gathers answers: every service on a healthy server answers in
/// milliseconds.
const PING_GATHER: Duration = Duration::from_millis(500);
/// Pause between two attempts while waiting.
const WAIT_RETRY: Duration = Duration::from_millis(250);
/// The services `--wait` waits for: a deployment runs at least these.
pub const REQUIRED: [&str; 2] = ["stockpile-ledger", "stockpile-projector"];

/// Lists the services answering at `url`; with `wait`, first waits up to that long for the
/// server and for every [`REQUIRED`] service (exit 2 naming the missing ones after it).
pub fn run(url: &str, identity: Option<(&Identity, String)>, wait: Option<Duration>, format: Format) -> Result<()> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    let (remote, pongs) = loop {
        let attempt = Remote::connect(url, identity.as_ref().map(|(i, u)| (*i, u.clone())))
            .and_then(|remote| remote.ping_services(PING_GATHER).map(|pongs| (remote, pongs)));
        let missing = match &attempt {
            Ok((_, pongs)) => missing(pongs),
            Err(e) => vec![e.to_string()],
        };
        if wait.is_none() || missing.is_empty() || Instant::now() >= deadline {
            match attempt {
                Ok(done) if wait.is_none() || missing.is_empty() => break done,
                Ok(_) => {
                    return Err(operational(format!(
                        "after {} s, no answer on $SRV.PING at {url} from {}: are they running, against this server? their logs say why not",
                        wait.unwrap_or_default().as_secs(),
                        missing.join(" and ")
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        std::thread::sleep(WAIT_RETRY);
    };
    drop(remote);
    print(&pongs, format)
}

/// The [`REQUIRED`] services not among `pongs`.
fn missing(pongs: &[Pong]) -> Vec<String> {
    REQUIRED.iter().filter(|name| !pongs.iter().any(|p| p.name == **name)).map(|n| (*n).to_string()).collect()
}

fn print(pongs: &[Pong], format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let rows: Vec<Vec<String>> = pongs.iter().map(|p| vec![p.name.clone(), p.version.clone(), p.id.clone()]).collect();
    let headers = ["service", "version", "id"];
    let written = match format {
        Format::Table => output::table(&mut out, &headers, &rows),
        Format::Csv => output::csv(&mut out, &headers, &rows),
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(pongs).expect("pongs encode"));
            Ok(())
        }
    };
    written.map_err(operational)
}
