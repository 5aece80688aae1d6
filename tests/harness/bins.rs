//! The workspace's binaries, built once per test run.
//!
//! `cargo test --workspace` does not promise to build other packages' binaries before this
//! package's tests run, so the first test that needs one builds them with the same cargo and
//! profile and every later test reuses the result.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of a workspace binary (`stockpile`, `stockpile-ledger`, `stockpile-projector`).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(build).as_ref().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built; is {name} a binary of this workspace?", path.display());
    path
}

fn build() -> Result<PathBuf, String> {
    // target/<profile>/deps/<test-exe> → target/<profile>
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe.parent().and_then(|p| p.parent()).ok_or("test executable has no target dir")?.to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--bins", "--workspace", "--quiet"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo to build the binaries: {e}"))?;
    if !status.success() {
        return Err(format!("building the workspace binaries failed ({status})"));
    }
    Ok(profile_dir)
}

/// `stockpile --data <dir>/data --keys <dir>/keys ARGS` in the embedded mode, without colour
/// and without a NATS URL from the environment; its output.
pub fn stockpile_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("stockpile"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKPILE_NATS_URL")
        .output()
        .expect("run stockpile")
}

/// `stockpile nats-config --out <dir>/nats --partners PARTNERS --store-dir <dir>/jetstream`
/// in `dir` (the accounts configuration, users' seeds in `nats/users/`); the `nats` directory.
pub fn nats_config(dir: &std::path::Path, partners: &str) -> std::path::PathBuf {
    let (conf, store) = (dir.join("nats"), dir.join("jetstream"));
    let (conf_str, store_str) = (conf.to_str().expect("UTF-8 temp path"), store.to_str().expect("UTF-8 temp path"));
    let written =
        stockpile_in(dir, &["nats-config", "--out", conf_str, "--partners", partners, "--store-dir", store_str]);
    assert!(written.status.success(), "nats-config: {}", String::from_utf8_lossy(&written.stderr));
    conf
}
