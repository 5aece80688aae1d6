//! [`Remote`]: the [`Backend`] over NATS (`--nats URL`), talking to a running ledger service
//! (`stockpile.v1.ledger.append`, `.range`) and projector (`stockpile.v1.holdings.query`).
//! The CLI is synchronous: the backend owns a current-thread tokio runtime and blocks on it.

use crate::client::Backend;
use crate::error::{operational, usage, CliError, Result};
use crate::refusal::{Operation, Refusal, Refusals};
use std::time::{Duration, Instant};
use stockpile_ledger::audit::export::{Lines, LinesError};
use stockpile_ledger::audit::Checkpoint;
use stockpile_ledger::service::access::{self, Identity};
use stockpile_ledger::service::subjects::{
    partner_append_subject, partner_subject, APPEND, CHECKPOINT, HISTORY_QUERY_AS_PARTNER, HOLDINGS_QUERY as HOLDINGS,
    HOLDINGS_QUERY_AS_PARTNER, PROJECTOR_REPORT, PROJECTOR_REPORT_AS_PARTNER, PROJECTOR_SUBMIT_AS_PARTNER, PROOF,
    RANGE,
};
use stockpile_ledger::signing::SignedCommand;
use stockpile_ledger::wire::{
    AppendReply, AppendRequest, AppendResult, ErrorReply, ProofReply, ProofRequest, RangeReply, RangeRequest,
};
use stockpile_projector::intake::{self, Arrival};
use stockpile_projector::report::{Report, ReportRequest};
use stockpile_projector::service::wire::{ReportAsk, SubmitAsk, SubmitReply};
use stockpile_projector::{History, HistoryQuery, HistoryRow, Holdings, HoldingsQuery};

const EVENTS_PREFIX: &str = "stockpile.v1.events.";
const FEED_PREFIX: &str = "stockpile.v1.feed.";

/// Commands per append request: the ledger service's limit (`APPEND_COMMANDS_MAX`).
pub const APPEND_CHUNK_COMMANDS_MAX: usize = 1024;
/// Bytes per append request, below the service's `APPEND_REQUEST_BYTES_MAX` (768 KiB) with
/// room for the envelope, so a long `post` file is split rather than refused.
pub const APPEND_CHUNK_BYTES_MAX: usize = 700 << 10;
/// How long to wait for the first connection: a missing server is reported, not awaited.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one reply. An append of a full batch commits in milliseconds; this is
/// for a loaded machine, and a lost reply is reported rather than waited on for ever.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the projector to fold the ledger's head before answering holdings.
pub const PROJECTOR_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages one holdings answer is followed through: at the default 1 MiB max_payload and
/// ~200 bytes a row, 2 million rows — far more than a stockpile holds lots; a bound so a
/// projector that keeps answering `next` cannot keep the CLI for ever.
const HOLDINGS_PAGES_MAX: usize = 400;
/// Most pages one history answer is followed through (each up to `HISTORY_ROWS_MAX` rows).
const HISTORY_PAGES_MAX: usize = 400;
/// Pause between two holdings queries while the projector catches up.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// Why a call over NATS failed before any service answered it. Each names what was asked,
/// of whom, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server's permissions refused this user the subject: nothing was delivered.
    #[error(
        "the NATS server refused user {user} permission to {operation} {subject}: this user may not {operation} \
         {subject}; {hint}"
    )]
    Refused { user: String, operation: Operation, subject: String, hint: &'static str },
    /// Nobody subscribes to the subject: the service is not running (or not yet).
    #[error("no {service} answers on {subject} at {url}: is it running? start it, or check the --nats URL")]
    NoResponders { service: &'static str, subject: String, url: String },
}

impl From<RemoteError> for CliError {
    fn from(e: RemoteError) -> CliError {
        operational(e)
    }
}

/// What to do about a refusal of `subject`, as `stockpile nats-config` grants rights
/// (`service::access::permissions`; docs/PARTNERS.md §5).
fn refusal_hint(subject: &str) -> &'static str {
    match subject {
        RANGE => {
            "the log is read by the auditor user; a partner follows its own feed (`stockpile --nats-partner P watch`)"
        }
        CHECKPOINT => {
            "signing a checkpoint on request is not among this user's rights; the ledger publishes its \
             checkpoints on stockpile.v1.checkpoints, which partners and the auditor may subscribe to"
        }
        HOLDINGS => "every partner's holdings are for the auditor, the Commission and admin; a partner asks for its own with --nats-partner P",
        APPEND => "a partner posts on its own channel: pass --nats-partner with its code",
        SRV_PING => "only the ADMIN account imports $SRV (the services' ping, info and stats): connect with admin.nk",
        s if s.starts_with(FEED_PREFIX) => {
            "a partner subscribes to its own feed only: pass --nats-partner with its code"
        }
        s if s.starts_with(EVENTS_PREFIX) => {
            "the complete event stream is for the auditor user; a partner watches its own feed with --nats-partner P"
        }
        _ => "connect with the --nats-nkey of a user whose role allows it (docs/PARTNERS.md lists each user's rights)",
    }
}

/// Why a request got no reply from a service.
enum Unanswered {
    /// The server's permissions refused this user the subject.
    Refused(RemoteError),
    /// The server said at once that nobody subscribes to the subject.
    NoResponders(CliError),
    /// Anything else: the connection failed, the timeout passed.
    Failed(CliError),
}

impl Unanswered {
    fn into_error(self) -> CliError {
        match self {
            Unanswered::Refused(e) => e.into(),
            Unanswered::NoResponders(e) | Unanswered::Failed(e) => e,
        }
    }
}

pub struct Remote {
    url: String,
    /// The NATS user, as the server knows it (the seed file's name), for messages.
    user: String,
    /// Where replies come: `_INBOX.<public key>` for a user, `_INBOX` without one.
    inbox: String,
    refusals: Refusals,
    /// Post as this partner (`--nats-partner`): appends on its own subject, watch on its feed.
    partner: Option<String>,
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
}

impl Remote {
    /// Connects to `url` (comma-separated servers allowed); an unreachable server is an
    /// operational error (exit 2) naming the URL.
    /// `user` names the identity in messages (`partner-NL`, the seed file's name).
    pub fn connect(url: &str, identity: Option<(&Identity, String)>) -> Result<Remote> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(operational)?;
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let refusals = Refusals::new();
        let options = access::authenticate(async_nats::ConnectOptions::new(), identity.as_ref().map(|(i, _)| *i))
            .name("stockpile-cli")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REPLY_TIMEOUT));
        let client = runtime
            .block_on(refusals.watch(options).connect(servers))
            .map_err(|e| operational(format!("cannot reach NATS at {url}: {e}")))?;
        let (user, inbox) = match identity {
            Some((identity, user)) => (user, access::inbox_prefix(identity.public_key())),
            None => ("(none: no --nats-nkey)".to_string(), "_INBOX".to_string()),
        };
        Ok(Remote { url: url.to_string(), user, inbox, refusals, partner: None, runtime, client })
    }

    fn refused(&self, refusal: Refusal) -> RemoteError {
        let hint = refusal_hint(&refusal.subject);
        RemoteError::Refused { user: self.user.clone(), operation: refusal.operation, subject: refusal.subject, hint }
    }

    /// Sends one request; a reply that is an [`ErrorReply`] becomes an operational error.
    /// A request the server refuses (its permissions) ends as soon as the server says so.
    fn request<T: serde::de::DeserializeOwned>(&self, subject: &str, body: Vec<u8>, who: &'static str) -> Result<T> {
        let reply = self.send(subject, body, who).map_err(Unanswered::into_error)?;
        self.decode(subject, &reply, who)
    }

    /// Sends one request and waits for its reply, telling the server's refusal apart.
    fn send(
        &self,
        subject: &str,
        body: Vec<u8>,
        who: &'static str,
    ) -> std::result::Result<async_nats::Message, Unanswered> {
        let mut refusals = self.refusals.listen();
        self.runtime.block_on(async {
            tokio::select! {
                reply = self.client.request(subject.to_string(), body.into()) => reply.map_err(|e| match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => Unanswered::NoResponders(RemoteError::NoResponders {
                        service: who,
                        subject: subject.to_string(),
                        url: self.url.clone(),
                    }
                    .into()),
                    _ => Unanswered::Failed(operational(format!("{subject} at {}: {e}", self.url))),
                }),
                refusal = refusals.of_request(subject, &self.inbox) => Err(Unanswered::Refused(self.refused(refusal))),
            }
        })
    }

    /// A service's reply: an [`ErrorReply`] becomes an operational error naming `who`.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        subject: &str,
        reply: &async_nats::Message,
        who: &str,
    ) -> Result<T> {
        if let Ok(error) = serde_json::from_slice::<ErrorReply>(&reply.payload) {
            return Err(operational(format!(
                "{who} refused the request ({}): {}",
                error.error.code, error.error.message
            )));
        }
        serde_json::from_slice(&reply.payload).map_err(|e| operational(format!("unexpected reply on {subject}: {e}")))
    }

    fn range(&self, request: RangeRequest) -> Result<RangeReply> {
        self.request(RANGE, serde_json::to_vec(&request).expect("encodes"), "ledger service")
    }

    /// The ledger's committed head, or `None` when this user may not read `ledger.range`
    /// (a partner, the Commission: the log is the auditor's and the admin's to read).
    fn head_if_readable(&self) -> Result<Option<u64>> {
        // A range past any head is empty and carries the head.
        let past_any = RangeRequest { from: u64::MAX, to: None, limit: None };
        match self.send(RANGE, serde_json::to_vec(&past_any).expect("encodes"), "ledger service") {
            Ok(reply) => Ok(Some(self.decode::<RangeReply>(RANGE, &reply, "ledger service")?.head)),
            Err(Unanswered::Refused(_)) => Ok(None),
            Err(failed) => Err(failed.into_error()),
        }
    }

    /// Acts as partner `code`'s NATS user: appends go to `stockpile.v1.ledger.append.<code>`
    /// and its queries go to the partner subjects (`commands::watch` follows its feed itself).
    pub fn acting_for(mut self, code: Option<String>) -> Remote {
        self.partner = code;
        self
    }
}

/// Splits commands into requests of at most [`APPEND_CHUNK_COMMANDS_MAX`] commands and
/// about [`APPEND_CHUNK_BYTES_MAX`] bytes (a single larger command goes alone, and the
/// service answers it with its typed error).
fn chunks(commands: Vec<SignedCommand>) -> Vec<Vec<SignedCommand>> {
    let mut out: Vec<Vec<SignedCommand>> = Vec::new();
    let mut bytes = 0;
    for command in commands {
        let size = serde_json::to_vec(&command).map_or(0, |b| b.len() + 1);
        let full =
            out.last().is_none_or(|c| c.len() >= APPEND_CHUNK_COMMANDS_MAX || bytes + size > APPEND_CHUNK_BYTES_MAX);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("pushed above").push(command);
    }
    out
}

impl Remote {
    /// Where holdings are asked: `stockpile.v1.holdings.query`, or as partner `P`
    /// (`--nats-partner`) `stockpile.v1.holdings.query.<P>`, which the projector answers with
    /// P's holdings only.
    fn holdings_subject(&self) -> String {
        self.partner.as_deref().map_or_else(|| HOLDINGS.to_string(), |p| partner_subject(HOLDINGS_QUERY_AS_PARTNER, p))
    }

    /// `first` with every later page appended, or `None` when the projector moved on
    /// between pages (the caller asks again from the first).
    fn rest_of(&self, query: &HoldingsQuery, mut first: Holdings) -> Result<Option<Holdings>> {
        let mut pages = 0;
        while let Some(offset) = first.next.take() {
            pages += 1;
            if pages > HOLDINGS_PAGES_MAX {
                return Err(operational(format!(
                    "the holdings answer runs past {HOLDINGS_PAGES_MAX} pages: narrow the query with filters"
                )));
            }
            let page_query = HoldingsQuery { offset, ..query.clone() };
            let body = serde_json::to_vec(&page_query).expect("encodes");
            let page: Holdings = self.request(&self.holdings_subject(), body, "projector")?;
            if (page.seq, page.head_hash) != (first.seq, first.head_hash) {
                return Ok(None);
            }
            if page.rows.is_empty() && page.next.is_some() {
                return Err(operational(format!("the projector answered an empty page at row {offset}")));
            }
            first.rows.extend(page.rows);
            first.next = page.next;
        }
        Ok(Some(first))
    }
}

impl Backend for Remote {
    fn append(&mut self, commands: Vec<SignedCommand>, atomic: bool) -> Result<Vec<AppendResult>> {
        let chunks = chunks(commands);
        if atomic && chunks.len() > 1 {
            return Err(usage(format!(
                "an atomic batch must fit one request ({APPEND_CHUNK_COMMANDS_MAX} commands, \
                 {APPEND_CHUNK_BYTES_MAX} bytes) in remote mode; split the file or drop --atomic"
            )));
        }
        let mut results = Vec::new();
        for chunk in chunks {
            let count = chunk.len();
            let body = serde_json::to_vec(&AppendRequest { commands: chunk, atomic }).expect("encodes");
            let subject = self.partner.as_deref().map_or_else(|| APPEND.to_string(), partner_append_subject);
            let reply: AppendReply = self.request(&subject, body, "ledger service")?;
            if reply.results.len() != count {
                return Err(operational(format!(
                    "the ledger answered {} results for {count} commands",
                    reply.results.len()
                )));
            }
            results.extend(reply.results);
        }
        Ok(results)
    }

    fn records(&mut self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        let mut records = Vec::new();
        let mut next = Some(from.max(1));
        while let Some(from) = next.filter(|f| *f <= to) {
            let page = self.range(RangeRequest { from, to: Some(to), limit: None })?;
            records.extend(page.records.iter().map(|r| r.get().as_bytes().to_vec()));
            next = page.next;
        }
        Ok(records)
    }

    fn head(&mut self) -> Result<u64> {
        // A range past any head is empty and carries the head.
        Ok(self.range(RangeRequest { from: u64::MAX, to: None, limit: None })?.head)
    }

    /// Waits (bounded) until the projector has folded the ledger's head, so an answer right
    /// after an append includes it, as in the embedded mode.
    /// An answer too large for one message comes in pages (`next`), followed here to the
    /// end; pages cut at another record than the first are thrown away and asked again.
    /// A partner or the Commission may not read the ledger's head (`ledger.range` is the log):
    /// for them the answer is the projector's views as they stand, cut at the `seq` it names.
    fn holdings(&mut self, query: &HoldingsQuery) -> Result<Holdings> {
        let head = if self.partner.is_some() { 0 } else { self.head_if_readable()?.unwrap_or(0) };
        let body = serde_json::to_vec(query).expect("encodes");
        let subject = self.holdings_subject();
        let deadline = Instant::now() + PROJECTOR_CATCH_UP_TIMEOUT;
        loop {
            let answer: Holdings = self.request(&subject, body.clone(), "projector")?;
            if answer.seq >= head {
                if let Some(whole) = self.rest_of(query, answer)? {
                    return Ok(whole);
                }
                if Instant::now() >= deadline {
                    return Err(operational(format!(
                        "the projector at {} moved on while its answer was paged, for {}s: ask again when the \
                         ledger is quieter, or narrow the query",
                        self.url,
                        PROJECTOR_CATCH_UP_TIMEOUT.as_secs()
                    )));
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(operational(format!(
                    "the projector at {} is at record {}, behind the ledger's head {head}, after {}s",
                    self.url,
                    answer.seq,
                    PROJECTOR_CATCH_UP_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(CATCH_UP_POLL);
        }
    }

    /// As partner `P`: `stockpile.v1.history.query.<P>`, every page (the service cuts them to
    /// fit max_payload and says where the next begins).
    fn partner_history(&mut self, query: &HistoryQuery) -> Result<Option<Vec<HistoryRow>>> {
        let Some(partner) = self.partner.clone() else { return Ok(None) };
        let subject = partner_subject(HISTORY_QUERY_AS_PARTNER, &partner);
        let mut query = query.clone();
        let mut rows = Vec::new();
        for _ in 0..HISTORY_PAGES_MAX {
            let page: History = self.request(&subject, serde_json::to_vec(&query).expect("encodes"), "projector")?;
            rows.extend(page.rows);
            match page.next {
                Some(offset) => query.offset = offset,
                None => return Ok(Some(rows)),
            }
        }
        Err(operational(format!(
            "the projector at {} kept paging the history past {HISTORY_PAGES_MAX} pages: narrow the query",
            self.url
        )))
    }

    /// Built by the projector service from its views, at the ledger's head. As a partner
    /// (`--nats-partner P`) on `stockpile.v1.projector.report.<P>`.
    fn report(&mut self, request: &ReportRequest) -> Result<Report> {
        let ask = ReportAsk {
            partner: Some(request.partner.clone()),
            period: request.period,
            framework: request.framework,
            materials: request.materials,
        };
        let subject = match &self.partner {
            Some(p) => partner_subject(PROJECTOR_REPORT_AS_PARTNER, p),
            None => PROJECTOR_REPORT.to_string(),
        };
        self.request(&subject, serde_json::to_vec(&ask).expect("encodes"), "projector")
    }

    /// `stockpile.v1.projector.submit.<P>`: the service builds and publishes; what it
    /// publishes is always what its log says.
    fn submit_report(&mut self, request: &ReportRequest, provisional: bool) -> Result<SubmitReply> {
        if let Some(p) = self.partner.as_deref().filter(|p| *p != request.partner) {
            return Err(usage(format!("--nats-partner {p} may submit only its own report, not {}'s", request.partner)));
        }
        let ask = SubmitAsk {
            period: request.period,
            framework: request.framework,
            materials: request.materials,
            provisional,
        };
        let subject = partner_subject(PROJECTOR_SUBMIT_AS_PARTNER, &request.partner);
        self.request(&subject, serde_json::to_vec(&ask).expect("encodes"), "projector")
    }

    fn close(self: Box<Self>) -> Result<()> {
        let Remote { runtime, client, url, .. } = *self;
        runtime.block_on(client.flush()).map_err(|e| operational(format!("{url}: {e}")))?;
        Ok(())
    }
}

/// The log of a running ledger as export lines: records `1..=checkpoint.tree_size` paged
/// over `ledger.range`, then the checkpoint the ledger signed for them on request. (A local
/// export also carries the earlier checkpoints; over NATS only this last one is fetched.)
pub struct RemoteLines<'a> {
    remote: &'a Remote,
    next: u64,
    checkpoint: Checkpoint,
    /// Whether the checkpoint line was handed out (it ends the lines).
    done: bool,
    up_to: u64,
}

impl<'a> RemoteLines<'a> {
    /// Asks the ledger for a checkpoint at its head now (or, for a user who may not make it
    /// sign, the latest it published); the lines end with it.
    pub fn at_head(remote: &'a Remote) -> Result<RemoteLines<'a>> {
        let checkpoint = remote.checkpoint()?;
        Ok(RemoteLines { remote, next: 1, up_to: checkpoint.tree_size, checkpoint, done: false })
    }

    pub fn tree_size(&self) -> u64 {
        self.up_to
    }

    /// The checkpoint the lines end with.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl Lines for RemoteLines<'_> {
    fn next_chunk(&mut self, max: usize) -> std::result::Result<Vec<Vec<u8>>, LinesError> {
        let failed = |e: CliError| LinesError::Remote(e.to_string());
        if self.next > self.up_to {
            if self.done {
                return Ok(Vec::new());
            }
            self.done = true;
            return Ok(vec![self.checkpoint.to_line()]);
        }
        let limit = u32::try_from(max).unwrap_or(u32::MAX);
        let page = self
            .remote
            .range(RangeRequest { from: self.next, to: Some(self.up_to), limit: Some(limit) })
            .map_err(failed)?;
        if page.records.is_empty() {
            return Err(LinesError::Remote(format!("the ledger returned no records from seq {}", self.next)));
        }
        self.next += page.records.len() as u64;
        Ok(page.records.iter().map(|r| r.get().as_bytes().to_vec()).collect())
    }

    fn record(&self, seq: u64) -> std::result::Result<Option<Vec<u8>>, LinesError> {
        let page = self
            .remote
            .range(RangeRequest { from: seq, to: Some(seq), limit: Some(1) })
            .map_err(|e| LinesError::Remote(e.to_string()))?;
        Ok(page.records.first().map(|r| r.get().as_bytes().to_vec()))
    }
}

impl Remote {
    /// A checkpoint the ledger signs at its head now (`ledger.checkpoint`, ADMIN's and a
    /// single-account deployment's right), or, when the server refuses this user that, the
    /// latest one the ledger published on `stockpile.v1.checkpoints` (a direct get every
    /// reading account imports).
    /// Either way its signature is checked under the key it names before anyone uses or
    /// prints it (pinning that key is `--ledger-key`'s part, where a verb takes it).
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let checkpoint: Checkpoint = match self.send(CHECKPOINT, Vec::new(), "ledger service") {
            Ok(reply) => self.decode(CHECKPOINT, &reply, "ledger service")?,
            Err(Unanswered::Refused(_)) => self.latest_checkpoint()?,
            Err(failed) => return Err(failed.into_error()),
        };
        checkpoint.verify_signature().map_err(|e| {
            operational(format!(
                "the checkpoint of tree size {} from {} does not verify: {e}",
                checkpoint.tree_size, self.url
            ))
        })?;
        Ok(checkpoint)
    }

    /// A signed checkpoint whose tree holds record `seq`: the latest one the ledger published,
    /// when it does and its signature verifies, so that a reader's every look (`reports
    /// list`) does not make the ledger sign one more; else [`Remote::checkpoint`].
    pub fn checkpoint_covering(&self, seq: u64) -> Result<Checkpoint> {
        match self.latest_checkpoint() {
            Ok(latest) if latest.tree_size >= seq && latest.verify_signature().is_ok() => Ok(latest),
            _ => self.checkpoint(),
        }
    }

    /// The latest checkpoint on `STOCKPILE_CHECKPOINTS`, by a direct get of the stream's last
    /// message: under the accounts' import prefix first, then, only when nothing answers
    /// there (a single-account server), as the JetStream API itself.
    pub fn latest_checkpoint(&self) -> Result<Checkpoint> {
        let api = access::latest_checkpoint_subject();
        let imported = access::local_subject(&api);
        let reply = match self.send(&imported, Vec::new(), "JetStream (direct get)") {
            Ok(reply) => reply,
            Err(Unanswered::NoResponders(_)) => {
                self.send(&api, Vec::new(), "JetStream (direct get)").map_err(Unanswered::into_error)?
            }
            Err(failed) => return Err(failed.into_error()),
        };
        if reply.status.is_some_and(|s| s.as_u16() == 404) {
            return Err(operational(format!(
                "the ledger at {} has published no checkpoint yet (it signs one every interval in which the log grew): try again shortly",
                self.url
            )));
        }
        serde_json::from_slice(&reply.payload).map_err(|e| {
            operational(format!(
                "the latest message on stockpile.v1.checkpoints at {} is not a checkpoint: {e}",
                self.url
            ))
        })
    }

    /// An inclusion or consistency proof from `ledger.proof`.
    pub fn proof(&self, request: &ProofRequest) -> Result<ProofReply> {
        self.request(PROOF, serde_json::to_vec(request).expect("encodes"), "ledger service")
    }
}

impl Remote {
    /// The JetStream API as this user reaches `stream`: under the accounts' import prefix
    /// ([`access::JS_IMPORT_PREFIX`]) when something answers the stream's info there, else —
    /// only when the server says nobody does (a single-account server) — the API itself.
    fn jetstream(&self, stream: &str) -> Result<async_nats::jetstream::Context> {
        let info = access::local_subject(&format!("$JS.API.STREAM.INFO.{stream}"));
        match self.send(&info, Vec::new(), "JetStream") {
            Ok(_) => Ok(async_nats::jetstream::with_prefix(self.client.clone(), access::JS_IMPORT_PREFIX)),
            Err(Unanswered::NoResponders(_)) => Ok(async_nats::jetstream::new(self.client.clone())),
            Err(failed) => Err(failed.into_error()),
        }
    }

    /// Every report on `STOCKPILE_REPORTS`, each checked on arrival: its record `cut_seq`
    /// proved against a signed checkpoint that covers the newest cut
    /// ([`Remote::checkpoint_covering`]; `ledger.proof`, one request per
    /// distinct cut; [`intake::cut_proof`]).
    pub fn arrivals(&self) -> Result<Vec<Arrival>> {
        let js = self.jetstream(stockpile_projector::submit::REPORTS_STREAM)?;
        let mut arrivals = self
            .runtime
            .block_on(intake::read_stream(&js))
            .map_err(|e| operational(format!("reading the submitted reports at {}: {e}", self.url)))?;
        if arrivals.is_empty() {
            return Ok(arrivals);
        }
        let newest_cut = arrivals.iter().map(|a| a.cut_seq).max().unwrap_or(0);
        let checkpoint = self.checkpoint_covering(newest_cut).map_err(|e| format!("no signed checkpoint: {e}"));
        let mut proofs: std::collections::BTreeMap<u64, intake::CutProof> = std::collections::BTreeMap::new();
        for arrival in &mut arrivals {
            let seq = arrival.cut_seq;
            let proof = proofs.entry(seq).or_insert_with(|| match &checkpoint {
                Err(why) => intake::CutProof::Unavailable(why.clone()),
                Ok(checkpoint) => intake::cut_proof(seq, checkpoint, |tree_size| {
                    match self.proof(&ProofRequest::Inclusion { seq, tree_size }).map_err(|e| e.to_string())? {
                        ProofReply::Inclusion(proof) => Ok(proof),
                        ProofReply::Consistency(_) => Err("the ledger answered a consistency proof".into()),
                    }
                }),
            });
            arrival.check_cut(proof);
        }
        Ok(arrivals)
    }
}

/// The subject every NATS micro service answers with its name, id and version.
pub const SRV_PING: &str = "$SRV.PING";

/// A NATS micro service that answered [`SRV_PING`] (the `io.nats.micro.v1.ping_response`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Pong {
    pub name: String,
    pub id: String,
    pub version: String,
}

impl Remote {
    /// Every micro service that answers `$SRV.PING` within `gather`. A user whose account
    /// does not import `$SRV` gets the server's refusal at once.
    pub fn ping_services(&self, gather: Duration) -> Result<Vec<Pong>> {
        let mut refusals = self.refusals.listen();
        let failed = |e: &dyn std::fmt::Display| operational(format!("{SRV_PING} at {}: {e}", self.url));
        self.runtime.block_on(async {
            let inbox = self.client.new_inbox();
            let mut answers = self.client.subscribe(inbox.clone()).await.map_err(|e| failed(&e))?;
            self.client.publish_with_reply(SRV_PING, inbox, Vec::new().into()).await.map_err(|e| failed(&e))?;
            self.client.flush().await.map_err(|e| failed(&e))?;
            let gathered = tokio::time::sleep(gather);
            tokio::pin!(gathered);
            let mut pongs = Vec::new();
            loop {
                tokio::select! {
                    answer = futures::StreamExt::next(&mut answers) => match answer {
                        Some(message) => match serde_json::from_slice::<Pong>(&message.payload) {
                            Ok(pong) => pongs.push(pong),
                            Err(e) => tracing::debug!(error = %e, "an answer to $SRV.PING that is not a ping response"),
                        },
                        None => break,
                    },
                    () = &mut gathered => break,
                    refusal = refusals.of_request(SRV_PING, &self.inbox) => return Err(self.refused(refusal).into()),
                }
            }
            pongs.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
            Ok(pongs)
        })
    }
}
