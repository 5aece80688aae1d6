//! `post FILE`: many commands from JSON Lines. Every line is read and checked before anything
//! is sent, so a malformed file changes nothing.

use super::{report, signing_party, Ctx};
use crate::args::{Format, PostArgs};
use crate::error::{operational, usage, CliError, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::BufRead;
use std::time::Instant;
use stockpile_ledger::domain::{Command, EventId};
use stockpile_ledger::signing::{OperatorKey, SignedCommand};
use stockpile_ledger::wire::AppendResult;

/// Commands per append request when lines stand alone: large enough that the group commit
/// amortises its fsync, small enough that progress moves and one request stays well under
/// the service's request size limit.
pub const POST_CHUNK_COMMANDS: usize = 1_000;

/// Longest line accepted, in bytes: a command is a few hundred bytes; anything this large
/// is not one.
pub const POST_LINE_BYTES_MAX: usize = 64 * 1024;

/// Most malformed lines listed before the rest are only counted.
const ERRORS_SHOWN_MAX: usize = 20;

pub fn run(ctx: &mut Ctx<'_>, args: &PostArgs) -> Result<()> {
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.file)
            .map_err(|e| operational(format!("cannot read {}: {e}", args.file.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let lines = read_lines(reader)?;
    if lines.is_empty() {
        return Err(usage(format!("{} holds no commands", args.file.display())));
    }
    let signers = check_lines(ctx, &lines, args.key.as_deref())?;
    let started = Instant::now();
    let total = lines.len();
    let bar = progress(total as u64);
    let mut ids: Vec<EventId> = Vec::with_capacity(total);
    let mut results: Vec<AppendResult> = Vec::with_capacity(total);
    let key = args.key.as_deref();
    let unsigned = |why: String| operational(format!("cannot sign a checked line: {why}"));
    if args.atomic {
        let commands = sign(&lines, key, &signers).map_err(unsigned)?;
        ids.extend(commands.iter().map(|c| c.command.id.clone()));
        results = ctx.backend.append(commands, true)?;
        bar.inc(total as u64);
    } else {
        // Signing the next chunk (on every core) overlaps appending this one; chunks are
        // appended one after another, in file order, so a line may depend on any before it.
        std::thread::scope(|scope| -> Result<()> {
            type Signed = std::result::Result<Vec<SignedCommand>, String>;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Signed>(SIGNED_CHUNKS_AHEAD);
            let signers = &signers;
            scope.spawn(move || {
                for chunk in lines.chunks(POST_CHUNK_COMMANDS) {
                    if tx.send(sign(chunk, key, signers)).is_err() {
                        return; // the appends stopped on an error
                    }
                }
            });
            for chunk in rx {
                let chunk = chunk.map_err(unsigned)?;
                let n = chunk.len();
                ids.extend(chunk.iter().map(|c| c.command.id.clone()));
                results.extend(ctx.backend.append(chunk, false)?);
                bar.inc(n as u64);
            }
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    summary(ctx.format, &ids, &results, started)
}

fn progress(total: u64) -> ProgressBar {
    crate::output::progress(total, "{spinner} {bar:40} {pos}/{len} commands ({per_sec}, eta {eta})")
}

/// Signed chunks waiting for the ledger: enough to keep it busy while the next is signed.
const SIGNED_CHUNKS_AHEAD: usize = 2;

/// One non-blank line of the file, kept as text until its chunk is sent: ~300 bytes per
/// command instead of the several KiB of a parsed and signed one, so a large file posts in
/// bounded memory beyond its own size.
struct Line {
    number: usize,
    text: String,
}

/// A line as parsed: signed already, or a command to sign with the key of `slot`.
enum Parsed {
    Signed(Box<SignedCommand>),
    Unsigned { command: Box<Command>, slot: Slot },
}

/// Which key signs an unsigned command: the `--key` given (`None`), or its party's.
type Slot = Option<String>;

fn read_lines(reader: Box<dyn BufRead>) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let number = n + 1;
        let text = line.map_err(|e| operational(format!("reading line {number}: {e}")))?;
        if !text.trim().is_empty() {
            lines.push(Line { number, text });
        }
    }
    Ok(lines)
}

fn parse(line: &Line, key: Option<&str>) -> std::result::Result<Parsed, String> {
    let line_no = line.number;
    if line.text.len() > POST_LINE_BYTES_MAX {
        return Err(format!("line {line_no}: longer than {POST_LINE_BYTES_MAX} bytes"));
    }
    if let Err(reason) = stockpile_ledger::wire::check_json_depth(line.text.as_bytes()) {
        return Err(format!("line {line_no}: {reason}"));
    }
    let value: serde_json::Value =
        serde_json::from_str(&line.text).map_err(|e| format!("line {line_no}: not JSON: {e}"))?;
    if value.get("signature").is_some() {
        return serde_json::from_value::<SignedCommand>(value)
            .map(|s| Parsed::Signed(Box::new(s)))
            .map_err(|e| format!("line {line_no}: not a signed command: {e}"));
    }
    let command =
        serde_json::from_value::<Command>(value).map_err(|e| format!("line {line_no}: not a command: {e}"))?;
    let slot = if key.is_some() { None } else { signing_party(&command.action).map(|p| p.to_string()) };
    Ok(Parsed::Unsigned { command: Box::new(command), slot })
}

/// The key each unsigned line is signed with, by slot.
type Signers = HashMap<Slot, OperatorKey>;

/// Parses every line (on every core) and finds the key for each unsigned one: any malformed
/// line, or a missing key, fails the whole file before anything is sent.
fn check_lines(ctx: &Ctx<'_>, lines: &[Line], key: Option<&str>) -> Result<Signers> {
    let parsed: Vec<std::result::Result<Option<Slot>, String>> = lines
        .par_iter()
        .map(|line| {
            parse(line, key).map(|p| match p {
                Parsed::Signed(_) => None,
                Parsed::Unsigned { slot, .. } => Some(slot),
            })
        })
        .collect();
    let mut errors: Vec<String> = Vec::new();
    let mut signers = Signers::new();
    for item in parsed {
        match item {
            Err(e) => errors.push(e),
            Ok(None) => {}
            Ok(Some(slot)) => {
                if let std::collections::hash_map::Entry::Vacant(e) = signers.entry(slot) {
                    let signer = ctx.keys.select(key, e.key().as_deref())?;
                    e.insert(signer);
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(signers);
    }
    let shown: Vec<&String> = errors.iter().take(ERRORS_SHOWN_MAX).collect();
    let more = errors.len().saturating_sub(ERRORS_SHOWN_MAX);
    let mut message = format!("{} malformed line(s); nothing was posted:", errors.len());
    for e in shown {
        message.push_str("\n  ");
        message.push_str(e);
    }
    if more > 0 {
        message.push_str(&format!("\n  … and {more} more"));
    }
    Err(CliError::Usage(message))
}

/// Parses and signs `lines` on every core, in order. [`check_lines`] passed on them, so
/// every line parses and every slot has its signer (an error here is a bug, reported as one
/// rather than a panic).
fn sign(lines: &[Line], key: Option<&str>, signers: &Signers) -> std::result::Result<Vec<SignedCommand>, String> {
    lines
        .par_iter()
        .map(|line| match parse(line, key)? {
            Parsed::Signed(signed) => Ok(*signed),
            Parsed::Unsigned { command, slot } => match signers.get(&slot) {
                Some(signer) => Ok(signer.sign(*command)),
                None => Err(format!("line {}: no key was selected for it", line.number)),
            },
        })
        .collect()
}

fn summary(format: Format, ids: &[EventId], results: &[AppendResult], started: Instant) -> Result<()> {
    let count = |f: fn(&AppendResult) -> bool| results.iter().filter(|r| f(r)).count();
    let appended = count(|r| matches!(r, AppendResult::Appended { .. }));
    let duplicate = count(|r| matches!(r, AppendResult::Duplicate { .. }));
    let rejected = count(|r| matches!(r, AppendResult::Rejected { .. }));
    let seconds = started.elapsed().as_secs_f64();
    if format == Format::Json {
        return report(format, ids, results);
    }
    // Per-line output for rejections only: a 100,000-line file should not print 100,000 lines.
    for (id, r) in ids.iter().zip(results) {
        if let AppendResult::Rejected { code, message } = r {
            eprintln!("{} {id}: {message} [{code}]", crate::output::bad("rejected"));
        }
    }
    println!(
        "posted {} command(s) in {seconds:.2} s ({:.0}/s): {appended} appended, {duplicate} duplicate, {rejected} rejected",
        results.len(),
        results.len() as f64 / seconds.max(1e-9)
    );
    if rejected > 0 {
        Err(CliError::Rejected { count: rejected })
    } else {
        Ok(())
    }
}
