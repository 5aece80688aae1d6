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

/// The public half of a key, `<KEYS>/<id>.pub` (mode 0644): what a partner sends the
/// ledger's admin to register (`stockpile register key <file>.pub`), so no one but the
/// key's holder ever has its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    pub key: String,
    pub role: KeyRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    pub public_key: String,
}

impl KeyFile {
    /// The part of this key that may be shown and sent.
    pub fn public(&self) -> PublicKeyFile {
        PublicKeyFile {
            key: self.key.clone(),
            role: self.role,
            party: self.party.clone(),
            public_key: self.public_key.clone(),
        }
    }

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

    /// Creates a new key file (0600) and its public half `<id>.pub` (0644); refuses to
    /// overwrite an existing one. Returns the paths of both.
    pub fn generate(&self, id: &str, role: KeyRole, party: Option<String>) -> Result<(KeyFile, PathBuf, PathBuf)> {
        let file = self.new_key(id, role, party)?;
        let path = self.path(id);
        write_private(&path, &file, true)?;
        let public = self.dir.join(format!("{id}.pub"));
        let mut text = serde_json::to_string_pretty(&file.public()).expect("public keys encode");
        text.push('\n');
        std::fs::write(&public, text).map_err(|e| operational(format!("write {}: {e}", public.display())))?;
        Ok((file, path, public))
    }

    /// A new key for an operation that may fail (`init`): its file appears under its id only
    /// when [`PendingKey::keep`] is called after the operation succeeded, so a failed one
    /// leaves nothing behind and can be retried.
    pub fn generate_pending(&self, id: &str, role: KeyRole, party: Option<String>) -> Result<PendingKey> {
        let file = self.new_key(id, role, party)?;
        let path = self.path(id);
        if path.exists() {
            return Err(usage(format!("{} already exists: remove it or choose another key id", path.display())));
        }
        let pending = self.dir.join(format!(".{id}.key.pending-{:08x}", rand::random::<u32>()));
        write_private(&pending, &file, true)?;
        Ok(PendingKey { file, pending, path, settled: false })
    }

    fn new_key(&self, id: &str, role: KeyRole, party: Option<String>) -> Result<KeyFile> {
        stockpile_ledger::domain::ids::check_id("key id", id).map_err(|e| usage(e.to_string()))?;
        if role == KeyRole::Operator && party.is_none() {
            return Err(usage("an operator key needs --party"));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| operational(format!("create {}: {e}", self.dir.display())))?;
        let signer = OperatorKey::generate(KeyId::new(id));
        Ok(KeyFile {
            key: id.to_string(),
            role,
            party,
            public_key: signer.public_key_hex(),
            secret_key: hex::encode(signer.secret_bytes()),
            revoked: false,
        })
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

    /// The public half of a key to register: a key file or a `.pub` file, by id (from the
    /// keys directory: `<id>.key`, else `<id>.pub`) or by path.
    /// Also says whether it came from a `.pub` file, i.e. from someone else: its role and
    /// party are then claims the registering admin must confirm.
    pub fn load_public(&self, id_or_path: &str) -> Result<(PublicKeyFile, bool)> {
        let by_path = id_or_path.contains('/') || id_or_path.ends_with(".key") || id_or_path.ends_with(".pub");
        // By id: this keystore's own `.key` (a key this operator made), else a `.pub` kept here.
        let path = match by_path {
            true => PathBuf::from(id_or_path),
            false if self.path(id_or_path).is_file() => return Ok((self.load(id_or_path)?.public(), false)),
            false => self.dir.join(format!("{id_or_path}.pub")),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            usage(format!(
                "cannot read key {}: {e}: the key's holder makes it with `stockpile keys generate` and sends you its .pub file",
                path.display()
            ))
        })?;
        if let Ok(public) = serde_json::from_str::<PublicKeyFile>(&text) {
            return Ok((public, true));
        }
        let file: KeyFile =
            serde_json::from_str(&text).map_err(|e| usage(format!("key file {} is malformed: {e}", path.display())))?;
        Ok((file.public(), false))
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

/// A generated key written (0600, synced) to a hidden file beside its final place, so the
/// secret is on disk before the ledger can name its public key. Dropped without
/// [`keep`](PendingKey::keep), the file is removed.
pub struct PendingKey {
    pub file: KeyFile,
    pending: PathBuf,
    path: PathBuf,
    /// Kept, or left for the operator to move: either way, not removed on drop.
    settled: bool,
}

impl PendingKey {
    /// Moves the key file under its id (never over another file) and returns its path. If
    /// that fails the hidden file stays, and the error says where it is.
    pub fn keep(mut self) -> Result<PathBuf> {
        self.settled = true;
        let moved = std::fs::hard_link(&self.pending, &self.path).and_then(|()| std::fs::remove_file(&self.pending));
        moved.map_err(|e| {
            operational(format!(
                "the key was used but could not be moved from {} to {}: {e}; move it there yourself (it holds the secret)",
                self.pending.display(),
                self.path.display()
            ))
        })?;
        Ok(self.path.clone())
    }
}

impl Drop for PendingKey {
    fn drop(&mut self) {
        if !self.settled {
            let _ = std::fs::remove_file(&self.pending);
        }
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
