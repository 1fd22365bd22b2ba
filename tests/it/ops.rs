//! What an operator reads: the Lambda log lines as Lambda's log-level filter and CloudWatch
//! read them.

use serde_json::{json, Value};

use crate::support::graph::{FakeGraph, Fault};
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::S3Server;
use crate::support::{read_json, replay_dir, root, CALLER_ID, TOKEN};

const BUCKET: &str = "ops-out";

fn lambda_env(fake: &FakeGraph, s3: &S3Server) -> Vec<(String, String)> {
    let mut env = s3.env(BUCKET);
    env.extend(
        [
            ("IG_USER_ID", CALLER_ID.to_string()),
            ("IG_ACCESS_TOKEN", TOKEN.to_string()),
            ("GRAPH_API_URL", fake.url()),
            ("RUST_LOG", "info".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}

/// Runs the `brands` binary for `events` and returns the answers and everything it printed.
async fn run_brands(fake: &FakeGraph, events: Vec<Value>) -> (Vec<Value>, String) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let n = events.len();
    let api = RuntimeApi::start(events).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &lambda_env(fake, &s3));
    let outcomes = api.outcomes(n).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), n, "{output}");
    let answers = outcomes
        .into_iter()
        .map(|o| o.result.unwrap_or_else(|(_, body)| body))
        .collect();
    (answers, output)
}

/// The output's log lines (JSON objects with a `level`), parsed; the EMF metrics lines left out.
fn log_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect()
}

/// The level Lambda's application log-level filter gives a line, as AWS documents it for runtimes
/// that write their own JSON: the top-level `"level"` (TRACE, DEBUG, INFO, WARN, ERROR, FATAL,
/// any case), but INFO when that key is missing or unknown, and INFO as well when the line has no
/// valid RFC 3339 timestamp. A line is kept when this level is at or above `ApplicationLogLevel`.
fn level_lambda_files(line: &Value) -> String {
    let timestamp_ok = line["timestamp"]
        .as_str()
        .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
    let level = line["level"].as_str().unwrap_or_default().to_uppercase();
    let known = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&level.as_str());
    if timestamp_ok && known {
        level
    } else {
        "INFO".into()
    }
}

fn kept_at(line: &Value, application_log_level: &str) -> bool {
    let order = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |l: &str| order.iter().position(|o| *o == l).unwrap_or(0);
    rank(&level_lambda_files(line)) >= rank(application_log_level)
}

#[tokio::test]
async fn the_run_finished_line_nests_the_summary_as_json_and_lambda_files_it_at_info() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let event = read_json(root().join("events/brands-scheduled-event.json"));
    let (answers, output) = run_brands(&fake, vec![event]).await;
    assert_eq!(answers[0]["records"]["media"], 275, "{output}");

    let lines = log_lines(&output);
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "run finished")
        .collect();
    assert_eq!(finished.len(), 1, "one run finished line: {output}");
    let line = finished[0];
    let records = json!({"brand": 11, "media": 275});
    assert_eq!(line["fields"]["records"], records, "{line}");
    let summary = &line["fields"]["summary"];
    assert!(summary.is_object(), "the summary is a JSON object: {line}");
    assert_eq!(summary["records"], records);
    assert_eq!(summary["job"], "brands");
    assert_eq!(line["level"], "INFO");
    assert_eq!(
        line["span"]["request_id"], "req-0",
        "the invocation's span: {line}"
    );
    assert!(line.get("time").is_none(), "one time field only: {line}");
    assert_eq!(level_lambda_files(line), "INFO", "{line}");
    for l in &lines {
        assert!(
            l["timestamp"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "every line has an RFC 3339 timestamp, or Lambda files it as INFO: {l}"
        );
    }
    assert!(!output.contains(TOKEN));
}

#[tokio::test]
async fn an_error_line_stays_error_and_passes_lambdas_warn_filter() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // Every call is answered "token expired": the credential stops, the invocation fails.
    fake.fault(
        "*",
        [Fault::Error {
            status: 400,
            code: 190,
            subcode: Some(463),
            transient: None,
        }],
    );
    let event = read_json(root().join("events/brands-scheduled-event.json"));
    let (answers, output) = run_brands(&fake, vec![event]).await;
    assert_eq!(answers[0]["errorType"], "TokenRejected", "{output}");

    let lines = log_lines(&output);
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    let failed = errors
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("invocation failed"))
        })
        .unwrap_or_else(|| panic!("an ERROR line says the invocation failed: {output}"));
    assert!(output.contains(r#""level":"ERROR""#), "{output}");
    let critical = errors
        .iter()
        .find(|l| l["fields"]["severity"] == "CRITICAL")
        .unwrap_or_else(|| panic!("the rejected token is logged: {output}"));
    for line in [failed, critical] {
        assert_eq!(level_lambda_files(line), "ERROR", "{line}");
        assert!(kept_at(line, "WARN"), "dropped at WARN: {line}");
        assert!(kept_at(line, "ERROR"), "dropped at ERROR: {line}");
    }
    let finished = lines
        .iter()
        .find(|l| l["fields"]["message"] == "run finished")
        .unwrap_or_else(|| panic!("a failed run logs its summary too: {output}"));
    assert_eq!(finished["fields"]["outcome"], "failed");
    assert!(finished["fields"]["summary"]["failed_targets"].is_array());
    assert!(
        !kept_at(finished, "WARN"),
        "an INFO line is filtered at WARN"
    );
    assert!(!output.contains(TOKEN));
}
