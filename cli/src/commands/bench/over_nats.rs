//! The scenarios over NATS: the ledger service (and, for post-to-visible, the projector
//! service) run in this process, as `stockpile-ledger serve` and `stockpile-projector serve`
//! would, against a nats-server the bench starts with its own directory: a single-account
//! one, or (`append-nats-accounts`) one on the accounts configuration `stockpile nats-config`
//! writes, the service as its `ledger` and `ledger-publisher` users and the clients as a
//! partner's user posting on its own channel through the account's service import. The
//! cluster variants (`append-nats-cluster`, `append-nats-cluster-replicated`) run on three
//! nats-servers routed into one JetStream cluster, the streams with three replicas.

use super::embedded::fresh_dir;
use super::nats_server::{self, Cluster, Server, CLUSTER_SIZE};
use super::report::{Figure, Status};
use super::{join_all, progress, Plan};
use crate::error::{operational, CliError, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stockpile_ledger::bench::{self, Latency, Rate};
use stockpile_ledger::service::access::{self, Identity, Role};
use stockpile_ledger::service::{self, subjects, ServiceConfig};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::wire::{AppendReply, AppendRequest, AppendResult};
use stockpile_ledger::LedgerHandle;
use stockpile_projector::service::{ProjectorConfig, HOLDINGS_QUERY};
use stockpile_projector::{Holdings, HoldingsQuery};
use tokio::sync::oneshot;

/// Longest wait for the services to answer after they were started, and for one reply.
pub const SERVICE_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two looks at the service's `$SRV.INFO` or the projector's head.
const READY_POLL: Duration = Duration::from_millis(50);

/// Longest wait for one `$SRV.INFO` answer while waiting for the service to come up.
const READY_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// Pause between two holdings queries while watching for appended events to become visible:
/// the resolution of the post-to-visible figure (beside the query's own round trip).
pub const VISIBLE_POLL: Duration = Duration::from_millis(1);

/// Longest wait, after the last append, for the projector to show it.
pub const VISIBLE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The lot the post-to-visible workload moves (the first submitter's, see
/// `stockpile_ledger::bench::prepare_appends`); queries filter on it so they stay cheap.
const VISIBLE_LOT: &str = "bench-lot-0";

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| operational(format!("cannot start the async runtime: {e}")))
}

/// Commands per request in the batched runs of the append-over-NATS scenario: what a client
/// that has many commands at hand sends (`stockpile post` sends 1,000).
pub const NATS_BATCH_COMMANDS: usize = 100;

/// The partner whose user submits in the accounts variant: the workload is signed by its
/// party `nl-covra`, so every command may come through its channel.
pub const ACCOUNTS_PARTNER: &str = "NL";

/// Which NATS set-up an append run is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    /// One account, no authentication; clients post on `stockpile.v1.ledger.append`.
    Single,
    /// `stockpile nats-config`'s accounts; clients are [`ACCOUNTS_PARTNER`]'s user posting on
    /// `stockpile.v1.ledger.append.NL` through its service import.
    Partner,
    /// One account, the ledger serving with `--replicate`: each answer waits for the
    /// stream's ack of its records (here one server, so the stream has one replica).
    Replicated,
    /// One account on a [`Cluster`] of [`CLUSTER_SIZE`] servers, the ledger's streams with a
    /// replica on each node; the ledger connects to every node.
    Cluster,
    /// [`Accounts::Cluster`] with the ledger serving `--replicate`: each answer waits for the
    /// stream's ack, which a stream of three replicas sends once two nodes stored the record.
    ClusterReplicated,
}

impl Accounts {
    /// The figure kinds of the one- and the many-commands-per-request runs.
    pub fn kinds(self) -> [&'static str; 2] {
        match self {
            Accounts::Single => ["append-nats", "append-nats-batched"],
            Accounts::Partner => ["append-nats-accounts", "append-nats-accounts-batched"],
            Accounts::Replicated => ["append-nats-replicated", "append-nats-replicated-batched"],
            Accounts::Cluster => ["append-nats-cluster", "append-nats-cluster-batched"],
            Accounts::ClusterReplicated => ["append-nats-cluster-replicated", "append-nats-cluster-replicated-batched"],
        }
    }

    /// What a figure's name adds for this set-up.
    fn label(self) -> &'static str {
        match self {
            Accounts::Single => "",
            Accounts::Partner => ", partner account",
            Accounts::Replicated => ", --replicate",
            Accounts::Cluster => ", 3-node cluster",
            Accounts::ClusterReplicated => ", 3-node cluster, --replicate",
        }
    }

    /// Whether the ledger serves with `--replicate`.
    fn replicate(self) -> bool {
        matches!(self, Accounts::Replicated | Accounts::ClusterReplicated)
    }
}

/// The nats-server(s) of one run, killed on drop.
enum Nats {
    One(Server),
    Cluster(Cluster),
}

impl Nats {
    /// The URL the ledger and the clients connect to (every node's, for a cluster).
    fn url(&self) -> String {
        match self {
            Nats::One(server) => server.url().to_string(),
            Nats::Cluster(cluster) => cluster.urls(),
        }
    }
}

/// Durable signed appends over NATS: `clients` concurrent requesters, one request in flight
/// each, multiplexed on one connection; once with one command per request (`append-nats`)
/// and once with [`NATS_BATCH_COMMANDS`] per request (`append-nats-batched`). With
/// [`Accounts::Partner`], the same on the accounts configuration (`append-nats-accounts`,
/// `append-nats-accounts-batched`); the report sets the two side by side. Likewise each other
/// set-up ([`Accounts::kinds`]), each run on fresh servers.
pub fn appends(plan: &Plan, work: &Path, accounts: Accounts) -> Result<Vec<Figure>> {
    let found = nats_server::candidates();
    let bin = match nats_server::preferred(&found) {
        Ok(b) => b,
        Err(why) => {
            let name = "signed durable appends over NATS";
            let unavailable = |(kind, c): (&str, &usize)| {
                Figure::not_measured(kind, name, Some(*c), Status::Unavailable, why.clone())
            };
            let kinds = accounts.kinds();
            return Ok(kinds.iter().flat_map(|k| plan.clients.iter().map(|c| unavailable((k, c)))).collect());
        }
    };
    let rt = runtime()?;
    let mut figures = Vec::new();
    for batch in [1, NATS_BATCH_COMMANDS] {
        for &clients in &plan.clients {
            figures.push(append_run(plan, work, &bin, &rt, clients, batch, accounts)?);
        }
    }
    Ok(figures)
}

/// One run of [`appends`]: `clients` requesters sending `batch` commands per request.
fn append_run(
    plan: &Plan,
    work: &Path,
    bin: &nats_server::Binary,
    rt: &tokio::runtime::Runtime,
    clients: usize,
    batch: usize,
    accounts: Accounts,
) -> Result<Figure> {
    let [single, batched] = accounts.kinds();
    let on = accounts.label();
    let (kind, per_request) = match batch {
        1 => (single, on.to_string()),
        n => (batched, format!("{on}, {n} commands per request")),
    };
    let dir = fresh_dir(work, &format!("{kind}-{clients}"))?;
    let workload = bench::prepare_appends(&dir, clients, plan.events as usize);
    let mut note = format!("nats-server v{}.{}.{}", bin.version.0, bin.version.1, bin.version.2);
    let (nats, mut config, watcher, submitter, subject) = match accounts {
        Accounts::Single | Accounts::Replicated => {
            let server = Server::start(bin, work, false).map_err(operational)?;
            let config = ServiceConfig::new(server.url(), &dir);
            (Nats::One(server), config, None, None, subjects::APPEND.to_string())
        }
        Accounts::Cluster | Accounts::ClusterReplicated => {
            let cluster = Cluster::start(bin, work).map_err(operational)?;
            rt.block_on(cluster.wait_for_jetstream()).map_err(operational)?;
            let mut config = ServiceConfig::new(cluster.urls(), &dir);
            config.stream_replicas = CLUSTER_SIZE;
            note = format!("{note}, {CLUSTER_SIZE}-node cluster, streams R{CLUSTER_SIZE}");
            (Nats::Cluster(cluster), config, None, None, subjects::APPEND.to_string())
        }
        Accounts::Partner => {
            let (server, users) = Server::start_accounts(bin, work).map_err(operational)?;
            let config = users.ledger_config(server.url(), &dir);
            let admin = users.identity(&Role::Admin);
            let partner = users.identity(&Role::Partner(ACCOUNTS_PARTNER.into()));
            let subject = subjects::partner_append_subject(ACCOUNTS_PARTNER);
            (Nats::One(server), config, Some(admin), Some(partner), subject)
        }
    };
    config.replicate = accounts.replicate();
    let url = nats.url();
    let ledger = bench::start(&dir);
    let bar = progress(plan.events, &format!("append over NATS, {clients} clients{per_request}"));
    let deadline = plan.deadline();
    let subject = subject.as_str();
    let rate = rt.block_on(with_ledger_config(config, watcher, ledger.clone(), async {
        let client = connect_as(&url, submitter.as_ref()).await?;
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for commands in workload.commands {
            let (client, done, bar) = (client.clone(), done.clone(), bar.clone());
            let subject = subject.to_string();
            tasks.spawn(async move {
                let mut commands = commands.into_iter().peekable();
                while commands.peek().is_some() && Instant::now() < deadline {
                    let chunk: Vec<SignedCommand> = commands.by_ref().take(batch).collect();
                    let n = chunk.len() as u64;
                    append_batch_on(&client, &subject, chunk).await?;
                    done.fetch_add(n, Ordering::Relaxed);
                    bar.inc(n);
                }
                Ok::<(), CliError>(())
            });
        }
        join_all(tasks).await?;
        let name = format!("signed durable appends over NATS, {clients} clients{per_request}");
        Ok(Rate::new(name, done.load(Ordering::Relaxed), started))
    }))?;
    bar.finish_and_clear();
    ledger.shutdown().map_err(operational)?;
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figure::rate(kind, Some(clients), rate).with_note(note))
}

/// Post-to-visible latency: appends offered at `--rate` events/s (open loop: each is sent
/// on its tick whether or not earlier ones were answered), each timestamped when sent; the
/// projector's head is polled through `stockpile.v1.holdings.query` every [`VISIBLE_POLL`],
/// and an event counts as visible when the first reply whose `seq` covers it arrives (an
/// upper bound: it became visible at most then).
pub fn visible(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let found = nats_server::candidates();
    let bin = match nats_server::preferred(&found) {
        Ok(b) => b,
        Err(why) => {
            let name = "post-to-visible latency";
            return Ok(vec![Figure::not_measured("visible", name, None, Status::Unavailable, why)]);
        }
    };
    let events = plan.events.min(plan.rate * plan.seconds);
    let dir = fresh_dir(work, "visible")?;
    let workload = bench::prepare_appends(&dir, 1, events as usize);
    let commands: Vec<SignedCommand> = workload.commands.into_iter().flatten().collect();
    let server = Server::start(&bin, work, false).map_err(operational)?;
    let ledger = bench::start(&dir);
    let projector_config = ProjectorConfig::new(server.url(), fresh_dir(work, "visible-projector")?);
    let rt = runtime()?;
    let bar = progress(commands.len() as u64, &format!("post-to-visible at {}/s", plan.rate));
    let (sent, seen, not_visible, seconds) =
        rt.block_on(with_ledger_service(server.url(), &dir, ledger.clone(), async {
            let (stop_projector, projector_stopped) = oneshot::channel::<()>();
            let projector = tokio::spawn(stockpile_projector::service::run(projector_config, async move {
                let _ = projector_stopped.await;
            }));
            let client = connect(server.url()).await?;
            let setup_head = *ledger.head().borrow();
            wait_for_projector(&client, setup_head).await?;
            let seen = Arc::new(Mutex::new(Vec::<(Instant, u64)>::new()));
            let (stop_poll, poll_stopped) = tokio::sync::watch::channel(false);
            let poller = tokio::spawn(poll_head(client.clone(), seen.clone(), poll_stopped));
            let started = Instant::now();
            let sent = offer(&client, commands, plan.rate, plan.deadline(), &bar).await?;
            let last = sent.iter().map(|s| s.0).max().unwrap_or(setup_head);
            let drain_until = Instant::now() + VISIBLE_DRAIN_TIMEOUT;
            while head_seen(&seen) < last && Instant::now() < drain_until {
                tokio::time::sleep(READY_POLL).await;
            }
            let seconds = started.elapsed().as_secs_f64();
            let _ = stop_poll.send(true);
            let _ = poller.await;
            let _ = stop_projector.send(());
            projector.await.map_err(operational)?.map_err(operational)?;
            let seen = std::mem::take(&mut *seen.lock().expect("not poisoned"));
            let not_visible = sent.iter().filter(|s| s.0 > seen.last().map_or(0, |l| l.1)).count();
            Ok((sent, seen, not_visible, seconds))
        }))?;
    bar.finish_and_clear();
    ledger.shutdown().map_err(operational)?;
    drop(server);
    let visible: Vec<Duration> = sent
        .iter()
        .filter_map(|&(seq, at, _)| {
            let i = seen.partition_point(|&(_, s)| s < seq);
            seen.get(i).map(|&(t, _)| t.saturating_duration_since(at))
        })
        .collect();
    let acks: Vec<Duration> = sent.iter().map(|&(_, at, acked)| acked - at).collect();
    let mut figures = Vec::new();
    let offered = format!("offered {}/s, {} events", plan.rate, sent.len());
    match Latency::of(format!("post-to-visible in the projector at {}/s", plan.rate), visible) {
        Some(l) => {
            let mut note = format!("{offered}; polled every {} ms via holdings.query", VISIBLE_POLL.as_millis());
            if not_visible > 0 {
                note = format!("{note}; {not_visible} never visible within {VISIBLE_DRAIN_TIMEOUT:?}");
            }
            let mut f = Figure::latency("visible", l, seconds).with_note(note);
            if not_visible > 0 {
                f.status = Status::Failed;
            }
            figures.push(f);
        }
        None => figures.push(Figure::not_measured(
            "visible",
            "post-to-visible latency",
            None,
            Status::Failed,
            "no event was appended".into(),
        )),
    }
    if let Some(l) = Latency::of(format!("append round trip over NATS at {}/s", plan.rate), acks) {
        figures.push(Figure::latency("append-ack", l, seconds).with_note(offered));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

/// Sends `commands` one per tick at `rate`/s until `deadline`; for each: its seq, when it
/// was sent and when it was acknowledged.
async fn offer(
    client: &async_nats::Client,
    commands: Vec<SignedCommand>,
    rate: u64,
    deadline: Instant,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<(u64, Instant, Instant)>> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    // Keep the offered rate: ticks missed while the runtime was busy are sent at once.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for c in commands {
        ticker.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let (client, bar) = (client.clone(), bar.clone());
        tasks.spawn(async move {
            let at = Instant::now();
            let seq = append_one(&client, c).await?;
            bar.inc(1);
            Ok::<_, CliError>((seq, at, Instant::now()))
        });
    }
    let mut sent = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        sent.push(joined.map_err(operational)??);
    }
    Ok(sent)
}

fn head_seen(seen: &Mutex<Vec<(Instant, u64)>>) -> u64 {
    seen.lock().expect("not poisoned").last().map_or(0, |l| l.1)
}

/// Asks the projector for its head every [`VISIBLE_POLL`]; records when each new head was
/// first seen.
async fn poll_head(
    client: async_nats::Client,
    seen: Arc<Mutex<Vec<(Instant, u64)>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        if let Ok(seq) = projector_head(&client).await {
            let now = Instant::now();
            let mut seen = seen.lock().expect("not poisoned");
            if seen.last().is_none_or(|l| seq > l.1) {
                seen.push((now, seq));
            }
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(VISIBLE_POLL) => {}
        }
    }
}

/// The projector's head, from a cheap holdings query (one lot).
async fn projector_head(client: &async_nats::Client) -> Result<u64> {
    let query = HoldingsQuery { lot: vec![VISIBLE_LOT.into()], ..HoldingsQuery::default() };
    let body = serde_json::to_vec(&query).expect("query encodes");
    let reply = client.request(HOLDINGS_QUERY, body.into()).await.map_err(operational)?;
    let holdings: Holdings = serde_json::from_slice(&reply.payload)
        .map_err(|e| operational(format!("the projector answered something else than holdings: {e}")))?;
    Ok(holdings.seq)
}

async fn wait_for_projector(client: &async_nats::Client, head: u64) -> Result<()> {
    let deadline = Instant::now() + SERVICE_READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(projector_head(client).await, Ok(seq) if seq >= head) {
            return Ok(());
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(operational(format!("the projector did not reach seq {head} within {SERVICE_READY_TIMEOUT:?}")))
}

/// One command in one request; its seq.
async fn append_one(client: &async_nats::Client, command: SignedCommand) -> Result<u64> {
    append_batch(client, vec![command]).await
}

/// Commands in one request, each standing alone; the seq of the last. Every one must be
/// appended: the workload holds no command the ledger refuses.
pub async fn append_batch(client: &async_nats::Client, commands: Vec<SignedCommand>) -> Result<u64> {
    append_batch_on(client, subjects::APPEND, commands).await
}

/// [`append_batch`] on `subject` (the operators' `ledger.append`, or a partner's channel).
pub async fn append_batch_on(client: &async_nats::Client, subject: &str, commands: Vec<SignedCommand>) -> Result<u64> {
    let count = commands.len();
    let body = serde_json::to_vec(&AppendRequest { commands, atomic: false }).expect("request encodes");
    let reply = client.request(subject.to_string(), body.into()).await.map_err(operational)?;
    let reply: AppendReply = serde_json::from_slice(&reply.payload)
        .map_err(|e| operational(format!("the ledger answered something else than an append reply: {e}")))?;
    let mut last = None;
    for result in &reply.results {
        match result {
            AppendResult::Appended { seq, .. } => last = Some(*seq),
            other => return Err(operational(format!("a benchmark command was not appended: {other:?}"))),
        }
    }
    match last {
        Some(seq) if reply.results.len() == count => Ok(seq),
        _ => Err(operational(format!("{count} commands sent, {} results back", reply.results.len()))),
    }
}

pub async fn connect(url: &str) -> Result<async_nats::Client> {
    connect_as(url, None).await
}

/// [`connect`] as `identity`'s user (on the accounts configuration), or unauthenticated.
/// `url` may list several servers, comma-separated (a cluster's nodes).
pub async fn connect_as(url: &str, identity: Option<&Identity>) -> Result<async_nats::Client> {
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    access::authenticate(async_nats::ConnectOptions::new(), identity)
        .request_timeout(Some(SERVICE_READY_TIMEOUT))
        .connect(servers)
        .await
        .map_err(|e| operational(format!("cannot connect to {url}: {e}")))
}

/// Serves `ledger` over NATS at `url` while `work` runs, then stops the service cleanly.
async fn with_ledger_service<T>(
    url: &str,
    dir: &Path,
    ledger: LedgerHandle,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    with_ledger_config(ServiceConfig::new(url, dir), None, ledger, work).await
}

/// [`with_ledger_service`] with a given config; `watcher` is the user that asks whether the
/// service answers yet (none on a server without accounts; on accounts, `admin`, whose
/// account imports `$SRV.>`).
pub async fn with_ledger_config<T>(
    config: ServiceConfig,
    watcher: Option<Identity>,
    ledger: LedgerHandle,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let url = config.nats_url.clone();
    let url = url.as_str();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        service::serve(&config, ledger, async move {
            let _ = stopped.await;
        })
        .await
    });
    let client = connect_as(url, watcher.as_ref()).await?;
    wait_until_serving(&client).await?;
    let result = work.await;
    let _ = stop.send(());
    task.await.map_err(operational)?.map_err(operational)?;
    result
}

async fn wait_until_serving(client: &async_nats::Client) -> Result<()> {
    let deadline = Instant::now() + SERVICE_READY_TIMEOUT;
    let subject = format!("$SRV.INFO.{}", subjects::SERVICE_NAME);
    while Instant::now() < deadline {
        // Bounded: through an account's import, an INFO asked before the service is up
        // gets no "no responders", only silence.
        let asked = tokio::time::timeout(READY_REQUEST_TIMEOUT, client.request(subject.clone(), "".into())).await;
        if let Ok(Ok(reply)) = asked {
            let info: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
            let endpoints = info["endpoints"].as_array().map_or(0, Vec::len);
            if endpoints > 0 {
                return Ok(());
            }
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(operational(format!("the ledger service did not answer within {SERVICE_READY_TIMEOUT:?}")))
}
