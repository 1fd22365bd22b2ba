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
