//! The brands job at scale: each answer is rendered into the data objects and captured as it
//! arrives. What downstream reads must not change: the objects are byte for byte what rendering
//! every record at the end gives, a capture file exists for every account, and a redelivery
//! still merges into what the first delivery wrote.

use chrono::{DateTime, Utc};
use ig_collector::collect::{run, App, Job};
use ig_collector::config::{Config, Target};
use ig_collector::graph::{gunzip, shapes, Source};
use ig_collector::records::{self, Batch, Format};
use ig_collector::sink::Sink;
use ig_collector::validate::Tally;
use serde_json::{json, Value};

use crate::support::graph::{synthetic_brand, FakeGraph};
use crate::support::s3::{sink_for, S3Server};
use crate::support::s3proxy::S3Proxy;
use crate::support::{self, at, config_for, read_json, replay_dir, synthetic_targets, TOKEN};

const BUCKET: &str = "ig-streaming";
/// Enough accounts for the media object to pass the 1 MiB it is kept in memory up to, so the
/// rest goes through a temporary file and is uploaded from there.
const ACCOUNTS: usize = 60;

/// What rendering every record at the end gives: the bodies flattened in target order, each
/// kind rendered at once by `records::render`.
fn batch_rendering(
    config: &Config,
    body_of: impl Fn(usize, &Target) -> Value,
) -> (Vec<u8>, Vec<u8>) {
    let mut all = Batch::default();
    let mut tally = Tally::default();
    for (i, t) in config.targets.iter().enumerate() {
        let batch = shapes::brand(&body_of(i, t), t, &config.validation, &mut tally)
            .expect("a business_discovery body");
        all.append(batch);
    }
    let format = config.output.format;
    (
        records::render(&all.brand, format),
        records::render(&all.media, format),
    )
}

fn keys(t: DateTime<Utc>) -> (String, String) {
    (
        t.format("raw/brand_%Y-%m-%d/brand_%Y-%m-%d_%H%M%S.json")
            .to_string(),
        t.format("raw/media_%Y-%m-%d/media_%Y-%m-%d_%H%M%S.json")
            .to_string(),
    )
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(300).collect()
}

#[tokio::test]
async fn the_streamed_objects_are_byte_for_byte_the_batch_rendering_in_both_formats() {
    for format in [Format::Json, Format::Ndjson] {
        let out = tempfile::tempdir().expect("tempdir");
        let mut config = config_for("http://127.0.0.1:9");
        config.output.format = format;
        let app = App {
            shard: None,
            source: Source::Replay(replay_dir()),
            sink: Sink::Dir(out.path().to_path_buf()),
            config,
            clock: Default::default(),
        };
        let t = at(10, 0, 0);
        let summary = run(&app, Job::Brands, t, None).await.expect("brands run");
        assert_eq!(summary.records.values().sum::<usize>(), 11 + 275);
        let (brand, media) = batch_rendering(&app.config, |_, t| {
            read_json(replay_dir().join(format!("brands/{}.json", t.username)))
        });
        // The recorded captions hold emoji (outside the BMP) and CRLF line breaks.
        let text = String::from_utf8_lossy(&media);
        assert!(text.contains("\\r\\n") && text.chars().any(|c| c as u32 > 0xFFFF));
        let (brand_key, media_key) = keys(t);
        let written = |k: &str| std::fs::read(out.path().join(k)).expect("the object");
        assert_eq!(written(&brand_key), brand, "{format:?}: {}", show(&brand));
        assert_eq!(written(&media_key), media, "{format:?}: {}", show(&media));
    }
}

fn app_at_scale(fake: &FakeGraph, endpoint: &str) -> App {
    let mut config = config_for(&fake.url());
    config.targets = synthetic_targets(ACCOUNTS);
    config.graph.concurrency = 8;
    let sink = sink_for(endpoint, BUCKET, &config);
    support::live_app(config, sink)
}

#[tokio::test]
async fn every_accounts_capture_is_written_as_it_arrives_and_a_redelivery_still_merges() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let proxy = S3Proxy::start(&s3.endpoint).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.add_synthetic_accounts(ACCOUNTS);
    let templates = fake.synthetic_templates();
    let app = app_at_scale(&fake, &proxy.endpoint);
    let t = at(11, 0, 0);

    let first = run(&app, Job::Brands, t, None).await.expect("brands run");
    assert_eq!(first.records[&records::Kind::Brand], ACCOUNTS);
    assert_eq!(first.records[&records::Kind::Media], ACCOUNTS * 25);
    assert!(
        first.failed_targets.is_empty(),
        "{:?}",
        first.failed_targets
    );

    // The objects, the media one well past the in-memory part, are the batch rendering.
    let (brand, media) = batch_rendering(&app.config, |i, _| synthetic_brand(&templates, i));
    assert!(media.len() > 1 << 20, "{} bytes", media.len());
    let (brand_key, media_key) = keys(t);
    assert_eq!(s3.get(BUCKET, &brand_key).await, brand, "{}", show(&brand));
    assert_eq!(s3.get(BUCKET, &media_key).await, media, "{}", show(&media));

    // A capture file per account, each the body the account answered.
    let prefix = "raw_api/brands/2023-09-02/2023-09-02_110000/brands/";
    let all = s3.keys(BUCKET).await;
    let captured: Vec<&String> = all.iter().filter(|k| k.starts_with(prefix)).collect();
    assert_eq!(captured.len(), ACCOUNTS, "{all:?}");
    for (i, target) in app.config.targets.iter().enumerate() {
        let key = format!("{prefix}{}.json.gz", target.username);
        let body = gunzip(&s3.get(BUCKET, &key).await).expect("gzip");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("JSON"),
            synthetic_brand(&templates, i),
            "{key}"
        );
    }
    // Written as the answers arrived: every capture went out before the first data object.
    let puts: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|(m, _)| m == "PUT")
        .map(|(_, p)| p)
        .collect();
    let first_data = puts
        .iter()
        .position(|p| p.contains("/raw/brand_"))
        .expect("the brand object was written");
    let captures_before = puts[..first_data]
        .iter()
        .filter(|p| p.contains("/raw_api/brands/"))
        .count();
    assert_eq!(captures_before, ACCOUNTS, "{puts:?}");

    // A redelivery of the same time, with one account changed: its newer copy replaces the
    // record, its new post is appended, nothing is removed, and the first capture is kept.
    let changed = 3;
    let mut body = synthetic_brand(&templates, changed);
    let media_list = body["business_discovery"]["media"]["data"]
        .as_array_mut()
        .expect("media");
    media_list[0]["like_count"] = json!(987_654);
    let mut extra = media_list[1].clone();
    extra["id"] = json!("18999999999990001");
    media_list.push(extra);
    fake.set_brand(&app.config.targets[changed].username, body);
    let second = run(&app, Job::Brands, t, None).await.expect("redelivery");
    assert_eq!(second.merged_with_earlier.len(), 2, "{second:?}");
    assert_eq!(second.capture_files_kept as usize, ACCOUNTS);
    let merged: Vec<Value> =
        serde_json::from_slice(&s3.get(BUCKET, &media_key).await).expect("JSON array");
    assert_eq!(merged.len(), ACCOUNTS * 25 + 1);
    let first_records: Vec<Value> = serde_json::from_slice(&media).expect("JSON array");
    for (i, r) in first_records.iter().enumerate() {
        assert_eq!(
            merged[i]["media_id"], r["media_id"],
            "record {i} kept in place"
        );
    }
    let user = &app.config.targets[changed].user_id;
    let refreshed = merged
        .iter()
        .find(|r| r["user_id"] == json!(user) && r["like_count"] == json!(987_654));
    assert!(refreshed.is_some(), "the newer copy replaced the record");
    assert_eq!(
        merged.last().map(|r| &r["media_id"]),
        Some(&json!("18999999999990001"))
    );
    let capture = gunzip(
        &s3.get(
            BUCKET,
            &format!("{prefix}{}.json.gz", app.config.targets[changed].username),
        )
        .await,
    )
    .expect("gzip");
    assert_eq!(
        serde_json::from_slice::<Value>(&capture).expect("JSON"),
        synthetic_brand(&templates, changed),
        "the first delivery's capture is kept"
    );
}
