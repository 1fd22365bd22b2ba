//! Fan-out: the planner and the worker over every shard of a run, against the same run in one
//! process; retries of a shard; the shard events through the real Lambda binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ig_collector::collect::{self, App, Job};
use ig_collector::config::Config;
use ig_collector::graph::Source;
use ig_collector::records;
use serde_json::{json, Value};

use crate::support::graph::FakeGraph;
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::{sink_for, S3Server};
use crate::support::{self, at, config_for, credentials, replay_dir, CALLER_ID, TOKEN};

const SECOND_TOKEN: &str = "EAAGsecondTOKEN9876543210leakcanary";
const SECOND_ID: &str = "17841400000000001";

/// The fake Graph API accepting two credentials.
async fn fake() -> FakeGraph {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.allow_token(SECOND_TOKEN);
    fake
}

/// `config` with one invocation sized to `capacity` calls: 4 concurrent calls × (60 s - 8 s
/// margin) ÷ the call time.
fn with_capacity(mut config: Config, capacity: u64) -> Config {
    // One call per account, as the arithmetic below counts: the lookback's pages are `history`'s.
    config.brands.lookback_days = 0;
    config.graph.concurrency = 4;
    config.fanout.invocation_timeout = Duration::from_secs(60);
    config.retry.deadline_margin = Duration::from_secs(8);
    config.fanout.call_time = Duration::from_millis(52_000 * 4 / capacity);
    config
}

/// An app over two credentials writing to `bucket`.
fn app(config: Config, s3: &S3Server, bucket: &str) -> App {
    let sink = sink_for(&s3.endpoint, bucket, &config);
    let source = Source::live(
        &config.graph,
        vec![
            credentials(CALLER_ID, TOKEN),
            credentials(SECOND_ID, SECOND_TOKEN),
        ],
    )
    .expect("client");
    App {
        shard: None,
        config,
        source,
        sink,
        clock: Default::default(),
    }
}

/// Every record under `raw/` per kind (from the key's folder), as JSON texts, and how many
/// records the objects hold in all (a record written twice counts twice).
async fn records_of(s3: &S3Server, bucket: &str) -> (BTreeMap<String, BTreeSet<String>>, usize) {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut total = 0;
    for key in s3.data_keys(bucket).await {
        let folder = key.split('/').nth(1).unwrap_or_default();
        let kind = folder
            .rsplit_once('_')
            .map_or(folder, |(k, _)| k)
            .to_string();
        let parsed = records::parse(&s3.get(bucket, &key).await).expect("a records object");
        total += parsed.len();
        let set = out.entry(kind).or_default();
        for r in parsed {
            set.insert(serde_json::to_string(&r).expect("json"));
        }
    }
    (out, total)
}

/// Runs every shard of `job`'s plan; returns the plan's shard count.
async fn run_shards(app: &App, job: Job, when: chrono::DateTime<chrono::Utc>) -> usize {
    let plan = app.plan(job);
    for shard in &plan.shards {
        let shard_app = app.shard(job, shard.index).expect("a shard of the plan");
        collect::run(&shard_app, job, when, None)
            .await
            .unwrap_or_else(|e| panic!("shard {}: {e}", shard.index));
    }
    plan.shards.len()
}

#[tokio::test]
async fn every_brands_shard_together_writes_what_one_process_writes_and_a_retried_shard_adds_nothing(
) {
    let fake = fake().await;
    fake.add_synthetic_accounts(60);
    let s3 = S3Server::start();
    s3.create_bucket("single").await;
    s3.create_bucket("sharded").await;
    let mut config = with_capacity(config_for(&fake.url()), 12);
    config.targets = support::synthetic_targets(60);
    let when = at(10, 0, 0);

    // One process, every credential: the usual keys.
    let single = app(with_capacity(config.clone(), 1000), &s3, "single");
    assert!(!single.plan(Job::Brands).is_sharded());
    collect::run(&single, Job::Brands, when, None)
        .await
        .expect("single run");

    let sharded = app(config, &s3, "sharded");
    let plan = sharded.plan(Job::Brands);
    let shards = run_shards(&sharded, Job::Brands, when).await;
    assert_eq!(
        shards, 6,
        "30 accounts per credential in shards of at most 12"
    );
    for s in &plan.shards {
        let lane = s
            .credential
            .expect("a sharded plan keeps credentials apart");
        assert!(s.targets.iter().all(|t| t % 2 == lane), "{s:?}");
        assert!(s.targets.len() <= 12);
    }

    let (want, want_total) = records_of(&s3, "single").await;
    let (got, got_total) = records_of(&s3, "sharded").await;
    assert_eq!(want["brand"].len(), 60);
    assert_eq!(want["media"].len(), want_total - 60);
    assert_eq!(
        got, want,
        "the shards' records, merged, are the single run's"
    );
    assert_eq!(got_total, want_total, "no record in two parts");

    // Part files under the same folders, one per shard and kind, that README's globs read.
    let keys = s3.data_keys("sharded").await;
    assert_eq!(keys.len(), 2 * shards, "{keys:?}");
    for k in &keys {
        assert!(
            (k.starts_with("raw/brand_2023-09-02/brand_2023-09-02_100000.part-")
                || k.starts_with("raw/media_2023-09-02/media_2023-09-02_100000.part-"))
                && k.ends_with(".json"),
            "{k}"
        );
    }
    // Each account was called with its own credential (account i on credential i mod 2).
    for seen in fake.seen() {
        let Some(fields) = seen.query.get("fields") else {
            continue;
        };
        let Some(i) = fields
            .split("synthetic_")
            .nth(1)
            .and_then(|r| r.get(..6))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let token = if i % 2 == 0 { TOKEN } else { SECOND_TOKEN };
        assert_eq!(
            seen.authorization.as_deref(),
            Some(format!("Bearer {token}").as_str()),
            "account {i}"
        );
    }

    // A retry of one shard (Step Functions' Retry, a redelivery) merges into its parts.
    let again = sharded.shard(Job::Brands, 2).expect("shard 2");
    let summary = collect::run(&again, Job::Brands, when, None)
        .await
        .expect("retried shard");
    assert!(!summary.merged_with_earlier.is_empty(), "{summary:?}");
    let (after, after_total) = records_of(&s3, "sharded").await;
    assert_eq!(after, want);
    assert_eq!(after_total, want_total, "the retry added nothing twice");
    assert_eq!(s3.data_keys("sharded").await, keys);
}

#[tokio::test]
async fn every_hashtags_shard_together_writes_what_one_process_writes_within_each_credentials_budget(
) {
    let fake = fake().await;
    let s3 = S3Server::start();
    s3.create_bucket("single").await;
    s3.create_bucket("sharded").await;
    // The shipped 11 hashtags on two credentials: 193 calls/h each for hashtags; one invocation
    // takes 64 calls, so each credential's hashtags are cut into 4 shards.
    let config = with_capacity(config_for(&fake.url()), 64);
    let when = at(10, 5, 0);
    let single = app(with_capacity(config.clone(), 10_000), &s3, "single");
    collect::run(&single, Job::Hashtags, when, None)
        .await
        .expect("single run");

    let sharded = app(config.clone(), &s3, "sharded");
    let plan = sharded.plan(Job::Hashtags);
    assert!(plan.is_sharded());
    for lane in 0..2 {
        let on: Vec<_> = plan
            .shards
            .iter()
            .filter(|s| s.credential == Some(lane))
            .collect();
        assert_eq!(on.len(), 4, "{plan:?}");
        let shares: u64 = on.iter().filter_map(|s| s.hashtag_share).sum();
        assert!(shares <= config.hashtag_calls_per_hour(lane, 2), "{plan:?}");
        assert!(on.iter().all(|s| s.targets.iter().all(|t| t % 2 == lane)));
    }
    let shards = run_shards(&sharded, Job::Hashtags, when).await;

    let (want, want_total) = records_of(&s3, "single").await;
    let (got, got_total) = records_of(&s3, "sharded").await;
    assert!(want_total > 100, "{want_total}");
    assert_eq!(got, want, "the shards' posts, merged, are the single run's");
    assert_eq!(got_total, want_total, "no post in two parts");
    let keys = s3.keys("sharded").await;
    for k in 0..shards {
        assert!(
            keys.iter().any(|key| key
                .starts_with("raw_api/hashtags/2023-09-02/2023-09-02_100500/")
                && key.contains(&format!("/part-{k:04}/"))),
            "shard {k}'s capture in its own folder: {keys:?}"
        );
    }
    // One state, the hashtags', whichever shard polled them.
    assert!(
        keys.contains(&"state/hashtags.json".to_string()),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.starts_with("state/hashtags.part-")));

    // Each shard booked its calls under its own name, on its own credential, within its share.
    let body = s3.get("sharded", "state/hashtags.json").await;
    let state: Value = serde_json::from_slice(&body).expect("state json");
    let ledger = state["ledger"].as_array().cloned().unwrap_or_default();
    for s in &plan.shards {
        let user = if s.credential == Some(0) {
            CALLER_ID
        } else {
            SECOND_ID
        };
        let name = format!("{user}/part-{:04}", s.index);
        let spent: u64 = ledger
            .iter()
            .filter(|e| e["lane"] == name.as_str())
            .map(|e| e["calls"].as_u64().unwrap_or(0))
            .sum();
        assert!(spent > 0, "shard {} booked under {name}: {state}", s.index);
        assert!(
            spent <= s.hashtag_share.unwrap_or(0),
            "shard {}: {spent}",
            s.index
        );
    }

    // Every shard retried at the same time: nothing new, nothing twice.
    run_shards(&sharded, Job::Hashtags, when).await;
    let (after, after_total) = records_of(&s3, "sharded").await;
    assert_eq!(after, want);
    assert_eq!(after_total, want_total, "the retries added nothing twice");
}

#[tokio::test]
async fn the_functions_answer_a_planning_event_then_run_one_shard_and_refuse_an_unknown_one() {
    let fake = fake().await;
    let s3 = S3Server::start();
    s3.create_bucket("lambda-out").await;
    // One call at a time, 5 calls per invocation: the 11 accounts on two credentials are cut
    // into 3 shards (6 accounts: 2 shards of 3; 5 accounts: 1 shard).
    let text = ig_collector::config::EMBEDDED
        .replace("concurrency = 16", "concurrency = 1")
        .replace("call_time_ms = 4000", "call_time_ms = 10000")
        // The plan's arithmetic counts one call per account: the lookback's pages are `history`'s.
        .replace("lookback_days = 7", "lookback_days = 0");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("configure.toml");
    std::fs::write(&path, text).expect("config written");
    let mut env = support::function_env(s3.env("lambda-out"), &fake.url(), Some(&path));
    for (k, v) in env.iter_mut() {
        if k == "IG_USER_ID" {
            *v = format!("{CALLER_ID},{SECOND_ID}");
        }
        if k == "IG_ACCESS_TOKEN" {
            *v = format!("{TOKEN},{SECOND_TOKEN}");
        }
    }
    let time = "2023-09-02T03:00:00Z";
    let api = RuntimeApi::start(vec![
        json!({"time": time, "plan": true}),
        json!({"time": time, "shard": 1}),
        json!({"time": time, "shard": 7}),
        json!({"time": time, "shard": "one"}),
        json!({"time": "2023-09-02T04:00:00Z"}),
    ])
    .await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let outcomes = api.outcomes(5).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 5, "{output}");
    let plan = outcomes[0].result.as_ref().expect("the plan");
    assert_eq!(plan["shards"], json!([0, 1, 2]), "{plan}");
    assert_eq!(plan["time"], time);
    assert_eq!(plan["sharded"], true);

    let shard = outcomes[1].result.as_ref().expect("shard 1 ran");
    assert_eq!(shard["records"]["brand"], 3, "{shard}");
    let written = shard["keys_written"].to_string();
    assert!(
        written.contains("brand_2023-09-02_030000.part-0001.json"),
        "{written}"
    );
    assert_eq!(
        s3.data_keys("lambda-out").await,
        [
            "raw/brand_2023-09-02/brand_2023-09-02_030000.part-0001.json",
            "raw/brand_2023-09-02/brand_2023-09-02_040000.json",
            "raw/media_2023-09-02/media_2023-09-02_030000.part-0001.json",
            "raw/media_2023-09-02/media_2023-09-02_040000.json"
        ]
    );
    for (o, needle) in [(&outcomes[2], "0..3"), (&outcomes[3], "shard index")] {
        let (_, body) = o.result.as_ref().expect_err("refused");
        assert_eq!(body["errorType"], "BadEvent", "{body}");
        let message = body["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle} not in {message}");
    }
    // A plain event still runs everything, and says the plan would have cut it.
    let whole = outcomes[4].result.as_ref().expect("the whole run");
    assert_eq!(whole["records"]["brand"], 11, "{whole}");
    assert!(output.contains("cuts into shards"), "{output}");
    assert!(!output.contains(TOKEN) && !output.contains(SECOND_TOKEN));
}

#[test]
fn check_config_prints_the_plan_and_refuses_more_than_30_hashtags_on_a_credential() {
    let mut text = ig_collector::config::EMBEDDED
        .replace("concurrency = 16", "concurrency = 1")
        .replace("call_time_ms = 4000", "call_time_ms = 10000")
        // The plan's arithmetic counts one call per account: the lookback's pages are `history`'s.
        .replace("lookback_days = 7", "lookback_days = 0");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("configure.toml");
    std::fs::write(&path, &text).expect("written");
    let out = support::succeed(
        support::cli()
            .args(["check-config", "--credentials", "2", "--config"])
            .arg(&path),
    );
    assert!(out.contains("brands plan over 2 credential(s)"), "{out}");
    assert!(out.contains("3 shards"), "{out}");
    assert!(
        out.contains("shard    2: credential 2 of 2, 5 targets"),
        "{out}"
    );

    // 31 hashtags on one credential: refused, whatever the shards.
    for i in 0..20 {
        text.push_str(&format!(
            "\n[[targets]]\nusername = \"extra{i}\"\nuser_id = \"{}\"\nhashtag = \"extra{i}\"\n",
            1000 + i
        ));
    }
    std::fs::write(&path, &text).expect("written");
    let output = support::cli()
        .args(["check-config", "--credentials", "1", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("31 hashtags"), "{err}");
}

/// A post of `hashtag` at `t`.
fn post(id: u64, t: chrono::DateTime<chrono::Utc>) -> Value {
    json!({"id": id.to_string(), "timestamp": t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(), "caption": format!("post {id}"), "media_type": "IMAGE", "like_count": 1, "comments_count": 0})
}

#[tokio::test]
async fn adding_a_credential_reshards_the_hashtags_and_loses_no_post() {
    let fake = fake().await;
    let s3 = S3Server::start();
    s3.create_bucket("reshard").await;
    let config = config_for(&fake.url());
    let base = at(10, 0, 0);
    let old: Vec<Value> = (0..50)
        .map(|i| {
            post(
                18_000_000_000_000_000 + i,
                base - chrono::Duration::minutes(50 - i as i64),
            )
        })
        .collect();
    fake.set_pages("dior", vec![old.clone()]);

    // One credential, one invocation: the hashtag's frontier is in the state.
    let one = App {
        shard: None,
        sink: sink_for(&s3.endpoint, "reshard", &config),
        source: Source::live(&config.graph, vec![credentials(CALLER_ID, TOKEN)]).expect("client"),
        config: config.clone(),
        clock: Default::default(),
    };
    assert!(!one.plan(Job::Hashtags).is_sharded());
    collect::run(&one, Job::Hashtags, base, None)
        .await
        .expect("first run");

    // 120 new posts over three pages, then a second credential: the plan now cuts the hashtags
    // into shards, one of which owns #dior.
    let burst: Vec<Value> = (0..120)
        .rev()
        .map(|i| {
            post(
                18_100_000_000_000_000 + i,
                base + chrono::Duration::seconds(30 + 10 * i as i64),
            )
        })
        .collect();
    let feed: Vec<Value> = burst.iter().chain(old.iter()).cloned().collect();
    fake.set_pages("dior", feed.chunks(50).map(<[Value]>::to_vec).collect());
    let two = app(with_capacity(config, 64), &s3, "reshard");
    assert!(two.plan(Job::Hashtags).is_sharded());
    run_shards(&two, Job::Hashtags, base + chrono::Duration::minutes(30)).await;

    let (written, _) = records_of(&s3, "reshard").await;
    let ids: BTreeSet<String> = written["media_hashtag"]
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).expect("json")["media_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let missing: Vec<String> = burst
        .iter()
        .filter_map(|p| p["id"].as_str())
        .filter(|id| !ids.contains(*id))
        .map(str::to_string)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of 120 new posts not written",
        missing.len()
    );
    // One state for every shard and plan.
    let keys = s3.keys("reshard").await;
    assert!(
        keys.contains(&"state/hashtags.json".to_string()),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("state/hashtags.part-")),
        "{keys:?}"
    );
}
