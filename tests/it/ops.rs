//! What an operator reads and runs: the Lambda log lines as Lambda's log-level filter and
//! CloudWatch read them, README's query examples run against a real run's output, and README's
//! table of the stack's parameters against template.yaml.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::graph::{FakeGraph, Fault};
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::S3Server;
use crate::support::{self, read_json, replay_dir, root, TOKEN};

const BUCKET: &str = "ops-out";

fn lambda_env(fake: &FakeGraph, s3: &S3Server) -> Vec<(String, String)> {
    support::function_env(s3.env(BUCKET), &fake.url(), None)
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
    fake.fault("*", [Fault::expired_token()]);
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

/// README's "Query the output" section.
pub(crate) fn query_section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("## Query the output")
        .expect("README has a Query the output section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The fenced blocks of `lang` in `text`.
pub(crate) fn fenced(text: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let end = body.find("```").expect("a closed block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

/// README's DuckDB blocks: the views of each output format (`'array'`, `'newline_delimited'`)
/// and the example queries on them. The S3 setup block (httpfs, credentials) is what a local
/// folder does not need; the Athena block reads Glue tables.
struct DuckDbDocs {
    views: Vec<(String, String)>,
    queries: Vec<String>,
}

fn duckdb_docs(section: &str) -> DuckDbDocs {
    let mut docs = DuckDbDocs {
        views: Vec::new(),
        queries: Vec::new(),
    };
    let mut setup = 0;
    for block in fenced(section, "sql") {
        if block.contains("ig_collector.") {
            continue;
        } else if block.contains("INSTALL httpfs") {
            setup += 1;
        } else if block.contains("s3://<bucket>/") {
            let format = ["'array'", "'newline_delimited'"]
                .into_iter()
                .find(|f| block.contains(&format!("format = {f}")))
                .unwrap_or_else(|| panic!("a view block names its format: {block}"));
            docs.views
                .push((format.trim_matches('\'').to_string(), block));
        } else {
            docs.queries.push(block);
        }
    }
    assert_eq!(setup, 1, "one S3 setup block");
    let formats: Vec<&str> = docs.views.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        formats,
        ["array", "newline_delimited"],
        "a view block per format"
    );
    assert!(!docs.queries.is_empty(), "an example query");
    docs
}

/// Every bucket path in `section` (DuckDB's `s3://` and Spark's `s3a://`).
fn bucket_paths(section: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for scheme in ["s3://<bucket>/", "s3a://<bucket>/"] {
        for (i, _) in section.match_indices(scheme) {
            let path: String = section[i..]
                .chars()
                .take_while(|c| !matches!(c, '\'' | '"' | '`' | ' ' | '\n'))
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// Runs the DuckDB `request` in python3 (`pip install duckdb`): `setup` statements, then `SELECT
/// count(*)` of each of `counts`, each of `queries` (rows), and `glob()` of each of `globs`.
pub(crate) fn duckdb(request: &Value) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import duckdb
req = json.load(sys.stdin)
con = duckdb.connect()
for sql in req["setup"]:
    con.execute(sql)
out = {
    "counts": {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in req["counts"]},
    "queries": [con.execute(q).fetchall() for q in req["queries"]],
    "globs": {g: [r[0] for r in con.execute("SELECT file FROM glob(?)", [g]).fetchall()] for g in req["globs"]},
}
print(json.dumps(out, default=str))
"#;
    crate::support::python_json(SCRIPT, request, "DuckDB failed (pip install duckdb)")
}

/// Replaces the one object in `folder` by three part files holding its records, named as a
/// sharded run names them (`….part-0000.json`).
fn split_into_parts(folder: &Path, format: &str) {
    let format = ig_collector::records::Format::parse(format).expect("a format");
    let entries: Vec<_> = std::fs::read_dir(folder)
        .expect("the folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let object = &entries[0];
    let records =
        ig_collector::records::parse(&std::fs::read(object).expect("read")).expect("records");
    let name = object.display().to_string();
    let stem = name.strip_suffix(".json").expect("a .json object");
    for (k, part) in records.chunks(records.len().div_ceil(3)).enumerate() {
        let path = ig_collector::config::part_key(&name, k);
        assert!(path.starts_with(stem));
        std::fs::write(&path, ig_collector::records::render(part, format)).expect("part");
    }
    std::fs::remove_file(object).expect("removed");
}

/// Replays both jobs offline into `dir` in `format`; returns the hashtags run's record count.
fn replay_into(dir: &Path, format: &str) -> u64 {
    let stdout = support::succeed(
        support::cli()
            .args(["all", "--replay"])
            .arg(replay_dir())
            .arg("--out")
            .arg(dir)
            .args(["--at", "2023-09-02T00:00:15Z"])
            .env("OUTPUT_FORMAT", format)
            .env_remove("IG_ACCESS_TOKEN"),
    );
    serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|s| s.expect("summaries are JSON"))
        .find(|s| s["job"] == "hashtags")
        .and_then(|s| s["records"]["media_hashtag"].as_u64())
        .expect("the hashtags run's summary")
}

#[test]
fn readmes_duckdb_queries_count_each_kind_once_in_both_output_formats() {
    let section = query_section();
    let docs = duckdb_docs(&section);
    let paths = bucket_paths(&section);
    assert!(paths.len() >= 9, "the views and Spark's reads: {paths:?}");
    for (format, views) in &docs.views {
        let cli_format = if format == "array" { "json" } else { "ndjson" };
        // The views are what `ig-collector ddl duckdb` prints for this format.
        let printed = support::succeed(
            support::cli()
                .args(["ddl", "duckdb", "--root", "s3://<bucket>"])
                .env("OUTPUT_FORMAT", cli_format),
        );
        assert_eq!(
            views, &printed,
            "README's {format} views are not what `ig-collector ddl duckdb` prints"
        );
        let out = tempfile::tempdir().expect("tempdir");
        let hashtag_posts = replay_into(out.path(), cli_format);
        assert!(hashtag_posts > 0);
        // A sharded run writes part files beside the object instead: the same globs read them.
        split_into_parts(&out.path().join("raw/media_2023-09-02"), cli_format);
        let local = format!("{}/", out.path().display());
        let local_path = |p: &str| {
            p.replace("s3://<bucket>/", &local)
                .replace("s3a://<bucket>/", &local)
        };
        let answer = duckdb(&json!({
            "setup": [local_path(views)],
            "counts": ["brand", "media", "media_hashtag"],
            "queries": docs.queries,
            "globs": paths.iter().map(|p| local_path(p)).collect::<Vec<_>>(),
        }));
        assert_eq!(
            answer["counts"],
            json!({"brand": 11, "media": 275, "media_hashtag": hashtag_posts}),
            "{format}: each view holds its kind's records only"
        );
        // The example: media per account, 25 posts for each of the 11 accounts.
        let rows = answer["queries"][0].as_array().expect("rows");
        assert_eq!(rows.len(), 11, "{format}: {rows:?}");
        assert!(rows.iter().all(|r| r[1] == 25), "{format}: {rows:?}");
        // The latest snapshot per post: each of the 275 posts once, from its run's object.
        let latest = answer["queries"][1].as_array().expect("rows");
        assert_eq!(latest.len(), 275, "{format}: one row per media_id");
        assert!(
            latest.iter().all(|r| r[4]
                .as_str()
                .is_some_and(|f| f.contains("media_2023-09-02_000015"))),
            "{format}: {latest:?}"
        );
        // Every documented path, Spark's too, matches one kind's objects and nothing else.
        for (path, files) in answer["globs"].as_object().expect("globs") {
            let files: Vec<&str> = files
                .as_array()
                .expect("files")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(!files.is_empty(), "{path} matches nothing");
            let kinds: std::collections::BTreeSet<&str> = files
                .iter()
                .filter_map(|f| Path::new(f).parent()?.file_name()?.to_str())
                .map(|dir| dir.rsplit_once('_').map_or(dir, |(kind, _)| kind))
                .collect();
            assert_eq!(kinds.len(), 1, "{path} mixes kinds: {files:?}");
        }
    }
}

/// The names declared under `Parameters:` in template.yaml (two-space keys until the next
/// top-level section).
fn template_parameters() -> Vec<String> {
    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let body = template
        .split_once("\nParameters:\n")
        .expect("a Parameters section")
        .1;
    body.lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect()
}

#[test]
fn readmes_deploy_table_describes_every_template_parameter() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let deploy = &readme[readme.find("## Deploy").expect("a Deploy section")..];
    let deploy = &deploy[..deploy[3..].find("\n## ").map_or(deploy.len(), |i| i + 3)];
    let documented: Vec<String> = deploy
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect();
    let declared = template_parameters();
    assert!(declared.len() >= 10, "{declared:?}");
    assert!(declared.contains(&"RawCaptureExpireDays".to_string()));
    assert_eq!(
        documented, declared,
        "README's parameter table, in the template's order"
    );
}
