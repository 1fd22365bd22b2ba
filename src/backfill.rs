//! **Pure**: an account's history, fetched once (`[brands] backfill_days`).
//!
//! Each hourly brands run reads an account's latest page and pages back `lookback_days`
//! (`lookback`). Past that, a newly tracked account's older posts are fetched with the calls the
//! hour can spare, a few pages per run, until the posts reach `backfill_days` or the account has
//! no older posts. Where an account's backfill stands is its [`Progress`], kept in the
//! credentials' state beside the ledger (`State::brands`), written after the run's data object
//! (so a run that fails before its data is written moves nothing) and merged, on a conflict, by
//! keeping the progress that reached further back: it never moves back.
//!
//! A run resumes from the cursor the last run stopped at, once the progress is past the
//! lookback's window; before that, it goes on from where this run's lookback ended. A stored
//! cursor the API refuses is dropped: the next run pages again from the lookback's end, which
//! costs pages but loses nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::lookback::is_cursor;
use crate::validate::{parse_timestamp, TIMESTAMP_FORMAT};

/// Where one account's backfill stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// `paging.cursors.after` of the oldest page fetched: the next run resumes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The oldest post time fetched (as the API writes it): every post from there to the
    /// lookback's window was in a run's media object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached: Option<String>,
    /// The account has no older posts: its history is complete, whatever `backfill_days`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_more: bool,
    /// Pages fetched so far, all runs.
    #[serde(default)]
    pub pages: u64,
    /// Posts written so far, all runs.
    #[serde(default)]
    pub posts: u64,
}

impl Progress {
    /// The oldest post time fetched, when readable.
    pub fn reached_at(&self) -> Option<DateTime<Utc>> {
        self.reached
            .as_deref()
            .and_then(parse_timestamp)
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether nothing is left to fetch for a history back to `since`.
    pub fn complete(&self, since: DateTime<Utc>) -> bool {
        self.no_more || self.reached_at().is_some_and(|r| r < since)
    }

    /// The stored cursor to resume from, when the progress is older than `lookback_since` (the
    /// start of the lookback's window: younger posts this run's lookback reads anyway) and the
    /// cursor is one the API gives.
    pub fn resume_from(&self, lookback_since: DateTime<Utc>) -> Option<&str> {
        let past_lookback = self.reached_at().is_some_and(|r| r < lookback_since);
        self.cursor
            .as_deref()
            .filter(|c| past_lookback && is_cursor(c))
    }

    /// Records a page fetched: its oldest post, its next cursor and the posts written from it.
    /// Only a page that reaches further back moves the progress (a page younger than what was
    /// reached, after a refused cursor, fetches posts again but stores nothing older).
    pub fn record_page(&mut self, oldest: Option<DateTime<Utc>>, after: Option<&str>, posts: u64) {
        self.pages = self.pages.saturating_add(1);
        self.posts = self.posts.saturating_add(posts);
        let Some(oldest) = oldest else {
            return;
        };
        if self.reached_at().is_none_or(|r| oldest <= r) {
            self.reached = Some(oldest.format(TIMESTAMP_FORMAT).to_string());
            self.cursor = after.filter(|a| is_cursor(a)).map(str::to_string);
            if self.cursor.is_none() {
                self.no_more = true;
            }
        }
    }

    /// The account has no older posts than those fetched.
    pub fn mark_no_more(&mut self) {
        self.no_more = true;
        self.cursor = None;
    }

    /// The stored cursor was refused: the next run pages again from the lookback's end.
    pub fn drop_cursor(&mut self) {
        self.cursor = None;
    }

    /// Two runs' progress of one account: the one that reached further back (with its cursor),
    /// the larger counts. Never moves back.
    pub fn merge(&self, other: &Progress) -> Progress {
        let key = |p: &Progress| (p.no_more, std::cmp::Reverse(p.reached_at()), p.pages);
        let further = |p: &Progress| p.reached_at().is_some() || p.no_more;
        let mut out = match (further(self), further(other)) {
            (true, false) => self.clone(),
            (false, true) => other.clone(),
            _ if key(other) > key(self) => other.clone(),
            _ => self.clone(),
        };
        out.pages = self.pages.max(other.pages);
        out.posts = self.posts.max(other.posts);
        out
    }
}

/// The start of a `days`-day history of a run scheduled at `scheduled`; `None` for 0 days.
pub fn since(scheduled: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| {
        scheduled
            .checked_sub_signed(Duration::days(i64::from(days)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    })
}

/// How many calls a brands run may spend on backfill on one credential: what is left of the
/// allowance after every booking near the run and this run's own first and lookback pages, and
/// after keeping, for the coming hour, the hashtags job's calls (`hashtags_need`, its due and
/// freshness polls at their rates, or 5/4 of what it spent in the hour before, whichever is
/// more) and the next brands run's calls (`next_run`: its first pages, token check and lookback
/// pages; an hour apart, both runs fall in one 60-minute window of the ledger). Backfill comes
/// last: it never takes a call another class needs, now or at the next brands run.
pub fn spare_calls(
    total: u64,
    booked_near: u64,
    this_run: u64,
    next_run: u64,
    hashtags_need: u64,
    hashtags_last_hour: u64,
) -> u64 {
    let keep = hashtags_need.max(hashtags_last_hour.saturating_mul(5).div_ceil(4));
    let past = total.saturating_sub(booked_near).saturating_sub(this_run);
    let coming = total
        .saturating_sub(this_run)
        .saturating_sub(next_run)
        .saturating_sub(keep);
    past.min(coming)
}

/// What a brands run's backfill did (the run summary's `brands_backfill`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `brands.backfill_days`.
    pub days: u32,
    /// Calls the hour could spare for it (every retry of a page included), all credentials.
    pub calls_granted: u64,
    /// Pages fetched this run, all accounts.
    pub pages: u64,
    /// Posts written this run from those pages.
    pub posts: u64,
    /// Pages that failed (or were not sent: deadline, usage high); the account goes on from
    /// where it stood at the next run.
    pub pages_failed: u64,
    /// Accounts whose history is complete (back to `days`, or no older posts).
    pub accounts_complete: u64,
    /// Accounts with history still to fetch.
    pub accounts_left: u64,
    /// Per account still to fetch, or completed by this run: where it stands.
    pub accounts: BTreeMap<String, AccountReport>,
}

/// One account's backfill, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountReport {
    /// The oldest post time fetched so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<String>,
    pub pages: u64,
    pub posts: u64,
    pub complete: bool,
}

impl Report {
    /// Adds one account's state after the run.
    pub fn account(&mut self, name: &str, p: &Progress, since: DateTime<Utc>, moved: bool) {
        let complete = p.complete(since);
        if complete {
            self.accounts_complete += 1;
        } else {
            self.accounts_left += 1;
        }
        if !complete || moved {
            self.accounts.insert(
                name.to_string(),
                AccountReport {
                    reached: p.reached.clone(),
                    pages: p.pages,
                    posts: p.posts,
                    complete,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn progress_moves_only_further_back_and_ends_without_a_cursor() {
        let mut p = Progress::default();
        p.record_page(Some(at("2026-01-01T00:00:00Z")), Some("c1"), 25);
        assert_eq!(p.reached.as_deref(), Some("2026-01-01T00:00:00+0000"));
        assert_eq!(p.cursor.as_deref(), Some("c1"));
        // A younger page (after a refused cursor) fetches again but moves nothing back.
        p.record_page(Some(at("2026-01-05T00:00:00Z")), Some("c0"), 25);
        assert_eq!(p.cursor.as_deref(), Some("c1"));
        assert_eq!(p.reached_at(), Some(at("2026-01-01T00:00:00Z")));
        assert_eq!((p.pages, p.posts), (2, 50));
        p.record_page(Some(at("2025-12-20T00:00:00Z")), None, 3);
        assert!(p.no_more && p.cursor.is_none());
        assert!(p.complete(at("2020-01-01T00:00:00Z")));
    }

    #[test]
    fn a_run_resumes_from_its_cursor_only_past_the_lookback() {
        let mut p = Progress::default();
        p.record_page(Some(at("2026-01-05T00:00:00Z")), Some("c1"), 25);
        assert_eq!(p.resume_from(at("2026-01-03T00:00:00Z")), None);
        assert_eq!(p.resume_from(at("2026-01-06T00:00:00Z")), Some("c1"));
        p.cursor = Some("bad(cursor)".into());
        assert_eq!(p.resume_from(at("2026-01-06T00:00:00Z")), None);
        assert!(!p.complete(at("2026-01-04T00:00:00Z")));
        assert!(p.complete(at("2026-01-06T00:00:00Z")));
    }

    #[test]
    fn a_merge_keeps_the_progress_that_reached_further_back() {
        let mut older = Progress::default();
        older.record_page(Some(at("2025-06-01T00:00:00Z")), Some("old"), 25);
        let mut newer = Progress::default();
        newer.record_page(Some(at("2025-09-01T00:00:00Z")), Some("new"), 25);
        newer.record_page(Some(at("2025-08-01T00:00:00Z")), Some("new2"), 25);
        for m in [older.merge(&newer), newer.merge(&older)] {
            assert_eq!(m.cursor.as_deref(), Some("old"));
            assert_eq!(m.pages, 2);
        }
        let mut done = Progress::default();
        done.mark_no_more();
        assert!(done.merge(&older).no_more && older.merge(&done).no_more);
        assert_eq!(Progress::default().merge(&older), older);
    }

    #[test]
    fn backfill_gets_only_what_the_hour_and_the_hashtags_leave() {
        // 200 an hour; 60 booked near; this run's first and lookback pages 45, and the next
        // brands run's 45 kept: 200 - 45 - 45 - 50 for the hashtags = 60.
        assert_eq!(spare_calls(200, 60, 45, 45, 50, 40), 60);
        // Nothing else near: still the next brands run's pages are kept.
        assert_eq!(spare_calls(200, 0, 45, 45, 0, 0), 110);
        // The hashtags need more in the coming hour than the past one left.
        assert_eq!(spare_calls(200, 60, 45, 45, 100, 40), 10);
        // What the hashtags spent in the hour before, with a quarter more, is kept too.
        assert_eq!(spare_calls(200, 0, 45, 45, 10, 60), 35);
        assert_eq!(spare_calls(200, 190, 45, 45, 0, 0), 0);
        // This run's booking with its retries (86), the next run's pages (54), the hashtags 22.
        assert_eq!(spare_calls(200, 0, 86, 54, 22, 0), 38);
    }
}
