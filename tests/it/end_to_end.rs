//! Both jobs end to end over HTTP: the fake Graph API in, a real S3-protocol server (moto) out,
//! objects read back through aws-sdk-s3 and compared with the replaced system's outputs.

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, App, Job, RunError};
use serde_json::Value;

use crate::support::graph::FakeGraph;
use crate::support::s3::{sink_for, S3Server};
use crate::support::{self, config_for, read_json, replay_dir, samples_dir, CALLER_ID, TOKEN};

const BUCKET: &str = "ig-raw";

fn app(fake: &FakeGraph, endpoint: &str, bucket: &str) -> App {
    let config = config_for(&fake.url());
    let sink = sink_for(endpoint, bucket, &config);
    support::live_app(config, sink)
}

fn same_records(ours: &[u8], sample: &Value) {
    let ours: Value = serde_json::from_slice(ours).expect("the object is JSON");
    let (ours, theirs) = (
        ours.as_array().expect("array"),
        sample.as_array().expect("array"),
    );
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let keys = |v: &Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(keys(a), keys(b), "record {i}: field order");
        assert_eq!(a, b, "record {i}");
    }
}

#[tokio::test]
async fn both_jobs_write_the_sample_records_to_s3() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app(&fake, &s3.endpoint, BUCKET);

    let brands_at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
        .single()
        .expect("time");
    let summary = run(&app, Job::Brands, brands_at, None)
        .await
        .expect("brands run");
    assert_eq!(summary.records.values().sum::<usize>(), 11 + 275);
    // One business_discovery per account, and the daily token check (the 00:xx run).
    assert_eq!(summary.graph.calls, 12);
    assert_eq!(summary.token_health.len(), 1);
    let hashtags_at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 0, 47)
        .single()
        .expect("time");
    let summary = run(&app, Job::Hashtags, hashtags_at, None)
        .await
        .expect("hashtags run");
    assert_eq!(
        summary.resolved_hashtag_ids.len(),
        11,
        "every id was looked up and reported for pinning"
    );

    let keys = s3.data_keys(BUCKET).await;
    assert_eq!(
        keys,
        [
            "raw/brand_2023-09-02/brand_2023-09-02_000015.json",
            "raw/media_2023-09-02/media_2023-09-02_000015.json",
            "raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000047.json",
        ]
    );
    for key in &keys {
        same_records(
            &s3.get(BUCKET, key).await,
            &read_json(samples_dir().join(key.trim_start_matches("raw/"))),
        );
    }

    // Every response body is kept, gzip-compressed, in the layout --replay reads.
    let all = s3.keys(BUCKET).await;
    let under = |p: &str| all.iter().filter(|k| k.starts_with(p)).count();
    assert_eq!(
        under("raw_api/brands/2023-09-02/2023-09-02_000015/brands/"),
        11
    );
    assert_eq!(
        under("raw_api/hashtags/2023-09-02/2023-09-02_000047/hashtags/"),
        11
    );
    assert_eq!(
        under("raw_api/hashtags/2023-09-02/2023-09-02_000047/hashtag_search/"),
        11
    );
    assert!(all.contains(&"state/hashtags.json".to_string()), "{all:?}");
    let body = s3
        .get(
            BUCKET,
            "raw_api/brands/2023-09-02/2023-09-02_000015/brands/dior.json.gz",
        )
        .await;
    let body = ig_collector::graph::gunzip(&body).expect("gzip");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        read_json(replay_dir().join("brands/dior.json"))
    );

    // The request carries exactly the fields of the contract, derived from the record tables.
    let bd = fake
        .seen()
        .into_iter()
        .find(|s| {
            s.query
                .get("fields")
                .is_some_and(|f| f.contains("business_discovery"))
        })
        .expect("a call");
    assert_eq!(
        bd.query["fields"],
        "business_discovery.username(hermes){id,username,name,profile_picture_url,followers_count,media_count,media.limit(25){id,timestamp,caption,media_type,media_product_type,media_url,permalink,like_count,comments_count}}"
    );
    let rm = fake
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/recent_media"))
        .expect("a call");
    assert_eq!(
        rm.query["fields"],
        "id,timestamp,caption,media_type,like_count,comments_count"
    );
    assert_eq!(rm.query["user_id"], CALLER_ID);
    assert!(rm.path.starts_with("/v24.0/"), "{}", rm.path);
}

#[tokio::test]
async fn running_the_same_scheduled_time_twice_leaves_one_object_per_key() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app(&fake, &s3.endpoint, BUCKET);
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 1, 0, 0)
        .single()
        .expect("time");
    let first = run(&app, Job::Brands, at, None).await.expect("first");
    let second = run(&app, Job::Brands, at, None).await.expect("second");
    assert_eq!(first.keys_written, second.keys_written);
    assert_eq!(s3.data_keys(BUCKET).await.len(), 2);
    let captured = s3
        .keys(BUCKET)
        .await
        .into_iter()
        .filter(|k| k.starts_with("raw_api/brands/2023-09-02/2023-09-02_010000/brands/"))
        .count();
    assert_eq!(
        captured, 11,
        "the raw capture is overwritten too, one body per account"
    );
}

#[tokio::test]
async fn an_unreachable_s3_fails_the_run_naming_the_object() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let app = app(&fake, &format!("http://127.0.0.1:{port}"), BUCKET);
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 2, 0, 0)
        .single()
        .expect("time");
    // The run books its calls in the ledger before making any: an unreachable S3 is found
    // there, before a call is spent.
    let err = run(&app, Job::Brands, at, None)
        .await
        .expect_err("the booking must fail the run");
    assert!(matches!(err, RunError::StateUnreadable(..)), "{err}");
    assert!(fake.seen().is_empty(), "no Graph call: {:?}", fake.seen());
    let msg = err.to_string();
    assert!(msg.contains("s3://ig-raw/state/hashtags.json"), "{msg}");
    assert!(!msg.contains(TOKEN));
}

#[tokio::test]
async fn a_missing_bucket_fails_the_run() {
    let s3 = S3Server::start();
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app(&fake, &s3.endpoint, "no-such-bucket");
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 3, 0, 0)
        .single()
        .expect("time");
    let err = run(&app, Job::Hashtags, at, None)
        .await
        .expect_err("must fail");
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

#[test]
fn the_cli_replays_both_jobs_offline_into_a_folder() {
    let out = tempfile::tempdir().expect("tempdir");
    support::succeed(
        support::cli()
            .args(["all", "--replay"])
            .arg(replay_dir())
            .arg("--out")
            .arg(out.path())
            .args(["--at", "2023-09-02T00:00:15Z"])
            .env_remove("IG_ACCESS_TOKEN"),
    );
    for (key, sample) in [
        (
            "raw/brand_2023-09-02/brand_2023-09-02_000015.json",
            "brand_2023-09-02/brand_2023-09-02_000015.json",
        ),
        (
            "raw/media_2023-09-02/media_2023-09-02_000015.json",
            "media_2023-09-02/media_2023-09-02_000015.json",
        ),
        (
            "raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000015.json",
            "media_hashtag_2023-09-02/media_hashtag_2023-09-02_000047.json",
        ),
    ] {
        let bytes = std::fs::read(out.path().join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        same_records(&bytes, &read_json(samples_dir().join(sample)));
    }
}

#[test]
fn the_cli_without_a_token_says_how_to_run_offline() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ig-collector"))
        .args(["brands", "--out", "/nonexistent-never-written"])
        .env_remove("IG_ACCESS_TOKEN")
        .env_remove("IG_TOKEN_SECRET_ARN")
        .env("IG_USER_ID", CALLER_ID)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("IG_ACCESS_TOKEN") && stderr.contains("--replay"),
        "{stderr}"
    );
}

#[tokio::test]
async fn ndjson_output_is_one_record_per_line_and_a_redelivery_merges_it() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let overrides = ig_collector::config::Overrides {
        graph_api_url: Some(fake.url()),
        output_format: Some("ndjson".into()),
        ..Default::default()
    };
    let config = ig_collector::config::Config::parse(
        ig_collector::config::EMBEDDED,
        "configure.toml",
        &overrides,
    )
    .expect("valid");
    let app = support::live_app(
        config,
        ig_collector::sink::Sink::Dir(out.path().to_path_buf()),
    );
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 4, 0, 0)
        .single()
        .expect("time");
    let path = out
        .path()
        .join("raw/brand_2023-09-02/brand_2023-09-02_040000.json");
    for delivery in 0..2 {
        let summary = run(&app, Job::Brands, at, None).await.expect("run");
        assert_eq!(summary.merged_with_earlier.len(), delivery * 2);
        let text = std::fs::read_to_string(&path).expect("written");
        assert!(!text.starts_with('['), "{text}");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one object per line"))
            .collect();
        assert_eq!(lines.len(), 11);
        let fields: Vec<&str> = lines[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ig_collector::records::Kind::Brand.columns());
    }
}
