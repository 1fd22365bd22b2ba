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
//!    lag, so neighbours swap: `recent_media` is not strictly ordered by time. At 3× volume,
//!    two more posts beside each within ±150 s, each with its own lag. With 30 hashtags, the
//!    11 rates cycled (and 30 accounts for the brands job on the same credential).
//! 3. **Our schedule**: a run of the hashtags job every 5 minutes for the period and 30 minutes
//!    more (`collect::run`, live HTTP source with one credential, folder sink) with the shipped
//!    `configure.toml`, hashtag ids pinned, against testkit's fake Graph API. Before each run
//!    every hashtag's pages are set to what the API shows at that time: the visible posts,
//!    newest first, `hashtag_media_limit` per page, at most `CAPTURE_PAGES` pages.
//! 4. **Today's behaviour** (the replaced system): the same feed, one page of 25 per run, no
//!    state (the state object deleted before each run), so every run writes its 25 posts again.
//!
//! Printed per hashtag: the posts created during the period and listed by its end, the
//! distinct ones written, the capture rate, the copies written more than once, the missed posts
//! that were late, polls and pages per poll; per schedule the Graph calls per hour (mean and the
//! busiest clock hour), freshness p50/p99 and posts behind; then all side by side.
//!
//! Environment: `CAPTURE_SCENARIOS` (`1x,3x,30`; also `3x30`, over one credential's budget), `CAPTURE_HOURS` (24), `CAPTURE_SEED`
//! (20230902), `CAPTURE_PAGES` (30, pages the fake serves), `CAPTURE_TRACE` (a hashtag whose
//! per-run report to print). Run through `scripts/capture-report.sh`.

use testkit::{env_or, graph, read_json, root};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

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
/// Runs after the period: the shipped freshness target (`hashtags.max_delay_mins`).
const DRAIN_MINS: i64 = 30;
/// The late share used when the samples show none.
const DEFAULT_LATE_SHARE: f64 = 0.05;

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

/// A day to replay: the volume (1: the samples' rates; 3: two more posts beside each, within
/// ±150 s) and how many hashtags (the 11 of the samples, or more, cycling their rates).
#[derive(Clone)]
struct Scenario {
    name: String,
    volume: u32,
    hashtags: usize,
}

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
    polls: u64,
}

struct VariantResult {
    scenario: String,
    name: String,
    tags: Vec<(String, TagResult)>,
    calls: u64,
    /// Calls per clock hour.
    hourly: Vec<u64>,
    /// Seconds from a post's timestamp to the run that first wrote it, every captured post.
    delays: Vec<i64>,
    /// The same, from when the API first listed it.
    delays_listed: Vec<i64>,
    behind_max: u64,
    behind_end: u64,
    given_up: u64,
    failed_runs: Vec<String>,
    hours: f64,
    elapsed_s: f64,
    budget: String,
}

fn shipped_config(base_url: &str) -> Config {
    let overrides = Overrides {
        graph_api_url: Some(base_url.to_string()),
        ..Overrides::default()
    };
    Config::parse(EMBEDDED, EMBEDDED_NAME, &overrides).expect("the shipped config is valid")
}

struct Schedule {
    scenario: Scenario,
    first_run: i64,
    runs: i64,
    serve_pages: usize,
    /// Per hashtag: its feed.
    feeds: Vec<(String, Vec<Post>)>,
    /// Per hashtag: the posts that count (created in the period, visible by the last run).
    population: Vec<HashSet<u64>>,
}

/// The shipped targets, cycled and renamed to `n` hashtags (`dior`, …, `dior2`, …).
fn targets_for(config: &mut Config, n: usize) {
    let base = config.targets.clone();
    config.targets = (0..n)
        .map(|i| {
            let mut t = base[i % base.len()].clone();
            let round = i / base.len();
            if round > 0 {
                t.username = format!("{}{}", t.username, round + 1);
                t.hashtag = format!("{}{}", t.hashtag, round + 1);
                let id: u64 = t.user_id.parse().unwrap_or(17_841_400_000_000_000);
                t.user_id = (id + round as u64 * 7).to_string();
            }
            t
        })
        .collect();
}

async fn simulate(variant: &Variant, schedule: &Schedule) -> VariantResult {
    let fake = FakeGraph::start(TOKEN, &root().join("fixtures/replay")).await;
    let out = tempfile::tempdir().expect("tempdir");
    let mut config = shipped_config(&fake.url());
    targets_for(&mut config, schedule.scenario.hashtags);
    for t in &mut config.targets {
        t.hashtag_id = Some(fake.add_hashtag(&t.hashtag));
    }
    (variant.tweak)(&mut config);
    let budget = config.budget_use(1);
    let source = Source::live(
        &config.graph,
        vec![Credentials {
            ig_user_id: CALLER_ID.into(),
            token: AccessToken::new(TOKEN),
            app_secret: None,
            app_id: None,
        }],
    )
    .expect("client");
    let state_path = out.path().join(&config.hashtags.state_key);
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
    // The runs' clock is the replayed day's: each run is on time, as on the real day.
    let clock_at = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(schedule.first_run));
    let reads = clock_at.clone();
    let app = App {
        shard: None,
        config,
        source,
        sink: Sink::Dir(out.path().to_path_buf()),
        clock: ig_collector::schedule::Clock::from_fn(move || {
            let t = reads.load(std::sync::atomic::Ordering::Relaxed);
            DateTime::from_timestamp(t, 0).unwrap_or_default()
        }),
    };

    let n = schedule.feeds.len();
    let mut written: Vec<HashMap<u64, (usize, i64)>> = vec![HashMap::new(); n];
    let mut tags: Vec<TagResult> = vec![TagResult::default(); n];
    let mut calls = 0;
    let hours = (schedule.runs * RUN_EVERY_MINS + 59) / 60;
    let mut hourly = vec![0u64; hours.max(1) as usize];
    let (mut behind_max, mut behind_end, mut given_up) = (0, 0, 0);
    let mut failed_runs = Vec::new();
    let started = Instant::now();
    for k in 0..schedule.runs {
        let now = schedule.first_run + k * RUN_EVERY_MINS * 60;
        clock_at.store(now, std::sync::atomic::Ordering::Relaxed);
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
        let hour = (((now - schedule.first_run) / 3600) as usize).min(hourly.len() - 1);
        let summary = match run(&app, Job::Hashtags, scheduled, None).await {
            Ok(s) => s,
            Err(e) => {
                failed_runs.push(format!("{scheduled}: {e}"));
                calls += e.summary().graph.calls;
                hourly[hour] += e.summary().graph.calls;
                continue;
            }
        };
        calls += summary.graph.calls;
        hourly[hour] += summary.graph.calls;
        if let Ok(tag) = std::env::var("CAPTURE_TRACE") {
            if let Some(r) = summary.hashtags.get(&tag) {
                eprintln!("{scheduled} {tag}: {r:?}");
            }
        }
        behind_end = summary.posts_behind.unwrap_or(0);
        behind_max = behind_max.max(behind_end);
        given_up += summary.posts_given_up.unwrap_or(0);
        for (tag, p) in &summary.hashtag_pages {
            if let Some(&i) = feed_of.get(tag.as_str()) {
                tags[i].pages_sum += u64::from(*p);
                tags[i].pages_max = tags[i].pages_max.max(*p);
                tags[i].polls += 1;
            }
        }
        for key in &summary.keys_written {
            for (owner, id) in written_ids(Path::new(key)) {
                if let Some(i) = tag_of.get(&owner) {
                    written[*i].entry(id).or_insert((0, now)).0 += 1;
                }
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    let mut delays = Vec::new();
    let mut delays_listed = Vec::new();
    for (i, (tag, posts)) in schedule.feeds.iter().enumerate() {
        let population = &schedule.population[i];
        let by_id: HashMap<u64, &Post> = posts.iter().map(|p| (p.id, p)).collect();
        let r = &mut tags[i];
        r.existed = population.len();
        r.captured = population
            .iter()
            .filter(|id| written[i].contains_key(id))
            .count();
        r.duplicates = written[i].values().map(|(c, _)| c - 1).sum();
        r.missed_late = population
            .iter()
            .filter(|id| !written[i].contains_key(id))
            .filter(|id| by_id.get(id).is_some_and(|p| p.visible - p.ts > LATE_SECS))
            .count();
        for id in population {
            if let (Some((_, at)), Some(p)) = (written[i].get(id), by_id.get(id)) {
                delays.push(at - p.ts);
                delays_listed.push(at - p.visible.max(p.ts));
            }
        }
        rows.push((tag.clone(), r.clone()));
    }
    VariantResult {
        scenario: schedule.scenario.name.clone(),
        name: variant.name.clone(),
        tags: rows,
        calls,
        hourly,
        delays,
        delays_listed,
        behind_max,
        behind_end,
        given_up,
        failed_runs,
        hours: schedule.runs as f64 * RUN_EVERY_MINS as f64 / 60.0,
        elapsed_s,
        budget: budget.arithmetic,
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

fn print_rates(source: &str, rates: &[Rate], late_share: f64) {
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
            r.pooled,
            r.pooled * RUN_EVERY_MINS as f64
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
}

fn print_result(v: &VariantResult) {
    println!();
    println!("== {}: {}", v.scenario, v.name);
    println!(
        "{:<13} {:>8} {:>9} {:>9} {:>11} {:>12} {:>7} {:>11}",
        "hashtag",
        "existed",
        "captured",
        "capture",
        "duplicates",
        "missed late",
        "polls",
        "pages/poll"
    );
    let mut total = TagResult::default();
    for (tag, r) in &v.tags {
        println!(
            "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>7} {:>6.2} / {}",
            tag,
            r.existed,
            r.captured,
            pct(r.captured, r.existed),
            r.duplicates,
            r.missed_late,
            r.polls,
            r.pages_sum as f64 / r.polls.max(1) as f64,
            r.pages_max
        );
        total.existed += r.existed;
        total.captured += r.captured;
        total.duplicates += r.duplicates;
        total.missed_late += r.missed_late;
        total.pages_sum += r.pages_sum;
        total.polls += r.polls;
        total.pages_max = total.pages_max.max(r.pages_max);
    }
    println!(
        "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>7} {:>6.2} / {}",
        "all",
        total.existed,
        total.captured,
        pct(total.captured, total.existed),
        total.duplicates,
        total.missed_late,
        total.polls,
        total.pages_sum as f64 / total.polls.max(1) as f64,
        total.pages_max
    );
    println!(
        "Graph calls: {} in {:.0} h = {:.1}/h (max {} in a clock hour); freshness p50 {:.1} min, p99 {:.1} min from the post's time \
         (p99 {:.1} min, max {:.1} min from when the API listed it); posts behind: max {}, at the end {}; given up {}; simulated in {:.1} s",
        v.calls,
        v.hours,
        v.calls as f64 / v.hours,
        v.hourly.iter().max().unwrap_or(&0),
        percentile(&v.delays, 0.50) / 60.0,
        percentile(&v.delays, 0.99) / 60.0,
        percentile(&v.delays_listed, 0.99) / 60.0,
        percentile(&v.delays_listed, 1.0) / 60.0,
        v.behind_max,
        v.behind_end,
        v.given_up,
        v.elapsed_s
    );
    for f in &v.failed_runs {
        println!("failed run: {f}");
    }
}

fn percentile(values: &[i64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)] as f64
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// The feed of one scenario: every hashtag's posts (at `volume` × the sample rates, the
/// hashtags beyond the samples' 11 cycling their rates) and the population that counts.
fn schedule_for(
    scenario: &Scenario,
    rates: &[Rate],
    late_share: f64,
    hours: i64,
    seed: u64,
    serve_pages: usize,
) -> Schedule {
    let day_start = utc(0, 0, 0).timestamp();
    let day_end = day_start + hours * 3600;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut feeds = Vec::new();
    let mut population = Vec::new();
    for i in 0..scenario.hashtags {
        let r = &rates[i % rates.len()];
        let round = i / rates.len();
        let tag = if round == 0 {
            r.tag.clone()
        } else {
            format!("{}{}", r.tag, round + 1)
        };
        let base = 18_000_000_000_000_000 + (i as u64 + 1) * 1_000_000_000;
        let mut posts = generate(
            &mut rng,
            r.pooled,
            day_start - PREHISTORY_MINS * 60,
            day_end,
            late_share,
            base,
        );
        if scenario.volume > 1 {
            // Beside each real post, `volume - 1` more within ±150 s, each with its own lag.
            let extra: Vec<Post> = posts
                .iter()
                .flat_map(|p| (1..scenario.volume).map(move |k| (p.ts, k)))
                .enumerate()
                .map(|(j, (ts, _))| {
                    let ts = ts + rng.random_range(-150i64..=150);
                    let lag = if rng.random::<f64>() < late_share {
                        rng.random_range(LATE_LAG_SECS.0..LATE_LAG_SECS.1)
                    } else {
                        -(1.0 - rng.random::<f64>()).ln() * PROMPT_LAG_MEAN_SECS
                    };
                    Post {
                        id: base + 500_000_000 + j as u64,
                        ts,
                        visible: ts + lag.round() as i64,
                        order: ts + (rng.random::<f64>() * ORDER_JITTER_SECS) as i64,
                    }
                })
                .collect();
            posts.extend(extra);
            posts.sort_by_key(|p| (p.order, p.id));
        }
        // A post counts when it was created in the period and listed by its end; runs go on
        // for the freshness target after the period, so that the posts of its last minutes
        // have had their chance.
        population.push(
            posts
                .iter()
                .filter(|p| p.ts >= day_start && p.visible <= day_end)
                .map(|p| p.id)
                .collect::<HashSet<u64>>(),
        );
        feeds.push((tag, posts));
    }
    Schedule {
        scenario: scenario.clone(),
        first_run: day_start + RUN_EVERY_MINS * 60,
        runs: (hours * 60 + DRAIN_MINS) / RUN_EVERY_MINS,
        serve_pages,
        feeds,
        population,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = env_or("CAPTURE_HOURS", 24i64).clamp(1, 24 * 7);
    let seed: u64 = env_or("CAPTURE_SEED", 20_230_902u64);
    let serve_pages: usize = env_or("CAPTURE_PAGES", 30usize).max(1);
    let wanted: String = env_or("CAPTURE_SCENARIOS", "1x,3x,30".to_string());

    let shipped = shipped_config("https://unused");
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
    print_rates(&source, &rates, late_share);
    println!(
        "== feed: {hours} h from 2023-09-02T00:00Z, seed {seed}, Poisson arrivals; lag to visible: exp(mean {PROMPT_LAG_MEAN_SECS} s), \
         or for {:.1} % U({}-{} min); listed by timestamp + U(0-{ORDER_JITTER_SECS} s); the fake serves up to {serve_pages} pages; \
         one credential, {} calls/h, brands calls included",
        late_share * 100.0,
        LATE_LAG_SECS.0 / 60.0,
        LATE_LAG_SECS.1 / 60.0,
        shipped.budget.calls_per_hour_per_credential,
    );

    let scenarios: Vec<Scenario> = wanted
        .split(',')
        .filter_map(|w| match w.trim() {
            "1x" => Some(Scenario {
                name: "the real day (1×), 11 hashtags".into(),
                volume: 1,
                hashtags: 11,
            }),
            "3x" => Some(Scenario {
                name: "3× volume, 11 hashtags".into(),
                volume: 3,
                hashtags: 11,
            }),
            "30" => Some(Scenario {
                name: "the real day's rates, 30 hashtags".into(),
                volume: 1,
                hashtags: 30,
            }),
            // More than one credential's budget can carry: what the rule leaves waiting.
            "3x30" => Some(Scenario {
                name: "3× volume, 30 hashtags".into(),
                volume: 3,
                hashtags: 30,
            }),
            _ => None,
        })
        .collect();
    let mut results = Vec::new();
    for scenario in &scenarios {
        let schedule = schedule_for(scenario, &rates, late_share, hours, seed, serve_pages);
        println!();
        println!(
            "== scenario: {}: {} runs (the period and {DRAIN_MINS} min after it), {} posts created in the period and listed by its end",
            scenario.name,
            schedule.runs,
            schedule.population.iter().map(HashSet::len).sum::<usize>()
        );
        let variants = [
            Variant {
                name: "ours: shipped configure.toml".into(),
                page_size: shipped.graph.hashtag_media_limit as usize,
                keep_state: true,
                tweak: Box::new(|_| {}),
            },
            Variant {
                name: "today's behaviour (the replaced system): one page of 25 per run".into(),
                page_size: REPLACED_PAGE,
                keep_state: false,
                tweak: Box::new(|c| {
                    c.graph.hashtag_media_limit = REPLACED_PAGE as u32;
                    c.output.raw_capture = false;
                }),
            },
        ];
        for v in &variants {
            let r = simulate(v, &schedule).await;
            print_result(&r);
            results.push(r);
        }
        println!(
            "budget: {}",
            results.last().map(|r| r.budget.as_str()).unwrap_or("")
        );
    }

    println!();
    println!("== summary (hashtag calls only; the brands job's are reserved out of the budget)");
    println!(
        "{:<34} {:<12} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "scenario",
        "schedule",
        "capture",
        "duplicates",
        "calls/h",
        "max/h",
        "p50 min",
        "p99 min",
        "behind",
        "given up"
    );
    for r in &results {
        let existed: usize = r.tags.iter().map(|(_, t)| t.existed).sum();
        let captured: usize = r.tags.iter().map(|(_, t)| t.captured).sum();
        let duplicates: usize = r.tags.iter().map(|(_, t)| t.duplicates).sum();
        println!(
            "{:<34} {:<12} {:>8.2}% {:>11} {:>9.1} {:>9} {:>9.1} {:>9.1} {:>8} {:>8}",
            r.scenario,
            if r.name.starts_with("ours") {
                "ours"
            } else {
                "today's"
            },
            pct(captured, existed),
            duplicates,
            r.calls as f64 / r.hours,
            r.hourly.iter().max().unwrap_or(&0),
            percentile(&r.delays, 0.50) / 60.0,
            percentile(&r.delays, 0.99) / 60.0,
            r.behind_max,
            r.given_up
        );
    }
}
