//! Capture rate per hashtag and Graph calls per hour over a replayed day of hashtag posts.
//!
//! 1. **Arrival rates** come from the replaced system's two consecutive hashtag runs of
//!    2023-09-02 (00:00:47 and 00:05:47, 25 posts per hashtag; `fixtures/samples` or
//!    `../shared/samples`, else the same pages in `fixtures/replay` and
//!    `fixtures/replay-000547`). Per hashtag: the span of each page's 20 newest timestamps, the
//!    share of ids new after 5 minutes, and the pooled rate used for the feed: the distinct
//!    posts of both pages at or after the first page's 20th newest timestamp, divided by the
//!    time from that timestamp to the second run. The share of *late* posts (new in the second
//!    run but older than the first page's newest post, so not yet visible to the first run) is
//!    pooled over all hashtags.
//! 2. **A synthetic day feed** per hashtag: Poisson arrivals at that rate (fixed seed), each
//!    post visible in the API some lag after its timestamp (most after a few seconds, the late
//!    share after 1 to 20 minutes), listed newest first by timestamp plus up to 30 s of random
//!    lag, so neighbours swap: `recent_media` is not strictly ordered by time.
//! 3. **Our schedule**: a run of the hashtags job every 5 minutes (`collect::run`, live HTTP
//!    source with one credential, folder sink) with the shipped `configure.toml`, hashtag ids
//!    pinned, against the fake Graph API of `tests/it/support/graph.rs`. Before each run every
//!    hashtag's pages are set to what the API shows at that time: the visible posts, newest
//!    first, `hashtag_media_limit` per page, at most `CAPTURE_PAGES` pages.
//! 4. **The replaced behaviour**: the same feed, one page of 25 per run, no paging and no
//!    state (`hashtag_media_limit = 25`, `max_pages = 1`, the state object deleted before each
//!    run), so every run writes its 25 posts again, as the replaced system did.
//! 5. **A tuned schedule**: the shipped settings with every call the hour has left spent on
//!    extra pages (`extra_pages_per_hour` = budget - brands calls - first pages), post ids kept
//!    180 minutes (`known_window_mins`) and the busiest hashtags first in `[[targets]]`, so they
//!    are first in line for a run's extra pages.
//!
//! Printed per hashtag: the posts created during the simulated period and visible by its last
//! run, the distinct ones written, the capture rate, the copies written more than once, the
//! missed posts that were late, and pages per run (mean / max); then Graph calls per hour
//! against the hourly budget left to the hashtags job (one credential, minus the brands calls).
//!
//! Environment: `CAPTURE_HOURS` (24), `CAPTURE_SEED` (20230902), `CAPTURE_RATE_SCALE` (1.0,
//! multiplies every rate), `CAPTURE_PAGES` (10, pages the fake serves); for the tuned schedule
//! `CAPTURE_TUNED_EXTRA_PAGES_PER_HOUR`, `CAPTURE_TUNED_KNOWN_WINDOW_MINS` (180),
//! `CAPTURE_TUNED_MAX_PAGES` and `CAPTURE_TUNED_BUSIEST_FIRST` (1). Run through
//! `scripts/capture-report.sh`.

use testkit::{graph, read_json, root};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use ig_collector::collect::{run, App, Job};
use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
use ig_collector::graph::{AccessToken, Credentials, Source};
use ig_collector::sink::Sink;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use graph::FakeGraph;

use testkit::{CALLER_ID, TOKEN};

/// The replaced system's page size.
const REPLACED_PAGE: usize = 25;
/// Minutes between hashtags runs.
const RUN_EVERY_MINS: i64 = 5;
/// How many of a sample page's newest timestamps the span rate uses (older ones can be stray
/// old posts, e.g. a 17:10 post on a page otherwise from 23:43 to 00:00).
const SPAN_POSTS: usize = 20;
/// A post visible more than this long after its timestamp counts as late.
const LATE_SECS: i64 = 60;
/// Lag of the posts that are not late: exponential with this mean (seconds).
const PROMPT_LAG_MEAN_SECS: f64 = 10.0;
/// Lag of the late posts: uniform in this range (seconds).
const LATE_LAG_SECS: (f64, f64) = (60.0, 1200.0);
/// Listing order: timestamp plus a uniform random lag up to this (seconds).
const ORDER_JITTER_SECS: f64 = 30.0;
/// Posts generated before the first run, so its pages are full.
const PREHISTORY_MINS: i64 = 180;
/// The late share used when the samples show none.
const DEFAULT_LATE_SHARE: f64 = 0.05;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 2, h, m, s)
        .single()
        .expect("a valid time")
}

fn parse_ts(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .map(|t| t.timestamp())
}

fn format_ts(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. Arrival rates from the two sample runs.

/// One hashtag's two sample pages: (media id, timestamp) in the order the API gave them.
struct SamplePages {
    tag: String,
    first: Vec<(String, i64)>,
    second: Vec<(String, i64)>,
}

/// The sample pages per hashtag (config order) and where they came from.
fn load_samples(config: &Config) -> (String, Vec<SamplePages>) {
    let pairs = |records: &Value, id: &str, ts: &str| -> Vec<(Option<String>, String, i64)> {
        records
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|r| {
                let owner = r.get("user_id").and_then(Value::as_str).map(str::to_string);
                let media = r.get(id).and_then(Value::as_str)?.to_string();
                let t = parse_ts(r.get(ts).and_then(Value::as_str)?)?;
                Some((owner, media, t))
            })
            .collect()
    };
    for dir in ["fixtures/samples", "../shared/samples"] {
        let folder = format!("{dir}/media_hashtag_2023-09-02");
        let files = [
            root()
                .join(&folder)
                .join("media_hashtag_2023-09-02_000047.json"),
            root()
                .join(&folder)
                .join("media_hashtag_2023-09-02_000547.json"),
        ];
        if !files.iter().all(|f| f.is_file()) {
            continue;
        }
        let runs: Vec<Vec<(Option<String>, String, i64)>> = files
            .iter()
            .map(|f| pairs(&read_json(f), "media_id", "timestamp"))
            .collect();
        let of = |run: &[(Option<String>, String, i64)], user: &str| {
            run.iter()
                .filter(|(o, _, _)| o.as_deref() == Some(user))
                .map(|(_, id, t)| (id.clone(), *t))
                .collect::<Vec<_>>()
        };
        let pages = config
            .targets
            .iter()
            .map(|t| SamplePages {
                tag: t.hashtag.clone(),
                first: of(&runs[0], &t.user_id),
                second: of(&runs[1], &t.user_id),
            })
            .collect();
        return (format!("{folder} (000047, 000547)"), pages);
    }
    let page = |dir: &str, tag: &str| {
        let body = read_json(
            root()
                .join(dir)
                .join("hashtags")
                .join(format!("{tag}.json")),
        );
        pairs(&body["data"], "id", "timestamp")
            .into_iter()
            .map(|(_, id, t)| (id, t))
            .collect::<Vec<_>>()
    };
    let pages = config
        .targets
        .iter()
        .map(|t| SamplePages {
            tag: t.hashtag.clone(),
            first: page("fixtures/replay", &t.hashtag),
            second: page("fixtures/replay-000547", &t.hashtag),
        })
        .collect();
    ("fixtures/replay and fixtures/replay-000547".into(), pages)
}

/// A hashtag's rate estimates (posts per minute) and what the samples show.
struct Rate {
    tag: String,
    span_first: f64,
    span_second: f64,
    new_ids: usize,
    late: usize,
    /// Longest lower bound of a late post's lag (seconds).
    late_lag_secs: i64,
    pooled: f64,
}

/// Posts per minute over the span of the `SPAN_POSTS` newest timestamps of a page.
fn span_rate(page: &[(String, i64)]) -> f64 {
    let mut ts: Vec<i64> = page.iter().map(|(_, t)| *t).collect();
    ts.sort_unstable_by(|a, b| b.cmp(a));
    ts.truncate(SPAN_POSTS);
    match (ts.first(), ts.last()) {
        (Some(new), Some(old)) if new > old => (ts.len() - 1) as f64 * 60.0 / (new - old) as f64,
        _ => 0.0,
    }
}

fn derive_rate(s: &SamplePages, first_run: i64, second_run: i64) -> Rate {
    let known: HashSet<&str> = s.first.iter().map(|(id, _)| id.as_str()).collect();
    let newest_first = s.first.iter().map(|(_, t)| *t).max().unwrap_or(first_run);
    let fresh: Vec<i64> = s
        .second
        .iter()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .map(|(_, t)| *t)
        .collect();
    let late: Vec<i64> = fresh
        .iter()
        .copied()
        .filter(|t| *t <= newest_first)
        .collect();
    let mut ts: Vec<i64> = s.first.iter().map(|(_, t)| *t).collect();
    ts.sort_unstable_by(|a, b| b.cmp(a));
    let reference = ts
        .get(SPAN_POSTS - 1)
        .or(ts.last())
        .copied()
        .unwrap_or(first_run);
    let mut distinct: HashMap<&str, i64> = HashMap::new();
    for (id, t) in s.first.iter().chain(&s.second) {
        distinct.insert(id.as_str(), *t);
    }
    let pooled_count = distinct.values().filter(|t| **t >= reference).count();
    let pooled = if second_run > reference {
        pooled_count as f64 * 60.0 / (second_run - reference) as f64
    } else {
        0.0
    };
    Rate {
        tag: s.tag.clone(),
        span_first: span_rate(&s.first),
        span_second: span_rate(&s.second),
        new_ids: fresh.len(),
        late: late.len(),
        late_lag_secs: late.iter().map(|t| first_run - t).max().unwrap_or(0),
        pooled,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The synthetic feed.

#[derive(Debug, Clone, Copy)]
struct Post {
    id: u64,
    /// Creation time (Unix seconds).
    ts: i64,
    /// When the API starts listing it.
    visible: i64,
    /// The listing key: newest first.
    order: i64,
}

/// Poisson arrivals at `per_min` from `start` to `end`, sorted by listing key (oldest first).
fn generate(
    rng: &mut StdRng,
    per_min: f64,
    start: i64,
    end: i64,
    late_share: f64,
    id_base: u64,
) -> Vec<Post> {
    let mut posts = Vec::new();
    if per_min <= 0.0 {
        return posts;
    }
    let mut t = start as f64;
    loop {
        let u: f64 = rng.random();
        t += -(1.0 - u).ln() * 60.0 / per_min;
        if t >= end as f64 {
            break;
        }
        let ts = t as i64;
        let lag = if rng.random::<f64>() < late_share {
            rng.random_range(LATE_LAG_SECS.0..LATE_LAG_SECS.1)
        } else {
            -(1.0 - rng.random::<f64>()).ln() * PROMPT_LAG_MEAN_SECS
        };
        let order = ts + (rng.random::<f64>() * ORDER_JITTER_SECS) as i64;
        posts.push(Post {
            id: id_base + posts.len() as u64,
            ts,
            visible: ts + lag.round() as i64,
            order,
        });
    }
    posts.sort_by_key(|p| (p.order, p.id));
    posts
}

fn post_json(p: &Post, tag: &str) -> Value {
    json!({
        "id": p.id.to_string(),
        "timestamp": format_ts(p.ts),
        "caption": format!("post {} #{tag}", p.id),
        "media_type": "IMAGE",
        "like_count": 0,
        "comments_count": 0,
    })
}

/// What `recent_media` lists at `now`: visible posts, newest first, in pages.
fn pages_at(
    posts: &[Post],
    tag: &str,
    now: i64,
    page_size: usize,
    max_pages: usize,
) -> Vec<Vec<Value>> {
    // Nothing created after `now` is visible, so nothing listed after `now + jitter` either.
    let upto = posts.partition_point(|p| p.order <= now + ORDER_JITTER_SECS as i64);
    let shown: Vec<Value> = posts[..upto]
        .iter()
        .rev()
        .filter(|p| p.visible <= now)
        .take(page_size * max_pages)
        .map(|p| post_json(p, tag))
        .collect();
    if shown.is_empty() {
        return vec![Vec::new()];
    }
    shown.chunks(page_size).map(<[Value]>::to_vec).collect()
}

// ---------------------------------------------------------------------------------------------
// 3, 4. The schedule.

struct Variant {
    name: String,
    page_size: usize,
    /// Keep the state between runs (ours); without it every run starts fresh.
    keep_state: bool,
    tweak: Box<dyn Fn(&mut Config)>,
}

#[derive(Default, Clone)]
struct TagResult {
    existed: usize,
    captured: usize,
    duplicates: usize,
    missed_late: usize,
    pages_sum: u64,
    pages_max: u32,
    runs: u64,
}

struct VariantResult {
    name: String,
    settings: String,
    tags: Vec<(String, TagResult)>,
    calls: u64,
    optional_skipped: u64,
    failed_runs: Vec<String>,
    hours: f64,
    elapsed_s: f64,
}

fn shipped_config(base_url: &str) -> Config {
    let overrides = Overrides {
        graph_api_url: Some(base_url.to_string()),
        ..Overrides::default()
    };
    Config::parse(EMBEDDED, EMBEDDED_NAME, &overrides).expect("the shipped config is valid")
}

struct Schedule {
    first_run: i64,
    runs: i64,
    serve_pages: usize,
    /// Per hashtag (config order): its feed.
    feeds: Vec<(String, Vec<Post>)>,
    /// Per hashtag: the posts that count (created in the period, visible by the last run).
    population: Vec<HashSet<u64>>,
}

async fn simulate(variant: &Variant, schedule: &Schedule) -> VariantResult {
    let fake = FakeGraph::start(TOKEN, &root().join("fixtures/replay")).await;
    let out = tempfile::tempdir().expect("tempdir");
    let mut config = shipped_config(&fake.url());
    for t in &mut config.targets {
        t.hashtag_id = Some(fake.hashtag_id(&t.hashtag));
    }
    (variant.tweak)(&mut config);
    let settings = format!(
        "hashtag_media_limit {}, max_pages {}, extra_pages_per_hour {}, known_window_mins {}, state {}, planned {} of {} calls/h, order {}",
        config.graph.hashtag_media_limit,
        config.hashtags.max_pages,
        config.hashtags.extra_pages_per_hour,
        config.hashtags.known_window.as_secs() / 60,
        if variant.keep_state { "kept" } else { "none" },
        config.budget_use(1).calls_per_hour,
        config.budget_use(1).limit,
        config
            .targets
            .iter()
            .map(|t| t.hashtag.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let source = Source::live(
        &config.graph,
        vec![Credentials {
            ig_user_id: CALLER_ID.into(),
            token: AccessToken::new(TOKEN),
            app_secret: None,
        }],
    )
    .expect("client");
    let state_path = out.path().join(&config.hashtags.state_key);
    // Feeds are indexed in the shipped order; a variant may reorder its targets.
    let feed_of: HashMap<&str, usize> = schedule
        .feeds
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| (tag.as_str(), i))
        .collect();
    let tag_of: HashMap<String, usize> = config
        .targets
        .iter()
        .filter_map(|t| Some((t.user_id.clone(), *feed_of.get(t.hashtag.as_str())?)))
        .collect();
    let app = App {
        config,
        source,
        sink: Sink::Dir(out.path().to_path_buf()),
    };

    let n = schedule.feeds.len();
    let mut written: Vec<HashMap<u64, usize>> = vec![HashMap::new(); n];
    let mut tags: Vec<TagResult> = vec![TagResult::default(); n];
    let mut calls = 0;
    let mut optional_skipped = 0;
    let mut failed_runs = Vec::new();
    let started = Instant::now();
    for k in 0..schedule.runs {
        let now = schedule.first_run + k * RUN_EVERY_MINS * 60;
        for (tag, posts) in &schedule.feeds {
            fake.set_pages(
                tag,
                pages_at(posts, tag, now, variant.page_size, schedule.serve_pages),
            );
        }
        if !variant.keep_state {
            let _ = std::fs::remove_file(&state_path);
        }
        let scheduled = DateTime::from_timestamp(now, 0).expect("time");
        let summary = match run(&app, Job::Hashtags, scheduled, None).await {
            Ok(s) => s,
            Err(e) => {
                failed_runs.push(format!("{scheduled}: {e}"));
                let s = e.summary();
                calls += s.graph.calls;
                continue;
            }
        };
        calls += summary.graph.calls;
        optional_skipped += summary.graph.optional_calls_skipped;
        for (tag, p) in &summary.hashtag_pages {
            if let Some(&i) = feed_of.get(tag.as_str()) {
                tags[i].pages_sum += u64::from(*p);
                tags[i].pages_max = tags[i].pages_max.max(*p);
                tags[i].runs += 1;
            }
        }
        for key in &summary.keys_written {
            for (owner, id) in written_ids(Path::new(key)) {
                if let Some(i) = tag_of.get(&owner) {
                    *written[*i].entry(id).or_default() += 1;
                }
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    for (i, (tag, posts)) in schedule.feeds.iter().enumerate() {
        let population = &schedule.population[i];
        let by_id: HashMap<u64, &Post> = posts.iter().map(|p| (p.id, p)).collect();
        let r = &mut tags[i];
        r.existed = population.len();
        r.captured = population
            .iter()
            .filter(|id| written[i].contains_key(id))
            .count();
        r.duplicates = written[i].values().map(|c| c - 1).sum();
        r.missed_late = population
            .iter()
            .filter(|id| !written[i].contains_key(id))
            .filter(|id| by_id.get(id).is_some_and(|p| p.visible - p.ts > LATE_SECS))
            .count();
        rows.push((tag.clone(), r.clone()));
    }
    VariantResult {
        name: variant.name.clone(),
        settings,
        tags: rows,
        calls,
        optional_skipped,
        failed_runs,
        hours: schedule.runs as f64 * RUN_EVERY_MINS as f64 / 60.0,
        elapsed_s,
    }
}

/// (brand user id, media id) of every record in a written `media_hashtag` object.
fn written_ids(path: &Path) -> Vec<(String, u64)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let records: Vec<Value> = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(a)) => a,
        // One object per line (`ndjson`).
        _ => bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect(),
    };
    records
        .iter()
        .filter_map(|r| {
            Some((
                r.get("user_id")?.as_str()?.to_string(),
                r.get("media_id")?.as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Printing.

fn print_rates(source: &str, rates: &[Rate], late_share: f64, scale: f64) {
    println!("== arrival rates (posts/min) from {source}");
    println!(
        "   span 1/2: {} newest timestamps of the 00:00:47 / 00:05:47 page, (n-1)/span;",
        SPAN_POSTS
    );
    println!("   new/5min: ids of the second page not in the first, per minute (a floor when all 25 are new);");
    println!(
        "   pooled (used): distinct posts of both pages at or after the first page's {}th newest",
        SPAN_POSTS
    );
    println!("   timestamp, over the minutes from it to 00:05:47.");
    println!(
        "{:<13} {:>8} {:>8} {:>9} {:>9} {:>6} {:>10} {:>9}",
        "hashtag", "span 1", "span 2", "new ids", "new/5min", "late", "pooled", "per 5 min"
    );
    for r in rates {
        println!(
            "{:<13} {:>8.2} {:>8.2} {:>6}/25 {:>9.2} {:>6} {:>10.2} {:>9.1}",
            r.tag,
            r.span_first,
            r.span_second,
            r.new_ids,
            r.new_ids as f64 / RUN_EVERY_MINS as f64,
            r.late,
            r.pooled * scale,
            r.pooled * scale * RUN_EVERY_MINS as f64
        );
    }
    let late: usize = rates.iter().map(|r| r.late).sum();
    let new: usize = rates.iter().map(|r| r.new_ids).sum();
    let lag = rates.iter().map(|r| r.late_lag_secs).max().unwrap_or(0);
    println!(
        "late: {late} of {new} new ids of the second run are older than the first page's newest post \
         (visible at least up to {:.1} min after their timestamp): late share {:.1} %",
        lag as f64 / 60.0,
        late_share * 100.0
    );
    if scale != 1.0 {
        println!("rates scaled by CAPTURE_RATE_SCALE = {scale}");
    }
}

fn print_result(v: &VariantResult, budget_for_hashtags: f64) {
    println!();
    println!("== {}  ({})", v.name, v.settings);
    println!(
        "{:<13} {:>8} {:>9} {:>9} {:>11} {:>12} {:>11}",
        "hashtag", "existed", "captured", "capture", "duplicates", "missed late", "pages/run"
    );
    let mut total = TagResult::default();
    for (tag, r) in &v.tags {
        println!(
            "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>6.2} / {}",
            tag,
            r.existed,
            r.captured,
            pct(r.captured, r.existed),
            r.duplicates,
            r.missed_late,
            r.pages_sum as f64 / r.runs.max(1) as f64,
            r.pages_max
        );
        total.existed += r.existed;
        total.captured += r.captured;
        total.duplicates += r.duplicates;
        total.missed_late += r.missed_late;
        total.pages_sum += r.pages_sum;
        total.runs += r.runs;
        total.pages_max = total.pages_max.max(r.pages_max);
    }
    println!(
        "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>6.2} / {}",
        "all",
        total.existed,
        total.captured,
        pct(total.captured, total.existed),
        total.duplicates,
        total.missed_late,
        total.pages_sum as f64 / total.runs.max(1) as f64,
        total.pages_max
    );
    let per_hour = v.calls as f64 / v.hours;
    println!(
        "Graph calls: {} in {:.0} h = {:.1}/h, {:.0} % of the {:.0}/h left to hashtags; extra pages refused by the run budget or usage: {}; simulated in {:.1} s",
        v.calls,
        v.hours,
        per_hour,
        100.0 * per_hour / budget_for_hashtags,
        budget_for_hashtags,
        v.optional_skipped,
        v.elapsed_s
    );
    for f in &v.failed_runs {
        println!("failed run: {f}");
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = env_or("CAPTURE_HOURS", 24i64).clamp(1, 24 * 7);
    let seed: u64 = env_or("CAPTURE_SEED", 20_230_902u64);
    let scale: f64 = env_or("CAPTURE_RATE_SCALE", 1.0f64).max(0.0);
    let serve_pages: usize = env_or("CAPTURE_PAGES", 10usize).max(1);

    let shipped = shipped_config("http://unused");
    let (source, samples) = load_samples(&shipped);
    let (first_run, second_run) = (utc(0, 0, 47).timestamp(), utc(0, 5, 47).timestamp());
    let rates: Vec<Rate> = samples
        .iter()
        .map(|s| derive_rate(s, first_run, second_run))
        .collect();
    let late: usize = rates.iter().map(|r| r.late).sum();
    let new: usize = rates.iter().map(|r| r.new_ids).sum();
    let late_share = if late > 0 && new > 0 {
        late as f64 / new as f64
    } else {
        DEFAULT_LATE_SHARE
    };
    print_rates(&source, &rates, late_share, scale);

    // The period: [day start, day start + hours); a run every 5 minutes, the first 5 minutes
    // after the start, the last at the end.
    let day_start = utc(0, 0, 0).timestamp();
    let day_end = day_start + hours * 3600;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut feeds = Vec::new();
    let mut population = Vec::new();
    for (i, r) in rates.iter().enumerate() {
        let posts = generate(
            &mut rng,
            r.pooled * scale,
            day_start - PREHISTORY_MINS * 60,
            day_end,
            late_share,
            18_000_000_000_000_000 + (i as u64 + 1) * 1_000_000_000,
        );
        population.push(
            posts
                .iter()
                .filter(|p| p.ts >= day_start && p.visible <= day_end)
                .map(|p| p.id)
                .collect::<HashSet<u64>>(),
        );
        feeds.push((r.tag.clone(), posts));
    }
    let schedule = Schedule {
        first_run: day_start + RUN_EVERY_MINS * 60,
        runs: hours * 60 / RUN_EVERY_MINS,
        serve_pages,
        feeds,
        population,
    };
    println!();
    println!(
        "== feed: {hours} h from 2023-09-02T00:00Z, seed {seed}, Poisson arrivals; lag to visible: exp(mean {PROMPT_LAG_MEAN_SECS} s), \
         or for {:.1} % U({}-{} min); listed by timestamp + U(0-{ORDER_JITTER_SECS} s); the fake serves up to {serve_pages} pages",
        late_share * 100.0,
        LATE_LAG_SECS.0 / 60.0,
        LATE_LAG_SECS.1 / 60.0,
    );
    println!(
        "   {} runs (every {RUN_EVERY_MINS} min, {} to {}), {} posts created in the period and visible by its last run",
        schedule.runs,
        format_ts(schedule.first_run),
        format_ts(schedule.first_run + (schedule.runs - 1) * RUN_EVERY_MINS * 60),
        schedule.population.iter().map(HashSet::len).sum::<usize>()
    );

    let budget = shipped.budget_use(1);
    let brands_calls = shipped.targets.len() as f64 * shipped.budget.brands_runs_per_hour as f64;
    let for_hashtags = budget.limit as f64 - brands_calls;
    // The tuned schedule: every call left in the hour spent on extra pages, ids remembered long
    // enough to cover the pages a slow hashtag is read to, the busiest hashtags first in line
    // for the run's extra pages.
    let first_pages = shipped.targets.len() as u64 * u64::from(shipped.hashtags.runs_per_hour);
    let spare = budget
        .limit
        .saturating_sub(brands_calls as u64)
        .saturating_sub(first_pages);
    let tuned_extra: u32 = env_or("CAPTURE_TUNED_EXTRA_PAGES_PER_HOUR", spare as u32);
    let tuned_window: u64 = env_or("CAPTURE_TUNED_KNOWN_WINDOW_MINS", 180u64);
    let tuned_max_pages: u32 = env_or("CAPTURE_TUNED_MAX_PAGES", shipped.hashtags.max_pages);
    let busiest_first = env_or("CAPTURE_TUNED_BUSIEST_FIRST", 1u8) != 0;
    let mut by_rate: Vec<(String, f64)> = rates.iter().map(|r| (r.tag.clone(), r.pooled)).collect();
    by_rate.sort_by(|a, b| b.1.total_cmp(&a.1));
    let busiest: Vec<String> = by_rate.into_iter().map(|(t, _)| t).collect();
    let variants = [
        Variant {
            name: "ours: shipped configure.toml".into(),
            page_size: shipped.graph.hashtag_media_limit as usize,
            keep_state: true,
            tweak: Box::new(|_| {}),
        },
        Variant {
            name: "ours: tuned settings".into(),
            page_size: shipped.graph.hashtag_media_limit as usize,
            keep_state: true,
            tweak: Box::new(move |c| {
                c.hashtags.extra_pages_per_hour = tuned_extra;
                c.hashtags.known_window = Duration::from_secs(tuned_window * 60);
                c.hashtags.max_pages = tuned_max_pages;
                if busiest_first {
                    c.targets.sort_by_key(|t| {
                        busiest
                            .iter()
                            .position(|b| *b == t.hashtag)
                            .unwrap_or(usize::MAX)
                    });
                }
            }),
        },
        Variant {
            name: "replaced behaviour: one page of 25 per run".into(),
            page_size: REPLACED_PAGE,
            keep_state: false,
            tweak: Box::new(|c| {
                c.graph.hashtag_media_limit = REPLACED_PAGE as u32;
                c.hashtags.max_pages = 1;
                c.output.raw_capture = false;
            }),
        },
    ];
    let mut results = Vec::new();
    for v in &variants {
        let r = simulate(v, &schedule).await;
        print_result(&r, for_hashtags);
        results.push(r);
    }

    println!();
    println!(
        "== budget: {} calls/h per credential - {brands_calls:.0} brands calls/h = {for_hashtags:.0}/h for hashtags; \
         the shipped plan: {}",
        budget.limit, budget.arithmetic
    );
    println!(
        "{:<46} {:>10} {:>9} {:>11} {:>11}",
        "schedule", "calls/h", "budget", "capture", "duplicates"
    );
    for r in &results {
        let existed: usize = r.tags.iter().map(|(_, t)| t.existed).sum();
        let captured: usize = r.tags.iter().map(|(_, t)| t.captured).sum();
        let duplicates: usize = r.tags.iter().map(|(_, t)| t.duplicates).sum();
        let per_hour = r.calls as f64 / r.hours;
        println!(
            "{:<46} {:>10.1} {:>8.0}% {:>10.2}% {:>11}",
            r.name,
            per_hour,
            100.0 * per_hour / for_hashtags,
            pct(captured, existed),
            duplicates
        );
    }
}
