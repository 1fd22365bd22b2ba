//! Speed, memory, cold start and cost of the two jobs, printed next to their targets and the
//! Python collector's figures. Nothing here asserts: every figure is printed, and a missed target
//! is printed with the reason.
//!
//! - **Job wall time**: the brands and hashtags jobs (`collect::run`, live HTTP source, folder
//!   sink) against the fake Graph API of `testkit/src/graph.rs` with its latency model
//!   (default 3.3 s per `business_discovery` call, 0.9 s per other call, ±20 %). A timing proxy
//!   in front of it records every call, so each run is printed next to its own lower bound (the
//!   slowest target: its call, or its search + recent_media chain) and next to concurrency 1.
//! - **Peak RSS**: the release `ig-collector` binary under `/usr/bin/time -v`, over HTTP against
//!   the same fake API; and the Lambda binaries' `VmHWM` after their first invocation.
//! - **Cold start**: the release `brands` and `hashtags` binaries driven by a minimal Lambda
//!   Runtime API: process start → first `GET …/invocation/next`, and → first response posted
//!   (S3 is a moto server, the fake Graph API answers at once).
//! - **Flatten and validate throughput**: read back from the `flatten` criterion bench.
//! - **Monthly Lambda cost** from the measured durations.
//!
//! Environment: `BENCH_BD_LATENCY_MS` (3300), `BENCH_OTHER_LATENCY_MS` (900), `BENCH_JITTER`
//! (0.2), `BENCH_COLD_RUNS` (10); `BENCH_COLD_ONLY=1` stops after the cold start, and
//! `BENCH_BINARIES=DIR` measures `DIR/brands` and `DIR/hashtags` (another build of them) there.
//! Run through `scripts/bench.sh`; see BENCHMARKS.md.

use testkit::runtime;
use testkit::s3;
use testkit::{graph, root};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use ig_collector::collect::{run, Job};
use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
use ig_collector::setup::{build, Choice, Env};
use serde_json::{json, Value};

use graph::{FakeGraph, Latency};

use testkit::{CALLER_ID, TOKEN};

// The targets and the Python collector's figures.
const PYTHON_BRANDS_S: f64 = 36.0;
const PYTHON_HASHTAGS_S: f64 = 19.0;
const HASHTAGS_TARGET_S: f64 = 1.5;
const RSS_TARGET_MIB: f64 = 32.0;
const COLD_NEXT_TARGET_MS: f64 = 30.0;
const FLATTEN_TARGET: f64 = 0.5;

// Lambda arm64 prices and the schedule.
const PRICE_PER_GB_S: f64 = 0.0000133334;
const PRICE_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
const MEMORY_MB: f64 = 128.0;
/// Lambda gives one full vCPU at 1,769 MB and a proportional share below.
const FULL_VCPU_MB: f64 = 1769.0;
const DAYS_PER_MONTH: f64 = 30.0;
const BRANDS_RUNS_PER_MONTH: f64 = 24.0 * DAYS_PER_MONTH;
const HASHTAGS_RUNS_PER_MONTH: f64 = 12.0 * 24.0 * DAYS_PER_MONTH;
/// The largest `graph.concurrency` the configuration accepts.
const MAX_CONCURRENCY: usize = 64;
const LAMBDA_TIMEOUT_MAX_S: f64 = 900.0;

#[derive(Debug, Clone, Copy)]
struct Settings {
    latency: Latency,
    cold_runs: usize,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            latency: Latency {
                business_discovery: Duration::from_millis(testkit::env_or::<f64>(
                    "BENCH_BD_LATENCY_MS",
                    3300.0,
                ) as u64),
                other: Duration::from_millis(
                    testkit::env_or::<f64>("BENCH_OTHER_LATENCY_MS", 900.0) as u64,
                ),
                jitter: testkit::env_or::<f64>("BENCH_JITTER", 0.2),
            },
            cold_runs: testkit::env_or::<f64>("BENCH_COLD_RUNS", 10.0).max(1.0) as usize,
        }
    }
}

/// A typical hourly run. The 00:00 UTC brands run also checks the token (`debug_token`) once a
/// day; it is measured on its own.
fn scheduled(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 2, hour, 0, 0)
        .single()
        .expect("a valid time")
}

const TYPICAL_HOUR: u32 = 10;
const DAILY_CHECK_HOUR: u32 = 0;

fn shipped_config(base_url: &str) -> Config {
    let overrides = Overrides {
        graph_api_url: Some(base_url.to_string()),
        ..Overrides::default()
    };
    Config::parse(EMBEDDED, EMBEDDED_NAME, &overrides).expect("the shipped configuration is valid")
}

fn s(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

// ---------------------------------------------------------------------------------------------
// A timing proxy in front of the fake Graph API: it forwards every request and records how long
// the upstream took, so a run can be set next to its slowest call.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    BusinessDiscovery,
    HashtagSearch,
    RecentMedia,
    Other,
}

#[derive(Debug, Clone)]
struct Call {
    kind: CallKind,
    /// The username, the searched hashtag, or the hashtag id.
    key: String,
    took: Duration,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<Call>>,
}

struct TimingProxy {
    state: Arc<ProxyState>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TimingProxy {
    async fn start(upstream: String) -> TimingProxy {
        let state = Arc::new(ProxyState {
            upstream,
            client: reqwest::Client::new(),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(forward).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TimingProxy { state, addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The calls recorded since the last `take`.
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.state.calls.lock().expect("lock"))
    }
}

impl Drop for TimingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
    let uri = req.uri().clone();
    let path = uri.path();
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let (kind, key) = if path.ends_with("/ig_hashtag_search") {
        (
            CallKind::HashtagSearch,
            query.get("q").cloned().unwrap_or_default(),
        )
    } else if let Some(rest) = path.strip_suffix("/recent_media") {
        (
            CallKind::RecentMedia,
            rest.rsplit('/').next().unwrap_or_default().to_string(),
        )
    } else if let Some(user) = query
        .get("fields")
        .and_then(|f| f.strip_prefix("business_discovery.username("))
        .and_then(|r| r.split_once(')'))
        .map(|(u, _)| u.to_string())
    {
        (CallKind::BusinessDiscovery, user)
    } else {
        (CallKind::Other, path.to_string())
    };
    let target = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map(|x| x.as_str()).unwrap_or("/")
    );
    let mut upstream = p.client.request(req.method().clone(), target);
    for (k, v) in req.headers() {
        if k == header::AUTHORIZATION || k == header::USER_AGENT || k == header::CONTENT_TYPE {
            upstream = upstream.header(k, v);
        }
    }
    // `debug_token` is a form POST; every other call is a GET without a body.
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(body) if !body.is_empty() => upstream = upstream.body(body),
        Ok(_) => {}
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
    let started = Instant::now();
    let result = async {
        let r = upstream.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    }
    .await;
    let took = started.elapsed();
    p.calls.lock().expect("lock").push(Call { kind, key, took });
    match result {
        Ok((status, headers, body)) => {
            let mut h = HeaderMap::new();
            for (k, v) in &headers {
                if k != header::CONTENT_LENGTH
                    && k != header::TRANSFER_ENCODING
                    && k != header::CONNECTION
                {
                    h.append(k.clone(), v.clone());
                }
            }
            (status, h, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Job wall time.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// Not a hashtags run.
    NotApplicable,
    Pinned,
    Unpinned,
}

impl Ids {
    fn label(self) -> &'static str {
        match self {
            Ids::NotApplicable => "-",
            Ids::Pinned => "pinned",
            Ids::Unpinned => "unpinned",
        }
    }
}

#[derive(Debug, Clone)]
struct JobRun {
    job: Job,
    ids: Ids,
    concurrency: usize,
    targets: usize,
    /// The scheduled hour: 0 is the daily run with the token check.
    hour: u32,
    wall: Duration,
    /// The slowest target: its call, or the sum of its calls (search + recent_media).
    slowest: Duration,
    calls: usize,
    /// Calls that are not a target's (the daily `debug_token`), with their total time.
    extra_calls: Vec<(String, Duration)>,
    problem: Option<String>,
}

impl JobRun {
    fn label(&self) -> &'static str {
        if self.hour == DAILY_CHECK_HOUR {
            "00:00 UTC"
        } else {
            self.ids.label()
        }
    }

    /// The target's limit for this run.
    fn limit(&self) -> Duration {
        match self.job {
            Job::Brands => self.slowest.mul_f64(1.2) + Duration::from_millis(300),
            Job::Hashtags => Duration::from_secs_f64(HASHTAGS_TARGET_S),
        }
    }

    fn met(&self) -> bool {
        self.problem.is_none() && self.wall <= self.limit()
    }

    fn target_text(&self) -> String {
        match self.job {
            Job::Brands => format!("≤ 1.2 × slowest + 0.3 s = {}", s(self.limit())),
            Job::Hashtags => format!("≤ {HASHTAGS_TARGET_S:.1} s"),
        }
    }

    /// Calls that are not a target's, and why a missed target was missed.
    fn why(&self) -> String {
        if let Some(p) = &self.problem {
            return p.clone();
        }
        let mut why = Vec::new();
        for (path, took) in &self.extra_calls {
            why.push(format!(
                "+ {} for {path} after the target calls (the daily token check)",
                s(*took)
            ));
        }
        if self.met() {
            return why.join("; ");
        }
        if self.concurrency < self.targets {
            why.push(format!(
                "concurrency {} < {} targets: the calls go in {} waves",
                self.concurrency,
                self.targets,
                self.targets.div_ceil(self.concurrency)
            ));
        }
        if self.ids == Ids::Unpinned {
            why.push(
                "two calls in a row per hashtag (ig_hashtag_search, then recent_media): pin hashtag_id"
                    .into(),
            );
        }
        if why.is_empty() {
            why.push(format!(
                "{} above the slowest target",
                s(self.wall.saturating_sub(self.slowest))
            ));
        }
        why.join("; ")
    }
}

async fn run_job(
    proxy: &TimingProxy,
    fake: &FakeGraph,
    job: Job,
    ids: Ids,
    concurrency: usize,
    hour: u32,
) -> JobRun {
    let mut config = shipped_config(&proxy.url());
    config.graph.concurrency = concurrency;
    let mut tag_of_id = HashMap::new();
    for t in &mut config.targets {
        let id = fake.hashtag_id(&t.hashtag);
        tag_of_id.insert(id.clone(), t.hashtag.clone());
        t.hashtag_id = match ids {
            Ids::Pinned => Some(id),
            Ids::Unpinned => None,
            Ids::NotApplicable => t.hashtag_id.clone(),
        };
    }
    let targets = config.targets.len();
    let out = tempfile::tempdir().expect("tempdir");
    let choice = Choice {
        out_dir: Some(out.path().to_path_buf()),
        ..Choice::default()
    };
    // The in-process runs build their app like the CLI does, from an environment of their own.
    let env = Env {
        ig_user_ids: vec![CALLER_ID.to_string()],
        access_tokens: vec![TOKEN.to_string()],
        ..Env::default()
    };
    let app = build(config, &env, &choice, None)
        .await
        .expect("the app builds");
    proxy.take();
    let started = Instant::now();
    let result = run(&app, job, scheduled(hour), None).await;
    let wall = started.elapsed();
    let calls = proxy.take();

    let mut per_target: HashMap<String, Duration> = HashMap::new();
    let mut extra_calls = Vec::new();
    for c in &calls {
        let key = match c.kind {
            CallKind::RecentMedia => tag_of_id.get(&c.key).cloned().unwrap_or(c.key.clone()),
            CallKind::Other => {
                extra_calls.push((c.key.clone(), c.took));
                continue;
            }
            _ => c.key.clone(),
        };
        *per_target.entry(key).or_default() += c.took;
    }
    let slowest = per_target.values().copied().max().unwrap_or_default();
    let problem = match &result {
        Err(e) => Some(format!("the run failed: {e}")),
        Ok(summary) => {
            let v = serde_json::to_value(summary).unwrap_or_default();
            let failed = v["failed_targets"].as_array().map_or(0, Vec::len);
            (failed > 0).then(|| format!("{failed} targets failed: {}", v["failed_targets"]))
        }
    };
    JobRun {
        job,
        ids,
        concurrency,
        targets,
        hour,
        wall,
        slowest,
        calls: calls.len(),
        extra_calls,
        problem,
    }
}

// ---------------------------------------------------------------------------------------------
// Peak RSS of the CLI binary under /usr/bin/time -v.

#[derive(Debug, Clone)]
struct RssRun {
    job: Job,
    concurrency: usize,
    peak_kib: Option<u64>,
    cpu_s: Option<f64>,
    wall: Duration,
    problem: Option<String>,
}

impl RssRun {
    fn mib(&self) -> Option<f64> {
        self.peak_kib.map(|k| k as f64 / 1024.0)
    }
}

/// The shipped configuration file with `graph.concurrency` and pinned hashtag ids replaced.
fn config_file(dir: &Path, fake: &FakeGraph, concurrency: usize) -> PathBuf {
    let mut table: toml::Table = toml::from_str(EMBEDDED).expect("the shipped configuration");
    if let Some(g) = table.get_mut("graph").and_then(toml::Value::as_table_mut) {
        g.insert(
            "concurrency".into(),
            toml::Value::Integer(concurrency as i64),
        );
    }
    if let Some(targets) = table.get_mut("targets").and_then(toml::Value::as_array_mut) {
        for t in targets.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(tag) = t.get("hashtag").and_then(toml::Value::as_str) {
                let id = fake.hashtag_id(tag);
                t.insert("hashtag_id".into(), toml::Value::String(id));
            }
        }
    }
    let path = dir.join(format!("configure-c{concurrency}.toml"));
    std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("write config");
    path
}

async fn cli_rss(graph_url: &str, fake: &FakeGraph, job: Job, concurrency: usize) -> RssRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), fake, concurrency);
    let report = dir.path().join("time.txt");
    let out = dir.path().join("out");
    let started = Instant::now();
    let status = tokio::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_ig-collector"))
        .arg("--config")
        .arg(&config)
        .arg(job.name())
        .arg("--out")
        .arg(&out)
        .arg("--at")
        .arg(scheduled(TYPICAL_HOUR).to_rfc3339())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IG_USER_ID", CALLER_ID)
        .env("IG_ACCESS_TOKEN", TOKEN)
        .env("GRAPH_API_URL", graph_url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let wall = started.elapsed();
    let testkit::TimeReport { peak_kib, cpu_s } = testkit::time_report(&report);
    let problem = match status {
        Err(e) => Some(format!("/usr/bin/time did not start ({e}): install `time`")),
        Ok(st) if !st.success() => Some(format!("exit status {st}")),
        Ok(_) => None,
    };
    RssRun {
        job,
        concurrency,
        peak_kib,
        cpu_s,
        wall,
        problem,
    }
}

// ---------------------------------------------------------------------------------------------
// Cold start: the test suite's Lambda Runtime API (it timestamps the first `next` and each answer).

#[derive(Debug, Clone, Default)]
struct ColdRuns {
    to_next_ms: Vec<f64>,
    to_answer_ms: Vec<f64>,
    peak_kib: Vec<f64>,
    problems: Vec<String>,
}

async fn cold_start(
    binary: &str,
    job: Job,
    graph_url: &str,
    s3: Option<&s3::S3Server>,
    runs: usize,
) -> ColdRuns {
    let mut out = ColdRuns::default();
    for i in 0..runs {
        let event = json!({
            "version": "0",
            "id": format!("bench-{i}"),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": scheduled(TYPICAL_HOUR).to_rfc3339(),
            "region": "eu-west-1",
            "resources": [],
            "detail": {}
        });
        let api = runtime::RuntimeApi::start(vec![event]).await;
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_FUNCTION_NAME", format!("bench-{}", job.name())),
            ("IG_USER_ID", CALLER_ID.to_string()),
            ("IG_ACCESS_TOKEN", TOKEN.to_string()),
            ("GRAPH_API_URL", graph_url.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        if let Some(s3) = s3 {
            // A fresh bucket per run, so that every run does the same work.
            let bucket = format!("bench-cold-{}-{i}", job.name());
            s3.create_bucket(&bucket).await;
            env.extend(s3.env(&bucket));
        }
        let started = Instant::now();
        let function = runtime::Function::spawn(binary, &api, &env);
        let answer = api.outcomes(1).await.into_iter().next();
        let peak = function
            .pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            });
        drop(function.stop());
        match api.first_next() {
            Some(t) => out.to_next_ms.push(ms(t - started)),
            None => out.problems.push("no `next` request within 120 s".into()),
        }
        match answer.map(|o| (o.at, o.result)) {
            Some((t, Ok(_))) if s3.is_some() => {
                out.to_answer_ms.push(ms(t - started));
                if let Some(p) = peak {
                    out.peak_kib.push(p);
                }
            }
            Some((_, Ok(_))) => {}
            Some((_, Err(e))) if s3.is_some() => out.problems.push(format!("{e:?}")),
            // Without S3 the setup fails by design (BUCKET unset): only `next` is measured.
            Some((_, Err(_))) => {}
            None => out.problems.push("no answer within 120 s".into()),
        }
    }
    out
}

/// The cold-start table: per binary, process start → first `next` and → first response, and the
/// peak RSS, median / max.
fn cold_table(r: &mut String, settings: &Settings, moto: bool, cold: &[(Job, ColdRuns)]) {
    let _ = writeln!(
        r,
        "\n== Cold start: release Lambda binaries, minimal Runtime API, {} runs each{}",
        settings.cold_runs,
        if moto {
            ", S3 = moto server, Graph answers at once"
        } else {
            " (moto missing: no S3, BUCKET unset, so only `next` is measured)"
        }
    );
    let _ = writeln!(
        r,
        "{:<9} {:>19} {:>19} {:>19}  {:<9} {:<7} note",
        "binary", "→ first next", "→ first response", "VmHWM after", "target", ""
    );
    for (job, c) in cold {
        let met = c.problems.is_empty()
            && !c.to_next_ms.is_empty()
            && median(&c.to_next_ms) <= COLD_NEXT_TARGET_MS;
        let pair = |v: &[f64], unit: &str, scale: f64| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.1} / {:.1} {unit}", median(v) / scale, max(v) / scale)
            }
        };
        let _ = writeln!(
            r,
            "{:<9} {:>19} {:>19} {:>19}  {:<9} {:<7} {}",
            job.name(),
            pair(&c.to_next_ms, "ms", 1.0),
            pair(&c.to_answer_ms, "ms", 1.0),
            pair(&c.peak_kib, "MiB", 1024.0),
            format!("≤ {COLD_NEXT_TARGET_MS:.0} ms"),
            verdict(met),
            c.problems.first().cloned().unwrap_or_default()
        );
    }
    let _ = writeln!(
        r,
        "(median / max; target on the median of process start → first `next`)"
    );
}

fn moto_available() -> bool {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    std::process::Command::new(python)
        .args(["-c", "import moto.server, flask, flask_cors"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// Flatten and validate: the criterion results of the `flatten` bench.

#[derive(Debug, Clone)]
struct Throughput {
    group: &'static str,
    parse_mb_s: f64,
    full_mb_s: f64,
    flatten_only_mb_s: f64,
}

impl Throughput {
    fn ratio(&self) -> f64 {
        self.full_mb_s / self.parse_mb_s
    }
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    // target/release/ig-collector → target/criterion
    Path::new(env!("CARGO_BIN_EXE_ig-collector"))
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("criterion"))
        .unwrap_or_else(|| root().join("target/criterion"))
}

/// Mean time of one criterion benchmark, in nanoseconds per iteration.
fn criterion_mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

/// MB/s of one criterion benchmark: its throughput in bytes over its mean time.
fn criterion_mb_s(group: &str, bench: &str) -> Option<f64> {
    let dir = criterion_dir().join(group).join(bench).join("new");
    let estimates: Value =
        serde_json::from_slice(&std::fs::read(dir.join("estimates.json")).ok()?).ok()?;
    let benchmark: Value =
        serde_json::from_slice(&std::fs::read(dir.join("benchmark.json")).ok()?).ok()?;
    let ns = estimates["mean"]["point_estimate"].as_f64()?;
    let bytes = benchmark["throughput"]["Bytes"].as_f64()?;
    Some(bytes / (ns * 1e-9) / 1e6)
}

fn throughputs() -> Vec<Throughput> {
    ["flatten_brands", "flatten_hashtags"]
        .into_iter()
        .filter_map(|group| {
            Some(Throughput {
                group,
                parse_mb_s: criterion_mb_s(group, "parse")?,
                full_mb_s: criterion_mb_s(group, "parse_flatten_validate")?,
                flatten_only_mb_s: criterion_mb_s(group, "flatten_validate")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Cost.

/// (GB-seconds, dollars) per month for `runs` invocations of `seconds` each at 128 MB.
fn monthly(runs: f64, seconds: f64) -> (f64, f64) {
    let billed = (seconds * 1000.0).ceil() / 1000.0;
    let gb_s = runs * billed * MEMORY_MB / 1024.0;
    (gb_s, gb_s * PRICE_PER_GB_S + runs * PRICE_PER_REQUEST)
}

struct CostRow {
    scenario: String,
    brands_s: f64,
    hashtags_s: f64,
}

impl CostRow {
    fn line(&self) -> String {
        let (bg, bd) = monthly(BRANDS_RUNS_PER_MONTH, self.brands_s);
        let (hg, hd) = monthly(HASHTAGS_RUNS_PER_MONTH, self.hashtags_s);
        let mut flag = String::new();
        if self.brands_s.max(self.hashtags_s) > LAMBDA_TIMEOUT_MAX_S {
            flag = "  (over Lambda's 900 s limit)".into();
        }
        format!(
            "{:<58} {:>9.2} {:>9.2} {:>11.0} {:>9.4} {:>11.0} {:>9.4} {:>11.0} {:>9.4}{flag}",
            self.scenario,
            self.brands_s,
            self.hashtags_s,
            bg,
            bd,
            hg,
            hd,
            bg + hg,
            bd + hd
        )
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(figures(settings));
    println!("{report}");
    let path = criterion_dir()
        .parent()
        .map(|t| t.join("bench-figures.txt"))
        .unwrap_or_else(|| PathBuf::from("bench-figures.txt"));
    if std::fs::write(&path, &report).is_ok() {
        println!("(also written to {})", path.display());
    }
}

async fn figures(settings: Settings) -> String {
    let replay = root().join("fixtures/replay");
    let lat = settings.latency;
    let shipped = shipped_config("http://127.0.0.1").graph.concurrency;
    let n = shipped_config("http://127.0.0.1").targets.len();
    let mut r = String::new();

    // Cold start first, on a quiet process.
    eprintln!("cold start: {} runs per binary…", settings.cold_runs);
    let instant_graph = FakeGraph::start(TOKEN, &replay).await;
    let moto = moto_available();
    let s3 = if moto {
        Some(tokio::task::block_in_place(s3::S3Server::start))
    } else {
        None
    };
    let mut cold = Vec::new();
    // BENCH_BINARIES=DIR measures DIR/brands and DIR/hashtags instead (another build of them).
    let other = std::env::var("BENCH_BINARIES").ok().map(PathBuf::from);
    for (job, binary) in [
        (Job::Brands, env!("CARGO_BIN_EXE_brands")),
        (Job::Hashtags, env!("CARGO_BIN_EXE_hashtags")),
    ] {
        let binary = match &other {
            Some(dir) => dir.join(job.name()).display().to_string(),
            None => binary.to_string(),
        };
        let runs = cold_start(
            &binary,
            job,
            &instant_graph.url(),
            s3.as_ref(),
            settings.cold_runs,
        )
        .await;
        cold.push((job, runs));
    }
    drop(s3);
    if std::env::var_os("BENCH_COLD_ONLY").is_some() {
        if let Some(dir) = &other {
            let _ = writeln!(r, "binaries: {}", dir.display());
        }
        cold_table(&mut r, &settings, moto, &cold);
        return r;
    }

    // Job wall time against the latency model, through the timing proxy.
    let fake = FakeGraph::start(TOKEN, &replay).await;
    fake.set_latency(lat);
    let proxy = TimingProxy::start(fake.url()).await;
    let mut levels = vec![1, shipped, n];
    levels.sort_unstable();
    levels.dedup();
    let mut runs = Vec::new();
    for (job, ids) in [
        (Job::Brands, Ids::NotApplicable),
        (Job::Hashtags, Ids::Pinned),
        (Job::Hashtags, Ids::Unpinned),
    ] {
        for &c in &levels {
            eprintln!("{} ({}) at concurrency {c}…", job.name(), ids.label());
            runs.push(run_job(&proxy, &fake, job, ids, c, TYPICAL_HOUR).await);
        }
    }
    eprintln!("brands at concurrency {n}, 00:00 UTC (daily token check)…");
    let daily = run_job(
        &proxy,
        &fake,
        Job::Brands,
        Ids::NotApplicable,
        n,
        DAILY_CHECK_HOUR,
    )
    .await;

    // Peak RSS of the CLI binary, over HTTP against the same latency model.
    let mut rss = Vec::new();
    for job in [Job::Brands, Job::Hashtags] {
        for c in [shipped, n] {
            eprintln!("peak RSS: ig-collector {} at concurrency {c}…", job.name());
            rss.push(cli_rss(&proxy.url(), &fake, job, c).await);
        }
    }
    proxy.take();

    let flat = throughputs();

    // ---- report
    let _ = writeln!(
        r,
        "\n== Job wall time: fake Graph API, business_discovery {} / other calls {} ± {:.0} %, {n} targets, shipped concurrency {shipped}",
        s(lat.business_discovery),
        s(lat.other),
        lat.jitter * 100.0
    );
    let _ = writeln!(
        r,
        "{:<9} {:<9} {:>5} {:>9} {:>9} {:>9} {:>9} {:>6}  {:<32} {:<7} note",
        "job", "ids", "conc", "wall", "slowest", "÷slowest", "c1÷this", "calls", "target", ""
    );
    for run in runs.iter().chain(std::iter::once(&daily)) {
        let c1 = runs
            .iter()
            .find(|x| x.job == run.job && x.ids == run.ids && x.concurrency == 1)
            .map(|x| x.wall.as_secs_f64() / run.wall.as_secs_f64())
            .unwrap_or(f64::NAN);
        let conc = if run.concurrency == shipped {
            format!("{}*", run.concurrency)
        } else {
            run.concurrency.to_string()
        };
        let _ = writeln!(
            r,
            "{:<9} {:<9} {:>5} {:>9} {:>9} {:>9.2} {:>9.2} {:>6}  {:<32} {:<7} {}",
            run.job.name(),
            run.label(),
            conc,
            s(run.wall),
            s(run.slowest),
            run.wall.as_secs_f64() / run.slowest.as_secs_f64(),
            c1,
            run.calls,
            run.target_text(),
            verdict(run.met()),
            run.why()
        );
    }
    let _ = writeln!(r, "(* shipped default; runs scheduled at {TYPICAL_HOUR:02}:00 UTC unless marked 00:00 UTC; slowest = the slowest target's own call time in that run, search + recent_media for unpinned hashtags; c1÷this = speed-up over concurrency 1)");

    let _ = writeln!(r, "\n== Peak RSS: release ig-collector under /usr/bin/time -v, live HTTP path (fake Graph API with the latency model), folder output");
    let _ = writeln!(
        r,
        "{:<9} {:>5} {:>10} {:>9} {:>9}  {:<10} {:<7} note",
        "job", "conc", "peak RSS", "CPU", "wall", "target", ""
    );
    for x in &rss {
        let met = x.problem.is_none() && x.mib().is_some_and(|m| m <= RSS_TARGET_MIB);
        let _ = writeln!(
            r,
            "{:<9} {:>5} {:>10} {:>9} {:>9}  {:<10} {:<7} {}",
            x.job.name(),
            x.concurrency,
            x.mib().map_or("n/a".into(), |m| format!("{m:.1} MiB")),
            x.cpu_s.map_or("n/a".into(), |c| format!("{c:.2} s")),
            s(x.wall),
            format!("≤ {RSS_TARGET_MIB:.0} MiB"),
            verdict(met),
            x.problem.clone().unwrap_or_default()
        );
    }

    cold_table(&mut r, &settings, moto, &cold);

    let _ = writeln!(
        r,
        "\n== Flatten and validate (criterion, `flatten` bench, fixtures/replay bodies)"
    );
    if flat.is_empty() {
        let _ = writeln!(
            r,
            "no criterion results under {}: run `cargo bench --bench flatten` first",
            criterion_dir().display()
        );
    } else {
        let _ = writeln!(
            r,
            "{:<17} {:>12} {:>24} {:>18} {:>8}  {:<7} {:<7}",
            "group", "parse", "parse+flatten+validate", "flatten+validate", "ratio", "target", ""
        );
        for t in &flat {
            let _ = writeln!(
                r,
                "{:<17} {:>7.1} MB/s {:>19.1} MB/s {:>13.1} MB/s {:>7.0}%  {:<7} {:<7}",
                t.group,
                t.parse_mb_s,
                t.full_mb_s,
                t.flatten_only_mb_s,
                t.ratio() * 100.0,
                "≥ 50%",
                verdict(t.ratio() >= FLATTEN_TARGET)
            );
        }
        let _ = writeln!(r, "(ratio = parse+flatten+validate ÷ parse throughput)");
        let whole = criterion_mean_ns("flatten_brands", "flatten_validate");
        for (bench, what) in [
            (
                "url_checks",
                "URL checks (profile_picture_url, media_url, permalink)",
            ),
            ("timestamp_checks", "timestamp checks"),
        ] {
            if let (Some(part), Some(whole)) = (criterion_mean_ns("validate_parts", bench), whole) {
                let _ = writeln!(
                    r,
                    "brands: {what} take {:.0}% of flatten+validate ({:.2} of {:.2} ms per pass over the 11 bodies)",
                    part / whole * 100.0,
                    part / 1e6,
                    whole / 1e6
                );
            }
        }
    }

    // ---- cost
    let wall_of = |job: Job, ids: Ids, c: usize| {
        runs.iter()
            .find(|x| x.job == job && x.ids == ids && x.concurrency == c)
            .map(|x| x.wall.as_secs_f64())
            .unwrap_or(f64::NAN)
    };
    let cpu_of = |job: Job| {
        rss.iter()
            .find(|x| x.job == job && x.concurrency == n)
            .and_then(|x| x.cpu_s)
            .unwrap_or(0.0)
    };
    let init_s = cold
        .iter()
        .find(|(j, _)| *j == Job::Brands)
        .map(|(_, c)| median(&c.to_next_ms) / 1000.0)
        .filter(|v| v.is_finite())
        .unwrap_or(0.0);
    let slowdown = FULL_VCPU_MB / MEMORY_MB - 1.0;
    let mut rows = vec![
        CostRow {
            scenario: format!("11 targets, concurrency {shipped} (shipped)"),
            brands_s: init_s + wall_of(Job::Brands, Ids::NotApplicable, shipped),
            hashtags_s: wall_of(Job::Hashtags, Ids::Pinned, shipped),
        },
        CostRow {
            scenario: format!("11 targets, concurrency {n}"),
            brands_s: init_s + wall_of(Job::Brands, Ids::NotApplicable, n),
            hashtags_s: wall_of(Job::Hashtags, Ids::Pinned, n),
        },
        CostRow {
            scenario: format!("11 targets, concurrency {n}, CPU at 128 MB share"),
            brands_s: init_s
                + wall_of(Job::Brands, Ids::NotApplicable, n)
                + cpu_of(Job::Brands) * slowdown,
            hashtags_s: wall_of(Job::Hashtags, Ids::Pinned, n) + cpu_of(Job::Hashtags) * slowdown,
        },
    ];
    let scale = |job: Job, ids: Ids, c: usize| {
        // ceil(1000 / c) waves, each as long as one measured wave of n targets at concurrency n;
        // plus the CPU of 1,000 targets at the 128 MB CPU share.
        let waves = 1000usize.div_ceil(c) as f64;
        (
            waves,
            waves * wall_of(job, ids, n),
            cpu_of(job) * 1000.0 / n as f64,
        )
    };
    for c in [n, MAX_CONCURRENCY] {
        let (_, b, bcpu) = scale(Job::Brands, Ids::NotApplicable, c);
        let (_, h, hcpu) = scale(Job::Hashtags, Ids::Pinned, c);
        rows.push(CostRow {
            scenario: format!("1,000 targets, concurrency {c} (model)"),
            brands_s: init_s + b,
            hashtags_s: h,
        });
        rows.push(CostRow {
            scenario: format!("1,000 targets, concurrency {c} (model), CPU at 128 MB share"),
            brands_s: init_s + b + bcpu * slowdown,
            hashtags_s: h + hcpu * slowdown,
        });
    }
    rows.push(CostRow {
        scenario: "Python collector (36 s / 19 s), at 128 MB for comparison".into(),
        brands_s: PYTHON_BRANDS_S,
        hashtags_s: PYTHON_HASHTAGS_S,
    });
    let _ = writeln!(
        r,
        "\n== Monthly Lambda cost at {MEMORY_MB:.0} MB arm64 (${PRICE_PER_GB_S}/GB-s, $0.20/1M requests, no free tier), {DAYS_PER_MONTH:.0}-day month: brands {BRANDS_RUNS_PER_MONTH:.0} runs (hourly), hashtags {HASHTAGS_RUNS_PER_MONTH:.0} runs (every 5 min)"
    );
    let _ = writeln!(
        r,
        "{:<58} {:>9} {:>9} {:>11} {:>9} {:>11} {:>9} {:>11} {:>9}",
        "scenario",
        "brands s",
        "hasht. s",
        "brands GB-s",
        "brands $",
        "hasht. GB-s",
        "hasht. $",
        "total GB-s",
        "total $"
    );
    for row in &rows {
        let _ = writeln!(r, "{}", row.line());
    }
    let _ = writeln!(
        r,
        "(brands: every hourly run is billed as a cold start: + {:.0} ms init; hashtags: warm, pinned ids. \"CPU at 128 MB share\" adds the measured CPU time × {slowdown:.1}, as if none of it overlapped the network waits: an upper bound)",
        init_s * 1000.0
    );

    // ---- summary
    let _ = writeln!(r, "\n== Summary");
    let _ = writeln!(
        r,
        "{:<44} {:>16} {:>26} {:>10}  {:<7}",
        "figure", "measured", "target", "Python", ""
    );
    let mut line =
        |what: String, measured: String, target: String, python: &str, met: Option<bool>| {
            let _ = writeln!(
                r,
                "{what:<44} {measured:>16} {target:>26} {python:>10}  {:<7}",
                met.map_or("", verdict)
            );
        };
    for run in runs
        .iter()
        .filter(|x| x.concurrency != 1)
        .chain(std::iter::once(&daily))
    {
        let python = match run.job {
            Job::Brands => format!("{PYTHON_BRANDS_S:.0} s"),
            Job::Hashtags => format!("{PYTHON_HASHTAGS_S:.0} s"),
        };
        let ids = match run.ids {
            _ if run.hour == DAILY_CHECK_HOUR => ", 00:00 UTC run".to_string(),
            Ids::NotApplicable => String::new(),
            other => format!(", {} ids", other.label()),
        };
        line(
            format!(
                "{} wall, concurrency {}{ids}",
                run.job.name(),
                run.concurrency
            ),
            s(run.wall),
            run.target_text(),
            &python,
            Some(run.met()),
        );
    }
    for x in &rss {
        line(
            format!("{} peak RSS, concurrency {}", x.job.name(), x.concurrency),
            x.mib().map_or("n/a".into(), |m| format!("{m:.1} MiB")),
            format!("≤ {RSS_TARGET_MIB:.0} MiB"),
            "-",
            Some(x.problem.is_none() && x.mib().is_some_and(|m| m <= RSS_TARGET_MIB)),
        );
    }
    for (job, c) in &cold {
        let m = median(&c.to_next_ms);
        line(
            format!("{} cold start → first next (median)", job.name()),
            format!("{m:.1} ms"),
            format!("≤ {COLD_NEXT_TARGET_MS:.0} ms"),
            "-",
            Some(c.problems.is_empty() && m <= COLD_NEXT_TARGET_MS),
        );
    }
    for t in &flat {
        line(
            format!("{} ÷ parse", t.group),
            format!("{:.0}%", t.ratio() * 100.0),
            "≥ 50%".into(),
            "-",
            Some(t.ratio() >= FLATTEN_TARGET),
        );
    }
    if let (Some(first), Some(python)) = (rows.get(1), rows.last()) {
        let (_, d) = monthly(BRANDS_RUNS_PER_MONTH, first.brands_s);
        let (_, h) = monthly(HASHTAGS_RUNS_PER_MONTH, first.hashtags_s);
        let (_, pd) = monthly(BRANDS_RUNS_PER_MONTH, python.brands_s);
        let (_, ph) = monthly(HASHTAGS_RUNS_PER_MONTH, python.hashtags_s);
        line(
            format!("monthly cost, 11 targets, concurrency {n}"),
            format!("${:.4}", d + h),
            "-".into(),
            &format!("${:.4}", pd + ph),
            None,
        );
    }
    r
}
