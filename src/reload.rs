//! Reloads asked for by SIGHUP and the file watcher. The snapshot rebuilds and reports what
//! it did; this is where that report reaches the metrics and the log. SIGHUP also reads
//! `flowgate.yaml` again and applies it to the parts of the process built from it.

use std::sync::Arc;

use crate::events::LiveEvents;
use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::proxy::admission::Admission;
use crate::snapshot::{watch, ConfigChange, Live, Report, SourceKind};

/// What a SIGHUP reaches: the snapshot, and what else the config shapes while serving.
#[derive(Clone)]
pub struct Process {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<LiveEvents>,
    pub admission: Arc<Admission>,
}

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

/// Rereads `flowgate.yaml`, rebuilds the snapshot with it, and applies what else changed:
/// the event sink, the connection limits. One log line says what serves and which changed
/// settings wait for a restart. A config or rules with problems change nothing.
pub fn reload_config(p: &Process) -> Result<Report, Problems> {
    let result = p.live.reload_config();
    let (report, change) = match result {
        Ok(done) => done,
        Err(problems) => {
            p.metrics.reloads.with_label_values(&["error"]).inc();
            p.metrics.reload_ended("error");
            log::error!("reload refused, previous config and snapshot keep serving:\n{problems}");
            return Err(problems);
        }
    };
    record(&p.metrics, &report);
    p.metrics.reloads.with_label_values(&["ok"]).inc();
    p.metrics.reload_ended("ok");
    p.admission.set_limits(&change.config.limits);
    crate::logging::set_format(change.config.log.format);
    let events = apply_events(p, &change);
    let cold = match change.cold.as_slice() {
        [] => String::new(),
        keys => format!(
            "; not applied, need a restart or upgrade: {}",
            keys.join(", ")
        ),
    };
    log::info!(
        "reload: snapshot {} serving with {}{events}{cold}",
        report.generation,
        change.config.path.display()
    );
    Ok(report)
}

/// A new event worker when the sink or privacy settings changed; what the log line adds.
fn apply_events(p: &Process, change: &ConfigChange) -> &'static str {
    if !change.events {
        return "";
    }
    match crate::events::start(&change.config, p.metrics.clone()) {
        Ok((queue, worker)) => {
            p.events.replace(queue, worker);
            " (events restarted)"
        }
        Err(e) => {
            log::error!("reload: {e}; events keep going to the previous sink");
            " (events unchanged: see the error above)"
        }
    }
}

/// SIGHUP: `reload_config`.
pub fn on_sighup(p: Process) {
    crate::lifecycle::on_signal(
        tokio::signal::unix::SignalKind::hangup(),
        "reload",
        move || {
            let p = p.clone();
            async move {
                let _ = reload_config(&p);
            }
        },
    );
}

/// Reloads whenever the files snapshots are built from change.
pub fn on_change(live: Arc<Live>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let sources = live.clone();
    watch::spawn(
        move || sources.sources(),
        move || {
            let _ = reload(&live, &metrics, " (files changed)");
        },
    )
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
    let watched = watch::spawn(
        move || sources.clone(),
        move || {
            for c in &certs {
                c.reload(" (files changed)");
            }
        },
    );
    if let Err(e) = watched {
        log::error!(
            "watch: cannot start for the TLS certificates: {e}; they reload on SIGHUP only"
        );
    }
}
