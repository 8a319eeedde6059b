//! The service's metrics (`metrics_listen`): Prometheus text at `/metrics`, and `/healthz`,
//! served on their own thread. The daemon records each pass; a scrape reads the counts.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::Report;
use crate::error::{Error, Result};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FolderLabel {
    folder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    folder: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WayLabels {
    folder: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabels {
    folder: String,
    side: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    folder: String,
    /// The server's reply code (`425`), or what broke (`connection-lost`, `timeout`).
    reason: String,
}

pub struct Metrics {
    registry: Registry,
    passes: Family<PassLabels, Counter>,
    files: Family<WayLabels, Counter>,
    bytes: Family<WayLabels, Counter>,
    deleted: Family<SideLabels, Counter>,
    moved: Family<SideLabels, Counter>,
    failures: Family<FolderLabel, Counter>,
    conflicts: Family<FolderLabel, Counter>,
    retries: Family<RetryLabels, Counter>,
    last_success: Family<FolderLabel, Gauge>,
    pending: Family<FolderLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// How a pass ended, as the `result` label says it.
pub enum PassEnd<'a> {
    Done(&'a Report),
    Failed,
}

impl Metrics {
    /// The metrics of a service with a pool of `connections`.
    pub fn new(connections: usize) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("ftps_sync");
        let m = Metrics {
            passes: Family::default(),
            files: Family::default(),
            bytes: Family::default(),
            deleted: Family::default(),
            moved: Family::default(),
            failures: Family::default(),
            conflicts: Family::default(),
            retries: Family::default(),
            last_success: Family::default(),
            pending: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "passes",
            "Passes by result: ok, unresolved (conflicts, skipped or failed files left), error",
            m.passes.clone(),
        );
        registry.register("files", "Files transferred, by direction", m.files.clone());
        registry.register("bytes", "Bytes transferred, by direction", m.bytes.clone());
        registry.register(
            "deleted_files",
            "Files deleted, by the side they were deleted on",
            m.deleted.clone(),
        );
        registry.register(
            "moves",
            "Files and folders renamed as the user renamed them on the other side, by the side renamed",
            m.moved.clone(),
        );
        registry.register(
            "failures",
            "Files whose transfer or deletion failed",
            m.failures.clone(),
        );
        registry.register("conflicts", "Files changed on both sides", m.conflicts.clone());
        registry.register(
            "retries",
            "Attempts tried again, by the server's reply code or what broke",
            m.retries.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last pass without an error ended (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "pending_local_changes",
            "Local changes the watcher saw that wait for the next pass",
            m.pending.clone(),
        );
        let pool = Gauge::<i64>::default();
        pool.set(i64::try_from(connections).unwrap_or(i64::MAX));
        registry.register("pool_connections", "Size of the FTPS connection pool", pool);
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts a pass of `folder` that ended at `unix_secs`.
    pub fn record_pass(&self, folder: &str, end: PassEnd<'_>, unix_secs: i64) {
        let f = || folder.to_owned();
        let way = |direction: &str| WayLabels {
            folder: f(),
            direction: direction.to_owned(),
        };
        let side = |side: &str| SideLabels {
            folder: f(),
            side: side.to_owned(),
        };
        let result = match end {
            PassEnd::Failed => "error",
            PassEnd::Done(r) => {
                self.files.get_or_create(&way("up")).inc_by(r.uploaded as u64);
                self.files.get_or_create(&way("down")).inc_by(r.downloaded as u64);
                self.bytes.get_or_create(&way("up")).inc_by(r.bytes_up);
                self.bytes.get_or_create(&way("down")).inc_by(r.bytes_down);
                self.deleted
                    .get_or_create(&side("local"))
                    .inc_by(r.deleted_local as u64);
                self.deleted
                    .get_or_create(&side("remote"))
                    .inc_by(r.deleted_remote as u64);
                self.moved
                    .get_or_create(&side("local"))
                    .inc_by(r.moved_local as u64);
                self.moved
                    .get_or_create(&side("remote"))
                    .inc_by(r.moved_remote as u64);
                let label = FolderLabel { folder: f() };
                self.failures.get_or_create(&label).inc_by(r.failed.len() as u64);
                self.conflicts.get_or_create(&label).inc_by(r.conflicts as u64);
                for (reason, n) in &r.retries_by_reason {
                    let label = RetryLabels {
                        folder: f(),
                        reason: reason.clone(),
                    };
                    self.retries.get_or_create(&label).inc_by(*n as u64);
                }
                self.last_success.get_or_create(&label).set(unix_secs);
                if r.unresolved() { "unresolved" } else { "ok" }
            }
        };
        let label = PassLabels {
            folder: f(),
            result: result.to_owned(),
        };
        self.passes.get_or_create(&label).inc();
    }

    /// Local changes of `folder` that wait for a pass.
    pub fn set_pending(&self, folder: &str, n: usize) {
        let label = FolderLabel {
            folder: folder.to_owned(),
        };
        self.pending
            .get_or_create(&label)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text a scrape gets (OpenMetrics, which Prometheus reads).
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/healthz` on `addr`, on a thread of its own, for the life of the
/// process. A port that cannot be bound is the user's config to fix.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| Error::Usage(format!("metrics_listen {addr}: {e}")))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, kind, body) = match request.url() {
                    "/metrics" => (
                        200,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        metrics.text(),
                    ),
                    "/healthz" => (200, "text/plain; charset=utf-8", "ok\n".to_owned()),
                    _ => (
                        404,
                        "text/plain; charset=utf-8",
                        "not found: try /metrics or /healthz\n".to_owned(),
                    ),
                };
                let response = tiny_http::Response::from_string(body).with_status_code(status);
                let response = match tiny_http::Header::from_bytes("Content-Type", kind) {
                    Ok(h) => response.with_header(h),
                    Err(()) => response,
                };
                let _ = request.respond(response);
            }
        })
        .map_err(crate::error::system("start the metrics thread"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_shows_in_the_counts() {
        let m = Metrics::new(4);
        let mut report = Report {
            uploaded: 2,
            bytes_up: 300,
            conflicts: 1,
            moved_remote: 1,
            ..Report::default()
        };
        report.retries_by_reason.insert("425".into(), 3);
        m.record_pass("docs", PassEnd::Done(&report), 1_700_000_000);
        m.record_pass("docs", PassEnd::Failed, 1_700_000_100);
        m.set_pending("docs", 5);
        let text = m.text();
        for line in [
            "ftps_sync_passes_total{folder=\"docs\",result=\"unresolved\"} 1",
            "ftps_sync_passes_total{folder=\"docs\",result=\"error\"} 1",
            "ftps_sync_files_total{folder=\"docs\",direction=\"up\"} 2",
            "ftps_sync_bytes_total{folder=\"docs\",direction=\"up\"} 300",
            "ftps_sync_conflicts_total{folder=\"docs\"} 1",
            "ftps_sync_moves_total{folder=\"docs\",side=\"remote\"} 1",
            "ftps_sync_retries_total{folder=\"docs\",reason=\"425\"} 3",
            "ftps_sync_last_success_timestamp_seconds{folder=\"docs\"} 1700000000",
            "ftps_sync_pending_local_changes{folder=\"docs\"} 5",
            "ftps_sync_pool_connections 4",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
