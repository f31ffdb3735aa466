//! Prometheus metrics: the `metrics` facade, rendered at `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (handlers, committer). Gauges that
//! describe state (queue, sequence numbers, index lag, store size, memory) are read when the
//! endpoint is scraped, so they are never stale and cost nothing between scrapes.
//!
//! The recorder is global to the process and installed once ([`install`]); tests that start
//! several servers in one process share it, so they compare values before and after, never
//! absolute counts. Its upkeep task must run, or histograms grow without bound.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the time-to-201 histogram, seconds.
const INGEST_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Buckets of the committer's flush-time histogram, seconds.
const FLUSH_BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5];
/// Buckets of the committer's group-size histogram.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("reportstore_ingest_duration_seconds".into()),
                    INGEST_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("reportstore_committer_flush_seconds".into()),
                        FLUSH_BUCKETS,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("reportstore_committer_group_size".into()),
                        GROUP_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(error) => {
                    // Another recorder is installed (an embedding program's): keep ours
                    // private so /metrics still renders what we record through it.
                    tracing::warn!(%error, "a metrics recorder is already installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".to_string())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn metrics upkeep thread");
            handle
        })
        .clone()
}

/// Records one stored report.
pub fn report_stored(protocol: &'static str, grade: &str, elapsed: Duration) {
    let grade = match grade {
        "pass" | "fail" | "na" | "unknown" => grade.to_string(),
        _ => "other".to_string(),
    };
    metrics::counter!("reportstore_reports_ingested_total", "protocol" => protocol, "grade" => grade).increment(1);
    metrics::histogram!("reportstore_ingest_duration_seconds", "protocol" => protocol)
        .record(elapsed.as_secs_f64());
}

/// Records a resubmission of a stored report.
pub fn report_duplicate(protocol: &'static str) {
    metrics::counter!("reportstore_reports_duplicate_total", "protocol" => protocol).increment(1);
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    proc_status_kib("VmRSS:") * 1024
}

/// Peak resident set size of this process, bytes (Linux; 0 elsewhere).
pub fn peak_resident_bytes() -> u64 {
    proc_status_kib("VmHWM:") * 1024
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
