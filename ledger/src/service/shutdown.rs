//! The stop signal shared by the service's tasks: set once when [`super::serve`]'s shutdown
//! future completes (or when the service is dropped), seen by every task.

use tokio::sync::watch;

/// The sending side, held by [`super::serve`]. Dropping it stops the tasks too.
#[derive(Debug)]
pub(crate) struct StopSender(watch::Sender<bool>);

/// A task's view of the stop signal. Clone it freely.
#[derive(Debug, Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

pub(crate) fn channel() -> (StopSender, Stop) {
    let (tx, rx) = watch::channel(false);
    (StopSender(tx), Stop(rx))
}

impl StopSender {
    pub(crate) fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// True once stop was asked (or its sender is gone).
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Completes when stop is asked. Cancel-safe: use it in `select!`.
    pub(crate) async fn wait(&mut self) {
        while !self.is_set() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}
