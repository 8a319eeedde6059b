//! `connections` logged-in connections shared by a pass, made by a `Connector`.
//!
//! A connection that failed is
//! checked with NOOP before it is reused, and dropped if that fails; a dropped one is replaced
//! on the next `get`. A server that answers 421 (too many connections) shrinks the pool instead
//! of failing the pass.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limit::RateLimiter;
use super::{Connector, Remote};
use crate::error::{Error, Result};

pub struct Pool {
    connector: Arc<dyn Connector>,
    limiter: Option<Arc<RateLimiter>>,
    idle: Mutex<Vec<Box<dyn Remote>>>,
    /// One permit per connection the pool may have open at once.
    slots: Arc<Semaphore>,
    size: AtomicUsize,
    /// Whether a connection succeeded once: after that, a failed connect is a passing fault
    /// (a reset, a cut handshake) to retry, not a wrong address or certificate.
    connected: AtomicBool,
}

/// A connection on loan; it goes back to the pool when dropped, unless discarded.
pub struct Lease {
    conn: Option<Box<dyn Remote>>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    /// Known to be in step with its server (`release`, `check_after`). A lease dropped
    /// otherwise, as when its task is aborted mid-command, may have a reply still coming:
    /// its connection is not reused.
    in_step: bool,
}

impl Pool {
    /// A pool of at most `connections` connections from `connector`, each sharing `limiter`.
    pub fn new(
        connector: Arc<dyn Connector>,
        connections: usize,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            limiter,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(connections)),
            size: AtomicUsize::new(connections),
            connected: AtomicBool::new(false),
        })
    }

    /// How many connections the pool may open now (less than configured after a 421).
    pub fn size(&self) -> usize {
        self.size.load(Ordering::SeqCst)
    }

    /// A logged-in connection: an idle one, or a new one.
    pub async fn get(self: &Arc<Self>) -> Result<Lease> {
        loop {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Interrupted)?;
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            if let Some(conn) = idle {
                return Ok(Lease {
                    conn: Some(conn),
                    pool: self.clone(),
                    _permit: permit,
                    in_step: false,
                });
            }
            match self.connector.connect(self.limiter.clone()).await {
                Ok(conn) => {
                    self.connected.store(true, Ordering::SeqCst);
                    return Ok(Lease {
                        conn: Some(conn),
                        pool: self.clone(),
                        _permit: permit,
                        in_step: false,
                    });
                }
                Err(Error::TooManyConnections { .. }) if self.size() > 1 => {
                    // Give this slot up for good and wait for a connection another task returns.
                    permit.forget();
                    let now = self.size.fetch_sub(1, Ordering::SeqCst) - 1;
                    tracing::warn!(
                        connections = now,
                        "the server refused another connection (421); using fewer"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(Error::Connect { server, message } | Error::Tls { server, message, .. })
                    if self.connected.load(Ordering::SeqCst) =>
                {
                    return Err(Error::ConnectionLost {
                        command: "connect",
                        path: server,
                        message,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Logs out every idle connection, all at once: each QUIT may wait out its timeout on a
    /// server that went quiet, and a stopping service should not wait for them in turn.
    pub async fn close(&self) {
        let idle: Vec<Box<dyn Remote>> = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let mut quits = tokio::task::JoinSet::new();
        for mut c in idle {
            quits.spawn(async move { c.quit().await });
        }
        while quits.join_next().await.is_some() {}
    }
}

impl Lease {
    pub fn conn(&mut self) -> &mut (dyn Remote + 'static) {
        // Present until `discard` consumes the lease.
        self.conn
            .as_deref_mut()
            .expect("a lease holds its connection until discarded")
    }

    /// After success: back to the pool.
    pub fn release(mut self) {
        self.in_step = true;
    }

    /// After an error: keep the connection only if the server still answers in step.
    pub async fn check_after(mut self, error: &Error) {
        let keep = match (error, self.conn.as_mut()) {
            // 425: the data connection failed; a new control connection gets a fresh TLS
            // session and may get another passive port.
            (Error::Reply { code: Some(425), .. }, _) => false,
            (
                Error::Reply { .. } | Error::Changed { .. } | Error::Local { .. } | Error::Verify { .. },
                Some(c),
            ) => c.noop().await.is_ok(),
            _ => false,
        };
        self.in_step = keep;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.in_step {
            return;
        }
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.pool.idle.lock())
            && conn.reusable()
        {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::mpsc;

    use super::*;
    use crate::digest::HashAlgo;
    use crate::remote::Capabilities;
    use crate::remote::listing::Listed;

    /// A connection that only answers NOOP: enough for the pool, which never looks further.
    struct Idle;

    #[async_trait::async_trait]
    impl Remote for Idle {
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        async fn list(&mut self, _: &str) -> Result<Vec<Listed>> {
            Ok(Vec::new())
        }
        async fn stat(&mut self, _: &str) -> Result<Option<Listed>> {
            Ok(None)
        }
        async fn exists(&mut self, _: &str) -> Result<bool> {
            Ok(false)
        }
        async fn size(&mut self, _: &str) -> Result<u64> {
            Ok(0)
        }
        async fn get(&mut self, _: &str, _: u64, _: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
            Ok(0)
        }
        async fn get_range(&mut self, _: &str, _: u64, _: u64, _: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
            Ok(0)
        }
        async fn put(&mut self, _: &str, _: u64, _: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
            Ok(0)
        }
        async fn put_at(&mut self, _: &str, _: u64, _: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
            Ok(0)
        }
        async fn rename(&mut self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn remove(&mut self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn mkdir(&mut self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn rmdir(&mut self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn set_mtime(&mut self, _: &str, _: i64) -> Result<bool> {
            Ok(false)
        }
        async fn hash(&mut self, _: &str) -> Result<Option<(HashAlgo, String)>> {
            Ok(None)
        }
        async fn noop(&mut self) -> Result<()> {
            Ok(())
        }
        async fn quit(&mut self) {}
    }

    /// A server that takes `limit` connections and answers 421 to more.
    struct Crowded {
        limit: usize,
        made: AtomicUsize,
        refused: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Connector for Crowded {
        async fn connect(&self, _: Option<Arc<RateLimiter>>) -> Result<Box<dyn Remote>> {
            if self.made.load(Ordering::SeqCst) >= self.limit {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(Error::TooManyConnections {
                    server: "crowded".into(),
                    reply: "421 Too many connections".into(),
                });
            }
            self.made.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Idle))
        }
    }

    #[tokio::test]
    async fn a_server_that_takes_fewer_connections_shrinks_the_pool_instead_of_failing() {
        let server = Arc::new(Crowded {
            limit: 2,
            made: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let pool = Pool::new(server.clone(), 4, None);
        let first = pool.get().await.expect("first");
        let second = pool.get().await.expect("second");
        // The third waits for a connection to come back, having given up the slots the server
        // refused (4 -> 3 -> 2), then reuses the returned one.
        let third = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !third.is_finished(),
            "a third connection while the server allows two"
        );
        assert_eq!(pool.size(), 2);
        assert_eq!(server.refused.load(Ordering::SeqCst), 2);
        first.release();
        third.await.expect("join").expect("the returned connection");
        second.release();
        assert_eq!(
            server.made.load(Ordering::SeqCst),
            2,
            "no connection beyond the two"
        );
    }
}
