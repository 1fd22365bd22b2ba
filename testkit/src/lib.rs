//! The test kit: real servers on 127.0.0.1 that the tests (`tests/it`) and the benchmarks
//! (`benches/`) both use: a fake Graph API that behaves like Meta's, a moto S3 server and a
//! fault-injecting proxy for it, a fake Lambda Runtime API; the fixtures' paths; small helpers.
//! Every server stops when its handle is dropped. Dev-only: nothing here ships.

pub mod graph;
pub mod runtime;
pub mod s3;
pub mod s3proxy;
pub mod sim;

use std::path::PathBuf;

use ig_collector::collect::App;
use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
use ig_collector::graph::{AccessToken, Credentials, Source};
use ig_collector::sink::Sink;
use serde_json::Value;

/// The repository root (this crate sits in `testkit/` inside it).
pub fn root() -> PathBuf {
    let kit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    kit.parent().map(PathBuf::from).unwrap_or(kit)
}

/// The recorded responses shipped for `--replay`.
pub fn replay_dir() -> PathBuf {
    root().join("fixtures/replay")
}

/// The replaced system's real outputs (a copy of the shared samples).
pub fn samples_dir() -> PathBuf {
    root().join("fixtures/samples")
}

pub fn read_json(path: impl Into<PathBuf>) -> Value {
    let path = path.into();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped configuration with the Graph base URL pointed at `base_url` and fast retries.
pub fn config_for(base_url: &str) -> Config {
    let overrides = Overrides {
        graph_api_url: Some(base_url.to_string()),
        ..Overrides::default()
    };
    let mut c =
        Config::parse(EMBEDDED, EMBEDDED_NAME, &overrides).expect("the shipped config is valid");
    c.retry.base_delay = std::time::Duration::from_millis(5);
    c.retry.max_delay = std::time::Duration::from_millis(20);
    c.graph.request_timeout = std::time::Duration::from_secs(5);
    c
}

/// The targets of `n` synthetic accounts (`graph::FakeGraph::add_synthetic_accounts`), each
/// with a pinned hashtag id of its own; every other setting as the shipped targets have it.
pub fn synthetic_targets(n: usize) -> Vec<ig_collector::config::Target> {
    let shipped = config_for("http://127.0.0.1").targets;
    let Some(template) = shipped.first() else {
        return Vec::new();
    };
    // `..template`: any setting a target gains later is taken from the shipped ones.
    #[allow(clippy::needless_update)]
    (0..n)
        .map(|i| ig_collector::config::Target {
            username: graph::synthetic_username(i),
            user_id: graph::synthetic_user_id(i),
            hashtag: format!("synthetic{i}"),
            hashtag_id: Some(format!("{}", 17_843_000_000_000_000u64 + i as u64)),
            ..template.clone()
        })
        .collect()
}

/// A token distinctive enough that finding it anywhere is proof of a leak.
pub const TOKEN: &str = "EAAGsecretTOKEN0123456789leakcanary";
pub const CALLER_ID: &str = "17841400000000000";

/// Credentials of the business account the tests call as.
pub fn credentials(ig_user_id: &str, token: &str) -> Credentials {
    Credentials {
        ig_user_id: ig_user_id.into(),
        token: AccessToken::new(token),
        app_secret: None,
        app_id: None,
    }
}

/// An app calling the fake Graph API at `config`'s base URL with the test token, writing to `sink`.
pub fn live_app(config: Config, sink: Sink) -> App {
    let source = Source::live(&config.graph, vec![credentials(CALLER_ID, TOKEN)]).expect("client");
    App {
        shard: None,
        config,
        source,
        sink,
        clock: ig_collector::schedule::Clock::system(),
    }
}

/// Serves `app` on a free loopback port; the server stops when the returned sender is dropped.
pub async fn serve(app: axum::Router) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    (addr, tx)
}

/// A Lambda function's environment: `storage` (an S3 server's or a proxy's `env`), the test
/// credentials, the fake Graph API at `graph_url`, INFO logs, and a configuration file when given.
pub fn function_env(
    storage: Vec<(String, String)>,
    graph_url: &str,
    config: Option<&std::path::Path>,
) -> Vec<(String, String)> {
    let mut env = storage;
    env.extend(
        [
            ("IG_USER_ID", CALLER_ID.to_string()),
            ("IG_ACCESS_TOKEN", TOKEN.to_string()),
            ("GRAPH_API_URL", graph_url.to_string()),
            ("RUST_LOG", "info".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    if let Some(path) = config {
        env.push(("CONFIG_PATH".into(), path.display().to_string()));
    }
    env
}

/// A time on the replayed day, 2023-09-02, in UTC.
pub fn at(h: u32, m: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2023, 9, 2, h, m, s)
        .single()
        .expect("a valid time")
}

/// What `/usr/bin/time -v` reported for one process: peak RSS (KiB) and CPU time (user +
/// system, seconds), when its report file could be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeReport {
    pub peak_kib: Option<u64>,
    pub cpu_s: Option<f64>,
}

/// Reads the report `/usr/bin/time -v -o path` wrote.
pub fn time_report(path: &std::path::Path) -> TimeReport {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let seconds = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
    TimeReport {
        peak_kib: field("Maximum resident set size (kbytes):").and_then(|v| v.parse().ok()),
        cpu_s: match (
            seconds("User time (seconds):"),
            seconds("System time (seconds):"),
        ) {
            (Some(u), Some(s)) => Some(u + s),
            _ => None,
        },
    }
}

/// A benchmark knob: the environment variable `name` parsed, or `default` when unset or
/// unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
