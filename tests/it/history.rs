//! The brands job's lookback (`[brands] lookback_days`): each run pages every account's media
//! back to the window's start, so the counts of a week of posts are written every hour, within
//! the calls the run booked, and never in a circle.

use chrono::{DateTime, Duration, Utc};
use ig_collector::collect::{run, App, Job, RunSummary};
use ig_collector::config::{Config, Overrides, EMBEDDED};
use ig_collector::graph::Source;
use ig_collector::pager::Due;
use ig_collector::sink::Sink;
use serde_json::Value;

use crate::support::graph::{history_post, FakeGraph, Fault};
use crate::support::{self, at, config_for, replay_dir, TOKEN};

/// Posts each account has: far more than a week's.
const POSTS: usize = 300;
/// A week at one post every 2 hours, the newest half an hour before the run: posts 0..=83.
const IN_WINDOW: usize = 84;

fn app(fake: &FakeGraph, out: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> App {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let source = Source::live(
        &config.graph,
        vec![support::credentials(support::CALLER_ID, TOKEN)],
    )
    .expect("client");
    App {
        shard: None,
        config,
        source,
        sink: Sink::Dir(out.to_path_buf()),
        clock: Default::default(),
    }
}

/// A fake whose every shipped account has [`POSTS`] posts, the newest at `newest`.
async fn fake_with_history(newest: DateTime<Utc>) -> (FakeGraph, Vec<String>) {
    fake_with_posts(newest, POSTS).await
}

/// A fake whose every shipped account has `posts` posts, one every 2 hours, the newest at
/// `newest`.
async fn fake_with_posts(newest: DateTime<Utc>, posts: usize) -> (FakeGraph, Vec<String>) {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let usernames: Vec<String> = config_for(&fake.url())
        .targets
        .iter()
        .map(|t| t.username.clone())
        .collect();
    for u in &usernames {
        fake.set_history(u, newest, posts);
    }
    (fake, usernames)
}

/// The media records written for scheduled time `t`, in the object's order.
fn media_written(out: &std::path::Path, t: DateTime<Utc>) -> Vec<Value> {
    let key = t
        .format("raw/media_%Y-%m-%d/media_%Y-%m-%d_%H%M%S.json")
        .to_string();
    let bytes = std::fs::read(out.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
    match serde_json::from_slice(&bytes).expect("a JSON array") {
        Value::Array(records) => records,
        other => panic!("not an array: {other}"),
    }
}

/// The `business_discovery` requests the fake received: (username, media cursor).
fn brand_requests(fake: &FakeGraph) -> Vec<(String, Option<String>)> {
    fake.seen()
        .into_iter()
        .filter_map(|s| {
            let fields = s.query.get("fields")?;
            let username = fields
                .strip_prefix("business_discovery.username(")?
                .split_once(')')?
                .0
                .to_string();
            let after = fields
                .split_once("media.after(")
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(c, _)| c.to_string());
            Some((username, after))
        })
        .collect()
}

/// The ids of `username`'s records in `records`, in order.
fn ids_of(records: &[Value], username: &str, newest: DateTime<Utc>) -> Vec<String> {
    let all: Vec<String> = (0..POSTS)
        .map(|k| {
            history_post(username, newest, k)["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    records
        .iter()
        .filter_map(|r| r["media_id"].as_str())
        .filter(|id| all.iter().any(|a| a == id))
        .map(str::to_string)
        .collect()
}

fn expected_ids(
    username: &str,
    newest: DateTime<Utc>,
    posts: std::ops::Range<usize>,
) -> Vec<String> {
    posts
        .map(|k| {
            history_post(username, newest, k)["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn lookback(summary: &RunSummary) -> ig_collector::lookback::Report {
    summary
        .brands_lookback
        .clone()
        .expect("the summary reports the lookback")
}

#[tokio::test]
async fn a_brands_run_writes_every_post_of_the_week_with_its_counts_and_stops_paging_at_its_start()
{
    let t = at(10, 0, 0);
    let newest = t - Duration::minutes(30);
    let (fake, usernames) = fake_with_history(newest).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| c.brands.lookback_days = 7);
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");

    let media = media_written(out.path(), t);
    assert_eq!(media.len(), usernames.len() * IN_WINDOW);
    for u in &usernames {
        // Every post of the window, each once, newest first: the first page, then the older.
        assert_eq!(
            ids_of(&media, u, newest),
            expected_ids(u, newest, 0..IN_WINDOW),
            "{u}"
        );
    }
    // Accounts in configuration order.
    let order: Vec<String> = media
        .chunks(IN_WINDOW)
        .map(|c| c[0]["media_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let firsts: Vec<String> = usernames
        .iter()
        .map(|u| expected_ids(u, newest, 0..1).remove(0))
        .collect();
    assert_eq!(order, firsts);
    // Their counts, as the API answered them.
    for r in &media {
        let id = r["media_id"].as_str().unwrap_or_default();
        let k: usize = id[8..].parse().expect("the post's index");
        assert_eq!(r["like_count"], 1000 + k as u64, "{r}");
        assert_eq!(r["comments_count"], k as u64, "{r}");
    }

    // Pages 2, 3 and 4 (posts 25..100): the fourth holds post 84, older than the week, and
    // ends the paging; nothing past it is asked for.
    let requests = brand_requests(&fake);
    for u in &usernames {
        let mut cursors: Vec<Option<String>> = requests
            .iter()
            .filter(|(n, _)| n == u)
            .map(|(_, a)| a.clone())
            .collect();
        cursors.sort();
        assert_eq!(
            cursors,
            vec![
                None,
                Some("p25".into()),
                Some("p50".into()),
                Some("p75".into())
            ],
            "{u}"
        );
    }
    let report = lookback(&summary);
    assert_eq!(report.days, 7);
    assert_eq!(report.pages, 3 * usernames.len() as u64);
    assert_eq!(
        (
            report.pages_skipped,
            report.accounts_cut_short,
            report.pages_failed,
            report.cursors_refused
        ),
        (0, 0, 0, 0)
    );
    assert!(
        summary.failed_targets.is_empty(),
        "{:?}",
        summary.failed_targets
    );
}

#[tokio::test]
async fn a_cursor_that_comes_back_ends_the_paging_without_failing_the_account_and_a_post_listed_twice_is_written_once(
) {
    let t = at(10, 0, 0);
    let newest = t - Duration::minutes(30);
    let (fake, usernames) = fake_with_history(newest).await;
    fake.set_stuck_media_cursor("dior");
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| c.brands.lookback_days = 7);
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");

    let dior: Vec<_> = brand_requests(&fake)
        .into_iter()
        .filter(|(u, _)| u == "dior")
        .collect();
    assert_eq!(
        dior.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
        vec![None, Some("p12".into())],
        "the cursor p12 is followed once"
    );
    // The second page (posts 12..37) repeats 12..25 of the first: each post is written once.
    let media = media_written(out.path(), t);
    assert_eq!(
        ids_of(&media, "dior", newest),
        expected_ids("dior", newest, 0..37)
    );
    let report = lookback(&summary);
    assert_eq!(report.cursors_refused, 1);
    assert_eq!(report.pages, 3 * (usernames.len() as u64 - 1) + 1);
    assert!(
        summary.failed_targets.is_empty(),
        "{:?}",
        summary.failed_targets
    );
}

#[tokio::test]
async fn a_short_hour_books_every_first_page_and_skips_lookback_pages_reporting_them() {
    let t = at(10, 0, 0);
    let newest = t - Duration::minutes(30);
    let (fake, usernames) = fake_with_history(newest).await;
    let out = tempfile::tempdir().expect("tempdir");
    // 11 first pages booked first (their retries from the same booking, as they are called
    // first); the 19 calls left are 15 lookback pages with a quarter more calls for their
    // retries, of the 33 the estimate wants.
    let app = app(&fake, out.path(), |c| {
        c.brands.lookback_days = 7;
        c.budget.calls_per_hour_per_credential = 30;
    });
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");

    let media = media_written(out.path(), t);
    for u in &usernames {
        let ids = ids_of(&media, u, newest);
        assert_eq!(
            ids[..25],
            expected_ids(u, newest, 0..25)[..],
            "{u}: its first page"
        );
    }
    let requests = brand_requests(&fake);
    assert_eq!(
        requests.iter().filter(|(_, a)| a.is_none()).count(),
        usernames.len()
    );
    assert_eq!(requests.iter().filter(|(_, a)| a.is_some()).count(), 15);
    let report = lookback(&summary);
    assert_eq!(report.pages, 15);
    assert_eq!(
        report.pages_skipped, 18,
        "33 pages wanted, 19 × 4/5 = 15 booked"
    );
    // 15 pages are at most 5 accounts' 3: the others are cut short.
    assert!(
        report.accounts_cut_short >= usernames.len() as u64 - 5,
        "{report:?}"
    );
    assert_eq!(
        summary.records[&ig_collector::records::Kind::Brand],
        usernames.len()
    );
}

#[tokio::test]
async fn no_lookback_days_makes_one_call_per_account_as_before() {
    let t = at(10, 0, 0);
    let newest = t - Duration::minutes(30);
    let (fake, usernames) = fake_with_history(newest).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| c.brands.lookback_days = 0);
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");

    let requests = brand_requests(&fake);
    assert_eq!(requests.len(), usernames.len());
    assert!(requests.iter().all(|(_, a)| a.is_none()), "{requests:?}");
    assert_eq!(media_written(out.path(), t).len(), usernames.len() * 25);
    assert!(summary.brands_lookback.is_none());
}

#[test]
fn the_lookbacks_pages_are_in_the_budget_and_a_lookback_that_cannot_fit_is_refused() {
    let shipped = Config::parse(EMBEDDED, "configure.toml", &Overrides::default()).expect("valid");
    assert_eq!(shipped.brands.lookback_days, 7);
    let used = shipped.check_budget(1).expect("the shipped schedule fits");
    assert!(
        used.arithmetic
            .contains("200 calls/h - 11 accounts × 1 brands run/h - 33 lookback pages/h"),
        "{}",
        used.arithmetic
    );
    assert_eq!(used.for_hashtags, vec![200 - 11 - 33 - 1]);

    let long = Config::parse(
        &EMBEDDED.replace("lookback_days = 7", "lookback_days = 60"),
        "long.toml",
        &Overrides::default(),
    )
    .expect("parses");
    let refused = long
        .check_budget(1)
        .expect_err("60 days of pages do not fit");
    let msg = refused.to_string();
    assert!(
        msg.contains("long.toml") && msg.contains("lower brands.lookback_days"),
        "{msg}"
    );
    assert!(msg.contains("- 308 lookback pages/h"), "{msg}");
}

#[test]
fn lookback_and_backfill_days_out_of_range_name_their_keys() {
    let text = EMBEDDED
        .replace("lookback_days = 7", "lookback_days = 366")
        .replace("backfill_days = 0", "backfill_days = 3651");
    let msg = Config::parse(&text, "bad.toml", &Overrides::default())
        .expect_err("refused")
        .to_string();
    assert!(msg.contains("bad.toml"), "{msg}");
    assert!(
        msg.contains("brands.lookback_days: 366 is not in 0..=365"),
        "{msg}"
    );
    assert!(
        msg.contains("brands.backfill_days: 3651 is not in 0..=3650"),
        "{msg}"
    );
}

#[test]
fn the_plan_counts_each_accounts_lookback_pages_in_an_invocations_calls() {
    // 60 accounts over 2 credentials; one invocation takes 4 slots × 12 calls = 48 calls.
    let mut config = config_for("https://unused");
    config.targets = support::synthetic_targets(60);
    config.graph.concurrency = 4;
    config.fanout.invocation_timeout = std::time::Duration::from_secs(60);
    config.retry.deadline_margin = std::time::Duration::from_secs(8);
    config.fanout.call_time = std::time::Duration::from_millis(52_000 / 12);
    // A week: each account's first page and 3 pages back, 120 calls per credential: 3 shards.
    let week = ig_collector::plan::plan(&config, 2, Job::Brands);
    assert_eq!(week.shards.len(), 6, "{week:?}");
    // The first pages only: 30 calls per credential, one shard each.
    config.brands.lookback_days = 0;
    let none = ig_collector::plan::plan(&config, 2, Job::Brands);
    assert_eq!(none.shards.len(), 2, "{none:?}");
}

/// Posts each account has in the six-hour test: past 30 days at one post every 2 hours.
const LONG_HISTORY: usize = 400;

/// The acceptance: six hours of both jobs on one credential, `lookback_days = 7`,
/// `backfill_days = 30`, accounts with hundreds of older posts.
#[tokio::test]
async fn six_hours_of_both_jobs_backfill_thirty_days_keep_the_week_fresh_and_stay_within_the_hour()
{
    let start = at(10, 0, 0);
    let newest = start - Duration::minutes(30);
    let (fake, usernames) = fake_with_posts(newest, LONG_HISTORY).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| {
        c.brands.lookback_days = 7;
        c.brands.backfill_days = 30;
    });
    let allowance = u64::from(app.config.budget.calls_per_hour_per_credential);
    assert_eq!(allowance, 200);

    // Every 5 minutes a hashtags run; on the hour a brands run first.
    let mut calls: Vec<(DateTime<Utc>, u64)> = Vec::new();
    let mut written: std::collections::HashSet<String> = Default::default();
    let mut last_brands = None;
    let mut backfills = Vec::new();
    for step in 0..72 {
        let t = start + Duration::minutes(5 * step);
        for job in jobs_at(step) {
            let before = fake.seen().len() as u64;
            let summary = run(&app, *job, t, None)
                .await
                .unwrap_or_else(|e| panic!("the {job:?} run at {t} failed: {e}"));
            calls.push((t, fake.seen().len() as u64 - before));
            if *job == Job::Brands {
                for r in media_written(out.path(), t) {
                    written.insert(r["media_id"].as_str().unwrap_or_default().to_string());
                }
                eprintln!(
                    "DBG {t} lookback={:?} backfill={:?}",
                    summary.brands_lookback, summary.brands_backfill
                );
                backfills.push(summary.brands_backfill.clone().expect("a backfill report"));
                last_brands = Some(t);
            }
        }
    }
    let end = last_brands.expect("brands ran");

    // Every post younger than 30 days (at the last run) was written by some run.
    let month = end - Duration::days(30);
    let week = end - Duration::days(7);
    let last = media_written(out.path(), end);
    for u in &usernames {
        let posts: Vec<Value> = (0..LONG_HISTORY)
            .map(|k| history_post(u, newest, k))
            .collect();
        let time = |p: &Value| -> DateTime<Utc> {
            DateTime::parse_from_str(
                p["timestamp"].as_str().unwrap_or_default(),
                "%Y-%m-%dT%H:%M:%S%z",
            )
            .expect("a time")
            .with_timezone(&Utc)
        };
        let young: Vec<&Value> = posts.iter().filter(|p| time(p) >= month).collect();
        assert!(young.len() > 300, "{u}: {}", young.len());
        let missing: Vec<&str> = young
            .iter()
            .filter_map(|p| p["id"].as_str())
            .filter(|id| !written.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{u}: {} of {} posts of the 30 days never written, e.g. {:?}",
            missing.len(),
            young.len(),
            missing.first()
        );
        // The last brands run holds every post of the week, with its counts.
        let in_week: Vec<String> = posts
            .iter()
            .filter(|p| time(p) >= week)
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        let last_ids = ids_of(&last, u, newest);
        for id in &in_week {
            assert!(
                last_ids.contains(id),
                "{u}: {id} of the week not in the last run"
            );
        }
    }
    // Nothing older than the 30 days was fetched for the history.
    let requests = brand_requests(&fake);
    let oldest_cursor = requests
        .iter()
        .filter_map(|(_, a)| a.as_deref()?.strip_prefix('p')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    assert!(oldest_cursor < 375, "paged to post {oldest_cursor}");
    // The backfill is reported complete for every account by the end.
    let final_report = backfills.last().expect("reports");
    assert_eq!(
        final_report.accounts_complete,
        usernames.len() as u64,
        "{final_report:?}"
    );
    assert!(backfills.iter().map(|b| b.pages).sum::<u64>() > 0);

    // Both jobs together within the allowance in every 60 minutes.
    for (t, _) in &calls {
        let window: u64 = calls
            .iter()
            .filter(|(u, _)| *u >= *t && *u < *t + Duration::minutes(60))
            .map(|(_, c)| c)
            .sum();
        assert!(window <= allowance, "{window} calls in the hour from {t}");
    }
}

/// The jobs of the 5-minute step `step`: a hashtags run, and on the hour a brands run first.
fn jobs_at(step: i64) -> &'static [Job] {
    if step % 12 == 0 {
        &[Job::Brands, Job::Hashtags]
    } else {
        &[Job::Hashtags]
    }
}

/// The state the runs wrote.
fn state_in(out: &std::path::Path) -> ig_collector::state::State {
    let bytes = std::fs::read(out.join("state/hashtags.json")).expect("a state");
    let (state, _) = ig_collector::state::State::parse(&bytes).expect("a readable state");
    state
}

/// Where `username`'s backfill stands in the state the runs wrote.
fn progress_of(out: &std::path::Path, username: &str) -> ig_collector::backfill::Progress {
    state_in(out)
        .brands
        .get(username)
        .cloned()
        .expect("its progress")
}

/// What the state says credential `key`'s last brands run's lookback needed.
fn lookback_need(out: &std::path::Path, key: &str) -> Option<ig_collector::lookback::Need> {
    state_in(out).lookback.get(key).copied()
}

#[tokio::test]
async fn the_next_brands_run_books_the_lookback_pages_the_last_one_needed_and_recovers_when_accounts_post_more(
) {
    let t = at(10, 0, 0);
    // Ten posts each, one every 2 hours: the first page holds them all.
    let (fake, usernames) = fake_with_posts(t - Duration::minutes(30), 10).await;
    let accounts = usernames.len() as u64;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| c.brands.lookback_days = 7);
    let key = support::CALLER_ID;

    let first = run(&app, Job::Brands, t, None).await.expect("brands run");
    assert_eq!(lookback(&first).pages, 0);
    let need = lookback_need(out.path(), key).expect("the lookback's need is kept");
    assert_eq!((need.accounts, need.pages), (accounts, 0));

    // Every account now has a week of posts to page back through (3 pages each), but the run
    // books what the last one needed, none: every account is cut short and says so. No first
    // page is lost.
    let t2 = t + Duration::hours(1);
    for u in &usernames {
        fake.set_history(u, t2 - Duration::minutes(30), POSTS);
    }
    let second = run(&app, Job::Brands, t2, None).await.expect("brands run");
    let report = lookback(&second);
    assert_eq!((report.pages, report.accounts_cut_short), (0, accounts));
    assert!(
        second.failed_targets.is_empty(),
        "{:?}",
        second.failed_targets
    );
    let need = lookback_need(out.path(), key).expect("kept");
    assert_eq!(
        need.pages,
        3 * accounts,
        "cut short: at least the assumption's pages"
    );

    // The next run books them, and every account's week is read again.
    let t3 = t2 + Duration::hours(1);
    let third = run(&app, Job::Brands, t3, None).await.expect("brands run");
    let report = lookback(&third);
    assert_eq!((report.pages, report.accounts_cut_short), (3 * accounts, 0));
    assert_eq!(
        media_written(out.path(), t3).len() as u64,
        accounts * IN_WINDOW as u64
    );
}

/// The offsets (`pN`) of the media cursors asked for `username` in the fake's requests from
/// index `from` on.
fn cursors_asked(fake: &FakeGraph, username: &str, from: usize) -> Vec<usize> {
    brand_requests(fake)
        .into_iter()
        .skip(from)
        .filter(|(u, _)| u == username)
        .filter_map(|(_, a)| a?.strip_prefix('p')?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_backfill_resumes_where_it_stopped_after_a_redelivery_and_after_a_failed_page() {
    let start = at(10, 0, 0);
    let newest = start - Duration::minutes(30);
    let (fake, _) = fake_with_posts(newest, LONG_HISTORY).await;
    let out = tempfile::tempdir().expect("tempdir");
    // 6 calls per account per invocation: its first page, 3 lookback pages, 2 backfill pages.
    let app = app(&fake, out.path(), |c| {
        c.brands.lookback_days = 7;
        c.brands.backfill_days = 30;
        c.retry.max_attempts = 1;
        c.fanout.call_time = std::time::Duration::from_millis(52_000 / 6);
    });

    // The first run pages on from the lookback's last page (posts 75..100): p100, p125.
    let first = run(&app, Job::Brands, start, None).await.expect("run");
    assert_eq!(cursors_asked(&fake, "dior", 0), vec![25, 50, 75, 100, 125]);
    let after_first = progress_of(out.path(), "dior");
    assert_eq!(after_first.cursor.as_deref(), Some("p150"));
    let report = first.brands_backfill.expect("reported");
    assert_eq!(report.pages, 2 * 11);
    assert_eq!(report.accounts_left, 11);

    // A redelivery of the same time resumes from p150: nothing of the backfill is asked again.
    let seen = brand_requests(&fake).len();
    run(&app, Job::Brands, start, None)
        .await
        .expect("redelivery");
    assert_eq!(
        cursors_asked(&fake, "dior", seen),
        vec![25, 50, 75, 150, 175]
    );
    assert_eq!(
        progress_of(out.path(), "dior").cursor.as_deref(),
        Some("p200")
    );

    // A run whose backfill page fails keeps the progress where it was, and the run succeeds.
    let seen = brand_requests(&fake).len();
    let mut faults = vec![Fault::Usage(10); 4];
    faults.push(Fault::Error {
        status: 500,
        code: 2,
        subcode: None,
        transient: Some(true),
    });
    fake.fault("dior", faults);
    let failed = run(&app, Job::Brands, start + Duration::hours(1), None)
        .await
        .expect("a failed backfill page does not fail the run");
    assert_eq!(cursors_asked(&fake, "dior", seen), vec![25, 50, 75, 200]);
    assert_eq!(
        failed.brands_backfill.expect("reported").pages_failed,
        1,
        "dior's page"
    );
    assert_eq!(
        progress_of(out.path(), "dior").cursor.as_deref(),
        Some("p200")
    );

    // The next run resumes from there.
    let seen = brand_requests(&fake).len();
    run(&app, Job::Brands, start + Duration::hours(2), None)
        .await
        .expect("run");
    assert_eq!(
        cursors_asked(&fake, "dior", seen),
        vec![25, 50, 75, 200, 225]
    );
}

#[tokio::test]
async fn a_short_hour_gives_the_backfill_nothing_before_the_first_pages_and_the_lookback() {
    let t = at(10, 0, 0);
    let newest = t - Duration::minutes(30);
    let (fake, usernames) = fake_with_history(newest).await;
    let out = tempfile::tempdir().expect("tempdir");
    // 44 calls for the first pages, 42 for the lookback's 33 pages: 100 leave 14, which the
    // hashtags' coming hour needs (11 hashtags, at least 2 polls an hour each: 22).
    let app = app(&fake, out.path(), |c| {
        c.brands.lookback_days = 7;
        c.brands.backfill_days = 30;
        c.budget.calls_per_hour_per_credential = 100;
    });
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");
    let backfill = summary.brands_backfill.clone().expect("reported");
    assert_eq!(
        (backfill.calls_granted, backfill.pages),
        (0, 0),
        "{backfill:?}"
    );
    let lookback = lookback(&summary);
    assert_eq!((lookback.pages, lookback.pages_skipped), (33, 0));
    for u in &usernames {
        assert_eq!(
            cursors_asked(&fake, u, 0),
            vec![25, 50, 75],
            "{u}: no backfill page"
        );
    }
    // With the whole hour to spare, the same run pages on.
    let roomy = tempfile::tempdir().expect("tempdir");
    let app = self::app(&fake, roomy.path(), |c| {
        c.brands.lookback_days = 7;
        c.brands.backfill_days = 30;
    });
    let summary = run(&app, Job::Brands, t, None).await.expect("brands run");
    let backfill = summary.brands_backfill.expect("reported");
    assert!(backfill.pages >= usernames.len() as u64, "{backfill:?}");
}

/// `hashtag`'s pages at `now`: a post a minute since three hours before `start`, newest first,
/// `page` a page: few pages for the due polls, and a freshness poll always has cause.
fn busy_pages(k: usize, start: DateTime<Utc>, now: DateTime<Utc>, page: usize) -> Vec<Vec<Value>> {
    let first = start - Duration::hours(3);
    let count = ((now - first).num_seconds() / 60).max(0) as u64;
    let base = 18_100_000_000_000_000 + (k as u64 + 1) * 1_000_000;
    let posts: Vec<Value> = (0..count)
        .rev()
        .map(|n| {
            let t = first + Duration::seconds(60 * n as i64);
            serde_json::json!({
                "id": (base + n).to_string(),
                "timestamp": t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
                "caption": "busy", "media_type": "IMAGE", "like_count": 1, "comments_count": 0
            })
        })
        .collect();
    posts.chunks(page.max(1)).map(<[Value]>::to_vec).collect()
}

/// The priority order across the hour: freshness polls and the backfill spend only what the
/// next brands run leaves. An hour apart, two brands runs fall in one 60-minute window of the
/// ledger, so with busy hashtags (a post a minute each) and a 30-day backfill, every
/// brands run over three hours must still get every account's first page and every lookback
/// page, and no 60 minutes pass the allowance.
#[tokio::test]
async fn busy_hashtags_and_a_backfill_leave_every_brands_run_its_first_pages_and_its_lookback() {
    let start = at(10, 0, 0);
    let newest = start - Duration::minutes(30);
    let (fake, usernames) = fake_with_posts(newest, LONG_HISTORY).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), |c| {
        c.brands.lookback_days = 7;
        c.brands.backfill_days = 30;
    });
    let allowance = u64::from(app.config.budget.calls_per_hour_per_credential);
    let page = app.config.graph.hashtag_media_limit as usize;
    let tags: Vec<String> = app
        .config
        .hashtag_groups()
        .into_iter()
        .map(|g| g.hashtag)
        .collect();
    for tag in &tags {
        fake.add_hashtag(tag);
    }
    let mut calls: Vec<(DateTime<Utc>, u64)> = Vec::new();
    let (mut brands_runs, mut fresh_polls) = (0, 0);
    for step in 0..36 {
        let t = start + Duration::minutes(5 * step);
        for (k, tag) in tags.iter().enumerate() {
            fake.set_pages(tag, busy_pages(k, start, t, page));
        }
        for job in jobs_at(step) {
            let before = fake.seen().len() as u64;
            let summary = run(&app, *job, t, None)
                .await
                .unwrap_or_else(|e| panic!("the {job:?} run at {t} failed: {e}"));
            let spent = fake.seen().len() as u64 - before;
            calls.push((t, spent));
            if *job != Job::Brands {
                let polled = summary.hashtags.values();
                fresh_polls += polled
                    .filter(|r| r.due == Due::Fresh && r.pages > 0)
                    .count();
                continue;
            }
            brands_runs += 1;
            assert!(
                summary.failed_targets.is_empty(),
                "the brands run at {t} lost first pages: {:?}",
                summary.failed_targets
            );
            let lookback = lookback(&summary);
            assert_eq!(
                (lookback.pages_skipped, lookback.accounts_cut_short),
                (0, 0),
                "the brands run at {t} lost lookback pages: {lookback:?}"
            );
            assert_eq!(
                summary.records[&ig_collector::records::Kind::Brand],
                usernames.len()
            );
        }
    }
    assert_eq!(brands_runs, 3);
    for (t, _) in &calls {
        let window: u64 = calls
            .iter()
            .filter(|(u, _)| *u >= *t && *u < *t + Duration::minutes(60))
            .map(|(_, c)| c)
            .sum();
        assert!(window <= allowance, "{window} calls in the hour from {t}");
    }
    // The hashtags were busy enough for freshness polls, which had calls to spare as well.
    assert!(
        fresh_polls > 11,
        "{fresh_polls} freshness polls in three hours"
    );
}

#[test]
fn freshness_leaves_the_next_brands_run_what_its_last_run_needed_not_the_assumption() {
    let shipped = Config::parse(EMBEDDED, "configure.toml", &Overrides::default()).expect("valid");
    let key = support::CALLER_ID.to_string();
    let mut state = ig_collector::state::State::default();
    // No need recorded: 11 first pages, the token check, 33 lookback pages and their retries' 9.
    let assumed = ig_collector::credential::lane_of(&shipped, None, key.clone(), (0, 1), &state);
    assert_eq!(assumed.brands_run, 11 + 1 + 33 + 9);
    // The last brands run read no page past the first ones: the next one needs 12.
    state.lookback.insert(
        key.clone(),
        ig_collector::lookback::Need {
            accounts: 11,
            pages: 0,
        },
    );
    let observed = ig_collector::credential::lane_of(&shipped, None, key.clone(), (0, 1), &state);
    assert_eq!(observed.brands_run, 12);
    // Another credential's need is not this one's.
    let other = ig_collector::credential::lane_of(&shipped, None, "9".into(), (0, 1), &state);
    assert_eq!(other.brands_run, assumed.brands_run);
    // What the check plans for is the assumption either way.
    assert_eq!(observed.calls_per_hour, 155);
}
