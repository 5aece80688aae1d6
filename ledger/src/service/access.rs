//! Who may do what on NATS (DESIGN.md §6, §7): **accounts**, not just users. The streams and
//! the services live in one account, `STOCKPILE`; every partner, the Commission, the auditor
//! and the operators' admin tooling are accounts of their own that import exactly what they
//! may use. The map is pure data ([`permissions`], [`imports`], [`consumers`]), rendered into a
//! nats-server configuration (config-file accounts, nats-server ≥ 2.2) by [`render_config`]
//! (what `stockpile nats-config` writes); [`Identity`] is the client side: a user's seed, and
//! the connect options that authenticate with it.
//!
//! **Why accounts.** An account is a subject namespace of its own. A request a partner sends
//! through a service import reaches the `STOCKPILE` account with its reply subject replaced by
//! a server-made `_R_.…` one, and the answer is delivered back to the partner's reply subject
//! *in the partner's account* — where no stream lives. So a reply subject naming
//! `stockpile.v1.events.…`, a feed, a report or `stockpile.v1.checkpoints` lands in the
//! partner's own namespace and is stored nowhere. JetStream is enabled in `STOCKPILE` only;
//! its API answers (a consumer's info, its next messages) are exported per consumer the same
//! way. Inside `STOCKPILE`, only the services' own users exist, and the responders
//! (`ledger`, `projector`) may publish nothing but responses (`allow_responses`) and `$SRV`
//! answers: the outbox and the checkpoints go out on the publisher users.
//!
//! | account | user(s) | imports (services, answered in its own account) | streams it receives |
//! |---|---|---|---|
//! | `STOCKPILE` | `ledger` (responder), `ledger-publisher`, `projector` (responder), `projector-publisher` | — (exports everything below) | — |
//! | `PARTNER_<P>` | `partner-<P>` | `ledger.append.<P>`, `ledger.proof`, the latest checkpoint (direct get), `holdings.query.<P>`, `history.query.<P>`, `projector.report.<P>`, `projector.submit.<P>`, its consumers `<P>` on `STOCKPILE_FEEDS` and `STOCKPILE_REPORTS` | `stockpile.v1.feed.<P>.>`, `stockpile.v1.checkpoints` |
//! | `COMMISSION` | `commission` | `ledger.proof`, the latest checkpoint, `holdings.query`, `history.query`, `projector.report`, stream info and message reads of `STOCKPILE_REPORTS` (the intake), its consumer `commission` on `STOCKPILE_REPORTS` | `stockpile.v1.checkpoints` |
//! | `AUDITOR` | `auditor` | `ledger.range`, `ledger.proof`, the latest checkpoint, `holdings.query`, `history.query`, `projector.report`, stream info and message reads of every stream | events, feeds, reports, checkpoints |
//! | `ADMIN` | `admin` | `ledger.append` (genesis and registrations, admin-signed), `ledger.range`, `ledger.checkpoint` (sign now), `ledger.proof`, the latest checkpoint, `holdings.query`, `history.query`, `projector.report`, `projector.submit.*`, `$SRV.>` | events, feeds, reports, checkpoints |
//!
//! **Witnesses.** A partner's witness (`stockpile witness serve`) runs as the partner's user;
//! for each [`PartnerWitness`] named to [`render_config`], the partner's account exports the
//! witness's add-checkpoint subject to `STOCKPILE` alone, `STOCKPILE` imports it, the
//! `ledger-publisher` user may publish to [`WITNESS_REQUESTS`] (and, for failover, to the lease's
//! `$KV.STOCKPILE_LEDGER_LEASE.>`), and the partner's user may
//! subscribe to its witness subject and answer it (`allow_responses`).
//!
//! **Consumers are pre-created.** A cross-account reader cannot create or change a consumer
//! (no `$JS.API.CONSUMER.CREATE…` is exported, so a wider filter is impossible): the ledger
//! creates, at start, the durable pull consumers named by [`consumers`] for the partners it is
//! told (`stockpile-ledger serve --partners`), and exports for each exactly
//! `$JS.API.CONSUMER.INFO.<stream>.<name>`, `$JS.API.CONSUMER.MSG.NEXT.<stream>.<name>`
//! (streamed responses) and `$JS.ACK.<stream>.<name>.>` to the one account that reads it.
//!
//! **The latest checkpoint** is kept in the `STOCKPILE_CHECKPOINTS` stream (every signed
//! checkpoint the ledger publishes on `stockpile.v1.checkpoints`); every reading account
//! imports the direct get of its last message,
//! `$JS.API.DIRECT.GET.STOCKPILE_CHECKPOINTS.stockpile.v1.checkpoints`, so it can fetch the
//! latest signed checkpoint without being able to make the ledger sign one (only `ADMIN`
//! imports `ledger.checkpoint`).
//!
//! Every user of a reading account may also publish only to what its account imports (and
//! subscribe only to its inbox and the streams it receives): a call outside its rights gets
//! the server's permissions violation at once, which the CLI turns into a message naming
//! the subject and the user, instead of waiting for a reply nobody sends.

use super::subjects::{
    partner_append_subject, partner_subject, APPEND, CHECKPOINT, CHECKPOINTS, CHECKPOINTS_STREAM, EVENTS_STREAM,
    EVENTS_SUBJECTS, FEEDS_STREAM, FEEDS_SUBJECTS, HISTORY_QUERY, HOLDINGS_QUERY, LEASE_SUBJECTS, PROJECTOR_REPORT,
    PROJECTOR_SUBMIT_AS_PARTNER, PROOF, RANGE, REPORTS_STREAM, REPORTS_SUBJECTS,
};
use std::fmt::Write as _;
use std::path::Path;

/// The durable consumer name the Commission's intake reads reports with.
pub const COMMISSION_CONSUMER: &str = "commission";

/// The account the streams and the services live in.
pub const STOCKPILE_ACCOUNT: &str = "STOCKPILE";

/// JetStream API calls no role may make: removing a stream, its messages or its contents.
/// Streams are replicas of the record; nobody edits them.
pub const DESTRUCTIVE_JS_API: [&str; 3] =
    ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"];

/// The micro-service subjects (`$SRV.PING|INFO|STATS[.<name>[.<id>]]`).
const SRV: &str = "$SRV.>";

/// Where a reading account finds the JetStream API calls it imports: an account without
/// JetStream has the server answer its own `$JS.API.>` ("JetStream not enabled for
/// account"), so imports of `$JS.API.<rest>` are mapped to `$JS.STOCKPILE.API.<rest>` and
/// clients use this as their JetStream API prefix (NATS's documented cross-account pattern).
pub const JS_IMPORT_PREFIX: &str = "$JS.STOCKPILE.API";

/// The subject under which a reading account uses an imported `subject`.
pub fn local_subject(subject: &str) -> String {
    match subject.strip_prefix("$JS.API.") {
        Some(rest) => format!("{JS_IMPORT_PREFIX}.{rest}"),
        None => subject.to_string(),
    }
}

/// The direct get of the last message on `stockpile.v1.checkpoints`: the latest signed
/// checkpoint, as stored (headers `Nats-Stream`, `Nats-Sequence`, …; body the checkpoint).
pub fn latest_checkpoint_subject() -> String {
    format!("$JS.API.DIRECT.GET.{CHECKPOINTS_STREAM}.{CHECKPOINTS}")
}

/// A NATS user's role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The ledger's responder connection: request subjects in, responses out.
    Ledger,
    /// The ledger's outbox and checkpoint publisher (JetStream).
    LedgerPublisher,
    /// The projector's responder connection.
    Projector,
    /// The projector's JetStream reader and report publisher.
    ProjectorPublisher,
    Auditor,
    Commission,
    /// Operators' admin tooling: the genesis and registrations over NATS.
    Admin,
    /// A partner, by its ISO 3166-1 alpha-2 code.
    Partner(String),
}

impl Role {
    /// The user's name: `ledger`, `ledger-publisher`, …, `admin`, `partner-NL`.
    pub fn user(&self) -> String {
        match self {
            Role::Ledger => "ledger".into(),
            Role::LedgerPublisher => "ledger-publisher".into(),
            Role::Projector => "projector".into(),
            Role::ProjectorPublisher => "projector-publisher".into(),
            Role::Auditor => "auditor".into(),
            Role::Commission => "commission".into(),
            Role::Admin => "admin".into(),
            Role::Partner(code) => format!("partner-{code}"),
        }
    }

    /// The account the user belongs to: `STOCKPILE` for the services' users, else
    /// `AUDITOR`, `COMMISSION`, `ADMIN`, `PARTNER_<P>`.
    pub fn account(&self) -> String {
        match self {
            Role::Ledger | Role::LedgerPublisher | Role::Projector | Role::ProjectorPublisher => {
                STOCKPILE_ACCOUNT.into()
            }
            Role::Auditor => "AUDITOR".into(),
            Role::Commission => "COMMISSION".into(),
            Role::Admin => "ADMIN".into(),
            Role::Partner(code) => format!("PARTNER_{code}"),
        }
    }

    /// Every role of a deployment with `partners`, services first.
    pub fn all(partners: &[String]) -> Vec<Role> {
        let mut roles = vec![
            Role::Ledger,
            Role::LedgerPublisher,
            Role::Projector,
            Role::ProjectorPublisher,
            Role::Auditor,
            Role::Commission,
            Role::Admin,
        ];
        roles.extend(partners.iter().cloned().map(Role::Partner));
        roles
    }
}

/// What one user may publish and subscribe to, inside its own account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// May publish to the reply subject of a request it received (responders only).
    pub allow_responses: bool,
}

/// One thing a reading account takes from `STOCKPILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    /// A request subject: the account's requests are answered in the account.
    Service {
        subject: String,
        /// The answer may be several messages (a consumer's next messages, `$SRV` pings).
        streamed: bool,
    },
    /// Messages published in `STOCKPILE` on `subject`, delivered into the account.
    Stream { subject: String },
}

impl Import {
    fn service(subject: impl Into<String>) -> Import {
        Import::Service { subject: subject.into(), streamed: false }
    }

    fn streamed(subject: impl Into<String>) -> Import {
        Import::Service { subject: subject.into(), streamed: true }
    }

    fn stream(subject: impl Into<String>) -> Import {
        Import::Stream { subject: subject.into() }
    }

    pub fn subject(&self) -> &str {
        match self {
            Import::Service { subject, .. } | Import::Stream { subject } => subject,
        }
    }
}

/// A durable pull consumer the ledger creates in `STOCKPILE` for one reading account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    /// The durable name: the partner's code, or [`COMMISSION_CONSUMER`].
    pub name: String,
    /// The only subjects it delivers.
    pub filter: String,
}

impl ConsumerSpec {
    /// The service imports that let its one account read it, and nothing else.
    fn imports(&self) -> [Import; 3] {
        let (stream, name) = (self.stream, &self.name);
        [
            Import::service(format!("$JS.API.CONSUMER.INFO.{stream}.{name}")),
            Import::streamed(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}")),
            Import::service(format!("$JS.ACK.{stream}.{name}.>")),
        ]
    }
}

/// The consumer a partner reads its feed with: `<P>` on `STOCKPILE_FEEDS`, its feed only.
pub fn feed_consumer(code: &str) -> ConsumerSpec {
    ConsumerSpec { stream: FEEDS_STREAM, name: code.to_string(), filter: format!("stockpile.v1.feed.{code}.>") }
}

/// The consumer a partner reads its own submitted reports with: `<P>` on `STOCKPILE_REPORTS`.
pub fn reports_consumer(code: &str) -> ConsumerSpec {
    ConsumerSpec { stream: REPORTS_STREAM, name: code.to_string(), filter: format!("stockpile.v1.reports.*.{code}") }
}

/// The Commission's consumer: every report.
pub fn commission_consumer() -> ConsumerSpec {
    ConsumerSpec { stream: REPORTS_STREAM, name: COMMISSION_CONSUMER.into(), filter: REPORTS_SUBJECTS.into() }
}

/// The consumers `role` reads through (pre-created by the ledger; see the module docs).
pub fn role_consumers(role: &Role) -> Vec<ConsumerSpec> {
    match role {
        Role::Partner(code) => vec![feed_consumer(code), reports_consumer(code)],
        Role::Commission => vec![commission_consumer()],
        _ => Vec::new(),
    }
}

/// Every consumer of a deployment with `partners`: the ones the ledger creates at start.
pub fn consumers(partners: &[String]) -> Vec<ConsumerSpec> {
    let mut all: Vec<ConsumerSpec> = partners.iter().flat_map(|p| role_consumers(&Role::Partner(p.clone()))).collect();
    all.push(commission_consumer());
    all
}

/// What the account of `role` imports from `STOCKPILE` (nothing for the services' own users).
pub fn imports(role: &Role) -> Vec<Import> {
    let checkpoints = || [Import::service(latest_checkpoint_subject()), Import::stream(CHECKPOINTS)];
    let views = || [Import::service(HOLDINGS_QUERY), Import::service(HISTORY_QUERY), Import::service(PROJECTOR_REPORT)];
    let streams =
        || [EVENTS_SUBJECTS, FEEDS_SUBJECTS, REPORTS_SUBJECTS].into_iter().map(Import::stream).collect::<Vec<_>>();
    let mut out = Vec::new();
    match role {
        Role::Ledger | Role::LedgerPublisher | Role::Projector | Role::ProjectorPublisher => {}
        Role::Partner(code) => {
            out.push(Import::service(partner_append_subject(code)));
            // Proofs carry hashes only: a partner checks its feed's records are in the
            // signed log without seeing anyone else's.
            out.push(Import::service(PROOF));
            out.extend(checkpoints());
            out.push(Import::service(format!("{HOLDINGS_QUERY}.{code}")));
            out.push(Import::service(format!("{HISTORY_QUERY}.{code}")));
            out.push(Import::service(format!("{PROJECTOR_REPORT}.{code}")));
            out.push(Import::service(partner_subject(PROJECTOR_SUBMIT_AS_PARTNER, code)));
            out.push(Import::stream(format!("stockpile.v1.feed.{code}.>")));
        }
        Role::Commission => {
            // The intake reads every submitted report (stream info, then each message) and
            // checks its cut by proof: it needs no right to read the ledger's records.
            out.push(Import::service(PROOF));
            out.extend(checkpoints());
            out.extend(views());
            out.push(Import::service(format!("$JS.API.STREAM.INFO.{REPORTS_STREAM}")));
            out.push(Import::service(format!("$JS.API.STREAM.MSG.GET.{REPORTS_STREAM}")));
        }
        Role::Auditor => {
            out.extend([Import::service(RANGE), Import::service(PROOF)]);
            out.extend(checkpoints());
            out.extend(views());
            for stream in [EVENTS_STREAM, FEEDS_STREAM, REPORTS_STREAM, CHECKPOINTS_STREAM] {
                out.push(Import::service(format!("$JS.API.STREAM.INFO.{stream}")));
                out.push(Import::service(format!("$JS.API.STREAM.MSG.GET.{stream}")));
            }
            out.extend(streams());
        }
        Role::Admin => {
            out.extend([
                Import::service(APPEND),
                Import::service(RANGE),
                Import::service(CHECKPOINT),
                Import::service(PROOF),
            ]);
            out.extend(checkpoints());
            out.extend(views());
            out.push(Import::service(PROJECTOR_SUBMIT_AS_PARTNER.to_string()));
            out.push(Import::streamed(SRV));
            out.extend(streams());
        }
    }
    for consumer in role_consumers(role) {
        out.extend(consumer.imports());
    }
    out
}

/// The inbox prefix of a user: `_INBOX.<public NKey>`.
pub fn inbox_prefix(public_nkey: &str) -> String {
    format!("_INBOX.{public_nkey}")
}

/// The permissions of `role`, whose public NKey is `public_nkey`, inside its account.
pub fn permissions(role: &Role, public_nkey: &str) -> Permissions {
    let own = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let inbox = format!("{}.>", inbox_prefix(public_nkey));
    let destructive = own(&DESTRUCTIVE_JS_API);
    let responder = |subscribe: &[&str]| {
        let mut subscribe_allow = own(subscribe);
        subscribe_allow.extend([SRV.to_string(), inbox.clone()]);
        // Responses and `$SRV` answers only: whatever reply subject a request names, a
        // responder never reaches a stream subject except as that one response — and
        // requests from other accounts carry server-made `_R_` replies.
        Permissions { publish_allow: own(&[SRV]), publish_deny: Vec::new(), subscribe_allow, allow_responses: true }
    };
    match role {
        Role::Ledger => responder(&["stockpile.v1.ledger.>"]),
        Role::Projector => responder(&[
            HOLDINGS_QUERY,
            &format!("{HOLDINGS_QUERY}.*"),
            HISTORY_QUERY,
            &format!("{HISTORY_QUERY}.*"),
            PROJECTOR_REPORT,
            &format!("{PROJECTOR_REPORT}.*"),
            PROJECTOR_SUBMIT_AS_PARTNER,
        ]),
        Role::LedgerPublisher => Permissions {
            publish_allow: own(&[
                EVENTS_SUBJECTS,
                FEEDS_SUBJECTS,
                CHECKPOINTS,
                WITNESS_REQUESTS,
                LEASE_SUBJECTS,
                "$JS.API.>",
            ]),
            publish_deny: destructive,
            subscribe_allow: vec![inbox],
            allow_responses: false,
        },
        Role::ProjectorPublisher => Permissions {
            publish_allow: own(&[RANGE, REPORTS_SUBJECTS, "$JS.API.>", "$JS.ACK.>"]),
            publish_deny: destructive,
            subscribe_allow: vec![inbox],
            allow_responses: false,
        },
        Role::Auditor | Role::Commission | Role::Admin | Role::Partner(_) => {
            let imports = imports(role);
            let mut subscribe_allow = vec!["_INBOX.>".to_string()];
            let mut publish_allow = Vec::new();
            for import in imports {
                match import {
                    Import::Service { subject, .. } => publish_allow.push(local_subject(&subject)),
                    Import::Stream { subject } => subscribe_allow.push(subject),
                }
            }
            Permissions { publish_allow, publish_deny: Vec::new(), subscribe_allow, allow_responses: false }
        }
    }
}

/// A partner's witness (`stockpile witness serve`, as the partner's user): its account
/// exports the witness's add-checkpoint subject to `STOCKPILE`, which imports it, so the
/// ledger's publisher user can ask it to cosign (and nobody else can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerWitness {
    /// The partner code (`NL`).
    pub partner: String,
    /// The witness's name, as in its verifier key (`witness.nl/w1`).
    pub name: String,
}

impl PartnerWitness {
    /// The subject the witness serves (`stockpile.v1.witness.<token>.add-checkpoint`).
    pub fn subject(&self) -> String {
        crate::audit::witness::subject(&self.name)
    }
}

/// Where the ledger's publisher user asks witnesses to cosign (one token per witness).
pub const WITNESS_REQUESTS: &str = "stockpile.v1.witness.*.add-checkpoint";

/// The export in `STOCKPILE` of each subject some account imports, with the accounts that
/// may import it, in first-seen order.
fn exports(users: &[(Role, String)]) -> Vec<(Import, Vec<String>)> {
    let mut out: Vec<(Import, Vec<String>)> = Vec::new();
    for (role, _) in users {
        for import in imports(role) {
            let account = role.account();
            match out.iter_mut().find(|(i, _)| *i == import) {
                Some((_, accounts)) if !accounts.contains(&account) => accounts.push(account),
                Some(_) => {}
                None => out.push((import, vec![account])),
            }
        }
    }
    out
}

/// A nats-server configuration of config-file accounts for `users` (role, public NKey):
/// `STOCKPILE` with JetStream, its users and its exports; one account per other role with
/// its user and imports. JetStream on with its store in `store_dir`, listening on `listen`
/// (`host:port`).
pub fn render_config(users: &[(Role, String)], witnesses: &[PartnerWitness], listen: &str, store_dir: &Path) -> String {
    let quoted = |items: &[String]| items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    let _ = writeln!(out, "# nats-server configuration for a stockpile ledger, written by `stockpile nats-config`.");
    let _ =
        writeln!(out, "# The streams and services live in account {STOCKPILE_ACCOUNT}; every partner, the Commission,");
    let _ = writeln!(out, "# the auditor and ADMIN are accounts of their own that import what they may use.");
    let _ = writeln!(out, "# See docs/PARTNERS.md, \"Access\", and ARCHITECTURE.md, \"Access\".");
    let _ = writeln!(out, "listen: {listen:?}");
    let _ = writeln!(out, "jetstream {{\n  store_dir: {:?}\n}}", store_dir.display().to_string());
    let mut accounts: Vec<String> = Vec::new();
    for (role, _) in users {
        if !accounts.contains(&role.account()) {
            accounts.push(role.account());
        }
    }
    let _ = writeln!(out, "accounts {{");
    for account in &accounts {
        let _ = writeln!(out, "  {account} {{");
        if account == STOCKPILE_ACCOUNT {
            let _ = writeln!(out, "    jetstream: enabled");
        }
        let _ = writeln!(out, "    users = [");
        for (role, nkey) in users.iter().filter(|(r, _)| r.account() == *account) {
            let mut p = permissions(role, nkey);
            if let Role::Partner(code) = role {
                // A partner's witness answers, as the partner's user, the ledger's requests
                // that reach it through the account's export.
                for w in witnesses.iter().filter(|w| w.partner == *code) {
                    p.subscribe_allow.push(w.subject());
                    p.allow_responses = true;
                }
            }
            let _ = writeln!(out, "      # {}", role.user());
            let _ = writeln!(out, "      {{");
            let _ = writeln!(out, "        nkey: {nkey:?}");
            let _ = writeln!(out, "        permissions: {{");
            let _ = write!(out, "          publish: {{ allow: [{}]", quoted(&p.publish_allow));
            if !p.publish_deny.is_empty() {
                let _ = write!(out, ", deny: [{}]", quoted(&p.publish_deny));
            }
            let _ = writeln!(out, " }}");
            let _ = writeln!(out, "          subscribe: {{ allow: [{}] }}", quoted(&p.subscribe_allow));
            if p.allow_responses {
                let _ = writeln!(out, "          allow_responses: true");
            }
            let _ = writeln!(out, "        }}");
            let _ = writeln!(out, "      }}");
        }
        let _ = writeln!(out, "    ]");
        if account == STOCKPILE_ACCOUNT {
            let _ = writeln!(out, "    exports = [");
            for (import, to) in exports(users) {
                let accounts = to.join(", ");
                match import {
                    Import::Service { subject, streamed } => {
                        let kind = if streamed { ", response_type: stream" } else { "" };
                        let _ = writeln!(out, "      {{ service: {subject:?}{kind}, accounts: [{accounts}] }}");
                    }
                    Import::Stream { subject } => {
                        let _ = writeln!(out, "      {{ stream: {subject:?}, accounts: [{accounts}] }}");
                    }
                }
            }
            let _ = writeln!(out, "    ]");
            let _ = writeln!(out, "    imports = [");
            for w in witnesses {
                let partner = Role::Partner(w.partner.clone()).account();
                let _ = writeln!(out, "      {{ service: {{ account: {partner}, subject: {:?} }} }}", w.subject());
            }
            let _ = writeln!(out, "    ]");
        } else {
            let role = users.iter().map(|(r, _)| r).find(|r| r.account() == *account).expect("an account has a user");
            if let Role::Partner(code) = role {
                let _ = writeln!(out, "    exports = [");
                for w in witnesses.iter().filter(|w| w.partner == *code) {
                    let _ = writeln!(out, "      {{ service: {:?}, accounts: [{STOCKPILE_ACCOUNT}] }}", w.subject());
                }
                let _ = writeln!(out, "    ]");
            }
            let _ = writeln!(out, "    imports = [");
            for import in imports(role) {
                let kind = match import {
                    Import::Service { .. } => "service",
                    Import::Stream { .. } => "stream",
                };
                let local = local_subject(import.subject());
                let to = if local == import.subject() { String::new() } else { format!(", to: {local:?}") };
                let _ = writeln!(
                    out,
                    "      {{ {kind}: {{ account: {STOCKPILE_ACCOUNT}, subject: {:?} }}{to} }}",
                    import.subject()
                );
            }
            let _ = writeln!(out, "    ]");
        }
        let _ = writeln!(out, "  }}");
    }
    let _ = writeln!(out, "}}");
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

/// How long a service keeps trying its first connection when nothing listens yet: a NATS
/// server started at the same moment (by a script, or systemd units in any order) has this
/// long to come up. A refused login is not retried.
pub const FIRST_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// Pause between two first-connection attempts.
const FIRST_CONNECT_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Connects to `servers` with the options `options()` makes (asked anew per attempt: the
/// client takes them by value), retrying while the server is unreachable for up to
/// [`FIRST_CONNECT_WAIT`]. Authentication and authorization failures end at once.
pub async fn connect_patiently(
    servers: &[&str],
    options: impl Fn() -> async_nats::ConnectOptions,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    use async_nats::ConnectErrorKind as Kind;
    let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
    loop {
        match options().connect(servers.to_vec()).await {
            Err(e) if matches!(e.kind(), Kind::Io | Kind::TimedOut) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(FIRST_CONNECT_RETRY).await;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner_nl() -> Role {
        Role::Partner("NL".into())
    }

    #[test]
    fn a_partner_imports_its_own_channel_views_and_consumers_only() {
        let subjects: Vec<String> = imports(&partner_nl()).iter().map(|i| i.subject().to_string()).collect();
        assert!(subjects.contains(&"stockpile.v1.ledger.append.NL".to_string()));
        assert!(subjects.contains(&"$JS.API.CONSUMER.MSG.NEXT.STOCKPILE_FEEDS.NL".to_string()));
        assert!(subjects.contains(&"$JS.ACK.STOCKPILE_REPORTS.NL.>".to_string()));
        assert!(subjects.contains(&"$JS.API.DIRECT.GET.STOCKPILE_CHECKPOINTS.stockpile.v1.checkpoints".to_string()));
        for s in &subjects {
            assert!(!s.contains("DE") && !s.contains("CREATE") && !s.contains("EVENTS"), "{s}");
            assert!(s != RANGE && s != CHECKPOINT && s != APPEND && s != HOLDINGS_QUERY, "{s}");
        }
        let p = permissions(&partner_nl(), "UNL");
        assert!(!p.allow_responses);
        assert_eq!(p.subscribe_allow, ["_INBOX.>", "stockpile.v1.checkpoints", "stockpile.v1.feed.NL.>"]);
        assert!(p.publish_allow.iter().all(|s| subjects.iter().any(|i| local_subject(i) == *s)));
        assert!(p.publish_allow.contains(&"$JS.STOCKPILE.API.CONSUMER.MSG.NEXT.STOCKPILE_FEEDS.NL".to_string()));
    }

    #[test]
    fn responders_publish_nothing_but_responses() {
        for role in [Role::Ledger, Role::Projector] {
            let p = permissions(&role, "U");
            assert!(p.allow_responses);
            assert_eq!(p.publish_allow, ["$SRV.>"], "{role:?}");
        }
        let publisher = permissions(&Role::LedgerPublisher, "U");
        assert!(!publisher.allow_responses && publisher.publish_allow.contains(&EVENTS_SUBJECTS.to_string()));
        assert!(imports(&Role::Auditor).iter().all(|i| i.subject() != APPEND && i.subject() != CHECKPOINT));
        assert!(imports(&Role::Admin).iter().any(|i| i.subject() == APPEND));
    }

    #[test]
    fn the_rendered_config_has_one_account_per_reader_and_exports_to_named_accounts() {
        let users = vec![
            (Role::Ledger, "UL".to_string()),
            (Role::LedgerPublisher, "ULP".to_string()),
            (Role::Partner("DE".into()), "UDE".to_string()),
            (Role::Partner("NL".into()), "UNL".to_string()),
        ];
        let witness = PartnerWitness { partner: "NL".into(), name: "witness.nl/w1".into() };
        let text = render_config(&users, &[witness], "127.0.0.1:4222", Path::new("/var/lib/nats"));
        assert!(text.contains(
            "{ service: { account: PARTNER_NL, subject: \"stockpile.v1.witness.witness_nl_w1.add-checkpoint\" } }"
        ));
        assert!(
            text.contains("{ service: \"stockpile.v1.witness.witness_nl_w1.add-checkpoint\", accounts: [STOCKPILE] }")
        );
        assert_eq!(text.matches("nkey: ").count(), 4);
        assert_eq!(text.matches("jetstream: enabled").count(), 1);
        assert!(text.contains("  PARTNER_DE {") && text.contains("  STOCKPILE {"));
        assert!(text.contains(
            "{ service: \"$JS.API.CONSUMER.MSG.NEXT.STOCKPILE_FEEDS.DE\", response_type: stream, accounts: [PARTNER_DE] }"
        ));
        assert!(text.contains("{ service: \"stockpile.v1.ledger.proof\", accounts: [PARTNER_DE, PARTNER_NL] }"));
        assert!(text.contains("{ service: { account: STOCKPILE, subject: \"stockpile.v1.ledger.append.NL\" } }"));
        assert!(text.contains("deny: [\"$JS.API.STREAM.DELETE.>\""));
    }
}
