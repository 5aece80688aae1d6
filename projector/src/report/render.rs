//! Renderings of a [`Report`]: canonical JSON, CSV, Markdown with inline SVG, and the files
//! of `report --out` (Markdown linking its charts, one SVG per chart, and HTML). Each is a
//! function of the report alone, so each is as deterministic as the report.

use super::build::ReportError;
use super::model::*;
use std::fmt::Write;
use stockpile_ledger::canonical;

/// The submission: canonical JSON (sorted keys, no whitespace, integers only) and a newline.
pub fn json(report: &Report) -> Result<Vec<u8>, ReportError> {
    let mut bytes = canonical::to_vec(report).map_err(|e| ReportError::Encode(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The line every rendering of a provisional report carries.
pub const PROVISIONAL_NOTICE: &str = "PROVISIONAL — the period has not ended";

/// What the provisional line says beyond [`PROVISIONAL_NOTICE`].
fn provisional_detail(report: &Report) -> String {
    format!(
        "ledger time at record {} is before the end of {} (UTC); records after it may change every figure",
        report.header.cut_seq, report.body.period_end
    )
}

/// CSV columns, in order.
pub const CSV_COLUMNS: [&str; 9] =
    ["section", "material", "item", "detail", "gross_g", "gross_t", "contained_g", "contained_t", "value"];

/// One row per figure: `section` says what it is (header, stock, consumption, days_of_cover,
/// form, history, holder, location, movement, rules, private, held_for_others, withheld). A
/// provisional report's first row after the column names is a `header,,status` row whose
/// value starts with [`PROVISIONAL_NOTICE`]; every report has a `header,,provisional` row.
pub fn csv(report: &Report) -> String {
    let mut out = String::new();
    row(&mut out, &CSV_COLUMNS.map(String::from));
    let h = &report.header;
    if h.provisional {
        let notice = format!("{PROVISIONAL_NOTICE}: {}", provisional_detail(report));
        text_row(&mut out, "header", "", "status", "", &notice);
    }
    for (k, v) in [
        ("report_id", h.report_id.clone()),
        ("framework", h.framework.as_str().to_string()),
        ("partner", h.partner.clone()),
        ("period", h.period.to_string()),
        ("period_end", report.body.period_end.clone()),
        ("cut_seq", h.cut_seq.to_string()),
        ("chain_head", h.chain_head.clone()),
        ("body_sha256", h.body_sha256.clone()),
        ("provisional", h.provisional.to_string()),
    ] {
        text_row(&mut out, "header", "", k, "", &v);
    }
    for m in &report.body.materials {
        let id = m.material.as_str();
        amounts_row(&mut out, "stock", id, "closing", "", &m.stock);
        for (section, r) in [("consumption", &m.consumption), ("days_of_cover", &m.days_of_cover)] {
            let value = r.value.clone().unwrap_or_default();
            let fig = r.figure_g.map(|g| g.to_string()).unwrap_or_default();
            let fig_t = r.figure_t.clone().unwrap_or_default();
            row(
                &mut out,
                &[section, id, &r.status, &r.year.to_string(), &fig, &fig_t, "", "", &value].map(String::from),
            );
        }
        for f in &m.forms {
            amounts_row(&mut out, "form", id, &f.form, &f.purity_ppm.to_string(), &f.amounts);
        }
        for y in &m.history {
            amounts_row(&mut out, "history", id, &y.date, "", &y.amounts);
        }
        for hl in &m.holders {
            amounts_row(&mut out, "holder", id, &hl.holder_type, "", &hl.amounts);
        }
        for l in &m.locations {
            amounts_row(&mut out, "location", id, &l.country, &l.placement, &l.amounts);
        }
        for mv in &m.movements {
            let detail = mv.reason.clone().unwrap_or_default();
            row(
                &mut out,
                &["movement", id, &mv.line, &detail, &mv.gross_g.to_string(), &mv.gross_t, "", "", ""]
                    .map(String::from),
            );
        }
        text_row(&mut out, "rules", id, &m.release_rules.status, "", &m.release_rules.text);
    }
    for p in &report.body.private_stocks {
        amounts_row(&mut out, "private", &p.material, "closing", "", &p.amounts);
    }
    for o in &report.body.held_for_others {
        amounts_row(&mut out, "held_for_others", &o.material, &o.owner, "", &o.amounts);
    }
    for w in &report.body.withheld {
        text_row(&mut out, "withheld", &w.material, "since", &w.since, &w.reason);
    }
    out
}

fn amounts_row(out: &mut String, section: &str, material: &str, item: &str, detail: &str, a: &Amounts) {
    let cells = [
        section,
        material,
        item,
        detail,
        &a.gross_g.to_string(),
        &a.gross_t,
        &a.contained_g.to_string(),
        &a.contained_t,
        "",
    ]
    .map(String::from);
    row(out, &cells);
}

fn text_row(out: &mut String, section: &str, material: &str, item: &str, detail: &str, value: &str) {
    row(out, &[section, material, item, detail, "", "", "", "", value].map(String::from));
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; CRLF-free.
fn row(out: &mut String, cells: &[String]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(c);
        }
    }
    out.push('\n');
}

/// A human rendering: Markdown tables, one section per material, each with an inline SVG of
/// the five previous year-ends and the period's end.
pub fn markdown(report: &Report) -> String {
    markdown_with(report, svg)
}

/// [`markdown`] with each material's chart drawn by `chart` (the material, the period's end).
pub(super) fn markdown_with(report: &Report, chart: impl Fn(&MaterialReport, &str) -> String) -> String {
    let (h, b) = (&report.header, &report.body);
    let mut s = String::new();
    let _ = writeln!(s, "# Stock report {} — {} ({}), {}\n", h.report_id, b.partner_name, h.partner, h.period);
    if h.provisional {
        let _ = writeln!(s, "> **{PROVISIONAL_NOTICE}**: {}.\n", provisional_detail(report));
    }
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Framework | {} |", h.framework.as_str());
    let status = if h.provisional { "provisional: the period has not ended" } else { "final: the period has ended" };
    let _ = writeln!(
        s,
        "| Period | {} to {} (stock as of the end of {}, UTC; {status}) |",
        b.period_start, b.period_end, b.period_end
    );
    let _ = writeln!(
        s,
        "| Materials | {} |",
        serde_json::to_value(b.material_scope).unwrap_or_default().as_str().unwrap_or("")
    );
    let _ = writeln!(s, "| Programmes counted | {} |", b.programmes.join(", "));
    let _ = writeln!(s, "| Ledger sequence | {} |", h.cut_seq);
    let _ = writeln!(s, "| Chain head | `{}` |", h.chain_head);
    let _ = writeln!(s, "| Body SHA-256 | `{}` |\n", h.body_sha256);
    let _ = writeln!(
        s,
        "Holder scope: public authorities, public undertakings and mandated operators. Private stocks are listed separately, for information only.\n"
    );
    if b.materials.is_empty() {
        let _ = writeln!(s, "No stock in scope at any of the report's dates.\n");
    }
    let end_label = b.period_end.clone();
    for m in &b.materials {
        material_md(&mut s, m, &chart(m, &end_label));
    }
    if !b.withheld.is_empty() {
        let _ = writeln!(s, "## Withheld on national-security grounds (CRMA Art. 22(1))\n");
        let _ = writeln!(s, "| Material | Since | Reasoned notification |\n|---|---|---|");
        for w in &b.withheld {
            let _ = writeln!(s, "| {} | {} | {} |", w.material, w.since, cell(&w.reason));
        }
        s.push('\n');
    }
    if !b.private_stocks.is_empty() {
        let _ = writeln!(s, "## Private stocks (information only, not counted)\n");
        let _ = writeln!(s, "| Material | Gross t | Contained t |\n|---|---:|---:|");
        for p in &b.private_stocks {
            let _ = writeln!(s, "| {} | {} | {} |", p.material, p.amounts.gross_t, p.amounts.contained_t);
        }
        s.push('\n');
    }
    if !b.held_for_others.is_empty() {
        let _ = writeln!(s, "## Held on this territory for other partners\n");
        let _ = writeln!(s, "| Material | Owner | Gross t | Contained t |\n|---|---|---:|---:|");
        for o in &b.held_for_others {
            let _ = writeln!(s, "| {} | {} | {} | {} |", o.material, o.owner, o.amounts.gross_t, o.amounts.contained_t);
        }
        s.push('\n');
    }
    s
}

fn material_md(s: &mut String, m: &MaterialReport, chart: &str) {
    let _ = writeln!(s, "## {} (`{}`)\n", m.name, m.material);
    let _ = writeln!(s, "Stock: **{} t** gross, **{} t** contained.\n", m.stock.gross_t, m.stock.contained_t);
    for (label, r, unit) in
        [("Share of annual consumption", &m.consumption, " %"), ("Days of cover", &m.days_of_cover, " days")]
    {
        match &r.value {
            Some(v) => {
                let _ = writeln!(s, "- {label}: {v}{unit} ({}, {} t)", r.note, r.figure_t.as_deref().unwrap_or(""));
            }
            None => {
                let _ = writeln!(s, "- {label}: not available — {}", r.note);
            }
        }
    }
    let _ = writeln!(
        s,
        "- Release, allocation and distribution rules ({}): {}\n",
        m.release_rules.status,
        cell(&m.release_rules.text)
    );
    table(
        s,
        "Form and purity",
        &["Form", "Purity %"],
        m.forms.iter().map(|f| (vec![f.form.clone(), f.purity_pct.clone()], &f.amounts)),
    );
    table(s, "Holders", &["Holder type"], m.holders.iter().map(|h| (vec![h.holder_type.clone()], &h.amounts)));
    table(
        s,
        "Held at home and abroad",
        &["Country", "Placement"],
        m.locations.iter().map(|l| (vec![l.country.clone(), l.placement.clone()], &l.amounts)),
    );
    table(s, "Previous five year-ends", &["Year-end"], m.history.iter().map(|y| (vec![y.date.clone()], &y.amounts)));
    s.push_str(chart);
    s.push_str("\n\n");
    let _ = writeln!(s, "### Movements in the period (gross)\n\n| Line | Tonnes |\n|---|---:|");
    for mv in &m.movements {
        let name = match &mv.reason {
            Some(r) => format!("{} ({r})", mv.line),
            None => mv.line.clone(),
        };
        let _ = writeln!(s, "| {name} | {} |", mv.gross_t);
    }
    s.push('\n');
}

fn table<'a>(s: &mut String, title: &str, cols: &[&str], rows: impl Iterator<Item = (Vec<String>, &'a Amounts)>) {
    let _ = writeln!(s, "### {title}\n");
    let _ = writeln!(s, "| {} | Gross t | Contained t |", cols.join(" | "));
    let _ = writeln!(s, "|{}---:|---:|", "---|".repeat(cols.len()));
    for (cells, a) in rows {
        let _ = writeln!(s, "| {} | {} | {} |", cells.join(" | "), a.gross_t, a.contained_t);
    }
    s.push('\n');
}

/// Markdown table cells cannot hold a pipe or a line break.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// SVG chart geometry, in pixels: the whole image, and the margins around the plot that
/// hold the title (top), the y axis's labels (left) and the x axis's labels and caption
/// (bottom).
const SVG_WIDTH: i64 = 560;
const SVG_HEIGHT: i64 = 260;
const SVG_TOP: i64 = 40;
const SVG_LEFT: i64 = 70;
const SVG_RIGHT: i64 = 20;
const SVG_BOTTOM: i64 = 50;
/// The bars' fill: the one colour a chart uses only for its bars (tests find the chart in a
/// screenshot by it).
pub const CHART_BAR_FILL: &str = "#2b6cb0";
/// The plot's height: the tallest bar.
const PLOT_HEIGHT: i64 = SVG_HEIGHT - SVG_TOP - SVG_BOTTOM;

/// A titled bar chart of gross stock in tonnes at the five previous year-ends and the
/// period's end (`end_label`), every bar labelled with its full date (`2025-12-31`, as the
/// period's end is), a y axis from 0 t to the largest bar with its value, and an x axis
/// caption. Integer geometry only, so the same report always draws the same bytes.
pub fn svg(m: &MaterialReport, end_label: &str) -> String {
    let mut bars: Vec<(String, i64)> = m.history.iter().map(|y| (y.date.clone(), y.amounts.gross_g)).collect();
    bars.push((end_label.to_string(), m.stock.gross_g));
    let max = bars.iter().map(|(_, g)| g.max(&0)).copied().max().unwrap_or(0).max(1);
    let slot = (SVG_WIDTH - SVG_LEFT - SVG_RIGHT) / bars.len() as i64;
    let base = SVG_TOP + PLOT_HEIGHT;
    let title = format!("{} ({}): gross stock, tonnes", xml(&m.name), xml(&m.material));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img" aria-label="{title} at five year-ends and {end_label}" font-family="sans-serif">"#
    );
    let _ = write!(s, r##"<rect width="{SVG_WIDTH}" height="{SVG_HEIGHT}" fill="#ffffff"/>"##);
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="14" font-weight="bold" text-anchor="middle">{title}</text>"#,
        SVG_WIDTH / 2
    );
    // Axes: y from 0 to the largest bar, x along the base.
    let right = SVG_WIDTH - SVG_RIGHT;
    let _ = write!(s, r##"<line x1="{SVG_LEFT}" y1="{SVG_TOP}" x2="{SVG_LEFT}" y2="{base}" stroke="#333"/>"##);
    let _ = write!(s, r##"<line x1="{SVG_LEFT}" y1="{base}" x2="{right}" y2="{base}" stroke="#333"/>"##);
    for (y, g) in [(base, 0), (SVG_TOP, max)] {
        let _ = write!(s, r##"<line x1="{}" y1="{y}" x2="{SVG_LEFT}" y2="{y}" stroke="#333"/>"##, SVG_LEFT - 4);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{} t</text>"#,
            SVG_LEFT - 6,
            y + 4,
            short_t(g)
        );
    }
    for (i, (label, g)) in bars.iter().enumerate() {
        let h = (i128::from((*g).max(0)) * i128::from(PLOT_HEIGHT) / i128::from(max)) as i64;
        let x = SVG_LEFT + i as i64 * slot + slot / 6;
        let w = slot * 2 / 3;
        let _ = write!(s, r#"<rect x="{x}" y="{}" width="{w}" height="{h}" fill="{CHART_BAR_FILL}"/>"#, base - h);
        let cx = x + w / 2;
        let _ = write!(s, r#"<text x="{cx}" y="{}" font-size="10" text-anchor="middle">{label}</text>"#, base + 14);
        let _ = write!(
            s,
            r#"<text x="{cx}" y="{}" font-size="10" text-anchor="middle">{} t</text>"#,
            base - h - 4,
            short_t(*g)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">year-end; last bar: end of the period</text>"#,
        SVG_LEFT + (right - SVG_LEFT) / 2,
        SVG_HEIGHT - 12
    );
    s.push_str("</svg>");
    s
}

/// `text` escaped for SVG/XML (and HTML) character data and attributes.
pub(super) fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Tonnes with up to 3 decimals, truncated toward zero, for labels.
fn short_t(g: i64) -> String {
    let sign = if g < 0 { "-" } else { "" };
    let kg = g.unsigned_abs() / 1_000;
    format!("{sign}{}.{:03}", kg / 1_000, kg % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amounts(g: i64) -> Amounts {
        Amounts { gross_g: g, gross_t: String::new(), contained_g: g, contained_t: String::new() }
    }

    #[test]
    fn the_chart_scales_bars_to_the_largest_with_integer_geometry() {
        let ratio = Ratio {
            status: "not_registered".into(),
            year: 2025,
            figure_g: None,
            figure_t: None,
            value: None,
            note: "n".into(),
        };
        let history = [0, 0, 10_000_000, 10_000_000, 10_000_000]
            .iter()
            .enumerate()
            .map(|(i, g)| YearEnd { date: format!("{}-12-31", 2021 + i), amounts: amounts(*g) })
            .collect();
        let m = MaterialReport {
            material: "gallium".into(),
            name: "Gallium".into(),
            crma_strategic: true,
            crma_critical: true,
            stock: amounts(5_000_000),
            consumption: ratio.clone(),
            days_of_cover: ratio,
            forms: vec![],
            history,
            release_rules: RulesNote { status: "not_registered".into(), text: "t".into() },
            holders: vec![],
            locations: vec![],
            movements: vec![],
        };
        let svg = svg(&m, "2026-06-30");
        let plot = PLOT_HEIGHT; // the tallest bar
        assert_eq!(svg.matches(&format!("height=\"{plot}\" fill")).count(), 3, "{svg}");
        assert_eq!(svg.matches(&format!("height=\"{}\" fill", plot / 2)).count(), 1, "half the stock, half the bar");
        assert_eq!(svg.matches("height=\"0\" fill").count(), 2);
        assert!(svg.contains(">2026-06-30</text>") && svg.contains(">5.000 t</text>"));
        // Every bar is labelled with its full date, as the period's end is: no bare `2025`.
        assert!(svg.contains(">2025-12-31</text>") && !svg.contains(">2025</text>"), "{svg}");
        assert!(svg.contains(">Gallium (gallium): gross stock, tonnes</text>"), "a title: {svg}");
        assert!(
            svg.contains(r#"text-anchor="end">0.000 t</text>"#) && svg.contains(r#"text-anchor="end">10.000 t</text>"#),
            "a y axis from 0 to the top: {svg}"
        );
        assert_eq!(svg, super::svg(&m, "2026-06-30"), "deterministic");
    }
}
