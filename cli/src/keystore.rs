//! Key files: one JSON file per key in the keys directory, created with mode 0600. The secret
//! never leaves the file except into the signer; it is never printed or logged.

use crate::error::{operational, usage, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use stockpile_ledger::domain::{KeyId, KeyRole};
use stockpile_ledger::signing::OperatorKey;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub key: String,
    pub role: KeyRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    pub public_key: String,
    secret_key: String,
    #[serde(default)]
    pub revoked: bool,
}

impl KeyFile {
    pub fn signer(&self) -> Result<OperatorKey> {
        let bytes: [u8; 32] = hex::decode(&self.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| usage(format!("key file for {} has a malformed secret_key", self.key)))?;
        Ok(OperatorKey::from_secret(KeyId::new(self.key.as_str()), bytes))
    }
}

pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    pub fn new(dir: &Path) -> Keystore {
        Keystore { dir: dir.to_path_buf() }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// Creates a new key file; refuses to overwrite an existing one.
    pub fn generate(&self, id: &str, role: KeyRole, party: Option<String>) -> Result<(KeyFile, PathBuf)> {
        stockpile_ledger::domain::ids::check_id("key id", id).map_err(|e| usage(e.to_string()))?;
        if role == KeyRole::Operator && party.is_none() {
            return Err(usage("an operator key needs --party"));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| operational(format!("create {}: {e}", self.dir.display())))?;
        let signer = OperatorKey::generate(KeyId::new(id));
        let file = KeyFile {
            key: id.to_string(),
            role,
            party,
            public_key: signer.public_key_hex(),
            secret_key: hex::encode(signer.secret_bytes()),
            revoked: false,
        };
        let path = self.path(id);
        write_private(&path, &file, true)?;
        Ok((file, path))
    }

    /// Loads a key by id (from the keys directory) or by path.
    pub fn load(&self, id_or_path: &str) -> Result<KeyFile> {
        let path = if id_or_path.contains('/') || id_or_path.ends_with(".key") {
            PathBuf::from(id_or_path)
        } else {
            self.path(id_or_path)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            usage(format!("cannot read key {}: {e}: generate it with `stockpile keys generate`", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| usage(format!("key file {} is malformed: {e}", path.display())))
    }

    pub fn list(&self) -> Result<Vec<KeyFile>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(operational(format!("read {}: {e}", self.dir.display()))),
        };
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "key") {
                keys.push(self.load(&path.to_string_lossy())?);
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }

    /// The key to sign with: `explicit` if given, else the only usable key of `party`
    /// (or the admin key when `party` is `None`).
    pub fn select(&self, explicit: Option<&str>, party: Option<&str>) -> Result<OperatorKey> {
        if let Some(k) = explicit {
            return self.load(k)?.signer();
        }
        let keys = self.list()?;
        let found = keys.iter().find(|k| {
            !k.revoked
                && match party {
                    Some(p) => k.party.as_deref() == Some(p),
                    None => k.role == KeyRole::Admin,
                }
        });
        match found {
            Some(k) => k.signer(),
            None => Err(usage(match party {
                Some(p) => format!(
                    "no key for party {p} in {}: generate one with `stockpile keys generate --id {p}-ops --party {p}` and register it, or pass --key",
                    self.dir.display()
                ),
                None => format!("no admin key in {}: run `stockpile init` or pass --key", self.dir.display()),
            })),
        }
    }

    pub fn mark_revoked(&self, id: &str) -> Result<()> {
        let mut file = self.load(id)?;
        file.revoked = true;
        write_private(&self.path(id), &file, false)
    }
}

fn write_private(path: &Path, file: &KeyFile, create_new: bool) -> Result<()> {
    let text = serde_json::to_string_pretty(file).expect("key file encodes");
    write_secret(path, text.as_bytes(), create_new)
}

/// Writes a secret to `path`, created with mode 0600 (`create_new`: refusing an existing
/// file), and syncs it.
pub fn write_secret(path: &Path, bytes: &[u8], create_new: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if create_new {
        options.create_new(true);
    } else {
        options.truncate(true);
    }
    let mut f = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            usage(format!("{} already exists: remove it or write elsewhere", path.display()))
        }
        _ => operational(format!("write {}: {e}", path.display())),
    })?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| operational(format!("write {}: {e}", path.display())))
}
