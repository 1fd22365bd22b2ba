//! Hashtag completeness within the budget, through the fake Graph API: a hashtag is polled when
//! due and paged back to its frontier, state between runs, no search call once an id is known,
//! the hourly budget (its check, a poll cut short, priorities), several credentials.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use ig_collector::collect::{run, App, Job, RunSummary};
use ig_collector::config::Config;
use ig_collector::graph::{ErrorKind, Source};
use ig_collector::sink::Sink;
use serde_json::{json, Value};

use crate::support::graph::FakeGraph;
use crate::support::{self, at, config_for, replay_dir, CALLER_ID, TOKEN};

fn app(
    fake: &FakeGraph,
    out: &std::path::Path,
    credentials: Vec<(&str, &str)>,
    tweak: impl FnOnce(&mut Config),
) -> App {
    let mut config = config_for(&fake.url());
    tweak(&mut config);
    let credentials = credentials
        .into_iter()
        .map(|(id, token)| support::credentials(id, token))
        .collect();
    let source = Source::live(&config.graph, credentials).expect("client");
    App {
        shard: None,
        config,
        source,
        sink: Sink::Dir(out.to_path_buf()),
        clock: Default::default(),
    }
}

/// A post of #dior at `t`.
fn post(id: u64, t: DateTime<Utc>) -> Value {
    json!({"id": id.to_string(), "timestamp": t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(), "caption": format!("post {id} #dior"), "media_type": "IMAGE", "like_count": 1, "comments_count": 0})
}

/// The media ids a run wrote for one brand's hashtag.
fn written(out: &std::path::Path, summary: &RunSummary, user_id: &str) -> Vec<String> {
    let key = summary.keys_written.first().expect("a key");
    assert!(key.starts_with(out.to_str().expect("utf-8")));
    let records: Value = serde_json::from_slice(&std::fs::read(key).expect("read")).expect("json");
    records
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["user_id"] == user_id)
        .map(|r| r["media_id"].as_str().expect("id").to_string())
        .collect()
}

const DIOR: &str = "17841401694708594";

#[tokio::test]
async fn a_burst_of_120_posts_served_unordered_across_pages_is_captured_exactly_once() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    // Polls only when due (no freshness polls from spare calls), so a run with nothing due
    // makes no call.
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
        c.hashtags.fresh_delay = None
    });
    let base = at(0, 0, 0);
    let old: Vec<Value> = (0..50)
        .map(|i| {
            post(
                18_000_000_000_000_000 + i,
                base - Duration::minutes(50 - i as i64),
            )
        })
        .collect();
    fake.set_pages("dior", vec![old.clone()]);

    let first = run(&app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("first run");
    assert!(
        first
            .state
            .as_deref()
            .is_some_and(|s| s.contains("no state")),
        "{:?}",
        first.state
    );
    assert_eq!(first.hashtag_pages["dior"], 1);
    assert_eq!(fake.calls_for("ig_hashtag_search"), 11);

    // 120 posts within 5 minutes, shuffled across four pages with the 50 older ones.
    let burst: Vec<Value> = (0..120)
        .map(|i| {
            post(
                18_100_000_000_000_000 + i,
                base + Duration::seconds(48 + 2 * i as i64),
            )
        })
        .collect();
    let mut feed: Vec<Value> = burst.iter().chain(old.iter()).cloned().collect();
    let n = feed.len();
    let order: Vec<usize> = (0..n).map(|i| (i * 37) % n).collect();
    feed = order.into_iter().map(|i| feed[i].clone()).collect();
    fake.set_pages("dior", feed.chunks(43).map(<[Value]>::to_vec).collect());

    // Nothing is due five minutes after the first run: no call at all.
    let calls = fake.seen().len();
    let quiet = run(&app, Job::Hashtags, at(0, 5, 47), None)
        .await
        .expect("a run with nothing due");
    assert!(quiet.hashtag_pages.is_empty(), "{:?}", quiet.hashtag_pages);
    assert_eq!(fake.seen().len(), calls, "no call when nothing is due");
    let second = run(&app, Job::Hashtags, at(0, 30, 47), None)
        .await
        .expect("second run");
    assert_eq!(
        second.hashtag_pages["dior"], 4,
        "{:?}",
        second.hashtag_pages
    );
    assert!(
        second
            .hashtag_pages
            .iter()
            .filter(|(k, _)| *k != "dior")
            .all(|(_, p)| *p == 1),
        "no new posts elsewhere: one page"
    );
    assert_eq!(
        second.hashtag_pages.len(),
        11,
        "every hashtag due after 30 minutes"
    );
    let third = run(&app, Job::Hashtags, at(0, 35, 47), None)
        .await
        .expect("third run");
    assert!(third.hashtag_pages.is_empty(), "{:?}", third.hashtag_pages);
    assert_eq!(
        fake.calls_for("ig_hashtag_search"),
        11,
        "a normal run makes no search call"
    );

    let mut all = Vec::new();
    for s in [&first, &quiet, &second, &third] {
        all.extend(written(out.path(), s, DIOR));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &all {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 170, "every post captured");
    assert!(
        counts.values().all(|c| *c == 1),
        "each exactly once: {:?}",
        counts.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
    assert_eq!(written(out.path(), &second, DIOR).len(), 120);
    assert!(written(out.path(), &third, DIOR).is_empty());
}

#[tokio::test]
async fn a_corrupt_state_waits_out_the_hour_its_lost_ledger_may_have_spent_then_pages_back() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |_| {});
    std::fs::create_dir_all(out.path().join("state")).expect("mkdir");
    std::fs::write(
        out.path().join("state/hashtags.json"),
        b"{\"version\": 1, \"hashtags\": {\"dior\": [",
    )
    .expect("write");
    let summary = run(&app, Job::Hashtags, at(1, 0, 0), None)
        .await
        .expect("the run succeeds");
    assert!(
        summary
            .state
            .as_deref()
            .is_some_and(|s| s.contains("unreadable state")),
        "{:?}",
        summary.state
    );
    // The calls booked in the lost ledger are unknown: the hour before is taken as spent, so
    // this run sends nothing and every hashtag is left behind, not given up.
    assert!(fake.seen().is_empty(), "{} calls", fake.seen().len());
    assert_eq!(summary.records.values().sum::<usize>(), 0);
    assert_eq!(summary.posts_given_up, Some(0));
    // The run rewrote a readable state that books that hour, for the runs after it.
    let state: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("state/hashtags.json")).expect("read"),
    )
    .expect("json");
    assert!(
        state["ledger"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["lane"] == "*")),
        "{state}"
    );
    let still = run(&app, Job::Hashtags, at(1, 55, 0), None)
        .await
        .expect("a run within the hour");
    assert!(fake.seen().is_empty(), "{:?}", still.hashtag_pages);
    // An hour on, the hashtags page back through the API's 24 hours: every post is written.
    let after = run(&app, Job::Hashtags, at(2, 0, 5), None)
        .await
        .expect("the run after the hour");
    assert_eq!(after.records.values().sum::<usize>(), 275);
    assert_eq!(
        state_of(out.path())["hashtags"]["dior"]["hashtag_id"],
        fake.hashtag_id("dior")
    );
}

fn state_of(out: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("state/hashtags.json")).expect("read"))
        .expect("json")
}

#[test]
fn a_config_over_the_hourly_budget_is_refused_with_the_arithmetic() {
    let shipped = config_for("https://unused")
        .check_budget(1)
        .expect("the shipped schedule fits");
    // 11 brands calls, their 33 lookback pages and the token check; 11 hashtags polled at least
    // every 30 minutes.
    assert_eq!(shipped.for_hashtags, [155]);
    assert_eq!(shipped.calls_per_hour, 12 + 33 + 22);
    // Polled at least every 5 minutes on 100 calls an hour: 11 × 12 = 132 > 55.
    let mut config = config_for("https://unused");
    config.hashtags.max_delay = std::time::Duration::from_secs(5 * 60);
    config.budget.calls_per_hour_per_credential = 100;
    let msg = config.check_budget(1).expect_err("over budget").to_string();
    assert!(
        msg.contains("credential 1 of 1: 100 calls/h - 11 accounts × 1 brands run/h - 33 lookback pages/h (11 accounts × 3 pages back for brands.lookback_days 7 at 12 posts/day, 25 a page) - 1 token check = 55 calls/h for 11 hashtags; each polled at least every 5 min"),
        "{msg}"
    );
    assert!(msg.contains("11 × 12.0 = 132.0 calls/h"), "{msg}");
    let two = config
        .check_budget(2)
        .expect("two credentials share the hashtags");
    // 6 and 5 accounts, 18 and 15 lookback pages.
    assert_eq!(two.for_hashtags, [75, 79]);
    // The API's 30 unique hashtags per app user in 7 days.
    let mut many = config_for("https://unused");
    let base = many.targets[0].clone();
    many.targets = (0..31)
        .map(|i| {
            let mut t = base.clone();
            t.hashtag = format!("tag{i}");
            t
        })
        .collect();
    many.budget.calls_per_hour_per_credential = 10_000;
    let msg = many.check_budget(1).expect_err("31 hashtags").to_string();
    assert!(
        msg.contains("31 hashtags") && msg.contains("30 unique hashtags"),
        "{msg}"
    );
    assert!(many.check_budget(2).is_ok(), "16 + 15 fit");
}

#[tokio::test(flavor = "current_thread")]
async fn a_rejected_credential_fails_only_its_targets() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let other = "EAAGotherTOKENrevoked000000";
    let app = app(
        &fake,
        out.path(),
        vec![(CALLER_ID, TOKEN), ("17841400000000001", other)],
        |c| c.graph.concurrency = 1,
    );
    let started = Instant::now();
    let summary = run(&app, Job::Brands, at(2, 0, 0), None)
        .await
        .expect("the healthy credential's targets are written");
    assert!(started.elapsed().as_secs() < 10);
    let failed: Vec<(&str, ErrorKind)> = summary
        .failed_targets
        .iter()
        .map(|f| (f.target.as_str(), f.error_kind))
        .collect();
    // Targets alternate between the two credentials: every second one used the rejected token.
    assert_eq!(
        failed,
        [
            ("chanelofficial", ErrorKind::Token),
            ("louisvuitton", ErrorKind::Token),
            ("prada", ErrorKind::Token),
            ("celine", ErrorKind::Token),
            ("miumiu", ErrorKind::Token)
        ]
    );
    assert_eq!(summary.records[&ig_collector::records::Kind::Brand], 6);
    let with_other = fake
        .seen()
        .iter()
        .filter(|s| s.authorization.as_deref() == Some(&format!("Bearer {other}")))
        .count();
    assert_eq!(with_other, 1, "no call with a token after it was rejected");
}

/// Runs a first time (00:00:47) so there is a state, then serves `pages` for each named hashtag
/// (all other hashtags keep their fixture page) and runs again at `then`; returns the second
/// summary.
async fn second_run_at(
    fake: &FakeGraph,
    app: &App,
    then: DateTime<Utc>,
    pages: Vec<(&str, Vec<Vec<Value>>)>,
) -> RunSummary {
    run(app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("first run");
    for (tag, p) in pages {
        fake.set_pages(tag, p);
    }
    run(app, Job::Hashtags, then, None)
        .await
        .expect("second run")
}

/// `n` pages of 50 new posts each, newest first, for a hashtag (ids from `base`), all newer than
/// the fixtures' posts.
fn new_pages(base: u64, n: usize) -> Vec<Vec<Value>> {
    (0..n)
        .map(|p| {
            (0..50)
                .map(|i| {
                    let k = (p * 50 + i) as u64;
                    post(base + k, at(0, 25, 0) - Duration::seconds(k as i64))
                })
                .collect()
        })
        .collect()
}

/// The ids a run wrote for `user_id`, or none when it wrote no object.
fn written_or_none(out: &std::path::Path, summary: &RunSummary, user_id: &str) -> Vec<String> {
    if summary.keys_written.is_empty() {
        return Vec::new();
    }
    written(out, summary, user_id)
}

#[tokio::test]
async fn a_poll_cut_short_by_the_hourly_budget_keeps_its_frontier_and_a_later_run_fetches_the_rest()
{
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    // One target; 6 calls an hour: 1 brands call and the token check leave 4 for #dior.
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
        c.targets.retain(|t| t.hashtag == "dior");
        c.budget.calls_per_hour_per_credential = 6;
        // The brands job's first pages only: the lookback's pages are `history`'s.
        c.brands.lookback_days = 0;
    });
    let first = run(&app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("first run");
    assert_eq!(first.hashtag_pages["dior"], 1);
    let old = support::read_json(replay_dir().join("hashtags/dior.json"))["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut pages = new_pages(18_200_000_000_000_000, 2);
    pages.push(old);
    fake.set_pages("dior", pages);
    // 30 minutes on: due; the hour has 2 calls left (the first run booked its search and its
    // page).
    let second = run(&app, Job::Hashtags, at(0, 30, 47), None)
        .await
        .expect("second run");
    assert_eq!(second.hashtag_pages["dior"], 2, "{:?}", second.hashtags);
    assert_eq!(second.hashtag_budget[0].calls_per_hour, 4);
    assert_eq!(second.hashtag_budget[0].booked, 2);
    assert_eq!(second.hashtag_budget[0].spent, 2);
    let report = &second.hashtags["dior"];
    assert!(!report.caught_up && report.pages_refused == 1, "{report:?}");
    assert!(second.posts_behind.unwrap_or(0) > 0, "{second:?}");
    assert_eq!(written(out.path(), &second, DIOR).len(), 100);
    // Within the hour no call is left: the hashtag waits, and says so.
    let third = run(&app, Job::Hashtags, at(0, 35, 47), None)
        .await
        .expect("third run");
    assert!(third.hashtag_pages.is_empty());
    assert!(third.posts_behind.unwrap_or(0) > 0);
    assert_eq!(third.hashtags["dior"].due, ig_collector::pager::Due::Behind);
    // An hour later the budget is back: the poll pages back to the frontier, nothing twice.
    let fourth = run(&app, Job::Hashtags, at(1, 45, 47), None)
        .await
        .expect("fourth run");
    assert_eq!(fourth.hashtag_pages["dior"], 3, "{:?}", fourth.hashtags);
    assert!(fourth.hashtags["dior"].caught_up);
    assert_eq!(fourth.posts_behind, Some(0));
    assert!(
        written_or_none(out.path(), &fourth, DIOR).is_empty(),
        "nothing new, nothing twice"
    );
}

#[tokio::test]
async fn a_short_budget_serves_the_higher_hashtag_priority_first_whatever_the_order() {
    for (dior, gucci) in [(2, 9), (9, 2)] {
        let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
        let out = tempfile::tempdir().expect("tempdir");
        // Two targets (dior first); 10 calls an hour: 2 brands calls and the token check leave
        // 7, of which the first run books 4 (two searches, two pages).
        let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
            c.targets
                .retain(|t| t.hashtag == "dior" || t.hashtag == "gucci");
            for t in &mut c.targets {
                t.hashtag_priority = if t.hashtag == "dior" { dior } else { gucci };
            }
            c.budget.calls_per_hour_per_credential = 10;
            // The brands job's first pages only: the lookback's pages are `history`'s.
            c.brands.lookback_days = 0;
        });
        let s = second_run_at(
            &fake,
            &app,
            at(0, 30, 47),
            vec![
                ("dior", new_pages(18_300_000_000_000_000, 3)),
                ("gucci", new_pages(18_400_000_000_000_000, 3)),
            ],
        )
        .await;
        let (high, low) = if dior > gucci {
            ("dior", "gucci")
        } else {
            ("gucci", "dior")
        };
        assert_eq!(s.hashtag_pages[high], 2, "{:?}", s.hashtags);
        assert_eq!(s.hashtag_pages[low], 1, "{:?}", s.hashtags);
        assert!(s.hashtags[low].pages_refused > 0 && s.hashtags[low].posts_behind > 0);
        assert!(
            s.hashtags[high].pages_refused > 0,
            "3 pages wanted, 3 calls left in all"
        );
    }
}

#[tokio::test]
async fn a_repeated_cursor_ends_paging_and_a_post_seen_twice_is_written_once() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |_| {});
    run(&app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("first run");
    let pages = new_pages(18_500_000_000_000_000, 2);
    // Page 2 repeats two posts of page 1, and every page names the same next cursor.
    let mut second_page = pages[1].clone();
    second_page.extend(pages[0][..2].iter().cloned());
    fake.set_pages("dior", vec![pages[0].clone(), second_page]);
    fake.set_stuck_cursor("dior");
    let s = run(&app, Job::Hashtags, at(0, 30, 47), None)
        .await
        .expect("second run");
    assert_eq!(s.hashtag_pages["dior"], 2, "{:?}", s.hashtag_pages);
    let ids = written(out.path(), &s, DIOR);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "each post once");
    assert_eq!(ids.len(), 100);
}

#[tokio::test]
async fn accounts_without_a_hashtag_are_left_to_the_brands_job_and_count_only_there() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
        for t in c.targets.iter_mut().skip(5) {
            t.hashtag.clear();
            t.hashtag_id = None;
        }
    });
    let h = run(&app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("hashtags run");
    assert_eq!(h.targets_total, 5);
    assert_eq!(
        h.hashtag_pages.keys().collect::<Vec<_>>(),
        ["chanel", "dior", "gucci", "hermes", "louisvuitton"]
    );
    assert_eq!(fake.calls_for("ig_hashtag_search"), 5);
    let b = run(&app, Job::Brands, at(1, 0, 0), None)
        .await
        .expect("brands run");
    assert_eq!(b.records[&ig_collector::records::Kind::Brand], 11);
    // The budget: 11 accounts' brands calls and lookback pages, 5 hashtags; over two
    // credentials, 3 and 2.
    let one = app.config.check_budget(1).expect("fits");
    assert!(
        one.arithmetic.contains(
            "11 accounts × 1 brands run/h - 33 lookback pages/h (11 accounts × 3 pages back"
        ) && one
            .arithmetic
            .contains("- 1 token check = 155 calls/h for 5 hashtags"),
        "{}",
        one.arithmetic
    );
    let two = app.config.budget_use(2).arithmetic;
    assert!(
        two.contains(
            "6 accounts × 1 brands run/h - 18 lookback pages/h (6 accounts × 3 pages back"
        ) && two.contains("- 1 token check = 175 calls/h for 3 hashtags")
            && two.contains(
                "5 accounts × 1 brands run/h - 15 lookback pages/h (5 accounts × 3 pages back"
            )
            && two.contains("- 1 token check = 179 calls/h for 2 hashtags"),
        "{two}"
    );
    // The hashtags job runs for the 5 hashtags, and its allowance still leaves the brands calls
    // (and lookback pages) of all 11.
    assert_eq!(app.targets(Job::Hashtags).len(), 5);
    assert_eq!(app.config.hashtag_calls_per_hour(0, 1), 155);
}

#[test]
fn a_hashtag_id_without_a_hashtag_is_refused_by_name() {
    use ig_collector::config::{Overrides, EMBEDDED};
    let none = EMBEDDED.replacen("hashtag = \"hermes\"", "hashtag = \"\"", 1);
    let config = Config::parse(&none, "t.toml", &Overrides::default()).expect("an account alone");
    assert!(config.targets[0].hashtag.is_empty());
    let orphan = none.replacen("hashtag_id = \"\"", "hashtag_id = \"17843826142012701\"", 1);
    let err = Config::parse(&orphan, "t.toml", &Overrides::default())
        .expect_err("an id for no hashtag")
        .to_string();
    assert!(
        err.contains("t.toml") && err.contains("targets[0].hashtag_id"),
        "{err}"
    );
}

#[tokio::test]
async fn a_hashtag_tracked_by_two_accounts_is_polled_once_and_its_posts_written_for_each() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    // chanelofficial tracks #Dior as well (Instagram's hashtags ignore case).
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
        c.targets[1].hashtag = "Dior".into();
    });
    let chanel = app.config.targets[1].user_id.clone();
    let base = at(0, 0, 0);
    let old: Vec<Value> = (0..50)
        .map(|i| {
            post(
                18_000_000_000_000_000 + i,
                base - Duration::minutes(50 - i as i64),
            )
        })
        .collect();
    fake.set_pages("dior", vec![old.clone()]);
    let first = run(&app, Job::Hashtags, at(0, 0, 47), None)
        .await
        .expect("first run");
    assert_eq!(first.hashtag_pages.get("dior"), Some(&1), "{:?}", first);
    assert_eq!(
        first.hashtag_pages.len(),
        10,
        "ten hashtags for eleven accounts"
    );
    let mut a = written(out.path(), &first, DIOR);
    let mut b = written(out.path(), &first, &chanel);
    a.sort();
    b.sort();
    assert_eq!(a.len(), 50);
    assert_eq!(a, b, "the same posts for both accounts");

    // 120 new posts over three pages: one poll pages back to the frontier for both.
    let burst: Vec<Value> = (0..120)
        .rev()
        .map(|i| {
            post(
                18_100_000_000_000_000 + i,
                base + Duration::seconds(48 + 2 * i as i64),
            )
        })
        .collect();
    let feed: Vec<Value> = burst.iter().chain(old.iter()).cloned().collect();
    fake.set_pages("dior", feed.chunks(50).map(<[Value]>::to_vec).collect());
    let before = fake.calls_for("/recent_media");
    let second = run(&app, Job::Hashtags, at(0, 30, 47), None)
        .await
        .expect("second run");
    assert_eq!(
        second.hashtag_pages["dior"], 3,
        "{:?}",
        second.hashtag_pages
    );
    assert_eq!(
        fake.calls_for("/recent_media") - before,
        second.hashtag_pages.values().sum::<u32>() as usize,
        "each page fetched once, whatever the number of accounts"
    );
    for user in [DIOR, chanel.as_str()] {
        let ids = written(out.path(), &second, user);
        assert_eq!(ids.len(), 120, "{user}: every new post, once");
    }
    let state: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("state/hashtags.json")).expect("state"),
    )
    .expect("json");
    assert!(
        state["hashtags"]["dior"]["complete_to"].is_string(),
        "{state}"
    );
    assert!(
        state["hashtags"].get("Dior").is_none(),
        "one entry for the hashtag"
    );
}

#[tokio::test]
async fn a_run_books_its_calls_before_making_them_and_a_failed_run_leaves_them_booked() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |c| {
        c.retry.base_delay = std::time::Duration::from_millis(1);
        c.retry.max_delay = std::time::Duration::from_millis(2);
    });
    let state_of = || -> Value {
        serde_json::from_slice(
            &std::fs::read(out.path().join("state/hashtags.json")).expect("state"),
        )
        .expect("json")
    };
    run(&app, Job::Hashtags, at(0, 0, 0), None)
        .await
        .expect("first run");
    let booked = |state: &Value| -> (u64, u64) {
        let ledger = state["ledger"].as_array().cloned().unwrap_or_default();
        let sum = |reserved: bool| {
            ledger
                .iter()
                .filter(|e| e["reserved"].as_bool().unwrap_or(false) == reserved)
                .map(|e| e["calls"].as_u64().unwrap_or(0))
                .sum()
        };
        (sum(false), sum(true))
    };
    let (spent, reserved) = booked(&state_of());
    assert_eq!(
        reserved, 0,
        "a finished run's reservation is replaced by what it spent"
    );
    assert_eq!(spent as usize, fake.seen().len(), "every call booked");

    // Every call answers 500 for the next run: every hashtag fails, and yet each request it
    // sent (retries included) is booked, so failing runs cannot pass the hour's allowance.
    let error = crate::support::graph::Fault::Error {
        status: 500,
        code: 2,
        subcode: None,
        transient: Some(true),
    };
    fake.fault("*", std::iter::repeat_n(error, 200));
    let calls = fake.seen().len();
    let failed = run(&app, Job::Hashtags, at(0, 30, 0), None).await;
    assert!(failed.is_err(), "every hashtag failed");
    let sent = (fake.seen().len() - calls) as u64;
    assert!(sent > 11, "retries were sent: {sent}");
    let (spent_after, reserved_after) = booked(&state_of());
    assert_eq!(reserved_after, 0);
    assert_eq!(
        spent_after - spent,
        sent,
        "the failed run's calls are booked"
    );
}

#[tokio::test]
async fn a_time_ahead_of_the_clock_is_refused_and_a_state_from_the_future_is_not_believed() {
    let fake = FakeGraph::start(TOKEN, &replay_dir()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let app = app(&fake, out.path(), vec![(CALLER_ID, TOKEN)], |_| {});
    // A library caller's time in the future (2032 for 2023): nothing read, called or written.
    let ahead = Utc::now() + Duration::days(3000);
    for job in [Job::Hashtags, Job::Brands] {
        let err = run(&app, job, ahead, None)
            .await
            .expect_err("a time ahead of the clock");
        assert_eq!(err.kind_name(), "BadTime", "{err}");
        assert!(err.to_string().contains("ahead of the clock"), "{err}");
    }
    assert!(fake.seen().is_empty());
    assert!(std::fs::read_dir(out.path()).expect("dir").next().is_none());

    // A state that says every hashtag was polled in 2032 (written by an older version, or by
    // hand): the times are not believed, and the run polls.
    run(&app, Job::Hashtags, at(0, 0, 0), None)
        .await
        .expect("first run");
    let path = out.path().join("state/hashtags.json");
    let mut state: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("state")).expect("json");
    for (_, tag) in state["hashtags"]
        .as_object_mut()
        .expect("hashtags")
        .iter_mut()
    {
        tag["polled_at"] = json!("2032-09-02T00:00:00Z");
    }
    state["as_of"] = json!("2032-09-02T00:00:00Z");
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
    let next = run(&app, Job::Hashtags, at(0, 30, 0), None)
        .await
        .expect("a run after the bad state");
    assert_eq!(next.hashtag_pages.len(), 11, "{:?}", next.state);
    assert!(
        next.state
            .as_deref()
            .is_some_and(|n| n.contains("in the future")),
        "{:?}",
        next.state
    );
}
