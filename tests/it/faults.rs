//! The fault matrix: each way Meta's API fails, against the fake Graph API over HTTP, with the
//! outcome asserted. Backoff runs on millisecond settings. Every row also checks that the token
//! appears nowhere in what the run produced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, App, Job, RunError, RunSummary};
use ig_collector::config::Config;
use ig_collector::graph::{AccessToken, AppSecret, Credentials, ErrorKind, Source};
use ig_collector::sink::Sink;
use serde_json::Value;

use crate::support::graph::{FakeGraph, Fault, Latency};
use crate::support::{self, config_for, replay_dir, CALLER_ID, TOKEN};

/// Captures the run's logs (the test runs on one thread, so a thread-local subscriber sees all).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) struct Outcome {
    pub result: Result<RunSummary, RunError>,
    pub out: tempfile::TempDir,
    pub logs: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn summary(&self) -> &RunSummary {
        match &self.result {
            Ok(s) => s,
            Err(e) => e.summary(),
        }
    }

    /// Records written for a kind, read back from the output folder.
    pub fn written(&self, dir: &str) -> Vec<Value> {
        let mut all = Vec::new();
        for entry in walk(self.out.path()) {
            if entry.to_string_lossy().contains(&format!("/{dir}_2023")) {
                let v: Value =
                    serde_json::from_slice(&std::fs::read(&entry).expect("read")).expect("json");
                all.extend(v.as_array().cloned().unwrap_or_default());
            }
        }
        all
    }

    pub fn failed(&self) -> Vec<(String, ErrorKind)> {
        self.summary()
            .failed_targets
            .iter()
            .map(|f| (f.target.clone(), f.error_kind))
            .collect()
    }

    /// The token must be in none of: logs, summary, error message, error debug.
    fn assert_no_token(&self) {
        let summary = serde_json::to_string(self.summary()).expect("json");
        let error = match &self.result {
            Ok(_) => String::new(),
            Err(e) => format!("{e} {e:?}"),
        };
        for (what, text) in [
            ("logs", &self.logs),
            ("summary", &summary),
            ("error", &error),
        ] {
            assert!(
                !text.contains(TOKEN),
                "the token leaked into the {what}: {text}"
            );
        }
    }
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn run_with(
    fake: &FakeGraph,
    job: Job,
    deadline: Duration,
    tweak: impl FnOnce(&mut Config),
) -> Outcome {
    run_as(
        fake,
        vec![support::credentials(CALLER_ID, TOKEN)],
        job,
        deadline,
        tweak,
    )
    .await
}

/// Runs `job` against the fake with these credentials (lanes), capturing the logs.
pub(crate) async fn run_as(
    fake: &FakeGraph,
    credentials: Vec<Credentials>,
    job: Job,
    deadline: Duration,
    tweak: impl FnOnce(&mut Config),
) -> Outcome {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let out = tempfile::tempdir().expect("tempdir");
    let source = Source::live(&config.graph, credentials).expect("client");
    let app = App {
        shard: None,
        config,
        source,
        sink: Sink::Dir(out.path().to_path_buf()),
        clock: Default::default(),
    };
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Not the 00:xx run: the daily token check has its own test (capture.rs).
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 1, 0, 15)
        .single()
        .expect("time");
    let started = Instant::now();
    let result = run(&app, job, at, Some(Instant::now() + deadline)).await;
    let elapsed = started.elapsed();
    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).to_string();
    Outcome {
        result,
        out,
        logs,
        elapsed,
    }
}

const SECS20: Duration = Duration::from_secs(20);

async fn fake() -> FakeGraph {
    FakeGraph::start(TOKEN, &replay_dir()).await
}

fn error(status: u16, code: i64, subcode: Option<i64>) -> Fault {
    Fault::Error {
        status,
        code,
        subcode,
        transient: None,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_5xx_twice_then_success_is_recovered_and_nothing_is_lost() {
    let fake = fake().await;
    fake.fault(
        "hermes",
        [
            error(500, 1, None),
            Fault::Raw {
                status: 502,
                body: "<html>Bad Gateway</html>".into(),
            },
        ],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert!(
        o.result.is_ok(),
        "{:?}",
        o.result.as_ref().err().map(|e| e.to_string())
    );
    assert_eq!(o.written("brand").len(), 11);
    assert_eq!(o.written("media").len(), 275);
    assert_eq!(o.summary().graph.retries, 2);
    assert_eq!(fake.calls_for("username(hermes)"), 3);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn code_2_then_success_is_recovered() {
    let fake = fake().await;
    fake.fault("dior", [error(400, 2, None)]);
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    assert_eq!(o.written("brand").len(), 11);
    assert_eq!(o.summary().graph.retries, 1);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn code_4_without_a_regain_time_stops_all_calls_without_a_retry() {
    let fake = fake().await;
    fake.fault(
        "hermes",
        [Fault::Throttle {
            code: 4,
            regain_minutes: 0,
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |c| c.graph.concurrency = 1).await;
    // The app is throttled as a whole: no other account is called, every target is reported.
    assert_eq!(fake.seen().len(), 1);
    assert!(matches!(o.result, Err(RunError::AllTargetsFailed(_))));
    assert_eq!(o.failed().len(), 11);
    assert!(
        o.failed().iter().all(|(_, k)| *k == ErrorKind::Throttled),
        "{:?}",
        o.failed()
    );
    assert_eq!(o.summary().graph.throttled, 1);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn code_4_with_a_regain_time_longer_than_the_time_left_is_not_waited_for() {
    let fake = fake().await;
    fake.fault(
        "hermes",
        [Fault::Throttle {
            code: 4,
            regain_minutes: 5,
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |c| c.graph.concurrency = 1).await;
    assert!(
        o.elapsed < Duration::from_secs(10),
        "waited {:?}",
        o.elapsed
    );
    assert_eq!(fake.calls_for("username(hermes)"), 1);
    assert_eq!(o.failed()[0], ("hermes".to_string(), ErrorKind::Throttled));
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn code_80002_on_one_account_fails_only_that_account() {
    let fake = fake().await;
    fake.fault(
        "gucci",
        [Fault::Throttle {
            code: 80002,
            regain_minutes: 0,
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert!(o.result.is_ok());
    assert_eq!(
        o.failed(),
        vec![("gucci".to_string(), ErrorKind::Throttled)]
    );
    assert_eq!(fake.calls_for("username(gucci)"), 1);
    let brands = o.written("brand");
    assert_eq!(brands.len(), 10);
    assert!(brands.iter().all(|b| b["user_name"] != "gucci"));
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn an_expired_token_aborts_the_run_and_writes_nothing() {
    let fake = fake().await;
    fake.fault("*", [error(400, 190, Some(463))]);
    let o = run_with(&fake, Job::Brands, SECS20, |c| c.graph.concurrency = 1).await;
    let Err(e) = &o.result else {
        panic!("the run must fail")
    };
    assert!(matches!(e, RunError::TokenRejected(..)), "{e}");
    assert!(e.to_string().contains("expired (subcode 463)"), "{e}");
    assert_eq!(
        fake.seen().len(),
        1,
        "no call after the token was rejected: {:?}",
        fake.seen()
    );
    // No object may claim success; the one call made stays booked in the credential's ledger.
    let state = o.out.path().join("state/hashtags.json");
    assert_eq!(walk(o.out.path()), vec![state.clone()]);
    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    let booked: Vec<_> = ledger["ledger"]
        .as_array()
        .expect("a ledger")
        .iter()
        .map(|e| (e["calls"].as_u64(), e["reserved"].as_bool()))
        .collect();
    assert_eq!(booked, [(Some(1), None)], "{ledger}");
    assert!(o.logs.contains("CRITICAL"), "{}", o.logs);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn an_unknown_username_fails_only_that_brand() {
    let fake = fake().await;
    fake.fault(
        "prada",
        [Fault::Error {
            status: 400,
            code: 110,
            subcode: Some(2207013),
            transient: Some(false),
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert!(o.result.is_ok());
    assert_eq!(
        o.failed(),
        vec![("prada".to_string(), ErrorKind::UnknownAccount)]
    );
    let message = &o.summary().failed_targets[0].message;
    assert!(message.contains("code 110, subcode 2207013"), "{message}");
    assert_eq!(o.written("brand").len(), 10);
    assert_eq!(o.written("media").len(), 250);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn a_response_that_hangs_past_the_timeout_is_retried() {
    let fake = fake().await;
    fake.fault("celine", [Fault::Hang(Duration::from_secs(3))]);
    let o = run_with(&fake, Job::Brands, SECS20, |c| {
        c.graph.request_timeout = Duration::from_millis(400)
    })
    .await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    assert_eq!(fake.calls_for("username(celine)"), 2);
    assert_eq!(o.written("brand").len(), 11);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn a_200_cut_off_mid_json_is_retried_like_a_dropped_connection() {
    let fake = fake().await;
    fake.fault(
        "ysl",
        [Fault::Raw {
            status: 200,
            body: r#"{"business_discovery": {"username": "ysl", "name": "Saint Lau"#.into(),
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    assert_eq!(
        fake.calls_for("username(ysl)"),
        2,
        "the cut-off body is retried"
    );
    assert_eq!(o.summary().graph.retries, 1);
    assert_eq!(o.written("brand").len(), 11);
    assert!(o.logs.contains("cut-off JSON"), "{}", o.logs);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_that_is_not_json_fails_that_target_with_a_short_excerpt() {
    let fake = fake().await;
    fake.fault(
        "ysl",
        [Fault::Raw {
            status: 404,
            body: format!("<html>Saint Lau{}</html>", "x".repeat(10_000)),
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert_eq!(
        o.failed(),
        vec![("ysl".to_string(), ErrorKind::BadResponse)]
    );
    let message = &o.summary().failed_targets[0].message;
    assert!(
        message.contains("not JSON") && message.contains("Saint Lau"),
        "{message}"
    );
    assert!(
        message.chars().count() < 300,
        "{} chars: {message}",
        message.chars().count()
    );
    assert_eq!(
        fake.calls_for("username(ysl)"),
        1,
        "a bad body is not retried"
    );
    assert_eq!(o.written("brand").len(), 10);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_inside_a_200_is_decided_by_its_code() {
    let fake = fake().await;
    let body = r#"{"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100, "fbtrace_id": "A1"}}"#;
    fake.fault(
        "fendi",
        [Fault::Raw {
            status: 200,
            body: body.into(),
        }],
    );
    fake.fault(
        "miumiu",
        [Fault::Raw {
            status: 200,
            body: r#"{"error": {"message": "Service temporarily unavailable", "code": 2}}"#.into(),
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert_eq!(
        o.failed(),
        vec![("fendi".to_string(), ErrorKind::InvalidParameter)]
    );
    assert_eq!(
        fake.calls_for("username(miumiu)"),
        2,
        "code 2 in a 200 is retried"
    );
    assert_eq!(o.written("brand").len(), 10);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_travels_in_a_header_never_in_a_url() {
    let fake = fake().await;
    let o = run_with(&fake, Job::Hashtags, SECS20, |_| {}).await;
    assert!(o.result.is_ok());
    let seen = fake.seen();
    assert_eq!(seen.len(), 22, "a search and a page per hashtag");
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(
            !s.path.contains(TOKEN) && !s.query.values().any(|v| v.contains(TOKEN)),
            "{s:?}"
        );
    }
    assert_eq!(o.summary().graph.max_usage_percent, 12);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn high_usage_is_reported_in_the_summary_and_logged() {
    let fake = fake().await;
    fake.fault("hermes", [Fault::Usage(93)]);
    let o = run_with(&fake, Job::Brands, SECS20, |c| c.graph.concurrency = 1).await;
    assert_eq!(o.summary().graph.max_usage_percent, 93);
    assert!(o.logs.contains("usage is high"), "{}", o.logs);
}

#[test]
fn appsecret_proof_is_the_hex_hmac_sha256_of_the_token() {
    // Reference value: python3 -c "import hmac,hashlib;print(hmac.new(b'appsecret', b'token', hashlib.sha256).hexdigest())"
    assert_eq!(
        AccessToken::new("token").appsecret_proof("appsecret"),
        "3beefbd785800f442c4b86c52b7711fb28156279a8e8db5e4f34436a3207fd19"
    );
    assert_eq!(
        format!("{:?} {}", AccessToken::new(TOKEN), AccessToken::new(TOKEN)),
        "AccessToken([redacted]) [redacted]"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_api_meets_the_run_deadline_and_what_was_collected_is_written() {
    let fake = fake().await;
    fake.set_latency(Latency {
        business_discovery: Duration::from_secs(2),
        other: Duration::from_secs(2),
        jitter: 0.0,
    });
    // Four at a time, 2 s each, 3 s to go: the first four arrive, the next four time out at the
    // deadline, the last three are never sent.
    let o = run_with(&fake, Job::Brands, Duration::from_secs(3), |c| {
        c.graph.concurrency = 4
    })
    .await;
    assert!(o.elapsed < Duration::from_millis(3800), "{:?}", o.elapsed);
    assert!(o.result.is_ok());
    assert_eq!(o.written("brand").len(), 4);
    assert_eq!(o.written("media").len(), 100);
    let kinds: Vec<ErrorKind> = o.failed().into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds.len(), 7);
    assert_eq!(
        kinds.iter().filter(|k| **k == ErrorKind::Timeout).count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == ErrorKind::Deadline).count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        fake.seen().len(),
        8,
        "no call is started after the deadline"
    );
}

#[tokio::test]
async fn with_an_app_secret_every_call_carries_appsecret_proof() {
    let fake = fake().await;
    let config = config_for(&fake.url());
    let source = Source::live(
        &config.graph,
        vec![Credentials {
            ig_user_id: CALLER_ID.into(),
            token: AccessToken::new(TOKEN),
            app_secret: Some(AppSecret::new("app-secret-value")),
            app_id: None,
        }],
    )
    .expect("client");
    let session = source.session(&config.retry, &config.graph, None);
    session
        .business_discovery(0, "dior")
        .await
        .expect("answered");
    session.hashtag_search(0, "dior").await.expect("answered");
    let expected = AccessToken::new(TOKEN).appsecret_proof("app-secret-value");
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert_eq!(s.query.get("appsecret_proof"), Some(&expected), "{s:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_bare_429_with_retry_after_is_waited_for_then_collected() {
    let fake = fake().await;
    fake.fault(
        "dior",
        [Fault::TooManyRequests {
            retry_after: Some("1".into()),
        }],
    );
    let o = run_with(&fake, Job::Brands, SECS20, |c| c.graph.concurrency = 1).await;
    assert!(o.failed().is_empty(), "{:?}", o.failed());
    assert_eq!(o.written("brand").len(), 11);
    assert_eq!(fake.calls_for("username(dior)"), 2);
    assert_eq!(o.summary().graph.throttled, 1);
    assert_eq!(o.summary().graph.retries, 1);
    // The wait is the announced second, not the millisecond backoff of a transient error.
    assert!(o.elapsed >= Duration::from_secs(1), "{:?}", o.elapsed);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn a_bare_429_without_retry_after_is_throttling_and_not_retried() {
    let fake = fake().await;
    fake.fault("dior", [Fault::TooManyRequests { retry_after: None }]);
    let o = run_with(&fake, Job::Brands, SECS20, |_| {}).await;
    assert_eq!(o.failed(), vec![("dior".to_string(), ErrorKind::Throttled)]);
    assert_eq!(fake.calls_for("username(dior)"), 1);
    assert_eq!(o.summary().graph.throttled, 1);
    assert_eq!(o.summary().graph.retries, 0);
    assert_eq!(o.written("brand").len(), 10);
}

const OTHER_TOKEN: &str = "EAAGsecondTOKEN9876543210othercanary";
const OTHER_ID: &str = "17841400000000001";

/// Two credentials: targets alternate, hermes on the first, chanelofficial on the second…
fn two_lanes(fake: &FakeGraph) -> Vec<Credentials> {
    fake.allow_token(OTHER_TOKEN);
    vec![
        support::credentials(CALLER_ID, TOKEN),
        support::credentials(OTHER_ID, OTHER_TOKEN),
    ]
}

fn calls_with(fake: &FakeGraph, token: &str) -> usize {
    fake.seen()
        .iter()
        .filter(|s| s.authorization.as_deref() == Some(&format!("Bearer {token}")))
        .count()
}

#[tokio::test(flavor = "current_thread")]
async fn code_17_stops_only_the_throttled_credentials_later_calls() {
    let fake = fake().await;
    let credentials = two_lanes(&fake);
    fake.fault(
        "chanelofficial",
        [Fault::Throttle {
            code: 17,
            regain_minutes: 0,
        }],
    );
    let o = run_as(&fake, credentials, Job::Brands, SECS20, |c| {
        c.graph.concurrency = 1
    })
    .await;
    assert!(o.result.is_ok());
    let second_lane = [
        "chanelofficial",
        "louisvuitton",
        "prada",
        "celine",
        "miumiu",
    ];
    assert_eq!(
        o.failed(),
        second_lane
            .iter()
            .map(|t| (t.to_string(), ErrorKind::Throttled))
            .collect::<Vec<_>>()
    );
    assert_eq!(calls_with(&fake, OTHER_TOKEN), 1, "no call after code 17");
    assert_eq!(
        calls_with(&fake, TOKEN),
        6,
        "the other credential carries on"
    );
    assert_eq!(o.written("brand").len(), 6);
    o.assert_no_token();
}

#[tokio::test(flavor = "current_thread")]
async fn code_4_on_one_credential_stops_every_credentials_calls() {
    let fake = fake().await;
    let credentials = two_lanes(&fake);
    fake.fault(
        "chanelofficial",
        [Fault::Throttle {
            code: 4,
            regain_minutes: 0,
        }],
    );
    let o = run_as(&fake, credentials, Job::Brands, SECS20, |c| {
        c.graph.concurrency = 1
    })
    .await;
    assert_eq!(
        fake.seen().len(),
        2,
        "hermes, then the throttled call, then nothing"
    );
    assert_eq!(o.failed().len(), 10);
    assert!(o.failed().iter().all(|(_, k)| *k == ErrorKind::Throttled));
    assert_eq!(o.written("brand").len(), 1);
}
