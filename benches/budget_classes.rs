//! Graph calls per hour by priority class on one credential, both jobs running.
//!
//! One credential's hourly allowance (`budget.calls_per_hour_per_credential`) is shared by five
//! classes of calls, in this order of priority:
//!
//! 1. the brands job's **first pages** (one `business_discovery` per account) and its daily
//!    **token check** (`debug_token`);
//! 2. the hashtags job's **due polls** (first polls, polls behind, polls whose interval passed,
//!    with their sweeps for late posts);
//! 3. the brands job's **lookback pages** (`brands.lookback_days`);
//! 4. the hashtags job's **freshness polls** (`hashtags.fresh_delay_mins`);
//! 5. the brands job's **backfill pages** (`brands.backfill_days`).
//!
//! The replay: accounts with a long history (one post every 2 hours, 400 posts: past 30 days),
//! their hashtags fed with the day of `day_feed` (the samples' rates, posts listed late
//! included), a brands run on every hour and a hashtags run every 5 minutes after it, the
//! shipped configuration with `lookback_days` 7 and `backfill_days` 30, against testkit's fake
//! Graph API on one credential with the simulated time as the clock. Each run's requests are
//! counted at the fake and told apart by what the run summaries report: the brands run's
//! `brands_lookback.pages` and `brands_backfill.pages` of its later pages, the hashtags run's
//! pages per hashtag by its `due` (`fresh` or not). A request the summaries do not account for
//! (a retried or failed page) is printed as `unattributed`.
//!
//! Printed per scenario and simulated hour: the calls of each class, their total against the
//! allowance, the busiest 60 minutes from any run, what the hashtags job was allowed, and where
//! the lookback and backfill stand.
//!
//! Environment: `BUDGET_SCENARIOS` (`1x,3x,30`: the real day's volume with the 11 shipped
//! accounts, 3× that volume, 30 accounts with the real day's rates; also `real`, the real day
//! with the accounts answering their recorded first pages, as they post in the samples), `BUDGET_HOURS` (6),
//! `BUDGET_LOOKBACK_DAYS` (7), `BUDGET_BACKFILL_DAYS` (30), `BUDGET_SEED` (20230902).

mod day_feed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ig_collector::collect::{run, App, Job, RunSummary};
use ig_collector::config::Config;
use ig_collector::graph::Source;
use ig_collector::pager::Due;
use ig_collector::sink::Sink;
use testkit::graph::{FakeGraph, Seen};
use testkit::{config_for, credentials, env_or, root, synthetic_targets, CALLER_ID, TOKEN};

use day_feed::{cycled, feed, pages_at, sample_rates, utc, Post, PREHISTORY_MINS};

/// Minutes between hashtags runs; a brands run every 12th, on the hour, before it.
const RUN_EVERY_MINS: i64 = 5;
/// Posts each account has: one every 2 hours, past 30 days.
const HISTORY_POSTS: usize = 400;
/// Pages of a hashtag the fake serves.
const SERVE_PAGES: usize = 30;

/// One replay: the hashtags' volume (× the samples' rates) and the accounts (the 11 shipped, or
/// as many synthetic ones, each with a hashtag of the samples' rates cycled).
struct Scenario {
    name: &'static str,
    volume: u32,
    accounts: usize,
    /// The accounts answer their recorded first pages (the samples: 25 posts over 9 to 60
    /// days), not a history of one post every 2 hours.
    recorded: bool,
}

/// Calls of one run, or of an hour, by class.
#[derive(Debug, Default, Clone, Copy)]
struct Classes {
    first_pages: u64,
    token_checks: u64,
    due_polls: u64,
    lookback: u64,
    fresh_polls: u64,
    backfill: u64,
    /// `ig_hashtag_search` (none while the ids are pinned).
    searches: u64,
    /// Requests the summaries do not account for.
    unattributed: u64,
}

impl Classes {
    fn total(&self) -> u64 {
        self.first_pages
            + self.token_checks
            + self.due_polls
            + self.lookback
            + self.fresh_polls
            + self.backfill
            + self.searches
            + self.unattributed
    }

    fn add(&mut self, o: &Classes) {
        self.first_pages += o.first_pages;
        self.token_checks += o.token_checks;
        self.due_polls += o.due_polls;
        self.lookback += o.lookback;
        self.fresh_polls += o.fresh_polls;
        self.backfill += o.backfill;
        self.searches += o.searches;
        self.unattributed += o.unattributed;
    }
}

/// The `business_discovery` requests among `seen`: (first pages, later pages).
fn brand_pages(seen: &[Seen]) -> (u64, u64) {
    let mut first = 0;
    let mut later = 0;
    for s in seen {
        let Some(fields) = s.query.get("fields") else {
            continue;
        };
        if !fields.starts_with("business_discovery") {
            continue;
        }
        if fields.contains("media.after(") {
            later += 1;
        } else {
            first += 1;
        }
    }
    (first, later)
}

fn count_path(seen: &[Seen], suffix: &str) -> u64 {
    seen.iter().filter(|s| s.path.ends_with(suffix)).count() as u64
}

/// A brands run's calls by class.
fn brands_classes(seen: &[Seen], summary: &RunSummary) -> Classes {
    let (first, later) = brand_pages(seen);
    let lookback = summary.brands_lookback.as_ref().map_or(0, |r| r.pages);
    let backfill = summary.brands_backfill.as_ref().map_or(0, |r| r.pages);
    let token_checks = count_path(seen, "/debug_token");
    let known = first + later + token_checks;
    Classes {
        first_pages: first,
        token_checks,
        lookback,
        backfill,
        unattributed: later.saturating_sub(lookback + backfill)
            + (seen.len() as u64).saturating_sub(known),
        ..Classes::default()
    }
}

/// A hashtags run's calls by class.
fn hashtags_classes(seen: &[Seen], summary: &RunSummary) -> Classes {
    let mut c = Classes {
        searches: count_path(seen, "/ig_hashtag_search"),
        ..Classes::default()
    };
    for report in summary.hashtags.values() {
        let pages = u64::from(report.pages);
        if report.due == Due::Fresh {
            c.fresh_polls += pages;
        } else {
            c.due_polls += pages;
        }
    }
    c.unattributed = (seen.len() as u64).saturating_sub(c.total());
    c
}

/// What an hour's runs did beside their calls.
#[derive(Debug, Default, Clone)]
struct HourNotes {
    /// The hashtags job's hourly allowance on the credential, as its last run saw it.
    hashtag_allowance: u64,
    lookback_skipped: u64,
    lookback_cut_short: u64,
    backfill_granted: u64,
    backfill_posts: u64,
    backfill_complete: u64,
    backfill_left: u64,
    posts_behind: u64,
    failed_runs: u64,
    /// Accounts whose first page the brands run did not get, and why (the first one).
    accounts_failed: u64,
    accounts_failed_why: Option<String>,
}

struct Replay {
    hours: Vec<(Classes, HourNotes)>,
    /// (run time, calls) of every run, both jobs.
    runs: Vec<(i64, u64)>,
    allowance: u64,
    failures: Vec<String>,
}

/// The shipped configuration for the scenario's accounts, with the history settings.
fn config_of(fake: &FakeGraph, scenario: &Scenario, lookback: u32, backfill: u32) -> Config {
    let mut config = config_for(&fake.url());
    if scenario.accounts != config.targets.len() {
        config.targets = synthetic_targets(scenario.accounts);
        fake.add_synthetic_accounts(scenario.accounts);
    }
    config.brands.lookback_days = lookback;
    config.brands.backfill_days = backfill;
    config
}

async fn replay(
    scenario: &Scenario,
    hours: i64,
    lookback: u32,
    backfill: u32,
    seed: u64,
) -> Replay {
    let fake = FakeGraph::start(TOKEN, &root().join("fixtures/replay")).await;
    let mut config = config_of(&fake, scenario, lookback, backfill);
    let allowance = u64::from(config.budget.calls_per_hour_per_credential);

    // The hashtags' feeds: the samples' rates, cycled past the 11 sampled hashtags.
    let (_, rates, late_share) = sample_rates(&config_for("https://unused"));
    let start = utc(0, 0, 0).timestamp();
    let end = start + hours * 3600;
    let mut rng = day_feed::rng(seed);
    let mut feeds: Vec<(String, Vec<Post>)> = Vec::new();
    for (i, t) in config.targets.iter_mut().enumerate() {
        let (tag, r) = cycled(&rates, i);
        let base = 18_000_000_000_000_000 + (i as u64 + 1) * 1_000_000_000;
        let posts = feed(
            &mut rng,
            r.pooled,
            start - PREHISTORY_MINS * 60,
            end,
            late_share,
            base,
            scenario.volume,
        );
        t.hashtag = tag.clone();
        t.hashtag_id = Some(fake.add_hashtag(&tag));
        feeds.push((tag, posts));
    }
    // Every account's history: its newest post half an hour before the first run.
    let newest = DateTime::from_timestamp(start, 0).unwrap_or_default() - Duration::minutes(30);
    for t in config.targets.iter().filter(|_| !scenario.recorded) {
        fake.set_history(&t.username, newest, HISTORY_POSTS);
    }

    let out = tempfile::tempdir().expect("tempdir");
    let source = Source::live(&config.graph, vec![credentials(CALLER_ID, TOKEN)]).expect("client");
    let page_size = config.graph.hashtag_media_limit as usize;
    let clock_at = Arc::new(AtomicI64::new(start));
    let reads = clock_at.clone();
    let app = App {
        shard: None,
        config,
        source,
        sink: Sink::Dir(out.path().to_path_buf()),
        clock: ig_collector::schedule::Clock::from_fn(move || {
            DateTime::from_timestamp(reads.load(Ordering::Relaxed), 0).unwrap_or_default()
        }),
    };

    let mut table = vec![(Classes::default(), HourNotes::default()); hours as usize];
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let steps = hours * 60 / RUN_EVERY_MINS;
    for step in 0..steps {
        let now = start + step * RUN_EVERY_MINS * 60;
        clock_at.store(now, Ordering::Relaxed);
        for (tag, posts) in &feeds {
            fake.set_pages(tag, pages_at(posts, tag, now, page_size, SERVE_PAGES));
        }
        let hour = (step * RUN_EVERY_MINS / 60) as usize;
        let jobs: &[Job] = if step % (60 / RUN_EVERY_MINS) == 0 {
            &[Job::Brands, Job::Hashtags]
        } else {
            &[Job::Hashtags]
        };
        let scheduled = DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_default();
        for job in jobs {
            let before = fake.seen().len();
            let result = run(&app, *job, scheduled, None).await;
            let seen: Vec<Seen> = fake.seen().split_off(before);
            let summary = match &result {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{job:?} at {scheduled}: {e}"));
                    table[hour].1.failed_runs += 1;
                    e.summary()
                }
            };
            let classes = match job {
                Job::Brands => brands_classes(&seen, summary),
                _ => hashtags_classes(&seen, summary),
            };
            runs.push((now, seen.len() as u64));
            let (row, notes) = &mut table[hour];
            row.add(&classes);
            if *job == Job::Brands && !summary.failed_targets.is_empty() {
                notes.accounts_failed += summary.failed_targets.len() as u64;
                notes.accounts_failed_why = summary
                    .failed_targets
                    .first()
                    .map(|f| format!("{} ({:?}): {}", f.target, f.error_kind, f.message));
            }
            if let Some(l) = &summary.brands_lookback {
                notes.lookback_skipped += l.pages_skipped;
                notes.lookback_cut_short += l.accounts_cut_short;
            }
            if let Some(b) = &summary.brands_backfill {
                notes.backfill_granted += b.calls_granted;
                notes.backfill_posts += b.posts;
                notes.backfill_complete = b.accounts_complete;
                notes.backfill_left = b.accounts_left;
            }
            if *job == Job::Hashtags {
                if let Some(lane) = summary.hashtag_budget.first() {
                    notes.hashtag_allowance = lane.calls_per_hour;
                }
                notes.posts_behind = summary.posts_behind.unwrap_or(0);
            }
        }
    }
    Replay {
        hours: table,
        runs,
        allowance,
        failures,
    }
}

/// The most calls any 60 minutes starting at a run hold, both jobs.
fn busiest_hour(runs: &[(i64, u64)]) -> u64 {
    runs.iter()
        .map(|(t, _)| {
            runs.iter()
                .filter(|(u, _)| *u >= *t && *u < *t + 3600)
                .map(|(_, c)| c)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

fn print_replay(scenario: &Scenario, r: &Replay) {
    println!();
    println!("== {}", scenario.name);
    println!(
        "{:>4} {:>11} {:>6} {:>9} {:>9} {:>6} {:>9} {:>7} {:>6} {:>9} {:>9} | {:>8} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "hour",
        "first pages",
        "token",
        "due polls",
        "lookback",
        "fresh",
        "backfill",
        "search",
        "unattr",
        "total",
        "allowance",
        "hashtags",
        "lb skipped",
        "bf granted",
        "bf posts",
        "bf done",
        "behind"
    );
    let mut all = Classes::default();
    for (h, (c, n)) in r.hours.iter().enumerate() {
        all.add(c);
        println!(
            "{:>4} {:>11} {:>6} {:>9} {:>9} {:>6} {:>9} {:>7} {:>6} {:>9} {:>9} | {:>8} {:>9} {:>9} {:>9} {:>4}/{:<2} {:>7}",
            h,
            c.first_pages,
            c.token_checks,
            c.due_polls,
            c.lookback,
            c.fresh_polls,
            c.backfill,
            c.searches,
            c.unattributed,
            c.total(),
            r.allowance,
            n.hashtag_allowance,
            n.lookback_skipped,
            n.backfill_granted,
            n.backfill_posts,
            n.backfill_complete,
            n.backfill_complete + n.backfill_left,
            n.posts_behind
        );
    }
    let hours = r.hours.len().max(1) as f64;
    let mean = |x: u64| x as f64 / hours;
    println!(
        "mean {:>11.1} {:>6.1} {:>9.1} {:>9.1} {:>6.1} {:>9.1} {:>7.1} {:>6.1} {:>9.1} {:>9}",
        mean(all.first_pages),
        mean(all.token_checks),
        mean(all.due_polls),
        mean(all.lookback),
        mean(all.fresh_polls),
        mean(all.backfill),
        mean(all.searches),
        mean(all.unattributed),
        mean(all.total()),
        r.allowance
    );
    println!(
        "busiest 60 minutes from any run, both jobs: {} calls of {}",
        busiest_hour(&r.runs),
        r.allowance
    );
    for (h, (_, n)) in r.hours.iter().enumerate() {
        if let Some(why) = &n.accounts_failed_why {
            println!(
                "hour {h}: the brands run did not get {} account(s), e.g. {why}",
                n.accounts_failed
            );
        }
    }
    for f in &r.failures {
        println!("failed run: {f}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = env_or("BUDGET_HOURS", 6i64).clamp(1, 48);
    let lookback: u32 = env_or("BUDGET_LOOKBACK_DAYS", 7u32);
    let backfill: u32 = env_or("BUDGET_BACKFILL_DAYS", 30u32);
    let seed: u64 = env_or("BUDGET_SEED", 20_230_902u64);
    let wanted: String = env_or("BUDGET_SCENARIOS", "1x,3x,30".to_string());
    let scenarios: HashMap<&str, Scenario> = [
        (
            "1x",
            Scenario {
                name: "the real day (1×), 11 accounts and hashtags",
                volume: 1,
                accounts: 11,
                recorded: false,
            },
        ),
        (
            "real",
            Scenario {
                name: "the real day (1×), 11 accounts posting as in the samples (0.4 to 2.7 a day)",
                volume: 1,
                accounts: 11,
                recorded: true,
            },
        ),
        (
            "3x",
            Scenario {
                name: "3× the hashtag volume, 11 accounts and hashtags",
                volume: 3,
                accounts: 11,
                recorded: false,
            },
        ),
        (
            "30",
            Scenario {
                name: "the real day's rates, 30 accounts and hashtags",
                volume: 1,
                accounts: 30,
                recorded: false,
            },
        ),
    ]
    .into_iter()
    .collect();
    println!(
        "== calls per hour by class on one credential: {hours} h from 2023-09-02T00:00Z, brands runs on the hour, hashtags every \
         {RUN_EVERY_MINS} min; lookback_days {lookback}, backfill_days {backfill}, {HISTORY_POSTS} posts per account (one per 2 h); seed {seed}"
    );
    println!(
        "   classes in priority order: first pages + token check (brands), due polls (hashtags), lookback pages (brands), \
         freshness polls (hashtags), backfill pages (brands)"
    );
    println!(
        "   right of |: the hashtags job's hourly allowance, lookback pages skipped, backfill calls granted and posts written, \
         accounts complete, posts behind at the hour's last run"
    );
    for key in wanted.split(',').map(str::trim) {
        let Some(scenario) = scenarios.get(key) else {
            eprintln!("BUDGET_SCENARIOS: {key:?} is not one of 1x, real, 3x, 30");
            continue;
        };
        let r = replay(scenario, hours, lookback, backfill, seed).await;
        print_replay(scenario, &r);
    }
}
