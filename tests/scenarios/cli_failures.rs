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

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8) syntax) at `path`; `None` where mounting is not
    /// allowed (not root, no CAP_SYS_ADMIN).
    fn mount(path: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs { path: path.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// A real I/O failure, not the debug trigger: the data directory's disk fills up under the
/// ledger (ENOSPC on a small tmpfs). The command ends with exit 2 and one clear line, not a
/// panic's exit 101, and the ledger still opens afterwards with what it had acknowledged.
#[test]
fn a_full_disk_under_the_ledger_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(disk) = Tmpfs::mount(&dir.join("data"), "16m") else {
        // Without the right to mount, the panic path is covered by the debug trigger above.
        eprintln!("cannot mount a tmpfs here (not root?): the full-disk case is not exercised");
        return;
    };
    let out = stockpile_in(dir, &["init", "--ledger", "test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Fill what is left of the disk.
    let mut filler = std::fs::File::create(disk.path.join("filler")).unwrap();
    let block = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let party = ["register", "party", "nl-mod", "--partner", "NL", "--name", "Defensie", "--holder-type", "private"];
    let out = stockpile_in(dir, &party);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a full disk is an operational error: {stderr}");
    assert!(stderr.starts_with("error: ") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "the message names the cause: {stderr}");
    // Room again: the ledger opens with its genesis and takes the command.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let out = stockpile_in(dir, &party);
    assert!(out.status.success(), "after the disk has room: {}", String::from_utf8_lossy(&out.stderr));
}
