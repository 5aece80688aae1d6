//! Operational failures of the `stockpile` binary: a panic on any thread is exit 2 with one
//! clear line, and a failed `init` leaves no key behind, so the retry is the same command.

use std::process::Command;
use stockpile_tests::bins::{binary, stockpile_in};

#[test]
fn a_panic_on_another_thread_is_an_operational_error_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    // STOCKPILE_TEST_PANIC exists in debug builds only (the ones these tests run).
    let out = Command::new(binary("stockpile"))
        .args(["--data"])
        .arg(tmp.path().join("data"))
        .args(["list", "materials"])
        .env("NO_COLOR", "1")
        .env("STOCKPILE_TEST_PANIC", "sled: simulated read failure")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "the command did not run");
    assert!(stderr.starts_with("error: internal failure: sled: simulated read failure (at "), "{stderr}");
    assert!(stderr.contains("then retry") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_refused_init_leaves_no_key_and_the_retry_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The ledger refuses an empty name after the admin key was generated and signed with.
    let out = stockpile_in(dir, &["init", "--ledger", ""]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<_> =
        std::fs::read_dir(dir.join("keys")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a refused init left {left:?} behind");
    let out = stockpile_in(dir, &["init", "--ledger", "test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keys: Vec<_> = std::fs::read_dir(dir.join("keys")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(keys, vec![std::ffi::OsString::from("admin.key")]);
}
