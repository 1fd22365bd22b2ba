//! API drift: Meta removes fields between Graph API versions, and a request naming one is refused
//! whole (code 100, "nonexisting field"). The fake Graph API removes fields per endpoint and
//! answers as Meta does; these tests pin what the collector does then: the field is left out and
//! the call made again (booked like any other), its records take the field's default counted as
//! `removed_by_api`, the run succeeds and names it (summary, metric), the removed fields are
//! remembered per API version, endpoint and field so that later runs make no refused call, and
//! `check-api` lists what a version does not answer.

use std::time::Duration;

use ig_collector::collect::{run, App, Job, RunError};
use ig_collector::config::Config;
use ig_collector::drift::RemovedFields;
use ig_collector::graph::{ErrorKind, Source};
use serde_json::{json, Value};

use crate::faults::{run_as, walk};
use crate::support::graph::{nonexisting_field_body, FakeGraph, Fault, Latency};
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::{sink_for, S3Server};
use crate::support::{self, at, cli, config_for, read_json, replay_dir, root, CALLER_ID, TOKEN};

const BUCKET: &str = "drift";
/// Where the removed fields are kept (`graph.removed_fields_key`, shipped default).
const REMOVED: &str = "state/removed_fields.json";
const SECS20: Duration = Duration::from_secs(20);

async fn fake() -> FakeGraph {
    FakeGraph::start(TOKEN, &replay_dir()).await
}

/// The CLI as the test credential against the fake Graph API.
fn live_cli(fake: &FakeGraph) -> std::process::Command {
    let mut cmd = cli();
    cmd.env("IG_USER_ID", CALLER_ID)
        .env("IG_ACCESS_TOKEN", TOKEN)
        .env("GRAPH_API_URL", fake.url())
        .env_remove("GRAPH_API_VERSION")
        .env_remove("IG_TOKEN_SECRET_ARN")
        .env_remove("IG_APP_SECRET");
    cmd
}

/// Runs a CLI command from a multi-threaded test (the fake keeps answering meanwhile).
fn output(cmd: &mut std::process::Command) -> std::process::Output {
    tokio::task::block_in_place(|| cmd.output().expect("runs"))
}

/// The JSON documents a command printed one after another (one summary per job).
fn documents(stdout: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("JSON documents")
}

/// The count a summary's `defaulted` rows give (kind, field, reason), 0 when there is no row.
fn defaulted(summary: &Value, kind: &str, field: &str, reason: &str) -> u64 {
    summary["defaulted"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == kind && r["field"] == field && r["reason"] == reason)
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0)
}

/// Every record written under `dir` whose path names `kind` (`media_2023`, …).
fn records(dir: &std::path::Path, kind: &str) -> Vec<Value> {
    walk(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&format!("/{kind}_2023")))
        .flat_map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            v.as_array().cloned().unwrap_or_default()
        })
        .collect()
}

/// The removed fields stored in a folder sink.
fn stored(dir: &std::path::Path) -> RemovedFields {
    let bytes = std::fs::read(dir.join(REMOVED)).expect("the removed fields are written");
    RemovedFields::parse(&bytes).expect("readable").0
}

/// The qualified fields an object's requests named, per request seen from index `from` on,
/// for requests whose path contains `path`.
fn fields_asked(fake: &FakeGraph, from: usize, path: &str) -> Vec<String> {
    fake.seen()[from..]
        .iter()
        .filter(|s| s.path.contains(path))
        .map(|s| s.query.get("fields").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_field_is_written_as_its_default_the_run_succeeds_naming_it_and_the_next_run_is_not_refused(
) {
    let fake = fake().await;
    fake.remove_field("business_discovery", "media.media_product_type");
    fake.remove_field("recent_media", "like_count");
    let out = tempfile::tempdir().expect("tempdir");
    let all = |at: &str| {
        output(
            live_cli(&fake)
                .args(["all", "--at", at, "--out"])
                .arg(out.path()),
        )
    };

    let first = all("2023-09-02T01:00:15Z");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let summaries = documents(&first.stdout);
    let [brands, hashtags] = summaries.as_slice() else {
        panic!("two summaries: {summaries:?}");
    };
    assert_eq!(
        brands["fields_removed"],
        json!([{"api_version": "v24.0", "endpoint": "business_discovery", "field": "media.media_product_type", "since": "2023-09-02T01:00:15Z", "found_this_run": true}])
    );
    assert_eq!(
        hashtags["fields_removed"],
        json!([{"api_version": "v24.0", "endpoint": "recent_media", "field": "like_count", "since": "2023-09-02T01:00:15Z", "found_this_run": true}])
    );
    // Every account and every post is written, the removed field as its default, counted apart.
    assert_eq!(brands["records"], json!({"brand": 11, "media": 275}));
    assert_eq!(brands["failed_targets"], json!([]));
    assert_eq!(hashtags["records"], json!({"media_hashtag": 275}));
    assert_eq!(hashtags["failed_targets"], json!([]));
    let media = records(out.path(), "media");
    assert_eq!(media.len(), 275);
    assert!(media.iter().all(|m| m["media_product_type"] == ""));
    assert!(
        media.iter().any(|m| m["like_count"] != 0),
        "other fields kept"
    );
    let posts = records(out.path(), "media_hashtag");
    assert_eq!(posts.len(), 275);
    assert!(posts.iter().all(|m| m["like_count"] == 0));
    assert!(
        posts.iter().any(|m| m["caption"] != ""),
        "other fields kept"
    );
    assert_eq!(
        defaulted(brands, "media", "media_product_type", "removed_by_api"),
        275
    );
    assert_eq!(
        defaulted(brands, "media", "media_product_type", "missing"),
        0
    );
    assert_eq!(
        defaulted(hashtags, "media_hashtag", "like_count", "removed_by_api"),
        275
    );
    assert_eq!(
        defaulted(hashtags, "media_hashtag", "like_count", "missing"),
        0
    );
    assert!(
        stderr.contains("media.media_product_type") && stderr.contains("check-api"),
        "the log names the field and what to do: {stderr}"
    );
    // At most one refused call per target in flight; each made again without the field.
    let refused = fake.refused_for_removed_fields();
    assert!((2..=22).contains(&refused), "{refused}");
    let removed = stored(out.path());
    assert_eq!(removed.len(), 2);
    assert_eq!(removed.omitted("v24.0").len(), 2);

    // The next run leaves both out of its first calls: nothing is refused.
    let seen = fake.seen().len();
    let second = all("2023-09-02T02:00:15Z");
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        fake.refused_for_removed_fields(),
        refused,
        "no refused call"
    );
    let asked = fields_asked(&fake, seen, "/17841400000000000");
    assert_eq!(asked.len(), 11, "one call per account");
    assert!(asked.iter().all(|f| !f.contains("media_product_type")));
    let asked = fields_asked(&fake, seen, "/recent_media");
    assert!(!asked.is_empty(), "the hashtags are due again");
    assert!(asked.iter().all(|f| !f.contains("like_count")));
    let summaries = documents(&second.stdout);
    for (summary, field) in summaries
        .iter()
        .zip(["media.media_product_type", "like_count"])
    {
        assert_eq!(summary["fields_removed"][0]["field"], field, "{summary}");
        assert_eq!(summary["fields_removed"][0]["found_this_run"], false);
        assert_eq!(
            summary["fields_removed"][0]["since"],
            "2023-09-02T01:00:15Z"
        );
    }
    assert_eq!(
        defaulted(
            &summaries[0],
            "media",
            "media_product_type",
            "removed_by_api"
        ),
        275
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_made_again_without_a_removed_field_is_booked_like_any_other() {
    let fake = fake().await;
    fake.remove_field("business_discovery", "media.media_product_type");
    let config = config_for(&fake.url());
    let source =
        Source::live(&config.graph, vec![support::credentials(CALLER_ID, TOKEN)]).expect("client");

    // One call booked: the refused one. The call without the field is not sent.
    let session = source.session(&config.retry, &config.graph, None);
    session.limit_calls(0, 1);
    let e = session
        .business_discovery(0, "dior")
        .await
        .expect_err("the second call was not booked");
    assert_eq!(e.kind, ErrorKind::BudgetSpent, "{e}");
    assert_eq!(fake.seen().len(), 1);
    assert_eq!(session.calls_on(0), 1);

    // Two booked: both sent, both counted.
    let session = source.session(&config.retry, &config.graph, None);
    session.limit_calls(0, 2);
    let body = session
        .business_discovery(0, "dior")
        .await
        .expect("answered without the field");
    assert_eq!(fake.seen().len(), 3);
    assert_eq!(session.calls_on(0), 2);
    assert_eq!(session.stats().calls, 2);
    let media = body["business_discovery"]["media"]["data"]
        .as_array()
        .expect("media");
    assert_eq!(media.len(), 25);
    assert!(media.iter().all(|m| m.get("media_product_type").is_none()));
}

#[tokio::test(flavor = "current_thread")]
async fn every_field_but_the_id_removed_costs_one_call_per_field_and_every_post_is_still_written() {
    let fake = fake().await;
    let droppable = [
        "timestamp",
        "caption",
        "media_type",
        "like_count",
        "comments_count",
    ];
    for f in droppable {
        fake.remove_field("recent_media", f);
    }
    // One call at a time: the first hashtag finds every removed field, the others leave them out.
    let o = run_as(
        &fake,
        vec![support::credentials(CALLER_ID, TOKEN)],
        Job::Hashtags,
        SECS20,
        |c| c.graph.concurrency = 1,
    )
    .await;
    assert!(o.result.is_ok(), "{:?}", o.result.as_ref().err());
    assert_eq!(o.written("media_hashtag").len(), 275);
    assert!(o.written("media_hashtag").iter().all(|p| p["caption"] == ""
        && p["media_type"] == ""
        && p["comments_count"] == 0
        && p["timestamp"] == "1970-01-01T00:00:00+0000"));
    // One refused call per field, then one answered; never more.
    let calls: Vec<usize> = o
        .summary()
        .hashtags
        .keys()
        .map(|tag| fake.calls_for(&format!("{}/recent_media", fake.hashtag_id(tag))))
        .collect();
    assert_eq!(calls.len(), 11);
    assert_eq!(
        calls.iter().sum::<usize>(),
        11 + droppable.len(),
        "{calls:?}"
    );
    assert_eq!(calls.iter().max(), Some(&6), "{calls:?}");
    assert_eq!(fake.refused_for_removed_fields(), droppable.len());
    assert_eq!(o.summary().fields_removed.len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_removed_id_fails_its_targets_clearly_and_is_never_left_out() {
    let fake = fake().await;
    fake.remove_field("business_discovery", "id");
    let o = run_as(
        &fake,
        vec![support::credentials(CALLER_ID, TOKEN)],
        Job::Brands,
        SECS20,
        |_| {},
    )
    .await;
    let Err(RunError::AllTargetsFailed(summary)) = &o.result else {
        panic!(
            "every account fails: {:?}",
            o.result.as_ref().map(|s| s.records.clone())
        );
    };
    assert_eq!(summary.failed_targets.len(), 11);
    for f in &summary.failed_targets {
        assert_eq!(f.error_kind, ErrorKind::IdRemoved, "{f:?}");
        assert!(
            f.message
                .contains("Graph API v24.0 no longer has `id` on business_discovery")
                && f.message.contains("nothing can be written")
                && f.message.contains("check-api"),
            "{}",
            f.message
        );
    }
    assert_eq!(fake.seen().len(), 11, "not called again");
    assert!(summary.fields_removed.is_empty());
    assert!(
        !o.out.path().join(REMOVED).exists(),
        "an id is never stored as left out"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_code_100_about_a_field_not_asked_for_fails_its_target_as_before() {
    let fake = fake().await;
    let body = nonexisting_field_body("biography", "IGUser").to_string();
    fake.fault("dior", [Fault::Raw { status: 400, body }]);
    let o = run_as(
        &fake,
        vec![support::credentials(CALLER_ID, TOKEN)],
        Job::Brands,
        SECS20,
        |_| {},
    )
    .await;
    assert!(o.result.is_ok(), "{:?}", o.result.as_ref().err());
    assert_eq!(
        o.failed(),
        [("dior".to_string(), ErrorKind::InvalidParameter)]
    );
    assert_eq!(fake.calls_for("username(dior)"), 1, "not called again");
    assert!(o.summary().fields_removed.is_empty());
    assert_eq!(o.written("media").len(), 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_api_lists_the_fields_a_version_does_not_answer_and_tries_another_version() {
    let fake = fake().await;
    fake.remove_field_in("v24.0", "business_discovery", "media.media_product_type");
    fake.remove_field_in("v24.0", "recent_media", "like_count");

    let refused = output(live_cli(&fake).arg("check-api"));
    assert_eq!(refused.status.code(), Some(1));
    let report = &documents(&refused.stdout)[0];
    assert_eq!(report["api_version"], "v24.0");
    let endpoints = report["endpoints"].as_array().expect("endpoints");
    let names: Vec<&Value> = endpoints.iter().map(|e| &e["endpoint"]).collect();
    assert_eq!(
        names,
        [
            &json!("business_discovery"),
            &json!("ig_hashtag_search"),
            &json!("recent_media")
        ]
    );
    for (e, field, answered) in [
        (&endpoints[0], "media.media_product_type", 14),
        (&endpoints[2], "like_count", 5),
    ] {
        assert_eq!(e["not_answered"].as_array().map(Vec::len), Some(1), "{e}");
        assert_eq!(e["not_answered"][0]["field"], field);
        assert!(
            e["not_answered"][0]["why"]
                .as_str()
                .is_some_and(|w| w.contains("code 100")),
            "{e}"
        );
        assert_eq!(
            e["answered"].as_array().map(Vec::len),
            Some(answered),
            "{e}"
        );
    }
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Graph API v24.0 does not answer")
            && stderr.contains("business_discovery media.media_product_type")
            && stderr.contains("recent_media like_count")
            && stderr.contains("--api-version"),
        "{stderr}"
    );

    // The next version has them: the operator can switch.
    let seen = fake.seen().len();
    let next = output(live_cli(&fake).args(["check-api", "--api-version", "v25.0"]));
    assert_eq!(
        next.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let report = &documents(&next.stdout)[0];
    assert_eq!(report["api_version"], "v25.0");
    assert!(report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .all(|e| e.get("not_answered").is_none() && e.get("error").is_none()));
    let paths: Vec<String> = fake.seen()[seen..].iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths.len(), 3, "one call per endpoint: {paths:?}");
    assert!(paths.iter().all(|p| p.starts_with("/v25.0/")), "{paths:?}");
}

#[test]
fn check_api_over_recorded_responses_lists_a_field_no_object_holds() {
    // The recorded responses as shipped answer every field.
    let clean = cli()
        .args(["check-api", "--replay"])
        .arg(replay_dir())
        .output()
        .expect("runs");
    assert_eq!(clean.status.code(), Some(0));

    // A copy whose first hashtag's page lacks `like_count` everywhere.
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["brands", "hashtag_search", "hashtags"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("dir");
        for entry in std::fs::read_dir(replay_dir().join(sub)).expect("fixtures") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name");
            std::fs::copy(&path, dir.path().join(sub).join(name)).expect("copy");
        }
    }
    let page = dir.path().join("hashtags/hermes.json");
    let mut body = read_json(&page);
    for post in body["data"].as_array_mut().expect("posts") {
        post.as_object_mut().expect("a post").remove("like_count");
    }
    std::fs::write(&page, body.to_string()).expect("write");
    let stripped = cli()
        .args(["check-api", "--replay"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(stripped.status.code(), Some(1));
    let report = &documents(&stripped.stdout)[0];
    let recent = &report["endpoints"][2];
    assert_eq!(recent["not_answered"][0]["field"], "like_count", "{recent}");
    assert!(
        recent["not_answered"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("in none of the 25 objects")),
        "{recent}"
    );
}

fn app_on(fake: &FakeGraph, s3: &S3Server, tweak: impl FnOnce(&mut Config)) -> App {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let sink = sink_for(&s3.endpoint, BUCKET, &config);
    support::live_app(config, sink)
}

async fn put(s3: &S3Server, key: &str, body: Vec<u8>) {
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("put");
}

async fn stored_in(s3: &S3Server) -> RemovedFields {
    RemovedFields::parse(&s3.get(BUCKET, REMOVED).await)
        .expect("readable")
        .0
}

#[tokio::test]
async fn a_new_api_version_starts_afresh_and_no_entry_of_another_version_or_program_is_lost() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    // What another program wrote: an entry this one does not know, for an older version.
    let theirs = json!({"version": 1, "removed": [{"api_version": "v23.0", "endpoint": "recent_media", "field": "owner", "since": "2023-08-01T00:00:00Z"}]});
    put(&s3, REMOVED, theirs.to_string().into_bytes()).await;
    let fake = fake().await;
    fake.remove_field("recent_media", "like_count");

    let v24 = app_on(&fake, &s3, |_| {});
    let first = run(&v24, Job::Hashtags, at(1, 0, 15), None)
        .await
        .expect("succeeds");
    assert!(first.fields_removed[0].found_this_run);
    let refused = fake.refused_for_removed_fields();
    assert!(refused > 0);

    // Another version is asked for every field again, and finds the removal for itself.
    let v25 = app_on(&fake, &s3, |c| c.graph.api_version = "v25.0".into());
    let second = run(&v25, Job::Hashtags, at(2, 0, 15), None)
        .await
        .expect("succeeds");
    assert!(fake.refused_for_removed_fields() > refused, "asked again");
    assert_eq!(second.fields_removed.len(), 1);
    assert_eq!(second.fields_removed[0].api_version, "v25.0");
    assert!(second.fields_removed[0].found_this_run);

    // Back on v24.0: its entry still applies.
    let refused = fake.refused_for_removed_fields();
    let third = run(&v24, Job::Hashtags, at(3, 0, 15), None)
        .await
        .expect("succeeds");
    assert_eq!(fake.refused_for_removed_fields(), refused);
    assert!(!third.fields_removed[0].found_this_run);

    let removed = stored_in(&s3).await;
    assert_eq!(removed.len(), 3, "v23.0's, v24.0's and v25.0's");
    let text = String::from_utf8_lossy(&s3.get(BUCKET, REMOVED).await).to_string();
    assert!(
        text.contains("\"owner\"") && text.contains("2023-08-01T00:00:00Z"),
        "{text}"
    );
    assert_eq!(
        removed.since(
            "v24.0",
            removed.omitted("v24.0").iter().next().expect("like_count")
        ),
        Some("2023-09-02T01:00:15Z")
    );
}

#[tokio::test]
async fn an_unreadable_removed_fields_object_is_taken_as_empty_said_and_kept_aside() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    put(&s3, REMOVED, b"{\"version\": 1, \"removed\": [".to_vec()).await;
    let fake = fake().await;
    fake.remove_field("recent_media", "like_count");
    let app = app_on(&fake, &s3, |_| {});
    let summary = run(&app, Job::Hashtags, at(1, 0, 15), None)
        .await
        .expect("succeeds");
    let note = summary.fields_removed_note.clone().unwrap_or_default();
    assert!(
        note.contains("unreadable") && note.contains("treated as empty"),
        "{note}"
    );
    assert_eq!(summary.records.values().sum::<usize>(), 275);
    let kept: Vec<String> = s3
        .keys(BUCKET)
        .await
        .into_iter()
        .filter(|k| k.starts_with("state/removed_fields.json.unreadable-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        s3.get(BUCKET, &kept[0]).await,
        b"{\"version\": 1, \"removed\": [".to_vec()
    );
    assert_eq!(stored_in(&s3).await.omitted("v24.0").len(), 1);
    // Readable again: the next run says nothing of it.
    let next = run(&app, Job::Hashtags, at(2, 0, 15), None)
        .await
        .expect("succeeds");
    assert_eq!(next.fields_removed_note, None);
    assert_eq!(next.fields_removed[0].since, "2023-09-02T01:00:15Z");
}

#[tokio::test]
async fn two_runs_that_find_different_fields_at_once_both_keep_theirs() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = fake().await;
    // Both runs read the (absent) object before either writes it.
    fake.set_latency(Latency {
        business_discovery: Duration::from_millis(300),
        other: Duration::from_millis(300),
        jitter: 0.0,
    });
    fake.remove_field("business_discovery", "media_count");
    fake.remove_field("recent_media", "caption");
    let brands = app_on(&fake, &s3, |_| {});
    let hashtags = app_on(&fake, &s3, |_| {});
    let (a, b) = tokio::join!(
        run(&brands, Job::Brands, at(1, 0, 15), None),
        run(&hashtags, Job::Hashtags, at(1, 0, 15), None)
    );
    assert!(a.is_ok() && b.is_ok(), "{:?} {:?}", a.err(), b.err());
    let removed = stored_in(&s3).await;
    let names: Vec<String> = removed
        .omitted("v24.0")
        .iter()
        .map(|f| f.qualified())
        .collect();
    assert_eq!(names, ["media_count", "caption"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_of_such_a_run_reprocesses_with_the_field_counted_as_removed() {
    let fake = fake().await;
    fake.remove_field("business_discovery", "media.media_product_type");
    let o = run_as(
        &fake,
        vec![support::credentials(CALLER_ID, TOKEN)],
        Job::Brands,
        SECS20,
        |_| {},
    )
    .await;
    assert!(o.result.is_ok(), "{:?}", o.result.as_ref().err());
    let capture = o
        .out
        .path()
        .join("raw_api/brands/2023-09-02/2023-09-02_010015");
    assert!(capture.join("removed_fields.json.gz").exists());
    let to = tempfile::tempdir().expect("tempdir");
    let done = output(
        cli()
            .args(["reprocess", "--from"])
            .arg(&capture)
            .arg("--to")
            .arg(to.path()),
    );
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let summary = &documents(&done.stdout)[0];
    assert_eq!(
        defaulted(summary, "media", "media_product_type", "removed_by_api"),
        275,
        "{summary}"
    );
    assert_eq!(summary["fields_removed"][0]["found_this_run"], false);
}

#[tokio::test]
async fn the_functions_report_the_fields_removed_as_a_metric() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = fake().await;
    fake.remove_field("business_discovery", "media.media_product_type");
    let events = ["brands-scheduled-event.json", "brands-scheduler.json"]
        .map(|name| read_json(root().join("events").join(name)));
    let api = RuntimeApi::start(events.to_vec()).await;
    let env = support::function_env(s3.env(BUCKET), &fake.url(), None);
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 2, "{output}");
    for (o, found) in outcomes.iter().zip([true, false]) {
        let summary = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?}\n{output}"));
        assert_eq!(summary["records"]["media"], 275);
        assert_eq!(
            summary["fields_removed"][0]["field"],
            "media.media_product_type"
        );
        assert_eq!(summary["fields_removed"][0]["found_this_run"], found);
    }
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{output}");
    for m in &emf {
        assert_eq!(m["FieldsRemoved"], json!(1.0), "{m}");
        assert!(
            m["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .to_string()
                .contains("\"FieldsRemoved\""),
            "{m}"
        );
    }
    assert!(!output.contains(TOKEN));
}
