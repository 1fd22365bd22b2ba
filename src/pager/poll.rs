//! One hashtag's poll in a run: the pages it fetches ([`Page`]) and what each tells: which posts
//! are new, and whether the poll has reached its frontier, goes on past it for posts listed late,
//! or is done.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::report::Due;
use super::settings::{Settings, RETENTION};
use super::time::{before, span};
use crate::state::{TagState, MAX_CLOCK_SKEW};
use crate::validate::parse_timestamp;

/// A hashtag as the pager sees it.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    /// Which credential its calls use.
    pub lane: usize,
    /// Higher is served first when the budget is short.
    pub priority: u8,
}

/// What a fetched page held: (post id, timestamp) in the order listed, and the next cursor.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub posts: Vec<(String, String)>,
    pub next: Option<String>,
}

/// What a poll asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// The first page.
    Start,
    /// More pages to reach the frontier.
    CatchUp,
    /// One more page past the frontier: the last one held late posts.
    Late,
    Done,
}

/// One hashtag's poll in this run, from its admission to its last page.
#[derive(Debug)]
pub(super) struct TagRun {
    pub(super) tag: Tag,
    pub(super) prev: TagState,
    pub(super) due: Due,
    pub(super) want: Want,
    /// Pages reserved for it by the admission; spent first.
    pub(super) reserved: u64,
    pub(super) pages: u32,
    pub(super) refused: u32,
    pub(super) cursor: Option<String>,
    pub(super) cursors: HashSet<String>,
    pub(super) seen: Vec<(String, String)>,
    pub(super) seen_ids: HashSet<String>,
    /// A sweep page past the frontier was asked for and failed (an error, high usage): the
    /// late posts it would have found are still to fetch, so the frontier stays where it was and
    /// the next poll sweeps from there again.
    pub(super) sweep_failed: bool,
    pub(super) new_posts: usize,
    pub(super) reached: bool,
    pub(super) newest: Option<DateTime<FixedOffset>>,
    pub(super) oldest: Option<DateTime<FixedOffset>>,
    /// Posts estimated behind when the run started (for ordering and the report).
    pub(super) behind_at_start: f64,
    /// Not due, but posts are estimated waiting since its last poll, this many: a freshness
    /// poll would fetch them sooner (0: none, or not a candidate).
    pub(super) waiting: f64,
    pub(super) rate: f64,
}

/// What one page's posts told: per post whether it is new, the oldest timestamp that can steer
/// paging, how many new posts were at or behind the frontier (listed late), and whether the
/// page was out of time order past the floor.
struct PageScan {
    fresh: Vec<bool>,
    oldest: Option<DateTime<FixedOffset>>,
    late: usize,
    disorder: bool,
}

/// Where a page left the poll.
struct Reach {
    /// Its next cursor was one already followed.
    looped: bool,
    /// The end of what the API lists: no posts, no next page, or past the 24 hours.
    ended: bool,
    /// The hashtag has no frontier yet.
    no_frontier: bool,
    /// The page reached the frontier (less the overlap), in time order.
    at_frontier: bool,
    /// The page reached past the frontier by the late window.
    swept: bool,
    /// New posts at or behind the frontier.
    late: usize,
}

impl TagRun {
    /// A hashtag's poll before its first page: a hashtag not due is done already.
    pub(super) fn new(
        tag: Tag,
        prev: TagState,
        due: Due,
        behind_at_start: f64,
        waiting: f64,
        rate: f64,
    ) -> TagRun {
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
    }

    /// Takes in a fetched page; returns, per post of the page, whether it is new (not written by
    /// an earlier run, nor earlier in this run).
    pub(super) fn absorb(
        &mut self,
        page: &Page,
        settings: &Settings,
        scheduled: DateTime<Utc>,
    ) -> Vec<bool> {
        self.pages += 1;
        let frontier = self.prev.complete_to.as_deref().and_then(parse_timestamp);
        // A post newer than the frontier listed after one older than the floor: the page is not
        // in time order, so reaching the floor proves nothing about the pages after it.
        let floor = frontier.and_then(|f| before(f, settings.overlap));
        let scan = self.scan(page, settings.known_window, scheduled, frontier, floor);
        // A cursor already followed is a loop, not the end of the list: the poll stops short of
        // its frontier (or of its sweep), so nothing between is taken for fetched.
        let looped = page.next.as_ref().is_some_and(|c| self.cursors.contains(c));
        let cursor = page.next.clone().filter(|c| self.cursors.insert(c.clone()));
        let window_start = scheduled - span(RETENTION);
        let past_window = scan
            .oldest
            .is_some_and(|o| o.with_timezone(&Utc) < window_start);
        let new_here = scan.fresh.iter().any(|n| *n);
        let sweep_floor = frontier.and_then(|f| before(f, settings.late_window));
        let reach = Reach {
            looped,
            ended: page.posts.is_empty() || cursor.is_none() || past_window,
            no_frontier: frontier.is_none(),
            at_frontier: match (scan.oldest, floor) {
                (Some(o), Some(f)) => o <= f && !(scan.disorder && new_here),
                _ => false,
            },
            swept: matches!((scan.oldest, sweep_floor), (Some(o), Some(f)) if o <= f),
            late: scan.late,
        };
        self.want = self.next_want(&reach);
        self.cursor = cursor;
        scan.fresh
    }

    /// Reads a page's posts in the order listed, remembering each one seen: which are new, and
    /// what the page tells about the frontier.
    fn scan(
        &mut self,
        page: &Page,
        known_window: Duration,
        scheduled: DateTime<Utc>,
        frontier: Option<DateTime<FixedOffset>>,
        floor: Option<DateTime<FixedOffset>>,
    ) -> PageScan {
        // Timestamps that can steer paging: inside the API's window (an hour of slack) and not
        // past the clock skew. A hostile or broken value is kept but steers nothing.
        let lowest = scheduled - chrono::Duration::hours(25);
        let highest = scheduled + span(MAX_CLOCK_SKEW);
        let in_scope_from = self.in_scope_from(frontier, known_window);
        let mut scan = PageScan {
            fresh: Vec::with_capacity(page.posts.len()),
            oldest: None,
            late: 0,
            disorder: false,
        };
        let mut below_floor = false;
        for (id, ts) in &page.posts {
            let t = parse_timestamp(ts).filter(|t| {
                let u = t.with_timezone(&Utc);
                u >= lowest && u <= highest
            });
            if let (Some(t), Some(f), Some(fl)) = (t, frontier, floor) {
                scan.disorder |= below_floor && t > f;
                below_floor |= t <= fl;
            }
            if let Some(t) = t {
                scan.oldest = Some(scan.oldest.map_or(t, |o| o.min(t)));
                self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
                self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
            }
            if !self.seen_ids.insert(id.clone()) {
                scan.fresh.push(false);
                continue;
            }
            self.seen.push((id.clone(), ts.clone()));
            let out_of_scope = matches!((t, in_scope_from), (Some(t), Some(f)) if t < f);
            let new = !self.prev.is_known(id) && !out_of_scope;
            if new {
                self.new_posts += 1;
                if matches!((t, frontier), (Some(t), Some(f)) if t <= f) {
                    scan.late += 1;
                }
            }
            scan.fresh.push(new);
        }
        scan
    }

    /// Where the posts in scope begin. Posts older than where tracking began were never in
    /// scope. Ids are remembered for `known_window` behind the frontier; a post older than that
    /// was fetched by an earlier poll (a page of a quiet hashtag reaches back for hours) and is
    /// not new, however late the API might list one.
    fn in_scope_from(
        &self,
        frontier: Option<DateTime<FixedOffset>>,
        known_window: Duration,
    ) -> Option<DateTime<FixedOffset>> {
        let forgotten = frontier.and_then(|f| before(f, known_window));
        let tracked = self.prev.tracked_since.as_deref().and_then(parse_timestamp);
        match (forgotten, tracked) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the poll wants after a page: done at a loop, at the end of the list or after a first
    /// poll's page; once at the frontier, one more page while posts listed late may be behind
    /// it; else more pages to reach it.
    fn next_want(&mut self, reach: &Reach) -> Want {
        if reach.looped {
            self.sweep_failed |= self.reached;
            Want::Done
        } else if reach.ended {
            // The end of what the API lists.
            self.reached = true;
            Want::Done
        } else if self.due == Due::First || reach.no_frontier {
            // A first poll starts the frontier at what it found.
            self.reached = true;
            Want::Done
        } else if reach.at_frontier || self.reached {
            self.reached = true;
            if reach.late > 0 || !reach.swept {
                Want::Late
            } else {
                Want::Done
            }
        } else {
            Want::CatchUp
        }
    }
}
