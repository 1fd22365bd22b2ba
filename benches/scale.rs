//! One brands run at N accounts: wall time, peak RSS, Graph calls, records, and the monthly
//! Lambda cost at the shipped memory size. Nothing is asserted; the table is printed (and written
//! to `target/bench-scale.txt`).
//!
//! The fake Graph API of `testkit` serves N synthetic accounts, each answer one of the recorded
//! `business_discovery` bodies (25 media) with ids of its own, after 3.3 s ± 20 % divided by the
//! time scale. Each N is one run of the release `ig-collector` binary under `/usr/bin/time -v`
//! (peak RSS), live HTTP path, folder output, with a generated configuration file (the shipped
//! one with N targets). Wall times are also printed × the time scale: the run at the real
//! latency, since the run's time is its waves of calls.
//!
//! Environment: `SCALE_NS` (`11,110,1100,11000`), `SCALE_TIME_SCALE` (10),
//! `SCALE_CONCURRENCY` (the shipped `graph.concurrency`), `SCALE_BD_LATENCY_MS` (3300),
//! `SCALE_JITTER` (0.2), `SCALE_BINARY` (another `ig-collector` to measure, for a before/after).
//! Run through `scripts/scale-report.sh`; see BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
use serde_json::Value;
use testkit::graph::{synthetic_user_id, synthetic_username, FakeGraph, Latency};
use testkit::{replay_dir, CALLER_ID, TOKEN};

// Lambda arm64 prices, the shipped memory size, and the brands schedule.
const PRICE_PER_GB_S: f64 = 0.0000133334;
const PRICE_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
const MEMORY_MB: f64 = 128.0;
const BRANDS_RUNS_PER_MONTH: f64 = 720.0;
const LAMBDA_TIMEOUT_MAX_S: f64 = 900.0;
/// The goal for one brands run's peak RSS at 1,100 accounts.
const RSS_GOAL_MIB: f64 = 64.0;
/// The largest `budget.calls_per_hour_per_credential` the configuration accepts: the bench's
/// accounts are far over one real credential's budget, which is not what it measures.
const BENCH_CALLS_PER_CREDENTIAL: i64 = 100_000;

fn ns_from_env() -> Vec<usize> {
    let text = std::env::var("SCALE_NS").unwrap_or_else(|_| "11,110,1100,11000".into());
    text.split(',')
        .filter_map(|n| n.trim().replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .collect()
}

/// The shipped configuration with `n` synthetic targets and the given concurrency.
fn config_text(n: usize, concurrency: usize) -> String {
    let mut table: toml::Table = toml::from_str(EMBEDDED).expect("the shipped configuration");
    if let Some(g) = table.get_mut("graph").and_then(toml::Value::as_table_mut) {
        g.insert(
            "concurrency".into(),
            toml::Value::Integer(concurrency as i64),
        );
    }
    if let Some(b) = table.get_mut("budget").and_then(toml::Value::as_table_mut) {
        b.insert(
            "calls_per_hour_per_credential".into(),
            toml::Value::Integer(BENCH_CALLS_PER_CREDENTIAL),
        );
    }
    let targets = (0..n)
        .map(|i| {
            let mut t = toml::Table::new();
            t.insert("username".into(), synthetic_username(i).into());
            t.insert("user_id".into(), synthetic_user_id(i).into());
            // Brand accounts only: the brands job is what is measured, and an account needs no
            // hashtag (the API's 30 hashtags per credential would otherwise set the credentials).
            t.insert("hashtag".into(), "".into());
            t.insert("hashtag_id".into(), "".into());
            toml::Value::Table(t)
        })
        .collect();
    table.insert("targets".into(), toml::Value::Array(targets));
    toml::to_string(&table).expect("TOML")
}

/// The credentials of the bench: the kit's, then more of the same kind, each accepted by the fake.
fn credential(k: usize) -> (String, String) {
    match k {
        0 => (CALLER_ID.to_string(), TOKEN.to_string()),
        k => (
            format!("{}", 17_841_400_000_000_000u64 + k as u64),
            format!("EAAGbenchTOKEN{k:04}scale"),
        ),
    }
}

#[derive(Debug, Clone, Default)]
struct Measured {
    n: usize,
    wall: Duration,
    peak_kib: Option<u64>,
    cpu_s: Option<f64>,
    calls: Option<u64>,
    records: Option<u64>,
    failed_targets: Option<usize>,
    /// Bytes of the media object.
    media_bytes: Option<u64>,
    problem: Option<String>,
}

impl Measured {
    fn mib(&self) -> Option<f64> {
        self.peak_kib.map(|k| k as f64 / 1024.0)
    }
}

async fn run_one(
    binary: &Path,
    fake: &FakeGraph,
    n: usize,
    concurrency: usize,
    credentials: usize,
) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join(format!("configure-{n}.toml"));
    std::fs::write(&config, config_text(n, concurrency)).expect("write config");
    let report = dir.path().join("time.txt");
    let out = dir.path().join("out");
    let (ids, tokens): (Vec<String>, Vec<String>) = (0..credentials).map(credential).unzip();
    for t in &tokens {
        fake.allow_token(t);
    }
    let started = Instant::now();
    let output = tokio::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(binary)
        .arg("--config")
        .arg(&config)
        .arg("brands")
        .arg("--out")
        .arg(&out)
        .arg("--at")
        .arg("2023-09-02T10:00:00Z")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", dir.path())
        .env("IG_USER_ID", ids.join(","))
        .env("IG_ACCESS_TOKEN", tokens.join(","))
        .env("GRAPH_API_URL", fake.url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await;
    let wall = started.elapsed();
    let time = testkit::time_report(&report);
    let mut m = Measured {
        n,
        wall,
        peak_kib: time.peak_kib,
        cpu_s: time.cpu_s,
        ..Measured::default()
    };
    match output {
        Err(e) => m.problem = Some(format!("/usr/bin/time did not start ({e}): install `time`")),
        Ok(o) => {
            let summary: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            m.calls = summary["graph"]["calls"].as_u64();
            m.records = summary["records"]
                .as_object()
                .map(|r| r.values().filter_map(Value::as_u64).sum());
            m.failed_targets = summary["failed_targets"].as_array().map(Vec::len);
            if !o.status.success() {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let last = stderr.lines().last().unwrap_or_default();
                m.problem = Some(format!("exit status {}: {last}", o.status));
            }
        }
    }
    m.media_bytes = std::fs::read_dir(out.join("raw/media_2023-09-02"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .and_then(|e| e.metadata().ok())
        .map(|md| md.len());
    m
}

/// Dollars a month for `runs` invocations of `seconds` each at 128 MB.
fn monthly(seconds: f64) -> f64 {
    let billed = (seconds * 1000.0).ceil() / 1000.0;
    BRANDS_RUNS_PER_MONTH * (billed * MEMORY_MB / 1024.0 * PRICE_PER_GB_S + PRICE_PER_REQUEST)
}

fn binary() -> PathBuf {
    std::env::var_os("SCALE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ig-collector")))
}

async fn scale() -> String {
    let ns = ns_from_env();
    let time_scale = testkit::env_or::<f64>("SCALE_TIME_SCALE", 10.0).max(1.0);
    let shipped = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default())
        .expect("the shipped configuration is valid")
        .graph
        .concurrency;
    let concurrency =
        testkit::env_or::<f64>("SCALE_CONCURRENCY", shipped as f64).clamp(1.0, 64.0) as usize;
    let bd =
        Duration::from_secs_f64(testkit::env_or::<f64>("SCALE_BD_LATENCY_MS", 3300.0) / 1000.0);
    let jitter = testkit::env_or::<f64>("SCALE_JITTER", 0.2);
    let binary = binary();

    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    fake.add_synthetic_accounts(ns.iter().copied().max().unwrap_or(0));
    fake.set_latency(Latency {
        business_discovery: bd.div_f64(time_scale),
        other: Duration::from_millis(900).div_f64(time_scale),
        jitter,
    });

    // One unmeasured small run first, so the first measured one does not pay for a cold cache.
    if let Some(&smallest) = ns.iter().min() {
        run_one(&binary, &fake, smallest.min(11), concurrency, 1).await;
    }
    let mut rows = Vec::new();
    for &n in &ns {
        // Enough credentials for the schedule's hourly calls (brands and hashtags runs) under
        // the bench's per-credential budget; more if the binary still refuses the budget.
        let mut credentials = (n * 13 + 100).div_ceil(BENCH_CALLS_PER_CREDENTIAL as usize);
        eprintln!(
            "brands, {n} accounts, concurrency {concurrency}, {} …",
            binary.display()
        );
        let mut m = run_one(&binary, &fake, n, concurrency, credentials).await;
        while m.problem.as_deref().is_some_and(|p| p.contains("budget")) && credentials < 64 {
            credentials *= 2;
            m = run_one(&binary, &fake, n, concurrency, credentials).await;
        }
        eprintln!(
            "  {:.1} s, {}",
            m.wall.as_secs_f64(),
            m.mib().map_or("n/a".into(), |v| format!("{v:.1} MiB"))
        );
        // What the state machine would run: the plan of the same configuration.
        let config = ig_collector::config::Config::parse(
            &config_text(n, concurrency),
            "scale bench",
            &ig_collector::config::Overrides::default(),
        );
        let shards = config.map(|c| {
            ig_collector::plan::plan(&c, credentials, ig_collector::collect::Job::Brands)
                .shards
                .len()
        });
        rows.push((m, credentials, shards.ok()));
    }

    let mut r = String::new();
    let _ = writeln!(
        r,
        "\n== Scale: one brands run, release {} under /usr/bin/time -v, live HTTP path, folder output",
        binary.file_name().and_then(|f| f.to_str()).unwrap_or("ig-collector")
    );
    let _ = writeln!(
        r,
        "fake Graph API: N synthetic accounts (recorded bodies, 25 media each), business_discovery {:.0} ms ± {:.0} % (= {:.1} s ÷ time scale {time_scale}), concurrency {concurrency}",
        bd.div_f64(time_scale).as_secs_f64() * 1000.0,
        jitter * 100.0,
        bd.as_secs_f64()
    );
    let _ = writeln!(
        r,
        "{:>7} {:>6} {:>7} {:>9} {:>11} {:>10} {:>8} {:>7} {:>9} {:>10} {:>11} {:>12}  note",
        "N",
        "creds",
        "shards",
        "wall",
        "wall × ts",
        "peak RSS",
        "CPU",
        "calls",
        "records",
        "media obj",
        "$/month",
        "$/acct/month"
    );
    for (m, credentials, shards) in &rows {
        let real = m.wall.as_secs_f64() * time_scale;
        let cost = monthly(real);
        let mut note = m.problem.clone().unwrap_or_default();
        if m.failed_targets.is_some_and(|f| f > 0) {
            note.push_str(&format!(
                " {} targets failed",
                m.failed_targets.unwrap_or(0)
            ));
        }
        if real > LAMBDA_TIMEOUT_MAX_S {
            note.push_str(" over Lambda's 900 s limit");
        }
        if m.mib()
            .is_some_and(|v| v > MEMORY_MB * 1e6 / (1 << 20) as f64)
        {
            note.push_str(" over the 128 MB function");
        }
        let _ = writeln!(
            r,
            "{:>7} {:>6} {:>7} {:>7.1} s {:>9.0} s {:>6.1} MiB {:>6.2} s {:>7} {:>9} {:>7.1} MB {:>11.4} {:>12.6}  {}",
            m.n,
            credentials,
            shards.map_or("n/a".into(), |s| s.to_string()),
            m.wall.as_secs_f64(),
            real,
            m.mib().unwrap_or(f64::NAN),
            m.cpu_s.unwrap_or(f64::NAN),
            m.calls.map_or("n/a".into(), |c| c.to_string()),
            m.records.map_or("n/a".into(), |c| c.to_string()),
            m.media_bytes.map_or(f64::NAN, |b| b as f64 / 1e6),
            cost,
            cost / m.n as f64,
            note.trim()
        );
    }
    let _ = writeln!(
        r,
        "(creds, shards: the credentials given and the plan the state machine would run, one shard = one invocation; wall × ts = the wall time × the time scale, the run at the real latency; $/month = {BRANDS_RUNS_PER_MONTH:.0} brands runs at {MEMORY_MB:.0} MB arm64, ${PRICE_PER_GB_S}/GB-s + $0.20/1M requests, from wall × ts; peak RSS goal at 1,100 accounts: ≤ {RSS_GOAL_MIB:.0} MiB)"
    );
    r
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(scale());
    println!("{report}");
    let path = Path::new(env!("CARGO_BIN_EXE_ig-collector"))
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("bench-scale.txt"))
        .unwrap_or_else(|| PathBuf::from("bench-scale.txt"));
    if std::fs::write(&path, &report).is_ok() {
        println!("(also written to {})", path.display());
    }
}
