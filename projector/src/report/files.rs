//! The files of `stockpile report --out DIR`, named after the report's id `<id>`
//! (`EU-NL-2026-Q1-42`):
//!
//! - `<id>.md`: [`render::markdown`](super::render::markdown) with each chart as a Markdown
//!   image linking its SVG file by a relative path (`![…](<id>-<material>.svg)`);
//! - `<id>-<material>.svg`: one chart per material, the same bytes as the inline SVG;
//! - `<id>.html`: the Markdown as HTML (pulldown-cmark, CommonMark with tables), with a title,
//!   a small inline stylesheet and every chart inline, so the page needs no other file.
//!
//! Pure: names and bytes, no I/O; the same report gives the same files, byte for byte.

use super::model::{MaterialReport, Report};
use super::render::{markdown_with, svg, xml};
use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

/// One file of the output: its name in the directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The longest report id or material id that may be part of a file name (the ledger's ids
/// are at most 64 characters; a report id is the framework, partner, period and a sequence).
pub const NAME_PART_MAX: usize = 100;

/// A report id or material id that cannot be part of a file name: the report may come from a
/// service, so its ids are checked before they name anything in the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} cannot name a file: it must be 1 to {NAME_PART_MAX} of A-Z a-z 0-9 . _ - and start with a letter or digit")]
pub struct FileNameError {
    pub what: &'static str,
    pub name: String,
}

/// `<id>.md`
pub fn markdown_name(report_id: &str) -> String {
    format!("{report_id}.md")
}

/// `<id>.html`
pub fn html_name(report_id: &str) -> String {
    format!("{report_id}.html")
}

/// `<id>-<material>.svg`
pub fn chart_name(report_id: &str, material: &str) -> String {
    format!("{report_id}-{material}.svg")
}

/// The report's files, in the order written: the Markdown, one SVG per material (in the
/// report's order), the HTML.
pub fn files(report: &Report) -> Result<Vec<ReportFile>, FileNameError> {
    let id = report.header.report_id.as_str();
    check_name("report id", id)?;
    for m in &report.body.materials {
        check_name("material", &m.material)?;
    }
    let end_label = report.body.period_end.as_str();
    let charts: Vec<(String, String)> =
        report.body.materials.iter().map(|m| (chart_name(id, &m.material), svg(m, end_label))).collect();
    let markdown = markdown_with(report, |m, end| chart_link(id, m, end));
    let (h, b) = (&report.header, &report.body);
    let title = format!("Stock report {} — {} ({}), {}", h.report_id, b.partner_name, h.partner, h.period);
    let page = html_page(&title, &markdown, &charts);
    let mut out = vec![ReportFile { name: markdown_name(id), bytes: markdown.into_bytes() }];
    out.extend(charts.into_iter().map(|(name, svg)| ReportFile { name, bytes: svg.into_bytes() }));
    out.push(ReportFile { name: html_name(id), bytes: page.into_bytes() });
    Ok(out)
}

fn check_name(what: &'static str, name: &str) -> Result<(), FileNameError> {
    let ok = (1..=NAME_PART_MAX).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(FileNameError { what, name: name.to_string() })
    }
}

/// The Markdown image of `m`'s chart: alt text as the chart's own label, the file by its
/// relative name (ids only, so the link needs no escaping).
fn chart_link(report_id: &str, m: &MaterialReport, end_label: &str) -> String {
    let alt = format!("{} ({}): gross stock, tonnes, at five year-ends and {end_label}", m.name, m.material);
    format!("![{}]({})", markdown_escape(&alt), chart_name(report_id, &m.material))
}

/// The characters that could close an image's alt text or start markup, backslash-escaped
/// (CommonMark allows a backslash before any ASCII punctuation), so a name stays its text.
fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '[' | ']' | '<' | '>' | '*' | '_' | '`' | '&') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The page's stylesheet: readable width, ruled tables, the provisional notice in red.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;\
color:#1a202c;line-height:1.45}\
h1{font-size:1.6rem}h2{border-bottom:1px solid #cbd5e0;margin-top:2.2rem}h3{font-size:1.05rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem}\
th,td{border:1px solid #cbd5e0;padding:.25rem .6rem;vertical-align:top}th{background:#edf2f7}\
code{font-size:.85em;word-break:break-all}\
blockquote{border-left:4px solid #c53030;margin:1rem 0;padding:.25rem 1rem;background:#fff5f5}\
svg{max-width:100%;height:auto;display:block;margin:1rem 0}";

/// `markdown` as a whole HTML page titled `title`: each chart image replaced by its SVG (`charts`: file name,
/// SVG). The report's Markdown has no markup, links or other images of its own, so any that
/// a text of the ledger (a reason, a rule) makes is shown as its text: the page never runs,
/// loads or links anything.
fn html_page(title: &str, markdown: &str, charts: &[(String, String)]) -> String {
    let mut events = Vec::new();
    // Inside an image: `Some(true)` for a chart (its alt text is dropped, the SVG stands for
    // it), `Some(false)` for any other image (its alt text is kept as text).
    let mut image: Option<bool> = None;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                let chart = charts.iter().find(|(name, _)| *name == *dest_url);
                if let Some((_, svg)) = chart {
                    events.push(Event::InlineHtml(svg.clone().into()));
                }
                image = Some(chart.is_some());
            }
            Event::End(TagEnd::Image) => image = None,
            _ if image == Some(true) => {}
            Event::Start(Tag::Link { .. }) | Event::End(TagEnd::Link) => {}
            Event::Html(text) | Event::InlineHtml(text) => events.push(Event::Text(text)),
            other => events.push(other),
        }
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    let title = xml(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_path_or_nothing_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "é", &"x".repeat(NAME_PART_MAX + 1)] {
            assert!(check_name("material", bad).is_err(), "{bad:?}");
        }
        for good in ["gallium", "EU-NL-2026-Q1-42", "rare_earths.ndpr", "9"] {
            assert_eq!(check_name("material", good), Ok(()));
        }
    }

    #[test]
    fn the_page_inlines_its_charts_and_shows_markup_from_the_data_as_text() {
        let md = "# R <1>\n\n| A | B |\n|---|---:|\n| x | 1 |\n\n![chart](r-ga.svg)\n\n\
                  reason: <script>alert(1)</script> [here](javascript:alert(1)) ![t](http://example.invalid/t.png)\n";
        let charts = vec![("r-ga.svg".to_string(), "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".to_string())];
        let page = html_page("R & <1>", md, &charts);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<title>R &amp; &lt;1&gt;</title>"), "{page}");
        assert!(page.contains("<style>") && page.contains("<table>") && page.contains("text-align: right"), "{page}");
        assert!(page.contains("<p><svg xmlns=\"http://www.w3.org/2000/svg\"></svg></p>"), "the chart inline: {page}");
        assert!(!page.contains("r-ga.svg") && !page.contains("<img"), "no image left: {page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script"), "{page}");
        assert!(!page.contains("href") && !page.contains("example.invalid"), "no link, nothing loaded: {page}");
        assert!(page.contains(" here t"), "their text stays: {page}");
    }

    #[test]
    fn alt_text_cannot_close_the_image_or_start_markup() {
        assert_eq!(markdown_escape(r"a](x) <b>*_\"), r"a\](x) \<b\>\*\_\\");
    }
}
