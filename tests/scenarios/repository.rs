//! The repository stands alone: a fresh clone builds, tests and reads without anything beside
//! it. Every text file git tracks is scanned:
//!
//! - no text names a folder beside the repository (the team's shared folder) or a home or
//!   workspace directory of the machine it was written on;
//! - no relative path climbs out of the repository from the file that holds it
//!   (`include_str!("../../x")`, a Markdown link `](../../x)`);
//! - every relative Markdown link names a file or directory that exists.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// Text that points outside the repository. Spelled in pieces so that this file does not hold
/// the very text it looks for.
const OUTSIDE: [&str; 7] = [
    concat!("..", "/shared"),
    concat!("shared", "/reference"),
    concat!("shared", "/DESIGN"),
    concat!("/", "work", "/"),
    concat!("/", "home", "/"),
    concat!("/", "root", "/"),
    concat!("/", "Users", "/"),
];

/// Each file git tracks in the workspace, as a path relative to it, with its text; files
/// that are not UTF-8 (none today) are left out, as they hold no paths a reader follows.
fn text_files() -> Vec<(PathBuf, String)> {
    let root = workspace();
    let output = Command::new("git")
        .args(["ls-files", "-z", "--cached"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ls-files ({e}): install git and run the tests from a clone"));
    assert!(
        output.status.success(),
        "git ls-files failed in {}: run the tests from a git clone\n{}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let names = String::from_utf8(output.stdout).expect("git lists UTF-8 paths");
    let files: Vec<(PathBuf, String)> = names
        .split('\0')
        .filter(|n| !n.is_empty())
        .map(PathBuf::from)
        // A tracked file deleted in the working tree is not part of what a clone would hold.
        .filter_map(|rel| Some((rel.clone(), std::fs::read_to_string(root.join(&rel)).ok()?)))
        .collect();
    assert!(files.len() > 100, "git listed only {} text files in {}", files.len(), root.display());
    files
}

/// `dir` (a directory inside the workspace) joined with the relative `path`, normalised; `None` when
/// it climbs above the workspace.
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<Component> = dir.components().collect();
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    Some(parts.iter().collect())
}

/// The relative paths in `text` that start by climbing (`../`), each from its first `../` to
/// the end of the path.
fn climbing_paths(text: &str) -> Vec<&str> {
    let path_char = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("../") {
        let starts_run = !rest[..i].ends_with('.');
        let tail = &rest[i..];
        let end = tail.find(|c: char| !path_char(c)).unwrap_or(tail.len());
        if starts_run {
            out.push(&tail[..end]);
        }
        rest = &tail[end.max(3)..];
    }
    out
}

/// The targets of the relative links in a Markdown text (`[text](target)`), without anchors.
fn markdown_links(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        let tail = &rest[i + 2..];
        let Some(end) = tail.find(')') else { break };
        let target = tail[..end].split('#').next().unwrap_or("");
        let external = target.contains("://") || target.starts_with("mailto:");
        if !target.is_empty() && !external && !target.contains(char::is_whitespace) {
            out.push(target);
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn no_file_refers_outside_the_repository() {
    let mut problems = Vec::new();
    for (rel, text) in text_files() {
        for (n, line) in text.lines().enumerate() {
            for pattern in OUTSIDE.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{}: names {pattern:?}", rel.display(), n + 1));
            }
        }
        let dir = rel.parent().unwrap_or(Path::new(""));
        for path in climbing_paths(&text) {
            if resolve(dir, path).is_none() {
                problems.push(format!("{}: {path:?} climbs out of the repository", rel.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "files refer to places outside the repository; copy what they need into it and point there:\n{}",
        problems.join("\n")
    );
}

#[test]
fn markdown_links_name_files_in_the_repository() {
    let root = workspace();
    let mut problems = Vec::new();
    let mut links = 0;
    for (rel, text) in text_files().into_iter().filter(|(rel, _)| rel.extension().is_some_and(|e| e == "md")) {
        let dir = rel.parent().unwrap_or(Path::new(""));
        for target in markdown_links(&text) {
            links += 1;
            match resolve(dir, target) {
                Some(path) if root.join(&path).exists() => {}
                Some(path) => {
                    problems.push(format!("{}: link {target:?}: {} does not exist", rel.display(), path.display()))
                }
                None => problems.push(format!("{}: link {target:?} climbs out of the repository", rel.display())),
            }
        }
    }
    assert!(links >= 10, "found only {links} relative Markdown links: is the link scanner broken?");
    assert!(problems.is_empty(), "broken Markdown links; fix the path or copy the file in:\n{}", problems.join("\n"));
}

#[test]
fn the_scanners_find_what_they_look_for() {
    assert_eq!(climbing_paths(r#"include_str!("../../x.json") and ./a/../b"#), vec!["../../x.json", "../b"]);
    assert_eq!(resolve(Path::new("a/b"), "../../x"), Some(PathBuf::from("x")));
    assert_eq!(resolve(Path::new("a"), "../../x"), None);
    let md = "see [x](docs/X.md#top), [y](https://e.org/a), [z](../z.md) and [w](#anchor)";
    assert_eq!(markdown_links(md), vec!["docs/X.md", "../z.md"]);
}
