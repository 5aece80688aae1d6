//! The real `stockpile-ledger` binary: killed with SIGKILL in the middle of a stream of
//! appends, restarted over the same data directory. Every acknowledged command survived
//! (resending it returns its seq), the stream ends equal to the log read back through
//! `ledger.range`, and SIGTERM stops the binary cleanly. And a binary whose log cannot grow
//! (a file-size limit) answers the failed request with the cause, exits 1 by itself, and
//! restarts with everything it acknowledged and nothing else.

use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stockpile_tests::nats::NatsServer;

/// Commands per request of the background appender.
const PER_REQUEST: usize = 5;
/// Requests the appender sends at most.
const REQUESTS_MAX: usize = 400;
/// Acknowledged requests before the kill.
const KILL_AFTER: usize = 30;

/// `target/<profile>/stockpile-ledger`, next to this test's `deps/` directory. Cargo builds
/// it for `cargo test --workspace` (or `cargo build -p stockpile-ledger --bins`), not for a
/// test of this package alone.
pub(super) fn ledger_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("stockpile-ledger"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the stockpile-ledger binary was not found near {}: build it with `cargo build -p stockpile-ledger --bins` (cargo test --workspace builds it)",
                exe.display()
            )
        })
}

/// A running `stockpile-ledger serve`; killed on drop, its log printed if the test fails.
pub(super) struct LedgerProcess {
    child: Child,
    log: PathBuf,
}

impl LedgerProcess {
    pub(super) fn spawn(nats_url: &str, data: &Path, log: &Path) -> LedgerProcess {
        LedgerProcess::spawn_with(nats_url, data, log, &[])
    }

    /// [`Self::spawn`] with more arguments to `serve`.
    pub(super) fn spawn_with(nats_url: &str, data: &Path, log: &Path, more: &[&std::ffi::OsStr]) -> LedgerProcess {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the log");
        let child = Command::new(ledger_binary())
            .args(["serve", "--nats", nats_url, "--data"])
            .arg(data)
            .args(more)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run stockpile-ledger");
        LedgerProcess { child, log: log.to_path_buf() }
    }

    /// [`Self::spawn`] with every file the process writes limited to `bytes` (`RLIMIT_FSIZE`,
    /// what `ulimit -f` sets): a write past it fails with `EFBIG`, as a full disk fails one.
    pub(super) fn spawn_with_file_size_limit(nats_url: &str, data: &Path, log: &Path, bytes: u64) -> LedgerProcess {
        use std::os::unix::process::CommandExt;
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the log");
        let mut command = Command::new(ledger_binary());
        command
            .args(["serve", "--nats", nats_url, "--data"])
            .arg(data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: between fork and exec the closure only calls setrlimit, which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let child = command.spawn().expect("run stockpile-ledger");
        LedgerProcess { child, log: log.to_path_buf() }
    }

    /// SIGKILL, and waits for the exit.
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (SIGSTOP, SIGCONT: a paused machine).
    pub(super) fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "send signal {signal}");
    }

    /// The exit status once the process has ended by itself, waiting at most `bound`.
    pub(super) fn wait_for_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the process is still running (not exited by itself or killed).
    pub(super) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// What the process has logged so far.
    pub(super) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub(super) fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "send SIGTERM");
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "stockpile-ledger did not exit within {CATCH_UP_TIMEOUT:?} of SIGTERM");
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- stockpile-ledger log {}:\n{tail}\n---", self.log.display());
        }
    }
}

/// A nats-server and the `stockpile-ledger` binary serving over it on a fresh data
/// directory, with the test world set up. Fields drop in order: the process first.
pub(super) struct BinaryLedger {
    pub process: LedgerProcess,
    pub client: async_nats::Client,
    pub nats: NatsServer,
    pub data: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl BinaryLedger {
    pub(super) async fn start() -> BinaryLedger {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, log) = (dir.path().join("data"), dir.path().join("stockpile-ledger.log"));
        let process = LedgerProcess::spawn(&nats.url(), &data, &log);
        let client = client(&nats.url()).await;
        wait_until_serving(&client).await;
        append(&client, setup_commands(&World::new()), true).await;
        BinaryLedger { process, client, nats, data, log, _dir: dir }
    }

    /// Starts the binary again over the same data directory (the last one must be dead)
    /// and waits until it serves.
    pub(super) async fn respawn(&mut self) {
        self.process = LedgerProcess::spawn(&self.nats.url(), &self.data, &self.log);
        wait_until_serving(&self.client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_killed_mid_stream_restarts_and_the_stream_equals_the_log() {
    let mut ledger = BinaryLedger::start().await;
    let client = ledger.client.clone();
    let world = World::new();

    // A stream of appends in the background; the process dies in the middle of it.
    let acked = Arc::new(AtomicUsize::new(0));
    let appender = tokio::spawn({
        let (client, acked) = (client.clone(), acked.clone());
        async move {
            let world = World::new();
            let mut done: Vec<(usize, Vec<u64>)> = Vec::new();
            for i in 0..REQUESTS_MAX {
                let body = AppendRequest { commands: acquires(&world, i * PER_REQUEST, PER_REQUEST), atomic: false };
                let sent = client.request(subjects::APPEND, serde_json::to_vec(&body).expect("encode").into());
                let Ok(Ok(reply)) = tokio::time::timeout(REPLY_TIMEOUT, sent).await else { break };
                let Ok(reply) = serde_json::from_slice::<AppendReply>(&reply.payload) else { break };
                done.push((i, reply.results.iter().map(seq_of).collect()));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            done
        }
    });
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the appender did not get {KILL_AFTER} replies in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::block_in_place(|| ledger.process.kill());
    let done = appender.await.expect("the appender");
    assert!(done.len() >= KILL_AFTER && done.len() < REQUESTS_MAX, "killed mid-stream ({} acked)", done.len());

    ledger.respawn().await;
    // Everything acknowledged before the kill is there: a resend returns the same seqs.
    for (i, seqs) in &done {
        let again = append(&client, acquires(&world, i * PER_REQUEST, PER_REQUEST), false).await;
        assert!(again.iter().all(|r| matches!(r, AppendResult::Duplicate { .. })), "request {i}: {again:?}");
        assert_eq!(&again.iter().map(seq_of).collect::<Vec<_>>(), seqs, "request {i} kept its seqs");
    }
    append(&client, acquires(&world, 10_000, 50), false).await;

    let records = records_via_range(&client).await;
    check_stream_mirrors(&client, &records).await;
    let status = tokio::task::block_in_place(|| ledger.process.terminate());
    assert!(status.success(), "stockpile-ledger exits 0 on SIGTERM: {status}");
    let text = std::fs::read_to_string(&ledger.log).expect("the log");
    assert!(text.contains("ledger stopped"), "a clean shutdown is logged");
}

/// Bytes any file of the ledger may grow to in the next test: the record log reaches it
/// after some 1,500 records; sled's and the Merkle nodes' files stay far below.
const FILE_SIZE_LIMIT_BYTES: u64 = 2 << 20;
/// Commands per request in the next test.
const PER_FILLING_REQUEST: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_whose_log_cannot_grow_stops_and_exits_and_its_restart_holds_all_it_acknowledged() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, log) = (dir.path().join("data"), dir.path().join("stockpile-ledger.log"));
    let mut process = LedgerProcess::spawn_with_file_size_limit(&nats.url(), &data, &log, FILE_SIZE_LIMIT_BYTES);
    let client = client(&nats.url()).await;
    wait_until_serving(&client).await;
    let world = World::new();
    append(&client, setup_commands(&world), true).await;

    // Requests until one is not acknowledged: the commit that meets the limit fails.
    let mut done: Vec<(usize, Vec<u64>)> = Vec::new();
    let mut refused = None;
    for i in 0.. {
        assert!(i < 1_000, "the log never met its size limit");
        let body =
            AppendRequest { commands: acquires(&world, i * PER_FILLING_REQUEST, PER_FILLING_REQUEST), atomic: false };
        let sent = client.request(subjects::APPEND, serde_json::to_vec(&body).expect("encode").into());
        let reply = match tokio::time::timeout(REPLY_TIMEOUT, sent).await {
            Ok(Ok(reply)) => reply.payload.to_vec(),
            other => {
                refused = Some((i, format!("no reply: {other:?}")));
                break;
            }
        };
        match serde_json::from_slice::<AppendReply>(&reply) {
            Ok(reply) => done.push((i, reply.results.iter().map(seq_of).collect())),
            Err(_) => {
                refused = Some((i, String::from_utf8_lossy(&reply).into_owned()));
                break;
            }
        }
    }
    let (failed, answer) = refused.expect("a request was refused");
    assert!(done.len() > 10, "too few requests before the limit to prove anything: {}", done.len());
    assert!(answer.contains("File too large"), "the failed request is told why: {answer}");

    // The service stops by itself, with the cause, for its supervisor to restart it.
    let status = tokio::task::block_in_place(|| process.wait_for_exit(CATCH_UP_TIMEOUT))
        .unwrap_or_else(|| panic!("the ledger kept running after a failed commit: {}", process.log_text()));
    assert!(!status.success(), "a failed ledger exits non-zero: {status}");
    assert!(process.log_text().contains("File too large"), "the exit names the cause: {}", process.log_text());

    // Restarted without the limit: everything acknowledged is there at its seqs, the failed
    // request goes through, and the stream is a copy of the log.
    process = LedgerProcess::spawn(&nats.url(), &data, &log);
    wait_until_serving(&client).await;
    for (i, seqs) in &done {
        let again = append(&client, acquires(&world, i * PER_FILLING_REQUEST, PER_FILLING_REQUEST), false).await;
        assert!(again.iter().all(|r| matches!(r, AppendResult::Duplicate { .. })), "request {i}: {again:?}");
        assert_eq!(&again.iter().map(seq_of).collect::<Vec<_>>(), seqs, "request {i} kept its seqs");
    }
    let last = done.last().and_then(|(_, seqs)| seqs.last().copied()).expect("acknowledged seqs");
    let retried = append(&client, acquires(&world, failed * PER_FILLING_REQUEST, PER_FILLING_REQUEST), false).await;
    assert!(retried.iter().all(|r| matches!(r, AppendResult::Appended { .. })), "the failed request: {retried:?}");
    assert_eq!(seq_of(&retried[0]), last + 1, "nothing of the failed commit stayed in the log");
    let records = records_via_range(&client).await;
    check_stream_mirrors(&client, &records).await;
    let status = tokio::task::block_in_place(|| process.terminate());
    assert!(status.success(), "stockpile-ledger exits 0 on SIGTERM: {status}");
}
