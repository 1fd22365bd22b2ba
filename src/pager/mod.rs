//! Which `recent_media` pages a hashtags run fetches, within the hourly call budget. **Pure: no
//! IO.** `collect` asks [`Pager::round`] for a round of requests, fetches them, hands each page to
//! [`Pager::absorb`] (or reports a failure with [`Pager::failed`]), and when a round comes back
//! empty calls [`Pager::finish`] for the new per-hashtag states, the calls to book and the
//! report.
//!
//! The model, from what `recent_media` is: it lists the last 24 hours of a hashtag, newest first,
//! 50 posts a page, and a page can only be reached by paging from the newest. So:
//!
//! - **A frontier per hashtag** (`TagState::complete_to`): every post up to it has been fetched.
//!   A poll pages back from the newest post until a page reaches the frontier (less
//!   `overlap`, for posts listed a little out of order), and only then moves it up. A poll cut
//!   short (budget, error, deadline) leaves it where it was: the next poll pages back to it
//!   again, so a post is never skipped while it is still served.
//! - **Due, not every run**: each hashtag's arrival rate is estimated from what its polls found;
//!   it is polled at the interval (a multiple of the schedule, at most `max_delay`) that costs
//!   the fewest pages per hour, so a quiet hashtag pays one page per
//!   `max_delay` and a busy one fills its pages. A hashtag left behind is due at once.
//! - **One hourly budget per credential**: the calls booked in the state's ledger by runs
//!   within an hour of this one are subtracted from the credential's hourly allowance; a run
//!   never spends more than what is left, so no 60-minute window goes over it.
//! - **When the budget is short** the stated rule decides: due hashtags are taken in order of
//!   `hashtag_priority` (highest first), then first polls (one page each), then most posts
//!   behind, then name; each is given the pages its backlog is estimated to need, and the first
//!   one that does not fit waits, with every one after it on that credential, for a later run
//!   (its posts stay fetchable for 24 hours). What waits is reported as posts behind; what ages
//!   out of the 24 hours first is reported as given up, with the exact times it covers. Neither
//!   is silent.
//! - **Late posts**: a page at the frontier that still holds posts not seen before (listed late
//!   by the API) is followed by one more page, paid from what the poll reserved and did not
//!   need, or from calls nobody reserved. A sweep the budget refuses keeps the frontier where it
//!   was, so the next poll sweeps from there.

use chrono::{DateTime, Utc};

use crate::state::{CallSpan, Spend, State};

mod admit;
mod due;
mod finish;
mod lane;
mod poll;
mod report;
mod settings;
mod time;

pub use lane::{brands_booking, Lane, LaneUse};
pub use poll::{Page, Tag};
pub use report::{Due, Outcome, TagReport};
pub use settings::{Settings, RETENTION};

use poll::{TagRun, Want};

/// One page to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Index into the tags given to [`Pager::new`].
    pub tag: usize,
    /// The credential the tag's calls use.
    pub lane: usize,
    /// 1-based.
    pub page: u32,
    /// `paging.cursors.after` of the previous page; `None` for the first.
    pub cursor: Option<String>,
    /// A late-post page past the frontier: the first call dropped under high usage.
    pub optional: bool,
}

/// One run's paging. See the module documentation.
#[derive(Debug)]
pub struct Pager {
    settings: Settings,
    scheduled: DateTime<Utc>,
    /// When the run's calls are made, as the ledger books them.
    calls: CallSpan,
    runs: Vec<TagRun>,
    lanes: Vec<Lane>,
    booked: Vec<u64>,
    /// Calls left per lane.
    left: Vec<u64>,
    /// Of those, what freshness polls may spend per lane (the hashtag allowance's).
    fresh_left: Vec<u64>,
    spent: Vec<u64>,
    /// Service order: indexes into `runs`.
    order: Vec<usize>,
}

impl Pager {
    /// Plans a run scheduled at `scheduled` over `tags`, from `state` (the per-hashtag states
    /// and the ledger) and each credential's hourly allowance.
    ///
    /// `calls` is when the run's calls are made ([`CallSpan`]): what the ledger holds near
    /// it is what the run may not spend.
    pub fn new(
        settings: Settings,
        scheduled: DateTime<Utc>,
        calls: CallSpan,
        tags: Vec<Tag>,
        state: &State,
        lanes: Vec<Lane>,
    ) -> Pager {
        let mut booked = Vec::with_capacity(lanes.len());
        let mut left = Vec::with_capacity(lanes.len());
        let mut fresh_left = Vec::with_capacity(lanes.len());
        for (b, l, f) in lanes.iter().map(|l| l.left(state, calls)) {
            booked.push(b);
            left.push(l);
            fresh_left.push(f);
        }
        let runs: Vec<TagRun> = tags
            .into_iter()
            .map(|tag| due::start(&settings, state, scheduled, tag))
            .collect();
        let order = due::service_order(&runs);
        let mut pager = Pager {
            spent: vec![0; lanes.len()],
            settings,
            scheduled,
            calls,
            runs,
            lanes,
            booked,
            left,
            fresh_left,
            order,
        };
        pager.admit();
        pager
    }

    /// Calls left on each credential's hourly allowance that no admitted hashtag reserved.
    fn unreserved(&self, lane: usize) -> u64 {
        let reserved: u64 = self
            .runs
            .iter()
            .filter(|r| r.tag.lane == lane && r.want != Want::Done)
            .map(|r| r.reserved)
            .sum();
        self.left
            .get(lane)
            .copied()
            .unwrap_or(0)
            .saturating_sub(reserved)
    }

    /// The next round of requests, at most one per hashtag, in service order. Each request is
    /// paid for when it is returned. Empty when the run is done.
    pub fn round(&mut self) -> Vec<PageRequest> {
        let mut out = Vec::new();
        for k in 0..self.order.len() {
            let i = self.order[k];
            let want = self.runs[i].want;
            if want == Want::Done {
                continue;
            }
            let lane = self.runs[i].tag.lane;
            let any_left = self.left.get(lane).is_some_and(|l| *l > 0);
            let paid = if !any_left {
                false
            } else if self.runs[i].reserved > 0 {
                // A sweep page too: what a poll reserved and did not need to reach its frontier.
                self.runs[i].reserved -= 1;
                true
            } else {
                self.unreserved(lane) > 0
            };
            let r = &mut self.runs[i];
            if !paid {
                r.refused += 1;
                // A sweep the budget refused found nothing: its late posts are still to fetch,
                // so the frontier stays where it was (as for a sweep that failed).
                r.sweep_failed |= want == Want::Late;
                r.want = Want::Done;
                continue;
            }
            self.left[lane] = self.left[lane].saturating_sub(1);
            self.spent[lane] += 1;
            out.push(PageRequest {
                tag: i,
                lane,
                page: r.pages + 1,
                cursor: if want == Want::Start {
                    None
                } else {
                    r.cursor.clone()
                },
                optional: want == Want::Late,
            });
        }
        out
    }

    /// The calls to book before the first one is made: on each credential with a due hashtag,
    /// twice the pages its admitted hashtags are estimated to need plus one call each (a
    /// search, a retry, a sweep page), within what the hour has left (`reserved`). Empty when
    /// the run makes no call. The run then sends no more than it booked ([`Pager::cap_calls`]):
    /// a poll that needs more goes on at the next run. A booking left by a run that never
    /// finished so holds what that run could have spent, not the whole hour.
    pub fn reservations(&mut self, run_id: &str) -> Vec<Spend> {
        let mut out = Vec::new();
        for (i, lane) in self.lanes.iter().enumerate() {
            let admitted: Vec<&TagRun> = self
                .runs
                .iter()
                .filter(|r| r.tag.lane == i && r.want != Want::Done)
                .collect();
            if admitted.is_empty() {
                if let Some(left) = self.left.get_mut(i) {
                    *left = 0;
                }
                continue;
            }
            let wanted: u64 = admitted.iter().map(|r| 2 * (r.reserved + 1)).sum();
            let calls = self.left.get(i).copied().unwrap_or(0).min(wanted);
            if let Some(left) = self.left.get_mut(i) {
                *left = calls;
            }
            if calls > 0 {
                out.push(Spend::new(self.calls, run_id, lane.book_as(), calls, true));
            }
        }
        out
    }

    /// Lowers what may still be spent on `lane` to `calls` (what the session may still send:
    /// retries and searches come out of the same booking).
    pub fn cap_calls(&mut self, lane: usize, calls: u64) {
        if let Some(left) = self.left.get_mut(lane) {
            *left = (*left).min(calls);
        }
    }

    /// The hashtags this run polls for the first time: where their tracking begins is booked
    /// with the run's calls (`State::mark_tracking_began`), so a first poll that never finishes
    /// is followed by one that pages back to it, not by another first poll further on.
    pub fn first_polls(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| r.due == Due::First && r.want != Want::Done)
            .map(|r| r.tag.name.clone())
            .collect()
    }

    /// What may still be spent on `lane` this run.
    pub fn calls_left(&self, lane: usize) -> u64 {
        self.left.get(lane).copied().unwrap_or(0)
    }

    /// Pages paid for so far, per credential.
    pub fn planned(&self) -> Vec<u64> {
        self.spent.clone()
    }

    /// Books calls made outside the pages (a hashtag id search, retries) on a credential.
    pub fn note_calls(&mut self, lane: usize, calls: u64) {
        if let (Some(left), Some(spent)) = (self.left.get_mut(lane), self.spent.get_mut(lane)) {
            *left = left.saturating_sub(calls);
            *spent += calls;
        }
    }

    /// A request that could not be fetched (or was skipped): the hashtag's poll ends here,
    /// short of its frontier unless it had reached it.
    pub fn failed(&mut self, tag: usize) {
        if let Some(r) = self.runs.get_mut(tag) {
            r.sweep_failed |= r.want == Want::Late;
            r.want = Want::Done;
        }
    }

    /// Takes in a fetched page of hashtag `tag`; returns, per post of the page, whether it is new
    /// (not written by an earlier run, nor earlier in this run).
    pub fn absorb(&mut self, tag: usize, page: &Page) -> Vec<bool> {
        match self.runs.get_mut(tag) {
            Some(r) => r.absorb(page, &self.settings, self.scheduled),
            None => vec![false; page.posts.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TagState;
    use crate::validate::TIMESTAMP_FORMAT;
    use chrono::SecondsFormat;
    use std::time::Duration;

    use chrono::TimeZone;

    use std::collections::{BTreeMap, HashMap};

    pub(super) const MIN: i64 = 60;

    pub(super) fn settings() -> Settings {
        Settings {
            page_size: 50,
            run_every: Duration::from_secs(300),
            max_delay: Duration::from_secs(1800),
            overlap: Duration::from_secs(120),
            late_window: Duration::from_secs(20 * 60),
            known_window: Duration::from_secs(3 * 3600),
            fresh_delay: None,
        }
    }

    pub(super) fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 9, 2, 0, 0, 0)
            .single()
            .expect("time")
    }

    fn ts(secs: i64) -> String {
        (t0() + chrono::Duration::seconds(secs))
            .format(TIMESTAMP_FORMAT)
            .to_string()
    }

    /// A post of the model feed: id, creation time and when the API starts listing it (seconds
    /// from `t0`).
    #[derive(Debug, Clone, Copy)]
    struct Post {
        id: u64,
        at: i64,
        visible: i64,
    }

    /// What `recent_media` lists at `now`: visible posts of the last 24 hours, newest first;
    /// the cursor is the offset of the next page.
    fn page_at(feed: &[Post], now: i64, cursor: Option<&str>, size: usize) -> Page {
        let mut listed: Vec<&Post> = feed
            .iter()
            .filter(|p| p.visible <= now && p.at >= now - 24 * 3600)
            .collect();
        listed.sort_by_key(|p| (std::cmp::Reverse(p.at), p.id));
        let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let posts: Vec<(String, String)> = listed
            .iter()
            .skip(from)
            .take(size)
            .map(|p| (p.id.to_string(), ts(p.at)))
            .collect();
        let next = (from + size < listed.len()).then(|| (from + size).to_string());
        Page { posts, next }
    }

    /// A hashtag last polled `secs` before `t0`, complete up to then, at `rate` posts an hour.
    pub(super) fn polled_ago(secs: i64, rate: f64) -> TagState {
        TagState {
            polled_at: Some(
                (t0() - chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            complete_to: Some(ts(-secs)),
            rate_per_hour: Some(rate),
            ..TagState::default()
        }
    }

    /// A pager over one hashtag (priority 5) on one credential.
    fn pager_for(
        settings: Settings,
        state: &State,
        name: &str,
        calls_per_hour: u64,
        at: DateTime<Utc>,
    ) -> Pager {
        pager_over(settings, state, &[(name, 5)], calls_per_hour, at)
    }

    /// A pager over hashtags given as (name, priority), all on one credential.
    fn pager_over(
        settings: Settings,
        state: &State,
        tags: &[(&str, u8)],
        calls_per_hour: u64,
        at: DateTime<Utc>,
    ) -> Pager {
        let tags = tags
            .iter()
            .map(|&(name, priority)| Tag {
                name: name.into(),
                lane: 0,
                priority,
            })
            .collect();
        let lane = Lane {
            key: "1".into(),
            calls_per_hour,
            total: calls_per_hour,
            share: None,
            first_pages: 0,
            brands_run: 0,
        };
        Pager::new(settings, at, CallSpan::at(at), tags, state, vec![lane])
    }

    /// Runs a pager's rounds to the end, each request answered by `serve`; returns the ids it
    /// said were new, in order, and the number of pages served.
    fn drive(pager: &mut Pager, mut serve: impl FnMut(&PageRequest) -> Page) -> (Vec<String>, u32) {
        let (mut new_ids, mut pages) = (Vec::new(), 0);
        loop {
            let requests = pager.round();
            if requests.is_empty() {
                return (new_ids, pages);
            }
            for req in requests {
                pages += 1;
                let page = serve(&req);
                let fresh = pager.absorb(req.tag, &page);
                new_ids.extend(
                    page.posts
                        .into_iter()
                        .zip(fresh)
                        .filter_map(|((id, _), new)| new.then_some(id)),
                );
            }
        }
    }

    /// A full page of 50 posts for request `req` (ids and times from the page number), with a
    /// next cursor.
    fn full_page(req: &PageRequest, ids_from: u64, secs_per_page: i64) -> Page {
        let base = ids_from * (req.tag as u64 + 1) + 100 * u64::from(req.page);
        Page {
            posts: (0..50)
                .map(|k| {
                    (
                        (base + k).to_string(),
                        ts(-(i64::from(req.page) * secs_per_page) - k as i64),
                    )
                })
                .collect(),
            next: Some(format!("c{}", req.page)),
        }
    }

    /// The result of a simulated schedule.
    #[derive(Default)]
    struct Sim {
        /// id → (times written, first written at)
        written: HashMap<u64, (u32, i64)>,
        /// (run time, calls spent) per lane.
        spends: Vec<(i64, usize, u64)>,
        reports: Vec<(i64, Vec<TagReport>)>,
        state: State,
    }

    /// Runs the pager every `settings.run_every` from `start` to `end` (seconds from `t0`)
    /// against `feeds` (one per tag), all on lane 0 with `budget` calls per hour.
    fn simulate(
        settings: &Settings,
        feeds: &[Vec<Post>],
        priorities: &[u8],
        budget: u64,
        start: i64,
        end: i64,
    ) -> Sim {
        let mut sim = Sim::default();
        let every = settings.run_every.as_secs() as i64;
        let mut now = start;
        let mut run = 0;
        while now <= end {
            let tags = feeds
                .iter()
                .enumerate()
                .map(|(i, _)| Tag {
                    name: format!("tag{i}"),
                    lane: 0,
                    priority: priorities.get(i).copied().unwrap_or(5),
                })
                .collect();
            let scheduled = t0() + chrono::Duration::seconds(now);
            let mut pager = Pager::new(
                settings.clone(),
                scheduled,
                CallSpan::at(scheduled),
                tags,
                &sim.state,
                vec![Lane {
                    key: "1".into(),
                    calls_per_hour: budget,
                    total: budget,
                    share: None,
                    first_pages: 0,
                    brands_run: 0,
                }],
            );
            let (new_ids, _) = drive(&mut pager, |req| {
                page_at(
                    &feeds[req.tag],
                    now,
                    req.cursor.as_deref(),
                    settings.page_size as usize,
                )
            });
            for id in new_ids {
                let id: u64 = id.parse().expect("id");
                sim.written.entry(id).or_insert((0, now)).0 += 1;
            }
            let outcome = pager.finish(&format!("run{run}"), chrono::Duration::zero());
            for (i, s) in outcome.states.into_iter().enumerate() {
                sim.state.hashtags.insert(format!("tag{i}"), s);
            }
            sim.spends
                .extend(outcome.spends.iter().map(|s| (now, 0, s.calls)));
            sim.state.book(outcome.spends, scheduled);
            sim.reports.push((now, outcome.reports));
            now += every;
            run += 1;
        }
        sim
    }

    /// Poisson-ish arrivals: `per_min` posts a minute from `from` to `to`, listed `lag` seconds
    /// after their time.
    fn feed(seed: u64, per_min: f64, from: i64, to: i64, lag: i64, base: u64) -> Vec<Post> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut out = Vec::new();
        if per_min <= 0.0 {
            return out;
        }
        let mut t = from as f64;
        loop {
            t += -uniform().ln() * 60.0 / per_min;
            if t >= to as f64 {
                break;
            }
            out.push(Post {
                id: base + out.len() as u64,
                at: t as i64,
                visible: t as i64 + lag,
            });
        }
        out
    }

    fn max_hourly_spend(sim: &Sim) -> u64 {
        sim.spends
            .iter()
            .map(|(t, _, _)| {
                sim.spends
                    .iter()
                    .filter(|(u, _, _)| *u > t - 3600 && *u <= *t)
                    .map(|(_, _, c)| c)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_poll_cut_short_keeps_its_frontier_and_the_next_one_fetches_the_gap() {
        let s = settings();
        // 400 posts in the 20 minutes after a first poll: 8 pages.
        let mut posts = feed(1, 0.5, -3600, 0, 0, 1_000);
        posts.extend((0..400).map(|i| Post {
            id: 10_000 + i,
            at: 60 + 3 * i as i64,
            visible: 60 + 3 * i as i64,
        }));
        let feeds = vec![posts];
        // A first run at 0, then the poll due at 30 minutes, on a budget of 4 calls an hour
        // (the first run booked 1): three pages of the eight, cut short of the frontier...
        let short = simulate(&s, &feeds, &[5], 4, 0, 30 * MIN);
        let (at, reports) = short.reports.last().expect("runs");
        assert_eq!(*at, 30 * MIN);
        let cut = &reports[0];
        assert_eq!(cut.pages, 3, "{cut:?}");
        assert!(
            !cut.caught_up && cut.posts_behind > 0 && cut.pages_refused > 0,
            "{cut:?}"
        );
        let burst_written = (0..400)
            .filter(|i| short.written.contains_key(&(10_000 + i)))
            .count();
        assert_eq!(burst_written, 150);
        assert!(short.reports[0].1[0].caught_up);
        let tag = &short.state.hashtags["tag0"];
        assert!(tag.behind, "due at the next run");
        assert!(
            tag.complete_to.as_deref() < Some(ts(60).as_str()),
            "the frontier stays where the first run left it: {:?}",
            tag.complete_to
        );
        // ...and with the budget back, the next poll pages back to it: every post, each once.
        let mut s2 = short;
        let scheduled = t0() + chrono::Duration::minutes(35);
        let mut pager = pager_for(s.clone(), &s2.state, "tag0", 1000, scheduled);
        let (new_ids, _) = drive(&mut pager, |req| {
            page_at(&feeds[0], 35 * MIN, req.cursor.as_deref(), 50)
        });
        for id in new_ids {
            s2.written
                .entry(id.parse().expect("id"))
                .or_insert((0, 0))
                .0 += 1;
        }
        let outcome = pager.finish("catch-up", chrono::Duration::zero());
        assert!(outcome.reports[0].caught_up);
        assert_eq!(outcome.reports[0].posts_behind, 0);
        for i in 0..400 {
            assert_eq!(
                s2.written.get(&(10_000 + i)).map(|w| w.0),
                Some(1),
                "post {i}"
            );
        }
    }

    #[test]
    fn calls_booked_outside_the_pages_come_out_of_the_same_allowance() {
        let mut state = State::default();
        state.hashtags.insert("x".into(), polled_ago(3600, 3000.0));
        let mut pager = pager_for(settings(), &state, "x", 10, t0());
        // A search (or a retry) spends 3 of the 10 before any page.
        pager.note_calls(0, 3);
        let (_, pages) = drive(&mut pager, |req| full_page(req, 1000, 60));
        assert_eq!(pages, 7);
        let out = pager.finish("r", chrono::Duration::zero());
        assert_eq!(out.spends[0].calls, 10);
        assert_eq!(out.budget[0].spent, 10);
    }

    #[test]
    fn a_quiet_hashtags_old_posts_are_not_written_again_once_their_ids_are_forgotten() {
        let s = settings();
        // One post every 20 minutes: a page of 50 reaches back 16 hours, far past the 3 hours
        // of ids kept.
        let feeds = vec![(0..200)
            .map(|i| Post {
                id: 5_000 + i,
                at: -20 * 3600 + i as i64 * 20 * MIN,
                visible: -20 * 3600 + i as i64 * 20 * MIN,
            })
            .collect::<Vec<_>>()];
        let sim = simulate(&s, &feeds, &[5], 1000, 0, 6 * 3600);
        assert!(
            sim.written.values().all(|(n, _)| *n == 1),
            "a post written twice"
        );
        assert!(sim.reports.iter().filter(|(_, r)| r[0].pages > 0).count() >= 10);
    }

    #[test]
    fn a_gap_older_than_the_apis_24_hours_is_given_up_and_said() {
        let mut state = State::default();
        state.hashtags.insert(
            "x".into(),
            TagState {
                behind: true,
                ..polled_ago(30 * 3600, 10.0)
            },
        );
        let pager = pager_for(settings(), &state, "x", 0, t0());
        let out = pager.finish("r", chrono::Duration::zero());
        // Six hours of ten posts an hour aged out; the frontier moves to the window's start.
        assert_eq!(out.reports[0].posts_given_up, 60);
        assert_eq!(out.states[0].complete_to, Some(ts(-24 * 3600)));
        assert!(out.reports[0].posts_behind >= 240, "{:?}", out.reports[0]);
    }

    #[test]
    fn hostile_timestamps_steer_nothing() {
        let s = settings();
        let state = State::default();
        let mut pager = pager_for(s, &state, "x", 10, t0());
        let req = pager.round();
        assert_eq!(req.len(), 1);
        let page = Page {
            posts: vec![
                ("1".into(), "9999-01-01T00:00:00+0000".into()),
                ("2".into(), "1970-01-01T00:00:00+0000".into()),
                ("3".into(), ts(-60)),
                ("4".into(), "garbage".into()),
            ],
            next: None,
        };
        assert_eq!(pager.absorb(0, &page), [true; 4]);
        let out = pager.finish("r", chrono::Duration::zero());
        assert_eq!(out.states[0].complete_to, Some(ts(-60)));
        assert_eq!(out.states[0].watermark, Some(ts(-60)));
    }

    #[test]
    fn a_short_budget_serves_the_higher_priority_first_and_reports_the_rest() {
        let s = settings();
        let mut state = State::default();
        for name in ["low", "high"] {
            state
                .hashtags
                .insert(name.into(), polled_ago(2 * 3600, 600.0));
        }
        // 1200 posts behind each: 25 pages each, 30 calls left.
        let mut pager = pager_over(s, &state, &[("low", 2), ("high", 9)], 30, t0());
        let first = pager.round();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].tag, 1, "the higher priority");
        pager.failed(1);
        let out = pager.finish("r", chrono::Duration::zero());
        assert_eq!(out.reports[0].pages, 0);
        assert!(out.reports[0].pages_refused > 0);
        assert!(out.reports[0].posts_behind >= 1000, "{:?}", out.reports[0]);
        assert!(out.states[0].behind, "due at the next run");
    }

    #[test]
    fn the_ledger_counts_an_hour_either_side_and_merges_runs_once_each() {
        let mut a = State::default();
        let at = |m: i64| {
            (t0() + chrono::Duration::minutes(m)).to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        let spend = |m: i64, run: &str, calls| Spend {
            at: at(m),
            until: None,
            run: run.into(),
            lane: "1".into(),
            calls,
            reserved: false,
        };
        a.book(vec![spend(-70, "a", 5), spend(-30, "b", 7)], t0());
        let mut b = a.clone();
        b.book(vec![spend(0, "c", 11)], t0());
        a.book(vec![spend(0, "d", 13)], t0());
        let m = a.merge(&b, Duration::from_secs(3600));
        assert_eq!(m.booked_near("1", CallSpan::at(t0())), 7 + 11 + 13);
        assert_eq!(m.booked_near("2", CallSpan::at(t0())), 0);
        // A late delivery of -30 sees what later runs spent.
        assert_eq!(
            m.booked_near("1", CallSpan::at(t0() - chrono::Duration::minutes(30))),
            5 + 7 + 11 + 13
        );
    }

    #[test]
    fn a_poll_that_reaches_past_a_gap_reports_its_exact_times_given_up() {
        // Complete up to 25 hours ago: the hour before the API's 24 hours is gone.
        let mut state = State::default();
        state
            .hashtags
            .insert("tag0".into(), polled_ago(25 * 3600, 10.0));
        let mut pager = pager_for(settings(), &state, "tag0", 1000, t0());
        let requests = pager.round();
        assert_eq!(requests.len(), 1);
        // One page reaching the end of what the API lists.
        pager.absorb(
            0,
            &Page {
                posts: vec![("1".into(), ts(-60)), ("2".into(), ts(-23 * 3600))],
                next: None,
            },
        );
        let out = pager.finish("r", chrono::Duration::zero());
        let report = &out.reports[0];
        // From the old frontier, less the sweep's 20 minutes, to the start of the 24 hours.
        assert_eq!(
            report.given_up_from.as_deref(),
            Some(ts(-25 * 3600 - 20 * 60).as_str())
        );
        assert_eq!(report.given_up_to.as_deref(), Some(ts(-24 * 3600).as_str()));
        assert!(report.posts_given_up > 0);
        // The poll reached the end: the frontier moved on to the newest post.
        assert_eq!(out.states[0].complete_to.as_deref(), Some(ts(-60).as_str()));
    }

    #[test]
    fn a_first_poll_the_budget_refuses_starts_tracking_so_what_it_misses_is_reported() {
        // A higher-priority hashtag with a backlog beyond the hour takes every call.
        let mut state = State::default();
        state
            .hashtags
            .insert("busy".into(), polled_ago(6 * 3600, 100_000.0));
        let mut pager = pager_over(settings(), &state, &[("busy", 9), ("new", 5)], 50, t0());
        drive(&mut pager, |req| full_page(req, 1, 1));
        let out = pager.finish("r", chrono::Duration::zero());
        assert_eq!(out.reports[1].due, Due::First);
        assert_eq!(out.reports[1].pages, 0);
        // Its tracking began at this run: a frontier here, behind.
        assert_eq!(out.states[1].complete_to.as_deref(), Some(ts(0).as_str()));
        assert!(out.states[1].behind);
        state.hashtags.insert("new".into(), out.states[1].clone());
        // 25 hours on, still waiting behind the busy one: the gap is reported given up.
        let later = t0() + chrono::Duration::hours(25);
        let pager = pager_over(settings(), &state, &[("busy", 9), ("new", 5)], 0, later);
        let out = pager.finish("r2", chrono::Duration::zero());
        let report = &out.reports[1];
        assert_eq!(report.due, Due::Behind);
        assert_eq!(
            report.given_up_from.as_deref(),
            Some(ts(-20 * 60).as_str()),
            "from its first due run, less the sweep's window"
        );
        assert_eq!(report.given_up_to.as_deref(), Some(ts(3600).as_str()));
    }

    #[test]
    fn a_sweep_the_budget_refuses_keeps_the_frontier() {
        let mut state = State::default();
        state
            .hashtags
            .insert("tag0".into(), polled_ago(30 * 60, 10.0));
        // One call: the first page, none left for the sweep.
        let mut pager = pager_for(settings(), &state, "tag0", 1000, t0());
        pager.cap_calls(0, 1);
        assert_eq!(pager.round().len(), 1);
        // The page reaches the frontier with a post listed late behind it.
        pager.absorb(
            0,
            &Page {
                posts: vec![("1".into(), ts(-60)), ("2".into(), ts(-40 * 60))],
                next: Some("c1".into()),
            },
        );
        assert!(pager.round().is_empty(), "no call left for the sweep");
        let out = pager.finish("r", chrono::Duration::zero());
        assert_eq!(
            out.states[0].complete_to.as_deref(),
            Some(ts(-30 * 60).as_str()),
            "the frontier stays for the next poll's sweep"
        );
        assert!(out.states[0].behind);
    }

    #[test]
    fn a_late_listed_post_behind_the_frontier_is_fetched_by_the_sweep() {
        let s = settings();
        // A steady 5 posts a minute; one post from minute 12 is listed only at minute 31,
        // after the poll that moved the frontier past it (at 25 or 30 minutes).
        let mut posts = feed(3, 5.0, -3 * 3600, 3 * 3600, 0, 1);
        posts.push(Post {
            id: 999_999,
            at: 12 * MIN,
            visible: 31 * MIN,
        });
        let sim = simulate(&s, &[posts.clone()], &[5], 1000, 0, 90 * MIN);
        let polls: Vec<i64> = sim
            .reports
            .iter()
            .filter(|(_, r)| r[0].pages > 0)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            polls.iter().any(|t| (25 * MIN..31 * MIN).contains(t)),
            "{polls:?}"
        );
        assert!(sim.written.contains_key(&999_999), "the late post");
        let all: Vec<u64> = posts
            .iter()
            .filter(|p| p.at >= 0 && p.visible <= 60 * MIN)
            .map(|p| p.id)
            .collect();
        for id in all {
            assert!(sim.written.contains_key(&id), "post {id}");
        }
    }

    #[test]
    fn a_reservation_is_not_taken_by_a_hashtag_that_needs_more_than_it_thought() {
        let s = settings();
        let mut state = State::default();
        // "busy" expects 100 posts (3 pages); "quiet" expects almost none (1 page) but has 3.
        for (name, rate) in [("busy", 100.0), ("quiet", 0.1)] {
            state.hashtags.insert(name.into(), polled_ago(3600, rate));
        }
        let mut pager = pager_over(s, &state, &[("quiet", 9), ("busy", 2)], 4, t0());
        drive(&mut pager, |req| full_page(req, 1_000_000, 1000));
        let out = pager.finish("r", chrono::Duration::zero());
        // "busy" keeps the three pages reserved for it; "quiet", first in line, gets its one.
        assert_eq!((out.reports[0].pages, out.reports[1].pages), (1, 3));
        assert!(out.reports[0].pages_refused > 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Random arrival patterns: a post still inside the 24 hours is never given up while
        /// the budget allows fetching it, no post is written twice, and no 60 minutes spend
        /// more than the budget.
        #[test]
        fn every_post_once_within_the_budget(
            rates in proptest::collection::vec(0.0f64..12.0, 1..6),
            burst in 0usize..600,
            seed in 0u64..1000,
            budget in 5u64..400,
        ) {
            let s = settings();
            let hours = 6;
            let mut feeds: Vec<Vec<Post>> = rates
                .iter()
                .enumerate()
                .map(|(i, r)| feed(seed + i as u64, *r, -3600, hours * 3600, 0, (i as u64 + 1) * 1_000_000))
                .collect();
            // A burst on the first hashtag, in the third hour.
            feeds[0].extend((0..burst).map(|k| Post { id: 900_000 + k as u64, at: 2 * 3600 + k as i64, visible: 2 * 3600 + k as i64 }));
            let sim = simulate(&s, &feeds, &[], budget, 0, (hours + 2) * 3600);
            proptest::prop_assert!(max_hourly_spend(&sim) <= budget, "spent {} > {budget}", max_hourly_spend(&sim));
            proptest::prop_assert!(sim.written.values().all(|(n, _)| *n == 1), "a post written twice");
            // What the budget can carry: the least polls plus every post's share of a page.
            let posts_per_hour: f64 = feeds.iter().map(|f| f.len() as f64).sum::<f64>() / (hours as f64 + 1.0);
            let needed = rates.len() as f64 * 2.4 + 1.5 * posts_per_hour / 50.0 + 2.0 * rates.len() as f64;
            let refused: u32 = sim.reports.iter().flat_map(|(_, r)| r.iter().map(|r| r.pages_refused)).sum();
            let missed: Vec<u64> = feeds.iter().flatten().filter(|p| p.at >= 0).map(|p| p.id).filter(|id| !sim.written.contains_key(id)).collect();
            if budget as f64 >= needed * 2.0 + burst as f64 / 50.0 {
                proptest::prop_assert!(missed.is_empty(), "{} posts missed with an ample budget", missed.len());
            }
            // Whatever the budget: a missed post means the budget refused pages, and the
            // reports said posts were behind or given up.
            if !missed.is_empty() {
                proptest::prop_assert!(refused > 0, "posts missed with no page refused");
                let reported: u64 = sim.reports.iter().flat_map(|(_, r)| r.iter().map(|r| r.posts_behind + r.posts_given_up)).sum();
                proptest::prop_assert!(reported > 0, "posts missed and nothing reported");
            }
        }
    }

    #[test]
    fn freshness_holds_for_promptly_listed_posts() {
        let s = settings();
        let rates = [0.1, 0.5, 1.2, 3.0, 9.0];
        let feeds: Vec<Vec<Post>> = rates
            .iter()
            .enumerate()
            .map(|(i, r)| {
                feed(
                    7 + i as u64,
                    *r,
                    -3600,
                    6 * 3600,
                    0,
                    (i as u64 + 1) * 1_000_000,
                )
            })
            .collect();
        let sim = simulate(&s, &feeds, &[], 188, 0, 7 * 3600);
        let at: BTreeMap<u64, i64> = feeds.iter().flatten().map(|p| (p.id, p.at)).collect();
        let mut worst = 0;
        for (id, (_, written)) in &sim.written {
            if at[id] >= 0 {
                worst = worst.max(written - at[id]);
            }
        }
        assert!(
            worst <= s.max_delay.as_secs() as i64,
            "a post written {worst} s after its time"
        );
        let posts: usize = feeds.iter().flatten().filter(|p| p.at >= 0).count();
        assert_eq!(sim.written.keys().filter(|id| at[id] >= 0).count(), posts);
        // Cheap: far under one page per hashtag per run.
        let calls: u64 = sim.spends.iter().map(|(_, _, c)| c).sum();
        let per_hour = calls as f64 / 7.0;
        assert!(per_hour < 40.0, "{per_hour} calls/h");
    }

    /// Delays (seconds from a post's time to its write) of the posts timestamped from 0 on,
    /// sorted, and whether each was written exactly once.
    fn delays(sim: &Sim, feeds: &[Vec<Post>]) -> (Vec<i64>, bool) {
        let at: BTreeMap<u64, i64> = feeds.iter().flatten().map(|p| (p.id, p.at)).collect();
        let mut out: Vec<i64> = sim
            .written
            .iter()
            .filter(|(id, _)| at[*id] >= 0)
            .map(|(id, (_, w))| w - at[id])
            .collect();
        out.sort_unstable();
        let posts = feeds.iter().flatten().filter(|p| p.at >= 0).count();
        let once = out.len() == posts && sim.written.values().all(|(n, _)| *n == 1);
        (out, once)
    }

    fn p99(sorted: &[i64]) -> i64 {
        sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    }

    fn fresh_polls(sim: &Sim) -> usize {
        sim.reports
            .iter()
            .flat_map(|(_, r)| r)
            .filter(|r| r.due == Due::Fresh && r.pages > 0)
            .count()
    }

    #[test]
    fn spare_calls_poll_sooner_so_the_p99_delay_meets_the_fresh_target() {
        let slow = settings();
        let fresh = Settings {
            fresh_delay: Some(Duration::from_secs(600)),
            ..settings()
        };
        assert_eq!(fresh.fresh_interval(), Some(Duration::from_secs(600)));
        let rates = [0.005, 0.3, 1.2, 3.0, 9.0];
        let feeds: Vec<Vec<Post>> = rates
            .iter()
            .enumerate()
            .map(|(i, r)| feed(21 + i as u64, *r, -3600, 6 * 3600, 5, (i as u64 + 1) << 20))
            .collect();
        let before = simulate(&slow, &feeds, &[], 188, 0, 7 * 3600);
        let after = simulate(&fresh, &feeds, &[], 188, 0, 7 * 3600);
        let (d0, once0) = delays(&before, &feeds);
        let (d1, once1) = delays(&after, &feeds);
        assert!(once0 && once1, "every post written once, with and without");
        assert!(p99(&d0) > 600, "without: p99 {} s", p99(&d0));
        assert!(p99(&d1) <= 600, "with spare calls: p99 {} s", p99(&d1));
        assert!(fresh_polls(&after) > 0 && fresh_polls(&before) == 0);
        assert!(
            max_hourly_spend(&after) <= 188,
            "{}",
            max_hourly_spend(&after)
        );
        // A hashtag that has had no time for a post is not polled for freshness: the quietest
        // (one post in some 3 hours) is polled only when due.
        let quiet_fresh = after
            .reports
            .iter()
            .filter(|(_, r)| r[0].due == Due::Fresh)
            .count();
        assert_eq!(quiet_fresh, 0);
    }

    #[test]
    fn freshness_never_takes_the_calls_a_due_poll_needs() {
        let fresh = Settings {
            fresh_delay: Some(Duration::from_secs(600)),
            ..settings()
        };
        // Busy hashtags whose due polls need most of a small budget.
        let rates = [20.0, 12.0, 6.0, 2.0, 1.0, 0.5];
        let feeds: Vec<Vec<Post>> = rates
            .iter()
            .enumerate()
            .map(|(i, r)| feed(40 + i as u64, *r, -3600, 5 * 3600, 0, (i as u64 + 1) << 20))
            .collect();
        let need: f64 = rates.iter().map(|r| fresh.calls_per_hour(r * 60.0)).sum();
        let budget = (need * 1.6).ceil() as u64;
        let sim = simulate(&fresh, &feeds, &[], budget, 0, 6 * 3600);
        let (d, once) = delays(&sim, &feeds);
        let twice = sim.written.values().filter(|(n, _)| *n > 1).count();
        let posts = feeds.iter().flatten().filter(|p| p.at >= 0).count();
        assert!(
            once,
            "every post written once: {} of {posts}, {twice} twice",
            d.len()
        );
        let worst = d.last().copied().unwrap_or(0);
        assert!(
            worst <= fresh.max_delay.as_secs() as i64,
            "a post written {worst} s after its time on a budget of {budget}"
        );
        let behind: u64 = sim
            .reports
            .iter()
            .flat_map(|(_, r)| r)
            .map(|r| r.posts_behind)
            .sum();
        assert_eq!(behind, 0, "no due hashtag waited");
        assert!(fresh_polls(&sim) > 0, "the spare calls were used");
        assert!(max_hourly_spend(&sim) <= budget);
    }
}
