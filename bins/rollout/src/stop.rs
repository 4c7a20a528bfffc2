//! Why a rollout stops changing the cluster before it is done: a signal (a cancelled Actions job
//! sends SIGINT, then SIGTERM) or the namespace's Lease taken by another rollout. Every wait
//! selects on it; whoever notices first sets the reason, later reasons are ignored.

use std::sync::Arc;

use tokio::sync::watch;

/// The reason a rollout was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM (the signal's name).
    Signal(&'static str),
    /// A renewal of the rollout Lease found another holder.
    LeaseLost {
        /// The new holder's identity.
        holder: String,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Signal(name) => write!(f, "{name} received"),
            StopReason::LeaseLost { holder } => {
                write!(f, "the rollout Lease was taken by {holder}")
            }
        }
    }
}

/// A shared stop flag: cheap to clone, set once.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<StopReason>>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self { tx: Arc::new(watch::Sender::new(None)) }
    }
}

impl Stop {
    /// A flag nobody has set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the reason, unless one is set already.
    pub fn trigger(&self, reason: StopReason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason, once set.
    pub fn reason(&self) -> Option<StopReason> {
        self.tx.borrow().clone()
    }

    /// Resolves when the flag is set.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            // The sender lives in `self`, so `changed` cannot fail while we wait.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Set the flag on SIGINT or SIGTERM (both: Actions sends one, then the other).
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let stop = self.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                eprintln!("{name} received: stopping (no more changes, the Lease is given back)");
                stop.trigger(StopReason::Signal(name));
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins() {
        let stop = Stop::new();
        assert_eq!(stop.reason(), None);
        stop.trigger(StopReason::Signal("SIGINT"));
        stop.trigger(StopReason::Signal("SIGTERM"));
        assert_eq!(stop.stopped().await, StopReason::Signal("SIGINT"));
    }
}
