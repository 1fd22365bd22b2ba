//! The `ig-collector` CLI's operator commands: check-config, resolve-hashtags, reprocess from
//! S3 (and its refusal to write outside `--to`), and `--at` in both time forms.

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, Job};
use serde_json::Value;

use crate::support::graph::FakeGraph;
use crate::support::s3::{sink_for, S3Server};
use crate::support::{self, cli, config_for, replay_dir, succeed, TOKEN};

const BUCKET: &str = "cli";

#[test]
fn check_config_prints_the_plan_and_the_budget_arithmetic() {
    let out = succeed(cli().env_remove("IG_USER_ID").arg("check-config"));
    assert!(out.contains("configure.toml (embedded): ok"), "{out}");
    assert!(out.contains("11 targets:"), "{out}");
    assert!(out.contains("dior") && out.contains("#valentino"), "{out}");
    assert!(
        out.contains("raw/media_hashtag_{%Y-%m-%d}/media_hashtag_{%Y-%m-%d_%H%M%S}.json"),
        "{out}"
    );
    assert!(
        out.contains("credential 1 of 1: 200 calls/h - 11 accounts × 1 brands run/h - 1 token check = 188 calls/h for 11 hashtags; \
                      each polled at least every 30 min (hashtags.max_delay_mins 30, on the 5-min schedule): 11 × 2.0 = 22.0 calls/h; \
                      the 166.0 calls/h left fetch up to 8300 more posts/h (50 a page)"),
        "{out}"
    );
}

#[test]
fn check_config_refuses_a_bad_file_naming_the_file_and_each_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = ig_collector::config::EMBEDDED
        .replace("concurrency = 16", "concurrency = 0")
        .replace(
            "known_window_mins = 180",
            "known_window_mins = 200000000000",
        );
    std::fs::write(&path, text).expect("write");
    let output = cli()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("graph.concurrency") && err.contains("hashtags.known_window_mins"),
        "{err}"
    );
    // Over the budget with one credential, within it with two.
    // Every hashtag polled every 5 minutes on 100 calls an hour: 11 × 12 = 132 > 88.
    let over = ig_collector::config::EMBEDDED
        .replace("max_delay_mins = 30", "max_delay_mins = 5")
        .replace(
            "calls_per_hour_per_credential = 200",
            "calls_per_hour_per_credential = 100",
        );
    std::fs::write(&path, over).expect("write");
    let output = cli()
        .arg("--config")
        .arg(&path)
        .args(["check-config", "--credentials", "1"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("over the Graph API budget"));
    succeed(
        cli()
            .arg("--config")
            .arg(&path)
            .args(["check-config", "--credentials", "2"]),
    );
}

#[test]
fn resolve_hashtags_prints_a_line_to_pin_for_each_hashtag() {
    let out = succeed(
        cli()
            .args(["resolve-hashtags", "--replay"])
            .arg(replay_dir()),
    );
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("hashtag_id = \""))
        .collect();
    assert_eq!(lines.len(), 11, "{out}");
    let dior = support::read_json(replay_dir().join("hashtag_search/dior.json"));
    let id = dior["data"][0]["id"].as_str().expect("id");
    assert!(
        out.contains(&format!("# dior #dior\nhashtag_id = \"{id}\"")),
        "{out}"
    );
}

#[test]
fn at_accepts_rfc_3339_and_the_graph_form_of_the_outputs() {
    for at in ["2023-09-02T00:00:15Z", "2023-09-02T00:00:15+0000"] {
        let out = tempfile::tempdir().expect("tempdir");
        succeed(
            cli()
                .args(["brands", "--replay"])
                .arg(replay_dir())
                .arg("--out")
                .arg(out.path())
                .args(["--at", at]),
        );
        assert!(out
            .path()
            .join("raw/brand_2023-09-02/brand_2023-09-02_000015.json")
            .exists());
    }
    let output = cli()
        .args(["brands", "--at", "2023-09-02"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("2023-09-02T00:00:15+0000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reprocess_from_s3_gives_the_records_back_and_never_writes_outside_its_folder() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let config = config_for(&fake.url());
    let sink = sink_for(&s3.endpoint, BUCKET, &config);
    let app = support::live_app(config, sink);
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 5, 0)
        .single()
        .expect("time");
    run(&app, Job::Hashtags, at, None)
        .await
        .expect("a live run");
    let key = "raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000500.json";
    let original: Value = serde_json::from_slice(&s3.get(BUCKET, key).await).expect("json");

    let to = tempfile::tempdir().expect("tempdir");
    let from = format!("s3://{BUCKET}/raw_api/hashtags/2023-09-02/2023-09-02_000500");
    let reprocess = |to: &std::path::Path| {
        let mut cmd = cli();
        for (k, v) in s3.env(BUCKET) {
            cmd.env(k, v);
        }
        cmd.env_remove("BUCKET")
            .args(["reprocess", "--from", &from, "--to"])
            .arg(to)
            .output()
            .expect("runs")
    };
    let output = reprocess(to.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again: Value =
        serde_json::from_slice(&std::fs::read(to.path().join(key)).expect("reprocessed object"))
            .expect("json");
    assert_eq!(again, original, "the capture gives the same records back");

    // A key that climbs out of the capture folder is refused, and nothing lands outside.
    let outside = to.path().join("escaped.json.gz");
    let hostile = format!(
        "raw_api/hashtags/2023-09-02/2023-09-02_000500/../../../../{}",
        outside.display().to_string().trim_start_matches('/')
    );
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(&hostile)
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");
    assert!(
        s3.keys(BUCKET).await.contains(&hostile),
        "the server keeps the key as given"
    );
    let second = tempfile::tempdir().expect("tempdir");
    let output = reprocess(second.path());
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("would be written outside") && err.contains("refused"),
        "{err}"
    );
    assert!(!outside.exists());
}
