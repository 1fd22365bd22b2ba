//! Raw capture, reprocessing, and token health and refresh.

use std::path::Path;

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, App, Job};
use ig_collector::sink::Sink;
use serde_json::Value;

use ig_collector::config::Config;
use ig_collector::graph::{AppSecret, Credentials, Source};
use ig_collector::health::RefreshOutcome;
use ig_collector::records::Kind;

use crate::support::graph::{FakeGraph, Fault};
use crate::support::{self, config_for, read_json, replay_dir, APP_ID, APP_SECRET, TOKEN};

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
    let emf = ig_collector::telemetry::emf(&summary, true, false, 0);
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
    assert!(ig_collector::telemetry::emf(&summary, true, false, 0)
        .get("TokenDaysLeft")
        .is_none());
}

/// An app over the fake whose credential can exchange its token (app id and app secret), its
/// token expiring in 5 days, writing to `out`.
fn refreshing_app(fake: &FakeGraph, out: &Path, configure: impl FnOnce(&mut Config)) -> App {
    fake.set_app(APP_ID, APP_SECRET);
    fake.set_token_expiry(Utc::now().timestamp() + 5 * 86_400);
    let mut config = config_for(&fake.url());
    configure(&mut config);
    let credentials = Credentials {
        app_id: Some(APP_ID.into()),
        app_secret: Some(AppSecret::new(APP_SECRET)),
        ..support::credentials(support::CALLER_ID, TOKEN)
    };
    App {
        shard: None,
        source: Source::live(&config.graph, vec![credentials]).expect("client"),
        config,
        sink: Sink::Dir(out.to_path_buf()),
        clock: Default::default(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_daily_checks_refresh_is_booked_with_it_and_counted_in_the_ledger() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    // One attempt per call: the run may then send exactly what it booked.
    let app = refreshing_app(&fake, out.path(), |c| c.retry.max_attempts = 1);
    let midnight = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, midnight, None).await.expect("run");
    assert_eq!(summary.records.get(&Kind::Brand), Some(&11));
    assert_eq!(
        summary.token_refresh.len(),
        1,
        "{:?}",
        summary.token_refresh
    );
    assert_eq!(
        summary.token_refresh[0].outcome,
        RefreshOutcome::Exchanged,
        "{:?}",
        summary.token_refresh
    );
    assert_eq!(fake.issued_tokens().len(), 1);
    // 11 accounts, debug_token and the exchange: booked before, and what was sent after.
    let state = read_json(out.path().join("state/hashtags.json"));
    let booked: Vec<u64> = state["ledger"]
        .as_array()
        .expect("a ledger")
        .iter()
        .filter(|e| e["lane"].as_str().is_some_and(|l| l.ends_with("/brands")))
        .filter_map(|e| e["calls"].as_u64())
        .collect();
    assert_eq!(booked, [13], "{state}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_exchange_refused_with_code_190_stops_no_call_and_fails_no_run() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    // Meta refuses a token issued for another app with code 190.
    fake.fault("oauth/access_token", [Fault::expired_token()]);
    let app = refreshing_app(&fake, out.path(), |_| {});
    let midnight = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, midnight, None)
        .await
        .expect("the run succeeds");
    assert_eq!(summary.records.get(&Kind::Brand), Some(&11));
    assert!(
        summary.failed_targets.is_empty(),
        "{:?}",
        summary.failed_targets
    );
    let refresh = &summary.token_refresh[0];
    assert_eq!(refresh.outcome, RefreshOutcome::Failed);
    assert!(
        refresh
            .message
            .contains("issued for another app than IG_APP_ID"),
        "{}",
        refresh.message
    );
    let emf = ig_collector::telemetry::emf(&summary, true, false, 0);
    assert_eq!(emf["TokenRefreshFailed"].as_f64(), Some(1.0), "{emf}");
    // The next run on the same credential calls as before.
    let later = Utc
        .with_ymd_and_hms(2023, 9, 2, 1, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, later, None).await.expect("run");
    assert_eq!(summary.records.get(&Kind::Brand), Some(&11));
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

fn reprocess_output(from: &Path, to: &Path, config: Option<&Path>) -> std::process::Output {
    let mut cmd = support::cli();
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("reprocess")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .expect("runs")
}

#[tokio::test]
async fn a_recorded_body_that_inflates_past_the_cap_is_refused_while_it_inflates() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 1, 0, 15)
        .single()
        .expect("time");
    run(&live_app(&fake, out.path()), Job::Brands, at, None)
        .await
        .expect("run");
    let capture = out
        .path()
        .join("raw_api/brands/2023-09-02/2023-09-02_010015");
    // A few kilobytes that inflate to one byte more than graph.max_body_bytes (8 MiB).
    let cap = ig_collector::config::EMBEDDED
        .lines()
        .find_map(|l| l.strip_prefix("max_body_bytes = "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("the shipped cap");
    let bomb = ig_collector::graph::gzip(&vec![b' '; cap + 1]);
    assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
    std::fs::write(capture.join("brands/dior.json.gz"), &bomb).expect("write");

    let again = tempfile::tempdir().expect("tempdir");
    let output = reprocess_output(&capture, again.path(), None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).expect("a summary");
    let failed = summary["failed_targets"]
        .as_array()
        .expect("failed targets");
    assert_eq!(failed.len(), 1, "{summary}");
    assert_eq!(failed[0]["target"], "dior");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("dior.json.gz: refused: more than 8388608 bytes once inflated"),
        "{message}"
    );
    assert_eq!(
        summary["records"]["brand"], 10,
        "the other brands as before"
    );
}

#[tokio::test]
async fn a_sharded_capture_reprocesses_part_by_part_into_the_part_files_the_run_wrote() {
    const SECOND_TOKEN: &str = "EAAGsecondTOKEN9876543210leakcanary";
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.allow_token(SECOND_TOKEN);
    // An invocation sized to 3 calls (1 slot × 52 s ÷ 17.333 s): 11 accounts over two
    // credentials, 6 and 5, in 4 shards.
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("configure.toml");
    let text = ig_collector::config::EMBEDDED
        .replace("concurrency = 16", "concurrency = 1")
        .replace("call_time_ms = 4000", "call_time_ms = 17333")
        // The plan's arithmetic counts one call per account: the lookback's pages are `history`'s.
        .replace("lookback_days = 7", "lookback_days = 0");
    std::fs::write(&config_path, &text).expect("write");
    let overrides = ig_collector::config::Overrides {
        graph_api_url: Some(fake.url()),
        ..Default::default()
    };
    let config =
        ig_collector::config::Config::parse(&text, "configure.toml", &overrides).expect("config");
    let out = tempfile::tempdir().expect("tempdir");
    let app = App {
        shard: None,
        source: ig_collector::graph::Source::live(
            &config.graph,
            vec![
                support::credentials(support::CALLER_ID, TOKEN),
                support::credentials("17841400000000001", SECOND_TOKEN),
            ],
        )
        .expect("client"),
        config,
        sink: Sink::Dir(out.path().to_path_buf()),
        clock: Default::default(),
    };
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let plan = app.plan(Job::Brands);
    assert_eq!(plan.shards.len(), 4);
    for shard in &plan.shards {
        let part = app.shard(Job::Brands, shard.index).expect("a shard");
        run(&part, Job::Brands, at, None).await.expect("shard run");
    }
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        for folder in ["raw/brand_2023-09-02", "raw/media_2023-09-02"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = format!("{folder}/{}", e.file_name().to_string_lossy());
                found.push((name, std::fs::read(e.path()).expect("read")));
            }
        }
        found.sort();
        found
    };
    let written = files(out.path());
    assert_eq!(written.len(), 8, "a brand and a media part per shard");
    assert!(written
        .iter()
        .all(|(k, _)| k.contains("_000015.part-000") && k.ends_with(".json")));

    // The run's folder: every part, each into its own part files, the bytes the run wrote.
    let run_folder = out
        .path()
        .join("raw_api/brands/2023-09-02/2023-09-02_000015");
    let again = tempfile::tempdir().expect("tempdir");
    let output = reprocess_output(&run_folder, again.path(), Some(&config_path));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(files(again.path()), written);

    // One part folder: that part's files only.
    let one = tempfile::tempdir().expect("tempdir");
    let output = reprocess_output(
        &run_folder.join("part-0002"),
        one.path(),
        Some(&config_path),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let want: Vec<_> = written
        .iter()
        .filter(|(k, _)| k.contains(".part-0002."))
        .cloned()
        .collect();
    assert_eq!(want.len(), 2);
    assert_eq!(files(one.path()), want);
}
