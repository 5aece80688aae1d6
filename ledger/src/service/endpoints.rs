//! The request/reply side: a NATS micro service (`$SRV.PING|INFO|STATS.stockpile-ledger`)
//! with the `append`, `append-as-partner`, `range`, `checkpoint` and `proof` endpoints, each request handled in its
//! own task.
//!
//! Every request that carries a reply subject is answered: with its reply, or with a
//! [`crate::wire::ErrorReply`] whose `code` says why the whole request was refused.
//! Requests run concurrently, at most [`super::Limits::requests_in_flight_max`] at once, so
//! the group-commit writer sees many callers' commands per fsync.

use super::checkpoints::{self, Checkpointer};
use super::config::Limits;
use super::error::{RequestError, ServiceError};
use super::shutdown::Stop;
use super::subjects::{APPEND, APPEND_AS_PARTNER, CHECKPOINT, PROOF, RANGE, SERVICE_NAME};
use super::{append, range};
use crate::LedgerHandle;
use async_nats::service::{Request, Service, ServiceExt};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy)]
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

#[derive(Clone)]
struct Context {
    client: async_nats::Client,
    /// Where checkpoints signed on request are published (the responder only answers).
    publisher: async_nats::Client,
    ledger: LedgerHandle,
    limits: Arc<Limits>,
    checkpointer: Arc<Checkpointer>,
}

impl Endpoints {
    /// Serves requests until `stop`; then stops taking new ones, finishes those in flight
    /// and flushes their replies.
    pub(crate) async fn serve(
        self,
        client: async_nats::Client,
        publisher: async_nats::Client,
        ledger: LedgerHandle,
        limits: Limits,
        checkpointer: Arc<Checkpointer>,
        mut stop: Stop,
    ) -> Result<(), ServiceError> {
        let in_flight = Arc::new(Semaphore::new(limits.requests_in_flight_max));
        let context = Context { client: client.clone(), publisher, ledger, limits: Arc::new(limits), checkpointer };
        let mut requests = futures::stream::select_all([
            self.append.map(|request| (Api::Append, request)).boxed(),
            self.append_as_partner.map(|request| (Api::AppendAsPartner, request)).boxed(),
            self.range.map(|request| (Api::Range, request)).boxed(),
            self.checkpoint.map(|request| (Api::Checkpoint, request)).boxed(),
            self.proof.map(|request| (Api::Proof, request)).boxed(),
        ]);
        let mut tasks = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = stop.wait() => break,
            };
            let (api, request) = tokio::select! {
                next = requests.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                () = stop.wait() => break,
            };
            let context = context.clone();
            tasks.spawn(async move {
                handle(api, request, &context).await;
                drop(permit);
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
    let result = match api {
        Api::Append => append::handle(payload, None, &context.ledger, &context.limits).await,
        Api::AppendAsPartner => match append::origin(&request.message.subject) {
            Ok(origin) => append::handle(payload, Some(origin), &context.ledger, &context.limits).await,
            Err(e) => Err(e),
        },
        Api::Range => range::handle(payload, &context.ledger, &context.limits).await,
        Api::Checkpoint => checkpoints::handle_checkpoint(&context.checkpointer, &context.publisher).await,
        Api::Proof => checkpoints::handle_proof(payload, &context.ledger).await,
    };
    let max = context.client.server_info().max_payload;
    let body = match result {
        Ok(body) if body.len() <= max => body,
        Ok(body) => error_body(&RequestError::ReplyTooLarge { bytes: body.len(), max }),
        Err(e) => {
            tracing::debug!(?api, code = e.code(), error = %e, "request refused");
            error_body(&e)
        }
    };
    if let Err(e) = request.respond(Ok(body.into())).await {
        tracing::warn!(?api, error = %e, "could not send a reply");
    }
}

fn error_body(e: &RequestError) -> Vec<u8> {
    serde_json::to_vec(&e.to_reply()).expect("an error reply always encodes")
}
