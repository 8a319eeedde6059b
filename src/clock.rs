//! The wall clock the engine reads, injectable: the simulation (docs/design.md, "The simulation") runs passes on a
//! clock it moves itself, so conflict-copy names, pass records and retry waits replay exactly.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The system clock by default; `Clock::from_fn` for a simulated one.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>>);

impl Clock {
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Some(Arc::new(now)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.as_ref().map_or_else(Utc::now, |now| now())
    }

    /// A jitter in [0, 1) for retry waits; only that clients differ matters, not its quality.
    pub fn jitter(&self) -> f64 {
        f64::from(self.now().timestamp_subsec_nanos() % 1000) / 1000.0
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(injected)"
        } else {
            "Clock(system)"
        })
    }
}
