//! Command-line arguments (clap). Parsed into raw strings here, validated into domain types
//! by the command modules, so every error message comes from one place.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The heading of the options every verb takes, apart from each verb's own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(name = "stockpile", version, about = "Record, move and report strategic stocks of critical raw materials")]
pub struct Cli {
    /// Talk to running services over NATS instead of the local data directory.
    #[arg(long, global = true, help_heading = GLOBAL, env = "STOCKPILE_NATS_URL")]
    pub nats: Option<String>,
    /// NKey seed file of the NATS user to connect as (see `stockpile nats-config`).
    #[arg(long, global = true, help_heading = GLOBAL, env = "STOCKPILE_NATS_NKEY")]
    pub nats_nkey: Option<PathBuf>,
    /// Over NATS, act as this partner's user: post on `stockpile.v1.ledger.append.<P>` and
    /// watch `stockpile.v1.feed.<filter>` (what a partner's NATS user may do).
    #[arg(long, global = true, help_heading = GLOBAL, env = "STOCKPILE_NATS_PARTNER")]
    pub nats_partner: Option<String>,
    /// Local data directory (embedded mode: ledger and projector run in this process).
    #[arg(long, global = true, help_heading = GLOBAL, env = "STOCKPILE_DATA", default_value = "./stockpile-data")]
    pub data: PathBuf,
    /// Directory of key files (created with mode 0600).
    #[arg(long, global = true, help_heading = GLOBAL, env = "STOCKPILE_KEYS", default_value = "./stockpile-keys")]
    pub keys: PathBuf,
    /// Output format where the output is data.
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human output: tables; for `report`, Markdown with inline SVG (`md` is the same).
    #[value(alias = "md")]
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a ledger: an admin key and the genesis record.
    Init {
        /// A name for this ledger (e.g. the operating agency).
        #[arg(long, default_value = "stockpile")]
        ledger: String,
        /// Id of the admin key to create (the key file is <KEYS>/<ID>.key).
        #[arg(long, default_value = "admin")]
        admin_key: String,
    },
    /// Generate, list and revoke operator keys.
    #[command(subcommand)]
    Keys(KeysVerb),
    /// Register parties, facilities, keys and reference figures (signed by an admin key).
    #[command(subcommand)]
    Register(RegisterVerb),
    /// A party buys a new lot from outside the stockpile.
    Acquire(AcquireArgs),
    /// Move stock of one party from in-transit or a facility into a facility.
    Store(StoreArgs),
    /// Move stock from one party to another.
    Transfer(TransferArgs),
    /// Stock leaves the stockpile.
    Release(ReleaseArgs),
    /// Refine or upgrade a lot into a new lot.
    Convert(ConvertArgs),
    /// Correct a position after a stock-take or re-grade.
    Adjust(AdjustArgs),
    /// Compensate an earlier event (nothing is ever deleted).
    Reverse(ReverseArgs),
    /// Post commands from a JSON Lines file (`-` for stdin).
    Post(PostArgs),
    /// The ids you can name: materials and partners (the reference lists compiled in),
    /// parties, facilities and lots (from the log).
    List {
        /// What to list.
        #[arg(value_enum)]
        what: ListWhat,
    },
    /// Holdings now or as of a date.
    Holdings(HoldingsArgs),
    /// The movements of a lot, party or facility.
    History(HistoryArgs),
    /// The stock report of a partner for a period (CRMA Art. 22; IEA and NATO variants):
    /// `--format json` (the submission), `csv`, or `md` (Markdown, the default).
    Report(ReportArgs),
    /// Live events over NATS, e.g. `NL.>` or `*.cobalt.*`.
    Watch {
        /// Subject filter below `stockpile.v1.events.`: `<partner>.<material>.<kind>`.
        filter: String,
    },
    /// Auditor tools: checkpoints, export, offline verification, proofs, point-in-time replay.
    #[command(subcommand)]
    Audit(AuditVerb),
    /// The Commission's intake over NATS: the reports submitted to STOCKPILE_REPORTS, each
    /// checked against the ledger's log (list, show, diff, missing, aggregate).
    #[command(subcommand)]
    Reports(ReportsVerb),
    /// Write a nats-server configuration with one NKey user per partner and per role
    /// (ledger, projector, auditor, commission) and their permissions, and each user's seed.
    NatsConfig {
        /// Directory to write `nats-server.conf` and `users/<user>.nk` into.
        #[arg(long)]
        out: PathBuf,
        /// Partners to create users for, comma-separated (default: every reference partner).
        #[arg(long, value_delimiter = ',')]
        partners: Vec<String>,
        /// Address the server listens on.
        #[arg(long, default_value = "127.0.0.1:4222")]
        listen: String,
        /// JetStream store directory (default: `<out>/jetstream`).
        #[arg(long)]
        store_dir: Option<PathBuf>,
        /// A partner's witness, `P=NAME` (NAME as in its verifier key, e.g.
        /// `NL=witness.nl/w1`), repeatable: the partner's account exports the witness's
        /// add-checkpoint subject to the ledger, and the partner's user may answer it.
        #[arg(long = "witness", value_name = "P=NAME")]
        witnesses: Vec<String>,
    },
    /// A partner's witness of ledgers: cosigns each checkpoint consistent with the last it
    /// cosigned (C2SP tlog-witness over NATS), refuses and keeps as evidence any other.
    #[command(subcommand)]
    Witness(WitnessVerb),
    /// Measure appends, post-to-visible latency, catch-up, replay, audit and as-of queries
    /// beside raw sled, JetStream and PostgreSQL baselines, with peak memory per scenario.
    Bench(BenchArgs),
    /// Print a shell completion script: `stockpile completions bash > ~/.local/share/bash-completion/completions/stockpile`.
    Completions {
        /// The shell to complete for: bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the manual page (roff): `stockpile man > stockpile.1 && man ./stockpile.1`.
    Man,
    /// The services answering over NATS (`$SRV.PING`: name, version, id); with --wait, first
    /// wait until the ledger and the projector both answer (for start-up scripts). Over NATS
    /// with accounts, the ADMIN user may ping.
    Services {
        /// Wait up to this many seconds for the NATS server and for stockpile-ledger and
        /// stockpile-projector to answer; exit 2 naming the missing ones after that.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Build a realistic demo ledger (the Dutch pilots) in a fresh directory and show it:
    /// the ledger in --data and the keys in --keys when given, else in <DIR>/data and
    /// <DIR>/keys. Local only: with --nats it refuses (the services' log is append-only, and
    /// the demo's story is fiction).
    Demo {
        /// Where to build it; an earlier demo there is replaced, anything else is refused
        /// (so are a --data or --keys outside it that hold something the demo did not make).
        #[arg(long, default_value = "./stockpile-demo")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum WitnessVerb {
    /// Print the witness's verifier key (`<name>+<key ID>+<base64>`), creating the key file
    /// (mode 0600) if missing: give it to whoever checks cosignatures (`--witness NAME=KEY`).
    Key {
        /// The witness's key file (64 hex characters).
        #[arg(long)]
        key: PathBuf,
        /// The witness's name, e.g. `witness.nl.example/w1` (no spaces, no '+').
        #[arg(long)]
        name: String,
    },
    /// Serve `stockpile.v1.witness.<name>.add-checkpoint` over NATS (`--nats URL`), keeping
    /// the latest cosigned checkpoint per ledger and the evidence in `--data DIR`. Prints the
    /// verifier key first.
    Serve {
        /// The witness's key file, created (mode 0600) if missing.
        #[arg(long)]
        key: PathBuf,
        /// The witness's name, e.g. `witness.nl.example/w1` (no spaces, no '+').
        #[arg(long)]
        name: String,
        /// A ledger to witness: its origin (`stockpile.v1/<genesis hash>`) and the verifier
        /// key of its checkpoint notes. Repeat for more ledgers or keys.
        #[arg(long = "ledger", value_name = "ORIGIN=VERIFIERKEY", required = true)]
        ledgers: Vec<String>,
    },
    /// Print the witness's state (`--data DIR`; the witness must be stopped) as JSON: the
    /// latest cosigned checkpoint per ledger and the evidence kept.
    Show,
    /// Print a ledger's verifier key (`<origin>+<key ID>+<base64>`, origin
    /// `stockpile.v1/<genesis hash>`): what a witness is given with `--ledger`. From a
    /// checkpoint file, from the running ledger (`--nats`), or from the stopped ledger in
    /// `--data DIR`.
    LedgerKey {
        /// A checkpoint with a note, as `stockpile audit checkpoint` prints it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

/// Which witnesses' cosignatures a client requires on a checkpoint, and how many.
#[derive(Debug, Clone, Default, Args)]
pub struct QuorumArgs {
    /// A witness whose cosignature counts: its verifier key as `stockpile witness key`
    /// prints it (`<name>+<key ID>+<base64>`), optionally as `NAME=VKEY`. Repeatable.
    #[arg(long = "witness", value_name = "[NAME=]VKEY")]
    pub witnesses: Vec<String>,
    /// A file of witnesses' verifier keys, one per line (`[NAME=]VKEY`; blank lines and
    /// lines starting with '#' are skipped).
    #[arg(long)]
    pub witness_file: Option<PathBuf>,
    /// Valid cosignatures, from distinct witnesses given, the checkpoint must carry (default:
    /// every witness given); fewer fails the audit and names the missing and bad ones.
    #[arg(long)]
    pub quorum: Option<usize>,
}

/// What `stockpile list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListWhat {
    /// The material reference list (ids for --material).
    Materials,
    /// The partner reference list (ISO 3166-1 alpha-2 codes for --partner).
    Partners,
    /// Parties registered in the log.
    Parties,
    /// Facilities registered in the log.
    Facilities,
    /// Lots the log's acquires and conversions created.
    Lots,
}

#[derive(Debug, Subcommand)]
pub enum KeysVerb {
    /// Create a new Ed25519 key file (mode 0600). Register it with `register key`.
    Generate {
        /// Id of the new key (the key file is <KEYS>/<ID>.key).
        #[arg(long)]
        id: String,
        /// The party an operator key acts for.
        #[arg(long)]
        party: Option<String>,
        /// operator (acts for --party) or admin (registrations).
        #[arg(long, value_enum, default_value_t = RoleArg::Operator)]
        role: RoleArg,
    },
    /// List key files (never the secret part).
    List,
    /// Revoke a registered key from now on.
    Revoke {
        /// The key to revoke.
        #[arg(value_name = "KEY")]
        key_id: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Operator,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum RegisterVerb {
    /// Register a party that holds stock (an authority, undertaking, operator or company).
    Party {
        /// The new party's id.
        party: String,
        /// ISO 3166-1 alpha-2 code of the partner the party belongs to.
        #[arg(long)]
        partner: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// public_authority, public_undertaking, mandated_operator or private.
        #[arg(long)]
        holder_type: String,
        #[command(flatten)]
        common: Common,
    },
    /// Register a facility (a site where stock is stored).
    Facility {
        /// The new facility's id.
        facility: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// ISO 3166-1 alpha-2 code of the country the site is in.
        #[arg(long)]
        country: String,
        #[command(flatten)]
        common: Common,
    },
    /// Register a generated key's public key: its holder sends you `<id>.pub` (never the `.key`).
    /// From a `.pub` file (written by someone else) you state what the key may do: `--party`
    /// for an operator key, `--role admin` for an admin key; a file that says otherwise is refused.
    Key {
        /// The key's `.pub` file (or a key id in --keys, or a `.key` file).
        #[arg(value_name = "KEY")]
        key_id: String,
        /// The party the key acts for (required for an operator key from a `.pub` file; must
        /// match the file).
        #[arg(long)]
        party: Option<String>,
        /// operator or admin (an admin key from a `.pub` file needs `--role admin`; must match
        /// the file).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        #[command(flatten)]
        common: Common,
    },
    /// Release, allocation and distribution rules of a partner's stock of a material.
    ReleaseRules {
        /// Partner: ISO 3166-1 alpha-2 code (see `stockpile list partners`).
        #[arg(long)]
        partner: String,
        /// Material id from the reference list (see `stockpile list materials`).
        #[arg(long)]
        material: String,
        /// The rules text (up to 4096 characters).
        #[arg(long)]
        text: String,
        /// Keep the text out of reports; they show a confidentiality note instead.
        #[arg(long)]
        confidential: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Raise the ledger's decision rules from the next record on (never lowered): 2 decides
    /// every debit against the position's balance at each business date from its
    /// --occurred-at on (schemas/CANONICAL.md §5). Ledgers made by `init` start under 2.
    Rules {
        /// The rules version to raise to.
        #[arg(value_name = "VERSION")]
        rules: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Withhold a party's stock of a lot from reports on national-security grounds, from
    /// --occurred-at on.
    Withhold(WithholdArgs),
    /// Report a withheld position again, from --occurred-at on.
    Unwithhold(WithholdArgs),
    /// Annual national consumption of a material (for "% of consumption").
    Consumption(FigureArgs),
    /// Annual net imports of a material (for days of cover).
    NetImports(FigureArgs),
}

#[derive(Debug, Args)]
pub struct WithholdArgs {
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// The reasoned notification reports carry instead of the figures.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The reporting partner, ISO 3166-1 alpha-2 (Greece: GR; reports to the Commission say EL).
    #[arg(long)]
    pub partner: String,
    /// 2026 (year), 2026-H1 (half), 2026-Q3 (quarter) or 2026-05 (month): stock as of its end.
    #[arg(long)]
    pub period: String,
    /// EU (the Commission, CRMA Art. 22), IEA or NATO (holdings earmarked to the programme).
    #[arg(long, default_value = "EU")]
    pub framework: String,
    /// strategic, critical (strategic and critical) or all. Default: strategic for EU, all
    /// for IEA, the NATO defence-critical list for NATO.
    #[arg(long)]
    pub materials: Option<String>,
    /// Ask the projector service at --nats URL to build the report from the ledger's log and
    /// publish it to the JetStream stream STOCKPILE_REPORTS as the next revision of the period
    /// (nothing is sent if the last revision has the same body). Needs --nats: figures of a
    /// local --data directory are never submitted.
    #[arg(long)]
    pub submit: bool,
    /// With --submit: submit the report even though its period has not ended by ledger time
    /// (the report is marked provisional; without this flag --submit refuses it).
    #[arg(long, requires = "submit")]
    pub provisional: bool,
    /// Write the report into directory DIR (created if missing) instead of printing it:
    /// `<id>.md` linking one `<id>-<material>.svg` chart file per material, the charts, and
    /// `<id>.html` (charts inline); prints the paths written. Other files in DIR are left alone.
    #[arg(long, value_name = "DIR", conflicts_with = "submit")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FigureArgs {
    /// Partner: ISO 3166-1 alpha-2 code (see `stockpile list partners`).
    #[arg(long)]
    pub partner: String,
    /// Material id from the reference list (see `stockpile list materials`).
    #[arg(long)]
    pub material: String,
    /// Calendar year of the figure.
    #[arg(long)]
    pub year: i32,
    /// e.g. "1200 t"
    #[arg(long)]
    pub quantity: String,
    #[command(flatten)]
    pub common: Common,
}

// The options every posting verb takes, under a heading of their own.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Posting options")]
pub struct Common {
    /// Event id (the idempotency key). Default: generated.
    #[arg(long)]
    pub id: Option<String>,
    /// Business time (RFC 3339 or YYYY-MM-DD). Default: now.
    #[arg(long)]
    pub occurred_at: Option<String>,
    /// Key id or key file to sign with. Default: the party's key (admin key for registrations).
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// Material id from the reference list (see `stockpile list materials`).
    #[arg(long)]
    pub material: String,
    /// Form: ore, concentrate, oxide, carbonate, hydroxide, sulphate, chloride, metal, alloy,
    /// powder, gas, intermediate or other.
    #[arg(long)]
    pub form: String,
    /// Purity as ppm (`999500`) or percent (`99.95%`).
    #[arg(long)]
    pub purity: String,
    /// Country of origin (ISO 3166-1 alpha-2).
    #[arg(long)]
    pub origin: String,
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// Facility id, or in_transit.
    #[arg(long, default_value = "in_transit")]
    pub at: String,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// e.g. "120.5 t", "500 kg", "1000 ozt"
    #[arg(long)]
    pub quantity: String,
    /// Who sold the lot.
    #[arg(long)]
    pub supplier: Option<String>,
    /// Contract reference.
    #[arg(long)]
    pub contract: Option<String>,
    /// e.g. "1250000 EUR"
    #[arg(long)]
    pub price: Option<String>,
    /// Certificate of analysis or origin, by reference.
    #[arg(long)]
    pub certificate: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// Where the stock is now: a facility id or in_transit.
    #[arg(long, default_value = "in_transit")]
    pub from: String,
    /// The facility to move it into.
    #[arg(long)]
    pub to: String,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// Quantity with its unit, e.g. "120.5 t", "500 kg", "1000 ozt".
    #[arg(long)]
    pub quantity: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// The party giving the stock.
    #[arg(long)]
    pub from_party: String,
    /// The party receiving it.
    #[arg(long)]
    pub to_party: String,
    /// Where the stock is now.
    #[arg(long)]
    pub at: String,
    /// Where it goes (default: stays where it is).
    #[arg(long)]
    pub to: Option<String>,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// Programme at the receiving side (default: the same).
    #[arg(long)]
    pub to_programme: Option<String>,
    /// Quantity with its unit, e.g. "120.5 t", "500 kg", "1000 ozt".
    #[arg(long)]
    pub quantity: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// Facility id where the stock is, or in_transit.
    #[arg(long)]
    pub at: String,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// Quantity with its unit, e.g. "120.5 t", "500 kg", "1000 ozt".
    #[arg(long)]
    pub quantity: String,
    /// emergency_drawdown, sale, rotation, loan, loss or donation.
    #[arg(long)]
    pub reason: String,
    /// Who receives the released stock.
    #[arg(long)]
    pub recipient: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// Facility id where the stock is, or in_transit.
    #[arg(long)]
    pub at: String,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// Quantity of the old lot consumed, with its unit.
    #[arg(long)]
    pub consumed: String,
    /// Id of the lot the conversion produces.
    #[arg(long)]
    pub new_lot: String,
    /// Form: ore, concentrate, oxide, carbonate, hydroxide, sulphate, chloride, metal, alloy,
    /// powder, gas, intermediate or other.
    #[arg(long)]
    pub form: String,
    /// Purity as ppm (`999500`) or percent (`99.95%`).
    #[arg(long)]
    pub purity: String,
    /// Quantity of the new lot produced, with its unit.
    #[arg(long)]
    pub produced: String,
    /// Where the new lot is held (default: where the old one was).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct AdjustArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long)]
    pub lot: String,
    /// Party id (see `stockpile list parties`).
    #[arg(long)]
    pub party: String,
    /// Facility id where the stock is, or in_transit.
    #[arg(long)]
    pub at: String,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, default_value = "national")]
    pub programme: String,
    /// Quantity to add, with its unit.
    #[arg(long, conflicts_with = "decrease", required_unless_present = "decrease")]
    pub increase: Option<String>,
    /// Quantity to remove, with its unit.
    #[arg(long)]
    pub decrease: Option<String>,
    /// stock_take, regrade, measurement_correction, shrinkage or other.
    #[arg(long)]
    pub reason: String,
    /// What was found, for the record.
    #[arg(long)]
    pub note: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// The event id to compensate.
    pub target: String,
    /// Why, for the record.
    #[arg(long)]
    pub reason: String,
    /// The party whose key signs (the one whose positions the reversal debits).
    #[arg(long)]
    pub party: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct PostArgs {
    /// JSON Lines: one command (`{"id","occurred_at","action"}`) or signed command per line; `-` for stdin.
    pub file: PathBuf,
    /// All or nothing. Default: each line stands alone.
    #[arg(long)]
    pub atomic: bool,
    /// Sign unsigned lines with this key (default: the key of the party each line debits).
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct HoldingsArgs {
    /// End of this date (UTC), by business time.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Group by: partner, party, holder_type, material, form, facility, country, programme, lot.
    #[arg(long, value_delimiter = ',', default_value = "partner,material")]
    pub by: Vec<String>,
    /// Partner: ISO 3166-1 alpha-2 code (see `stockpile list partners`).
    #[arg(long, value_delimiter = ',')]
    pub partner: Vec<String>,
    /// Party id (see `stockpile list parties`).
    #[arg(long, value_delimiter = ',')]
    pub party: Vec<String>,
    /// Material id from the reference list (see `stockpile list materials`).
    #[arg(long, value_delimiter = ',')]
    pub material: Vec<String>,
    /// Programme the stock is held for: national, EU, IEA or NATO.
    #[arg(long, value_delimiter = ',')]
    pub programme: Vec<String>,
    /// Facility id, or in_transit (see `stockpile list facilities`).
    #[arg(long, value_delimiter = ',')]
    pub facility: Vec<String>,
    /// Holder type: public_authority, public_undertaking, mandated_operator or private.
    #[arg(long, value_delimiter = ',')]
    pub holder_type: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditVerb {
    /// Sign a checkpoint over the whole log now (tree size, Merkle root) and print it.
    Checkpoint {
        /// Also write it to this file (for `audit check` later).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Export the log with its checkpoints to JSON Lines (ends with a checkpoint at the head).
    Export {
        /// Where to write (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify an export (or the local data directory): chain, signatures, re-execution, checkpoints.
    Verify {
        /// An export file; without it, the ledger in --data DIR.
        file: Option<PathBuf>,
        /// The ledger's published checkpoint key (hex) to pin; otherwise the export's is named.
        #[arg(long)]
        ledger_key: Option<String>,
        /// Only the chain: hashes, links, Merkle roots and checkpoint signatures (fast);
        /// not command signatures nor re-execution.
        #[arg(long)]
        chain_only: bool,
        #[command(flatten)]
        quorum: QuorumArgs,
    },
    /// Prove that record SEQ is in the tree of a checkpoint (default: the latest).
    Prove {
        /// The record whose inclusion to prove.
        #[arg(long)]
        seq: u64,
        /// The checkpoint tree size to prove against (default: the latest).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Prove that the tree of OLD records is a prefix of the tree of NEW (default: the latest).
    Consistency {
        /// The older tree size.
        #[arg(long)]
        old: u64,
        /// The newer tree size (default: the latest).
        #[arg(long)]
        new: Option<u64>,
    },
    /// Check a proof offline against checkpoint files.
    Check {
        /// The proof, as `audit prove` or `audit consistency` printed it.
        proof: PathBuf,
        /// The checkpoint of the proof's tree size (the new one, for consistency).
        #[arg(long)]
        checkpoint: PathBuf,
        /// For a consistency proof: the checkpoint of the old tree size.
        #[arg(long)]
        old_checkpoint: Option<PathBuf>,
        /// Pin the ledger's checkpoint key (hex).
        #[arg(long)]
        ledger_key: Option<String>,
        #[command(flatten)]
        quorum: QuorumArgs,
    },
    /// Re-derive a submitted report (JSON) from an export alone and compare it byte for byte.
    Reproduce {
        /// The report as submitted (`stockpile report --format json`).
        report: PathBuf,
        /// The export file (it may hold records added after the report was cut).
        #[arg(long)]
        from: PathBuf,
    },
    /// Holdings as they were on a date, from an export alone (verified first).
    Replay {
        /// The export file.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        holdings: HoldingsArgs,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The lot id (see `stockpile list lots`).
    #[arg(long, group = "subject")]
    pub lot: Option<String>,
    /// Party id (see `stockpile list parties`).
    #[arg(long, group = "subject")]
    pub party: Option<String>,
    /// Facility id, or in_transit (see `stockpile list facilities`).
    #[arg(long, group = "subject")]
    pub facility: Option<String>,
}

/// `stockpile reports …`: what arrived on STOCKPILE_REPORTS (needs --nats).
#[derive(Debug, Subcommand)]
pub enum ReportsVerb {
    /// Every revision received: partner, framework, period, revision, received at, cut seq,
    /// chain head, provisional or final, and the check against the ledger.
    List {
        /// The reporting period: 2026 (year), 2026-H1 (half), 2026-Q3 (quarter) or 2026-05 (month).
        #[arg(long)]
        period: Option<String>,
        /// As the reports spell it (Greece: EL on EU reports).
        #[arg(long)]
        partner: Option<String>,
        /// The framework: `EU` (CRM Act Art. 22), `IEA` or `NATO`.
        #[arg(long)]
        framework: Option<String>,
    },
    /// One report as submitted: the revision named by ID, or revision N of its period.
    Show {
        /// A report id (any revision's) from `reports list`.
        id: String,
        /// The revision of the report's period to show (1 is the first submitted).
        #[arg(long)]
        revision: Option<u64>,
    },
    /// What changed between two revisions of a report's period.
    Diff {
        /// A report id (any revision's) from `reports list`.
        id: String,
        /// The older revision.
        #[arg(long)]
        from: u64,
        /// The newer revision.
        #[arg(long)]
        to: u64,
    },
    /// The framework's members without an accepted final report of the period (by
    /// --deadline, when given).
    Missing {
        /// The reporting period: 2026 (year), 2026-H1 (half), 2026-Q3 (quarter) or 2026-05 (month).
        #[arg(long)]
        period: String,
        /// The framework: `EU` (CRM Act Art. 22), `IEA` or `NATO`.
        #[arg(long, default_value = "EU")]
        framework: String,
        /// RFC 3339 instant or a date (end of that day, UTC): a report received after it is late.
        #[arg(long)]
        deadline: Option<String>,
    },
    /// Per material, the sum over the States' last accepted revisions: gross, contained, each
    /// State's share, withheld notifications counted, and the coverage of the annual
    /// consumption and net-import figures the States registered; every figure names its report.
    Aggregate {
        /// The framework: `EU` (CRM Act Art. 22), `IEA` or `NATO`.
        #[arg(long, default_value = "EU")]
        framework: String,
        /// The reporting period: 2026 (year), 2026-H1 (half), 2026-Q3 (quarter) or 2026-05 (month).
        #[arg(long)]
        period: String,
        /// Also write a bar chart of stock per material by State to this file: PNG when its
        /// name ends in `.png`, else SVG.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn argument_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// Every argument of every verb has a help line, and every verb an about line (not the
    /// doc of a struct it flattens).
    #[test]
    fn every_verb_and_argument_says_what_it_is() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && path != "stockpile" {
                missing.push(format!("{path} (about)"));
            }
            if cmd.get_about().is_some_and(|a| a.to_string().contains("Options every posting verb takes")) {
                missing.push(format!("{path} (about is a flattened struct's)"));
            }
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "stockpile", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}

/// One measured scenario of `stockpile bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// This machine's speed at Ed25519, SHA-256 and fdatasync, one core each: what every
    /// other figure is read against.
    Machine,
    /// Embedded durable signed appends, once per `--clients` count.
    Append,
    /// Appends over NATS to the ledger service (in-process, own nats-server).
    AppendNats,
    /// The same on the accounts configuration `stockpile nats-config` writes: the service as
    /// its `ledger`/`ledger-publisher` users, the clients as partner NL's user posting on its
    /// own channel through the service import (ratios to `append-nats` when both run).
    AppendNatsAccounts,
    /// The same with the ledger serving `--replicate` (each answer waits for the stream's ack
    /// of its records; ratios to `append-nats` when both run).
    AppendNatsReplicated,
    /// Appends over NATS on a three-node JetStream cluster of the bench's own (loopback), the
    /// ledger's streams with three replicas.
    AppendNatsCluster,
    /// The same with the ledger serving `--replicate` (each answer waits for the stream's ack,
    /// sent once two of the three nodes stored the record; ratios to `append-nats-cluster`
    /// when both run).
    AppendNatsClusterReplicated,
    /// Post-to-visible latency in the projector service at `--rate` events/s.
    Visible,
    /// Generating the long history the next four run over (sign + decide + commit).
    History,
    /// Projector catch-up over the history.
    CatchUp,
    /// Replay of the history into the ledger's state.
    Replay,
    /// Audit: checkpoint, export, chain verification, full verification.
    Audit,
    /// As-of holdings query latency over the history.
    AsOf,
    /// Inclusion and consistency proof latency over the history (stored Merkle nodes).
    Proof,
    /// Checkpoint-and-cosign latency over NATS with three witnesses (spawned
    /// `stockpile witness serve`), one record appended before each checkpoint, on a ledger
    /// of a generated `--history`.
    Cosign,
    /// Appends' latency while another partner floods `ledger.proof` (1,000 requests/s for
    /// 10 s) on a ledger of a generated `--history`, on the accounts configuration; then how
    /// long until everything answers again.
    ProofFlood,
    /// Baseline: raw sled insert + flush (+ fdatasync) of the same record bytes.
    Sled,
    /// Baseline: JetStream publish-with-ack of the same bytes (default and `sync_interval: always`).
    Jetstream,
    /// Baseline: PostgreSQL, one transaction per event with the same balance check.
    Postgres,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Scenarios to run, in this order (default: all).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Events per append scenario and per baseline.
    #[arg(long, default_value_t = crate::commands::bench::EVENTS_DEFAULT)]
    pub events: u64,
    /// Concurrent submitters, comma-separated: each append scenario and baseline runs once per count.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Commands in the generated history that catch-up, replay, audit, as-of and proof run over
    /// (cosign and proof-flood generate one of this size of their own).
    #[arg(long, default_value_t = crate::commands::bench::HISTORY_DEFAULT)]
    pub history: u64,
    /// Offered rate of the post-to-visible scenario, events per second.
    #[arg(long, default_value_t = crate::commands::bench::RATE_DEFAULT)]
    pub rate: u64,
    /// Longest timed run (one measurement), in seconds: a run stops early and reports what it did.
    #[arg(long, default_value_t = crate::commands::bench::SCENARIO_SECONDS_DEFAULT)]
    pub seconds: u64,
    /// Scratch directory for ledgers, stores and servers (default: a temporary one, removed after).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Run one scenario in this process and print its figures as one JSON line (the parent
    /// runs each scenario in a child process so each peak RSS is that scenario's own).
    #[arg(long, hide = true)]
    pub scenario_child: Option<Scenario>,
}

/// The shells `stockpile completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl AuditVerb {
    /// Whether the verb reads the ledger (its store, or over `--nats` the running service);
    /// the others work on files alone.
    pub fn reads_the_ledger(&self) -> bool {
        match self {
            AuditVerb::Checkpoint { .. }
            | AuditVerb::Export { .. }
            | AuditVerb::Prove { .. }
            | AuditVerb::Consistency { .. } => true,
            AuditVerb::Verify { file, .. } => file.is_none(),
            AuditVerb::Check { .. } | AuditVerb::Reproduce { .. } | AuditVerb::Replay { .. } => false,
        }
    }
}
