//! The README's shell blocks, as a test runs them: a block is the ```sh fence right after an
//! HTML comment line `<!-- test: NAME -->`, so what a test runs is exactly what a reader
//! copies.

use std::path::PathBuf;

/// The workspace root (the README's directory).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// The text of the README's block marked `<!-- test: NAME -->`, without its fences. Panics,
/// naming the marker, when the README has no such block (so a renamed marker fails the test
/// that runs it rather than running nothing).
pub fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md is readable");
    let marker = format!("<!-- test: {name} -->");
    let mut lines = readme.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "README.md has no line {marker:?}");
    let fence = lines.next().unwrap_or_default();
    assert_eq!(fence.trim(), "```sh", "README.md: the line after {marker:?} must open a ```sh block");
    let mut block = String::new();
    for line in lines.by_ref() {
        if line.trim() == "```" {
            return block;
        }
        block.push_str(line);
        block.push('\n');
    }
    panic!("README.md: the block after {marker:?} is never closed");
}
