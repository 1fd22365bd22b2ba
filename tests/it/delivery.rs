//! At-least-once delivery: redelivered, late and overlapping runs, S3 that fails or stalls, and
//! a token rejected part-way. Each test pins one rule of ARCHITECTURE.md's invariants.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ig_collector::collect::{run, run_until, App, Deadlines, Job, RunError};
use ig_collector::config::Config;
use ig_collector::state::State;
use serde_json::{json, Value};

use crate::support::graph::{FakeGraph, Fault, Latency};
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::{sink_for, S3Server};
use crate::support::s3proxy::{Op, S3Fault, S3Proxy};
use crate::support::{self, at, config_for, replay_dir, root, TOKEN};

const BUCKET: &str = "delivery";
const STATE: &str = "state/hashtags.json";
const DIOR: &str = "17841401694708594";

fn post(id: u64, t: DateTime<Utc>) -> Value {
    json!({"id": id.to_string(), "timestamp": t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(), "caption": format!("post {id}"), "media_type": "IMAGE", "like_count": 3, "comments_count": 0})
}

fn posts(first: u64, n: u64, newest: DateTime<Utc>) -> Vec<Value> {
    (0..n)
        .map(|i| post(first + i, newest - chrono::Duration::seconds(i as i64 * 3)))
        .collect()
}

fn app_on(fake: &FakeGraph, endpoint: &str, tweak: impl FnOnce(&mut Config)) -> App {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let sink = sink_for(endpoint, BUCKET, &config);
    support::live_app(config, sink)
}

/// `user_id/media_id` of every record in an object.
async fn ids(s3: &S3Server, key: &str) -> BTreeSet<String> {
    let records: Vec<Value> =
        serde_json::from_slice(&s3.get(BUCKET, key).await).expect("a JSON array");
    records
        .iter()
        .map(|r| format!("{}/{}", r["user_id"], r["media_id"]))
        .collect()
}

async fn state(s3: &S3Server) -> State {
    State::parse(&s3.get(BUCKET, STATE).await)
        .expect("a readable state")
        .0
}

/// The shipped configuration with `edits` applied, as a file.
fn config_file(edits: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let mut text = ig_collector::config::EMBEDDED.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    std::fs::write(file.path(), text).expect("write config");
    file
}

/// One invocation of `binary` given `limit` to run: what it answered, how long after it was
/// handed the event, and everything it printed.
async fn invoke_within(
    binary: &str,
    env: &[(String, String)],
    event: Value,
    limit: Duration,
) -> (Result<Value, (String, Value)>, Duration, String) {
    let api = RuntimeApi::start_with_limit(vec![event], limit).await;
    let f = Function::spawn(binary, &api, env);
    let outcome = api.outcomes(1).await;
    let output = f.stop();
    // The invocation's deadline counts from when the event was handed out, after the cold start.
    let started = api
        .first_next()
        .unwrap_or_else(|| panic!("the function never asked for its event: {output}"));
    assert!(!output.contains(TOKEN));
    let outcome = outcome
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no answer: {output}"));
    (outcome.result, outcome.at.duration_since(started), output)
}

fn hashtag_key(t: DateTime<Utc>) -> String {
    t.format("raw/media_hashtag_%Y-%m-%d/media_hashtag_%Y-%m-%d_%H%M%S.json")
        .to_string()
}

#[tokio::test]
async fn a_redelivered_hashtags_event_keeps_every_post_and_the_first_capture() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let env = support::function_env(s3.env(BUCKET), &fake.url(), None);
    let event = support::read_json(root().join("events/hashtags-scheduled-event.json"));
    let scheduled = DateTime::parse_from_rfc3339(event["time"].as_str().expect("time"))
        .expect("rfc 3339")
        .with_timezone(&Utc);
    let key = hashtag_key(scheduled);
    let capture_state = scheduled
        .format("raw_api/hashtags/%Y-%m-%d/%Y-%m-%d_%H%M%S/state.json.gz")
        .to_string();

    let deliver = || async {
        let api = RuntimeApi::start(vec![event.clone()]).await;
        let f = Function::spawn(env!("CARGO_BIN_EXE_hashtags"), &api, &env);
        let outcome = api.outcomes(1).await;
        let output = f.stop();
        assert!(!output.contains(TOKEN));
        outcome
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no answer: {output}"))
            .result
            .unwrap_or_else(|e| panic!("the delivery failed: {e:?}\n{output}"))
    };

    let first = deliver().await;
    let first_ids = ids(&s3, &key).await;
    assert!(
        first_ids.len() > 100,
        "the fixtures' posts: {}",
        first_ids.len()
    );
    let first_capture = s3.get(BUCKET, &capture_state).await;

    // Before the redelivery one more post appears. The first delivery polled every hashtag at
    // this time, so none is due again: the redelivery makes no Graph call and removes nothing;
    // the next due run writes the new post.
    let mut page = posts(18_900_000_000_000_000, 1, scheduled);
    page.extend(
        support::read_json(replay_dir().join("hashtags/dior.json"))["data"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    fake.set_pages("dior", vec![page]);
    let calls = fake.seen().len();
    let second = deliver().await;
    assert_eq!(
        fake.seen().len(),
        calls,
        "nothing due again at the same time"
    );
    let second_ids = ids(&s3, &key).await;
    assert_eq!(second_ids, first_ids, "the redelivery removed nothing");
    assert_eq!(first["merged_with_earlier"], Value::Null);
    assert_eq!(
        second["merged_with_earlier"].as_array().map(Vec::len),
        Some(1)
    );

    // The first delivery's capture, with the state it started from, is never replaced.
    assert_eq!(s3.get(BUCKET, &capture_state).await, first_capture);
    assert_eq!(
        second["capture_files_kept"].as_u64(),
        Some(1),
        "the redelivery's only capture file, its starting state, was not written over: {second}"
    );
    // The state says which scheduled time it is as of.
    assert_eq!(
        state(&s3).await.as_of.as_deref(),
        Some(
            scheduled
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str()
        )
    );
}

#[tokio::test]
async fn a_late_delivery_of_an_older_time_loses_nothing_and_never_moves_the_state_back() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app_on(&fake, &s3.endpoint, |_| {});
    let (t0, t1) = (at(0, 5, 0), at(0, 10, 0));
    fake.set_pages("dior", vec![posts(18_000_000_000_000_000, 20, t0)]);
    run(&app, Job::Hashtags, t1, None).await.expect("T1");
    let t1_object = s3.get(BUCKET, &hashtag_key(t1)).await;
    let after_t1 = state(&s3).await;

    fake.set_pages(
        "dior",
        vec![[
            posts(18_100_000_000_000_000, 5, t1),
            posts(18_000_000_000_000_000, 20, t0),
        ]
        .concat()],
    );
    let calls = fake.seen().len();
    let late = run(&app, Job::Hashtags, t0, None).await.expect("T0, late");
    assert_eq!(
        fake.seen().len(),
        calls,
        "every hashtag was polled at T1, after T0: none is due for T0"
    );
    assert_eq!(late.state_as_of.as_deref(), Some("2023-09-02T00:10:00Z"));
    assert_eq!(
        s3.get(BUCKET, &hashtag_key(t1)).await,
        t1_object,
        "T1's object is untouched"
    );
    let after = state(&s3).await;
    assert_eq!(after.as_of, after_t1.as_of, "as_of never moves back");
    for (tag, was) in &after_t1.hashtags {
        let now = &after.hashtags[tag];
        assert!(
            was.known.keys().all(|id| now.is_known(id)),
            "#{tag} forgot ids"
        );
        assert!(
            now.watermark >= was.watermark,
            "#{tag} watermark moved back"
        );
    }
    // The posts that appeared meanwhile are written by the next run #dior is due at, once.
    let t2 = at(0, 40, 0);
    let next = run(&app, Job::Hashtags, t2, None).await.expect("T2");
    assert_eq!(next.hashtag_pages["dior"], 1, "{:?}", next.hashtags);
    let t2_ids = ids(&s3, &hashtag_key(t2)).await;
    assert_eq!(
        t2_ids
            .iter()
            .filter(|id| id.starts_with(&format!("\"{DIOR}\"/\"181")))
            .count(),
        5
    );
    assert!(ids(&s3, &hashtag_key(t0))
        .await
        .iter()
        .all(|id| !id.starts_with(&format!("\"{DIOR}\"/\"180"))));
}

#[tokio::test]
async fn overlapping_runs_lose_no_post_and_leave_one_merged_state() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // Slow answers, so both runs read the (missing) state before either writes.
    fake.set_latency(Latency {
        business_discovery: Duration::from_millis(300),
        other: Duration::from_millis(300),
        jitter: 0.2,
    });
    let app = app_on(&fake, &s3.endpoint, |_| {});
    let (t, next) = (at(0, 5, 0), at(0, 10, 0));
    let (a, b, c) = tokio::join!(
        run(&app, Job::Hashtags, t, None),
        run(&app, Job::Hashtags, t, None),
        run(&app, Job::Hashtags, next, None),
    );
    let summaries = [a.expect("a"), b.expect("b"), c.expect("c")];
    let conflicts: u32 = summaries.iter().map(|s| s.write_conflicts).sum();
    assert!(
        conflicts >= 2,
        "the state and the shared object were contended: {conflicts}"
    );
    assert!(
        summaries.iter().any(|s| !s.merged_with_earlier.is_empty()),
        "one of the two runs of {t} merged into the other's object"
    );
    // Every post served is in one of the objects, and in the state.
    let written: BTreeSet<String> = ids(&s3, &hashtag_key(t))
        .await
        .union(&ids(&s3, &hashtag_key(next)).await)
        .cloned()
        .collect();
    let mut served = BTreeSet::new();
    for target in &app.config.targets {
        let page =
            support::read_json(replay_dir().join(format!("hashtags/{}.json", target.hashtag)));
        for p in page["data"].as_array().cloned().unwrap_or_default() {
            served.insert(format!("\"{}\"/{}", target.user_id, p["id"]));
        }
    }
    assert!(
        written.is_superset(&served),
        "lost: {:?}",
        served.difference(&written).collect::<Vec<_>>()
    );
    let state = state(&s3).await;
    assert_eq!(state.as_of.as_deref(), Some("2023-09-02T00:10:00Z"));
    for id in &written {
        let media = id.rsplit('/').next().unwrap_or_default().trim_matches('"');
        assert!(
            state.hashtags.values().any(|h| h.is_known(media)),
            "{media} written but not in the state"
        );
    }
    assert_eq!(state.hashtags.len(), 11);
}

#[tokio::test]
async fn a_state_read_that_fails_or_stalls_fails_the_run_before_any_graph_call() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let proxy = S3Proxy::start(&s3.endpoint).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app_on(&fake, &proxy.endpoint, |c| {
        // Long enough for the SDK to retry a 500 three times, short enough for a stall.
        c.sink.operation_timeout = Duration::from_secs(6);
    });
    run(&app, Job::Hashtags, at(0, 5, 0), None)
        .await
        .expect("a first run writes a state");
    let kept = s3.get(BUCKET, STATE).await;
    let objects = s3.keys(BUCKET).await.len();
    let calls = fake.seen().len();

    for (fault, needle) in [
        (S3Fault::Status(403, "AccessDenied"), "AccessDenied"),
        (S3Fault::Status(500, "InternalError"), "InternalError"),
        (S3Fault::Stall, "timed out"),
    ] {
        proxy.clear();
        proxy.fault(Op::Get, STATE, fault.clone(), usize::MAX);
        let started = Instant::now();
        let err = run(&app, Job::Hashtags, at(0, 10, 0), None)
            .await
            .expect_err("the run must fail");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{fault:?}: bounded"
        );
        assert!(
            matches!(err, RunError::StateUnreadable(..)),
            "{fault:?}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("could not read s3://delivery/state/hashtags.json")
                && message.contains(needle),
            "{message}"
        );
        assert_eq!(fake.seen().len(), calls, "{fault:?}: no Graph call");
    }
    assert_eq!(
        s3.get(BUCKET, STATE).await,
        kept,
        "the state is not replaced"
    );
    assert_eq!(s3.keys(BUCKET).await.len(), objects, "nothing written");
}

#[tokio::test]
async fn a_stalled_write_ends_the_invocation_before_its_deadline_with_a_clear_error() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let proxy = S3Proxy::start(&s3.endpoint).await;
    proxy.fault(Op::Put, "raw/brand_", S3Fault::Stall, usize::MAX);
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // A config whose S3 timeout is longer than the invocation: the deadline must bound it.
    let config = config_file(&[
        ("deadline_margin_secs = 8", "deadline_margin_secs = 2"),
        (
            "operation_timeout_secs = 10",
            "operation_timeout_secs = 120",
        ),
    ]);
    let env = support::function_env(proxy.env(BUCKET), &fake.url(), Some(config.path()));
    let limit = Duration::from_secs(8);
    let event = json!({"time": "2023-09-02T05:00:00Z"});
    let (result, took, output) =
        invoke_within(env!("CARGO_BIN_EXE_brands"), &env, event, limit).await;
    assert!(took < limit, "answered after {took:?}");
    let (_, body) = result.expect_err("the write failed");
    assert_eq!(body["errorType"], "WriteFailed", "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "could not write s3://delivery/raw/brand_2023-09-02/brand_2023-09-02_050000.json"
        ) && message.contains("time ran out"),
        "{message}"
    );
    assert!(
        output.contains("run finished"),
        "the summary is logged: {output}"
    );
    assert!(!output.contains(TOKEN));
}

#[tokio::test(flavor = "current_thread")]
async fn a_token_rejected_part_way_writes_what_was_collected_then_fails() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.fault("prada", [Fault::expired_token()]);
    // One call at a time: the five accounts before prada are collected, the rest are stopped.
    let app = app_on(&fake, &s3.endpoint, |c| c.graph.concurrency = 1);
    let err = run(&app, Job::Brands, at(5, 0, 0), None)
        .await
        .expect_err("the token was rejected");
    assert!(matches!(err, RunError::TokenRejected(..)), "{err}");
    assert_eq!(err.summary().keys_written.len(), 2);
    let brands: Vec<Value> = serde_json::from_slice(
        &s3.get(BUCKET, "raw/brand_2023-09-02/brand_2023-09-02_050000.json")
            .await,
    )
    .expect("array");
    let names: Vec<&str> = brands
        .iter()
        .filter_map(|b| b["user_name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["hermes", "chanelofficial", "dior", "louisvuitton", "gucci"]
    );
}

#[tokio::test]
async fn a_hostile_state_steers_no_request_and_a_future_post_does_not_stop_paging() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app_on(&fake, &s3.endpoint, |_| {});
    let hostile =
        json!({"version": 1, "hashtags": {"dior": {"hashtag_id": "../../x?y=", "known": {}}}});
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(STATE)
        .body(hostile.to_string().into_bytes().into())
        .send()
        .await
        .expect("put");

    // First run: the newest post claims to be from tomorrow.
    let t = at(0, 5, 0);
    let mut first = posts(18_000_000_000_000_000, 10, t);
    first.push(post(18_000_000_000_000_999, t + chrono::Duration::days(1)));
    fake.set_pages("dior", vec![first]);
    let summary = run(&app, Job::Hashtags, t, None).await.expect("first");
    assert!(
        fake.seen()
            .iter()
            .all(|s| !s.path.contains("..") && !s.path.contains("x?y")),
        "the id from the state was not used in a URL"
    );
    assert!(summary
        .state
        .as_deref()
        .is_some_and(|n| n.contains("hashtag_id is not numeric")));
    assert_eq!(
        summary.resolved_hashtag_ids.get("dior").map(String::len),
        Some(fake.hashtag_id("dior").len())
    );

    // The next run #dior is due at: 100 new posts over two pages are all written, the future
    // post no watermark.
    let next = at(0, 35, 0);
    let fresh = posts(18_100_000_000_000_000, 100, next);
    fake.set_pages("dior", vec![fresh[..50].to_vec(), fresh[50..].to_vec()]);
    let summary = run(&app, Job::Hashtags, next, None).await.expect("second");
    assert_eq!(summary.hashtag_pages["dior"], 2);
    let written = ids(&s3, &hashtag_key(next)).await;
    assert_eq!(
        written
            .iter()
            .filter(|id| id.starts_with(&format!("\"{DIOR}\"")))
            .count(),
        100
    );
}

#[tokio::test]
async fn deadlines_bound_the_writes_of_a_library_run() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let proxy = S3Proxy::start(&s3.endpoint).await;
    proxy.fault(Op::Put, "raw/media_hashtag_", S3Fault::Stall, usize::MAX);
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app_on(&fake, &proxy.endpoint, |c| {
        c.sink.operation_timeout = Duration::from_secs(120);
    });
    let started = Instant::now();
    let deadlines = Deadlines {
        calls: Some(started + Duration::from_secs(5)),
        writes: Some(started + Duration::from_secs(6)),
    };
    let err = run_until(&app, Job::Hashtags, at(0, 5, 0), deadlines)
        .await
        .expect_err("the stalled write fails the run");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(&err, RunError::Write(e, _) if e.timed_out),
        "{err}"
    );
    // The state was not advanced past posts that were not written: it holds only what the run
    // booked before its calls, its reservation and where tracking began, no poll.
    let state: serde_json::Value =
        serde_json::from_slice(&s3.get(BUCKET, STATE).await).expect("the booked state");
    let tags = state["hashtags"].as_object().cloned().unwrap_or_default();
    assert!(
        tags.values().all(|t| t.get("polled_at").is_none()
            && t["complete_to"] == "2023-09-02T00:05:00+0000"),
        "{state}"
    );
    let ledger = state["ledger"].as_array().cloned().unwrap_or_default();
    assert!(
        !ledger.is_empty() && ledger.iter().all(|e| e["reserved"] == true),
        "{state}"
    );
}

#[tokio::test]
async fn the_lambda_stops_calling_at_its_margin_and_still_answers_with_a_summary() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.fault("*", (0..40).map(|_| Fault::Hang(Duration::from_secs(30))));
    let config = config_file(&[("deadline_margin_secs = 8", "deadline_margin_secs = 6")]);
    let env = support::function_env(s3.env(BUCKET), &fake.url(), Some(config.path()));
    // 10 s to run, 6 s of margin: calls stop about 4 s in.
    let event = json!({"time": "2023-09-02T05:00:00Z"});
    let (result, took, output) = invoke_within(
        env!("CARGO_BIN_EXE_brands"),
        &env,
        event,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        took < Duration::from_secs(7),
        "answered {took:?} after the start: the margin was not kept"
    );
    let (_, body) = result.expect_err("nothing was collected");
    assert_eq!(body["errorType"], "AllTargetsFailed", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("all 11 targets failed") && m.contains("timed out")),
        "{body}"
    );
    assert!(output.contains("run finished"), "{output}");
}

/// A redelivery whose answer lacks a field (a default after validation) keeps the value the
/// first delivery wrote; a field with a real new value is refreshed.
#[tokio::test(flavor = "current_thread")]
async fn a_redelivery_whose_answer_lacks_a_field_keeps_the_value_written_before() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let app = app_on(&fake, &s3.endpoint, |_| {});
    let t = at(5, 0, 0);
    run(&app, Job::Brands, t, None)
        .await
        .expect("first delivery");
    let media_key = "raw/media_2023-09-02/media_2023-09-02_050000.json";
    let brand_key = "raw/brand_2023-09-02/brand_2023-09-02_050000.json";
    let read = |bytes: Vec<u8>| -> Vec<Value> { serde_json::from_slice(&bytes).expect("array") };
    let first_media = read(s3.get(BUCKET, media_key).await);
    let first_brands = read(s3.get(BUCKET, brand_key).await);

    let mut dior = support::read_json(replay_dir().join("brands/dior.json"));
    let bd = &mut dior["business_discovery"];
    let bd_map = bd.as_object_mut().expect("object");
    bd_map.remove("followers_count");
    let post = &mut bd["media"]["data"][0];
    let post_id = post["id"].as_str().expect("id").to_string();
    let post_map = post.as_object_mut().expect("object");
    post_map.remove("caption");
    post_map.remove("like_count");
    post_map.insert("timestamp".into(), json!("not a time"));
    let comments = post_map["comments_count"].as_u64().expect("count") + 1;
    post_map.insert("comments_count".into(), json!(comments));
    fake.set_brand("dior", dior);
    let again = run(&app, Job::Brands, t, None).await.expect("redelivery");
    assert!(again.defaulted_total >= 4, "{:?}", again.defaulted);

    let media = read(s3.get(BUCKET, media_key).await);
    assert_eq!(media.len(), first_media.len());
    let find = |list: &[Value], id: &str| {
        list.iter()
            .find(|m| m["user_id"] == DIOR && m["media_id"] == id)
            .cloned()
            .expect("the post is written")
    };
    let before = find(&first_media, &post_id);
    let after = find(&media, &post_id);
    for kept in ["caption", "like_count", "timestamp"] {
        assert_eq!(after[kept], before[kept], "{kept}");
        assert_ne!(after[kept], json!(""), "{kept}");
    }
    assert_eq!(
        after["comments_count"],
        json!(comments),
        "a real value is fresher"
    );
    let brand = |list: &[Value]| {
        list.iter()
            .find(|b| b["user_id"] == DIOR)
            .cloned()
            .expect("dior")
    };
    let followers = brand(&read(s3.get(BUCKET, brand_key).await))["followers_count"].clone();
    assert_eq!(followers, brand(&first_brands)["followers_count"]);
    assert_ne!(followers, json!(0));
}
