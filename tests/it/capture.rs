//! Raw capture, reprocessing and token health.

use std::path::Path;

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, App, Job};
use ig_collector::sink::Sink;
use serde_json::Value;

use crate::support::graph::FakeGraph;
use crate::support::{self, config_for, read_json, replay_dir, TOKEN};

fn live_app(fake: &FakeGraph, out: &Path) -> App {
    support::live_app(config_for(&fake.url()), Sink::Dir(out.to_path_buf()))
}

fn reprocess(from: &Path, to: &Path, config: Option<&Path>) -> String {
    let mut cmd = support::cli();
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    support::succeed(
        cmd.arg("reprocess")
            .arg("--from")
            .arg(from)
            .arg("--to")
            .arg(to),
    )
}

#[tokio::test]
async fn reprocessing_a_capture_gives_the_same_records_and_a_changed_rule_shows() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // A product type the contract does not know yet.
    let mut dior = read_json(replay_dir().join("brands/dior.json"));
    dior["business_discovery"]["media"]["data"][0]["media_product_type"] = Value::from("IGTV");
    fake.set_brand("dior", dior);
    let out = tempfile::tempdir().expect("tempdir");
    let app = live_app(&fake, out.path());
    let brands_at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let original = run(&app, Job::Brands, brands_at, None).await.expect("run");
    assert!(original
        .defaulted
        .iter()
        .any(|r| r.field == "media_product_type" && r.count == 1));
    let hashtags_at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 47)
        .single()
        .expect("time");
    run(&app, Job::Hashtags, hashtags_at, None)
        .await
        .expect("run");

    let media_key = "raw/media_2023-09-02/media_2023-09-02_000015.json";
    let brand_key = "raw/brand_2023-09-02/brand_2023-09-02_000015.json";
    let tag_key = "raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000047.json";
    let read = |dir: &Path, key: &str| {
        std::fs::read(dir.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    };

    // Unchanged code: the same bytes.
    let again = tempfile::tempdir().expect("tempdir");
    reprocess(
        &out.path()
            .join("raw_api/brands/2023-09-02/2023-09-02_000015"),
        again.path(),
        None,
    );
    reprocess(
        &out.path()
            .join("raw_api/hashtags/2023-09-02/2023-09-02_000047"),
        again.path(),
        None,
    );
    for key in [brand_key, media_key, tag_key] {
        assert_eq!(read(again.path(), key), read(out.path(), key), "{key}");
    }

    // A changed rule: allow IGTV, and the reprocessed record carries it.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("configure.toml");
    std::fs::write(
        &config,
        ig_collector::config::EMBEDDED.replace("\"REELS\"]", "\"REELS\", \"IGTV\"]"),
    )
    .expect("write");
    let changed = tempfile::tempdir().expect("tempdir");
    let summary = reprocess(
        &out.path()
            .join("raw_api/brands/2023-09-02/2023-09-02_000015"),
        changed.path(),
        Some(&config),
    );
    assert!(
        !summary.contains("media_product_type"),
        "nothing defaulted any more: {summary}"
    );
    let before: Value = serde_json::from_slice(&read(out.path(), media_key)).expect("json");
    let after: Value = serde_json::from_slice(&read(changed.path(), media_key)).expect("json");
    let differing: Vec<usize> = (0..275).filter(|i| before[i] != after[i]).collect();
    assert_eq!(differing.len(), 1);
    let i = differing[0];
    assert_eq!(
        (
            before[i]["media_product_type"].as_str(),
            after[i]["media_product_type"].as_str()
        ),
        (Some(""), Some("IGTV"))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_first_brands_run_of_the_day_checks_the_token() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.set_token_expiry(Utc::now().timestamp() + 10 * 86_400);
    let out = tempfile::tempdir().expect("tempdir");
    let app = live_app(&fake, out.path());
    let midnight = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, midnight, None).await.expect("run");
    assert_eq!(summary.token_health.len(), 1);
    let days = summary.token_health[0].days_left.expect("expires");
    assert!((9.9..=10.0).contains(&days), "{days}");
    let emf = ig_collector::telemetry::emf(&summary, false, 0);
    assert_eq!(emf["TokenDaysLeft"].as_f64(), Some(days));
    let call = fake
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/debug_token"))
        .expect("debug_token called");
    assert!(
        call.query.values().all(|v| !v.contains(TOKEN)),
        "the token is not in the URL"
    );

    let later = Utc
        .with_ymd_and_hms(2023, 9, 2, 1, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, later, None).await.expect("run");
    assert!(summary.token_health.is_empty(), "checked once a day");
    assert!(ig_collector::telemetry::emf(&summary, false, 0)
        .get("TokenDaysLeft")
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_status_reports_days_left_and_fails_when_expiry_is_near() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let status = |expires: i64| {
        fake.set_token_expiry(expires);
        support::token_status(&fake.url()).output().expect("runs")
    };
    let now = Utc::now().timestamp();
    let far = tokio::task::block_in_place(|| status(now + 40 * 86_400));
    assert!(
        far.status.success(),
        "{}",
        String::from_utf8_lossy(&far.stderr)
    );
    let report: Value = serde_json::from_slice(&far.stdout).expect("json");
    assert!(report[0]["days_left"].as_f64().is_some_and(|d| d > 39.0));
    let never = tokio::task::block_in_place(|| status(0));
    assert!(never.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&never.stdout).expect("json")[0]["never_expires"],
        true
    );
    let near = tokio::task::block_in_place(|| status(now + 86_400));
    assert_eq!(near.status.code(), Some(1));
    let all = format!(
        "{}{}{}",
        String::from_utf8_lossy(&near.stderr),
        String::from_utf8_lossy(&far.stderr),
        String::from_utf8_lossy(&far.stdout)
    );
    assert!(!all.contains(TOKEN));
}
