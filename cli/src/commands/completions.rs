//! `stockpile completions SHELL` and `stockpile man`: generated from the clap definition
//! itself (clap_complete, clap_mangen), so they always match the real arguments.

use crate::args::{Cli, CompletionShell};
use crate::error::{operational, Result};
use clap::CommandFactory;
use std::io::Write;

/// Writes the completion script for `shell` to stdout.
pub fn script(shell: CompletionShell) -> Result<()> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Into a buffer first: the generator panics on a write error, and a closed pipe
    // (`stockpile completions bash | head`) is not one.
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "stockpile", &mut out);
    write_stdout(&out)
}

/// Writes the manual page, in roff, to stdout.
pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).map_err(|e| operational(format!("man page: {e}")))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(operational(format!("write to stdout: {e}"))),
        _ => Ok(()),
    }
}
