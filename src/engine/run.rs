//! Running remote work on the pool: attempts on leased connections, retried on transient
//! errors with backoff, until the pass is cancelled; and the count of what was retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::report::Issue;
use super::retry;
use crate::error::{Class, Error, Result};
use crate::remote::Remote;
use crate::remote::pool::Pool;

/// A pass's retried attempts: how many, and why for the first few (a count alone does not
/// say which fault a pass kept meeting).
#[derive(Debug, Default)]
pub(crate) struct Retries {
    count: AtomicUsize,
    first: Mutex<Vec<Issue>>,
    by_reason: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl Retries {
    const KEPT: usize = 10;

    fn add(&self, what: &str, e: &Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let reason = match e {
            Error::Reply { code: Some(code), .. } => code.to_string(),
            other => other.kind().to_owned(),
        };
        *self
            .by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < Self::KEPT {
            first.push(Issue {
                path: what.to_owned(),
                reason: e.to_string(),
            });
        }
    }

    /// How many, the first few with their reasons, and how many by reply code or kind.
    pub fn taken(&self) -> (usize, Vec<Issue>, std::collections::BTreeMap<String, usize>) {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        let by_reason = self.by_reason.lock().unwrap_or_else(|p| p.into_inner());
        (
            self.count.load(Ordering::Relaxed),
            first.clone(),
            by_reason.clone(),
        )
    }
}

/// Runs remote work on the pool, with the retry policy, until cancelled.
pub(crate) struct Runner {
    pub pool: Arc<Pool>,
    pub retry: crate::config::Retry,
    pub cancel: CancellationToken,
    /// Attempts that failed and were tried again, over the whole pass: retries hide a fault
    /// from a check of the end result only, so the report shows them.
    pub retries: Arc<Retries>,
    pub clock: crate::clock::Clock,
}

impl Runner {
    /// After a failed attempt: `Ok` once it is time to try again, `Err` when the error is not
    /// worth retrying or the attempts are used up.
    pub async fn pause_before_retry(&self, what: &str, attempt: u32, e: Error) -> Result<()> {
        if e.class() != Class::Transient || attempt >= self.retry.attempts {
            return Err(e);
        }
        // A refused unresumed data connection taught the connection to resume: no wait.
        let wait = match e {
            Error::NotResumed { .. } => std::time::Duration::ZERO,
            _ => retry::backoff(&self.retry, attempt, self.clock.jitter()),
        };
        self.retries.add(what, &e);
        tracing::warn!(what, attempt, "{e}; retrying in {wait:?}");
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Interrupted),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

/// One attempt of remote work on a leased connection. Boxed, so that `retrying` can take the
/// work as a closure: the future borrows the connection for `'c`, which a closure returning an
/// unboxed future cannot say.
pub(crate) type Attempt<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>>;

/// Runs `attempt` on a pooled connection, retrying transient errors on a fresh connection with
/// backoff. A connection goes back to the pool only if it is known to be in step.
/// (`'env` is what the work borrows besides the connection: the connection's type names it, so
/// every `'c` the closure is called with is within it.)
pub(crate) async fn retrying<'env, T, F>(run: &Runner, what: &str, mut attempt: F) -> Result<T>
where
    F: for<'c> FnMut(&'c mut (dyn Remote + 'env)) -> Attempt<'c, T>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        // A connect can take the whole timeout: a stop request does not wait for it.
        let leased = tokio::select! {
            biased;
            _ = run.cancel.cancelled() => Err(Error::Interrupted),
            l = run.pool.get() => l,
        };
        let result = match leased {
            Ok(mut lease) => {
                let r = tokio::select! {
                    biased;
                    _ = run.cancel.cancelled() => Err(Error::Interrupted),
                    r = attempt(lease.conn()) => r,
                };
                match &r {
                    Ok(_) => lease.release(),
                    Err(e) => lease.check_after(e).await,
                }
                r
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) => run.pause_before_retry(what, tries, e).await?,
        }
    }
}
