//! **Pure**: how far the brands job pages back an account's media (`[brands] lookback_days`).
//!
//! The first `business_discovery` page holds an account's latest posts; a post's counts go on
//! moving for days, so every run also follows the media edge's `after` cursor until the page
//! reaches the window's start. A [`Walk`] decides, page by page, whether to go on; it never
//! follows a cursor twice, so an API that answers the same cursor again ends the paging instead
//! of looping. What the pages cost is estimated here too, for the booking (`collect::run`) and
//! the budget arithmetic (`credential`).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The posting rate the budget assumes for an account: one post every 2 hours. Busier accounts
/// use the pages quieter ones on the same credential leave; past the booking a window is cut
/// short and reported, never the first page of another account.
pub const POSTS_PER_DAY: u64 = 12;

/// The longest cursor followed. Meta's cursors are some hundred characters; anything longer is
/// not one.
const MAX_CURSOR_LEN: usize = 1024;

/// Pages past the first that an account posting [`POSTS_PER_DAY`] needs for `lookback_days`, at
/// `page_size` posts a page. The walk stops on the first page holding a post older than the
/// window, so `posts` in the window take `posts / page_size` pages after the first.
pub fn pages_per_account(lookback_days: u32, page_size: u32) -> u64 {
    let posts = u64::from(lookback_days).saturating_mul(POSTS_PER_DAY);
    posts / u64::from(page_size.max(1))
}

/// What one credential's last brands run needed for its lookback: its accounts, and the pages
/// past their first ones it read or wanted (pages refused for want of a booking count too). Kept
/// in the state per credential (`State::lookback`), so the next run books what the accounts
/// really need rather than the [`POSTS_PER_DAY`] assumption: brands post a few times a day
/// (0.4 to 2.7 in the samples), when a week at 12 a day would book three pages each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub accounts: u64,
    pub pages: u64,
}

/// The most lookback pages past the first one account can need: 90 days of an account posting
/// every 15 minutes. A recorded need past it is a broken value, not a busy account.
pub const MAX_PAGES_PER_ACCOUNT: u64 = 1_000;

impl Need {
    /// Whether this need could have been recorded by a brands run: some accounts, and at most
    /// [`MAX_PAGES_PER_ACCOUNT`] pages each.
    pub fn is_plausible(&self) -> bool {
        self.accounts > 0 && self.pages <= self.accounts.saturating_mul(MAX_PAGES_PER_ACCOUNT)
    }

    /// Two runs' needs of one credential: the larger, so that neither run's accounts go short.
    pub fn merge(self, other: Need) -> Need {
        if (other.pages, other.accounts) > (self.pages, self.accounts) {
            other
        } else {
            self
        }
    }
}

/// The pages past the first to book for a run of `accounts` accounts paging back `lookback_days`
/// (`page_size` posts a page): what the credential's last run needed (`need`), scaled to this
/// run's accounts; without a need recorded, the [`POSTS_PER_DAY`] assumption
/// ([`pages_per_account`] each). An account that posted more since is cut short for one run
/// and says so; that run records at least the assumption, so the next one books it.
pub fn pages_to_book(
    need: Option<&Need>,
    accounts: u64,
    lookback_days: u32,
    page_size: u32,
) -> u64 {
    if lookback_days == 0 || accounts == 0 {
        return 0;
    }
    let assumed = accounts.saturating_mul(pages_per_account(lookback_days, page_size));
    match need {
        Some(n) if n.accounts > 0 => {
            let scaled = u128::from(n.pages) * u128::from(accounts);
            let scaled = scaled.div_ceil(u128::from(n.accounts));
            u64::try_from(scaled).unwrap_or(u64::MAX)
        }
        _ => assumed,
    }
}

/// What a brands run's lookback did, all accounts (the run summary's `brands_lookback`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// `brands.lookback_days`.
    pub days: u32,
    /// Pages fetched past the first, all accounts.
    pub pages: u64,
    /// Pages the run wanted to book (the estimate) but the credentials' hour had no calls left
    /// for: the first pages were booked before them.
    pub pages_skipped: u64,
    /// Accounts whose paging stopped before the window's start because the pages booked were
    /// spent: their oldest posts of the window wait for a run with calls to spare.
    pub accounts_cut_short: u64,
    /// Pages that failed (or were not sent: usage high, deadline); the account's paging ends
    /// there, what it had is written.
    pub pages_failed: u64,
    /// Accounts whose paging ended on a cursor already followed or not a cursor.
    pub cursors_refused: u64,
}

impl Report {
    /// Adds one account's paging.
    pub fn add(&mut self, other: &Report) {
        self.pages += other.pages;
        self.accounts_cut_short += other.accounts_cut_short;
        self.pages_failed += other.pages_failed;
        self.cursors_refused += other.cursors_refused;
    }
}

/// Why an account's paging ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The page held a post older than the window's start: everything younger was read.
    Window,
    /// The page had no posts, or no cursor to a next one: the account has no older posts.
    NoMore,
    /// The API answered a cursor already followed: it would page in a circle.
    RepeatedCursor,
    /// The cursor is not one the API gives (too long, or characters that would change the
    /// request's field expression).
    BadCursor,
}

/// One account's paging back to the window's start.
#[derive(Debug, Clone)]
pub struct Walk {
    since: DateTime<Utc>,
    followed: HashSet<String>,
}

impl Walk {
    /// The walk of a run scheduled at `scheduled`; `None` when `lookback_days` is 0 (the first
    /// page only).
    pub fn new(scheduled: DateTime<Utc>, lookback_days: u32) -> Option<Walk> {
        if lookback_days == 0 {
            return None;
        }
        let since = scheduled
            .checked_sub_signed(Duration::days(i64::from(lookback_days)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Some(Walk {
            since,
            followed: HashSet::new(),
        })
    }

    /// The window's start: posts at or after it are the window's.
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// Whether a post of time `at` belongs to the window.
    pub fn in_window(&self, at: DateTime<Utc>) -> bool {
        at >= self.since
    }

    /// After a page whose oldest post is `oldest` (`None`: no post with a readable time) and
    /// whose next cursor is `after`: the cursor to follow, or why the paging ends.
    pub fn next(
        &mut self,
        oldest: Option<DateTime<Utc>>,
        after: Option<&str>,
    ) -> Result<String, End> {
        let oldest = oldest.ok_or(End::NoMore)?;
        if !self.in_window(oldest) {
            return Err(End::Window);
        }
        let after = after.filter(|a| !a.is_empty()).ok_or(End::NoMore)?;
        if !is_cursor(after) {
            return Err(End::BadCursor);
        }
        if !self.followed.insert(after.to_string()) {
            return Err(End::RepeatedCursor);
        }
        Ok(after.to_string())
    }
}

/// A cursor as the API gives them: letters, digits, `-`, `_`, `=`, `%`, and not too long. It
/// goes inside the request's field expression (`media.after(…)`), where a parenthesis or brace
/// would change what is asked.
pub fn is_cursor(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CURSOR_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'%'))
}

/// The calls to book for `pages` pages past the first: a quarter more, for their retries.
pub fn calls_to_book(pages: u64) -> u64 {
    pages.saturating_add(pages.div_ceil(4))
}

/// The pages `calls` booked calls pay for (the inverse of [`calls_to_book`]).
pub fn pages_booked(calls: u64) -> u64 {
    calls.saturating_mul(4) / 5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn a_week_at_one_post_every_two_hours_costs_three_pages_past_the_first() {
        for (days, size, pages) in [
            (7, 25, 3),
            (0, 25, 0),
            (1, 25, 0),
            (3, 12, 3),
            (7, 100, 0),
            (7, 0, 84),
            (365, 25, 175),
        ] {
            assert_eq!(
                pages_per_account(days, size),
                pages,
                "{days} days, {size} a page"
            );
        }
    }

    #[test]
    fn no_lookback_days_is_no_walk() {
        assert!(Walk::new(at("2026-01-10T12:00:00Z"), 0).is_none());
    }

    #[test]
    fn the_walk_goes_on_while_the_oldest_post_is_in_the_window() {
        let mut w = Walk::new(at("2026-01-10T12:00:00Z"), 7).expect("walk");
        assert_eq!(w.since(), at("2026-01-03T12:00:00Z"));
        assert_eq!(
            w.next(Some(at("2026-01-03T12:00:00Z")), Some("QVFI1")),
            Ok("QVFI1".into())
        );
        assert_eq!(
            w.next(Some(at("2026-01-03T11:59:59Z")), Some("QVFI2")),
            Err(End::Window)
        );
        assert_eq!(
            w.next(Some(at("2026-01-09T00:00:00Z")), None),
            Err(End::NoMore)
        );
        assert_eq!(
            w.next(Some(at("2026-01-09T00:00:00Z")), Some("")),
            Err(End::NoMore)
        );
        assert_eq!(w.next(None, Some("QVFI3")), Err(End::NoMore));
    }

    #[test]
    fn a_cursor_already_followed_ends_the_walk() {
        let mut w = Walk::new(at("2026-01-10T12:00:00Z"), 7).expect("walk");
        let t = Some(at("2026-01-09T00:00:00Z"));
        assert_eq!(w.next(t, Some("a1")), Ok("a1".into()));
        assert_eq!(w.next(t, Some("a2")), Ok("a2".into()));
        assert_eq!(w.next(t, Some("a1")), Err(End::RepeatedCursor));
    }

    #[test]
    fn a_cursor_that_would_change_the_field_expression_is_not_followed() {
        let mut w = Walk::new(at("2026-01-10T12:00:00Z"), 7).expect("walk");
        let t = Some(at("2026-01-09T00:00:00Z"));
        for bad in ["a)", "a}{id", "a,b", "a b", &"x".repeat(1025)] {
            assert_eq!(w.next(t, Some(bad)), Err(End::BadCursor), "{bad}");
        }
        assert!(is_cursor("QVFIUmlKdXBzYWtyUml3-_%3D="));
    }

    #[test]
    fn a_window_before_the_representable_times_starts_at_the_first() {
        let w = Walk::new(DateTime::<Utc>::MIN_UTC, 7).expect("walk");
        assert!(w.in_window(DateTime::<Utc>::MIN_UTC));
    }

    #[test]
    fn the_booking_follows_what_the_last_run_needed_scaled_to_its_accounts() {
        // The assumption without a need: 7 days at 12 a day, 25 a page, 3 pages each.
        assert_eq!(pages_to_book(None, 11, 7, 25), 33);
        // Brands that post twice a day need none past their first page: none booked.
        let quiet = Need {
            accounts: 11,
            pages: 0,
        };
        assert_eq!(pages_to_book(Some(&quiet), 11, 7, 25), 0);
        // A need of another set of accounts (a shard, a changed configuration) is scaled, up.
        let some = Need {
            accounts: 10,
            pages: 5,
        };
        assert_eq!(pages_to_book(Some(&some), 11, 7, 25), 6);
        assert_eq!(pages_to_book(Some(&some), 20, 7, 25), 10);
        // A need of no accounts tells nothing: the assumption.
        let empty = Need {
            accounts: 0,
            pages: 4,
        };
        assert_eq!(pages_to_book(Some(&empty), 11, 7, 25), 33);
        // No lookback, or no account: nothing.
        assert_eq!(pages_to_book(Some(&some), 11, 0, 25), 0);
        assert_eq!(pages_to_book(None, 0, 7, 25), 0);
        // A hostile need cannot overflow.
        let huge = Need {
            accounts: 1,
            pages: u64::MAX,
        };
        assert_eq!(pages_to_book(Some(&huge), 3, 7, 25), u64::MAX);
        // Two runs' needs merge to the larger.
        assert_eq!(quiet.merge(some), some);
        assert_eq!(some.merge(quiet), some);
    }
}
