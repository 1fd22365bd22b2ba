//! A hostile or broken Graph API: answers that are too large, redirect elsewhere, hold
//! undecodable characters, or echo the caller's secrets back in every encoding; and the token
//! check going through the same retrying call path as every other call. Each test fails if the
//! defence it names is removed.

use std::time::Duration;

use chrono::Utc;
use ig_collector::collect::Job;
use ig_collector::config::Config;
use ig_collector::graph::{AccessToken, AppSecret, Credentials, ErrorKind, Need, Source};
use ig_collector::health;
use serde_json::{json, Value};

use crate::faults::{run_as, walk};
use crate::support::graph::{secret_forms, EchoPlace, FakeGraph, Fault, Recorder};
use crate::support::{self, config_for, read_json, replay_dir, CALLER_ID, TOKEN};

async fn fake() -> FakeGraph {
    FakeGraph::start(TOKEN, &replay_dir()).await
}

/// The config and a live source over `credentials`, for calls made through a session directly.
fn live(
    fake: &FakeGraph,
    credentials: Vec<Credentials>,
    tweak: impl FnOnce(&mut Config),
) -> (Config, Source) {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let source = Source::live(&config.graph, credentials).expect("client");
    (config, source)
}

fn one_lane() -> Vec<Credentials> {
    vec![support::credentials(CALLER_ID, TOKEN)]
}

const SECS20: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "current_thread")]
async fn a_lone_surrogate_in_one_caption_costs_only_that_caption() {
    let fake = fake().await;
    let mut dior = read_json(replay_dir().join("brands/dior.json"));
    let first = &mut dior["business_discovery"]["media"]["data"][0];
    let media_id = first["id"].as_str().expect("id").to_string();
    first["caption"] = json!("@@LONE@@");
    // Python's json writes half an emoji like this; serde_json refuses it.
    let body = dior.to_string().replace("@@LONE@@", r"Before \ud83d after");
    fake.fault("dior", [Fault::Raw { status: 200, body }]);
    let o = run_as(&fake, one_lane(), Job::Brands, SECS20, |_| {}).await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    assert_eq!(o.written("brand").len(), 11);
    assert_eq!(o.written("media").len(), 275);
    let media = o.written("media");
    let caption = media
        .iter()
        .find(|m| m["media_id"] == media_id.as_str())
        .map(|m| m["caption"].clone())
        .expect("the media is written");
    assert_eq!(caption, "Before \u{FFFD} after");
    let defaulted = serde_json::to_value(&o.summary().defaulted).expect("json");
    assert!(
        defaulted
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["kind"] == "media"
                && r["field"] == "caption"
                && r["reason"] == "invalid_unicode"
                && r["count"] == 1),
        "{defaulted}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_over_the_cap_fails_its_call_without_a_retry_and_one_at_the_cap_is_read() {
    let fake = fake().await;
    let (config, source) = live(&fake, one_lane(), |c| c.graph.max_body_bytes = 4096);
    let session = source.session(&config.retry, &config.graph, None);
    let padded = |len: usize| format!("{{\"pad\": \"{}\"}}", "x".repeat(len - 11));
    assert_eq!(padded(4097).len(), 4097);

    // With Content-Length: refused before reading.
    fake.fault(
        "dior",
        [Fault::Raw {
            status: 200,
            body: padded(4097),
        }],
    );
    let e = session
        .business_discovery(0, "dior")
        .await
        .expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    assert!(
        e.message.contains("announces 4097 bytes")
            && e.message.contains("4096")
            && e.message.contains("graph.max_body_bytes"),
        "{e}"
    );
    assert_eq!(fake.calls_for("username(dior)"), 1, "not retried");

    // Chunked, no length announced: stopped once past the cap.
    fake.fault(
        "hermes",
        [Fault::Chunked {
            status: 200,
            chunks: vec!["x".repeat(1000); 5],
        }],
    );
    let e = session
        .business_discovery(0, "hermes")
        .await
        .expect_err("too large");
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    assert!(e.message.contains("passed 5000 bytes"), "{e}");
    assert_eq!(fake.calls_for("username(hermes)"), 1, "not retried");

    fake.fault(
        "ysl",
        [Fault::Raw {
            status: 200,
            body: padded(4096),
        }],
    );
    let v = session
        .business_discovery(0, "ysl")
        .await
        .expect("at the cap");
    assert_eq!(v["pad"].as_str().map(str::len), Some(4085));
}

#[tokio::test(flavor = "current_thread")]
async fn a_redirect_is_never_followed_and_the_token_form_goes_nowhere_else() {
    let fake = fake().await;
    let elsewhere = Recorder::start().await;
    let credentials = with_app_secret();
    let (config, source) = live(&fake, credentials, |_| {});
    let session = source.session(&config.retry, &config.graph, None);
    fake.fault(
        "dior",
        [Fault::Redirect {
            status: 307,
            location: format!("{}/v23.0/steal", elsewhere.url()),
        }],
    );
    let e = session
        .business_discovery(0, "dior")
        .await
        .expect_err("redirected");
    assert_eq!(
        (e.kind, e.status),
        (ErrorKind::Redirected, Some(307)),
        "{e}"
    );
    assert!(e.to_string().contains("HTTP 307"), "{e}");
    assert_eq!(fake.calls_for("username(dior)"), 1, "not retried");

    fake.fault(
        "debug_token",
        [Fault::Redirect {
            status: 308,
            location: format!("{}/debug_token", elsewhere.url()),
        }],
    );
    let e = session.debug_token(0).await.expect_err("redirected");
    assert_eq!(
        (e.kind, e.status),
        (ErrorKind::Redirected, Some(308)),
        "{e}"
    );
    assert!(
        elsewhere.hits().is_empty(),
        "a redirect was followed: {:?}",
        elsewhere.hits()
    );
}

const TOKEN_A: &str = "EAAG/leak+A=canary0123456789";
const TOKEN_B: &str = "EAAG/leak+B=canary9876543210";
const APP_SECRET: &str = "app/secret+value=42&x";

fn hostile_credentials(fake: &FakeGraph) -> Vec<Credentials> {
    fake.allow_token(TOKEN_A);
    fake.allow_token(TOKEN_B);
    [(CALLER_ID, TOKEN_A), ("17841400000000001", TOKEN_B)]
        .into_iter()
        .map(|(id, token)| Credentials {
            ig_user_id: id.into(),
            token: AccessToken::new(token),
            app_secret: Some(AppSecret::new(APP_SECRET)),
            app_id: None,
        })
        .collect()
}

/// Every form of every secret, as bytes to look for.
fn leak_forms() -> Vec<String> {
    let mut forms: Vec<String> = [TOKEN_A, TOKEN_B, APP_SECRET]
        .iter()
        .flat_map(|s| {
            let mut f = secret_forms(s);
            f.push(s.to_string());
            f
        })
        .collect();
    forms.sort();
    forms.dedup();
    forms
}

fn assert_no_secret(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for form in leak_forms() {
        assert!(
            !text.contains(&form),
            "a secret ({form}) leaked into {what}: {text}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_echoed_back_in_any_encoding_leak_nowhere() {
    let fake = fake().await;
    let credentials = hostile_credentials(&fake);
    let all: Vec<String> = [TOKEN_A, TOKEN_B, APP_SECRET].map(String::from).to_vec();
    // hermes and dior go to the first credential, chanelofficial to the second; each echo also
    // carries the other credential's token and the app secret.
    fake.fault(
        "hermes",
        [Fault::Echo {
            place: EchoPlace::Field,
            also: all.clone(),
        }],
    );
    fake.fault(
        "chanelofficial",
        [Fault::Echo {
            place: EchoPlace::ErrorBody,
            also: all.clone(),
        }],
    );
    fake.fault(
        "dior",
        [Fault::Echo {
            place: EchoPlace::Html,
            also: all.clone(),
        }],
    );
    let o = run_as(&fake, credentials, Job::Brands, SECS20, |_| {}).await;
    let failed = &o.summary().failed_targets;
    assert_eq!(
        o.failed(),
        vec![
            ("chanelofficial".to_string(), ErrorKind::InvalidParameter),
            ("dior".to_string(), ErrorKind::BadResponse)
        ]
    );
    // The echoes arrived, and were replaced.
    assert!(
        failed.iter().all(|f| f.message.contains("[redacted]")),
        "{failed:?}"
    );
    let hermes = o
        .written("brand")
        .into_iter()
        .find(|b| b["user_name"] == "hermes")
        .expect("hermes is written");
    assert!(
        hermes["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("[redacted] | [redacted]")),
        "{hermes}"
    );

    let summary = serde_json::to_string(o.summary()).expect("json");
    assert_no_secret("the summary", summary.as_bytes());
    if let Err(e) = &o.result {
        assert_no_secret("the run error", format!("{e} {e:?}").as_bytes());
    }
    assert_no_secret("the logs", o.logs.as_bytes());
    let mut captured_hermes = false;
    for path in walk(o.out.path()) {
        let bytes = std::fs::read(&path).expect("read");
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            ig_collector::graph::gunzip(&bytes).expect("gzip")
        } else {
            bytes
        };
        if path.ends_with("brands/hermes.json.gz") {
            captured_hermes = String::from_utf8_lossy(&bytes).contains("[redacted]");
        }
        assert_no_secret(&path.display().to_string(), &bytes);
    }
    assert!(
        captured_hermes,
        "the echoing body is in the raw capture, scrubbed"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_echoing_another_credentials_secrets_is_scrubbed() {
    let fake = fake().await;
    let (config, source) = live(&fake, hostile_credentials(&fake), |_| {});
    let session = source.session(&config.retry, &config.graph, None);
    // Called as the first credential; the API answers with the second's token and the secret.
    fake.fault(
        "dior",
        [Fault::Echo {
            place: EchoPlace::ErrorBody,
            also: vec![TOKEN_B.into(), APP_SECRET.into()],
        }],
    );
    let e = session
        .business_discovery(0, "dior")
        .await
        .expect_err("an error");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert_no_secret("the error", shown.as_bytes());
    for captured in session.take_captured() {
        assert_no_secret(&captured.path, &captured.body);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_check_is_retried_and_carries_appsecret_proof() {
    let fake = fake().await;
    let credentials = with_app_secret();
    let (config, source) = live(&fake, credentials, |_| {});
    let session = source.session(&config.retry, &config.graph, None);
    fake.fault(
        "debug_token",
        [Fault::Error {
            status: 500,
            code: 1,
            subcode: None,
            transient: None,
        }],
    );
    let checked = health::check(&session, 1).await;
    let health = checked[0].as_ref().expect("healthy after a retry");
    assert!(health.valid);
    assert_eq!(session.stats().retries, 1);
    let expected = AccessToken::new(TOKEN).appsecret_proof("app-secret-value");
    let calls: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/debug_token"))
        .collect();
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert_eq!(
            call.form.get("appsecret_proof"),
            Some(&expected),
            "{call:?}"
        );
        assert_eq!(
            call.form.get("input_token").map(String::as_str),
            Some(TOKEN)
        );
        assert!(call.query.values().all(|v| !v.contains(TOKEN)), "{call:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_status_fails_on_an_expiry_it_cannot_read() {
    let fake = fake().await;
    fake.set_token_expiry_value(json!(Utc::now().timestamp().to_string()));
    let output =
        tokio::task::block_in_place(|| support::token_status(&fake.url()).output().expect("runs"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        report[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreadable expiry")),
        "{report}"
    );
    assert!(report[0].get("never_expires").is_none(), "{report}");
    assert!(!format!("{stdout}{stderr}").contains(TOKEN));
}

#[tokio::test(flavor = "current_thread")]
async fn optional_calls_stop_once_a_response_reports_usage_at_the_threshold() {
    let fake = fake().await;
    let (config, source) = live(&fake, one_lane(), |_| {});
    let threshold = config.retry.usage_threshold_percent;
    let id = fake.hashtag_id("dior");
    let recent_media_calls = || fake.calls_for("/recent_media");
    for (usage, made) in [(threshold - 1, true), (threshold, false)] {
        let session = source.session(&config.retry, &config.graph, None);
        fake.fault("dior", [Fault::Usage(usage)]);
        session
            .recent_media(0, "dior", &id, None, 1, Need::Required)
            .await
            .expect("first page");
        let before = recent_media_calls();
        let second = session
            .recent_media(0, "dior", &id, Some("page1"), 2, Need::Optional)
            .await;
        assert_eq!(
            recent_media_calls() - before,
            usize::from(made),
            "usage {usage}"
        );
        if made {
            assert!(second.is_ok(), "usage {usage}: {second:?}");
            assert_eq!(session.stats().optional_calls_skipped, 0);
        } else {
            assert_eq!(second.expect_err("skipped").kind, ErrorKind::UsageHigh);
            assert_eq!(session.stats().optional_calls_skipped, 1);
            // A required call is still made.
            session
                .recent_media(0, "dior", &id, Some("page1"), 2, Need::Required)
                .await
                .expect("required");
        }
    }
}

/// The test credential with an app secret, so every call carries `appsecret_proof`.
fn with_app_secret() -> Vec<Credentials> {
    vec![Credentials {
        app_secret: Some(AppSecret::new("app-secret-value")),
        ..support::credentials(CALLER_ID, TOKEN)
    }]
}

#[tokio::test(flavor = "current_thread")]
async fn a_fractional_usage_figure_over_the_threshold_stops_optional_calls() {
    let fake = fake().await;
    let (config, source) = live(&fake, one_lane(), |_| {});
    let threshold = config.retry.usage_threshold_percent;
    let id = fake.hashtag_id("dior");
    let recent_media_calls = || fake.calls_for("/recent_media");
    for (header, made) in [
        // Rounded up: just below the threshold stays below it.
        (format!(r#"{{"call_count": {}.9}}"#, threshold - 2), true),
        (format!(r#"{{"call_count": {}.5}}"#, threshold - 1), false),
        // A figure in a string counts; garbage beside it hides nothing.
        (
            format!(r#"{{"call_count": "NaN", "total_time": "{threshold}"}}"#),
            false,
        ),
        (
            r#"{"call_count": 1e30, "total_time": -5}"#.to_string(),
            false,
        ),
        (
            r#"{"call_count": "inf", "total_time": -5}"#.to_string(),
            true,
        ),
    ] {
        let session = source.session(&config.retry, &config.graph, None);
        fake.fault("dior", [Fault::AppUsage(header.clone())]);
        session
            .recent_media(0, "dior", &id, None, 1, Need::Required)
            .await
            .expect("first page");
        let before = recent_media_calls();
        let second = session
            .recent_media(0, "dior", &id, Some("page1"), 2, Need::Optional)
            .await;
        assert_eq!(recent_media_calls() - before, usize::from(made), "{header}");
        if made {
            assert!(second.is_ok(), "{header}: {second:?}");
        } else {
            assert_eq!(second.expect_err("skipped").kind, ErrorKind::UsageHigh);
            assert_eq!(session.stats().optional_calls_skipped, 1, "{header}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_answer_for_another_account_fails_its_target_and_writes_nothing_of_it() {
    let fake = fake().await;
    let gucci = read_json(replay_dir().join("brands/gucci.json"));
    let dior = read_json(replay_dir().join("brands/dior.json"));
    let dior_id = dior["business_discovery"]["id"].clone();
    let gucci_id = gucci["business_discovery"]["id"].clone();
    let gucci_media = gucci["business_discovery"]["media"]["data"]
        .as_array()
        .expect("media")
        .len();
    fake.fault(
        "dior",
        [Fault::Raw {
            status: 200,
            body: gucci.to_string(),
        }],
    );
    let o = run_as(&fake, one_lane(), Job::Brands, SECS20, |_| {}).await;
    assert_eq!(o.failed(), [("dior".to_string(), ErrorKind::WrongAccount)]);
    let failure = &o.summary().failed_targets[0];
    assert!(
        failure.message.contains("`gucci`") && failure.message.contains("`dior`"),
        "{failure:?}"
    );
    let brands = o.written("brand");
    assert_eq!(brands.len(), 10, "the other accounts go on");
    assert!(brands.iter().all(|b| b["user_id"] != dior_id));
    assert_eq!(
        brands.iter().filter(|b| b["user_id"] == gucci_id).count(),
        1,
        "gucci's answer is not written twice"
    );
    let media = o.written("media");
    assert!(media.iter().all(|m| m["user_id"] != dior_id));
    assert_eq!(
        media.iter().filter(|m| m["user_id"] == gucci_id).count(),
        gucci_media
    );
}

#[tokio::test(flavor = "current_thread")]
async fn counts_past_a_signed_64_bit_integer_and_repeated_media_are_not_written() {
    let fake = fake().await;
    let mut dior = read_json(replay_dir().join("brands/dior.json"));
    let data = dior["business_discovery"]["media"]["data"]
        .as_array_mut()
        .expect("media");
    let listed = data.len();
    let repeated = data[0].clone();
    let first_id = repeated["id"].as_str().expect("id").to_string();
    let second_id = data[1]["id"].as_str().expect("id").to_string();
    data[0]["like_count"] = json!("@@HUGE@@");
    data[1]["like_count"] = json!("@@UMAX@@");
    data.push(repeated);
    dior["business_discovery"]["followers_count"] = json!("@@NEGATIVE@@");
    // Number literals serde_json would not produce from a Value: sent as text.
    let body = dior
        .to_string()
        .replace(r#""@@HUGE@@""#, "1e30")
        .replace(r#""@@UMAX@@""#, "18446744073709551615")
        .replace(r#""@@NEGATIVE@@""#, "-44959894");
    fake.fault("dior", [Fault::Raw { status: 200, body }]);
    let o = run_as(&fake, one_lane(), Job::Brands, SECS20, |_| {}).await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    let dior_id = dior["business_discovery"]["id"].clone();
    let media: Vec<Value> = o
        .written("media")
        .into_iter()
        .filter(|m| m["user_id"] == dior_id)
        .collect();
    assert_eq!(media.len(), listed, "the repeated media is written once");
    let like_count = |id: &str| {
        let found: Vec<_> = media.iter().filter(|m| m["media_id"] == id).collect();
        assert_eq!(found.len(), 1, "{id}");
        found[0]["like_count"].clone()
    };
    assert_eq!(like_count(&first_id), json!(0));
    assert_eq!(like_count(&second_id), json!(0));
    for m in o.written("media").iter().chain(&o.written("brand")) {
        for count in [
            "like_count",
            "comments_count",
            "followers_count",
            "media_count",
        ] {
            if let Some(v) = m.get(count) {
                assert!(v.as_i64().is_some_and(|n| n >= 0), "{count}: {m}");
            }
        }
    }
    let brand = o
        .written("brand")
        .into_iter()
        .find(|b| b["user_id"] == dior_id)
        .expect("dior");
    assert_eq!(brand["followers_count"], json!(0));
    let rows = |rows: Value| rows.as_array().cloned().unwrap_or_default();
    let summary = o.summary();
    let defaulted = rows(serde_json::to_value(&summary.defaulted).expect("json"));
    let dropped = rows(serde_json::to_value(&summary.dropped).expect("json"));
    for (list, kind, field, reason) in [
        (&defaulted, "media", "like_count", "count_too_large"),
        (&defaulted, "brand", "followers_count", "negative_count"),
        (&dropped, "media", "media_id", "duplicate"),
    ] {
        let count: u64 = list
            .iter()
            .filter(|r| r["kind"] == kind && r["field"] == field && r["reason"] == reason)
            .filter_map(|r| r["count"].as_u64())
            .sum();
        let want = if reason == "count_too_large" { 2 } else { 1 };
        assert_eq!(count, want, "{kind}.{field} {reason}: {list:?}");
    }
}
