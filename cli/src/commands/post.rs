//! `post FILE`: many commands from JSON Lines. Every line is read and checked before anything
//! is sent, so a malformed file changes nothing.

use super::{report, signing_party, Ctx};
use crate::args::{Format, PostArgs};
use crate::error::{operational, usage, CliError, Result};
use indicatif::ProgressBar;
use std::io::BufRead;
use std::time::Instant;
use stockpile_ledger::domain::{Command, EventId};
use stockpile_ledger::signing::SignedCommand;
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
    let commands = read_lines(ctx, reader, args.key.as_deref())?;
    if commands.is_empty() {
        return Err(usage(format!("{} holds no commands", args.file.display())));
    }
    let started = Instant::now();
    let total = commands.len();
    let bar = progress(total as u64);
    let ids: Vec<EventId> = commands.iter().map(|c| c.command.id.clone()).collect();
    let mut results: Vec<AppendResult> = Vec::with_capacity(total);
    if args.atomic {
        results = ctx.backend.append(commands, true)?;
        bar.inc(total as u64);
    } else {
        let mut rest = commands;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(POST_CHUNK_COMMANDS));
            let n = rest.len();
            results.extend(ctx.backend.append(rest, false)?);
            bar.inc(n as u64);
            rest = tail;
        }
    }
    bar.finish_and_clear();
    summary(ctx.format, &ids, &results, started)
}

fn progress(total: u64) -> ProgressBar {
    crate::output::progress(total, "{spinner} {bar:40} {pos}/{len} commands ({per_sec}, eta {eta})")
}

/// Parses every line; signs unsigned commands. Any malformed line fails the whole file.
fn read_lines(ctx: &Ctx<'_>, reader: Box<dyn BufRead>, key: Option<&str>) -> Result<Vec<SignedCommand>> {
    let mut commands = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut signers: std::collections::HashMap<Option<String>, stockpile_ledger::signing::OperatorKey> =
        std::collections::HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|e| operational(format!("reading line {line_no}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > POST_LINE_BYTES_MAX {
            errors.push(format!("line {line_no}: longer than {POST_LINE_BYTES_MAX} bytes"));
            continue;
        }
        if let Err(reason) = stockpile_ledger::wire::check_json_depth(line.as_bytes()) {
            errors.push(format!("line {line_no}: {reason}"));
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("line {line_no}: not JSON: {e}"));
                continue;
            }
        };
        let signed = if value.get("signature").is_some() {
            serde_json::from_value::<SignedCommand>(value)
                .map_err(|e| format!("line {line_no}: not a signed command: {e}"))
        } else {
            match serde_json::from_value::<Command>(value) {
                Ok(command) => {
                    let party = signing_party(&command.action).map(|p| p.to_string());
                    let slot = if key.is_some() { None } else { party.clone() };
                    let signer = match signers.get(&slot) {
                        Some(s) => s,
                        None => {
                            let s = ctx.keys.select(key, party.as_deref())?;
                            signers.entry(slot).or_insert(s)
                        }
                    };
                    Ok(signer.sign(command))
                }
                Err(e) => Err(format!("line {line_no}: not a command: {e}")),
            }
        };
        match signed {
            Ok(s) => commands.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        return Ok(commands);
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
