//! Who may do what on NATS: one NKey user per partner and one per service role, each with
//! publish and subscribe permissions that nats-server enforces (DESIGN.md §6, §7). The
//! permission map is pure data ([`permissions`]), rendered into a server configuration by
//! [`render_config`] (what `stockpile nats-config` writes); [`Identity`] is the client side:
//! a user's seed, and the connect options that authenticate with it.
//!
//! | role | may publish (requests) | may subscribe / read |
//! |---|---|---|
//! | `ledger` | events, feeds, checkpoints, JetStream API (not delete/purge), replies | `stockpile.v1.ledger.>` |
//! | `projector` | `ledger.range`, reports, JetStream API (not delete/purge), acks, replies | `holdings.query` |
//! | `auditor` | `ledger.range`, `ledger.proof`, `holdings.query`, stream info and message reads | `stockpile.v1.>` (never a reply: writes nothing) |
//! | `commission` | its durable consumer `commission` on `STOCKPILE_REPORTS` | every report |
//! | `partner-<P>` | `ledger.append.<P>` (commands signed by its own parties' keys only), `ledger.proof`; its durable consumer `<P>` on `STOCKPILE_FEEDS` (own feed only) and `STOCKPILE_REPORTS` (own reports only) | `stockpile.v1.feed.<P>.>`, `stockpile.v1.checkpoints` |
//!
//! **Replies stay private.** Every user's inbox is `_INBOX.<its public NKey>`, and each may
//! subscribe to its own inbox only, so no user can listen to the answers another one gets.
//! [`Identity::connect_options`] sets that prefix; a client that keeps the default `_INBOX`
//! gets no replies at all.
//!
//! **Consumers are named by their owner.** A partner may create, read and acknowledge only
//! the consumer named by its partner code, and only with its own feed (or its own reports)
//! as filter — nats-server checks the filter in the API subject
//! (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`, the form async-nats uses for a named
//! consumer with one filter). Auditors create no consumers at all (a consumer named after a
//! partner, made by someone else, would be read by that partner): they read streams by
//! sequence and the log through `ledger.range`.

use super::subjects::{
    partner_append_subject, APPEND, APPEND_AS_PARTNER, CHECKPOINTS, EVENTS_SUBJECTS, FEEDS_STREAM, FEEDS_SUBJECTS,
    HOLDINGS_QUERY, PROOF, RANGE, REPORTS_STREAM, REPORTS_SUBJECTS,
};
use std::fmt::Write as _;
use std::path::Path;

/// The durable consumer name the Commission's intake reads reports with.
pub const COMMISSION_CONSUMER: &str = "commission";

/// JetStream API calls no role may make: removing a stream, its messages or its contents.
/// Streams are replicas of the record; nobody edits them.
pub const DESTRUCTIVE_JS_API: [&str; 3] =
    ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"];

/// A NATS user's role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Ledger,
    Projector,
    Auditor,
    Commission,
    /// A partner, by its ISO 3166-1 alpha-2 code.
    Partner(String),
}

impl Role {
    /// The user's name: `ledger`, `projector`, `auditor`, `commission`, `partner-NL`.
    pub fn user(&self) -> String {
        match self {
            Role::Ledger => "ledger".into(),
            Role::Projector => "projector".into(),
            Role::Auditor => "auditor".into(),
            Role::Commission => "commission".into(),
            Role::Partner(code) => format!("partner-{code}"),
        }
    }
}

/// What one user may publish and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// May publish to the reply subject of a request it received (responders only).
    pub allow_responses: bool,
}

/// The inbox prefix of a user: `_INBOX.<public NKey>`.
pub fn inbox_prefix(public_nkey: &str) -> String {
    format!("_INBOX.{public_nkey}")
}

/// The permissions of `role`, whose public NKey is `public_nkey`.
pub fn permissions(role: &Role, public_nkey: &str) -> Permissions {
    let own = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let inbox = format!("{}.>", inbox_prefix(public_nkey));
    let destructive = own(&DESTRUCTIVE_JS_API);
    let consumer = |stream: &str, name: &str, filter: &str| {
        vec![
            format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}"),
            format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
            format!("$JS.ACK.{stream}.{name}.>"),
        ]
    };
    match role {
        Role::Ledger => Permissions {
            publish_allow: own(&[EVENTS_SUBJECTS, FEEDS_SUBJECTS, CHECKPOINTS, "$JS.API.>", "$SRV.>"]),
            publish_deny: destructive,
            subscribe_allow: own(&["stockpile.v1.ledger.>", "$SRV.>", &inbox]),
            allow_responses: true,
        },
        Role::Projector => Permissions {
            publish_allow: own(&[RANGE, REPORTS_SUBJECTS, "$JS.API.>", "$JS.ACK.>", "$SRV.>"]),
            publish_deny: destructive,
            subscribe_allow: own(&[HOLDINGS_QUERY, "$SRV.>", &inbox]),
            allow_responses: true,
        },
        Role::Auditor => Permissions {
            publish_allow: own(&[
                RANGE,
                PROOF,
                HOLDINGS_QUERY,
                "$JS.API.INFO",
                "$JS.API.STREAM.NAMES",
                "$JS.API.STREAM.LIST",
                "$JS.API.STREAM.INFO.*",
                "$JS.API.STREAM.MSG.GET.*",
                "$SRV.>",
            ]),
            publish_deny: own(&[APPEND, APPEND_AS_PARTNER]),
            subscribe_allow: own(&["stockpile.v1.>", &inbox]),
            allow_responses: false,
        },
        Role::Commission => Permissions {
            publish_allow: consumer(REPORTS_STREAM, COMMISSION_CONSUMER, REPORTS_SUBJECTS),
            publish_deny: Vec::new(),
            subscribe_allow: vec![inbox],
            allow_responses: false,
        },
        Role::Partner(code) => {
            let feed = format!("stockpile.v1.feed.{code}.>");
            let reports = format!("stockpile.v1.reports.*.{code}");
            // Proofs carry hashes only: a partner checks its feed's records are in the
            // signed log without seeing anyone else's.
            let mut publish_allow = vec![partner_append_subject(code), PROOF.to_string()];
            publish_allow.extend(consumer(FEEDS_STREAM, code, &feed));
            publish_allow.extend(consumer(REPORTS_STREAM, code, &reports));
            Permissions {
                publish_allow,
                publish_deny: Vec::new(),
                subscribe_allow: vec![feed, CHECKPOINTS.to_string(), inbox],
                allow_responses: false,
            }
        }
    }
}

/// A nats-server configuration with `users` (role, public NKey) and their permissions;
/// JetStream on with its store in `store_dir`, listening on `listen` (`host:port`).
pub fn render_config(users: &[(Role, String)], listen: &str, store_dir: &Path) -> String {
    let quoted = |items: &[String]| items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    let _ = writeln!(out, "# nats-server configuration for a stockpile ledger, written by `stockpile nats-config`.");
    let _ = writeln!(out, "# One NKey user per partner and per service role; see docs/PARTNERS.md, \"Access\".");
    let _ = writeln!(out, "listen: {listen:?}");
    let _ = writeln!(out, "jetstream {{\n  store_dir: {:?}\n}}", store_dir.display().to_string());
    let _ = writeln!(out, "authorization {{\n  users = [");
    for (role, nkey) in users {
        let p = permissions(role, nkey);
        let _ = writeln!(out, "    # {}", role.user());
        let _ = writeln!(out, "    {{");
        let _ = writeln!(out, "      nkey: {nkey:?}");
        let _ = writeln!(out, "      permissions: {{");
        let _ = write!(out, "        publish: {{ allow: [{}]", quoted(&p.publish_allow));
        if !p.publish_deny.is_empty() {
            let _ = write!(out, ", deny: [{}]", quoted(&p.publish_deny));
        }
        let _ = writeln!(out, " }}");
        let _ = writeln!(out, "        subscribe: {{ allow: [{}] }}", quoted(&p.subscribe_allow));
        if p.allow_responses {
            let _ = writeln!(out, "        allow_responses: true");
        }
        let _ = writeln!(out, "      }}");
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "  ]\n}}");
    out
}

/// Why an NKey seed file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the NKey seed file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} does not hold a user NKey seed (one line starting with SU): {reason}")]
    Invalid { path: String, reason: String },
}

/// A NATS user: its NKey seed and public key.
#[derive(Clone)]
pub struct Identity {
    seed: String,
    public: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        f.debug_struct("Identity").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Identity {
    /// A new user key pair.
    pub fn generate() -> Identity {
        let pair = nkeys::KeyPair::new_user();
        Identity { seed: pair.seed().expect("a generated pair has its seed"), public: pair.public_key() }
    }

    /// Reads a seed file (as `stockpile nats-config` writes them).
    pub fn from_file(path: &Path) -> Result<Identity, IdentityError> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| IdentityError::Read { path: name.clone(), source })?;
        let seed = text.trim();
        if !seed.starts_with("SU") {
            return Err(IdentityError::Invalid { path: name, reason: "not a user seed".into() });
        }
        let pair = nkeys::KeyPair::from_seed(seed)
            .map_err(|e| IdentityError::Invalid { path: name, reason: e.to_string() })?;
        Ok(Identity { seed: seed.to_string(), public: pair.public_key() })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The seed, to write into the user's file; never log it.
    pub fn seed(&self) -> &str {
        &self.seed
    }

    /// Authenticates `options` as this user, with its private inbox prefix.
    pub fn connect_options(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        options.nkey(self.seed.clone()).custom_inbox_prefix(inbox_prefix(&self.public))
    }
}

/// `options` authenticated as `identity`, or unchanged when there is none.
pub fn authenticate(options: async_nats::ConnectOptions, identity: Option<&Identity>) -> async_nats::ConnectOptions {
    match identity {
        Some(identity) => identity.connect_options(options),
        None => options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_get_their_own_feed_reports_and_inbox_only() {
        let p = permissions(&Role::Partner("NL".into()), "UNL");
        assert_eq!(p.publish_allow[0], "stockpile.v1.ledger.append.NL");
        assert!(p.publish_allow.contains(&"$JS.API.CONSUMER.CREATE.STOCKPILE_FEEDS.NL.stockpile.v1.feed.NL.>".into()));
        assert!(p
            .publish_allow
            .contains(&"$JS.API.CONSUMER.CREATE.STOCKPILE_REPORTS.NL.stockpile.v1.reports.*.NL".into()));
        assert!(p.publish_allow.iter().all(|s| !s.contains("DE") && !s.contains("EVENTS") && !s.contains("MSG.GET")));
        assert_eq!(p.subscribe_allow, ["stockpile.v1.feed.NL.>", "stockpile.v1.checkpoints", "_INBOX.UNL.>"]);
        assert!(!p.allow_responses);
        let auditor = permissions(&Role::Auditor, "UA");
        assert!(
            !auditor.allow_responses
                && auditor.publish_deny == ["stockpile.v1.ledger.append", "stockpile.v1.ledger.append.*"]
        );
        assert!(auditor.publish_allow.iter().all(|s| !s.contains("CONSUMER") && !s.contains("STOCKPILE_")));
    }

    #[test]
    fn the_rendered_config_names_every_user_once() {
        let users = vec![(Role::Ledger, "UL".to_string()), (Role::Partner("DE".into()), "UDE".to_string())];
        let text = render_config(&users, "127.0.0.1:4222", Path::new("/var/lib/nats"));
        assert_eq!(text.matches("nkey: ").count(), 2);
        assert!(text.contains("nkey: \"UDE\""));
        assert!(text.contains("\"stockpile.v1.feed.DE.>\", \"stockpile.v1.checkpoints\", \"_INBOX.UDE.>\""));
        assert!(text.contains("deny: [\"$JS.API.STREAM.DELETE.>\""));
    }
}
