//! `bandwidth_limit` across every transfer of the pool: a shared pacing clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    bytes_per_sec: u64,
    /// When the bytes granted so far have been "paid for".
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits until `n` more bytes may go, at the shared rate.
    pub async fn take(&self, n: usize) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        let wait_until = {
            let Ok(mut next) = self.next.lock() else { return };
            let now = Instant::now();
            // Idle time is not saved up beyond one chunk: no burst after a pause.
            let start = next.map_or(now, |t| t.max(now));
            *next = Some(start + cost);
            start
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let l = RateLimiter::new(1000);
        let t0 = Instant::now();
        for _ in 0..10 {
            l.take(500).await; // 5,000 bytes at 1,000/s: the last chunk starts at 4.5 s
        }
        let elapsed = t0.elapsed();
        assert!(
            elapsed >= Duration::from_millis(4500) && elapsed < Duration::from_millis(4600),
            "{elapsed:?}"
        );
    }
}
