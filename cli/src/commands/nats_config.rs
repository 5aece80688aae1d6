//! `stockpile nats-config`: writes a nats-server configuration of accounts — `STOCKPILE`
//! (the streams and services, users `ledger`, `ledger-publisher`, `projector`,
//! `projector-publisher`) and one account per partner, the Commission, the auditor and
//! `ADMIN`, each importing what it may use — and each user's NKey seed in a file of its own
//! (mode 0600). The map is [`stockpile_ledger::service::access`]'s.

use crate::error::{operational, usage, Result};
use crate::keystore::write_secret;
use std::path::{Path, PathBuf};
use stockpile_ledger::domain::reference::Reference;
use stockpile_ledger::domain::Country;
use stockpile_ledger::service::access::{render_config, Identity, PartnerWitness, Role};

/// The configuration file's name in the output directory.
pub const CONFIG_FILE: &str = "nats-server.conf";
/// The directory of seed files in the output directory: `users/<user>.nk`.
pub const USERS_DIR: &str = "users";

pub fn run(
    out: &Path,
    partners: &[String],
    witnesses: &[String],
    listen: &str,
    store_dir: Option<&Path>,
) -> Result<()> {
    let partners = partner_codes(partners)?;
    let witnesses = witnesses.iter().map(|w| partner_witness(w, &partners)).collect::<Result<Vec<_>>>()?;
    distinct_subjects(&witnesses)?;
    let partners_list = partners.join(",");
    let config_path = out.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(usage(format!("{} already exists: remove it or choose another --out", config_path.display())));
    }
    let users_dir = out.join(USERS_DIR);
    std::fs::create_dir_all(&users_dir).map_err(|e| operational(format!("create {}: {e}", users_dir.display())))?;
    let roles = Role::all(&partners);
    let mut users = Vec::with_capacity(roles.len());
    let mut files: Vec<(String, PathBuf)> = Vec::with_capacity(roles.len());
    for role in roles {
        let identity = Identity::generate();
        let path = users_dir.join(format!("{}.nk", role.user()));
        write_secret(&path, format!("{}\n", identity.seed()).as_bytes(), true)?;
        files.push((role.user(), path));
        users.push((role, identity.public_key().to_string()));
    }
    let store = store_dir.map_or_else(|| out.join("jetstream"), Path::to_path_buf);
    let text = render_config(&users, &witnesses, listen, &store);
    std::fs::write(&config_path, text).map_err(|e| operational(format!("write {}: {e}", config_path.display())))?;
    println!("wrote {}", config_path.display());
    for (user, path) in &files {
        println!("  {user:<20} {}", path.display());
    }
    eprintln!("start the server with: nats-server -c {}", config_path.display());
    eprintln!(
        "start the ledger with --nkey {0}/ledger.nk --publisher-nkey {0}/ledger-publisher.nk --partners {1}",
        users_dir.display(),
        partners_list
    );
    eprintln!("connect as a user with --nats-nkey <its .nk file>; bootstrap the ledger as admin (docs/PARTNERS.md, \"Access\")");
    Ok(())
}

/// `P=NAME`: partner `P` (one of `partners`) runs the witness named `NAME`.
fn partner_witness(spec: &str, partners: &[String]) -> Result<PartnerWitness> {
    let (code, name) = spec
        .split_once('=')
        .ok_or_else(|| usage(format!("--witness {spec:?}: write P=NAME, e.g. NL=witness.nl/w1")))?;
    let code = code.trim().to_ascii_uppercase();
    if !partners.contains(&code) {
        return Err(usage(format!("--witness {spec:?}: {code} is not among --partners ({})", partners.join(","))));
    }
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
        return Err(usage(format!("--witness {spec:?}: NAME is the witness's key name (no spaces, no '+')")));
    }
    Ok(PartnerWitness { partner: code, name: name.to_string() })
}

/// Refuses two witnesses whose names map to one subject token (`witness.nl/w1` and
/// `witness_nl_w1` both serve `stockpile.v1.witness.witness_nl_w1.add-checkpoint`):
/// nats-server would refuse the whole configuration ("Duplicate service import subject").
fn distinct_subjects(witnesses: &[PartnerWitness]) -> Result<()> {
    for (i, a) in witnesses.iter().enumerate() {
        if let Some(b) = witnesses[..i].iter().find(|b| b.subject() == a.subject()) {
            return Err(usage(format!(
                "--witness {}={} and --witness {}={} both map to the subject {} (a subject token keeps only letters, digits, '-' and '_'): rename one of the witnesses",
                b.partner,
                b.name,
                a.partner,
                a.name,
                a.subject()
            )));
        }
    }
    Ok(())
}

/// The partners named (upper-cased, checked against the reference list), or every
/// reference partner when none is named.
fn partner_codes(named: &[String]) -> Result<Vec<String>> {
    let reference = Reference::get();
    if named.is_empty() {
        return Ok(reference.partners().map(|p| p.code.to_string()).collect());
    }
    let mut codes = Vec::with_capacity(named.len());
    for code in named {
        let upper = code.trim().to_ascii_uppercase();
        if reference.partner(&Country::new(&upper)).is_none() {
            return Err(usage(format!(
                "{code:?} is not a partner of the reference list (ISO 3166-1 alpha-2, e.g. NL, DE, GR): see schemas/reference"
            )));
        }
        if !codes.contains(&upper) {
            codes.push(upper);
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witnesses(specs: &[&str]) -> Vec<PartnerWitness> {
        let partners = vec!["NL".to_string(), "DE".to_string()];
        specs.iter().map(|s| partner_witness(s, &partners).expect("a valid --witness")).collect()
    }

    #[test]
    fn witnesses_whose_names_map_to_one_subject_are_refused_naming_both() {
        let clash = witnesses(&["NL=witness.nl/w1", "DE=witness.de/w1", "DE=witness_nl_w1"]);
        let e = distinct_subjects(&clash).expect_err("two names, one subject").to_string();
        assert!(e.contains("NL=witness.nl/w1") && e.contains("DE=witness_nl_w1"), "names both: {e}");
        assert!(e.contains("stockpile.v1.witness.witness_nl_w1.add-checkpoint"), "names the subject: {e}");
        assert!(!e.contains("witness.de/w1"), "not the witness that does not clash: {e}");
        assert!(matches!(distinct_subjects(&clash), Err(crate::error::CliError::Usage(_))), "a usage error");
    }

    #[test]
    fn witnesses_with_distinct_subjects_pass() {
        distinct_subjects(&witnesses(&["NL=witness.nl/w1", "DE=witness.de/w1", "NL=witness.nl/w2"]))
            .expect("distinct subjects");
    }
}
