//! Logging setup and the run's metrics.
//!
//! Logs go through `tracing`: JSON lines on Lambda (CloudWatch parses them), readable text on the
//! CLI. Metrics are CloudWatch Embedded Metric Format lines written to stdout once per run.

use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::collect::RunSummary;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON log lines, one per event, to stdout (Lambda).
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Human-readable logs to stderr (CLI), leaving stdout for the summary.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Logs the run's counts as one structured event.
pub fn log_summary(summary: &RunSummary, outcome: &str) {
    let json = serde_json::to_string(summary).unwrap_or_default();
    tracing::info!(
        job = summary.job.name(),
        outcome,
        records = ?summary.records,
        dropped = summary.dropped_total,
        defaulted = summary.defaulted_total,
        failed_targets = summary.failed_targets.len(),
        graph_calls = summary.graph.calls,
        max_usage_percent = summary.graph.max_usage_percent,
        duration_ms = summary.duration_ms,
        summary = %json,
        "run finished"
    );
}

/// The Embedded Metric Format document of one run (namespace `IgCollector`, dimension `Job`).
pub fn emf(summary: &RunSummary, cold_start: bool, timestamp_ms: i64) -> serde_json::Value {
    let records: usize = summary.records.values().sum();
    let mut metrics = vec![
        ("RecordsWritten", "Count", records as f64),
        ("RecordsDropped", "Count", summary.dropped_total as f64),
        ("FieldsDefaulted", "Count", summary.defaulted_total as f64),
        (
            "TargetsFailed",
            "Count",
            summary.failed_targets.len() as f64,
        ),
        ("GraphCalls", "Count", summary.graph.calls as f64),
        ("GraphRetries", "Count", summary.graph.retries as f64),
        ("Throttled", "Count", summary.graph.throttled as f64),
        (
            "ApiUsagePercent",
            "Percent",
            summary.graph.max_usage_percent as f64,
        ),
        ("RunDurationMs", "Milliseconds", summary.duration_ms as f64),
        ("ColdStart", "Count", if cold_start { 1.0 } else { 0.0 }),
    ];
    // Only on the daily check, and only for tokens that expire.
    let days_left = summary
        .token_health
        .iter()
        .filter_map(|h| h.days_left)
        .reduce(f64::min);
    if let Some(d) = days_left {
        metrics.push(("TokenDaysLeft", "None", d));
    }
    let mut doc = serde_json::Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "IgCollector",
                "Dimensions": [["Job"]],
                "Metrics": metrics.iter().map(|(n, u, _)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }]
        }),
    );
    doc.insert("Job".into(), json!(summary.job.name()));
    for (name, _, value) in metrics {
        doc.insert(name.into(), json!(value));
    }
    serde_json::Value::Object(doc)
}
