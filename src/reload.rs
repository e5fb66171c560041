//! Reloads asked for by SIGHUP and the file watcher. The snapshot rebuilds and reports what
//! it did; this is where that report reaches the metrics and the log.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::snapshot::{watch, Live, Report, SourceKind};

/// The gauges of what now serves: its generation and the size of every intel source.
pub fn record(metrics: &Metrics, report: &Report) {
    metrics.snapshot_generation.set(gauge(report.generation));
    let built = report.intel.iter();
    let built = built.filter_map(|s| Some((s.source.clone(), s.built?)));
    metrics.set_intel_built(built.collect());
    for s in &report.intel {
        let source = [s.source.as_str()];
        let entries = match s.kind {
            SourceKind::List => &metrics.intel_entries,
            SourceKind::Database => &metrics.intel_database_nodes,
        };
        entries.with_label_values(&source).set(gauge(s.entries));
        if let Some(skipped) = s.skipped {
            metrics
                .intel_skipped_lines
                .with_label_values(&source)
                .set(gauge(skipped));
        }
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rebuilds, counts the outcome and logs it; `why` goes into the log line.
pub fn reload(live: &Live, metrics: &Metrics, why: &str) -> Result<Report, Problems> {
    let result = live.reload();
    match &result {
        Ok(report) => {
            record(metrics, report);
            metrics.reloads.with_label_values(&["ok"]).inc();
            metrics.reload_ended("ok");
            log::info!("reload: snapshot {} serving{why}", report.generation);
        }
        Err(problems) => {
            metrics.reloads.with_label_values(&["error"]).inc();
            metrics.reload_ended("error");
            log::error!("reload refused, previous snapshot keeps serving:\n{problems}");
        }
    }
    result
}

/// SIGHUP rebuilds the snapshot from disk; a failed build keeps the current one.
pub fn on_sighup(live: Arc<Live>, metrics: Arc<Metrics>) {
    crate::lifecycle::on_signal(
        tokio::signal::unix::SignalKind::hangup(),
        "reload",
        move || {
            let (live, metrics) = (live.clone(), metrics.clone());
            async move {
                let _ = reload(&live, &metrics, "");
            }
        },
    );
}

/// Reloads whenever the files snapshots are built from change.
pub fn on_change(live: Arc<Live>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    watch::spawn(live.sources(), move || {
        let _ = reload(&live, &metrics, " (files changed)");
    })
}

/// Reloads the TLS listeners' certificates on SIGHUP and whenever their files change; a pair
/// that does not load is refused (logged) and its last good version keeps serving.
pub fn on_tls_change(certs: Vec<Arc<crate::tls::Certs>>) {
    if certs.is_empty() {
        return;
    }
    let files = certs.iter().flat_map(|c| c.files()).collect();
    let on_hup = certs.clone();
    crate::lifecycle::on_signal(
        tokio::signal::unix::SignalKind::hangup(),
        "tls-reload",
        move || {
            for c in &on_hup {
                c.reload("");
            }
            std::future::ready(())
        },
    );
    let sources = watch::Sources {
        folders: Vec::new(),
        files,
    };
    let watched = watch::spawn(sources, move || {
        for c in &certs {
            c.reload(" (files changed)");
        }
    });
    if let Err(e) = watched {
        log::error!(
            "watch: cannot start for the TLS certificates: {e}; they reload on SIGHUP only"
        );
    }
}
