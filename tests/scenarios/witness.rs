//! A partner's witness (`stockpile witness serve`, the real binary) over a real nats-server,
//! fed checkpoints of real ledgers: it cosigns a growing log, refuses a fork and a rollback
//! and keeps them as evidence, and after SIGKILLs (some in the middle of a request) it never
//! forgets what it cosigned nor cosigns another root at a size it cosigned.

use crate::services::{acquires, open_ledger, setup_commands, REPLY_TIMEOUT};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stockpile_ledger::audit::note::{Note, NoteSignature, Quorum, VerifierKey};
use stockpile_ledger::audit::witness::{self, AddCheckpoint};
use stockpile_ledger::audit::{checkpoint, proof, Checkpoint, LedgerKey};
use stockpile_ledger::testkit::World;
use stockpile_ledger::wire::ProofReply;
use stockpile_ledger::LedgerHandle;
use stockpile_tests::bins::binary;
use stockpile_tests::nats::NatsServer;

const NAME: &str = "witness.nl.example/w1";

/// SIGKILL rounds of the witness, each with a request in flight that waited 0, 5, 10, … ms
/// before the kill (so some land before, some during, some after the request is handled).
const SIGKILL_ROUNDS: u64 = 20;

/// Longest wait for the witness to serve after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Witness {
    child: Child,
    vkey: VerifierKey,
    args: Vec<String>,
}

impl Witness {
    fn start(nats: &str, dir: &Path, ledger: &str) -> Witness {
        Witness::start_named(nats, dir, ledger, NAME)
    }

    fn start_named(nats: &str, dir: &Path, ledger: &str, name: &str) -> Witness {
        let args = vec![
            "--nats".to_string(),
            nats.to_string(),
            "--data".into(),
            dir.join("state").display().to_string(),
            "witness".into(),
            "serve".into(),
            "--key".into(),
            dir.join("witness.key").display().to_string(),
            "--name".into(),
            name.into(),
            "--ledger".into(),
            ledger.into(),
        ];
        let (child, vkey) = spawn(&args);
        Witness { child, vkey, args }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the witness");
        self.child.wait().expect("reap the witness");
    }

    fn restart(&mut self) {
        let (child, vkey) = spawn(&self.args);
        assert_eq!(vkey, self.vkey, "the witness keeps its key across restarts");
        self.child = child;
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String]) -> (Child, VerifierKey) {
    let mut child = Command::new(binary("stockpile"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run stockpile witness serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the verifier key line");
    (child, line.trim().parse().expect("a verifier key"))
}

/// The answer of the witness: the cosignature lines, or the status and body of a refusal.
type Answer = Result<Vec<u8>, (u16, String)>;

async fn add_checkpoint(client: &async_nats::Client, body: &[u8]) -> Answer {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match tokio::time::timeout(REPLY_TIMEOUT, client.request(witness::subject(NAME), body.to_vec().into())).await {
            Ok(Ok(message)) => {
                let status = message.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code"));
                return match status {
                    Some(code) => Err((
                        code.as_str().parse().expect("a status"),
                        String::from_utf8_lossy(&message.payload).into_owned(),
                    )),
                    None => Ok(message.payload.to_vec()),
                };
            }
            // Not serving (yet): a restarting witness.
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("the witness does not answer: {other:?}"),
        }
    }
}

/// The add-checkpoint body for `c`, with the consistency proof from `old` in `ledger`.
fn request(ledger: &LedgerHandle, old: u64, c: &Checkpoint) -> Vec<u8> {
    let path = if old == 0 || old >= c.tree_size {
        Vec::new()
    } else {
        proof::prove_consistency(ledger.store(), old, c.tree_size).expect("a consistency proof").path
    };
    let note = Note::parse(c.note.as_deref().expect("a note").as_bytes()).expect("a note");
    let checkpoint = stockpile_ledger::audit::note::CheckpointText::parse(&note.text).expect("a checkpoint");
    AddCheckpoint { old_size: old, proof: path, note, checkpoint }.to_bytes()
}

fn sign(ledger: &LedgerHandle, key: &LedgerKey) -> Checkpoint {
    let head = *ledger.head().borrow();
    checkpoint::create(ledger.store(), key, head, chrono::Utc::now()).expect("a checkpoint")
}

/// `c`'s note with the witness's answer appended, checked against the witness's key.
fn cosigned(c: &Checkpoint, answer: &[u8], witness: &VerifierKey) -> Quorum {
    let mut note = Note::parse(c.note.as_deref().unwrap().as_bytes()).unwrap();
    for line in std::str::from_utf8(answer).expect("UTF-8").lines() {
        note.signatures.push(NoteSignature::parse_line(line).expect("a signature line"));
    }
    Quorum::of(&note, std::slice::from_ref(witness))
}

/// `c` with the witness's answer lines appended to its note.
fn with_cosignatures(c: &Checkpoint, answer: &[u8]) -> Checkpoint {
    let mut note = Note::parse(c.note.as_deref().unwrap().as_bytes()).unwrap();
    for line in std::str::from_utf8(answer).expect("UTF-8").lines() {
        note.signatures.push(NoteSignature::parse_line(line).expect("a signature line"));
    }
    Checkpoint { note: Some(String::from_utf8(note.to_bytes()).unwrap()), ..c.clone() }
}

/// `stockpile audit check` of the inclusion of record 1 in `ledger`'s tree of `size`
/// records against checkpoint `c`, with `args` (the witnesses and quorum required).
fn audit_check(dir: &Path, ledger: &LedgerHandle, size: u64, c: &Checkpoint, args: &[String]) -> std::process::Output {
    let proof = proof::prove_inclusion(ledger.store(), 1, size).expect("an inclusion proof");
    check_proof(dir, &serde_json::to_vec(&ProofReply::Inclusion(proof)).unwrap(), c, args)
}

/// `stockpile audit check` of `proof` (JSON) against checkpoint `c`, with `args`.
fn check_proof(dir: &Path, proof: &[u8], c: &Checkpoint, args: &[String]) -> std::process::Output {
    let size = c.tree_size;
    let proof_path = dir.join(format!("proof-{size}.json"));
    let checkpoint_path = dir.join(format!("checkpoint-{size}-{}.json", &canonical_hex(&c.root)[..8]));
    std::fs::write(&proof_path, proof).unwrap();
    std::fs::write(&checkpoint_path, serde_json::to_vec(c).unwrap()).unwrap();
    stockpile(
        &[
            &["audit".to_string(), "check".into(), proof_path.display().to_string()][..],
            &["--checkpoint".to_string(), checkpoint_path.display().to_string()],
            args,
        ]
        .concat(),
    )
}

fn canonical_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `stockpile` binary with `args`, no NATS URL from the environment; its output.
fn stockpile(args: &[String]) -> std::process::Output {
    Command::new(binary("stockpile"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_growth_refuses_forks_and_rollbacks_and_survives_sigkill() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let key = LedgerKey::from_secret([9; 32]);
    let world = World::new();

    // Ledger A, and B: a copy of A at 30 records (a restored backup, or a second operator).
    let a = open_ledger(&a_dir);
    a.append(setup_commands(&world), true).await.unwrap();
    let fill = 30 - *a.head().borrow() as usize;
    a.append(acquires(&world, 0, fill), false).await.unwrap();
    a.shutdown().unwrap();
    copy_dir(&a_dir, &b_dir);
    let (a, b) = (open_ledger(&a_dir), open_ledger(&b_dir));
    let c30 = sign(&a, &key);
    assert_eq!(c30.tree_size, 30);
    let origin = checkpoint::origin(&checkpoint::genesis_hash(a.store()).unwrap());
    assert_eq!(sign(&b, &key).note, c30.note, "the copy has the same origin and tree");
    let ledger_vkey = c30.note_verifier(&origin).unwrap();
    let mut w = Witness::start(&nats.url(), dir.path(), &format!("{origin}={ledger_vkey}"));

    // A grows: 0 → 30 → 40, each cosigned.
    let answer = add_checkpoint(&client, &request(&a, 0, &c30)).await.expect("cosigned");
    assert_eq!(cosigned(&c30, &answer, &w.vkey).valid.len(), 1, "a valid cosignature by the witness");
    a.append(acquires(&world, 100, 10), false).await.unwrap();
    let c40 = sign(&a, &key);
    let answer = add_checkpoint(&client, &request(&a, 30, &c40)).await.expect("cosigned");
    let c40_cosigned = with_cosignatures(&c40, &answer);
    let quorum = cosigned(&c40, &answer, &w.vkey);
    assert!(quorum.bad.is_empty() && quorum.valid.len() == 1, "{quorum:?}");

    // B diverges from 30 with other records: at A's size, and beyond.
    b.append(acquires(&world, 500, 10), false).await.unwrap();
    let b40 = sign(&b, &key);
    assert_eq!(b40.tree_size, 40);
    assert_ne!(b40.root, c40.root);
    assert_eq!(add_checkpoint(&client, &request(&b, 40, &b40)).await, Err((409, "40\n".into())));
    b.append(acquires(&world, 600, 5), false).await.unwrap();
    let b45 = sign(&b, &key);
    // Asked with B's own last size, the witness names its size ...
    assert_eq!(add_checkpoint(&client, &request(&b, 30, &b45)).await, Err((409, "40\n".into())));
    // ... and B's proof from 40 cannot hold, for B's tree at 40 is not A's.
    let (status, _) = add_checkpoint(&client, &request(&b, 40, &b45)).await.expect_err("a fork is refused");
    assert_eq!(status, 422);
    // A rolled back (a restored copy) asks for its older, smaller tree.
    let (status, _) = add_checkpoint(&client, &request(&a, 40, &c30)).await.expect_err("a rollback is refused");
    assert_eq!(status, 400);
    // A client holding B's checkpoint has no cosignature from the witness for it.
    let quorum = Quorum::of(&Note::parse(b45.note.as_deref().unwrap().as_bytes()).unwrap(), &[w.vkey.clone()]);
    assert_eq!((quorum.valid.len(), quorum.missing.len()), (0, 1));
    // So does the CLI: a client requiring the witness refuses B's checkpoint (with a proof
    // that holds in B's tree) and accepts A's, which carries the witness's cosignature.
    let requiring = ["--witness".to_string(), w.vkey.to_string(), "--quorum".into(), "1".into()];
    let refused = audit_check(dir.path(), &b, 45, &b45, &requiring);
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("missing {NAME}")) && stderr.contains("0 valid cosignature"), "{stderr}");
    let accepted = audit_check(dir.path(), &a, 40, &c40_cosigned, &requiring);
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));
    assert!(
        String::from_utf8_lossy(&accepted.stdout).contains(&format!("cosigned by 1 of 1 witnesses (quorum 1): {NAME}"))
    );

    // SIGKILL rounds: a request in flight (answered or not), the witness killed, restarted.
    let mut cosigned_size = 40;
    for round in 0..SIGKILL_ROUNDS {
        a.append(acquires(&world, 1000 + 10 * round as usize, 3), false).await.unwrap();
        let next = sign(&a, &key);
        let body = request(&a, cosigned_size, &next);
        let sent = client.request(witness::subject(NAME), body.into());
        let waited = tokio::time::timeout(Duration::from_millis(5 * round), sent).await;
        w.kill();
        if let Ok(Ok(reply)) = waited {
            if reply.headers.is_none() {
                cosigned_size = next.tree_size;
            }
        }
        w.restart();
        // What the witness remembers: the size asked, or the one before if the kill came
        // first — never less than a size it answered with a cosignature.
        let remembered = match add_checkpoint(&client, &request(&a, 0, &next)).await {
            Err((409, size)) => size.trim().parse::<u64>().unwrap(),
            other => panic!("round {round}: {other:?}"),
        };
        assert!(remembered == cosigned_size || remembered == next.tree_size, "round {round}: {remembered}");
        assert!(remembered >= cosigned_size, "round {round}: forgot {cosigned_size}, remembers {remembered}");
        if remembered < next.tree_size {
            let answer =
                add_checkpoint(&client, &request(&a, remembered, &next)).await.expect("cosigned after restart");
            assert_eq!(cosigned(&next, &answer, &w.vkey).valid.len(), 1);
        }
        cosigned_size = next.tree_size;
        // Never a second root at the cosigned size, whatever happened before.
        let forked = key.sign_with_note(&origin, cosigned_size, [round as u8; 32], chrono::Utc::now());
        let fork = Note::parse(forked.note.as_deref().unwrap().as_bytes()).unwrap();
        let text = stockpile_ledger::audit::note::CheckpointText::parse(&fork.text).unwrap();
        let body = AddCheckpoint { old_size: cosigned_size, proof: vec![], note: fork, checkpoint: text }.to_bytes();
        assert_eq!(add_checkpoint(&client, &body).await, Err((409, format!("{cosigned_size}\n"))), "round {round}");
    }

    // The evidence survived the kills: the fork at 40, B's fork beyond, the rollback, and
    // one forged root per round.
    w.kill();
    let shown = Command::new(binary("stockpile"))
        .args(["--data", &dir.path().join("state").display().to_string(), "witness", "show"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let state: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    let evidence = state["evidence"].as_array().unwrap();
    let statuses: Vec<u64> = evidence.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = [409, 422, 400].into_iter().chain((0..SIGKILL_ROUNDS).map(|_| 409)).collect();
    assert_eq!(statuses, expected, "{state:#}");
    let b45_note = b45.note.as_deref().unwrap();
    assert!(evidence[1]["request"].as_str().unwrap().ends_with(b45_note), "the forked checkpoint is kept whole");
    let latest = state["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 1);
    assert!(latest[0]["note"].as_str().unwrap().contains(&format!("\n{cosigned_size}\n")));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// Names of the three witnesses of the quorum test.
const TRIO: [&str; 3] = ["witness.nl.example/w1", "witness.de.example/w2", "witness.be.example/w3"];

/// The real `stockpile-ledger serve` with `args` after its NATS URL and data directory,
/// logging to `log`; killed on drop.
struct LedgerBinary(Child);

impl LedgerBinary {
    fn spawn(nats: &str, data: &Path, log: &Path, args: &[String]) -> LedgerBinary {
        let stderr = std::fs::File::create(log).expect("the ledger's log");
        let child = Command::new(binary("stockpile-ledger"))
            .args(["serve", "--nats", nats, "--data", &data.display().to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run stockpile-ledger");
        LedgerBinary(child)
    }
}

impl Drop for LedgerBinary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `stockpile --nats URL audit checkpoint`: the ledger's checkpoint at its head now.
fn checkpoint_over_nats(nats: &str) -> Checkpoint {
    let out = stockpile(&["--nats".into(), nats.into(), "audit".into(), "checkpoint".into()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Checkpoint::from_file_text(&String::from_utf8_lossy(&out.stdout)).expect("a checkpoint")
}

/// Valid cosignatures on `c` by `witnesses`, by name.
fn cosigners(c: &Checkpoint, witnesses: &[VerifierKey]) -> Vec<String> {
    let note = Note::parse(c.note.as_deref().expect("a note").as_bytes()).unwrap();
    Quorum::of(&note, witnesses).valid.into_iter().map(|(name, _)| name).collect()
}

/// `stockpile --nats URL audit verify --chain-only` with `args`.
fn verify_over_nats(nats: &str, args: &[String]) -> std::process::Output {
    let base = ["--nats".to_string(), nats.into(), "audit".into(), "verify".into(), "--chain-only".into()];
    stockpile(&[&base[..], args].concat())
}

/// A ledger with three witnesses and a quorum of two: it gathers their cosignatures on every
/// new checkpoint; with one witness down the checkpoint carries two, which clients requiring
/// quorum 2 accept and quorum 3 refuse, naming the missing witness; with two down the
/// ledger still appends and checkpoints (one cosignature, below quorum, logged), and
/// clients refuse it at quorum 2, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_gathers_cosignatures_and_clients_require_the_quorum() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let world = World::new();

    // The ledger's first records, so it has an origin; its verifier key from the CLI.
    let ledger = open_ledger(&data.join("ledger"));
    ledger.append(setup_commands(&world), true).await.unwrap();
    ledger.shutdown().unwrap();
    let out = stockpile(&["--data".into(), data.display().to_string(), "witness".into(), "ledger-key".into()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ledger_vkey: VerifierKey = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a verifier key");
    assert!(ledger_vkey.name.starts_with(checkpoint::ORIGIN_PREFIX), "{ledger_vkey}");

    let mut witnesses: Vec<Witness> = TRIO
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let wdir = dir.path().join(format!("w{i}"));
            std::fs::create_dir_all(&wdir).unwrap();
            Witness::start_named(&url, &wdir, &ledger_vkey.to_string(), name)
        })
        .collect();
    let vkeys: Vec<VerifierKey> = witnesses.iter().map(|w| w.vkey.clone()).collect();
    let log = dir.path().join("ledger.log");
    let mut args: Vec<String> = Vec::new();
    for (i, v) in vkeys.iter().enumerate() {
        args.push("--witness".into());
        // The three spellings: bare, NAME=VKEY, and with an explicit subject.
        args.push(match i {
            0 => v.to_string(),
            1 => format!("{}={v}", v.name),
            _ => format!("{v}@{}", witness::subject(&v.name)),
        });
    }
    args.extend(["--witness-quorum".into(), "2".into(), "--checkpoint-every".into(), "3600".into()]);
    let mut ledger = LedgerBinary::spawn(&url, &data.join("ledger"), &log, &args);
    let client = crate::services::client(&url).await;
    crate::services::wait_until_serving(&client).await;

    let all: Vec<String> = vkeys.iter().flat_map(|v| ["--witness".to_string(), v.to_string()]).collect();
    let with_quorum = |k: &str| [&all[..], &["--quorum".to_string(), k.to_string()]].concat();

    // All three up: three cosignatures, quorum 3 met.
    crate::services::append(&client, acquires(&world, 0, 5), false).await;
    let c_all = checkpoint_over_nats(&url);
    assert_eq!(cosigners(&c_all, &vkeys), TRIO, "every witness cosigned");
    let out = verify_over_nats(&url, &with_quorum("3"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cosigned by 3 of 3 witnesses (quorum 3)"));

    // One down: two cosignatures. Quorum 3 refused, naming it; quorum 2 accepted.
    witnesses[2].kill();
    crate::services::append(&client, acquires(&world, 10, 5), false).await;
    let c_two = checkpoint_over_nats(&url);
    assert!(c_two.tree_size > c_all.tree_size);
    assert_eq!(cosigners(&c_two, &vkeys), TRIO[..2]);
    let out = verify_over_nats(&url, &with_quorum("3"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 valid cosignature(s) of the 3 required: missing witness.be.example/w3;"), "{stderr}");
    let out = verify_over_nats(&url, &with_quorum("2"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same from a witness file, and for a proof checked offline (`audit check`).
    let file = dir.path().join("witnesses.txt");
    std::fs::write(&file, format!("# our partners' witnesses\n{}\n\n{}\n{}\n", vkeys[0], vkeys[1], vkeys[2])).unwrap();
    let from_file = |k: &str| vec!["--witness-file".into(), file.display().to_string(), "--quorum".into(), k.into()];
    let out = verify_over_nats(&url, &from_file("3"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let size = c_two.tree_size.to_string();
    let proof = stockpile(&["--nats", &url, "audit", "prove", "--seq", "3", "--tree-size", &size].map(String::from));
    assert!(proof.status.success(), "{}", String::from_utf8_lossy(&proof.stderr));
    let proof = proof.stdout;
    let out = check_proof(dir.path(), &proof, &c_two, &from_file("3"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing witness.be.example/w3"));
    let out = check_proof(dir.path(), &proof, &c_two, &from_file("2"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A cosignature altered in the file: named as bad, not counted.
    let mut note = Note::parse(c_two.note.as_deref().unwrap().as_bytes()).unwrap();
    let last = note.signatures.last_mut().unwrap();
    last.signature[20] ^= 1;
    let bent = Checkpoint { note: Some(String::from_utf8(note.to_bytes()).unwrap()), ..c_two.clone() };
    let out = check_proof(dir.path(), &proof, &bent, &from_file("2"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad signature witness.de.example/w2"));

    // Two down: the ledger still appends and checkpoints; one cosignature, below quorum.
    witnesses[1].kill();
    let appended = crate::services::append(&client, acquires(&world, 20, 5), false).await;
    assert_eq!(appended.len(), 5);
    let c_one = checkpoint_over_nats(&url);
    assert!(c_one.tree_size > c_two.tree_size);
    assert_eq!(cosigners(&c_one, &vkeys), TRIO[..1]);
    let out = verify_over_nats(&url, &with_quorum("2"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing witness.de.example/w2, witness.be.example/w3"), "{stderr}");
    assert!(verify_over_nats(&url, &with_quorum("1")).status.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("below the witness quorum")
                && l.contains("witness.de.example/w2, witness.be.example/w3")),
        "{logged}"
    );

    // A witness back after missing checkpoints is asked again from the size it names (409,
    // then the proof from there): the next checkpoint has its cosignature again.
    witnesses[2].restart();
    crate::services::append(&client, acquires(&world, 30, 5), false).await;
    let c_back = checkpoint_over_nats(&url);
    assert_eq!(cosigners(&c_back, &vkeys), [TRIO[0], TRIO[2]]);

    // A restarted ledger knows no witness's size: each answers 409 with its own, and the
    // ledger asks again once with the proof from there.
    drop(ledger);
    ledger = LedgerBinary::spawn(&url, &data.join("ledger"), &log, &args);
    crate::services::wait_until_serving(&client).await;
    crate::services::append(&client, acquires(&world, 40, 5), false).await;
    let c_restarted = checkpoint_over_nats(&url);
    assert!(c_restarted.tree_size > c_back.tree_size);
    assert_eq!(cosigners(&c_restarted, &vkeys), [TRIO[0], TRIO[2]]);
    drop(ledger);
}

/// On the accounts `stockpile nats-config --witness NL=NAME` writes, partner NL's witness runs
/// as NL's own user in NL's account, and the ledger's publisher user reaches it through the
/// export NL's account makes to `STOCKPILE` alone: the ledger's checkpoint carries NL's
/// cosignature, and an auditor requiring it accepts the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_witness_cosigns_through_the_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats");
    let store = dir.path().join("jetstream");
    let out = stockpile(&[
        "nats-config".into(),
        "--out".into(),
        conf.display().to_string(),
        "--partners".into(),
        "NL,DE".into(),
        "--store-dir".into(),
        store.display().to_string(),
        "--witness".into(),
        format!("NL={NAME}"),
    ]);
    assert!(out.status.success(), "nats-config: {}", String::from_utf8_lossy(&out.stderr));
    let nats = NatsServer::start_with_config(&conf.join("nats-server.conf"));
    let url = nats.url();
    let user = |name: &str| conf.join("users").join(format!("{name}.nk")).display().to_string();

    // A ledger with its first records, and its verifier key for the witness.
    let data = dir.path().join("data");
    let world = World::new();
    let ledger = open_ledger(&data.join("ledger"));
    ledger.append(setup_commands(&world), true).await.unwrap();
    ledger.shutdown().unwrap();
    let out = stockpile(&["--data".into(), data.display().to_string(), "witness".into(), "ledger-key".into()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ledger_vkey = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // NL's witness, as partner-NL.
    let wdir = dir.path().join("w-nl");
    std::fs::create_dir_all(&wdir).unwrap();
    let args: Vec<String> = [
        "--nats",
        &url,
        "--nats-nkey",
        &user("partner-NL"),
        "--data",
        &wdir.join("state").display().to_string(),
        "witness",
        "serve",
        "--key",
        &wdir.join("witness.key").display().to_string(),
        "--name",
        NAME,
        "--ledger",
        &ledger_vkey,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (child, vkey) = spawn(&args);
    let _witness = Witness { child, vkey: vkey.clone(), args };

    // The ledger as its two users, asking NL's witness.
    let ledger_args: Vec<String> = [
        "--nkey",
        &user("ledger"),
        "--publisher-nkey",
        &user("ledger-publisher"),
        "--partners",
        "NL,DE",
        "--witness",
        &vkey.to_string(),
        "--witness-quorum",
        "1",
        "--checkpoint-every",
        "3600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _ledger = LedgerBinary::spawn(&url, &data.join("ledger"), &dir.path().join("ledger.log"), &ledger_args);
    let admin = stockpile_ledger::service::access::Identity::from_file(Path::new(&user("admin"))).unwrap();
    let client = stockpile_ledger::service::access::authenticate(async_nats::ConnectOptions::new(), Some(&admin))
        .connect(url.as_str())
        .await
        .expect("admin connects");
    crate::services::wait_until_serving(&client).await;

    // ADMIN makes the ledger sign now; the answer carries NL's cosignature.
    let as_admin = |args: &[&str]| {
        let base = ["--nats", url.as_str(), "--nats-nkey", &user("admin")];
        stockpile(&base.iter().chain(args).map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let out = as_admin(&["audit", "checkpoint"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Checkpoint::from_file_text(&String::from_utf8_lossy(&out.stdout)).expect("a checkpoint");
    let log = std::fs::read_to_string(dir.path().join("ledger.log")).unwrap_or_default();
    assert_eq!(cosigners(&c, std::slice::from_ref(&vkey)), [NAME], "NL's witness cosigned through the accounts: {log}");
    let vkey = vkey.to_string();
    let out = as_admin(&["audit", "verify", "--chain-only", "--witness", &vkey, "--quorum", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
