//! How a run ends: each hashtag's new state and report from what its poll found (its rate, its
//! frontier, what it leaves behind or gives up, when it is next due), and the calls to book.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::lane::LaneUse;
use super::poll::TagRun;
use super::report::{Due, Outcome, TagReport};
use super::settings::{Settings, RETENTION};
use super::time::{graph_ts, hours_between, rfc3339, span};
use super::Pager;
use crate::state::{Spend, TagState, MAX_CLOCK_SKEW, MAX_RATE_PER_HOUR};
use crate::validate::TIMESTAMP_FORMAT;

impl Pager {
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

    /// One hashtag's new state and report, from what its poll found this run (or why it was not
    /// polled).
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
            rate = rate_after(r, s.page_size, self.scheduled);
            if next.tracked_since.is_none() {
                next.tracked_since = tracking_began(r, s.page_size, window_start);
            }
            posts_behind = move_frontier(r, &mut next, rate, cap);
            next.polled_at = Some(at.to_string());
            next.rate_per_hour = Some(rate);
        } else if !matches!(r.due, Due::NotDue | Due::Fresh) {
            posts_behind = wait(r, &mut next, self.scheduled);
        }
        let (posts_given_up, given_up) = give_up(r, &mut next, rate, window_start, s.late_window);
        // A hashtag this run did not fetch keeps its ids as they were.
        let next = if polled {
            next.advance(&r.seen, s.known_window, None, self.scheduled)
        } else {
            next
        };
        let next_due = next_due(&next, rate, s, self.scheduled);
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

/// The hashtag's rate after its poll. The rate: new posts over the time since the last poll,
/// smoothed; a poll cut short saw only part of them, so it can only raise the estimate. A first
/// poll counts the posts of its page over the time they span (the API's 24 hours when the page
/// was not full). Unchanged when the poll measured nothing.
fn rate_after(r: &TagRun, page_size: u32, scheduled: DateTime<Utc>) -> f64 {
    let since = r.prev.polled_at.as_deref().and_then(rfc3339);
    let observed = match (r.due, since, r.oldest, r.newest) {
        (Due::First, _, Some(o), Some(n)) => {
            let full = r.seen.len() as u32 >= page_size;
            let hours = if full {
                hours_between(n.with_timezone(&Utc), o.with_timezone(&Utc))
            } else {
                RETENTION.as_secs_f64() / 3600.0
            };
            (hours > 0.0).then(|| r.seen.len() as f64 / hours)
        }
        (_, Some(since), _, _) => {
            let hours = hours_between(scheduled, since);
            (hours > 0.0).then(|| r.new_posts as f64 / hours)
        }
        _ => None,
    };
    match observed.filter(|o| o.is_finite()) {
        Some(o) => match (r.prev.rate_per_hour, r.reached) {
            (Some(p), true) => 0.5 * o + 0.5 * p,
            (Some(p), false) => o.max(p),
            (None, _) => o,
        }
        .clamp(0.0, MAX_RATE_PER_HOUR),
        None => r.rate,
    }
}

/// Where tracking begins for a hashtag that had no start yet: at the oldest post of a full page
/// (older ones were never in scope), or at the start of the API's 24 hours when the page held
/// everything listed.
fn tracking_began(r: &TagRun, page_size: u32, window_start: DateTime<Utc>) -> Option<String> {
    let full = r.seen.len() as u32 >= page_size;
    if full {
        r.oldest.map(|o| o.format(TIMESTAMP_FORMAT).to_string())
    } else {
        Some(window_start.format(TIMESTAMP_FORMAT).to_string())
    }
}

/// A poll that reached its frontier (and whose sweep did not fail) moves it up to the newest post
/// it saw, within the clock skew (`cap`); one cut short leaves it, and the hashtag is behind.
/// Returns the posts estimated still to fetch: the gap between the frontier and the oldest post
/// the poll reached.
fn move_frontier(r: &TagRun, next: &mut TagState, rate: f64, cap: DateTime<Utc>) -> f64 {
    let newest = r
        .newest
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t <= cap);
    let mut posts_behind = 0.0;
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
        if let (Some(c), Some(o)) = (r.prev.complete_to.as_deref().and_then(graph_ts), r.oldest) {
            posts_behind = rate * hours_between(o.with_timezone(&Utc), c);
        }
    }
    posts_behind
}

/// A due hashtag the budget made wait: it is behind, by the posts estimated when the run
/// started (returned).
fn wait(r: &TagRun, next: &mut TagState, scheduled: DateTime<Utc>) -> f64 {
    // Due, but the budget made it wait.
    next.behind = true;
    if r.due == Due::First && next.polled_at.is_none() && next.complete_to.is_none() {
        // Tracking begins when a hashtag is first due, not when the budget first lets
        // it be polled: its frontier starts here, so what its first poll cannot reach
        // in time is reported given up, never lost in silence.
        let stamp = scheduled.format(TIMESTAMP_FORMAT).to_string();
        next.complete_to = Some(stamp.clone());
        next.tracked_since = Some(stamp);
    }
    r.behind_at_start
}

/// A gap older than the API's 24 hours can no longer be fetched: give it up, and say so.
/// The gap runs from the frontier this run started from: a poll that reached the end of
/// what the API still lists moved the frontier on, past a gap it could not fetch.
///
/// Returns the posts estimated given up and the times (from, to) of the gap; a frontier still
/// before the 24 hours moves to their start.
fn give_up(
    r: &TagRun,
    next: &mut TagState,
    rate: f64,
    window_start: DateTime<Utc>,
    late_window: Duration,
) -> (f64, Option<(String, String)>) {
    let mut posts_given_up = 0.0;
    let mut given_up = None;
    let frontiers = [r.prev.complete_to.as_deref(), next.complete_to.as_deref()];
    if let Some(c) = frontiers.into_iter().flatten().filter_map(graph_ts).min() {
        if c < window_start {
            posts_given_up = rate * hours_between(window_start, c);
            let to = window_start.format(TIMESTAMP_FORMAT).to_string();
            // Posts the API lists late behind the frontier were the next sweep's to fetch:
            // that sweep never came either.
            let from = c - span(late_window);
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
    (posts_given_up, given_up)
}

/// When the hashtag is next due, at the latest (RFC 3339): at the next run while it is behind,
/// else its interval at `rate` after its last poll.
fn next_due(next: &TagState, rate: f64, s: &Settings, scheduled: DateTime<Utc>) -> Option<String> {
    next.polled_at
        .as_deref()
        .and_then(rfc3339)
        .map(|p| {
            if next.behind {
                scheduled + span(s.run_every)
            } else {
                p + span(s.interval_for(rate))
            }
        })
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}
