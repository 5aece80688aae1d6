//! `stockpile witness`: a partner's witness of one or more ledgers (C2SP `tlog-witness` over
//! NATS).
//!
//! - `witness key --key FILE --name NAME` prints the witness's verifier key (type 0x04, the
//!   cosignature key), creating the key file (mode 0600) if it does not exist.
//! - `witness serve --nats URL --data DIR --key FILE --name NAME --ledger ORIGIN=VKEY…`
//!   prints the verifier key on its first line, then serves the NATS micro service
//!   `stockpile-witness` with one endpoint, `add-checkpoint`, on
//!   [`witness::subject`]`(NAME)`. The request body is the C2SP add-checkpoint body; the
//!   answer is the cosignature line (success) or, with the headers `Nats-Service-Error-Code`
//!   (the specification's HTTP status: 400, 403, 404, 409, 422; 500 when the witness cannot
//!   write its state) and `Nats-Service-Error` (the reason), the refusal's body — for 409,
//!   the latest cosigned size and a newline.
//! - `witness show --data DIR` prints the state (the witness must be stopped: sled holds
//!   the directory's lock).
//! - `witness ledger-key` prints a ledger's note verifier key (what `--ledger` takes), from
//!   a checkpoint file, the running ledger (`--nats`) or the stopped ledger (`--data`).
//!
//! Clients' side: [`require_quorum`] is what `audit verify` and `audit check` apply with
//! `--witness`, `--witness-file` and `--quorum`.
//!
//! Requests are handled one at a time: check, persist, flush (fsync), answer. So a
//! cosignature is only ever sent for a state already on disk, and a SIGKILL at any point
//! leaves either the old state (nothing was answered) or the new one (the answer may be
//! lost; the ledger asks again and gets 409 with the new size).

use crate::args::QuorumArgs;
use crate::error::{operational, usage, CliError, Result};
use async_nats::service::ServiceExt as _;
use futures::StreamExt as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use stockpile_ledger::audit::note::{Note, NoteSigner, Quorum, VerifierKey, SIG_COSIGNATURE_V1};
use stockpile_ledger::audit::witness::{self, AddCheckpoint, Latest, Refusal, WitnessKey};
use stockpile_ledger::service::access::{authenticate, Identity};

/// sled tree: origin → the latest cosigned checkpoint note (with this witness's cosignature).
const LATEST: &str = "latest";
/// sled tree: origin ‖ 0x00 ‖ big-endian id → an evidence entry (JSON).
const EVIDENCE: &str = "evidence";

/// The micro-service name (`$SRV.PING.stockpile-witness`).
pub const SERVICE_NAME: &str = "stockpile-witness";

/// Reads the witness key (32-byte secret, 64 lower-case hex), creating it if missing.
pub fn load_or_create_key(path: &Path, name: &str) -> Result<NoteSigner> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let secret: [u8; 32] = match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| operational(format!("{}: not a witness key (64 hex characters)", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            let mut file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| operational(format!("cannot create {}: {e}", path.display())))?;
            writeln!(file, "{}", hex::encode(secret))
                .and_then(|()| file.sync_all())
                .map_err(|e| operational(format!("cannot write {}: {e}", path.display())))?;
            secret
        }
        Err(e) => return Err(operational(format!("cannot read {}: {e}", path.display()))),
    };
    NoteSigner::new(name, SIG_COSIGNATURE_V1, secret).map_err(|e| usage(format!("--name: {e}")))
}

/// `--ledger [ORIGIN=]VKEY`, each given once or more (a ledger may have several keys). A
/// bare VKEY (as `witness ledger-key` prints it) witnesses the origin that is its name.
pub fn trusted(ledgers: &[String]) -> Result<BTreeMap<String, Vec<VerifierKey>>> {
    let mut map: BTreeMap<String, Vec<VerifierKey>> = BTreeMap::new();
    for entry in ledgers {
        let (origin, key) = match entry.split_once('=') {
            Some((origin, vkey)) => {
                (origin.to_string(), vkey.parse::<VerifierKey>().map_err(|e| usage(format!("--ledger {origin}: {e}")))?)
            }
            None => {
                let key: VerifierKey = entry.parse().map_err(|e| usage(format!("--ledger: {e}")))?;
                (key.name.clone(), key)
            }
        };
        if key.signature_type != stockpile_ledger::audit::note::SIG_ED25519 {
            return Err(usage(format!("--ledger {origin}: a ledger's key signs notes (type 0x01)")));
        }
        map.entry(origin).or_default().push(key);
    }
    if map.is_empty() {
        return Err(usage("give at least one --ledger ORIGIN=VERIFIERKEY to witness"));
    }
    Ok(map)
}

/// `witness ledger-key`: the ledger's note verifier key, from a checkpoint file, the running
/// ledger, or the stopped ledger's data directory.
pub fn ledger_key(checkpoint: Option<&Path>, remote: Option<&crate::remote::Remote>, data: &Path) -> Result<()> {
    use stockpile_ledger::audit::{checkpoint as cp, Checkpoint};
    let c: Checkpoint = match (checkpoint, remote) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| operational(format!("{}: {e}", path.display())))?;
            Checkpoint::from_file_text(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        (None, Some(r)) => crate::remote::RemoteLines::at_head(r)?.checkpoint().clone(),
        (None, None) => {
            let dir = crate::client::ledger_dir(data);
            if !dir.join("db").exists() {
                return Err(usage(format!(
                    "no ledger in {}: pass --data DIR, --nats URL or --checkpoint FILE",
                    data.display()
                )));
            }
            let store = stockpile_ledger::store::Store::open(&dir).map_err(operational)?;
            let key = stockpile_ledger::audit::LedgerKey::load_or_create(&dir).map_err(operational)?;
            let origin = cp::origin(&cp::genesis_hash(&store).map_err(operational)?);
            println!("{}", key.note_verifier(&origin).map_err(operational)?);
            return Ok(());
        }
    };
    let note = c.signed_note().map_err(|e| usage(format!("the checkpoint's note: {e}")))?;
    let origin = stockpile_ledger::audit::note::CheckpointText::parse(&note.text).map_err(operational)?.origin;
    println!("{}", c.note_verifier(&origin).map_err(operational)?);
    Ok(())
}

/// The witnesses of `--witness` and `--witness-file`, each once.
pub fn quorum_witnesses(args: &QuorumArgs) -> Result<Vec<VerifierKey>> {
    let mut entries: Vec<String> = args.witnesses.clone();
    if let Some(path) = &args.witness_file {
        let text = std::fs::read_to_string(path).map_err(|e| operational(format!("{}: {e}", path.display())))?;
        entries
            .extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
    }
    let mut keys: Vec<VerifierKey> = Vec::new();
    for entry in &entries {
        let w = WitnessKey::parse(entry).map_err(|e| usage(format!("--witness: {e}")))?;
        if keys.iter().any(|k| k.name == w.key.name) {
            return Err(usage(format!("--witness {}: given twice (witnesses count by distinct name)", w.key.name)));
        }
        keys.push(w.key);
    }
    Ok(keys)
}

/// Requires `args`' quorum of cosignatures on a checkpoint's `note` (`what` names the
/// checkpoint in messages). `Ok(None)` when no witness is required; otherwise a line saying
/// which witnesses cosigned.
pub fn require_quorum(note: Option<&str>, args: &QuorumArgs, what: &str) -> Result<Option<String>> {
    let witnesses = quorum_witnesses(args)?;
    if witnesses.is_empty() {
        return match args.quorum {
            Some(k) if k > 0 => {
                Err(usage("--quorum needs the witnesses whose cosignatures count: --witness or --witness-file"))
            }
            _ => Ok(None),
        };
    }
    let k = args.quorum.unwrap_or(witnesses.len());
    if k > witnesses.len() {
        return Err(usage(format!("--quorum {k} is more than the {} witnesses given", witnesses.len())));
    }
    let Some(note) = note else {
        return Err(CliError::AuditFailed(format!(
            "{what} carries no note (it was made before witnesses), so no cosignature: quorum {k} not met"
        )));
    };
    let note = Note::parse(note.as_bytes()).map_err(|e| CliError::AuditFailed(format!("{what}'s note: {e}")))?;
    let q = Quorum::of(&note, &witnesses);
    let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
    let valid: Vec<String> = q.valid.iter().map(|(n, _)| n.clone()).collect();
    if valid.len() < k {
        return Err(CliError::AuditFailed(format!(
            "{what} has {} valid cosignature(s) of the {k} required: missing {}; bad signature {}; valid {}",
            valid.len(),
            list(&q.missing),
            list(&q.bad),
            list(&valid)
        )));
    }
    Ok(Some(format!("cosigned by {} of {} witnesses (quorum {k}): {}", valid.len(), witnesses.len(), valid.join(", "))))
}

/// `witness key`.
pub fn key(path: &Path, name: &str) -> Result<()> {
    println!("{}", load_or_create_key(path, name)?.verifier());
    Ok(())
}

/// The witness's durable state.
struct State {
    db: sled::Db,
    latest: sled::Tree,
    evidence: sled::Tree,
}

impl State {
    fn open(dir: &Path) -> Result<State> {
        let db = sled::open(dir)
            .map_err(|e| operational(format!("cannot open the witness state in {}: {e}", dir.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| operational(format!("{}: {e}", dir.display())));
        Ok(State { latest: tree(LATEST)?, evidence: tree(EVIDENCE)?, db })
    }

    fn latest(&self, origin: &str) -> std::result::Result<Option<Latest>, String> {
        let Some(bytes) = self.latest.get(origin).map_err(|e| e.to_string())? else { return Ok(None) };
        let note = Note::parse(&bytes).map_err(|e| format!("stored checkpoint of {origin}: {e}"))?;
        let c = stockpile_ledger::audit::note::CheckpointText::parse(&note.text)
            .map_err(|e| format!("stored checkpoint of {origin}: {e}"))?;
        Ok(Some(Latest { size: c.tree_size, root: c.root }))
    }

    /// Writes and flushes (fsync) before returning.
    fn put_latest(&self, origin: &str, note: &[u8]) -> std::result::Result<(), String> {
        self.latest.insert(origin, note).map_err(|e| e.to_string())?;
        self.db.flush().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn put_evidence(&self, origin: &str, refusal: &Refusal, body: &[u8]) -> std::result::Result<(), String> {
        let id = self.db.generate_id().map_err(|e| e.to_string())?;
        let mut key = origin.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&id.to_be_bytes());
        let entry = serde_json::json!({
            "origin": origin,
            "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "status": refusal.status(),
            "reason": refusal.to_string(),
            "request": String::from_utf8_lossy(body),
        });
        self.evidence.insert(key, serde_json::to_vec(&entry).expect("JSON")).map_err(|e| e.to_string())?;
        self.db.flush().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// One answer: a cosignature line, or a refusal with its status.
enum Answer {
    Cosigned(Vec<u8>),
    Refused { status: u16, reason: String, body: Vec<u8> },
}

/// Checks one request and persists what it changes; the answer to send after.
fn handle(body: &[u8], state: &State, signer: &NoteSigner, trusted: &BTreeMap<String, Vec<VerifierKey>>) -> Answer {
    let refused = |r: &Refusal| Answer::Refused { status: r.status(), reason: r.to_string(), body: r.body() };
    let failed =
        |what: String| Answer::Refused { status: 500, reason: what.clone(), body: format!("{what}\n").into_bytes() };
    let request = match AddCheckpoint::parse(body) {
        Ok(request) => request,
        Err(r) => return refused(&r),
    };
    let origin = request.checkpoint.origin.clone();
    let keys = trusted.get(&origin).map(Vec::as_slice).unwrap_or_default();
    let latest = match state.latest(&origin) {
        Ok(latest) => latest,
        Err(e) => return failed(e),
    };
    match witness::check(&request, keys, latest.as_ref()) {
        Ok(_) => {
            let time = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            let cosignature = signer.cosign(&request.note.text, time);
            let mut kept = Note { text: request.note.text.clone(), signatures: request.note.signatures.clone() };
            kept.signatures.push(cosignature.clone());
            if let Err(e) = state.put_latest(&origin, &kept.to_bytes()) {
                return failed(format!("cannot persist the cosigned checkpoint: {e}"));
            }
            Answer::Cosigned(cosignature.line().into_bytes())
        }
        Err(r) => {
            if r.is_evidence(&request, latest.as_ref()) {
                tracing::warn!(origin, status = r.status(), reason = %r, "refused a checkpoint that contradicts the cosigned one; kept as evidence");
                if let Err(e) = state.put_evidence(&origin, &r, body) {
                    return failed(format!("cannot persist evidence: {e}"));
                }
            }
            refused(&r)
        }
    }
}

/// `witness serve`.
pub fn serve(
    nats: &str,
    identity: Option<&Identity>,
    data: &Path,
    key_path: &Path,
    name: &str,
    ledgers: &[String],
) -> Result<()> {
    let trusted = trusted(ledgers)?;
    let signer = load_or_create_key(key_path, name)?;
    std::fs::create_dir_all(data).map_err(|e| operational(format!("cannot create {}: {e}", data.display())))?;
    let state = State::open(data)?;
    let subject = witness::subject(name);
    println!("{}", signer.verifier());
    let _ = std::io::stdout().flush();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| operational(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let options = authenticate(async_nats::ConnectOptions::new().retry_on_initial_connect(), identity);
        let client =
            options.connect(nats).await.map_err(|e| operational(format!("cannot connect to NATS at {nats}: {e}")))?;
        let service = client
            .service_builder()
            .description("stockpile witness: cosigns ledger checkpoints consistent with the last it cosigned")
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| operational(format!("cannot register the witness service: {e}")))?;
        let mut endpoint = service
            .endpoint_builder()
            .name("add-checkpoint")
            .add(subject.clone())
            .await
            .map_err(|e| operational(format!("cannot serve {subject}: {e}")))?;
        client.flush().await.map_err(|e| operational(format!("NATS: {e}")))?;
        eprintln!("witness {name}: serving {subject} for {} ledger(s)", trusted.len());
        loop {
            let request = tokio::select! {
                r = endpoint.next() => match r { Some(r) => r, None => break },
                _ = tokio::signal::ctrl_c() => break,
            };
            let answer = handle(&request.message.payload, &state, &signer, &trusted);
            let Some(reply) = request.message.reply.clone() else { continue };
            let sent = match answer {
                Answer::Cosigned(line) => client.publish(reply, line.into()).await,
                Answer::Refused { status, reason, body } => {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Service-Error-Code", status.to_string().as_str());
                    headers.insert("Nats-Service-Error", reason.replace(['\r', '\n'], " ").as_str());
                    client.publish_with_headers(reply, headers, body.into()).await
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not answer an add-checkpoint request");
            }
        }
        drop(state);
        Ok(())
    })
}

/// `witness show`: the latest cosigned checkpoint per origin and the evidence, as JSON.
pub fn show(data: &Path) -> Result<()> {
    if !data.exists() {
        return Err(usage(format!("{} holds no witness state", data.display())));
    }
    let state = State::open(data)?;
    let mut latest = Vec::new();
    for item in state.latest.iter() {
        let (origin, note) = item.map_err(operational)?;
        latest.push(
            serde_json::json!({"origin": String::from_utf8_lossy(&origin), "note": String::from_utf8_lossy(&note)}),
        );
    }
    let mut evidence = Vec::new();
    for item in state.evidence.iter() {
        let (_, entry) = item.map_err(operational)?;
        evidence.push(serde_json::from_slice::<serde_json::Value>(&entry).map_err(operational)?);
    }
    println!("{}", serde_json::json!({"latest": latest, "evidence": evidence}));
    Ok(())
}
