//! Output: aligned tables, JSON and CSV on stdout; diagnostics on stderr. Colour only on a
//! terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

/// A progress bar on stderr when it is a terminal, hidden otherwise; `template` is indicatif's.
pub fn progress(len: u64, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn paint(code: &str, text: &str) -> String {
    if colour_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn ok(text: &str) -> String {
    paint("32", text)
}

pub fn bad(text: &str) -> String {
    paint("31", text)
}

pub fn dim(text: &str) -> String {
    paint("2", text)
}

/// An aligned table; columns whose header ends in `_t`, `_g` or is numeric are right-aligned.
pub fn table(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty() && rows.iter().all(|r| r[i].chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-'))
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if numeric[i] {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(headers.iter().map(|h| h.to_uppercase()).collect()))?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    Ok(())
}

/// CSV with RFC 4180 quoting.
pub fn csv(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    writeln!(out, "{}", headers.iter().map(|h| field(h)).collect::<Vec<_>>().join(","))?;
    for row in rows {
        writeln!(out, "{}", row.iter().map(|c| field(c)).collect::<Vec<_>>().join(","))?;
    }
    Ok(())
}
