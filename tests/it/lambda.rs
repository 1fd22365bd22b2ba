//! The Lambda binaries, built in the same profile as the tests, driven through the Lambda
//! Runtime API protocol on loopback with the sample events from `events/` as payloads.

use serde_json::{json, Value};

use crate::support::graph::{FakeGraph, Fault};
use crate::support::runtime::{Function, RuntimeApi};
use crate::support::s3::S3Server;
use crate::support::s3proxy::{Op as S3Op, S3Fault, S3Proxy};
use crate::support::{self, calls_with, read_json, replay_dir, root, APP_ID, APP_SECRET, TOKEN};

const BUCKET: &str = "lambda-out";

fn event(name: &str) -> Value {
    read_json(root().join("events").join(name))
}

fn env(fake: &FakeGraph, s3: &S3Server) -> Vec<(String, String)> {
    support::function_env(s3.env(BUCKET), &fake.url(), None)
}

/// Runs one invocation of `binary` with `event` and returns what it answered.
async fn invoke_once(
    binary: &str,
    event_file: &str,
    env: &[(String, String)],
) -> Result<Value, (String, Value)> {
    let api = RuntimeApi::start(vec![event(event_file)]).await;
    let f = Function::spawn(binary, &api, env);
    let outcomes = api.outcomes(1).await;
    let output = f.stop();
    outcomes
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no answer: {output}"))
        .result
}

/// The invocation failed with `error_type` and a message containing `needle`.
fn assert_failed(result: Result<Value, (String, Value)>, error_type: &str, needle: &str) {
    let (_, body) = result.expect_err("an error");
    assert_eq!(body["errorType"], error_type, "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle} not in: {message}");
}

#[tokio::test]
async fn the_brands_function_writes_keys_from_the_event_time_and_a_redelivery_adds_nothing() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let classic = event("brands-scheduled-event.json");
    let scheduler = event("brands-scheduler.json");
    let api = RuntimeApi::start(vec![classic.clone(), classic.clone(), scheduler.clone()]).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env(&fake, &s3));
    let outcomes = api.outcomes(3).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 3, "{output}");
    let first_next = api.first_next().expect("the function asked for an event");
    assert!(outcomes.iter().all(|o| o.at > first_next));
    for o in &outcomes {
        let summary = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e:?}", o.request_id));
        assert_eq!(summary["records"]["brand"], 11);
        assert_eq!(summary["records"]["media"], 275);
        assert!(summary["failed_targets"]
            .as_array()
            .is_some_and(Vec::is_empty));
    }
    let stamp = |e: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(e["time"].as_str().expect("time"))
            .expect("rfc3339");
        t.format("%Y-%m-%d_%H%M%S").to_string()
    };
    let mut expected = Vec::new();
    for e in [&classic, &scheduler] {
        let s = stamp(e);
        let day = &s[..10];
        expected.push(format!("raw/brand_{day}/brand_{s}.json"));
        expected.push(format!("raw/media_{day}/media_{s}.json"));
    }
    expected.sort();
    assert_eq!(
        s3.data_keys(BUCKET).await,
        expected,
        "one object per key, keys from the event time"
    );
    assert_eq!(
        outcomes[0].result.as_ref().ok().map(|s| &s["keys_written"]),
        outcomes[1].result.as_ref().ok().map(|s| &s["keys_written"])
    );
    assert!(
        output.contains("\"_aws\""),
        "an EMF metrics line is printed: {output}"
    );
    assert!(
        !output.contains(TOKEN),
        "the token leaked into the function's output"
    );
}

#[tokio::test]
async fn the_hashtags_function_answers_both_event_forms() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let api = RuntimeApi::start(vec![
        event("hashtags-scheduled-event.json"),
        event("hashtags-scheduler.json"),
    ])
    .await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_hashtags"), &api, &env(&fake, &s3));
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 2, "{output}");
    let written: Vec<&Value> = outcomes
        .iter()
        .map(|o| &o.result.as_ref().unwrap_or_else(|e| panic!("{e:?}"))["records"]["media_hashtag"])
        .collect();
    // The second run sees the same posts: already written, so nothing new; no search either.
    assert_eq!(written, [&json!(275), &json!(0)]);
    // Every hashtags run reports, as metrics an alarm can see, the posts it left behind.
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{output}");
    for m in &emf {
        assert_eq!(m["PostsBehind"], json!(0.0), "{m}");
        // What the alarms on runs that stop count.
        assert_eq!(m["RunsSucceeded"], json!(1.0), "{m}");
        assert_eq!(m["PostsGivenUp"], json!(0.0), "{m}");
        let names = m["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(
            names.contains("\"PostsBehind\"")
                && names.contains("\"PostsGivenUp\"")
                && names.contains("\"RunsSucceeded\""),
            "{names}"
        );
    }
    assert_eq!(
        fake.calls_for("ig_hashtag_search"),
        11,
        "ids are kept in the state after the first run"
    );
    let keys = s3.data_keys(BUCKET).await;
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.starts_with("raw/media_hashtag_2023-09-02/")),
        "{keys:?}"
    );
}

/// An emulator (cargo-lambda's sends the constant 600000, in 1970) or a broken host may send a
/// deadline already past: the run keeps the configured function timeout instead of refusing
/// every call, and says so.
#[tokio::test]
async fn a_deadline_already_past_runs_on_the_configured_timeout_and_says_so() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let api =
        RuntimeApi::start_with_fixed_deadline(vec![event("brands-scheduled-event.json")], 600_000)
            .await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env(&fake, &s3));
    let outcomes = api.outcomes(1).await;
    let output = f.stop();
    let summary = outcomes
        .first()
        .and_then(|o| o.result.as_ref().ok())
        .unwrap_or_else(|| panic!("no successful answer: {outcomes:?} {output}"));
    assert_eq!(summary["records"]["brand"], 11, "{summary}");
    assert_eq!(summary["records"]["media"], 275, "{summary}");
    let warning = output
        .lines()
        .find(|l| l.contains("deadline this invocation cannot keep"))
        .unwrap_or_else(|| panic!("no warning about the deadline: {output}"));
    assert!(
        warning.contains("\"WARN\"") && warning.contains("1970-01-01T00:10:00.000Z"),
        "{warning}"
    );
    assert_eq!(s3.data_keys(BUCKET).await.len(), 2);
}

#[tokio::test]
async fn bad_input_fails_the_invocation_with_a_clear_error() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.fault("*", [Fault::expired_token()]);
    let api = RuntimeApi::start(vec![
        json!({"detail": {}}),
        json!({"time": "yesterday"}),
        json!({"time": "9999-12-31T23:59:59Z"}),
        event("brands-scheduled-event.json"),
    ])
    .await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env(&fake, &s3));
    let outcomes = api.outcomes(4).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 4, "{output}");
    let errors: Vec<(String, String)> = outcomes
        .iter()
        .map(|o| {
            let (kind, body) = o.result.clone().expect_err("an error");
            (
                kind,
                body["errorType"].as_str().unwrap_or_default().to_string()
                    + ": "
                    + body["errorMessage"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        errors[0]
            .1
            .starts_with("BadEvent: expected an EventBridge scheduled event")
            && errors[0].1.contains("no `time`"),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("\"yesterday\""), "{errors:?}");
    // Each one is also in the function's log, at ERROR.
    let logged = output
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("\"error_type\":\"BadEvent\""))
        .count();
    assert_eq!(logged, 3, "{output}");
    assert!(
        errors[2].1.starts_with("BadEvent:") && errors[2].1.contains("ahead of the clock"),
        "{errors:?}"
    );
    assert!(
        errors[3].1.starts_with("TokenRejected:") && errors[3].1.contains("expired"),
        "{errors:?}"
    );
    // Which calls were answered before the rejection depends on timing here; that they are
    // written is pinned deterministically by
    // `delivery::a_token_rejected_part_way_writes_what_was_collected_then_fails`.
    assert!(!output.contains(TOKEN));
}

#[tokio::test]
async fn a_bad_config_or_a_missing_token_fails_every_invocation_naming_what_to_fix() {
    let s3 = S3Server::start();
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        ig_collector::config::EMBEDDED
            .replace("concurrency = 16", "concurrency = 16\nparallelism = 2"),
    )
    .expect("write");

    let mut env_bad = env(&fake, &s3);
    env_bad.push(("CONFIG_PATH".into(), bad.display().to_string()));
    let result = invoke_once(
        env!("CARGO_BIN_EXE_brands"),
        "brands-scheduled-event.json",
        &env_bad,
    )
    .await;
    assert_failed(result.clone(), "ConfigInvalid", "graph.parallelism");
    assert_failed(result, "ConfigInvalid", "bad.toml");

    let env_no_token: Vec<_> = env(&fake, &s3)
        .into_iter()
        .filter(|(k, _)| k != "IG_ACCESS_TOKEN")
        .collect();
    let result = invoke_once(
        env!("CARGO_BIN_EXE_hashtags"),
        "hashtags-scheduled-event.json",
        &env_no_token,
    )
    .await;
    assert_failed(result, "TokenUnavailable", "IG_TOKEN_SECRET_ARN");
}

#[tokio::test]
async fn the_token_is_read_from_secrets_manager_at_the_first_invocation() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // moto serves Secrets Manager on the same endpoint.
    let conf = aws_sdk_secretsmanager::config::Builder::new()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(&s3.endpoint)
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    let secrets = aws_sdk_secretsmanager::Client::from_conf(conf);
    let created = secrets
        .create_secret()
        .name("ig-collector/graph-token")
        .secret_string(json!({ "access_token": TOKEN }).to_string())
        .send()
        .await
        .expect("secret created");
    let arn = created.arn().expect("arn").to_string();

    let mut env: Vec<(String, String)> = env(&fake, &s3)
        .into_iter()
        .filter(|(k, _)| k != "IG_ACCESS_TOKEN")
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), s3.endpoint.clone()));
    env.push(("IG_TOKEN_SECRET_ARN".into(), arn));
    let api = RuntimeApi::start(vec![event("brands-scheduled-event.json")]).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let outcomes = api.outcomes(1).await;
    let output = f.stop();
    let summary = outcomes[0]
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{output}"));
    assert_eq!(summary["records"]["brand"], 11);
    assert!(!output.contains(TOKEN));

    // A secret that does not exist: every invocation says which one.
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ig-collector/nope-AbCdEf";
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| {
            if k == "IG_TOKEN_SECRET_ARN" {
                (k, missing.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let result = invoke_once(
        env!("CARGO_BIN_EXE_brands"),
        "brands-scheduled-event.json",
        &env,
    )
    .await;
    assert_failed(result, "TokenUnavailable", "ig-collector/nope");
}

#[tokio::test]
async fn the_configuration_can_come_from_s3_and_a_bad_object_names_itself() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    // Two brands instead of eleven: a change made without a rebuild.
    let shipped = ig_collector::config::EMBEDDED;
    let first_target = shipped.find("[[targets]]").expect("targets");
    let mut text = shipped[..first_target].to_string();
    for name in ["dior", "gucci"] {
        let start = shipped
            .find(&format!("username = \"{name}\""))
            .expect("a target");
        let block_start = shipped[..start].rfind("[[targets]]").expect("block");
        let block_end = shipped[start..]
            .find("[[targets]]")
            .map_or(shipped.len(), |e| start + e);
        text.push_str(&shipped[block_start..block_end]);
    }
    for (key, body) in [
        ("config/configure.toml", text.clone()),
        (
            "config/broken.toml",
            text.replace("concurrency = 16", "concurrency = 0"),
        ),
    ] {
        s3.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .expect("put");
    }

    let mut with_config = env(&fake, &s3);
    with_config.push((
        "CONFIG_PATH".into(),
        format!("s3://{BUCKET}/config/configure.toml"),
    ));
    let summary = invoke_once(
        env!("CARGO_BIN_EXE_brands"),
        "brands-scheduled-event.json",
        &with_config,
    )
    .await
    .expect("the run succeeds");
    assert_eq!(summary["targets_total"], 2, "{summary}");
    assert_eq!(summary["records"]["brand"], 2, "{summary}");

    for (path, needle) in [
        (
            format!("s3://{BUCKET}/config/broken.toml"),
            "graph.concurrency",
        ),
        (format!("s3://{BUCKET}/config/missing.toml"), "no object"),
        ("s3://just-a-bucket".to_string(), "s3://bucket/key"),
    ] {
        let mut bad = env(&fake, &s3);
        bad.push(("CONFIG_PATH".into(), path.clone()));
        let result = invoke_once(
            env!("CARGO_BIN_EXE_hashtags"),
            "hashtags-scheduled-event.json",
            &bad,
        )
        .await;
        assert_failed(result.clone(), "ConfigInvalid", &path);
        assert_failed(result, "ConfigInvalid", needle);
    }
}

/// A Secrets Manager endpoint that takes connections and never answers: a TCP listener on
/// loopback that accepts and holds every connection. Returns its URL and how many connections
/// it has taken.
async fn silent_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, taken)
}

/// The function's environment with the token in Secrets Manager at `endpoint` (and S3 at its
/// own endpoint).
fn secret_env(fake: &FakeGraph, s3: &S3Server, endpoint: &str, arn: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env(fake, s3)
        .into_iter()
        .filter(|(k, _)| k != "IG_ACCESS_TOKEN")
        .collect();
    env.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), endpoint.into()));
    env.push(("IG_TOKEN_SECRET_ARN".into(), arn.into()));
    env
}

const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ig-collector/graph-token-AbCdEf";

#[tokio::test]
async fn a_secrets_manager_that_never_answers_fails_each_event_before_its_deadline_and_the_next_is_taken(
) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let (endpoint, taken) = silent_endpoint().await;
    let limit = std::time::Duration::from_secs(6);
    let brands = event("brands-scheduled-event.json");
    let api = RuntimeApi::start_with_limit(vec![brands.clone(), brands], limit).await;
    let started = std::time::Instant::now();
    let f = Function::spawn(
        env!("CARGO_BIN_EXE_brands"),
        &api,
        &secret_env(&fake, &s3, &endpoint, SECRET_ARN),
    );
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 2, "{output}");
    let mut handed_out = started;
    for o in &outcomes {
        // Each event is handed out after the previous answer; its deadline is `limit` later.
        assert!(
            o.at < handed_out + limit,
            "answered {:?} after it was handed out, past its deadline",
            o.at - handed_out
        );
        handed_out = o.at;
        let (_, body) = o.result.clone().expect_err("an error");
        assert_eq!(body["errorType"], "TokenUnavailable", "{body}");
        let message = body["errorMessage"].as_str().unwrap_or_default();
        let within = message
            .split_once(&format!(
                "the token secret {SECRET_ARN} did not answer within "
            ))
            .and_then(|(_, rest)| rest.split_once(" s:"))
            .and_then(|(secs, _)| secs.parse::<f64>().ok());
        // The invocation's time less the reserve for the answer (1.5 s), not the 10 s the read
        // is given when the invocation leaves more.
        assert!(within.is_some_and(|s| s > 0.0 && s <= 4.5), "{message}");
        assert!(
            message.contains("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
            "{message}"
        );
    }
    assert!(
        taken.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the second event read the secret again"
    );
    assert_eq!(fake.seen().len(), 0, "no Graph call without a token");
    assert!(!output.contains(TOKEN));
}

#[tokio::test]
async fn a_setup_that_failed_for_one_event_succeeds_for_the_next_and_is_kept() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let conf = aws_sdk_secretsmanager::config::Builder::new()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(&s3.endpoint)
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    let created = aws_sdk_secretsmanager::Client::from_conf(conf)
        .create_secret()
        .name("ig-collector/graph-token")
        .secret_string(json!({ "access_token": TOKEN }).to_string())
        .send()
        .await
        .expect("secret created");
    let arn = created.arn().expect("arn").to_string();
    // Secrets Manager behind a proxy that answers its first request with a 500.
    let proxy = S3Proxy::start(&s3.endpoint).await;
    proxy.fault(S3Op::Any, "", S3Fault::Status(500, "InternalError"), 1);
    let mut env = secret_env(&fake, &s3, &proxy.endpoint, &arn);
    // One attempt per read, so the one 500 fails the first event whatever the SDK's retries.
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let brands = event("brands-scheduled-event.json");
    let api = RuntimeApi::start(vec![brands.clone(), brands.clone(), brands]).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let outcomes = api.outcomes(3).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 3, "{output}");
    let (_, body) = outcomes[0]
        .result
        .clone()
        .expect_err("the 500 fails the first event");
    assert_eq!(body["errorType"], "TokenUnavailable", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("could not read the token secret")),
        "{body}"
    );
    for o in &outcomes[1..] {
        let summary = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?}\n{output}"));
        assert_eq!(summary["records"]["brand"], 11, "{summary}");
    }
    assert_eq!(
        proxy.seen().len(),
        2,
        "the secret is read for the failed event and the first good one, then kept"
    );
    assert!(!output.contains(TOKEN));
}

/// A Secrets Manager client on moto (the S3 server's endpoint serves it too).
fn secrets_client(s3: &S3Server) -> aws_sdk_secretsmanager::Client {
    support::secrets_client(&s3.endpoint)
}

/// The token the secret is rotated to.
const ROTATED: &str = "EAAGrotatedTokenValue0123456789";

/// Puts `token` in the secret, in its JSON shape.
async fn rotate(secrets: &aws_sdk_secretsmanager::Client, arn: &str, token: &str) {
    secrets
        .put_secret_value()
        .secret_id(arn)
        .secret_string(json!({ "access_token": token }).to_string())
        .send()
        .await
        .expect("secret rotated");
}

/// A secret in moto's Secrets Manager holding the test token; its ARN.
async fn token_secret(secrets: &aws_sdk_secretsmanager::Client) -> String {
    support::create_token_secret(secrets, &json!({ "access_token": TOKEN }).to_string()).await
}

#[tokio::test]
async fn a_token_rotated_in_the_secret_and_revoked_is_taken_up_by_the_warm_process_at_once() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let secrets = secrets_client(&s3);
    let arn = token_secret(&secrets).await;
    let brands = event("brands-scheduled-event.json");
    let api = RuntimeApi::start(vec![brands.clone()]).await;
    let f = Function::spawn(
        env!("CARGO_BIN_EXE_brands"),
        &api,
        &secret_env(&fake, &s3, &s3.endpoint, &arn),
    );
    let first = api.outcomes(1).await;
    assert!(first.first().is_some_and(|o| o.result.is_ok()), "{first:?}");
    // Rotated in the secret, the old token revoked; the cache time (15 min) is far off.
    rotate(&secrets, &arn, ROTATED).await;
    fake.allow_token(ROTATED);
    fake.revoke_token(TOKEN);
    let before = fake.seen().len();
    api.push(brands);
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 2, "{output}");
    let summary = outcomes[1]
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{output}"));
    assert_eq!(summary["records"]["brand"], 11, "{summary}");
    let seen = fake.seen();
    assert!(
        calls_with(&seen[before..], ROTATED) >= 11,
        "the new token was used"
    );
    assert!(
        !output.contains(TOKEN) && !output.contains(ROTATED),
        "{output}"
    );
}

#[tokio::test]
async fn a_warm_process_reads_the_token_secret_again_once_its_cache_time_has_passed() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let secrets = secrets_client(&s3);
    let arn = token_secret(&secrets).await;
    let mut env = secret_env(&fake, &s3, &s3.endpoint, &arn);
    env.push(("TOKEN_CACHE_TTL_SECS".into(), "1".into()));
    let brands = event("brands-scheduled-event.json");
    let api = RuntimeApi::start(vec![brands.clone()]).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let first = api.outcomes(1).await;
    assert!(first.first().is_some_and(|o| o.result.is_ok()), "{first:?}");
    // Rotated, the old token still valid: only the cache time makes the process read it.
    rotate(&secrets, &arn, ROTATED).await;
    fake.allow_token(ROTATED);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = fake.seen().len();
    api.push(brands);
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(outcomes.len(), 2, "{output}");
    assert!(outcomes[1].result.is_ok(), "{:?}\n{output}", outcomes[1]);
    let seen = &fake.seen()[before..];
    assert!(!seen.is_empty(), "the second run called the API");
    assert_eq!(
        calls_with(seen, ROTATED),
        seen.len(),
        "every call used the new token"
    );
    assert!(
        !output.contains(TOKEN) && !output.contains(ROTATED),
        "{output}"
    );
}

/// The EMF metrics line of the output, parsed.
fn metrics_line(output: &str) -> Value {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no metrics line: {output}"))
}

/// The brands function with its token in a secret holding `app_secret`, the app id in
/// `IG_APP_ID` and a token that `debug_token` says expires in `days`; runs the 00:00 event (the
/// daily check) and then the 01:00 one. Returns the two answers, what the function printed, the
/// fake, the Graph calls of the second run, and the secret before and after.
async fn refresh_at_the_daily_check(
    app_secret: &str,
    days: i64,
) -> (
    Vec<Value>,
    String,
    FakeGraph,
    Vec<crate::support::graph::Seen>,
    String,
    String,
) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.set_app(APP_ID, APP_SECRET);
    fake.set_token_expiry(chrono::Utc::now().timestamp() + days * 86_400);
    let secrets = secrets_client(&s3);
    let stored = json!({ "access_token": TOKEN, "app_secret": app_secret }).to_string();
    let arn = support::create_token_secret(&secrets, &stored).await;
    let mut env = secret_env(&fake, &s3, &s3.endpoint, &arn);
    env.push(("IG_APP_ID".into(), APP_ID.into()));
    let api = RuntimeApi::start(vec![event("brands-scheduled-event.json")]).await;
    let f = Function::spawn(env!("CARGO_BIN_EXE_brands"), &api, &env);
    let first = api.outcomes(1).await;
    let before = fake.seen().len();
    api.push(event("brands-scheduler.json"));
    let outcomes = api.outcomes(2).await;
    let output = f.stop();
    assert_eq!(first.len(), 1, "{output}");
    assert_eq!(outcomes.len(), 2, "{output}");
    let answers = outcomes
        .into_iter()
        .map(|o| o.result.unwrap_or_else(|e| panic!("{e:?}\n{output}")))
        .collect();
    let second = fake.seen()[before..].to_vec();
    let after = support::secret_value(&secrets, &arn).await;
    (answers, output, fake, second, stored, after)
}

#[tokio::test]
async fn the_brands_function_refreshes_a_token_under_the_threshold_and_its_next_run_uses_the_fresh_one(
) {
    let (answers, output, fake, second, _, after) = refresh_at_the_daily_check(APP_SECRET, 5).await;
    let daily = &answers[0];
    assert_eq!(daily["records"]["brand"], 11, "{daily}");
    assert_eq!(daily["token_refresh"][0]["outcome"], "refreshed", "{daily}");
    assert_eq!(daily["token_refresh"][0]["days_left"], 5.0, "{daily}");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1, "one exchange");
    let fresh = &issued[0];
    assert_eq!(
        after,
        json!({ "access_token": fresh, "app_secret": APP_SECRET }).to_string(),
        "the fresh token is in the secret, the app secret kept"
    );
    // The warm process read the secret again: the next run called with the fresh token only.
    assert_eq!(answers[1]["records"]["brand"], 11, "{}", answers[1]);
    assert_eq!(second.len(), 11, "{second:?}");
    assert_eq!(
        calls_with(&second, fresh),
        11,
        "every call used the fresh token"
    );
    let metrics = metrics_line(&output);
    assert_eq!(metrics["TokensRefreshed"], 1.0, "{metrics}");
    assert_eq!(metrics["TokenRefreshFailed"], 0.0, "{metrics}");
    for secret in [TOKEN, fresh.as_str(), APP_SECRET] {
        assert!(!output.contains(secret), "a secret was printed: {output}");
    }
}

#[tokio::test]
async fn the_brands_function_leaves_a_token_with_days_to_spare() {
    let (answers, output, fake, second, stored, after) =
        refresh_at_the_daily_check(APP_SECRET, 30).await;
    let daily = &answers[0];
    assert_eq!(daily["token_refresh"][0]["outcome"], "skipped", "{daily}");
    assert!(
        daily["token_refresh"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refreshed under 14 (health.refresh_days_left)")),
        "{daily}"
    );
    assert_eq!(fake.calls_for("oauth"), 0, "no exchange");
    assert_eq!(after, stored, "the secret is as it was");
    assert_eq!(calls_with(&second, TOKEN), 11);
    let metrics = metrics_line(&output);
    assert_eq!(metrics["TokensRefreshed"], 0.0, "{metrics}");
    assert!(!output.contains(TOKEN) && !output.contains(APP_SECRET));
}

#[tokio::test]
async fn a_refresh_meta_refuses_is_logged_and_counted_and_the_run_keeps_its_data() {
    let wrong = "wrongAPPsecret0123456789";
    let (answers, output, fake, second, stored, after) = refresh_at_the_daily_check(wrong, 5).await;
    let daily = &answers[0];
    assert_eq!(daily["records"]["brand"], 11, "the run's data: {daily}");
    assert_eq!(daily["records"]["media"], 275, "{daily}");
    assert_eq!(daily["token_refresh"][0]["outcome"], "failed", "{daily}");
    assert!(fake.issued_tokens().is_empty());
    assert_eq!(after, stored, "the secret is as it was");
    assert_eq!(
        calls_with(&second, TOKEN),
        11,
        "the current token stays in use"
    );
    let metrics = metrics_line(&output);
    assert_eq!(metrics["TokenRefreshFailed"], 1.0, "{metrics}");
    assert_eq!(metrics["RunsSucceeded"], 1.0, "{metrics}");
    let failure = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"].as_str().is_some_and(|m| {
                m.starts_with("token refresh failed: Meta refused the app id or app secret")
            })
        })
        .unwrap_or_else(|| panic!("no failure line: {output}"));
    assert_eq!(failure["level"], "ERROR", "{failure}");
    for secret in [TOKEN, wrong, APP_SECRET] {
        assert!(!output.contains(secret), "a secret was printed: {output}");
    }
}
