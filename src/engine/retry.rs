//! Pure back-off policy: exponential from `initial`, capped at `max`, with jitter so that
//! many clients do not retry in step.

use std::time::Duration;

use crate::config::Retry;

/// The wait before retry number `attempt` (1 = the first retry). `jitter` in [0, 1) scales
/// the wait between 50% and 100%.
pub fn backoff(policy: &Retry, attempt: u32, jitter: f64) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(policy.max_backoff);
    exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let p = Retry {
            attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        };
        assert_eq!(
            backoff(&p, 1, 0.999_999),
            Duration::from_secs(1).mul_f64(0.999_999_5)
        );
        assert_eq!(backoff(&p, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 10, 0.0), Duration::from_millis(2500));
        assert!(backoff(&p, 40, 1.0) <= Duration::from_secs(5));
    }
}
