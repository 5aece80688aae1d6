//! `stockpile report --out DIR` through the real binary on the demo ledger: the Markdown's
//! image links resolve to the SVG files written beside it, each parses as XML with an `<svg>`
//! root, one per material of the report; the HTML is a page that headless Chromium draws with
//! the charts in it (a screenshot that is not blank and holds the charts' bar colour); other
//! files in DIR are left alone, a DIR that is a file is refused; and over NATS, where the
//! projector service builds the report, the files are the same bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use stockpile_projector::report::render::CHART_BAR_FILL;
use stockpile_tests::bins::stockpile_in;

/// The report every test here writes: the demo's Netherlands, year 2026 (seven materials).
const REPORT: [&str; 5] = ["report", "--partner", "NL", "--period", "2026"];

/// The browser window of the screenshot, in pixels.
const WINDOW: (u32, u32) = (1200, 1600);

/// Longest wait for Chromium to write its screenshot.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Fewest pixels of the charts' bar colour the screenshot must hold: the first chart's bars
/// are tens of pixels wide and high.
const BAR_PIXELS_MIN: usize = 200;

/// The demo ledger in `dir` (`data/`, `keys/`, as `stockpile_in` expects).
fn demo(dir: &Path) {
    let out = stockpile_in(dir, &["demo", "--dir", dir.to_str().expect("UTF-8 path")]);
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs, expects exit `code`, returns (stdout, stderr).
fn expect(out: Output, code: i32, what: &str) -> (String, String) {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert_eq!(out.status.code(), Some(code), "{what}\nstdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

/// `report … --out <out>` (with `--nats url` when given); the paths it prints.
fn report_out(dir: &Path, nats: Option<&str>, out: &Path) -> Vec<PathBuf> {
    let out_arg = out.to_str().expect("UTF-8 path");
    let mut args: Vec<&str> = nats.map(|url| vec!["--nats", url]).unwrap_or_default();
    args.extend(REPORT);
    args.extend(["--out", out_arg]);
    let (stdout, _) = expect(stockpile_in(dir, &args), 0, &format!("stockpile {args:?}"));
    stdout.lines().map(PathBuf::from).collect()
}

/// The report's id and its materials, in order, from `report --format json`.
fn id_and_materials(dir: &Path) -> (String, Vec<String>) {
    let args = [&["--format", "json"][..], &REPORT[..]].concat();
    let (stdout, _) = expect(stockpile_in(dir, &args), 0, "report --format json");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report is JSON");
    let id = report["header"]["report_id"].as_str().expect("report_id").to_string();
    let materials = report["body"]["materials"]
        .as_array()
        .expect("materials")
        .iter()
        .map(|m| m["material"].as_str().expect("material id").to_string())
        .collect();
    (id, materials)
}

/// The destinations of the Markdown's images, in order (parsed as CommonMark).
fn image_links(markdown: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Parser, Tag};
    Parser::new(markdown)
        .filter_map(|e| match e {
            Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// Chromium: `CHROMIUM_BIN`, else `chromium` (Debian's name) or `chromium-browser` on PATH.
/// None is a failure, not a skip: scripts/test installs Debian's `chromium`.
fn chromium() -> PathBuf {
    if let Some(bin) = std::env::var_os("CHROMIUM_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "CHROMIUM_BIN={} is not a file: point it at a Chromium binary", bin.display());
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium not found (neither CHROMIUM_BIN nor chromium/chromium-browser on PATH): this test renders the \
         report's HTML in a browser. scripts/test installs the Debian package; by hand: apt-get install -y chromium"
    );
}

/// Headless Chromium's screenshot of `page` at [`WINDOW`], written to `png`.
fn screenshot(page: &Path, png: &Path, scratch: &Path) {
    let url = format!("file://{}", page.canonicalize().expect("the page exists").display());
    let log = std::fs::File::create(scratch.join("chromium.log")).expect("log file");
    let mut child = Command::new(chromium())
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", scratch.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over {CHROMIUM_TIMEOUT:?} to screenshot {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(scratch.join("chromium.log")).unwrap_or_default();
    assert!(status.success() && png.is_file(), "chromium {status} wrote no {}:\n{log}", png.display());
}

/// The screenshot's size and its pixels as RGB.
fn pixels(png_path: &Path) -> ((u32, u32), Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(std::fs::File::open(png_path).expect("open the screenshot"));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).expect("the PNG's image");
    let bytes = &buf[..frame.buffer_size()];
    let rgb = match frame.color_type {
        png::ColorType::Rgb => bytes.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Rgba => bytes.chunks_exact(4).map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => bytes.iter().map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => bytes.chunks_exact(2).map(|p| [p[0], p[0], p[0]]).collect(),
        png::ColorType::Indexed => panic!("EXPAND leaves no indexed colour"),
    };
    ((frame.width, frame.height), rgb)
}

/// `#rrggbb` as RGB.
fn rgb(hex: &str) -> [u8; 3] {
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex colour");
    [byte(1), byte(3), byte(5)]
}

#[test]
fn report_out_writes_markdown_linking_its_svg_charts_and_html_a_browser_draws() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    demo(&dir);
    let (id, materials) = id_and_materials(&dir);
    assert!(materials.len() >= 3, "the demo's NL 2026 report has several materials: {materials:?}");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("notes.txt"), "mine").expect("write");
    // A stale file of a name the report writes is replaced.
    std::fs::write(out.join(format!("{id}.md")), "stale").expect("write");

    let written = report_out(&dir, None, &out);
    let names: Vec<String> =
        written.iter().map(|p| p.file_name().expect("a file").to_string_lossy().to_string()).collect();
    let mut expected = vec![format!("{id}.md")];
    expected.extend(materials.iter().map(|m| format!("{id}-{m}.svg")));
    expected.push(format!("{id}.html"));
    assert_eq!(names, expected, "the documented names, in order");
    for path in &written {
        assert_eq!(path.parent(), Some(out.as_path()), "every file is in --out: {}", path.display());
        assert!(path.is_file(), "{} was written", path.display());
    }
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).expect("read"), "mine", "other files are left alone");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    let mut want: BTreeSet<String> = names.iter().cloned().collect();
    want.insert("notes.txt".into());
    assert_eq!(on_disk, want, "nothing else is written");

    // The Markdown: one image per material, each a relative link to an SVG file there.
    let markdown = std::fs::read_to_string(out.join(format!("{id}.md"))).expect("read the Markdown");
    assert!(markdown.starts_with(&format!("# Stock report {id}")), "the stale file was replaced: {markdown:.200}");
    assert!(!markdown.contains("<svg"), "the Markdown links its charts, it does not inline them");
    let links = image_links(&markdown);
    assert_eq!(links, materials.iter().map(|m| format!("{id}-{m}.svg")).collect::<Vec<_>>(), "one chart each");
    for link in &links {
        assert!(!link.contains('/') && !link.contains(':'), "a relative link beside the Markdown: {link}");
        let file = out.join(link);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("the link {link} resolves: {e}"));
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{link} is XML: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{link}'s root");
        assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"), "{link}'s namespace");
        let bars = root.descendants().filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(CHART_BAR_FILL));
        assert_eq!(bars.count(), 6, "{link}: five year-ends and the period's end");
    }

    // The HTML: a page with a title, a stylesheet, tables and every chart inline.
    let html_path = out.join(format!("{id}.html"));
    let html = std::fs::read_to_string(&html_path).expect("read the HTML");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.200}");
    assert!(html.contains(&format!("<title>Stock report {id} — Netherlands (NL), 2026</title>")), "{html:.400}");
    assert!(html.contains("<style>") && html.contains("<table>"), "a stylesheet and tables");
    assert_eq!(html.matches("<svg ").count(), materials.len(), "every chart inline");
    assert!(!html.contains("<img") && !html.contains("<script"), "nothing to load or run");

    // What a person sees: Chromium draws the page, not blank, with the charts' bars in it.
    let png_path = tmp.path().join("report.png");
    screenshot(&html_path, &png_path, tmp.path());
    let (size, pixels) = pixels(&png_path);
    assert_eq!(size, WINDOW, "the screenshot is the window");
    let first = pixels[0];
    assert!(pixels.iter().any(|p| *p != first), "the screenshot is not one colour");
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 128)).count();
    assert!(dark > 1_000, "text is drawn ({dark} dark pixels)");
    let bar = rgb(CHART_BAR_FILL);
    let bar_pixels = pixels.iter().filter(|p| **p == bar).count();
    assert!(
        bar_pixels >= BAR_PIXELS_MIN,
        "the first chart is drawn: {bar_pixels} pixels of its bar colour {CHART_BAR_FILL} (at least {BAR_PIXELS_MIN})"
    );

    // Run again: the same bytes (deterministic), `notes.txt` still there.
    let before: Vec<Vec<u8>> = written.iter().map(|p| std::fs::read(p).expect("read")).collect();
    assert_eq!(report_out(&dir, None, &out), written);
    let after: Vec<Vec<u8>> = written.iter().map(|p| std::fs::read(p).expect("read")).collect();
    assert!(before == after, "the same report writes the same bytes");

    // A --out that is a file is refused, and the file is untouched.
    let file = out.join("notes.txt");
    let args = [&REPORT[..], &["--out", file.to_str().expect("UTF-8")]].concat();
    let (_, stderr) = expect(stockpile_in(&dir, &args), 2, "report --out <a file>");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "mine");
}

/// Over NATS the projector service builds the report; from the same log, cut at the same
/// record, `--out` writes the same files, byte for byte, as the embedded report.
#[test]
fn report_out_over_nats_writes_the_same_files_as_the_embedded_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    demo(&dir);
    // Embedded first: the ledger service below opens the same sled directory.
    let local = report_out(&dir, None, &tmp.path().join("local"));

    let server = stockpile_tests::nats::NatsServer::start();
    let url = server.url();
    let services = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let projector_dir = tempfile::tempdir().expect("tempdir");
    // The embedded CLI keeps its ledger in `<data>/ledger`.
    let ledger_config = stockpile_ledger::service::ServiceConfig::new(url.clone(), dir.join("data").join("ledger"));
    services.spawn(stockpile_ledger::service::run(ledger_config, std::future::pending()));
    let projector_config = stockpile_projector::service::ProjectorConfig::new(url.clone(), projector_dir.path());
    services.spawn(stockpile_projector::service::run(projector_config, std::future::pending()));
    services.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(60);
        for service in ["stockpile-ledger", "stockpile-projector"] {
            while client.request(format!("$SRV.PING.{service}"), "".into()).await.is_err() {
                assert!(Instant::now() < deadline, "{service} did not come up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let remote = report_out(&dir, Some(&url), &tmp.path().join("remote"));
    let names = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.file_name().expect("a file").to_string_lossy().to_string()).collect()
    };
    assert_eq!(names(&remote), names(&local), "the same files");
    assert!(remote.len() >= 5, "a Markdown, charts and an HTML: {remote:?}");
    for (r, l) in remote.iter().zip(&local) {
        assert!(std::fs::read(r).expect("read") == std::fs::read(l).expect("read"), "{} differs", r.display());
    }
    services.shutdown_timeout(Duration::from_secs(10));
}
