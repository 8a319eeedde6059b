//! `connections` logged-in FTPS connections shared by a pass.
//!
//! Each connection has its own TLS session cache (see `tls`). A connection that failed is
//! checked with NOOP before it is reused, and dropped if that fails; a dropped one is replaced
//! on the next `get`. A server that answers 421 (too many connections) shrinks the pool instead
//! of failing the pass.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ftps::Ftps;
use super::limit::RateLimiter;
use super::tls::TlsContext;
use crate::config::Server;
use crate::error::{Error, Result};

pub struct Pool {
    server: Server,
    tls: TlsContext,
    limiter: Option<Arc<RateLimiter>>,
    idle: Mutex<Vec<Ftps>>,
    /// One permit per connection the pool may have open at once.
    slots: Arc<Semaphore>,
    size: AtomicUsize,
    /// Whether a connection succeeded once: after that, a failed connect is a passing fault
    /// (a reset, a cut handshake) to retry, not a wrong address or certificate.
    connected: AtomicBool,
}

/// A connection on loan; it goes back to the pool when dropped, unless discarded.
pub struct Lease {
    conn: Option<Ftps>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(server: &Server, tls: &TlsContext, limiter: Option<Arc<RateLimiter>>) -> Arc<Pool> {
        Arc::new(Pool {
            server: server.clone(),
            tls: tls.clone(),
            limiter,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(server.connections)),
            size: AtomicUsize::new(server.connections),
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
                });
            }
            match Ftps::connect(&self.server, &self.tls).await {
                Ok(mut conn) => {
                    self.connected.store(true, Ordering::SeqCst);
                    conn.set_limiter(self.limiter.clone());
                    return Ok(Lease {
                        conn: Some(conn),
                        pool: self.clone(),
                        _permit: permit,
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

    /// Logs out every idle connection.
    pub async fn close(&self) {
        let idle: Vec<Ftps> = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for c in idle {
            c.quit().await;
        }
    }
}

impl Lease {
    pub fn conn(&mut self) -> &mut Ftps {
        // Present until `discard` consumes the lease.
        self.conn
            .as_mut()
            .expect("a lease holds its connection until discarded")
    }

    /// After success: back to the pool.
    pub fn release(self) {}

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
        if !keep {
            self.conn = None;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.pool.idle.lock()) {
            idle.push(conn);
        }
    }
}
