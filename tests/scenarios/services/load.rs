//! Clients that append over NATS without pause, for the kill loop and the sustained-load
//! test, and the check that every command they got acknowledged is in the log once.
//!
//! Each client sends requests of [`LOAD_REQUEST_COMMANDS`] commands with event ids of its own
//! (acquires of new lots, or movements of one lot: see [`Workload`]) and sends each request until it is answered, as a real client must: a request whose
//! ledger died under it (the test bumps `restarts`), that found no responder or that got no
//! reply is sent again, byte for byte, so a command that had landed comes back as a
//! duplicate with its seq.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use stockpile_ledger::record::{self, GENESIS_PREV_HASH};
use tokio::sync::watch;

/// Commands per append request of a load client: several per request, so the writer's
/// groups mix requests and commands of one request.
pub const LOAD_REQUEST_COMMANDS: usize = 5;

/// Acquire numbers of client `c` start at `c * CLIENT_NUMBERS` (event ids never collide).
const CLIENT_NUMBERS: usize = 100_000_000;

/// What the load clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Acquires, each of a new lot: the ledger's state grows by a lot, a position and an
    /// idempotency entry per event.
    Acquires,
    /// Each client acquires one lot of [`MOVEMENT_LOT_TONNES`] in its first command, then
    /// transfers 1 kg of it between two of its positions: the state grows only by the
    /// idempotency entry every event id needs, as in a stockpile that mostly moves stock.
    Movements,
}

/// The lot each [`Workload::Movements`] client acquires and then moves 1 kg at a time.
pub const MOVEMENT_LOT_TONNES: &str = "1000000";

/// `count` commands of client `c`, numbered from `first` (its first is 0).
fn load_commands(workload: Workload, world: &World, c: usize, first: usize, count: usize) -> Vec<SignedCommand> {
    let number = c * CLIENT_NUMBERS + first;
    if workload == Workload::Acquires {
        return acquires(world, number, count);
    }
    const WHO: [&str; 3] = ["nl-covra", "de-rohstoff", "be-defence"];
    const MATERIAL: [&str; 3] = ["cobalt", "germanium", "tungsten"];
    let party = WHO[c % WHO.len()];
    let lot_id = format!("mv-lot-{c}");
    let (national, eu) =
        (holding(party, "in_transit", Programme::National), holding(party, "in_transit", Programme::Eu));
    (first..first + count)
        .map(|i| {
            let action = match i {
                0 => Action::Acquire {
                    lot: lot(&lot_id, MATERIAL[c % MATERIAL.len()], Form::Metal, 999_000, "JP"),
                    to: national.clone(),
                    quantity: amount(MOVEMENT_LOT_TONNES, Unit::T),
                    supplier: None,
                    contract: None,
                    price: None,
                },
                _ => Action::Transfer {
                    lot: stockpile_ledger::domain::LotId::new(lot_id.as_str()),
                    from: national.clone(),
                    to: eu.clone(),
                    quantity: amount("1", Unit::Kg),
                },
            };
            world.key(party).sign(command(
                &format!("mv-{}", c * CLIENT_NUMBERS + i),
                at("2026-02-01T00:00:00Z"),
                action,
            ))
        })
        .collect()
}

/// One request that was answered: its commands, the seq of each, and how many times it
/// was sent.
pub struct Acked {
    pub commands: Vec<SignedCommand>,
    pub seqs: Vec<u64>,
    pub attempts: usize,
}

/// Load clients running in the background.
pub struct Load {
    acked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Acked>>>,
}

impl Load {
    /// Starts `clients` clients on `client`'s connection. Bump `restarts` after the ledger was
    /// killed: requests in flight to it are then sent again at once.
    pub fn start(
        client: &async_nats::Client,
        clients: usize,
        workload: Workload,
        restarts: &watch::Receiver<u64>,
    ) -> Load {
        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|c| {
                let (client, restarts) = (client.clone(), restarts.clone());
                let (acked, stop) = (acked.clone(), stop.clone());
                tokio::spawn(async move {
                    let world = World::new();
                    let mut done = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let first = done.len() * LOAD_REQUEST_COMMANDS;
                        let commands = load_commands(workload, &world, c, first, LOAD_REQUEST_COMMANDS);
                        let (seqs, attempts) = send_until_answered(&client, &commands, restarts.clone()).await;
                        done.push(Acked { commands, seqs, attempts });
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    done
                })
            })
            .collect();
        Load { acked, stop, clients }
    }

    /// Requests answered so far, over all clients.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` requests were answered.
    pub async fn wait_for_acked(&self, count: usize) {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        while self.acked() < count {
            assert!(Instant::now() < deadline, "the load clients got {} of {count} replies in time", self.acked());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients after their current request (answered first) and returns every
    /// answered request.
    pub async fn finish(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for client in self.clients {
            all.extend(client.await.expect("a load client does not panic"));
        }
        all
    }
}

/// Sends one append request until the ledger answers it; its seqs (every command must be
/// appended, or a duplicate of itself) and the number of sends.
async fn send_until_answered(
    client: &async_nats::Client,
    commands: &[SignedCommand],
    mut restarts: watch::Receiver<u64>,
) -> (Vec<u64>, usize) {
    let body: Vec<u8> =
        serde_json::to_vec(&AppendRequest { commands: commands.to_vec(), atomic: false }).expect("encode");
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    for attempt in 1.. {
        restarts.borrow_and_update();
        let sent = client.request(subjects::APPEND, body.clone().into());
        tokio::select! {
            reply = sent => {
                // An error is no responders (the ledger is down) or no reply in time.
                if let Ok(reply) = reply {
                    if let Ok(reply) = serde_json::from_slice::<AppendReply>(&reply.payload) {
                        return (reply.results.iter().map(seq_of).collect(), attempt);
                    }
                    // Only "unavailable" (a ledger stopping) and, with replicated commit,
                    // "not_replicated" (the stream did not store it in time) may be answered
                    // instead; both mean: send the same commands again.
                    let error = error_reply(&reply.payload).error;
                    assert!(matches!(error.code.as_str(), "unavailable" | "not_replicated"), "{}", error.message);
                }
            }
            // The ledger this request went to was killed: no reply will come.
            _ = restarts.changed() => {}
        }
        assert!(Instant::now() < deadline, "a request went unanswered for {CATCH_UP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!("the attempts are bounded by the deadline")
}

/// Checks the log as read back through `ledger.range` against what the clients were told:
/// the hash chain links from genesis to the head, no event id appears twice, and every
/// acknowledged command sits at the seq it was acknowledged with.
pub fn check_acked_in_log(records: &[Vec<u8>], acked: &[Acked]) {
    let mut prev = GENESIS_PREV_HASH;
    let mut seq_of_id: HashMap<String, u64> = HashMap::with_capacity(records.len());
    for (i, bytes) in records.iter().enumerate() {
        let seq = i as u64 + 1;
        prev = record::check_link(bytes, seq, &prev).unwrap_or_else(|e| panic!("record {seq} breaks the chain: {e}")).1;
        let value: serde_json::Value = serde_json::from_slice(bytes).expect("a record is JSON");
        let id = value["body"]["event_id"].as_str().expect("an event id").to_string();
        if let Some(first) = seq_of_id.insert(id.clone(), seq) {
            panic!("event {id} is in the log twice: at {first} and {seq}");
        }
    }
    for request in acked {
        for (command, seq) in request.commands.iter().zip(&request.seqs) {
            let id = command.command.id.as_str();
            assert_eq!(seq_of_id.get(id), Some(seq), "acknowledged event {id} is in the log at its seq");
        }
    }
}
