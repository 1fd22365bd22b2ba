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

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::Serialize;

use crate::state::{CallSpan, Spend, State, TagState, MAX_CLOCK_SKEW, MAX_RATE_PER_HOUR};
use crate::validate::{parse_timestamp, TIMESTAMP_FORMAT};

/// How far back `recent_media` lists posts.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How the pager decides; built from the configuration by `collect`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Posts per page (`graph.hashtag_media_limit`).
    pub page_size: u32,
    /// The schedule's period (every 5 minutes).
    pub run_every: Duration,
    /// The freshness target: a post is written at most this long after the API lists it.
    pub max_delay: Duration,
    /// How far past the frontier a poll must reach, for posts listed slightly out of order.
    pub overlap: Duration,
    /// How far past the frontier a poll goes on, with calls nobody reserved, for posts the API
    /// lists late (minutes after their timestamp).
    pub late_window: Duration,
    /// How long ids are remembered behind the watermark (and the frontier).
    pub known_window: Duration,
    /// With calls to spare, the most a post should wait (`hashtags.fresh_delay_mins`): see
    /// [`Settings::fresh_interval`]. `None`: no freshness polls.
    pub fresh_delay: Option<Duration>,
}

impl Settings {
    /// The longest interval between two polls of one hashtag that keeps the freshness target:
    /// the largest multiple of the schedule at most `max_delay`, at least one schedule. A post
    /// listed just after a poll is written by the next one, `max_delay` later.
    pub fn max_interval(&self) -> Duration {
        let every = self.run_every.as_secs().max(1);
        let k = (self.max_delay.as_secs() / every).max(1);
        Duration::from_secs(k * every)
    }

    /// The interval between polls that costs the fewest pages per hour at `rate_per_hour`:
    /// each poll pays for its new posts, the overlap and the page that reaches the frontier.
    pub fn interval_for(&self, rate_per_hour: f64) -> Duration {
        let every = self.run_every.as_secs().max(1);
        let max = self.max_interval().as_secs() / every;
        let overlap_h = self.reach().as_secs_f64() / 3600.0;
        let mut best = (f64::INFINITY, max);
        for k in 1..=max {
            let hours = (k * every) as f64 / 3600.0;
            let pages = self.pages_for(rate_per_hour * (hours + overlap_h));
            let per_hour = pages as f64 / hours;
            // Ties go to the shorter interval: the same cost, fresher.
            if per_hour < best.0 - 1e-9 {
                best = (per_hour, k);
            }
        }
        Duration::from_secs(best.1 * every)
    }

    /// How often spare calls poll a hashtag: the largest multiple of the schedule that leaves a
    /// post listed just after a poll written within `fresh_delay` (the next poll, then the run's
    /// own time), at least every run. `None` without a freshness target, or when it is not
    /// sooner than the fewest-calls interval could be.
    pub fn fresh_interval(&self) -> Option<Duration> {
        let target = self.fresh_delay?;
        let every = self.run_every.as_secs().max(1);
        let k = (target.as_secs().saturating_sub(every) / every).max(1);
        let interval = Duration::from_secs(k * every);
        (interval < self.max_interval()).then_some(interval)
    }

    /// Calls per hour one hashtag at `rate_per_hour` costs when spare calls also poll it for
    /// freshness: every fresh interval while each poll is estimated to find a post, else at its
    /// fewest-calls interval. What the brands job's backfill keeps for the hashtags job.
    pub fn calls_per_hour_fresh(&self, rate_per_hour: f64) -> f64 {
        let due = self.calls_per_hour(rate_per_hour);
        let Some(interval) = self.fresh_interval() else {
            return due;
        };
        let polls = (3600.0 / interval.as_secs_f64().max(1.0)).min(rate_per_hour / FRESH_MIN_POSTS);
        if !polls.is_finite() || polls <= 0.0 {
            return due;
        }
        let overlap_h = self.overlap.as_secs_f64() / 3600.0;
        let fresh =
            polls * self.pages_for(rate_per_hour / polls + rate_per_hour * overlap_h) as f64;
        due.max(fresh)
    }

    /// How far past the frontier a poll reads when the budget allows.
    fn reach(&self) -> Duration {
        self.overlap.max(self.late_window)
    }

    /// Pages a poll needs to fetch `posts` new posts and reach the frontier.
    fn pages_for(&self, posts: f64) -> u64 {
        let per_page = f64::from(self.page_size.max(1));
        if !posts.is_finite() || posts <= 0.0 {
            return 1;
        }
        ((posts + 1.0) / per_page).ceil().clamp(1.0, 1e6) as u64
    }

    /// Polls and pages per hour one hashtag at `rate_per_hour` costs at its best interval.
    pub fn calls_per_hour(&self, rate_per_hour: f64) -> f64 {
        let interval = self.interval_for(rate_per_hour);
        let hours = interval.as_secs_f64() / 3600.0;
        let overlap_h = self.reach().as_secs_f64() / 3600.0;
        self.pages_for(rate_per_hour * (hours + overlap_h)) as f64 / hours
    }
}

/// A hashtag as the pager sees it.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    /// Which credential its calls use.
    pub lane: usize,
    /// Higher is served first when the budget is short.
    pub priority: u8,
}

/// One credential's hourly allowance for hashtag calls.
#[derive(Debug, Clone)]
pub struct Lane {
    /// How the ledger names it (the credential's Instagram user id).
    pub key: String,
    /// The credential's hourly allowance for hashtag calls, every shard of it together: the
    /// whole allowance less what is kept for the brands job.
    pub calls_per_hour: u64,
    /// The credential's whole hourly allowance, both jobs together. The brands job books in the
    /// same ledger (`{key}/brands`); when it spent more than was kept for it (retries), the
    /// hashtags job spends that much less.
    pub total: u64,
    /// A shard's share of it: `(name, calls per hour)`. The run books under `{key}/{name}`.
    pub share: Option<(String, u64)>,
    /// Calls per hour the brands job's first pages and token check need: always left to them.
    /// Every hashtag post comes before the lookback's pages, so a due poll may also spend what
    /// `calls_per_hour` keeps for the lookback; freshness polls may not.
    pub first_pages: u64,
}

impl Lane {
    /// The name this run books its calls under.
    fn book_as(&self) -> String {
        match &self.share {
            Some((name, _)) => format!("{}/{name}", self.key),
            None => self.key.clone(),
        }
    }

    /// What this run may spend, given the ledger, with what the hashtags job booked within the
    /// hour: the hashtag allowance less the hashtags job's bookings, and never more than the
    /// whole allowance less every booking of the credential (both jobs). A shard may also
    /// spend at most its share less its own bookings, and at most its share's proportion of
    /// what the credential has left, so that shards reading the same ledger at once cannot
    /// together pass the allowance, however the credential's earlier runs were cut.
    ///
    /// Returns the calls booked by the hashtags job, what due polls may spend, and what
    /// freshness polls may spend (within the hashtag allowance only).
    fn left(&self, state: &State, at: CallSpan) -> (u64, u64, u64) {
        let booked = state.booked_by_hashtags(&self.key, at);
        let all = state.booked_near(&self.key, at);
        let left = self
            .calls_per_hour
            .saturating_sub(booked)
            .min(self.total.saturating_sub(all));
        match &self.share {
            None => {
                let due = self
                    .total
                    .saturating_sub(self.first_pages)
                    .saturating_sub(all)
                    .max(left);
                (booked, due, left)
            }
            Some((_, share)) => {
                let own = state.booked_exactly(&self.book_as(), at);
                let proportional = (u128::from(left) * u128::from(*share)
                    / u128::from(self.calls_per_hour.max(1)))
                    as u64;
                let left = share.saturating_sub(own).min(proportional);
                (booked, left, left)
            }
        }
    }
}

/// The brands job's booking on one credential before its calls: what it may spend, the most
/// `wanted`, within what the whole allowance has left in the ledger (it comes first: the hashtag
/// allowance leaves its calls out); a booking of 0 calls when nothing is left.
pub fn brands_booking(
    state: &State,
    key: &str,
    total: u64,
    wanted: u64,
    calls: CallSpan,
    run_id: &str,
) -> Spend {
    let left = total.saturating_sub(state.booked_near(key, calls));
    let lane = format!("{key}/{}", crate::state::BRANDS);
    Spend::new(calls, run_id, lane, wanted.min(left), true)
}

/// One page to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
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

/// What a fetched page held: (post id, timestamp) in the order listed, and the next cursor.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub posts: Vec<(String, String)>,
    pub next: Option<String>,
}

/// Why a hashtag was or was not polled this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// Never polled (or no state): one page, and the frontier starts at its newest post.
    First,
    /// An earlier poll stopped before its frontier.
    Behind,
    /// Its interval has passed.
    Interval,
    /// Not due yet, polled sooner with calls the hour can spare (`fresh_delay`): its posts
    /// arrive sooner. Never with calls a due hashtag needs.
    Fresh,
    /// Not yet: polled again at `next_due`.
    NotDue,
}

/// One hashtag's part of the run, for the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagReport {
    pub due: Due,
    pub pages: u32,
    /// Posts not seen by an earlier run.
    pub new_posts: usize,
    /// Whether the poll reached the frontier (or the end of the list).
    pub caught_up: bool,
    /// Posts estimated still to fetch: the gap a cut-short poll left, or everything since the
    /// frontier when a due hashtag waited for budget.
    pub posts_behind: u64,
    /// Posts estimated lost: the part of a gap that aged out of the API's 24 hours.
    pub posts_given_up: u64,
    /// That gap: a post timestamped from `given_up_from` up to `given_up_to` (API timestamps)
    /// and not written by then was not fetched and no longer can be. It starts `late_window`
    /// before the frontier, where the sweep for posts listed late would have looked. The count
    /// above is an estimate from the hashtag's rate; the times are what an analyst can rely on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_up_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_up_to: Option<String>,
    /// Pages the budget refused this hashtag this run.
    pub pages_refused: u32,
    pub rate_per_hour: f64,
    /// When it is next due (RFC 3339), at the latest.
    pub next_due: Option<String>,
}

/// What a run ends with.
#[derive(Debug)]
pub struct Outcome {
    /// The new state of each polled or reported hashtag, by tag index.
    pub states: Vec<TagState>,
    pub reports: Vec<TagReport>,
    /// The calls to book in the ledger.
    pub spends: Vec<Spend>,
    /// Per credential: the allowance this run had, and what it spent.
    pub budget: Vec<LaneUse>,
}

/// One credential's budget in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneUse {
    pub calls_per_hour: u64,
    /// Calls booked by runs within the hour before this one started.
    pub booked: u64,
    pub spent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The first page.
    Start,
    /// More pages to reach the frontier.
    CatchUp,
    /// One more page past the frontier: the last one held late posts.
    Late,
    Done,
}

#[derive(Debug)]
struct TagRun {
    tag: Tag,
    prev: TagState,
    due: Due,
    want: Want,
    /// Pages reserved for it by the admission; spent first.
    reserved: u64,
    pages: u32,
    refused: u32,
    cursor: Option<String>,
    cursors: HashSet<String>,
    seen: Vec<(String, String)>,
    seen_ids: HashSet<String>,
    /// A sweep page past the frontier was asked for and failed (an error, high usage): the
    /// late posts it would have found are still to fetch, so the frontier stays where it was and
    /// the next poll sweeps from there again.
    sweep_failed: bool,
    new_posts: usize,
    reached: bool,
    newest: Option<DateTime<FixedOffset>>,
    oldest: Option<DateTime<FixedOffset>>,
    /// Posts estimated behind when the run started (for ordering and the report).
    behind_at_start: f64,
    /// Not due, but posts are estimated waiting since its last poll, this many: a freshness
    /// poll would fetch them sooner (0: none, or not a candidate).
    waiting: f64,
    rate: f64,
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

/// `d` as a chrono duration (a `std` duration too large for chrono saturates at zero: every one
/// here comes from checked configuration).
fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// `d` before `t`, when representable.
fn before(t: DateTime<FixedOffset>, d: Duration) -> Option<DateTime<FixedOffset>> {
    t.checked_sub_signed(span(d))
}

fn hours_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    ((later - earlier).num_seconds().max(0)) as f64 / 3600.0
}

fn rfc3339(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn graph_ts(t: &str) -> Option<DateTime<Utc>> {
    parse_timestamp(t).map(|t| t.with_timezone(&Utc))
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
            .map(|tag| {
                let mut prev = match state.hashtags.get(&tag.name) {
                    Some(t) => t.clone(),
                    None => {
                        // No entry after the state was lost: tracking began at the start of the
                        // API's 24 hours then, not at this poll's one page.
                        let mut fresh = State::default();
                        if let Some(reset) = state.reset_at.as_deref().and_then(rfc3339) {
                            if scheduled - reset < chrono::Duration::hours(24) {
                                fresh.mark_tracking_began(
                                    &tag.name,
                                    reset - chrono::Duration::hours(24),
                                );
                            }
                        }
                        fresh.hashtags.remove(&tag.name).unwrap_or_default()
                    }
                };
                if prev.polled_at.is_none() && prev.complete_to.is_none() {
                    // A state written before frontiers existed: its runs paged while pages held
                    // new posts, so its watermark is where it had got to.
                    if let Some(w) = prev.watermark.clone() {
                        prev.complete_to = Some(w);
                        prev.polled_at = state.as_of.clone();
                    }
                }
                let rate = prev
                    .rate_per_hour
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .unwrap_or(0.0);
                let due = due_of(&settings, &prev, rate, scheduled);
                let waiting = match due {
                    Due::NotDue => fresh_waiting(&settings, &prev, rate, scheduled),
                    _ => 0.0,
                };
                let behind_at_start = match prev.complete_to.as_deref().and_then(graph_ts) {
                    Some(c) if due != Due::NotDue || waiting > 0.0 => {
                        rate * hours_between(scheduled, c)
                    }
                    _ => 0.0,
                };
                TagRun {
                    want: if due == Due::NotDue {
                        Want::Done
                    } else {
                        Want::Start
                    },
                    tag,
                    prev,
                    due,
                    reserved: 0,
                    pages: 0,
                    refused: 0,
                    cursor: None,
                    cursors: HashSet::new(),
                    seen: Vec::new(),
                    seen_ids: HashSet::new(),
                    sweep_failed: false,
                    new_posts: 0,
                    reached: false,
                    newest: None,
                    oldest: None,
                    behind_at_start,
                    waiting,
                    rate,
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&runs[a], &runs[b]);
            // A first poll costs one page and starts the hashtag's frontier, from which anything
            // not fetched in time is reported given up: it never waits behind a backlog.
            let first = |r: &TagRun| r.due == Due::First;
            y.tag
                .priority
                .cmp(&x.tag.priority)
                .then(first(y).cmp(&first(x)))
                .then(y.behind_at_start.total_cmp(&x.behind_at_start))
                .then_with(|| x.tag.name.cmp(&y.tag.name))
        });
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

    /// Gives each due hashtag, in service order, the pages its backlog is estimated to need;
    /// the first that does not fit waits with every one after it on its credential.
    fn admit(&mut self) {
        let mut free = self.left.clone();
        let mut blocked = vec![false; self.lanes.len()];
        for &i in &self.order {
            let r = &mut self.runs[i];
            if r.want == Want::Done {
                continue;
            }
            let Some(lane_free) = free.get_mut(r.tag.lane) else {
                r.want = Want::Done;
                r.refused += 1;
                continue;
            };
            let need = match r.due {
                Due::First => 1,
                _ => self.settings.pages_for(
                    r.behind_at_start + r.rate * self.settings.overlap.as_secs_f64() / 3600.0,
                ),
            };
            let hourly = self.lanes.get(r.tag.lane).map_or(0, |l| l.calls_per_hour);
            if !blocked[r.tag.lane] && need <= *lane_free {
                *lane_free -= need;
                r.reserved = need;
            } else if !blocked[r.tag.lane] && need > hourly && *lane_free > 0 {
                // More than a whole hour's budget: waiting would never make it fit. It takes
                // what is left; what ages out of the 24 hours meanwhile is reported given up.
                r.reserved = *lane_free;
                *lane_free = 0;
                blocked[r.tag.lane] = true;
            } else {
                blocked[r.tag.lane] = true;
                r.want = Want::Done;
                r.refused += 1;
            }
        }
        self.admit_fresh(free, &blocked);
    }

    /// Freshness polls from what the due hashtags left: the hashtags with most posts estimated
    /// waiting first, each given the pages it is estimated to need, while each credential keeps
    /// what its hashtags' due polls cost in an hour ([`Settings::calls_per_hour`] at their
    /// rates). So freshness spends only calls the hour can spare, and a due poll later in the
    /// hour still finds its calls; a credential where a due hashtag waited gets none.
    fn admit_fresh(&mut self, mut free: Vec<u64>, blocked: &[bool]) {
        let mut keep = vec![0.0f64; self.lanes.len()];
        for r in &self.runs {
            if let Some(k) = keep.get_mut(r.tag.lane) {
                *k += self.settings.calls_per_hour(r.rate);
            }
        }
        // What the due polls reserved comes out of the hashtag allowance first.
        let mut own: Vec<u64> = self
            .fresh_left
            .iter()
            .zip(self.left.iter().zip(&free))
            .map(|(f, (l, fr))| f.saturating_sub(l.saturating_sub(*fr)))
            .collect();
        let mut candidates: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].waiting > 0.0)
            .collect();
        candidates.sort_by(|&a, &b| {
            let (x, y) = (&self.runs[a], &self.runs[b]);
            y.waiting
                .total_cmp(&x.waiting)
                .then_with(|| x.tag.name.cmp(&y.tag.name))
        });
        for i in candidates {
            let r = &mut self.runs[i];
            let lane = r.tag.lane;
            let (Some(lane_free), Some(own), Some(keep), Some(false)) = (
                free.get_mut(lane),
                own.get_mut(lane),
                keep.get(lane),
                blocked.get(lane),
            ) else {
                continue;
            };
            let need = self.settings.pages_for(
                r.behind_at_start + r.rate * self.settings.overlap.as_secs_f64() / 3600.0,
            );
            let spare = ((*lane_free).min(*own) as f64 - keep.ceil()).max(0.0) as u64;
            if need <= spare {
                *lane_free -= need;
                *own -= need;
                r.reserved = need;
                r.due = Due::Fresh;
                r.want = Want::Start;
            }
        }
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
    pub fn round(&mut self) -> Vec<Request> {
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
            out.push(Request {
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
        let settings = &self.settings;
        let scheduled = self.scheduled;
        let Some(r) = self.runs.get_mut(tag) else {
            return vec![false; page.posts.len()];
        };
        r.pages += 1;
        // Timestamps that can steer paging: inside the API's window (an hour of slack) and not
        // past the clock skew. A hostile or broken value is kept but steers nothing.
        let lowest = scheduled - chrono::Duration::hours(25);
        let highest = scheduled + span(MAX_CLOCK_SKEW);
        let frontier = r.prev.complete_to.as_deref().and_then(parse_timestamp);
        // Posts older than where tracking began were never in scope. Ids are remembered for
        // `known_window` behind the frontier; a post older than that was fetched by an earlier
        // poll (a page of a quiet hashtag reaches back for hours) and is not new, however late
        // the API might list one.
        let in_scope_from = {
            let forgotten = frontier.and_then(|f| before(f, settings.known_window));
            let tracked = r.prev.tracked_since.as_deref().and_then(parse_timestamp);
            match (forgotten, tracked) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        };
        let mut fresh = Vec::with_capacity(page.posts.len());
        let mut page_oldest: Option<DateTime<FixedOffset>> = None;
        let mut late = 0;
        // A post newer than the frontier listed after one older than the floor: the page is not
        // in time order, so reaching the floor proves nothing about the pages after it.
        let floor = frontier.and_then(|f| before(f, settings.overlap));
        let mut below_floor = false;
        let mut disorder = false;
        for (id, ts) in &page.posts {
            let t = parse_timestamp(ts).filter(|t| {
                let u = t.with_timezone(&Utc);
                u >= lowest && u <= highest
            });
            if let (Some(t), Some(f), Some(fl)) = (t, frontier, floor) {
                disorder |= below_floor && t > f;
                below_floor |= t <= fl;
            }
            if let Some(t) = t {
                page_oldest = Some(page_oldest.map_or(t, |o| o.min(t)));
                r.newest = Some(r.newest.map_or(t, |n| n.max(t)));
                r.oldest = Some(r.oldest.map_or(t, |o| o.min(t)));
            }
            if !r.seen_ids.insert(id.clone()) {
                fresh.push(false);
                continue;
            }
            r.seen.push((id.clone(), ts.clone()));
            let out_of_scope = matches!((t, in_scope_from), (Some(t), Some(f)) if t < f);
            let new = !r.prev.is_known(id) && !out_of_scope;
            if new {
                r.new_posts += 1;
                if matches!((t, frontier), (Some(t), Some(f)) if t <= f) {
                    late += 1;
                }
            }
            fresh.push(new);
        }
        // A cursor already followed is a loop, not the end of the list: the poll stops short of
        // its frontier (or of its sweep), so nothing between is taken for fetched.
        let looped = page.next.as_ref().is_some_and(|c| r.cursors.contains(c));
        let cursor = page.next.clone().filter(|c| r.cursors.insert(c.clone()));
        let window_start = scheduled - span(RETENTION);
        let past_window = page_oldest.is_some_and(|o| o.with_timezone(&Utc) < window_start);
        let new_here = fresh.iter().any(|n| *n);
        let at_frontier = match (page_oldest, floor) {
            (Some(o), Some(f)) => o <= f && !(disorder && new_here),
            _ => false,
        };
        r.want = if looped {
            r.sweep_failed |= r.reached;
            Want::Done
        } else if page.posts.is_empty() || cursor.is_none() || past_window {
            // The end of what the API lists.
            r.reached = true;
            Want::Done
        } else if r.due == Due::First || frontier.is_none() {
            // A first poll starts the frontier at what it found.
            r.reached = true;
            Want::Done
        } else if at_frontier || r.reached {
            r.reached = true;
            let sweep_floor = frontier.and_then(|f| before(f, settings.late_window));
            let swept = matches!((page_oldest, sweep_floor), (Some(o), Some(f)) if o <= f);
            if late > 0 || !swept {
                Want::Late
            } else {
                Want::Done
            }
        } else {
            Want::CatchUp
        };
        r.cursor = cursor;
        fresh
    }

    /// The new states, the report and the calls to book (the pages, and whatever
    /// [`Pager::note_calls`] added). `run_id` names this run in the ledger; its calls took
    /// `took` from the start of their span.
    pub fn finish(self, run_id: &str, took: chrono::Duration) -> Outcome {
        let calls = self.calls.ended_after(took);
        let at = self.scheduled.to_rfc3339_opts(SecondsFormat::Secs, true);
        let window_start = self.scheduled - span(RETENTION);
        let cap = self.scheduled + span(MAX_CLOCK_SKEW);
        let mut states = Vec::with_capacity(self.runs.len());
        let mut reports = Vec::with_capacity(self.runs.len());
        for r in &self.runs {
            let (state, report) = self.finish_tag(r, &at, window_start, cap);
            states.push(state);
            reports.push(report);
        }
        let spends = self
            .lanes
            .iter()
            .zip(&self.spent)
            .map(|(l, spent)| Spend::new(calls, run_id, l.book_as(), *spent, false))
            .collect();
        let budget = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| LaneUse {
                calls_per_hour: l.calls_per_hour,
                booked: self.booked[i],
                spent: self.spent[i],
            })
            .collect();
        Outcome {
            states,
            reports,
            spends,
            budget,
        }
    }

    fn finish_tag(
        &self,
        r: &TagRun,
        at: &str,
        window_start: DateTime<Utc>,
        cap: DateTime<Utc>,
    ) -> (TagState, TagReport) {
        let s = &self.settings;
        let polled = r.pages > 0;
        let mut next = r.prev.clone();
        let mut rate = r.rate;
        let mut posts_behind = 0.0;
        if polled {
            let newest = r
                .newest
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t <= cap);
            let since = r.prev.polled_at.as_deref().and_then(rfc3339);
            // The rate: new posts over the time since the last poll, smoothed; a poll cut short
            // saw only part of them, so it can only raise the estimate.
            let observed = match (r.due, since, r.oldest, r.newest) {
                (Due::First, _, Some(o), Some(n)) => {
                    let full = r.seen.len() as u32 >= s.page_size;
                    let hours = if full {
                        hours_between(n.with_timezone(&Utc), o.with_timezone(&Utc))
                    } else {
                        RETENTION.as_secs_f64() / 3600.0
                    };
                    (hours > 0.0).then(|| r.seen.len() as f64 / hours)
                }
                (_, Some(since), _, _) => {
                    let hours = hours_between(self.scheduled, since);
                    (hours > 0.0).then(|| r.new_posts as f64 / hours)
                }
                _ => None,
            };
            if let Some(o) = observed.filter(|o| o.is_finite()) {
                rate = match (r.prev.rate_per_hour, r.reached) {
                    (Some(p), true) => 0.5 * o + 0.5 * p,
                    (Some(p), false) => o.max(p),
                    (None, _) => o,
                }
                .clamp(0.0, MAX_RATE_PER_HOUR);
            }
            if next.tracked_since.is_none() {
                let full = r.seen.len() as u32 >= s.page_size;
                next.tracked_since = if full {
                    r.oldest.map(|o| o.format(TIMESTAMP_FORMAT).to_string())
                } else {
                    Some(window_start.format(TIMESTAMP_FORMAT).to_string())
                };
            }
            if r.reached && !r.sweep_failed {
                if let Some(n) = newest {
                    let moved = r
                        .prev
                        .complete_to
                        .as_deref()
                        .and_then(graph_ts)
                        .is_none_or(|c| n > c);
                    if moved {
                        next.complete_to = Some(n.format(TIMESTAMP_FORMAT).to_string());
                    }
                }
                next.behind = false;
            } else {
                next.behind = true;
                if let (Some(c), Some(o)) =
                    (r.prev.complete_to.as_deref().and_then(graph_ts), r.oldest)
                {
                    posts_behind = rate * hours_between(o.with_timezone(&Utc), c);
                }
            }
            next.polled_at = Some(at.to_string());
            next.rate_per_hour = Some(rate);
        } else if !matches!(r.due, Due::NotDue | Due::Fresh) {
            // Due, but the budget made it wait.
            next.behind = true;
            posts_behind = r.behind_at_start;
            if r.due == Due::First && next.polled_at.is_none() && next.complete_to.is_none() {
                // Tracking begins when a hashtag is first due, not when the budget first lets
                // it be polled: its frontier starts here, so what its first poll cannot reach
                // in time is reported given up, never lost in silence.
                let stamp = self.scheduled.format(TIMESTAMP_FORMAT).to_string();
                next.complete_to = Some(stamp.clone());
                next.tracked_since = Some(stamp);
            }
        }
        // A gap older than the API's 24 hours can no longer be fetched: give it up, and say so.
        // The gap runs from the frontier this run started from: a poll that reached the end of
        // what the API still lists moved the frontier on, past a gap it could not fetch.
        let mut posts_given_up = 0.0;
        let mut given_up = None;
        let frontiers = [r.prev.complete_to.as_deref(), next.complete_to.as_deref()];
        if let Some(c) = frontiers.into_iter().flatten().filter_map(graph_ts).min() {
            if c < window_start {
                posts_given_up = rate * hours_between(window_start, c);
                let to = window_start.format(TIMESTAMP_FORMAT).to_string();
                // Posts the API lists late behind the frontier were the next sweep's to fetch:
                // that sweep never came either.
                let from = c - span(s.late_window);
                given_up = Some((from.format(TIMESTAMP_FORMAT).to_string(), to.clone()));
                if next
                    .complete_to
                    .as_deref()
                    .and_then(graph_ts)
                    .is_some_and(|n| n < window_start)
                {
                    next.complete_to = Some(to);
                }
            }
        }
        // A hashtag this run did not fetch keeps its ids as they were.
        let next = if polled {
            next.advance(&r.seen, s.known_window, None, self.scheduled)
        } else {
            next
        };
        let next_due = next
            .polled_at
            .as_deref()
            .and_then(rfc3339)
            .map(|p| {
                if next.behind {
                    self.scheduled + span(s.run_every)
                } else {
                    p + span(s.interval_for(rate))
                }
            })
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        let report = TagReport {
            due: r.due,
            pages: r.pages,
            new_posts: r.new_posts,
            caught_up: polled && r.reached,
            posts_behind: posts_behind.max(0.0).ceil() as u64,
            posts_given_up: posts_given_up.max(0.0).ceil() as u64,
            given_up_from: given_up.as_ref().map(|g| g.0.clone()),
            given_up_to: given_up.map(|g| g.1),
            pages_refused: r.refused,
            rate_per_hour: (rate * 10.0).round() / 10.0,
            next_due,
        };
        (next, report)
    }
}

/// The fewest new posts a freshness poll must be estimated to find: a poll that expects less
/// than one post spends a call on nothing most of the time.
const FRESH_MIN_POSTS: f64 = 1.0;

/// Posts estimated waiting on a hashtag that is not due at `scheduled`, when a freshness poll
/// is worth making (its fresh interval has passed and at least [`FRESH_MIN_POSTS`] are
/// expected); else 0.
fn fresh_waiting(settings: &Settings, prev: &TagState, rate: f64, scheduled: DateTime<Utc>) -> f64 {
    let (Some(interval), Some(polled)) = (
        settings.fresh_interval(),
        prev.polled_at.as_deref().and_then(rfc3339),
    ) else {
        return 0.0;
    };
    if prev.behind || scheduled <= polled || prev.complete_to.is_none() {
        return 0.0;
    }
    let elapsed = (scheduled - polled).to_std().unwrap_or_default();
    let waiting = rate * elapsed.as_secs_f64() / 3600.0;
    if elapsed + settings.run_every / 2 >= interval && waiting >= FRESH_MIN_POSTS {
        waiting
    } else {
        0.0
    }
}

/// Whether a hashtag is due at `scheduled`.
fn due_of(settings: &Settings, prev: &TagState, rate: f64, scheduled: DateTime<Utc>) -> Due {
    let Some(polled) = prev.polled_at.as_deref().and_then(rfc3339) else {
        // A frontier without a poll: a first poll was booked (tracking began there) but never
        // finished; this one pages back to where tracking began.
        return if prev.complete_to.is_some() {
            Due::Behind
        } else {
            Due::First
        };
    };
    if prev.behind {
        return Due::Behind;
    }
    let interval = settings.interval_for(rate);
    let slack = settings.run_every / 2;
    let elapsed = (scheduled - polled).to_std().unwrap_or_default();
    if elapsed + slack >= interval && scheduled > polled {
        Due::Interval
    } else {
        Due::NotDue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::{BTreeMap, HashMap};

    const MIN: i64 = 60;

    fn settings() -> Settings {
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

    fn t0() -> DateTime<Utc> {
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
    fn polled_ago(secs: i64, rate: f64) -> TagState {
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
        };
        Pager::new(settings, at, CallSpan::at(at), tags, state, vec![lane])
    }

    /// Runs a pager's rounds to the end, each request answered by `serve`; returns the ids it
    /// said were new, in order, and the number of pages served.
    fn drive(pager: &mut Pager, mut serve: impl FnMut(&Request) -> Page) -> (Vec<String>, u32) {
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
    fn full_page(req: &Request, ids_from: u64, secs_per_page: i64) -> Page {
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
    fn a_quiet_hashtag_waits_for_its_longest_interval_and_a_busy_one_fills_its_pages() {
        let s = settings();
        assert_eq!(s.max_interval(), Duration::from_secs(30 * 60));
        assert_eq!(s.interval_for(0.0), Duration::from_secs(30 * 60));
        assert_eq!(s.interval_for(10.0), Duration::from_secs(30 * 60));
        // Each poll also reads 20 minutes past its frontier for late posts. At 1.2 posts a
        // minute, 20 minutes is 48 posts with that reach, one page; 25 or 30 minutes need two.
        assert_eq!(s.interval_for(72.0), Duration::from_secs(20 * 60));
        assert!((s.calls_per_hour(72.0) - 3.0).abs() < 1e-9);
        // 3 a minute: three pages every 25 minutes beat three every 15 and four every 30.
        assert_eq!(s.interval_for(180.0), Duration::from_secs(25 * 60));
        // Ten a minute: the pages fill at any interval; the longest reads the reach least often.
        assert_eq!(s.interval_for(600.0), Duration::from_secs(30 * 60));
        assert!((s.calls_per_hour(600.0) - 22.0).abs() < 1e-9);
    }

    #[test]
    fn a_hashtag_is_due_when_its_interval_has_passed_or_it_is_behind() {
        let s = settings();
        let polled = |mins_ago: i64, behind: bool| TagState {
            behind,
            ..polled_ago(mins_ago * MIN, 6.0)
        };
        assert_eq!(due_of(&s, &TagState::default(), 0.0, t0()), Due::First);
        assert_eq!(due_of(&s, &polled(5, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(20, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(25, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(30, false), 6.0, t0()), Due::Interval);
        assert_eq!(due_of(&s, &polled(5, true), 6.0, t0()), Due::Behind);
        // A late delivery of an older time finds the hashtag polled after it: not due.
        assert_eq!(due_of(&s, &polled(-5, false), 6.0, t0()), Due::NotDue);
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
        assert_eq!(fresh.fresh_interval(), Some(Duration::from_secs(300)));
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

    #[test]
    fn a_shard_spends_its_share_and_its_part_of_what_the_credential_has_left() {
        let at = t0();
        let booked = |entries: &[(&str, u64)]| {
            let mut state = State::default();
            let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
            state.book(
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, (lane, calls))| Spend {
                        at: stamp.clone(),
                        until: None,
                        run: format!("r{i}"),
                        lane: lane.to_string(),
                        calls: *calls,
                        reserved: false,
                    })
                    .collect(),
                at,
            );
            state
        };
        let shard = Lane {
            key: "1".into(),
            calls_per_hour: 100,
            total: 112,
            share: Some(("part-0001".into(), 40)),
            first_pages: 0,
        };
        // Nothing booked: the whole share.
        assert_eq!(shard.left(&State::default(), CallSpan::at(at)).1, 40);
        // Its own bookings come off its share.
        assert_eq!(
            shard
                .left(&booked(&[("1/part-0001", 30)]), CallSpan::at(at))
                .1,
            10
        );
        // 80 booked on the credential by an earlier plan: 40 % of the 20 left, so the shards
        // running at once cannot together pass the credential's allowance.
        assert_eq!(shard.left(&booked(&[("1", 80)]), CallSpan::at(at)).1, 8);
        // Another credential's bookings do not count.
        assert_eq!(shard.left(&booked(&[("12", 80)]), CallSpan::at(at)).1, 40);
        // The brands job's calls within what was kept for it (12) take nothing from the
        // hashtags; past it (retries), they do.
        assert_eq!(
            shard.left(&booked(&[("1/brands", 12)]), CallSpan::at(at)).1,
            40
        );
        assert_eq!(
            shard.left(&booked(&[("1/brands", 62)]), CallSpan::at(at)).1,
            20
        );
        // An unsharded run counts every shard's bookings of its credential. The 12 kept for
        // the brands job are its first pages: every call is the hashtags' to spend.
        let whole = Lane {
            share: None,
            first_pages: 12,
            ..shard.clone()
        };
        let two_shards = booked(&[("1/part-0001", 30), ("1/part-0002", 20)]);
        assert_eq!(whole.left(&two_shards, CallSpan::at(at)), (50, 50, 50));
        // When 12 of the brands job's are its lookback's, a due poll may spend them (every
        // hashtag post comes first), a freshness poll may not.
        let with_lookback = Lane {
            first_pages: 0,
            ..whole.clone()
        };
        assert_eq!(
            with_lookback.left(&two_shards, CallSpan::at(at)),
            (50, 62, 50)
        );
        assert_eq!(
            with_lookback
                .left(&booked(&[("1", 50), ("1/brands", 62)]), CallSpan::at(at))
                .1,
            0,
            "never past the whole allowance"
        );
    }

    #[test]
    fn after_a_lost_state_a_hashtag_without_an_entry_pages_back_not_one_page() {
        let at = t0();
        let tags = || {
            vec![Tag {
                name: "dior".into(),
                lane: 0,
                priority: 5,
            }]
        };
        let lane = || {
            vec![Lane {
                key: "1".into(),
                calls_per_hour: 100,
                total: 100,
                share: None,
                first_pages: 0,
            }]
        };
        let fresh = Pager::new(
            settings(),
            at,
            CallSpan::at(at),
            tags(),
            &State::default(),
            lane(),
        );
        assert_eq!(fresh.runs[0].due, Due::First, "a new hashtag: one page");
        let reset = State {
            reset_at: Some((at - chrono::Duration::hours(1)).to_rfc3339()),
            ..State::default()
        };
        let after = Pager::new(settings(), at, CallSpan::at(at), tags(), &reset, lane());
        assert_eq!(
            after.runs[0].due,
            Due::Behind,
            "tracking began 24 hours before the reset"
        );
        let long_ago = State {
            reset_at: Some((at - chrono::Duration::hours(30)).to_rfc3339()),
            ..State::default()
        };
        let later = Pager::new(settings(), at, CallSpan::at(at), tags(), &long_ago, lane());
        assert_eq!(
            later.runs[0].due,
            Due::First,
            "past the API's 24 hours: nothing to page back to"
        );
    }
}
