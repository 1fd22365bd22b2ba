//! Test harness: the shared kit (`testkit`: fake Graph API, S3 server and proxy, fake Runtime
//! API, fixtures) plus what only an integration test of this package can reach: its binaries.

pub use testkit::*;

/// The `ig-collector` CLI, writing to folders (no `BUCKET`).
pub fn cli() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ig-collector"));
    cmd.env_remove("BUCKET");
    cmd
}

/// Runs a command that must succeed; returns its stdout.
pub fn succeed(cmd: &mut std::process::Command) -> String {
    let output = cmd.output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `ig-collector token-status` as the test credential, against the Graph API at `graph_url`.
pub fn token_status(graph_url: &str) -> std::process::Command {
    let mut cmd = cli();
    cmd.arg("token-status")
        .env("IG_USER_ID", CALLER_ID)
        .env("IG_ACCESS_TOKEN", TOKEN)
        .env("GRAPH_API_URL", graph_url)
        .env_remove("IG_TOKEN_SECRET_ARN")
        .env_remove("IG_APP_SECRET");
    cmd
}

/// Runs `script` with `python3` (or `$PYTHON`), `request` as JSON on its standard input, and
/// returns the JSON it prints. `failed` says which package failed and how to install it.
pub fn python_json<T: serde::de::DeserializeOwned>(
    script: &str,
    request: &serde_json::Value,
    failed: &str,
) -> T {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request written");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "{failed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// A Secrets Manager client on moto at `endpoint` (the S3 server serves Secrets Manager too).
pub fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::new()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// A secret named `ig-collector/graph-token` holding `value`; its ARN.
pub async fn create_token_secret(secrets: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let created = secrets
        .create_secret()
        .name("ig-collector/graph-token")
        .secret_string(value)
        .send()
        .await
        .expect("secret created");
    created.arn().expect("arn").to_string()
}

/// What the secret holds now.
pub async fn secret_value(secrets: &aws_sdk_secretsmanager::Client, arn: &str) -> String {
    secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .expect("secret read")
        .secret_string()
        .expect("a string")
        .to_string()
}

/// Calls the Graph API received with `token` as the bearer token, out of `seen`.
pub fn calls_with(seen: &[graph::Seen], token: &str) -> usize {
    let bearer = format!("Bearer {token}");
    seen.iter()
        .filter(|s| s.authorization.as_deref() == Some(bearer.as_str()))
        .count()
}

/// The Meta app the token-refresh tests exchange tokens with.
pub const APP_ID: &str = "1234567890";
pub const APP_SECRET: &str = "appSECRET0123456789leakcanary";
