//! The `ig-collector` CLI's operator commands: check-config, resolve-hashtags, reprocess from
//! S3 (and its refusal to write outside `--to`), and `--at` in both time forms.

use chrono::{TimeZone, Utc};
use ig_collector::collect::{run, Job};
use serde_json::Value;

use crate::support::graph::{FakeGraph, Fault};
use crate::support::s3::{sink_for, S3Server};
use crate::support::{self, cli, config_for, replay_dir, succeed, APP_ID, APP_SECRET, TOKEN};

const BUCKET: &str = "cli";

#[test]
fn check_config_prints_the_plan_and_the_budget_arithmetic() {
    let out = succeed(cli().env_remove("IG_USER_ID").arg("check-config"));
    assert!(out.contains("configure.toml (embedded): ok"), "{out}");
    assert!(out.contains("11 targets:"), "{out}");
    assert!(out.contains("dior") && out.contains("#valentino"), "{out}");
    assert!(
        out.contains("raw/media_hashtag_{%Y-%m-%d}/media_hashtag_{%Y-%m-%d_%H%M%S}.json"),
        "{out}"
    );
    assert!(
        out.contains("credential 1 of 1: 200 calls/h - 11 accounts × 1 brands run/h - 33 lookback pages/h \
                      (11 accounts × 3 pages back for brands.lookback_days 7 at 12 posts/day, 25 a page) - 1 token check = 155 calls/h for 11 hashtags; \
                      each polled at least every 30 min (hashtags.max_delay_mins 30, on the 5-min schedule): 11 × 2.0 = 22.0 calls/h; \
                      the 133.0 calls/h left fetch up to 6650 more posts/h (50 a page)"),
        "{out}"
    );
    assert!(
        out.contains("token refresh: the daily check exchanges a token with fewer than 14 days left for a fresh one and writes it to the token secret (health.refresh_days_left)"),
        "{out}"
    );
}

#[test]
fn check_config_refuses_a_bad_file_naming_the_file_and_each_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = ig_collector::config::EMBEDDED
        .replace("concurrency = 16", "concurrency = 0")
        .replace(
            "known_window_mins = 180",
            "known_window_mins = 200000000000",
        );
    std::fs::write(&path, text).expect("write");
    let output = cli()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("graph.concurrency") && err.contains("hashtags.known_window_mins"),
        "{err}"
    );
    // Over the budget with one credential, within it with two.
    // Every hashtag polled every 5 minutes on 100 calls an hour: 11 × 12 = 132 > 88.
    let over = ig_collector::config::EMBEDDED
        .replace("max_delay_mins = 30", "max_delay_mins = 5")
        .replace(
            "calls_per_hour_per_credential = 200",
            "calls_per_hour_per_credential = 100",
        );
    std::fs::write(&path, over).expect("write");
    let output = cli()
        .arg("--config")
        .arg(&path)
        .args(["check-config", "--credentials", "1"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("over the Graph API budget"));
    succeed(
        cli()
            .arg("--config")
            .arg(&path)
            .args(["check-config", "--credentials", "2"]),
    );
}

#[test]
fn resolve_hashtags_prints_a_line_to_pin_for_each_hashtag() {
    let out = succeed(
        cli()
            .args(["resolve-hashtags", "--replay"])
            .arg(replay_dir()),
    );
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("hashtag_id = \""))
        .collect();
    assert_eq!(lines.len(), 11, "{out}");
    let dior = support::read_json(replay_dir().join("hashtag_search/dior.json"));
    let id = dior["data"][0]["id"].as_str().expect("id");
    assert!(
        out.contains(&format!("# dior #dior\nhashtag_id = \"{id}\"")),
        "{out}"
    );
}

#[test]
fn at_accepts_rfc_3339_and_the_graph_form_of_the_outputs() {
    for at in ["2023-09-02T00:00:15Z", "2023-09-02T00:00:15+0000"] {
        let out = tempfile::tempdir().expect("tempdir");
        succeed(
            cli()
                .args(["brands", "--replay"])
                .arg(replay_dir())
                .arg("--out")
                .arg(out.path())
                .args(["--at", at]),
        );
        assert!(out
            .path()
            .join("raw/brand_2023-09-02/brand_2023-09-02_000015.json")
            .exists());
    }
    let output = cli()
        .args(["brands", "--at", "2023-09-02"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("2023-09-02T00:00:15+0000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reprocess_from_s3_gives_the_records_back_and_never_writes_outside_its_folder() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let config = config_for(&fake.url());
    let sink = sink_for(&s3.endpoint, BUCKET, &config);
    let app = support::live_app(config, sink);
    let at = Utc
        .with_ymd_and_hms(2023, 9, 2, 0, 5, 0)
        .single()
        .expect("time");
    run(&app, Job::Hashtags, at, None)
        .await
        .expect("a live run");
    let key = "raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000500.json";
    let original: Value = serde_json::from_slice(&s3.get(BUCKET, key).await).expect("json");

    let to = tempfile::tempdir().expect("tempdir");
    let from = format!("s3://{BUCKET}/raw_api/hashtags/2023-09-02/2023-09-02_000500");
    let reprocess = |to: &std::path::Path| {
        let mut cmd = cli();
        for (k, v) in s3.env(BUCKET) {
            cmd.env(k, v);
        }
        cmd.env_remove("BUCKET")
            .args(["reprocess", "--from", &from, "--to"])
            .arg(to)
            .output()
            .expect("runs")
    };
    let output = reprocess(to.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again: Value =
        serde_json::from_slice(&std::fs::read(to.path().join(key)).expect("reprocessed object"))
            .expect("json");
    assert_eq!(again, original, "the capture gives the same records back");

    // A download over its cap is refused from the listing, before any object is fetched.
    let capped = tempfile::tempdir().expect("tempdir");
    let mut cmd = cli();
    for (k, v) in s3.env(BUCKET) {
        cmd.env(k, v);
    }
    let output = cmd
        .env_remove("BUCKET")
        .args([
            "reprocess",
            "--from",
            &from,
            "--max-download-bytes",
            "100",
            "--to",
        ])
        .arg(capped.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("the capture under {from}/ is "))
            && err
                .contains("bytes, over the download cap of 100 bytes: refused before downloading"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(capped.path()).expect("dir").count(), 0);

    // A key that climbs out of the capture folder is refused, and nothing lands outside.
    let outside = to.path().join("escaped.json.gz");
    let hostile = format!(
        "raw_api/hashtags/2023-09-02/2023-09-02_000500/../../../../{}",
        outside.display().to_string().trim_start_matches('/')
    );
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(&hostile)
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");
    assert!(
        s3.keys(BUCKET).await.contains(&hostile),
        "the server keeps the key as given"
    );
    let second = tempfile::tempdir().expect("tempdir");
    let output = reprocess(second.path());
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("would be written outside") && err.contains("refused"),
        "{err}"
    );
    assert!(!outside.exists());
}

/// The CLI as the test credential against the fake Graph API at `graph_url`.
fn live_cli(graph_url: &str) -> std::process::Command {
    let mut cmd = cli();
    cmd.env("IG_USER_ID", support::CALLER_ID)
        .env("IG_ACCESS_TOKEN", TOKEN)
        .env("GRAPH_API_URL", graph_url)
        .env_remove("IG_TOKEN_SECRET_ARN")
        .env_remove("IG_APP_SECRET");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn at_far_ahead_of_the_clock_is_refused_before_any_call_or_write() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let typo = "2032-09-02T00:00:15Z";
    for command in ["brands", "hashtags", "all"] {
        let output = tokio::task::block_in_place(|| {
            live_cli(&fake.url())
                .args([command, "--at", typo, "--out"])
                .arg(out.path())
                .output()
                .expect("runs")
        });
        assert_eq!(output.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains(&format!(
                "--at {typo} is more than 15 minutes ahead of the clock ("
            )),
            "{command}: {err}"
        );
    }
    // Reprocess takes --at too, and the time its capture path names.
    let capture = tempfile::tempdir().expect("tempdir");
    let future_path = capture
        .path()
        .join("raw_api/brands/2032-09-02/2032-09-02_000015");
    std::fs::create_dir_all(&future_path).expect("dir");
    for (args, field) in [
        (
            vec!["--at", typo, "--job", "brands"],
            format!("--at {typo}"),
        ),
        (vec![], format!("the capture path's time {typo}")),
    ] {
        let from = if args.is_empty() {
            future_path.clone()
        } else {
            replay_dir()
        };
        let output = cli()
            .args(["reprocess", "--from"])
            .arg(&from)
            .arg("--to")
            .arg(out.path())
            .args(&args)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2));
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains(&field) && err.contains("ahead of the clock"),
            "{err}"
        );
    }
    assert_eq!(fake.seen().len(), 0, "no Graph call");
    assert_eq!(
        std::fs::read_dir(out.path()).expect("dir").count(),
        0,
        "nothing written"
    );
    // A time in the past, or none, is the usual run.
    succeed(
        cli()
            .args(["brands", "--replay"])
            .arg(replay_dir())
            .arg("--out")
            .arg(out.path())
            .args(["--at", "2023-09-02T00:00:15Z"]),
    );
}

#[test]
fn one_instagram_user_named_twice_is_refused_naming_the_entries() {
    let output = cli()
        .arg("token-status")
        .env(
            "IG_USER_ID",
            format!("{0},17841400000000001,{0}", support::CALLER_ID),
        )
        .env("IG_ACCESS_TOKEN", format!("{TOKEN},{TOKEN}B,{TOKEN}C"))
        .env("GRAPH_API_URL", "http://127.0.0.1:9")
        .env_remove("IG_TOKEN_SECRET_ARN")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!(
            "IG_USER_ID entry 3 (counting from 1) names Instagram user {} again, as entry 1 does",
            support::CALLER_ID
        )),
        "{err}"
    );
    assert!(!err.contains(TOKEN) && !String::from_utf8_lossy(&output.stdout).contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_status_ends_within_its_bound_when_secrets_manager_never_answers() {
    // Takes connections and holds them, never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let arn =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ig-collector/graph-token-AbCdEf";
    let started = std::time::Instant::now();
    let output = tokio::task::block_in_place(|| {
        cli()
            .arg("token-status")
            .env("IG_TOKEN_SECRET_ARN", arn)
            .env("IG_USER_ID", support::CALLER_ID)
            .env_remove("IG_ACCESS_TOKEN")
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("runs")
    });
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "error: the token secret {arn} did not answer within 10.0 s: check that Secrets Manager is reachable from here (a function in a VPC needs a NAT gateway or a secretsmanager VPC endpoint) and, if AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL is set, that it points at Secrets Manager"
            )
            .as_str()
        ),
        "{err}"
    );
    assert!(
        took < std::time::Duration::from_secs(15),
        "the 10 s bound, and process start: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_from_an_s3_that_never_answers_ends_within_its_bound() {
    // Takes connections and holds them, never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let output = tokio::task::block_in_place(|| {
        let mut cmd = cli();
        for (k, v) in support::s3::env_for(&endpoint, BUCKET) {
            cmd.env(k, v);
        }
        cmd.env("CONFIG_PATH", "s3://cli/config/configure.toml")
            .arg("check-config")
            .output()
            .expect("runs")
    });
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("s3://cli/config/configure.toml")
            && err.contains("CONFIG_PATH (environment)")
            // The client's own operation timeout, or the sink's bound just past it.
            && (err.contains("timed out: operation timeout (all attempts including retries) occurred after 10s")
                || err.contains("timed out: no answer within 10000 ms")),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_and_bucket_together_or_an_unwritable_out_are_refused_before_any_call() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let output = tokio::task::block_in_place(|| {
        live_cli(&fake.url())
            .env("BUCKET", "some-bucket")
            .args(["brands", "--out"])
            .arg(out.path())
            .output()
            .expect("runs")
    });
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("both --out {}", out.path().display()))
            && err.contains("BUCKET=some-bucket"),
        "{err}"
    );
    // A folder under a file cannot be created.
    let file = out.path().join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let output = tokio::task::block_in_place(|| {
        live_cli(&fake.url())
            .env_remove("BUCKET")
            .args(["all", "--out"])
            .arg(file.join("records"))
            .output()
            .expect("runs")
    });
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot be written to ("), "{err}");
    assert!(!err.contains("Os {"), "no debug dump: {err}");
    assert!(fake.seen().is_empty(), "no Graph call was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_aws_credentials_for_a_bucket_are_refused_before_any_call() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let home = tempfile::tempdir().expect("tempdir");
    let output = tokio::task::block_in_place(|| {
        let mut cmd = live_cli(&fake.url());
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("BUCKET", "some-bucket")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", home.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.path().join("credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", home.path())
            .arg("brands")
            .output()
            .expect("runs")
    });
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("AWS credentials") && err.contains("s3://some-bucket"),
        "{err}"
    );
    let error: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(
        error.len() == 1 && !error[0].contains(" { "),
        "one plain sentence: {err}"
    );
    assert!(fake.seen().is_empty(), "no Graph call was made");
}

#[test]
fn quiet_leaves_only_warnings_on_stderr() {
    let logs = |flag: Option<&str>| {
        let out = tempfile::tempdir().expect("tempdir");
        let mut cmd = cli();
        cmd.env_remove("RUST_LOG")
            .env_remove("BUCKET")
            .args(["brands", "--at", "2023-09-02T00:00:15Z", "--replay"])
            .arg(replay_dir())
            .arg("--out")
            .arg(out.path());
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let output = cmd.output().expect("runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    assert!(logs(None).contains("INFO"));
    let quiet = logs(Some("-q"));
    assert!(!quiet.contains("INFO"), "{quiet}");
}

/// `ig-collector token-refresh` (and the other commands) against the fake Graph API, with the
/// token in moto's Secrets Manager (secret `arn`) and the app id in `IG_APP_ID`.
fn with_secret(s3: &S3Server, fake: &FakeGraph, arn: &str) -> std::process::Command {
    let mut cmd = cli();
    for (k, v) in s3.env(BUCKET).into_iter().filter(|(k, _)| k != "BUCKET") {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &s3.endpoint)
        .env("IG_TOKEN_SECRET_ARN", arn)
        .env("IG_USER_ID", support::CALLER_ID)
        .env("GRAPH_API_URL", fake.url())
        .env("IG_APP_ID", APP_ID)
        .env_remove("IG_ACCESS_TOKEN")
        .env_remove("IG_APP_SECRET");
    cmd
}

/// Runs a command to its end without blocking the test's runtime (the fake API runs on it).
fn finish(cmd: &mut std::process::Command) -> std::process::Output {
    tokio::task::block_in_place(|| cmd.output().expect("runs"))
}

/// Everything a command printed.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refresh_writes_a_fresh_token_to_the_secret_and_a_later_run_uses_it() {
    let s3 = S3Server::start();
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.set_app(APP_ID, APP_SECRET);
    let secrets = support::secrets_client(&s3.endpoint);
    let stored =
        serde_json::json!({"access_token": TOKEN, "app_secret": APP_SECRET, "note": "kept"})
            .to_string();
    let arn = support::create_token_secret(&secrets, &stored).await;
    let mut outputs = Vec::new();

    // A dry run reports the days left and changes nothing.
    let dry = finish(with_secret(&s3, &fake, &arn).args(["token-refresh", "--dry-run"]));
    assert!(dry.status.success(), "{}", printed(&dry));
    let report: Value = serde_json::from_slice(&dry.stdout).expect("a JSON report");
    assert_eq!(report[0]["outcome"], "skipped", "{report}");
    assert!(
        report[0]["days_left"]
            .as_f64()
            .is_some_and(|d| (49.0..=50.0).contains(&d)),
        "{report}"
    );
    assert!(
        report[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("dry run")),
        "{report}"
    );
    assert_eq!(fake.calls_for("oauth"), 0);
    assert_eq!(support::secret_value(&secrets, &arn).await, stored);
    outputs.push(dry);

    let refreshed = finish(with_secret(&s3, &fake, &arn).arg("token-refresh"));
    assert!(refreshed.status.success(), "{}", printed(&refreshed));
    let report: Value = serde_json::from_slice(&refreshed.stdout).expect("a JSON report");
    assert_eq!(report[0]["ig_user_id"], support::CALLER_ID, "{report}");
    assert_eq!(report[0]["outcome"], "refreshed", "{report}");
    assert_eq!(report[0]["new_days_left"], 60.0, "{report}");
    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1);
    let fresh = &issued[0];
    assert_ne!(fresh, TOKEN);
    // The fresh token in the secret, every other field kept in its place.
    assert_eq!(
        support::secret_value(&secrets, &arn).await,
        serde_json::json!({"access_token": fresh, "app_secret": APP_SECRET, "note": "kept"})
            .to_string()
    );
    // The app secret and the token travelled in the form body, never in the URL.
    let exchange = fake
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/oauth/access_token"))
        .expect("an exchange");
    assert!(exchange.query.is_empty(), "{:?}", exchange.query);
    assert_eq!(
        exchange.form.get("client_id").map(String::as_str),
        Some(APP_ID)
    );
    assert_eq!(
        exchange.form.get("fb_exchange_token").map(String::as_str),
        Some(TOKEN)
    );
    outputs.push(refreshed);

    // A later run reads the secret and calls with the fresh token only.
    let out = tempfile::tempdir().expect("tempdir");
    let before = fake.seen().len();
    let run = finish(
        with_secret(&s3, &fake, &arn)
            .args(["brands", "--at", "2023-09-02T01:00:00Z", "--out"])
            .arg(out.path()),
    );
    assert!(run.status.success(), "{}", printed(&run));
    let seen = &fake.seen()[before..];
    assert_eq!(seen.len(), 11, "one call per account");
    assert_eq!(
        support::calls_with(seen, fresh),
        11,
        "every call used the fresh token"
    );
    outputs.push(run);

    for output in &outputs {
        let text = printed(output);
        for secret in [TOKEN, fresh.as_str(), APP_SECRET] {
            assert!(!text.contains(secret), "a secret was printed: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refresh_refused_or_unconfigured_says_what_to_set_and_leaves_the_secret_as_it_was() {
    let s3 = S3Server::start();
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.set_app(APP_ID, APP_SECRET);
    let secrets = support::secrets_client(&s3.endpoint);
    let wrong = "wrongAPPsecret0123456789";
    let stored = serde_json::json!({"access_token": TOKEN, "app_secret": wrong}).to_string();
    let arn = support::create_token_secret(&secrets, &stored).await;

    let refused = finish(with_secret(&s3, &fake, &arn).arg("token-refresh"));
    assert_eq!(refused.status.code(), Some(1), "{}", printed(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: 1 of 1 tokens not refreshed: Instagram user {}: Meta refused the app id or app secret (",
            support::CALLER_ID
        )) && last.contains("Error validating client secret.")
            && last.contains("set IG_APP_ID and IG_APP_SECRET (or `app_id` and `app_secret` in the token secret)"),
        "{err}"
    );
    assert!(fake.issued_tokens().is_empty());
    assert_eq!(support::secret_value(&secrets, &arn).await, stored);

    // Without an app id: refused before any Graph call, naming what to set.
    let calls = fake.seen().len();
    let no_app = finish(
        with_secret(&s3, &fake, &arn)
            .env_remove("IG_APP_ID")
            .arg("token-refresh"),
    );
    assert_eq!(no_app.status.code(), Some(2), "{}", printed(&no_app));
    assert!(
        String::from_utf8_lossy(&no_app.stderr).contains(&format!(
            "error: no app id for credential 1 (Instagram user {}): set IG_APP_ID to the id of the Meta app the token was issued for",
            support::CALLER_ID
        )),
        "{}",
        printed(&no_app)
    );
    // With the token in IG_ACCESS_TOKEN there is no secret to write to.
    let no_secret = finish(
        with_secret(&s3, &fake, &arn)
            .env_remove("IG_TOKEN_SECRET_ARN")
            .env("IG_ACCESS_TOKEN", TOKEN)
            .arg("token-refresh"),
    );
    assert_eq!(no_secret.status.code(), Some(2), "{}", printed(&no_secret));
    assert!(
        printed(&no_secret).contains("set IG_TOKEN_SECRET_ARN"),
        "{}",
        printed(&no_secret)
    );
    assert_eq!(
        fake.seen().len(),
        calls,
        "no Graph call without what a refresh needs"
    );
    assert_eq!(support::secret_value(&secrets, &arn).await, stored);
    for output in [&refused, &no_app, &no_secret] {
        let text = printed(output);
        for secret in [TOKEN, wrong, APP_SECRET] {
            assert!(!text.contains(secret), "a secret was printed: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_answer_that_cannot_be_read_is_never_quoted() {
    let s3 = S3Server::start();
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.set_app(APP_ID, APP_SECRET);
    let secrets = support::secrets_client(&s3.endpoint);
    let stored = serde_json::json!({"access_token": TOKEN, "app_secret": APP_SECRET}).to_string();
    let arn = support::create_token_secret(&secrets, &stored).await;
    let leaked = "EAAGfreshTOKENnobodyKnows0123456789";
    for (answer, attempts) in [
        // Cut off mid-JSON: transient, so retried (and each retry logged) until the attempts end.
        (format!(r#"{{"access_token": "{leaked}"#), 4),
        // The form-encoded answer of old API versions: not JSON.
        (format!("access_token={leaked}&expires=5183944"), 1),
    ] {
        let faults = (0..attempts).map(|_| Fault::Raw {
            status: 200,
            body: answer.clone(),
        });
        fake.fault("oauth/access_token", faults);
        let output = finish(with_secret(&s3, &fake, &arn).arg("token-refresh"));
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(
            text.contains("the answer is not shown, as it may hold a new token"),
            "{text}"
        );
        for secret in [leaked, "EAAGfreshTOKENnobody", TOKEN, APP_SECRET] {
            assert!(!text.contains(secret), "{secret} was printed: {text}");
        }
    }
    assert_eq!(support::secret_value(&secrets, &arn).await, stored);
}
