//! Logging setup and the run's metrics.
//!
//! Logs go through `tracing`: JSON lines on Lambda (CloudWatch parses them), readable text on the
//! CLI. Metrics are CloudWatch Embedded Metric Format lines written to stdout once per run.

use std::fmt;

use serde_json::{json, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::collect::RunSummary;
use crate::health::RefreshOutcome;

/// `RUST_LOG` when set, else `level` (`info`, `debug`, …).
fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

/// The log level of Lambda's `AWS_LAMBDA_LOG_LEVEL` (`ApplicationLogLevel` in `template.yaml`)
/// as a filter directive; `info` when unset or unknown. Lambda drops lines below it anyway:
/// honouring it here spares formatting them.
pub fn lambda_log_level(value: Option<&str>) -> &'static str {
    match value.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    }
}

/// JSON log lines, one per event, to stdout (Lambda), in the shape Lambda's advanced logging
/// controls read (`LogFormat: JSON` with `ApplicationLogLevel` in `template.yaml`):
///
/// - the level is the top-level `"level"` key, uppercase (`"ERROR"`, `"WARN"`, `"INFO"`): Lambda
///   filters on that key and files a line without it (or with a value it does not know, such as
///   `"CRITICAL"`) as INFO. (The rejected-token line's `severity = "CRITICAL"` is a field, under
///   `fields`; its level stays ERROR.)
/// - every line has a top-level `"timestamp"` in RFC 3339 (`2023-09-02T00:00:15.123456Z`). Lambda
///   documents that a line without a valid timestamp is given the level INFO whatever its
///   `"level"` says (it then adds a timestamp itself): without one, an ERROR line would be
///   dropped at `ApplicationLogLevel: WARN`.
///
/// Fields that carry JSON text ([`JSON_FIELDS`]) are written as nested JSON; see [`LambdaJson`].
pub fn init_json(level: &str) {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(level))
        .event_format(LambdaJson::default())
        .try_init();
}

/// Human-readable logs to stderr (CLI), leaving stdout for the summary.
pub fn init_text(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Event fields whose value is JSON text, written nested by [`LambdaJson`] instead of as an
/// escaped string.
pub const JSON_FIELDS: [&str; 2] = ["summary", "records"];

/// tracing-subscriber's JSON formatter, with the fields of [`JSON_FIELDS`] nested as JSON.
///
/// tracing can only carry a field as a string, a number or a boolean (its `valuable` support,
/// which would carry a structure, is still unstable), so the summary goes into the event as JSON
/// text. This formatter lets the stock JSON formatter write the line (level, timestamp, fields,
/// the invocation's span with its request id), parses that line back and replaces each of these
/// fields by the JSON its text holds. Every event keeps going through the one subscriber, its
/// level filter and its writer; the re-parse costs microseconds on the few lines a run logs. A
/// line that does not parse, or a field whose text is not JSON, is written unchanged, so the
/// formatter can never lose a log line.
pub struct LambdaJson {
    inner: Format<Json, SystemTime>,
}

impl Default for LambdaJson {
    fn default() -> Self {
        LambdaJson {
            inner: tracing_subscriber::fmt::format()
                .json()
                .with_timer(SystemTime)
                .with_target(false)
                .with_current_span(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match nest_json_fields(&line) {
            Some(nested) => writeln!(writer, "{nested}"),
            None => writer.write_str(&line),
        }
    }
}

/// The line with the [`JSON_FIELDS`] under `fields` parsed into JSON; `None` when the line is
/// not a JSON object (it is then written as it is).
fn nest_json_fields(line: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(line.trim_end()).ok()?;
    if let Some(fields) = value.get_mut("fields").and_then(Value::as_object_mut) {
        for name in JSON_FIELDS {
            let Some(slot) = fields.get_mut(name) else {
                continue;
            };
            if let Some(parsed) = slot
                .as_str()
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
            {
                *slot = parsed;
            }
        }
    }
    serde_json::to_string(&value).ok()
}

/// Logs the run's counts as one structured event. `records` (a map of kind to count) and
/// `summary` (the whole [`RunSummary`]) are JSON text: nested JSON on Lambda ([`LambdaJson`]),
/// readable as they are in the CLI's text logs.
pub fn log_summary(summary: &RunSummary, outcome: &str) {
    let json = serde_json::to_string(summary).unwrap_or_default();
    let records = serde_json::to_string(&summary.records).unwrap_or_default();
    tracing::info!(
        job = summary.job.name(),
        outcome,
        records = %records,
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
///
/// `RunsSucceeded` is 1 for a run that succeeded, 0 for one that failed: the alarms on runs that
/// stop treat its absence as breaching, so a schedule that no longer fires, a function that
/// times out before it prints this line and a run that keeps failing all raise them.
pub fn emf(
    summary: &RunSummary,
    succeeded: bool,
    cold_start: bool,
    timestamp_ms: i64,
) -> serde_json::Value {
    let mut metrics = run_metrics(summary, succeeded, cold_start);
    metrics.extend(token_metrics(summary));
    // Hashtags runs only: what the budget left waiting, and what aged out before it was reached.
    if let Some(n) = summary.posts_behind {
        metrics.push(("PostsBehind", "Count", n as f64));
    }
    if let Some(n) = summary.posts_given_up {
        metrics.push(("PostsGivenUp", "Count", n as f64));
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

/// One metric: its name, its unit and its value.
type Metric = (&'static str, &'static str, f64);

/// The metrics every run has.
fn run_metrics(summary: &RunSummary, succeeded: bool, cold_start: bool) -> Vec<Metric> {
    let records: usize = summary.records.values().sum();
    vec![
        ("RunsSucceeded", "Count", if succeeded { 1.0 } else { 0.0 }),
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
        // Fields the requests left out because the API version no longer has them: above
        // zero until the configuration follows the API (alarm: `*FieldsRemovedAlarm`).
        (
            "FieldsRemoved",
            "Count",
            summary.fields_removed.len() as f64,
        ),
        ("Throttled", "Count", summary.graph.throttled as f64),
        (
            "ApiUsagePercent",
            "Percent",
            summary.graph.max_usage_percent as f64,
        ),
        ("RunDurationMs", "Milliseconds", summary.duration_ms as f64),
        ("ColdStart", "Count", if cold_start { 1.0 } else { 0.0 }),
    ]
}

/// The tokens' metrics: their days left and their refreshes, on the daily check only.
fn token_metrics(summary: &RunSummary) -> Vec<Metric> {
    let mut metrics = Vec::new();
    // Only on the daily check, and only for tokens that expire.
    let days_left = summary
        .token_health
        .iter()
        .filter_map(|h| h.days_left)
        .reduce(f64::min);
    if let Some(d) = days_left {
        metrics.push(("TokenDaysLeft", "None", d));
    }
    // Only when the daily check's refresh looked at a token: fresh tokens stored, and refreshes
    // that failed (a token exchanged but not stored counts as failed: it was not taken up).
    if !summary.token_refresh.is_empty() {
        let count = |keep: &dyn Fn(RefreshOutcome) -> bool| {
            summary
                .token_refresh
                .iter()
                .filter(|r| keep(r.outcome))
                .count() as f64
        };
        metrics.push((
            "TokensRefreshed",
            "Count",
            count(&|o| o == RefreshOutcome::Refreshed),
        ));
        metrics.push((
            "TokenRefreshFailed",
            "Count",
            count(&|o| matches!(o, RefreshOutcome::Failed | RefreshOutcome::Exchanged)),
        ));
    }
    metrics
}
