//! What the hashtags job remembers between runs: per hashtag, its resolved id, the newest post
//! time seen (the watermark) and the ids seen near it. **Pure: no IO.**
//!
//! `recent_media` is not strictly ordered by time and repeats posts across runs, so a post is
//! recognised by its id; the timestamp only bounds how long ids are kept and tells whether a page
//! still reaches into time not covered yet.
//!
//! The state only moves forward. Two runs that read the same state (an overlap, a redelivery)
//! each advance it, and the second to write [`State::merge`]s its result into what the first
//! wrote: known ids are united, the watermark and `as_of` take the later value. So a run of an
//! older scheduled time arriving late can add what it saw but never takes anything back.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

mod ledger;
mod parse;
mod tag;

pub use ledger::{CallSpan, Spend, BRANDS, EVERY_CREDENTIAL, LATE_HORIZON};
pub use parse::MAX_STATE_BYTES;
pub use tag::{TagState, MAX_CLOCK_SKEW, MAX_KNOWN_IDS, MAX_RATE_PER_HOUR};

use tag::parse_ts;

/// The most ids kept in the whole state, every hashtag together: bounds the object's size and
/// a run's memory (the state is read, advanced and written once per run; at this bound it is
/// about 5 MB as JSON and a few MB in memory). Past it, the hashtags holding the most ids forget
/// their oldest first: a forgotten id can only make a post be written twice, never lost.
pub const MAX_STATE_IDS: usize = 60_000;

/// The state object (`state/hashtags.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The latest scheduled time (RFC 3339, UTC) whose run wrote into this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub hashtags: BTreeMap<String, TagState>,
    /// Graph calls booked per run and credential, for the hourly budget (`pager`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<Spend>,
    /// When an unreadable state was replaced (RFC 3339): the frontiers it held are lost, so a
    /// hashtag with no entry is not taken for a new one (one page) while that is within the
    /// API's 24 hours; it pages back through them (`pager`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
    /// Per account (username, lower case): where its history's backfill stands
    /// (`brands.backfill_days`). Written by the brands job after its data object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brands: BTreeMap<String, crate::backfill::Progress>,
    /// Per credential (its ledger key): what its last brands run's lookback needed, for the
    /// next run's booking and the freshness polls that leave it whole. Written by the brands job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lookback: BTreeMap<String, crate::lookback::Need>,
}

impl State {
    /// Records that tracking of `tag` began at `at`, for a first poll about to be made: its
    /// frontier and `tracked_since` become `at`, so that if the poll never finishes (a crash, a
    /// failed write), the next run pages back to `at` instead of starting again further on and
    /// skipping what was posted in between. A hashtag already tracked is left as it is.
    pub fn mark_tracking_began(&mut self, tag: &str, at: DateTime<Utc>) {
        let t = self.hashtags.entry(tag.to_string()).or_default();
        if t.polled_at.is_none() && t.complete_to.is_none() {
            let stamp = at.format(crate::validate::TIMESTAMP_FORMAT).to_string();
            t.complete_to = Some(stamp.clone());
            t.tracked_since = Some(stamp);
            t.behind = true;
        }
    }

    /// Keeps at most [`MAX_STATE_IDS`] known ids: the hashtag holding the most forgets its
    /// oldest first. Returns how many were forgotten.
    pub fn bound(&mut self) -> usize {
        let total: usize = self.hashtags.values().map(|t| t.known.len()).sum();
        if total <= MAX_STATE_IDS {
            return 0;
        }
        // The largest per-hashtag count `c` such that keeping min(len, c) ids each fits.
        let mut sizes: Vec<usize> = self.hashtags.values().map(|t| t.known.len()).collect();
        sizes.sort_unstable();
        let (mut cap, mut used) = (0, 0);
        for (i, &n) in sizes.iter().enumerate() {
            let rest = sizes.len() - i;
            if used + n * rest > MAX_STATE_IDS {
                cap = (MAX_STATE_IDS - used) / rest;
                break;
            }
            used += n;
            cap = n;
        }
        let mut forgotten = 0;
        for t in self.hashtags.values_mut() {
            if t.known.len() <= cap {
                continue;
            }
            let mut by_age: Vec<(Option<DateTime<FixedOffset>>, String)> = t
                .known
                .iter()
                .map(|(id, ts)| (parse_ts(ts), id.clone()))
                .collect();
            by_age.sort();
            let drop = t.known.len() - cap;
            for (_, id) in by_age.into_iter().take(drop) {
                t.known.remove(&id);
                forgotten += 1;
            }
        }
        forgotten
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// `as_of` as a time, when readable.
    pub fn as_of_time(&self) -> Option<DateTime<Utc>> {
        self.as_of
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Records that a run scheduled at `scheduled` wrote into the state: `as_of` never goes back.
    pub fn mark_as_of(&mut self, scheduled: DateTime<Utc>) {
        if self.as_of_time().is_none_or(|t| t < scheduled) {
            self.as_of = Some(scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }

    /// This state and another written meanwhile, combined: every hashtag of either, each merged
    /// with [`TagState::merge`], and the later `as_of`.
    pub fn merge(&self, other: &State, window: Duration) -> State {
        let mut out = self.clone();
        if let Some(t) = other.as_of_time() {
            out.mark_as_of(t);
        }
        out.version = self.version.max(other.version);
        out.reset_at = [self.reset_at.as_deref(), other.reset_at.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|p| (p, t)))
            .max_by_key(|(p, _)| *p)
            .map(|(_, t)| t.to_string());
        for (tag, theirs) in &other.hashtags {
            let merged = match self.hashtags.get(tag) {
                Some(mine) => mine.merge(theirs, window),
                None => theirs.clone(),
            };
            out.hashtags.insert(tag.clone(), merged);
        }
        for (account, theirs) in &other.brands {
            let merged = match self.brands.get(account) {
                Some(mine) => mine.merge(theirs),
                None => theirs.clone(),
            };
            out.brands.insert(account.clone(), merged);
        }
        for (key, theirs) in &other.lookback {
            let merged = match self.lookback.get(key) {
                Some(mine) => mine.merge(*theirs),
                None => *theirs,
            };
            out.lookback.insert(key.clone(), merged);
        }
        // Each run's spends are its own entries: the union books every run once.
        out.ledger.extend(other.ledger.iter().cloned());
        match out.as_of_time() {
            Some(t) => out.prune_ledger(t),
            None => out.dedup_ledger(),
        }
        out.bound();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    use super::ledger::MAX_SPEND;

    pub(super) fn seen(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    pub(super) fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 9, 2, h, m, 0)
            .single()
            .expect("time")
    }

    pub(super) const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn merging_keeps_each_credentials_larger_lookback_need() {
        use crate::lookback::Need;
        let need = |accounts, pages| Need { accounts, pages };
        let mut a = State::default();
        a.lookback.insert("1".into(), need(11, 0));
        a.lookback.insert("2".into(), need(5, 9));
        let mut b = State::default();
        b.lookback.insert("1".into(), need(11, 33));
        for m in [a.merge(&b, HOUR), b.merge(&a, HOUR)] {
            assert_eq!(m.lookback.get("1"), Some(&need(11, 33)));
            assert_eq!(m.lookback.get("2"), Some(&need(5, 9)));
        }
    }

    #[test]
    fn merging_unites_ids_and_never_moves_back() {
        let a = TagState::default().advance(
            &seen(&[("1", "2023-09-02T01:00:00+0000")]),
            HOUR,
            Some("7".into()),
            at(1, 5),
        );
        let b = TagState::default().advance(
            &seen(&[("2", "2023-09-02T00:30:00+0000")]),
            HOUR,
            None,
            at(0, 35),
        );
        for m in [a.merge(&b, HOUR), b.merge(&a, HOUR)] {
            assert!(m.is_known("1") && m.is_known("2"));
            assert_eq!(m.watermark.as_deref(), Some("2023-09-02T01:00:00+0000"));
            assert_eq!(m.hashtag_id.as_deref(), Some("7"));
        }
        let mut newer = State::default();
        newer.mark_as_of(at(1, 5));
        let mut older = State::default();
        older.mark_as_of(at(0, 35));
        assert_eq!(older.merge(&newer, HOUR).as_of, newer.as_of);
        assert_eq!(newer.merge(&older, HOUR).as_of, newer.as_of);
        older.mark_as_of(at(0, 5));
        assert_eq!(
            older.as_of_time(),
            Some(at(0, 35)),
            "as_of never moves back"
        );
    }

    pub(super) fn spend(at: &str, run: &str, calls: u64, reserved: bool) -> Spend {
        Spend {
            at: at.into(),
            until: None,
            run: run.into(),
            lane: "17841400000000001".into(),
            calls,
            reserved,
        }
    }

    #[test]
    fn a_runs_final_booking_replaces_its_reservation_and_a_crashed_run_keeps_it() {
        let t = "2023-09-02T00:05:00Z";
        let mut s = State::default();
        s.book(
            vec![spend(t, "a", 150, true), spend(t, "b", 150, true)],
            at(0, 5),
        );
        assert_eq!(
            s.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            300
        );
        // Run "a" finished having made no call: its final entry of 0 replaces the reservation.
        // Run "b" crashed: its reservation stays booked.
        let mut finished = s.clone();
        finished.book(vec![spend(t, "a", 0, false)], at(0, 5));
        assert_eq!(
            finished.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            150
        );
        // Merged either way round with a state that still holds the reservation: the final wins.
        for merged in [finished.merge(&s, HOUR), s.merge(&finished, HOUR)] {
            assert_eq!(
                merged.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
                150
            );
        }
        // A zero booking with no reservation behind it is not kept.
        let mut quiet = State::default();
        quiet.book(vec![spend(t, "c", 0, false)], at(0, 5));
        assert!(quiet.ledger.is_empty());
    }

    #[test]
    fn a_shards_bookings_count_for_its_credential() {
        let t = "2023-09-02T00:05:00Z";
        let mut s = State::default();
        let mut part = spend(t, "a", 7, false);
        part.lane = "17841400000000001/part-0002".into();
        let mut other = spend(t, "b", 5, false);
        other.lane = "178414000000000012".into();
        s.book(vec![spend(t, "c", 3, false), part, other], at(0, 5));
        assert_eq!(
            s.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            10
        );
        assert_eq!(
            s.booked_exactly("17841400000000001/part-0002", CallSpan::at(at(0, 5))),
            7
        );
        assert_eq!(
            s.booked_near("178414000000000012", CallSpan::at(at(0, 5))),
            5
        );
    }

    #[test]
    fn a_late_run_is_booked_when_its_calls_are_made_and_an_old_time_when_it_was_scheduled() {
        let min = |m: i64| chrono::Duration::minutes(m);
        // Scheduled 10:00, delivered at 10:50: its calls fall in the hour of 10:50.
        let late = CallSpan::of_run(at(10, 0), at(10, 50), min(1));
        assert_eq!((late.from, late.to), (at(10, 50), at(10, 51)));
        let mut s = State::default();
        let lane = "17841400000000001";
        s.book(
            vec![Spend::new(
                late.ended_after(min(0)),
                "late",
                lane.into(),
                40,
                false,
            )],
            at(10, 50),
        );
        // The on-time run of 11:45 shares 10:50's hour, whatever time the late run was for.
        let next = CallSpan::of_run(at(11, 45), at(11, 45), min(1));
        assert_eq!(s.booked_near(lane, next), 40);
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 51))), 0);
        // A re-run of a day long past (an operator's --at) keeps its own hours.
        let past = Utc
            .with_ymd_and_hms(2023, 8, 31, 10, 0, 0)
            .single()
            .expect("time");
        let rerun = CallSpan::of_run(past, at(10, 0), min(1));
        assert_eq!(rerun.from, past);
        // A time ahead of the clock is its own time too.
        assert_eq!(
            CallSpan::of_run(at(10, 10), at(10, 0), min(1)).from,
            at(10, 10)
        );
    }

    #[test]
    fn a_booking_counts_over_its_whole_span_and_a_broken_span_is_bounded() {
        let lane = "17841400000000001";
        let spend = |from, until: &str| Spend {
            at: from,
            until: Some(until.to_string()),
            run: "r".into(),
            lane: lane.into(),
            calls: 9,
            reserved: true,
        };
        let mut s = State::default();
        // A reservation from 10:00 to its deadline at 10:14 meets the hour of a run at 11:10.
        s.ledger
            .push(spend("2023-09-02T10:00:00Z".into(), "2023-09-02T10:14:00Z"));
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 10))), 9);
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 15))), 0);
        // An end in year 9999 holds the budget for MAX_CALL_SPAN at most, not for ever.
        let mut broken = State::default();
        broken
            .ledger
            .push(spend("2023-09-02T10:00:00Z".into(), "9999-01-01T00:00:00Z"));
        assert_eq!(broken.booked_near(lane, CallSpan::at(at(16, 59))), 9);
        assert_eq!(broken.booked_near(lane, CallSpan::at(at(17, 1))), 0);
    }

    #[test]
    fn a_lost_ledger_books_the_hour_before_as_spent_on_every_credential() {
        let mut s = State::default();
        s.assume_hour_spent(at(10, 0));
        for lane in ["17841400000000001", "17841400000000002/part-0001"] {
            assert!(s.booked_near(lane, CallSpan::at(at(11, 0))) >= MAX_SPEND);
            assert!(s.booked_by_hashtags(lane, CallSpan::at(at(10, 30))) >= MAX_SPEND);
            assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 1))), 0);
        }
        // It survives the state's own checks, so the runs after the next still see it.
        let (read, _) = State::parse(&s.to_bytes()).expect("parse");
        assert!(read.booked_near("1", CallSpan::at(at(10, 59))) >= MAX_SPEND);
    }

    #[test]
    fn the_whole_state_is_bounded_and_the_largest_hashtags_forget_their_oldest() {
        let mut s = State::default();
        let ts = |i: usize| {
            format!(
                "2023-09-01T{:02}:{:02}:{:02}+0000",
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            )
        };
        for (tag, n) in [("small", 100usize), ("big", 50_000), ("mid", 20_000)] {
            let known = (0..n)
                .map(|i| (format!("{}", 1_000_000 + i), ts(i)))
                .collect();
            s.hashtags.insert(
                tag.into(),
                TagState {
                    known,
                    ..TagState::default()
                },
            );
        }
        let forgotten = s.bound();
        let total: usize = s.hashtags.values().map(|t| t.known.len()).sum();
        assert_eq!(forgotten, 70_100 - MAX_STATE_IDS);
        assert!(total <= MAX_STATE_IDS);
        assert_eq!(
            s.hashtags["small"].known.len(),
            100,
            "a small hashtag keeps all"
        );
        let big = &s.hashtags["big"];
        assert!(
            big.is_known(&format!("{}", 1_000_000 + 49_999)),
            "the newest is kept"
        );
        assert!(!big.is_known("1000000"), "the oldest is forgotten");
        // Reading a state past the bound applies it, and says so.
        let (read, notes) = State::parse(&serde_json::to_vec(&s).expect("json")).expect("state");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(read, s);
    }
}
