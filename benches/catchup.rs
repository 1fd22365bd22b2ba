//! Peak memory of the hashtags job at its bounds: a catch-up poll of 200 pages of 50 posts with
//! long captions (a busy hashtag after an outage), and a state at its size bound
//! (`state::MAX_STATE_IDS` known ids). Each is one run of the release `ig-collector` binary
//! under `/usr/bin/time -v` (peak RSS), live HTTP path against the fake Graph API, folder
//! output. Nothing is asserted; the figures are printed next to the 64 MB goal.
//!
//! Environment: `CATCHUP_PAGES` (200), `CATCHUP_CAPTION_BYTES` (2200).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ig_collector::config::EMBEDDED;
use ig_collector::state::{State, TagState, MAX_STATE_IDS};
use serde_json::{json, Value};
use testkit::graph::FakeGraph;
use testkit::{env_or, replay_dir, CALLER_ID, TOKEN};

const GOAL_MIB: f64 = 64.0;

fn scheduled() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 2, 12, 0, 0)
        .single()
        .expect("a time")
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

/// The shipped configuration with hashtag ids pinned and room in the budget for the catch-up.
fn config_file(dir: &Path, fake: &FakeGraph) -> std::path::PathBuf {
    let mut table: toml::Table = toml::from_str(EMBEDDED).expect("the shipped configuration");
    if let Some(b) = table.get_mut("budget").and_then(toml::Value::as_table_mut) {
        b.insert(
            "calls_per_hour_per_credential".into(),
            toml::Value::Integer(1000),
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
    let path = dir.join("configure.toml");
    std::fs::write(&path, toml::to_string(&table).expect("TOML")).expect("write config");
    path
}

/// One `ig-collector hashtags` run over `out`; (peak MiB, seconds, records written).
async fn measure(fake: &FakeGraph, out: &Path) -> (Option<f64>, f64, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), fake);
    let report = dir.path().join("time.txt");
    let started = Instant::now();
    let status = tokio::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_ig-collector"))
        .arg("--config")
        .arg(&config)
        .arg("hashtags")
        .arg("--out")
        .arg(out)
        .arg("--at")
        .arg(scheduled().to_rfc3339())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IG_USER_ID", CALLER_ID)
        .env("IG_ACCESS_TOKEN", TOKEN)
        .env("GRAPH_API_URL", fake.url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        eprintln!("the run failed: {status:?}");
    }
    let peak = testkit::time_report(&report)
        .peak_kib
        .map(|k| k as f64 / 1024.0);
    let written = std::fs::read_dir(out.join("raw"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|f| std::fs::read(f.path()).ok())
        .filter_map(|b| ig_collector::records::parse(&b).ok())
        .map(|r| r.len())
        .sum();
    (peak, seconds, written)
}

fn write_state(out: &Path, state: &State) {
    let path = out.join("state/hashtags.json");
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
    std::fs::write(path, state.to_bytes()).expect("write state");
}

#[tokio::main]
async fn main() {
    let pages: usize = env_or("CATCHUP_PAGES", 200);
    let caption: usize = env_or("CATCHUP_CAPTION_BYTES", 2200);
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let at = scheduled();
    let mut report = String::new();

    // 1. A catch-up: #dior polled an hour ago, its frontier 23 hours back, `pages` × 50 posts
    //    between, each caption `caption` bytes of mixed scripts.
    let text: String = "Été 👜 กระเป๋า Paris\r\n"
        .chars()
        .cycle()
        .take(caption / 2)
        .collect();
    let n = pages * 50;
    let span = Duration::hours(22).num_seconds();
    let posts: Vec<Value> = (0..n)
        .map(|i| {
            let t = at - Duration::seconds(60 + span * i as i64 / n as i64);
            json!({"id": (18_000_000_000_000_000u64 + (n - i) as u64).to_string(), "timestamp": stamp(t),
                   "caption": format!("{text} {i}"), "media_type": "IMAGE", "like_count": 10, "comments_count": 1})
        })
        .collect();
    fake.set_pages("dior", posts.chunks(50).map(<[Value]>::to_vec).collect());
    drop(posts);
    let mut state = State {
        version: 1,
        as_of: Some((at - Duration::hours(1)).to_rfc3339()),
        ..State::default()
    };
    state.hashtags.insert(
        "dior".into(),
        TagState {
            hashtag_id: Some(fake.hashtag_id("dior")),
            complete_to: Some(stamp(at - Duration::hours(23))),
            watermark: Some(stamp(at - Duration::hours(23))),
            tracked_since: Some(stamp(at - Duration::hours(30))),
            polled_at: Some((at - Duration::hours(1)).to_rfc3339()),
            rate_per_hour: Some(400.0),
            behind: true,
            ..TagState::default()
        },
    );
    let out = tempfile::tempdir().expect("tempdir");
    write_state(out.path(), &state);
    let (peak, seconds, written) = measure(&fake, out.path()).await;
    let _ = writeln!(
        report,
        "catch-up of {pages} pages × 50 posts ({caption}-byte captions): {written} records written, peak RSS {} MiB (goal < {GOAL_MIB} MB), {seconds:.1} s",
        peak.map_or("?".into(), |p| format!("{p:.1}"))
    );

    // 2. A state at its bound: MAX_STATE_IDS known ids over 30 hashtags, nothing due.
    let mut full = State {
        version: 1,
        as_of: Some(at.to_rfc3339()),
        ..State::default()
    };
    let per = MAX_STATE_IDS / 30;
    for h in 0..30 {
        let name = if h < 11 {
            ig_collector::config::Config::parse(
                EMBEDDED,
                "configure.toml",
                &ig_collector::config::Overrides::default(),
            )
            .expect("shipped")
            .targets[h]
                .hashtag
                .clone()
        } else {
            format!("extra{h}")
        };
        let known = (0..per)
            .map(|i| {
                (
                    (17_900_000_000_000_000u64 + (h * per + i) as u64).to_string(),
                    stamp(at - Duration::seconds(i as i64)),
                )
            })
            .collect();
        full.hashtags.insert(
            name,
            TagState {
                hashtag_id: Some(format!("{}", 17_843_000_000_000_000u64 + h as u64)),
                watermark: Some(stamp(at)),
                complete_to: Some(stamp(at)),
                polled_at: Some(at.to_rfc3339()),
                rate_per_hour: Some(1.0),
                known,
                ..TagState::default()
            },
        );
    }
    let out = tempfile::tempdir().expect("tempdir");
    write_state(out.path(), &full);
    let bytes = full.to_bytes().len();
    let (peak, seconds, _) = measure(&fake, out.path()).await;
    let _ = writeln!(
        report,
        "a state at its bound ({MAX_STATE_IDS} known ids, {:.1} MB of JSON) read, nothing due, written back: peak RSS {} MiB (goal < {GOAL_MIB} MB), {seconds:.1} s",
        bytes as f64 / 1e6,
        peak.map_or("?".into(), |p| format!("{p:.1}"))
    );
    print!("{report}");
}
