//! The request/reply side: a NATS micro service (`$SRV.PING|INFO|STATS.stockpile-ledger`)
//! with the `append`, `append-as-partner`, `range`, `checkpoint` and `proof` endpoints, each request handled in its
//! own task.
//!
//! Every request that carries a reply subject is answered: with its reply, or with a
//! [`crate::wire::ErrorReply`] whose `code` says why the whole request was refused.
//!
//! Each class of request (append, append-as-partner, range, checkpoint, proof) has its own
//! [`Gate`]: at most `in_flight_max` run at once and `queued_max` more wait; the next one is
//! answered `overloaded` at once, by the loop that reads the requests, which never waits for
//! a class. So a flood of proofs fills only the proof gate, and appends are read and admitted
//! as before. On the partner channels each partner also has at most
//! [`super::Limits::partner_admitted_max`] admitted, so one partner cannot fill the class.
//! Appends run concurrently so the group-commit writer sees many callers' commands per fsync.

use super::checkpoints::{self, Checkpointer};
use super::config::{ClassLimits, Limits};
use super::error::{RequestError, ServiceError};
use super::shutdown::Stop;
use super::subjects::{APPEND, APPEND_AS_PARTNER, CHECKPOINT, PROOF, RANGE, SERVICE_NAME};
use super::{append, range};
use crate::LedgerHandle;
use async_nats::service::{Request, Service, ServiceExt};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Append,
    AppendAsPartner,
    Range,
    Checkpoint,
    Proof,
}

/// The registered micro service and its two endpoints, not yet serving.
pub(crate) struct Endpoints {
    service: Service,
    append: async_nats::service::endpoint::Endpoint,
    append_as_partner: async_nats::service::endpoint::Endpoint,
    range: async_nats::service::endpoint::Endpoint,
    checkpoint: async_nats::service::endpoint::Endpoint,
    proof: async_nats::service::endpoint::Endpoint,
}

/// Registers the micro service and subscribes its endpoints.
pub(crate) async fn register(client: &async_nats::Client) -> Result<Endpoints, ServiceError> {
    let failed = |e: async_nats::Error| ServiceError::Register { name: SERVICE_NAME, reason: e.to_string() };
    let service = client
        .service_builder()
        .description("stockpile ledger: append signed commands, read records, checkpoints and proofs")
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(failed)?;
    let append = service.endpoint_builder().name("append").add(APPEND).await.map_err(failed)?;
    let append_as_partner =
        service.endpoint_builder().name("append-as-partner").add(APPEND_AS_PARTNER).await.map_err(failed)?;
    let range = service.endpoint_builder().name("range").add(RANGE).await.map_err(failed)?;
    let checkpoint = service.endpoint_builder().name("checkpoint").add(CHECKPOINT).await.map_err(failed)?;
    let proof = service.endpoint_builder().name("proof").add(PROOF).await.map_err(failed)?;
    Ok(Endpoints { service, append, append_as_partner, range, checkpoint, proof })
}

/// What every request is answered with.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) client: async_nats::Client,
    /// Where checkpoints signed on request are published (the responder only answers).
    pub(crate) publisher: async_nats::Client,
    pub(crate) ledger: LedgerHandle,
    pub(crate) limits: Arc<Limits>,
    pub(crate) checkpointer: Arc<Checkpointer>,
    /// `--replicate`: the last seq `STOCKPILE_EVENTS` has stored; appends wait on it.
    pub(crate) replicated: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Context {
    /// The last record readers may see (`range`, `proof`): the committed head, or with
    /// replicated commit the last one the stream stored — a record not yet replicated may
    /// be replaced by another at its seq if this ledger's machine is lost.
    fn visible_head(&self) -> u64 {
        match &self.replicated {
            Some(stored) => *stored.borrow(),
            None => *self.ledger.head().borrow(),
        }
    }
}

impl Endpoints {
    /// Serves requests until `stop`; then stops taking new ones, finishes those in flight
    /// and flushes their replies.
    pub(crate) async fn serve(self, context: Context, mut stop: Stop) -> Result<(), ServiceError> {
        let gates = Gates::new(&context.limits);
        let client = context.client.clone();
        let mut requests = futures::stream::select_all([
            self.append.map(|request| (Api::Append, request)).boxed(),
            self.append_as_partner.map(|request| (Api::AppendAsPartner, request)).boxed(),
            self.range.map(|request| (Api::Range, request)).boxed(),
            self.checkpoint.map(|request| (Api::Checkpoint, request)).boxed(),
            self.proof.map(|request| (Api::Proof, request)).boxed(),
        ]);
        let mut partners: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let mut tasks = JoinSet::new();
        loop {
            let (api, request) = tokio::select! {
                next = requests.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                () = stop.wait() => break,
            };
            let admitted = match gates.admit(api, &request, &mut partners, context.limits.partner_admitted_max) {
                Ok(admitted) => admitted,
                Err(e) => {
                    // Answered here, without a task: an overloaded class costs one publish.
                    if request.message.reply.is_some() {
                        respond(api, request, &error_body(&e)).await;
                    }
                    continue;
                }
            };
            let context = context.clone();
            tasks.spawn(async move {
                let running = admitted.running.acquire_owned().await.expect("the semaphore is never closed");
                handle(api, request, &context).await;
                drop((running, admitted.permits));
            });
            while let Some(done) = tasks.try_join_next() {
                log_panic(done);
            }
        }
        // Unsubscribe first: requests not yet taken stay unanswered (nothing was done for
        // them; callers time out and resend, and event ids make a resend safe).
        drop(requests);
        // Stops the PING/INFO/STATS responder. Its error only says the endpoints (dropped
        // above) no longer listen for the stop broadcast.
        let _ = self.service.stop().await;
        while let Some(done) = tasks.join_next().await {
            log_panic(done);
        }
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "flushing the last replies");
        }
        Ok(())
    }
}

/// One class's bounds: `admitted` counts requests running or waiting, `running` those running.
struct Gate {
    class: &'static str,
    admitted: Arc<Semaphore>,
    admitted_max: usize,
    running: Arc<Semaphore>,
}

impl Gate {
    fn new(class: &'static str, limits: ClassLimits) -> Gate {
        let admitted_max = limits.in_flight_max + limits.queued_max;
        Gate {
            class,
            admitted: Arc::new(Semaphore::new(admitted_max)),
            admitted_max,
            running: Arc::new(Semaphore::new(limits.in_flight_max)),
        }
    }

    fn try_admit(&self) -> Result<OwnedSemaphorePermit, RequestError> {
        self.admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| RequestError::Overloaded { class: self.class, admitted: self.admitted_max })
    }
}

struct Gates {
    append: Gate,
    append_as_partner: Gate,
    range: Gate,
    checkpoint: Gate,
    proof: Gate,
}

/// A request let in: its place in the class (and its partner's share), and the class's
/// running slots to wait for.
struct Admitted {
    permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    running: Arc<Semaphore>,
}

impl Gates {
    fn new(limits: &Limits) -> Gates {
        Gates {
            append: Gate::new("append", limits.append),
            append_as_partner: Gate::new("append-as-partner", limits.append_as_partner),
            range: Gate::new("range", limits.range),
            checkpoint: Gate::new("checkpoint", limits.checkpoint),
            proof: Gate::new("proof", limits.proof),
        }
    }

    /// Admits a request to its class, or says it is over the class's (or its partner's)
    /// bound. Partners are keyed by the last subject token only when it is a reference
    /// partner, so the map holds at most one entry per partner of the reference list.
    fn admit(
        &self,
        api: Api,
        request: &Request,
        partners: &mut HashMap<String, Arc<Semaphore>>,
        partner_admitted_max: usize,
    ) -> Result<Admitted, RequestError> {
        let gate = match api {
            Api::Append => &self.append,
            Api::AppendAsPartner => &self.append_as_partner,
            Api::Range => &self.range,
            Api::Checkpoint => &self.checkpoint,
            Api::Proof => &self.proof,
        };
        let partner = match api {
            Api::AppendAsPartner => match append::origin(&request.message.subject) {
                Ok(origin) => {
                    let share = partners
                        .entry(origin.as_str().to_string())
                        .or_insert_with(|| Arc::new(Semaphore::new(partner_admitted_max)));
                    let permit = share.clone().try_acquire_owned().map_err(|_| RequestError::Overloaded {
                        class: "append-as-partner (this partner's share)",
                        admitted: partner_admitted_max,
                    })?;
                    Some(permit)
                }
                // Refused by the handler with its typed error; admitted to the class like any.
                Err(_) => None,
            },
            _ => None,
        };
        let class = gate.try_admit()?;
        Ok(Admitted { permits: (class, partner), running: gate.running.clone() })
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a request handler failed; its request got no reply");
    }
}

async fn handle(api: Api, request: Request, context: &Context) {
    if request.message.reply.is_none() {
        // Published, not requested: nobody would see the outcome, so do nothing.
        tracing::warn!(subject = %request.message.subject, "ignoring a message without a reply subject");
        return;
    }
    let payload = &request.message.payload;
    let max = context.client.server_info().max_payload;
    let result = match api {
        Api::Append => {
            append::handle(payload, None, &context.ledger, &context.limits, context.replicated.as_ref()).await
        }
        Api::AppendAsPartner => match append::origin(&request.message.subject) {
            Ok(origin) => {
                let replicated = context.replicated.as_ref();
                append::handle(payload, Some(origin), &context.ledger, &context.limits, replicated).await
            }
            Err(e) => Err(e),
        },
        Api::Range => range::handle(payload, &context.ledger, context.visible_head(), &context.limits, max).await,
        Api::Checkpoint => checkpoints::handle_checkpoint(&context.checkpointer, &context.publisher).await,
        Api::Proof => checkpoints::handle_proof(payload, &context.ledger, context.visible_head()).await,
    };
    let body = match result {
        Ok(body) if body.len() <= max => body,
        Ok(body) => error_body(&RequestError::ReplyTooLarge { bytes: body.len(), max }),
        Err(e) => {
            tracing::debug!(?api, code = e.code(), error = %e, "request refused");
            error_body(&e)
        }
    };
    respond(api, request, &body).await;
}

async fn respond(api: Api, request: Request, body: &[u8]) {
    if let Err(e) = request.respond(Ok(body.to_vec().into())).await {
        tracing::warn!(?api, error = %e, "could not send a reply");
    }
}

fn error_body(e: &RequestError) -> Vec<u8> {
    serde_json::to_vec(&e.to_reply()).expect("an error reply always encodes")
}
