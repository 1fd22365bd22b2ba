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
//! Beside each schedule's delays, the scenario's **floor**: the delay of a collector that wrote
//! each post the instant the API first listed it (the listing lag of the posts that count), and
//! of one that wrote it at the first run of the 5-minute schedule after that; and each
//! schedule's delay from a post's listing, split into posts listed late and the others.
//!
//! Environment: `CAPTURE_SCENARIOS` (`1x,3x,30`; also `3x30`, over one credential's budget),
//! `CAPTURE_VARIANTS` (`shipped,today`; also the shipped configuration with `[hashtags]`
//! settings changed, e.g. `fresh=0:max=15`, see [`variant`]), `CAPTURE_HOURS` (24),
//! `CAPTURE_SEED` (20230902), `CAPTURE_PAGES` (30, pages the fake serves), `CAPTURE_LATE_SHARE`
//! (the share of posts listed late, 0 to 1; the samples' by default), `CAPTURE_LOOKBACK_NEED`
//! (the lookback pages the brands job's state says its last run needed, all accounts: 0 for
//! accounts posting as in the samples; unset, the configuration's assumption), `CAPTURE_TRACE` (a
//! hashtag whose per-run report to print). Run through `scripts/capture-report.sh`.

mod day_feed;

use day_feed::{
    cycled, feed, pages_at, sample_rates, utc, Post, Rate, LATE_LAG_SECS, LATE_SECS,
    ORDER_JITTER_SECS, PREHISTORY_MINS, PROMPT_LAG_MEAN_SECS, SPAN_POSTS,
};
use testkit::{env_or, graph, root};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use chrono::DateTime;
use ig_collector::collect::{run, App, Job};
use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
use ig_collector::graph::{AccessToken, Credentials, Source};
use ig_collector::pager::Due;
use ig_collector::sink::Sink;
use serde_json::Value;

use graph::FakeGraph;

use testkit::{CALLER_ID, TOKEN};

/// The replaced system's page size.
const REPLACED_PAGE: usize = 25;
/// Minutes between hashtags runs.
const RUN_EVERY_MINS: i64 = 5;
/// Runs after the period: the shipped freshness target (`hashtags.max_delay_mins`).
const DRAIN_MINS: i64 = 30;
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
    /// The summary's short name.
    label: String,
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
    /// Of `polls`, the freshness polls (`due: fresh`).
    fresh_polls: u64,
    /// Seconds from each captured post's listing to its write: where the wait is.
    listed: Vec<i64>,
}

struct VariantResult {
    scenario: String,
    name: String,
    label: String,
    tags: Vec<(String, TagResult)>,
    calls: u64,
    /// Calls per clock hour.
    hourly: Vec<u64>,
    /// Seconds from a post's timestamp to the run that first wrote it, every captured post.
    delays: Vec<i64>,
    /// The same, from when the API first listed it.
    delays_listed: Vec<i64>,
    /// `delays_listed` of the captured posts the API listed late (more than `LATE_SECS` after
    /// their timestamp) and of the others: which of them waits after its listing.
    delays_listed_late: Vec<i64>,
    delays_listed_prompt: Vec<i64>,
    /// `delays` of the captured posts listed promptly: the p99 a feed without late posts gives.
    delays_prompt: Vec<i64>,
    /// The scenario's floor (`Schedule::floor`), for the summary.
    floor: Floor,
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
    /// What no collector can beat on this feed.
    floor: Floor,
}

/// The least delay any collector could have on a feed, over the posts that count: writing each
/// post the instant the API first lists it (the listing lag itself), or at the first run of the
/// 5-minute schedule at or after that instant.
#[derive(Clone, Default)]
struct Floor {
    /// Seconds from each post's timestamp to its first listing.
    listing: Vec<i64>,
    /// Seconds from each post's timestamp to the first scheduled run at or after its listing.
    on_schedule: Vec<i64>,
    /// Share of the posts that count listed more than `LATE_SECS` after their timestamp (the
    /// late ones, and the few prompt ones whose lag passed it).
    late_share: f64,
}

impl Floor {
    fn of(posts: &[&Post], first_run: i64) -> Floor {
        let every = RUN_EVERY_MINS * 60;
        let listing: Vec<i64> = posts.iter().map(|p| p.visible.max(p.ts) - p.ts).collect();
        let on_schedule = posts
            .iter()
            .map(|p| {
                let listed = p.visible.max(p.ts);
                let run = if listed <= first_run {
                    first_run
                } else {
                    first_run + (listed - first_run + every - 1) / every * every
                };
                run - p.ts
            })
            .collect();
        let late = listing.iter().filter(|l| **l > LATE_SECS).count();
        Floor {
            late_share: late as f64 / listing.len().max(1) as f64,
            listing,
            on_schedule,
        }
    }

    /// The p99 of the listing lag the feed's model gives: a share `late` of the posts lagging
    /// U(`LATE_LAG_SECS`), the rest a few seconds, so for `late` above 1 % the p99 is the lag
    /// only 1 % of all posts exceed: hi − (hi − lo) × 0.01 / late.
    fn model_p99_secs(late: f64) -> f64 {
        let (lo, hi) = LATE_LAG_SECS;
        if late <= 0.01 {
            return 0.0;
        }
        hi - (hi - lo) * 0.01 / late
    }
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

fn lookback_need() -> Option<u64> {
    std::env::var("CAPTURE_LOOKBACK_NEED")
        .ok()?
        .trim()
        .parse()
        .ok()
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
    // What the brands job's last run needed for its lookback, as its state records it
    // (`CAPTURE_LOOKBACK_NEED` pages past the first, all accounts): the next brands run's booking
    // that freshness polls leave whole. Unset: none recorded, the configuration's assumption.
    if let (Some(pages), true) = (lookback_need(), variant.keep_state) {
        let mut state = ig_collector::state::State::default();
        let accounts = config.targets.len() as u64;
        state.lookback.insert(
            CALLER_ID.to_string(),
            ig_collector::lookback::Need { accounts, pages },
        );
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir).expect("state folder");
        }
        std::fs::write(&state_path, state.to_bytes()).expect("state");
    }
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
                if summary
                    .hashtags
                    .get(tag)
                    .is_some_and(|r| r.due == Due::Fresh)
                {
                    tags[i].fresh_polls += 1;
                }
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
    let mut delays_listed_late = Vec::new();
    let mut delays_listed_prompt = Vec::new();
    let mut delays_prompt = Vec::new();
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
                let listed = at - p.visible.max(p.ts);
                delays_listed.push(listed);
                r.listed.push(listed);
                if p.visible - p.ts > LATE_SECS {
                    delays_listed_late.push(listed);
                } else {
                    delays_listed_prompt.push(listed);
                    delays_prompt.push(at - p.ts);
                }
            }
        }
        rows.push((tag.clone(), r.clone()));
    }
    VariantResult {
        scenario: schedule.scenario.name.clone(),
        name: variant.name.clone(),
        label: variant.label.clone(),
        tags: rows,
        calls,
        hourly,
        delays,
        delays_listed,
        delays_listed_late,
        delays_listed_prompt,
        delays_prompt,
        floor: schedule.floor.clone(),
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

/// A schedule to replay, by name: `shipped` (configure.toml), `today` (the replaced system's
/// one page of 25 per run, no state) or the shipped one with `[hashtags]` settings changed,
/// `fresh=10:max=30:late=20:overlap=120` (`fresh_delay_mins`, 0 for none; `max_delay_mins`;
/// `late_window_mins`; `overlap_secs`), any of them.
fn variant(spec: &str, page_size: usize) -> Option<Variant> {
    match spec {
        "shipped" => {
            return Some(Variant {
                name: "ours: shipped configure.toml".into(),
                label: "ours".into(),
                page_size,
                keep_state: true,
                tweak: Box::new(|_| {}),
            })
        }
        "today" => {
            return Some(Variant {
                name: "today's behaviour (the replaced system): one page of 25 per run".into(),
                label: "today's".into(),
                page_size: REPLACED_PAGE,
                keep_state: false,
                tweak: Box::new(|c| {
                    c.graph.hashtag_media_limit = REPLACED_PAGE as u32;
                    c.output.raw_capture = false;
                }),
            })
        }
        _ => {}
    }
    let mut settings: Vec<(String, u64)> = Vec::new();
    for kv in spec.split(':') {
        let (k, v) = kv.split_once('=')?;
        let v: u64 = v.trim().parse().ok()?;
        if !["fresh", "max", "late", "overlap"].contains(&k.trim()) {
            return None;
        }
        settings.push((k.trim().to_string(), v));
    }
    let name = settings
        .iter()
        .map(|(k, v)| match k.as_str() {
            "fresh" => format!("fresh_delay_mins {v}"),
            "max" => format!("max_delay_mins {v}"),
            "late" => format!("late_window_mins {v}"),
            _ => format!("overlap_secs {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(Variant {
        name: format!("ours: shipped configure.toml with {name}"),
        label: spec.to_string(),
        page_size,
        keep_state: true,
        tweak: Box::new(move |c| {
            for (k, v) in &settings {
                let d = std::time::Duration::from_secs(v * 60);
                match k.as_str() {
                    "fresh" => c.hashtags.fresh_delay = (*v > 0).then_some(d),
                    "max" => c.hashtags.max_delay = d,
                    "late" => c.hashtags.late_window = d,
                    _ => c.hashtags.overlap = std::time::Duration::from_secs(*v),
                }
            }
        }),
    })
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
        "{:<13} {:>8} {:>9} {:>9} {:>11} {:>12} {:>7} {:>6} {:>11} {:>12} {:>12}",
        "hashtag",
        "existed",
        "captured",
        "capture",
        "duplicates",
        "missed late",
        "polls",
        "fresh",
        "pages/poll",
        "listed p99",
        "listed >10m"
    );
    let mut total = TagResult::default();
    for (tag, r) in &v.tags {
        println!(
            "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>7} {:>6} {:>6.2} / {:<2} {:>8.1} min {:>12}",
            tag,
            r.existed,
            r.captured,
            pct(r.captured, r.existed),
            r.duplicates,
            r.missed_late,
            r.polls,
            r.fresh_polls,
            r.pages_sum as f64 / r.polls.max(1) as f64,
            r.pages_max,
            percentile(&r.listed, 0.99) / 60.0,
            r.listed.iter().filter(|d| **d > 600).count()
        );
        total.existed += r.existed;
        total.captured += r.captured;
        total.duplicates += r.duplicates;
        total.missed_late += r.missed_late;
        total.pages_sum += r.pages_sum;
        total.polls += r.polls;
        total.fresh_polls += r.fresh_polls;
        total.listed.extend(&r.listed);
        total.pages_max = total.pages_max.max(r.pages_max);
    }
    println!(
        "{:<13} {:>8} {:>9} {:>8.2}% {:>11} {:>12} {:>7} {:>6} {:>6.2} / {:<2} {:>8.1} min {:>12}",
        "all",
        total.existed,
        total.captured,
        pct(total.captured, total.existed),
        total.duplicates,
        total.missed_late,
        total.polls,
        total.fresh_polls,
        total.pages_sum as f64 / total.polls.max(1) as f64,
        total.pages_max,
        percentile(&total.listed, 0.99) / 60.0,
        total.listed.iter().filter(|d| **d > 600).count()
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
    println!(
        "  by listing: {} posts listed late (>{LATE_SECS} s): p99 {:.1} min after their listing; {} listed promptly: p99 {:.1} min after \
         their listing, {:.1} min after their time",
        v.delays_listed_late.len(),
        percentile(&v.delays_listed_late, 0.99) / 60.0,
        v.delays_listed_prompt.len(),
        percentile(&v.delays_listed_prompt, 0.99) / 60.0,
        percentile(&v.delays_prompt, 0.99) / 60.0,
    );
    for f in &v.failed_runs {
        println!("failed run: {f}");
    }
}

/// What no collector can beat on this scenario's feed, and the arithmetic behind it: the feed
/// lists `late_share` of the posts U(`LATE_LAG_SECS`) after their time.
fn print_floor(floor: &Floor, late_share: f64) {
    println!(
        "floor: {} posts count, {:.2} % listed more than {LATE_SECS} s after their time; written the instant the API lists them: \
         p50 {:.1} min, p99 {:.1} min after their time (the model, {:.2} % late U({:.0}-{:.0} min): {:.0} - {:.0} × 1 % / {:.2} % = {:.1} min); \
         at the first run of the {RUN_EVERY_MINS}-min schedule after that: p50 {:.1} min, p99 {:.1} min",
        floor.listing.len(),
        floor.late_share * 100.0,
        percentile(&floor.listing, 0.50) / 60.0,
        percentile(&floor.listing, 0.99) / 60.0,
        late_share * 100.0,
        LATE_LAG_SECS.0 / 60.0,
        LATE_LAG_SECS.1 / 60.0,
        LATE_LAG_SECS.1 / 60.0,
        (LATE_LAG_SECS.1 - LATE_LAG_SECS.0) / 60.0,
        late_share * 100.0,
        Floor::model_p99_secs(late_share) / 60.0,
        percentile(&floor.on_schedule, 0.50) / 60.0,
        percentile(&floor.on_schedule, 0.99) / 60.0,
    );
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
    let mut rng = day_feed::rng(seed);
    let mut feeds = Vec::new();
    let mut population = Vec::new();
    for i in 0..scenario.hashtags {
        let (tag, r) = cycled(rates, i);
        let base = 18_000_000_000_000_000 + (i as u64 + 1) * 1_000_000_000;
        let posts = feed(
            &mut rng,
            r.pooled,
            day_start - PREHISTORY_MINS * 60,
            day_end,
            late_share,
            base,
            scenario.volume,
        );
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
    let first_run = day_start + RUN_EVERY_MINS * 60;
    let counted: Vec<&Post> = feeds
        .iter()
        .zip(&population)
        .flat_map(|((_, posts), pop)| posts.iter().filter(|p| pop.contains(&p.id)))
        .collect();
    let floor = Floor::of(&counted, first_run);
    Schedule {
        scenario: scenario.clone(),
        first_run,
        runs: (hours * 60 + DRAIN_MINS) / RUN_EVERY_MINS,
        serve_pages,
        feeds,
        population,
        floor,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = env_or("CAPTURE_HOURS", 24i64).clamp(1, 24 * 7);
    let seed: u64 = env_or("CAPTURE_SEED", 20_230_902u64);
    let serve_pages: usize = env_or("CAPTURE_PAGES", 30usize).max(1);
    let wanted: String = env_or("CAPTURE_SCENARIOS", "1x,3x,30".to_string());

    let shipped = shipped_config("https://unused");
    let (source, rates, sampled_share) = sample_rates(&shipped);
    print_rates(&source, &rates, sampled_share);
    // What the day would look like were fewer (or more) posts listed late than the samples show.
    let late_share: f64 = env_or("CAPTURE_LATE_SHARE", sampled_share).clamp(0.0, 1.0);
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
    let variants: Vec<Variant> = env_or("CAPTURE_VARIANTS", "shipped,today".to_string())
        .split(',')
        .filter_map(|spec| {
            let v = variant(spec.trim(), shipped.graph.hashtag_media_limit as usize);
            if v.is_none() {
                eprintln!("CAPTURE_VARIANTS: {spec:?} is not `shipped`, `today` or `key=value:…` with keys fresh, max, late, overlap (minutes; overlap in seconds)");
            }
            v
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
        print_floor(&schedule.floor, late_share);
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
        "   p99 listed: from when the API first listed each post; floor: the listing lag (written the instant it is listed); \
         on schedule: written at the first 5-min run after its listing"
    );
    println!(
        "{:<34} {:<24} {:>9} {:>11} {:>8} {:>6} {:>8} {:>8} {:>11} {:>10} {:>12} {:>7} {:>9}",
        "scenario",
        "schedule",
        "capture",
        "duplicates",
        "calls/h",
        "max/h",
        "p50 min",
        "p99 min",
        "p99 listed",
        "floor p99",
        "on schedule",
        "behind",
        "given up"
    );
    for r in &results {
        let existed: usize = r.tags.iter().map(|(_, t)| t.existed).sum();
        let captured: usize = r.tags.iter().map(|(_, t)| t.captured).sum();
        let duplicates: usize = r.tags.iter().map(|(_, t)| t.duplicates).sum();
        println!(
            "{:<34} {:<24} {:>8.2}% {:>11} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>11.1} {:>10.1} {:>12.1} {:>7} {:>9}",
            r.scenario,
            r.label,
            pct(captured, existed),
            duplicates,
            r.calls as f64 / r.hours,
            r.hourly.iter().max().unwrap_or(&0),
            percentile(&r.delays, 0.50) / 60.0,
            percentile(&r.delays, 0.99) / 60.0,
            percentile(&r.delays_listed, 0.99) / 60.0,
            percentile(&r.floor.listing, 0.99) / 60.0,
            percentile(&r.floor.on_schedule, 0.99) / 60.0,
            r.behind_max,
            r.given_up
        );
    }
}
