//! The ledger both jobs book their calls in: what each run booked on each credential ([`Spend`]),
//! over the time its calls span ([`CallSpan`]), and what runs near a time booked, for the
//! hourly budget.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::State;

/// The name the brands job books its calls under, after the credential's id
/// (`{ig_user_id}/brands`): both jobs share each credential's hourly allowance in one ledger.
pub const BRANDS: &str = "brands";

/// The most calls one ledger entry may book; a larger number is a broken value.
pub(super) const MAX_SPEND: u64 = 1_000_000;

/// The ledger's name for every credential: an entry booked under it counts on each
/// ([`State::assume_hour_spent`]).
pub const EVERY_CREDENTIAL: &str = "*";

/// How long ledger entries are kept: the budget looks an hour back (and an hour ahead, for a
/// late delivery of an older time).
const LEDGER_KEEP: chrono::Duration = chrono::Duration::hours(2);

/// The calls one run made on one credential, booked over the time its calls are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// When the run's calls began (RFC 3339, UTC): its scheduled time, or the clock's time
    /// for a run delivered late ([`CallSpan`]).
    pub at: String,
    /// When its calls ended, or will have ended at the latest (a reservation: the run's
    /// deadline). Absent: at `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The run's id: two deliveries of one scheduled time are two runs.
    pub run: String,
    /// The credential (its Instagram user id, then `/{part}` for a shard), never a token.
    pub lane: String,
    pub calls: u64,
    /// Booked before the run's first call: the most the run may spend. A run that never writes
    /// its final state (a crash, a timeout, a failed write) leaves this; its final entry (same
    /// time, run and credential) replaces it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reserved: bool,
}

impl Spend {
    /// What `run` books on `lane` over `span`.
    pub fn new(span: CallSpan, run: &str, lane: String, calls: u64, reserved: bool) -> Spend {
        Spend {
            at: span.from.to_rfc3339_opts(SecondsFormat::Secs, true),
            until: (span.to > span.from)
                .then(|| span.to.to_rfc3339_opts(SecondsFormat::Secs, true)),
            run: run.to_string(),
            lane,
            calls,
            reserved,
        }
    }

    pub(super) fn span(&self) -> Option<CallSpan> {
        let from = rfc3339(&self.at)?;
        // A span longer than any run can call is a broken value: it would hold the budget
        // for as long as it says.
        let to = match &self.until {
            Some(t) => rfc3339(t)?.clamp(from, from + MAX_CALL_SPAN),
            None => from,
        };
        Some(CallSpan { from, to })
    }
}

fn rfc3339(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The longest a run's calls can span (a Lambda function calls for 15 minutes at most; a CLI
/// run is bounded by its own deadline or, without one, by its booking's calls).
const MAX_CALL_SPAN: chrono::Duration = chrono::Duration::hours(6);

/// How late a delivery may be and still be booked at the clock's time: a run scheduled longer
/// ago than this is an operator's re-run of a past time (`--at`, a replay of a day), booked at
/// its scheduled time as if on time, so that a day re-run in minutes keeps each hour's budget.
pub const LATE_HORIZON: chrono::Duration = chrono::Duration::hours(24);

/// The time over which a run's Graph calls are made, as the ledger books them.
///
/// A run delivered on time calls from its scheduled time; one delivered late (a redelivery, a
/// retry of the state machine, within [`LATE_HORIZON`]) calls at the clock's time, so it is
/// booked there: a booking at its older scheduled time would miss the 60 minutes its calls
/// really fall in. The span ends at the run's deadline while it runs (the reservation) and at
/// its last call once it has finished. A 60-minute window holds a run's calls when it meets
/// their span, so the ledger counts every run whose calls could share an hour with this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl CallSpan {
    /// A run of `scheduled` starting its calls with the clock at `now`, that may call for `longest`.
    pub fn of_run(
        scheduled: DateTime<Utc>,
        now: DateTime<Utc>,
        longest: chrono::Duration,
    ) -> CallSpan {
        let late = now > scheduled && now - scheduled <= LATE_HORIZON;
        let from = if late { now } else { scheduled };
        CallSpan {
            from,
            to: from + longest.max(chrono::Duration::zero()),
        }
    }

    /// Calls at one instant.
    pub fn at(t: DateTime<Utc>) -> CallSpan {
        CallSpan { from: t, to: t }
    }

    /// The same start, ending `took` after it (a finished run's real span).
    pub fn ended_after(self, took: chrono::Duration) -> CallSpan {
        CallSpan {
            from: self.from,
            to: self.from + took.max(chrono::Duration::zero()),
        }
    }

    /// Whether calls over `self` and over `other` can fall in one 60-minute window (both ends
    /// included).
    fn shares_an_hour_with(&self, other: &CallSpan) -> bool {
        let hour = chrono::Duration::hours(1);
        other.from <= self.to + hour && other.to >= self.from - hour
    }
}

impl State {
    /// Calls booked on `lane` by runs whose calls can share a 60-minute window with calls over
    /// `span` (see [`CallSpan`]): what was spent in the hour before, and what later runs already
    /// spent when an older scheduled time is run late, so no 60-minute window goes over the budget.
    ///
    /// `lane` is the credential: its shards' entries (`{lane}/{part}`) count too.
    pub fn booked_near(&self, lane: &str, span: CallSpan) -> u64 {
        self.booked_where(span, |e| {
            e.lane == lane
                || e.lane == EVERY_CREDENTIAL
                || e.lane
                    .strip_prefix(lane)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Calls the hashtags job booked on credential `lane` near `span`: its runs' and its
    /// shards' entries, not the brands job's ([`BRANDS`]).
    pub fn booked_by_hashtags(&self, lane: &str, span: CallSpan) -> u64 {
        let brands = format!("{lane}/{BRANDS}");
        self.booked_near(lane, span)
            .saturating_sub(self.booked_exactly(&brands, span))
    }

    /// Calls booked under exactly this name (one shard's) near `span`.
    pub fn booked_exactly(&self, name: &str, span: CallSpan) -> u64 {
        self.booked_where(span, |e| e.lane == name)
    }

    fn booked_where(&self, span: CallSpan, keep: impl Fn(&Spend) -> bool) -> u64 {
        self.ledger
            .iter()
            .filter(|e| keep(e))
            .filter(|e| e.span().is_some_and(|t| t.shares_an_hour_with(&span)))
            .map(|e| e.calls)
            .sum()
    }

    /// After the ledger was lost (an unreadable state replaced), what the hour before `now`
    /// spent is unknown: this books the worst, every credential's whole allowance over that
    /// hour, so that no run in the next hour spends a call that could take a credential past
    /// its allowance. Both jobs wait that hour out; the hashtags job then pages back through
    /// what was listed meanwhile (the API keeps 24 hours).
    pub fn assume_hour_spent(&mut self, now: DateTime<Utc>) {
        let hour = CallSpan {
            from: now - chrono::Duration::hours(1),
            to: now,
        };
        self.ledger.push(Spend::new(
            hour,
            "unknown",
            EVERY_CREDENTIAL.to_string(),
            MAX_SPEND,
            false,
        ));
    }

    /// Books this run's calls, and forgets entries too old to count.
    /// A final entry of no calls is kept only where it replaces the run's reservation.
    pub fn book(&mut self, spends: Vec<Spend>, now: DateTime<Utc>) {
        let reserved = |s: &Spend| {
            self.ledger
                .iter()
                .any(|e| e.reserved && e.at == s.at && e.run == s.run && e.lane == s.lane)
        };
        let kept: Vec<Spend> = spends
            .into_iter()
            .filter(|s| s.calls > 0 || reserved(s))
            .collect();
        self.ledger.extend(kept);
        self.prune_ledger(now);
    }

    pub(super) fn prune_ledger(&mut self, now: DateTime<Utc>) {
        self.ledger
            .retain(|e| e.span().is_some_and(|t| t.to > now - LEDGER_KEEP));
        self.dedup_ledger();
    }

    /// One entry per (time, run, credential): merging a state with one that shares its past
    /// must not book those runs twice. A run's final entry wins over its reservation.
    pub(super) fn dedup_ledger(&mut self) {
        self.ledger.sort_by(|a, b| {
            (&a.at, &a.run, &a.lane, a.reserved).cmp(&(&b.at, &b.run, &b.lane, b.reserved))
        });
        self.ledger
            .dedup_by(|a, b| a.run == b.run && a.lane == b.lane && a.at == b.at);
    }
}
