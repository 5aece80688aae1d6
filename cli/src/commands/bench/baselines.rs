//! Baselines that do the same durable work with other well-known stores, measured in the
//! same run and with the same number of clients as our appends:
//!
//! - JetStream publish-with-ack of the same record bytes into a file-backed stream, with the
//!   server's default settings (JetStream fsyncs every two minutes, not before an ack) and
//!   with `sync_interval: always` (fsync before every ack: the durable comparison);
//! - PostgreSQL: an append-only event table and a balance table, one transaction per event
//!   doing the ledger's balance check (`SELECT … FOR UPDATE`, check, `INSERT` the event,
//!   `UPDATE` both balances), `synchronous_commit = on`.

use super::embedded::baseline_records;
use super::nats_server::{self, Binary, Server};
use super::over_nats::{connect, runtime};
use super::report::{Figure, Status};
use super::{join_all, progress, Plan};
use crate::error::{operational, CliError, Result};
use async_nats::jetstream::{self, stream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use stockpile_ledger::bench::Rate;

/// The baseline stream and its subject.
const STREAM: &str = "STOCKPILE_BENCH_BASELINE";
const SUBJECT: &str = "stockpile.bench.baseline";

/// Environment variable with a libpq-style connection string for the PostgreSQL baseline.
pub const POSTGRES_ENV: &str = "STOCKPILE_BENCH_POSTGRES";

/// Where PostgreSQL is looked for when `STOCKPILE_BENCH_POSTGRES` is not set, tried with
/// each of [`POSTGRES_USERS`].
const POSTGRES_DEFAULT: &str = "host=127.0.0.1 port=5432 dbname=test connect_timeout=5";
const POSTGRES_USERS: [&str; 2] = ["postgres", "root"];

/// Grams each PostgreSQL event moves: the ledger workload's 1 kg.
const POSTGRES_EVENT_G: i64 = 1_000;
/// Grams each client's first position starts with: the workload's 1,000 t lot (enough for
/// the most events a client is given, `--events` ≤ 1,000,000).
const POSTGRES_OPENING_G: i64 = 1_000_000_000;

pub fn jetstream(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let found = nats_server::candidates();
    let records = baseline_records(work, plan.events)?;
    let rt = runtime()?;
    let mut figures = Vec::new();
    let modes = [
        ("jetstream-default", "JetStream publish-with-ack, default settings", nats_server::preferred(&found), false),
        (
            "jetstream-sync-always",
            "JetStream publish-with-ack, sync_interval: always",
            nats_server::with_sync_always(&found),
            true,
        ),
    ];
    for (kind, name, bin, sync_always) in modes {
        let bin: Binary = match bin {
            Ok(b) => b,
            Err(why) => {
                for &c in &plan.clients {
                    figures.push(Figure::not_measured(kind, name, Some(c), Status::Unavailable, why.clone()));
                }
                continue;
            }
        };
        for &clients in &plan.clients {
            let server = Server::start(&bin, work, sync_always).map_err(operational)?;
            let bar = progress(records.len() as u64, &format!("{kind}, {clients} clients"));
            let name = format!("{name}, {clients} clients");
            let rate = rt.block_on(publish(server.url(), &records, clients, plan.deadline(), name, &bar))?;
            bar.finish_and_clear();
            let note = format!("nats-server v{}.{}.{}", bin.version.0, bin.version.1, bin.version.2);
            figures.push(Figure::rate(kind, Some(clients), rate).with_note(note));
        }
    }
    Ok(figures)
}

/// `clients` publishers, each with one publish awaiting its ack at a time.
async fn publish(
    url: &str,
    records: &[Vec<u8>],
    clients: usize,
    deadline: Instant,
    name: String,
    bar: &indicatif::ProgressBar,
) -> Result<Rate> {
    let client = connect(url).await?;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECT.into()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: 1,
        // No limits: like STOCKPILE_EVENTS, the stream keeps everything.
        max_messages: -1,
        max_bytes: -1,
        ..Default::default()
    })
    .await
    .map_err(|e| operational(format!("cannot create the baseline stream: {e}")))?;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for c in 0..clients {
        let mine: Vec<Vec<u8>> = records.iter().skip(c).step_by(clients).cloned().collect();
        let (js, done, bar) = (js.clone(), done.clone(), bar.clone());
        tasks.spawn(async move {
            for payload in mine {
                if Instant::now() >= deadline {
                    break;
                }
                let ack = js.publish(SUBJECT, payload.into()).await.map_err(operational)?;
                ack.await.map_err(operational)?;
                done.fetch_add(1, Ordering::Relaxed);
                bar.inc(1);
            }
            Ok::<(), CliError>(())
        });
    }
    join_all(tasks).await?;
    Ok(Rate::new(name, done.load(Ordering::Relaxed), started))
}

pub fn postgres(plan: &Plan, work: &Path) -> Result<Vec<Figure>> {
    let records = baseline_records(work, plan.events)?;
    let rt = runtime()?;
    rt.block_on(async {
        let name = "PostgreSQL, one transaction per event with the balance check";
        let (conninfo, admin) = match connect_any().await {
            Ok(found) => found,
            Err(why) => {
                let skipped =
                    |c: &usize| Figure::not_measured("postgres", name, Some(*c), Status::Skipped, why.clone());
                return Ok(plan.clients.iter().map(skipped).collect());
            }
        };
        let settings = server_settings(&admin).await?;
        let mut figures = Vec::new();
        for &clients in &plan.clients {
            let tables = Tables::new(clients);
            tables.create(&admin, clients).await?;
            let bar = progress(records.len() as u64, &format!("postgres, {clients} clients"));
            let name = format!("{name}, {clients} clients");
            let rate = transactions(&conninfo, &tables, &records, clients, plan.deadline(), name, &bar).await;
            bar.finish_and_clear();
            tables.drop(&admin).await?;
            figures.push(Figure::rate("postgres", Some(clients), rate?).with_note(settings.clone()));
        }
        Ok(figures)
    })
}

/// The first connection string that connects: `STOCKPILE_BENCH_POSTGRES`, else the local
/// default with each user in turn. The error says what was tried.
async fn connect_any() -> std::result::Result<(String, tokio_postgres::Client), String> {
    let tries: Vec<String> = match std::env::var(POSTGRES_ENV) {
        Ok(s) => vec![s],
        Err(_) => POSTGRES_USERS.iter().map(|u| format!("{POSTGRES_DEFAULT} user={u}")).collect(),
    };
    let mut errors = Vec::new();
    for conninfo in tries {
        match connect_pg(&conninfo).await {
            Ok(client) => return Ok((conninfo, client)),
            Err(e) => errors.push(format!("{conninfo}: {e}")),
        }
    }
    Err(format!("no PostgreSQL server reachable ({}); set {POSTGRES_ENV} to a connection string", errors.join("; ")))
}

async fn connect_pg(conninfo: &str) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection");
        }
    });
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

/// The durability settings in force, for the figure's note.
async fn server_settings(client: &tokio_postgres::Client) -> Result<String> {
    let mut out = Vec::new();
    for setting in ["server_version", "fsync", "synchronous_commit", "wal_sync_method"] {
        let row = client.query_one(&format!("SHOW {setting}"), &[]).await.map_err(pg_error)?;
        out.push(format!("{setting}={}", row.get::<_, String>(0)));
    }
    Ok(out.join(" "))
}

fn pg_error(e: tokio_postgres::Error) -> CliError {
    operational(format!("PostgreSQL: {e}"))
}

/// The baseline's two tables, named for this process so concurrent runs do not meet.
struct Tables {
    events: String,
    balances: String,
}

impl Tables {
    fn new(clients: usize) -> Tables {
        let prefix = format!("stockpile_bench_{}_{clients}", std::process::id());
        Tables { events: format!("{prefix}_events"), balances: format!("{prefix}_balances") }
    }

    /// Two positions per client (the workload's two facilities), the first holding the lot.
    async fn create(&self, client: &tokio_postgres::Client, clients: usize) -> Result<()> {
        let (events, balances) = (&self.events, &self.balances);
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {events}, {balances};
                 CREATE TABLE {balances} (position integer PRIMARY KEY, balance_g bigint NOT NULL CHECK (balance_g >= 0));
                 CREATE TABLE {events} (seq bigserial PRIMARY KEY, from_position integer NOT NULL,
                     to_position integer NOT NULL, quantity_g bigint NOT NULL, record bytea NOT NULL);"
            ))
            .await
            .map_err(pg_error)?;
        for c in 0..clients as i32 {
            client
                .execute(
                    &format!("INSERT INTO {balances} (position, balance_g) VALUES ($1, $2), ($3, 0)"),
                    &[&(2 * c), &POSTGRES_OPENING_G, &(2 * c + 1)],
                )
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    async fn drop(&self, client: &tokio_postgres::Client) -> Result<()> {
        client.batch_execute(&format!("DROP TABLE {}, {}", self.events, self.balances)).await.map_err(pg_error)
    }
}

/// `clients` connections, each committing one event per transaction, moving 1 kg from its
/// first position to its second as the ledger workload does.
async fn transactions(
    conninfo: &str,
    tables: &Tables,
    records: &[Vec<u8>],
    clients: usize,
    deadline: Instant,
    name: String,
    bar: &indicatif::ProgressBar,
) -> Result<Rate> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(connect_pg(conninfo).await.map_err(pg_error)?);
    }
    let started = Instant::now();
    for (c, mut client) in connections.into_iter().enumerate() {
        let mine: Vec<Vec<u8>> = records.iter().skip(c).step_by(clients).cloned().collect();
        let (done, bar) = (done.clone(), bar.clone());
        let select = format!(
            "SELECT position, balance_g FROM {} WHERE position IN ($1, $2) ORDER BY position FOR UPDATE",
            tables.balances
        );
        let insert = format!(
            "INSERT INTO {} (from_position, to_position, quantity_g, record) VALUES ($1, $2, $3, $4)",
            tables.events
        );
        let update = format!("UPDATE {} SET balance_g = balance_g + $2 WHERE position = $1", tables.balances);
        tasks.spawn(async move {
            let select = client.prepare(&select).await.map_err(pg_error)?;
            let insert = client.prepare(&insert).await.map_err(pg_error)?;
            let update = client.prepare(&update).await.map_err(pg_error)?;
            let (a, b) = (2 * c as i32, 2 * c as i32 + 1);
            for record in &mine {
                if Instant::now() >= deadline {
                    break;
                }
                let (from, to) = (a, b);
                let tx = client.transaction().await.map_err(pg_error)?;
                let rows = tx.query(&select, &[&a, &b]).await.map_err(pg_error)?;
                let available: i64 = rows.iter().find(|r| r.get::<_, i32>(0) == from).map_or(0, |r| r.get::<_, i64>(1));
                if available < POSTGRES_EVENT_G {
                    return Err(operational(format!("PostgreSQL baseline: position {from} holds {available} g")));
                }
                tx.execute(&insert, &[&from, &to, &POSTGRES_EVENT_G, record]).await.map_err(pg_error)?;
                tx.execute(&update, &[&from, &-POSTGRES_EVENT_G]).await.map_err(pg_error)?;
                tx.execute(&update, &[&to, &POSTGRES_EVENT_G]).await.map_err(pg_error)?;
                tx.commit().await.map_err(pg_error)?;
                done.fetch_add(1, Ordering::Relaxed);
                bar.inc(1);
            }
            Ok::<(), CliError>(())
        });
    }
    join_all(tasks).await?;
    Ok(Rate::new(name, done.load(Ordering::Relaxed), started))
}
