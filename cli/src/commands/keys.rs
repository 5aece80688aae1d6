//! keys generate | list.

use crate::args::{Format, RoleArg};
use crate::error::Result;
use crate::keystore::Keystore;
use crate::output;
use stockpile_ledger::domain::KeyRole;

pub fn generate(keys: &Keystore, id: &str, party: Option<String>, role: RoleArg) -> Result<()> {
    let role = match role {
        RoleArg::Operator => KeyRole::Operator,
        RoleArg::Admin => KeyRole::Admin,
    };
    let (file, path, public) = keys.generate(id, role, party)?;
    println!(
        "generated key {} ({}) in {}; its public half in {}",
        file.key,
        file.public_key,
        path.display(),
        public.display()
    );
    eprintln!(
        "register it with: stockpile register key {} (the ledger's admin needs only {}, never the .key file)",
        public.display(),
        public.display()
    );
    Ok(())
}

pub fn list(keys: &Keystore, format: Format) -> Result<()> {
    let files = keys.list()?;
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|k| {
            vec![
                k.key.clone(),
                format!("{:?}", k.role).to_lowercase(),
                k.party.clone().unwrap_or_default(),
                k.public_key.clone(),
                if k.revoked { "revoked".into() } else { "active".into() },
            ]
        })
        .collect();
    let headers = ["key", "role", "party", "public_key", "status"];
    let mut out = std::io::stdout().lock();
    let r = match format {
        Format::Table => output::table(&mut out, &headers, &rows),
        Format::Csv => output::csv(&mut out, &headers, &rows),
        Format::Json => {
            let v: Vec<serde_json::Value> = files
                .iter()
                .map(|k| serde_json::json!({"key": k.key, "role": k.role, "party": k.party, "public_key": k.public_key, "revoked": k.revoked}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).expect("keys encode"));
            Ok(())
        }
    };
    let _ = r; // a closed pipe is not an error
    Ok(())
}
