//! How far a sync has got, for `sync -P` and the service's periodic line: the engine counts
//! files and bytes as they move, a display reads them when it wants (`Meter::reading`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Totals, human_bytes};
use crate::path::RelPath;

/// A transfer at least this big says when it starts (the service's log shows what it is busy
/// with long before the file is done).
pub const LARGE: u64 = 64 << 20;

/// Counts of one `sync` (every folder of it) or one service pass.
#[derive(Debug, Default)]
pub struct Meter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    folder: String,
    files_planned: usize,
    bytes_planned: u64,
    files_done: usize,
    /// Bytes of transfers that have ended, finished or not.
    bytes_landed: u64,
    in_flight: BTreeMap<u64, Flight>,
    next_id: u64,
}

#[derive(Debug)]
struct Flight {
    path: String,
    upload: bool,
    size: u64,
    moved: Arc<AtomicU64>,
}

/// What a display shows: a copy of the counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// The folder whose pass runs (the last one started).
    pub folder: String,
    pub files_done: usize,
    pub files_planned: usize,
    pub bytes_done: u64,
    pub bytes_planned: u64,
    pub in_flight: Vec<InFlight>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub path: String,
    pub upload: bool,
    pub moved: u64,
    pub size: u64,
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// A folder's plan is made: its transfers join the planned totals.
    pub(crate) fn planned(&self, folder: &str, totals: &Totals) {
        self.with(|s| {
            s.folder = folder.to_owned();
            let a = &totals.actions;
            s.files_planned += a.upload + a.download + a.conflicts;
            s.bytes_planned += totals.bytes_up + totals.bytes_down;
        });
    }

    /// A transfer action ended (done, failed or left for later): one file fewer to go.
    pub(crate) fn file_done(&self) {
        self.with(|s| s.files_done += 1);
    }

    /// A transfer of `size` bytes starts; the bytes it moves are counted on the returned
    /// counter until it is dropped.
    pub(crate) fn take_off(self: &Arc<Self>, path: &RelPath, upload: bool, size: u64) -> Flying {
        let moved = Arc::new(AtomicU64::new(0));
        let id = self.with(|s| {
            let id = s.next_id;
            s.next_id += 1;
            s.in_flight.insert(
                id,
                Flight {
                    path: path.to_string(),
                    upload,
                    size,
                    moved: moved.clone(),
                },
            );
            id
        });
        Flying {
            meter: self.clone(),
            id,
            moved,
        }
    }

    pub fn reading(&self) -> Reading {
        self.with(|s| {
            let in_flight: Vec<InFlight> = s
                .in_flight
                .values()
                .map(|f| InFlight {
                    path: f.path.clone(),
                    upload: f.upload,
                    moved: f.moved.load(Ordering::Relaxed),
                    size: f.size,
                })
                .collect();
            Reading {
                folder: s.folder.clone(),
                files_done: s.files_done,
                files_planned: s.files_planned,
                bytes_done: s.bytes_landed + in_flight.iter().map(|f| f.moved).sum::<u64>(),
                bytes_planned: s.bytes_planned,
                in_flight,
            }
        })
    }
}

impl Reading {
    /// One line of how far it got after `elapsed`: files, bytes, rate, time left, transfers.
    pub fn summary(&self, elapsed: std::time::Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.bytes_done as f64 / secs
        } else {
            0.0
        };
        let left = self.bytes_planned.saturating_sub(self.bytes_done);
        let eta = if rate >= 1.0 && left > 0 {
            let secs = (left as f64 / rate).ceil() as u64;
            format!(
                ", {} left",
                humantime::format_duration(std::time::Duration::from_secs(secs))
            )
        } else {
            String::new()
        };
        let folder = if self.folder.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.folder)
        };
        format!(
            "{folder}{} of {} files, {} of {}, {}/s{eta}, {} in flight",
            self.files_done,
            self.files_planned,
            human_bytes(self.bytes_done),
            human_bytes(self.bytes_planned),
            human_bytes(rate as u64),
            self.in_flight.len()
        )
    }
}

/// One transfer on the meter; its bytes stay counted when it ends.
pub struct Flying {
    meter: Arc<Meter>,
    id: u64,
    moved: Arc<AtomicU64>,
}

impl Flying {
    /// The counter the file reader or writer raises as bytes go.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.moved.clone()
    }
}

impl Drop for Flying {
    fn drop(&mut self) {
        let moved = self.moved.load(Ordering::Relaxed);
        self.meter.with(|s| {
            s.in_flight.remove(&self.id);
            s.bytes_landed += moved;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::report::ActionCounts;

    #[test]
    fn bytes_in_flight_count_and_stay_counted_when_the_transfer_ends() {
        let meter = Meter::new();
        let totals = Totals {
            actions: ActionCounts {
                upload: 2,
                download: 1,
                ..ActionCounts::default()
            },
            bytes_up: 300,
            bytes_down: 100,
        };
        meter.planned("docs", &totals);
        let path = RelPath::new("a/b.txt").expect("path");
        let flying = meter.take_off(&path, true, 200);
        flying.counter().fetch_add(150, Ordering::Relaxed);
        let r = meter.reading();
        assert_eq!((r.files_planned, r.bytes_planned, r.bytes_done), (3, 400, 150));
        assert_eq!(
            r.in_flight,
            vec![InFlight {
                path: "a/b.txt".into(),
                upload: true,
                moved: 150,
                size: 200
            }]
        );
        flying.counter().fetch_add(50, Ordering::Relaxed);
        drop(flying);
        meter.file_done();
        let r = meter.reading();
        assert_eq!((r.files_done, r.bytes_done, r.in_flight.len()), (1, 200, 0));
        assert_eq!(r.folder, "docs");
        assert_eq!(
            r.summary(std::time::Duration::from_secs(2)),
            "docs: 1 of 3 files, 200 B of 400 B, 100 B/s, 2s left, 0 in flight"
        );
    }
}
