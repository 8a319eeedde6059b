//! Shrinking a failing history to the steps that still make it fail.

use super::*;

/// The shortest history found that still fails like `history` did (`failure`: its error and
/// log) — steps left out, passes made plain — within a budget of runs; its error and log.
pub(super) fn shrink(
    seed: u64,
    history: History,
    failure: (String, Vec<String>),
) -> (History, String, Vec<String>) {
    let mut best = history;
    let (mut error, mut log) = failure;
    let mut budget = 400;
    let mut attempt =
        |candidate: History, best: &mut History, error: &mut String, log: &mut Vec<String>| -> bool {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            match run(seed, &candidate) {
                Err((e, l)) => {
                    (*best, *error, *log) = (candidate, e, l);
                    true
                }
                Ok(_) => false,
            }
        };
    let mut chunk = best.steps.len().div_ceil(2);
    while chunk >= 1 {
        let mut i = 0;
        while i < best.steps.len() {
            let mut steps = best.steps.clone();
            steps.drain(i..(i + chunk).min(steps.len()));
            let candidate = History {
                behaviour: best.behaviour,
                steps,
                service: best.service,
            };
            if !attempt(candidate, &mut best, &mut error, &mut log) {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    for i in 0..best.steps.len() {
        for plain in 0..3 {
            let mut steps = best.steps.clone();
            if let Step::Pass(p) = &mut steps[i] {
                match plain {
                    0 if p.kill_at.is_some() => p.kill_at = None,
                    1 if !p.during.is_empty() => p.during.clear(),
                    2 if p.scoped => p.scoped = false,
                    _ => continue,
                }
                let candidate = History {
                    behaviour: best.behaviour,
                    steps,
                    service: best.service,
                };
                attempt(candidate, &mut best, &mut error, &mut log);
            }
        }
    }
    if best.behaviour.fault_per_mille > 0 {
        let mut behaviour = best.behaviour;
        behaviour.fault_per_mille = 0;
        let candidate = History {
            behaviour,
            steps: best.steps.clone(),
            service: best.service,
        };
        attempt(candidate, &mut best, &mut error, &mut log);
    }
    (best, error, log)
}
