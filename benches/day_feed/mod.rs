//! The day of hashtag posts the benchmarks replay: arrival rates from the replaced system's two
//! consecutive hashtag runs of 2023-09-02 and a synthetic feed per hashtag at those rates, with
//! the posts the API lists late. `capture_day` replays the hashtags job over it; `budget_classes`
//! replays both jobs. Each uses a part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use ig_collector::config::Config;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::{read_json, root};

/// How many of a sample page's newest timestamps the span rate uses (older ones can be stray
/// old posts, e.g. a 17:10 post on a page otherwise from 23:43 to 00:00).
pub const SPAN_POSTS: usize = 20;
/// A post visible more than this long after its timestamp counts as late.
pub const LATE_SECS: i64 = 60;
/// Lag of the posts that are not late: exponential with this mean (seconds).
pub const PROMPT_LAG_MEAN_SECS: f64 = 10.0;
/// Lag of the late posts: uniform in this range (seconds).
pub const LATE_LAG_SECS: (f64, f64) = (60.0, 1200.0);
/// Listing order: timestamp plus a uniform random lag up to this (seconds).
pub const ORDER_JITTER_SECS: f64 = 30.0;
/// Posts generated before the first run, so its pages are full.
pub const PREHISTORY_MINS: i64 = 180;
/// The late share used when the samples show none.
pub const DEFAULT_LATE_SHARE: f64 = 0.05;

pub fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 2, h, m, s)
        .single()
        .expect("a valid time")
}

fn parse_ts(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .map(|t| t.timestamp())
}

pub fn format_ts(secs: i64) -> String {
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
pub struct Rate {
    pub tag: String,
    pub span_first: f64,
    pub span_second: f64,
    pub new_ids: usize,
    pub late: usize,
    /// Longest lower bound of a late post's lag (seconds).
    pub late_lag_secs: i64,
    pub pooled: f64,
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
pub struct Post {
    pub id: u64,
    /// Creation time (Unix seconds).
    pub ts: i64,
    /// When the API starts listing it.
    pub visible: i64,
    /// The listing key: newest first.
    pub order: i64,
}

/// Poisson arrivals at `per_min` from `start` to `end`, sorted by listing key (oldest first).
pub fn generate(
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
        let lag = lag_secs(rng, late_share);
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
pub fn pages_at(
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
// 3. A day's feeds.

/// The rates of the shipped hashtags from the samples (config order), where they came from, and
/// the pooled share of late posts (`DEFAULT_LATE_SHARE` when the samples show none).
pub fn sample_rates(config: &Config) -> (String, Vec<Rate>, f64) {
    let (source, samples) = load_samples(config);
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
    (source, rates, late_share)
}

/// Hashtag `i` of a scenario with more hashtags than the samples: the samples' rates cycled,
/// renamed from the second round on (`dior`, …, `dior2`, …).
pub fn cycled(rates: &[Rate], i: usize) -> (String, &Rate) {
    let r = &rates[i % rates.len()];
    let round = i / rates.len();
    let tag = if round == 0 {
        r.tag.clone()
    } else {
        format!("{}{}", r.tag, round + 1)
    };
    (tag, r)
}

/// One hashtag's feed from `start` to `end` at `per_min` (`generate`), and at `volume` above 1,
/// `volume - 1` more posts beside each within ±150 s, each with its own lag.
#[allow(clippy::too_many_arguments)]
pub fn feed(
    rng: &mut StdRng,
    per_min: f64,
    start: i64,
    end: i64,
    late_share: f64,
    id_base: u64,
    volume: u32,
) -> Vec<Post> {
    let mut posts = generate(rng, per_min, start, end, late_share, id_base);
    if volume > 1 {
        let extra: Vec<Post> = posts
            .iter()
            .flat_map(|p| (1..volume).map(move |k| (p.ts, k)))
            .enumerate()
            .map(|(j, (ts, _))| {
                let ts = ts + rng.random_range(-150i64..=150);
                let lag = lag_secs(rng, late_share);
                Post {
                    id: id_base + 500_000_000 + j as u64,
                    ts,
                    visible: ts + lag.round() as i64,
                    order: ts + (rng.random::<f64>() * ORDER_JITTER_SECS) as i64,
                }
            })
            .collect();
        posts.extend(extra);
        posts.sort_by_key(|p| (p.order, p.id));
    }
    posts
}

/// A post's lag from its timestamp to its first listing: for `late_share` of them uniform in
/// `LATE_LAG_SECS`, for the others exponential with mean `PROMPT_LAG_MEAN_SECS`.
fn lag_secs(rng: &mut StdRng, late_share: f64) -> f64 {
    if rng.random::<f64>() < late_share {
        rng.random_range(LATE_LAG_SECS.0..LATE_LAG_SECS.1)
    } else {
        -(1.0 - rng.random::<f64>()).ln() * PROMPT_LAG_MEAN_SECS
    }
}

/// A seeded generator for a day's feeds.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
