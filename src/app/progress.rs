//! `sync -P`: how far the sync has got, on stderr while it runs. On a terminal: a bar for the
//! whole sync (bytes, rate, time left, files) and a line per transfer in flight, which log
//! lines and reports print above (`logging::clear_of_progress`). Elsewhere (`-P` into a pipe
//! or a file): a summary line every few seconds.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{InFlight, Meter, Reading, human_bytes};

/// How often the bars are redrawn from the meter.
const REDRAW: Duration = Duration::from_millis(200);
/// How often a summary line is printed when stderr is no terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);
/// Transfers in flight shown, at most (the rest are counted on the bar).
const FLIGHTS_SHOWN: usize = 8;

pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts showing `meter` on stderr.
    pub fn start(meter: Arc<Meter>) -> Progress {
        let stop = CancellationToken::new();
        let task = if std::io::stderr().is_terminal() {
            tokio::spawn(bars(meter, stop.clone()))
        } else {
            tokio::spawn(lines(meter, stop.clone()))
        };
        Progress { stop, task }
    }

    /// Takes the bars off the screen (what was printed above them stays).
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn lines(meter: Arc<Meter>, stop: CancellationToken) {
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LINE_EVERY) => {
                eprintln!("{}", meter.reading().summary(started.elapsed()));
            }
        }
    }
}

async fn bars(meter: Arc<Meter>, stop: CancellationToken) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let total = multi.add(ProgressBar::new(0).with_style(style(
        "{msg} [{bar:25}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )));
    crate::logging::set_progress(Some(multi.clone()));
    let mut flights: Vec<ProgressBar> = Vec::new();
    loop {
        let reading = meter.reading();
        draw(&multi, &total, &mut flights, &reading);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(REDRAW) => {}
        }
    }
    crate::logging::set_progress(None);
    for bar in flights {
        bar.finish_and_clear();
    }
    total.finish_and_clear();
    let _ = multi.clear();
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants: one that does not parse is a bug, and a plain bar will do.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn draw(multi: &MultiProgress, total: &ProgressBar, flights: &mut Vec<ProgressBar>, r: &Reading) {
    total.set_length(r.bytes_planned);
    total.set_position(r.bytes_done.min(r.bytes_planned));
    let more = r.in_flight.len().saturating_sub(FLIGHTS_SHOWN);
    let more = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    total.set_message(if r.folder.is_empty() {
        "scanning and listing".to_owned()
    } else {
        format!("{}: {}/{} files{more}", r.folder, r.files_done, r.files_planned)
    });
    let shown = r.in_flight.len().min(FLIGHTS_SHOWN);
    while flights.len() < shown {
        flights.push(multi.add(ProgressBar::new(0).with_style(style("  {msg}"))));
    }
    while flights.len() > shown {
        if let Some(bar) = flights.pop() {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    }
    for (bar, flight) in flights.iter().zip(&r.in_flight) {
        bar.set_message(flight_line(flight));
    }
}

fn flight_line(f: &InFlight) -> String {
    let way = if f.upload { "up  " } else { "down" };
    let percent = (f.moved.min(f.size) * 100).checked_div(f.size).unwrap_or(100);
    format!("{way} {} {percent:>3}% of {}", f.path, human_bytes(f.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_line_says_which_way_how_far_and_of_what() {
        let f = InFlight {
            path: "photos/a.jpg".into(),
            upload: false,
            moved: 512 << 10,
            size: 2 << 20,
        };
        assert_eq!(flight_line(&f), "down photos/a.jpg  25% of 2.0 MiB");
        let empty = InFlight {
            size: 0,
            moved: 0,
            upload: true,
            ..f
        };
        assert_eq!(flight_line(&empty), "up   photos/a.jpg 100% of 0 B");
    }
}
