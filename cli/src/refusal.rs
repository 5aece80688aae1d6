//! What the NATS server refused the CLI, learned from its `-ERR` lines.
//!
//! A request the server's permissions refuse is dropped by the server: no responder ever
//! sees it, so nothing answers and the client would wait out its whole request timeout. The
//! server does tell the client, asynchronously, with
//! `-ERR 'Permissions Violation for Publish to "<subject>"'` (or `for Subscription to`),
//! which async-nats hands to the connection's event callback. [`Refusals`] turns those lines
//! into [`Refusal`]s on a broadcast channel, so a request or a subscription can race its
//! answer against the refusal of its own subject and end at once.

use tokio::sync::broadcast;

/// Refusals buffered for a listener that is behind. The CLI has one request or one
/// subscription in flight at a time, so a handful is plenty; a listener that still falls
/// behind skips to the newest (a missed refusal then costs the request timeout, no more).
const REFUSALS_BUFFERED_MAX: usize = 64;

/// What the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Publish,
    Subscribe,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Publish => "publish to",
            Operation::Subscribe => "subscribe to",
        })
    }
}

/// One permissions violation the server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub operation: Operation,
    pub subject: String,
}

impl Refusal {
    /// Reads a server error line (as async-nats passes it, quotes around it trimmed):
    /// `Permissions Violation for Publish to "subject"`, `… for Subscription to "subject"`
    /// (a queue subscription adds ` using queue "q"`). Anything else is not a refusal.
    pub fn parse(error: &str) -> Option<Refusal> {
        let rest = error.trim().strip_prefix("Permissions Violation for ")?;
        let (operation, rest) = if let Some(rest) = rest.strip_prefix("Publish to ") {
            (Operation::Publish, rest)
        } else {
            (Operation::Subscribe, rest.strip_prefix("Subscription to ")?)
        };
        let subject = rest.strip_prefix('"')?.split('"').next()?;
        Some(Refusal { operation, subject: subject.to_string() })
    }

    /// Whether this refusal is of a request on `subject` whose replies come to `inbox`: the
    /// publish itself, or the subscription to the reply inbox.
    fn stops_request(&self, subject: &str, inbox: &str) -> bool {
        match self.operation {
            Operation::Publish => self.subject == subject,
            Operation::Subscribe => self.subject.starts_with(inbox),
        }
    }
}

/// The refusals of one connection, to listen to.
#[derive(Clone)]
pub struct Refusals {
    sender: broadcast::Sender<Refusal>,
}

impl Refusals {
    pub fn new() -> Refusals {
        Refusals { sender: broadcast::channel(REFUSALS_BUFFERED_MAX).0 }
    }

    /// `options` with an event callback that reports every permissions violation here.
    pub fn watch(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        let sender = self.sender.clone();
        options.event_callback(move |event| {
            let sender = sender.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event {
                    if let Some(refusal) = Refusal::parse(&text) {
                        // No listener: nothing is in flight that this concerns.
                        let _ = sender.send(refusal);
                    }
                }
            }
        })
    }

    /// A listener for refusals from now on: take it *before* sending, so none is missed.
    pub fn listen(&self) -> Listener {
        Listener { receiver: self.sender.subscribe() }
    }
}

pub struct Listener {
    receiver: broadcast::Receiver<Refusal>,
}

impl Listener {
    /// The first refusal that `concerns`; pending for ever if none comes.
    pub async fn first(&mut self, concerns: impl Fn(&Refusal) -> bool) -> Refusal {
        loop {
            match self.receiver.recv().await {
                Ok(refusal) if concerns(&refusal) => return refusal,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// The refusal of a request on `subject` with replies to `inbox`.
    pub async fn of_request(&mut self, subject: &str, inbox: &str) -> Refusal {
        self.first(|r| r.stops_request(subject, inbox)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_servers_violation_lines() {
        let publish = Refusal::parse(r#"Permissions Violation for Publish to "stockpile.v1.ledger.range""#);
        assert_eq!(
            publish,
            Some(Refusal { operation: Operation::Publish, subject: "stockpile.v1.ledger.range".into() })
        );
        let queue = Refusal::parse(r#"Permissions Violation for Subscription to "a.>" using queue "q""#);
        assert_eq!(queue, Some(Refusal { operation: Operation::Subscribe, subject: "a.>".into() }));
        assert_eq!(Refusal::parse("Maximum Payload Violation"), None);
        assert_eq!(Refusal::parse("Permissions Violation for Publish to unquoted"), None);
    }

    #[test]
    fn a_request_is_stopped_by_its_own_subject_or_its_inbox_only() {
        let publish = |s: &str| Refusal { operation: Operation::Publish, subject: s.into() };
        let subscribe = |s: &str| Refusal { operation: Operation::Subscribe, subject: s.into() };
        assert!(publish("x.range").stops_request("x.range", "_INBOX.K"));
        assert!(!publish("x.append").stops_request("x.range", "_INBOX.K"));
        assert!(subscribe("_INBOX.K.abc.*").stops_request("x.range", "_INBOX.K"));
        assert!(!subscribe("x.range").stops_request("x.range", "_INBOX.K"));
    }
}
