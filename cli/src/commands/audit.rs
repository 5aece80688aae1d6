//! `audit`: what an auditor runs. Works on a local data directory (the ledger's store, opened
//! directly) or on an export file alone; nothing here writes to the log.

use crate::args::{AuditVerb, Format};
use crate::client::ledger_dir;
use crate::error::{operational, usage, CliError, Result};
use crate::output;
use crate::remote::{Remote, RemoteLines};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use stockpile_ledger::audit::export::{self, FileLines, Lines, StoreLines};
use stockpile_ledger::audit::proof;
use stockpile_ledger::audit::{
    checkpoint, verify, verify_chain, ChainSummary, Checkpoint, LedgerKey, Options, Problem, VerifyError,
};
use stockpile_ledger::canonical;
use stockpile_ledger::store::Store;
use stockpile_ledger::wire::{ProofReply as Proof, ProofRequest};
use stockpile_projector::report::{build, render, Report, ReportRequest};
use stockpile_projector::{ExportSource, Source as _, Views, PAGE_RECORDS};

/// Runs an audit verb on `data`, or on the running ledger behind `remote` (`--nats`).
pub fn run(data: &Path, remote: Option<&Remote>, format: Format, verb: &AuditVerb) -> Result<()> {
    match verb {
        AuditVerb::Checkpoint { output } => {
            let c = match remote {
                Some(r) => RemoteLines::at_head(r)?.checkpoint().clone(),
                None => {
                    let (store, head) = open_store(data)?;
                    checkpoint_now(&store, head, data)?
                }
            };
            let text = serde_json::to_string_pretty(&c).expect("checkpoints encode");
            if let Some(path) = output {
                write_file(path, &text)?;
            }
            println!("{text}");
            Ok(())
        }
        AuditVerb::Export { output } => {
            let (mut lines, last): (Box<dyn Lines + '_>, Checkpoint) = match remote {
                Some(r) => {
                    let lines = RemoteLines::at_head(r)?;
                    let last = lines.checkpoint().clone();
                    (Box::new(lines), last)
                }
                None => {
                    let (store, head) = open_store(data)?;
                    let last = checkpoint_now(&store, head, data)?;
                    (Box::new(StoreLines::new(store, last.tree_size).map_err(operational)?), last)
                }
            };
            export_to(lines.as_mut(), &last, output.as_deref())
        }
        AuditVerb::Verify { file, ledger_key, chain_only, quorum } => {
            // Bad witness arguments are refused before the work.
            super::witness::quorum_witnesses(quorum)?;
            let options = Options { ledger_key: ledger_key.clone(), ..Options::default() };
            let (mut lines, total): (Box<dyn Lines + '_>, Option<u64>) = match (file, remote) {
                (Some(path), _) => (Box::new(FileLines::open(path).map_err(operational)?), None),
                (None, Some(r)) => {
                    let lines = RemoteLines::at_head(r)?;
                    let total = lines.tree_size();
                    (Box::new(lines), Some(total))
                }
                (None, None) => {
                    let (store, head) = open_store(data)?;
                    (Box::new(StoreLines::new(store, head).map_err(operational)?), Some(head))
                }
            };
            if *chain_only {
                let bar = progress(total, "records checked");
                let summary = verify_chain(lines.as_mut(), &options, &mut |n| bar.set_position(n));
                bar.finish_and_clear();
                let s = summary.map_err(|e| print_failure(format, CHAIN_ONLY, e))?;
                let cosigned = super::witness::require_quorum(s.last_note.as_deref(), quorum, LAST_CHECKPOINT)?;
                print_summary(format, &Verified::chain(&s, ledger_key.is_some()), cosigned.as_deref());
            } else {
                let s = run_verify(lines.as_mut(), &options, total).map_err(|e| print_failure(format, FULL, e))?;
                let cosigned = super::witness::require_quorum(s.last_note.as_deref(), quorum, LAST_CHECKPOINT)?;
                print_summary(format, &Verified::full(&s), cosigned.as_deref());
            }
            Ok(())
        }
        AuditVerb::Prove { seq, tree_size } => match remote {
            Some(r) => {
                let tree_size = tree_size.map_or_else(|| remote_head_size(r), Ok)?;
                print(&r.proof(&ProofRequest::Inclusion { seq: *seq, tree_size })?)
            }
            None => print_proof(data, *tree_size, |store, size| {
                proof::prove_inclusion(store, *seq, size).map(Proof::Inclusion)
            }),
        },
        AuditVerb::Consistency { old, new } => match remote {
            Some(r) => {
                let new_size = new.map_or_else(|| remote_head_size(r), Ok)?;
                print(&r.proof(&ProofRequest::Consistency { old_size: *old, new_size })?)
            }
            None => print_proof(data, *new, |store, size| {
                proof::prove_consistency(store, *old, size).map(Proof::Consistency)
            }),
        },
        AuditVerb::Check { proof, checkpoint, old_checkpoint, ledger_key, quorum } => {
            check(proof, checkpoint, old_checkpoint.as_deref(), ledger_key.as_deref(), quorum)
        }
        AuditVerb::Replay { from, holdings } => {
            let query = super::query::build_query(holdings)?;
            let views = verified_views(from, u64::MAX)?;
            super::query::check_ids(holdings, || Ok(views.registry().clone()))?;
            let answer = views.holdings(&query).map_err(|e| usage(e.to_string()))?;
            let by_material = |q: &_| views.holdings(q).map_err(|e| usage(e.to_string()));
            let totals = super::query::material_totals(format, &answer, by_material)?;
            super::query::print_holdings(format, &answer, &totals)
        }
        AuditVerb::Reproduce { report, from } => reproduce(report, from),
    }
}

/// Verifies an export, then folds its records up to `cut` into views in memory (the
/// projector's pure fold, no store).
fn verified_views(from: &Path, cut: u64) -> Result<Views> {
    let mut lines = FileLines::open(from).map_err(operational)?;
    run_verify(&mut lines, &Options::default(), None).map_err(failed)?;
    let mut views = Views::new();
    let mut source = ExportSource::open(from).map_err(operational)?;
    while views.head().seq < cut {
        let page = source.fetch(views.head().seq, PAGE_RECORDS).map_err(operational)?;
        if page.is_empty() {
            break;
        }
        for record in &page {
            if views.head().seq == cut {
                break;
            }
            views.apply_stored(record).map_err(operational)?;
        }
    }
    Ok(views)
}

/// Rebuilds a submitted report from an export and compares the bytes.
fn reproduce(report_path: &Path, from: &Path) -> Result<()> {
    let submitted = std::fs::read(report_path).map_err(|e| operational(format!("{}: {e}", report_path.display())))?;
    let report: Report = serde_json::from_slice(&submitted).map_err(|e| {
        usage(format!("{} is not a report from `stockpile report --format json`: {e}", report_path.display()))
    })?;
    let h = &report.header;
    let views = verified_views(from, h.cut_seq)?;
    if views.head().seq < h.cut_seq {
        return Err(CliError::AuditFailed(format!(
            "the report was cut at seq {} but the export ends at {}: export again",
            h.cut_seq,
            views.head().seq
        )));
    }
    // The ledger spells Greece GR; reports to the Commission say EL.
    let partner = if h.partner == "EL" { "GR".to_string() } else { h.partner.clone() };
    let request = ReportRequest {
        partner,
        period: h.period,
        framework: h.framework,
        materials: Some(report.body.material_scope),
    };
    let rebuilt =
        build(&views, &request).map_err(|e| CliError::AuditFailed(format!("the report cannot be rebuilt: {e}")))?;
    let bytes = render::json(&rebuilt).map_err(operational)?;
    if bytes == submitted {
        println!(
            "{} {} reproduced byte for byte from the export: cut at seq {} (record hash {}), body sha256 {}",
            output::ok("OK"),
            h.report_id,
            h.cut_seq,
            h.chain_head,
            h.body_sha256
        );
        return Ok(());
    }
    let at = bytes.iter().zip(&submitted).position(|(a, b)| a != b).unwrap_or(bytes.len().min(submitted.len()));
    Err(CliError::AuditFailed(format!(
        "{} differs from the report the export gives: first difference at byte {at}; chain head {} vs {}, body sha256 {} vs {}",
        report_path.display(),
        h.chain_head,
        rebuilt.header.chain_head,
        h.body_sha256,
        rebuilt.header.body_sha256
    )))
}

/// Makes a proof up to `size` (default: the latest checkpoint's tree size) and prints it.
fn print_proof(
    data: &Path,
    size: Option<u64>,
    prove: impl FnOnce(&Store, u64) -> std::result::Result<Proof, proof::ProveError>,
) -> Result<()> {
    let (store, _) = open_store(data)?;
    let size = match size {
        Some(s) => s,
        None => latest_checkpoint(&store)?.tree_size,
    };
    print(&prove(&store, size).map_err(|e| usage(e.to_string()))?)
}

fn print(proof: &Proof) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(proof).expect("proofs encode"));
    Ok(())
}

/// The tree size of a checkpoint the running ledger signs at its head now.
fn remote_head_size(remote: &Remote) -> Result<u64> {
    Ok(RemoteLines::at_head(remote)?.tree_size())
}

fn open_store(data: &Path) -> Result<(Store, u64)> {
    let dir = ledger_dir(data);
    if !dir.join("db").exists() {
        return Err(usage(format!("no ledger in {}: pass --data DIR, or verify an export file", data.display())));
    }
    let store = Store::open(&dir).map_err(operational)?;
    let head = store.head();
    Ok((store, head))
}

/// A checkpoint over the whole log, signed with the ledger's key (created on first use).
fn checkpoint_now(store: &Store, head: u64, data: &Path) -> Result<Checkpoint> {
    if head == 0 {
        return Err(usage("the ledger is empty: nothing to checkpoint"));
    }
    let key = LedgerKey::load_or_create(&ledger_dir(data)).map_err(operational)?;
    checkpoint::create(store, &key, head, Utc::now()).map_err(operational)
}

fn latest_checkpoint(store: &Store) -> Result<Checkpoint> {
    checkpoint::stored(store, u64::MAX)
        .map_err(operational)?
        .pop()
        .ok_or_else(|| usage("no checkpoint yet: run `stockpile audit checkpoint` first"))
}

fn export_to(lines: &mut dyn Lines, last: &Checkpoint, output: Option<&Path>) -> Result<()> {
    let bar = progress(Some(last.tree_size), "records exported");
    let mut tick = |n| bar.set_position(n);
    let done = match output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| operational(format!("{}: {e}", path.display())))?;
            let mut out = std::io::BufWriter::new(file);
            let done = export::write_all(lines, &mut out, &mut tick).map_err(operational)?;
            out.into_inner()
                .map_err(|e| operational(e.to_string()))?
                .sync_all()
                .map_err(|e| operational(format!("{}: {e}", path.display())))?;
            done
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export::write_all(lines, &mut out, &mut tick).map_err(operational)?
        }
    };
    bar.finish_and_clear();
    eprintln!(
        "{} {} records and {} checkpoints; the last covers the whole log (tree size {}, root {})",
        output::ok("exported"),
        done.records,
        done.checkpoints,
        last.tree_size,
        canonical::hex(&last.root)
    );
    Ok(())
}

fn run_verify(
    lines: &mut dyn Lines,
    options: &Options,
    total: Option<u64>,
) -> std::result::Result<verify::Summary, VerifyError> {
    let bar = progress(total, "records verified");
    let result = verify(lines, options, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    result
}

/// How the quorum's failure names the checkpoint `audit verify` requires it on.
const LAST_CHECKPOINT: &str = "the last checkpoint (over all records)";

/// What `audit verify` checked, as its JSON output names it.
const FULL: &str = "full";
const CHAIN_ONLY: &str = "chain only";

/// With `--format json`, prints the failure on stdout as one object (the exit code and the
/// message on stderr are as without it):
/// `{"ok":false,"verification":…,"position":{"kind":"record","seq":N}|{"kind":"checkpoint"|"end","after":N},"line":N,"problem":CODE,"message":…}`.
fn print_failure(format: Format, what: &str, e: VerifyError) -> CliError {
    if format == Format::Json {
        let v = serde_json::json!({
            "ok": false,
            "verification": what,
            "position": e.at,
            "line": e.line,
            "problem": e.problem.code(),
            "message": e.to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("failures encode"));
        return CliError::Printed(Box::new(failed(e)));
    }
    failed(e)
}

fn failed(e: VerifyError) -> CliError {
    match *e.problem {
        Problem::Read(read) => operational(read),
        _ => CliError::AuditFailed(format!("verification failed: {e}")),
    }
}

/// What a verification established, for printing.
struct Verified<'a> {
    what: &'static str,
    records: u64,
    signatures: u64,
    checkpoints: u64,
    head_hash: canonical::Hash,
    root: [u8; 32],
    ledger_key: &'a str,
    pinned: bool,
}

impl<'a> Verified<'a> {
    fn full(s: &'a verify::Summary) -> Self {
        Verified {
            what: FULL,
            records: s.records,
            signatures: s.signatures,
            checkpoints: s.checkpoints,
            head_hash: s.head_hash,
            root: s.root,
            ledger_key: &s.ledger_key,
            pinned: s.key_pinned,
        }
    }

    fn chain(s: &'a ChainSummary, pinned: bool) -> Self {
        Verified {
            what: CHAIN_ONLY,
            records: s.records,
            signatures: 0,
            checkpoints: s.checkpoints,
            head_hash: s.head_hash,
            root: s.root,
            ledger_key: &s.ledger_key,
            pinned,
        }
    }
}

fn print_summary(format: Format, s: &Verified<'_>, cosigned: Option<&str>) {
    let pinned =
        if s.pinned { "pinned" } else { "taken from the export: compare it with the key the operator publishes" };
    if format == Format::Json {
        let v = serde_json::json!({
            "ok": true,
            "verification": s.what,
            "records": s.records,
            "checkpoints": s.checkpoints,
            "signatures": s.signatures,
            "head_hash": canonical::hex(&s.head_hash),
            "root": canonical::hex(&s.root),
            "ledger_key": s.ledger_key,
            "ledger_key_pinned": s.pinned,
            "witnesses": cosigned,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("summary encodes"));
        return;
    }
    if s.what == FULL {
        println!(
            "{} {} records re-executed, {} signatures and {} checkpoints verified",
            output::ok("OK"),
            s.records,
            s.signatures,
            s.checkpoints
        );
    } else {
        println!(
            "{} {} records chained and {} checkpoints verified (command signatures not checked: drop --chain-only)",
            output::ok("OK"),
            s.records,
            s.checkpoints
        );
    }
    println!("head        seq {} hash {}", s.records, canonical::hex(&s.head_hash));
    println!("merkle root {} (tree size {})", canonical::hex(&s.root), s.records);
    println!("ledger key  {} ({pinned})", s.ledger_key);
    if let Some(cosigned) = cosigned {
        println!("witnesses   {cosigned}");
    }
}

fn check(
    proof_path: &Path,
    new: &Path,
    old: Option<&Path>,
    ledger_key: Option<&str>,
    quorum: &crate::args::QuorumArgs,
) -> Result<()> {
    let proof: Proof = serde_json::from_str(&read_file(proof_path)?).map_err(|e| {
        usage(format!("{} is not a proof from `audit prove` or `audit consistency`: {e}", proof_path.display()))
    })?;
    let load = |path: &Path| -> Result<Checkpoint> {
        let c = Checkpoint::from_file_text(&read_file(path)?).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        if let Some(k) = ledger_key {
            if c.key != k {
                return Err(CliError::AuditFailed(format!(
                    "{} is signed by {}, not the pinned ledger key {k}",
                    path.display(),
                    c.key
                )));
            }
        }
        if c.note.is_some() {
            c.verify_signature().map_err(|e| CliError::AuditFailed(format!("{}: {e}", path.display())))?;
        }
        super::witness::require_quorum(c.note.as_deref(), quorum, &path.display().to_string())?;
        Ok(c)
    };
    let new = load(new)?;
    let cosigned = super::witness::require_quorum(new.note.as_deref(), quorum, "")?;
    let outcome = match &proof {
        Proof::Inclusion(p) => p.verify(&new).map(|()| {
            format!(
                "record {} (hash {}) is in the log of {} records",
                p.seq,
                canonical::hex(&p.record_hash),
                p.tree_size
            )
        }),
        Proof::Consistency(p) => {
            let old = old.ok_or_else(|| usage("a consistency proof needs --old-checkpoint FILE too"))?;
            let old = load(old)?;
            p.verify(&old, &new).map(|()| {
                format!("the log of {} records extends the log of {} records unchanged", p.new_size, p.old_size)
            })
        }
    };
    match outcome {
        Ok(what) => {
            println!("{} {what} (checkpoint signed by {})", output::ok("OK"), new.key);
            if let Some(cosigned) = cosigned {
                println!("witnesses   {cosigned}");
            }
            Ok(())
        }
        Err(e) => Err(CliError::AuditFailed(format!("the proof does not hold: {e}"))),
    }
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| operational(format!("{}: {e}", path.display())))
}

fn write_file(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, format!("{text}\n")).map_err(|e| operational(format!("{}: {e}", path.display())))
}

fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(t) => {
            (ProgressBar::new(t), format!("{{spinner}} {{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"))
        }
        None => (ProgressBar::new_spinner(), format!("{{spinner}} {{pos}} {what} ({{per_sec}})")),
    };
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}
