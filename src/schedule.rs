//! The one rule for a run's scheduled time, whoever gives it: the Lambda event's `time`, the
//! CLI's `--at` (brands, hashtags, all, reprocess).
//!
//! A run's time names its keys, becomes the hashtag state's `as_of` and caps its watermark. A time
//! far in the future (a typo, 2032 for 2023) would stamp the state as polled years ahead, and
//! every later run would then find nothing due and make no call, silently, until that date. So
//! a time more than [`MAX_LEAD`] ahead of the clock is refused at every entry point, before any
//! call or write. A time in the past stays accepted: a late redelivery, an operator's re-invoke,
//! reprocessing a capture from 2023 all carry one.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// The clock a run reads: the system's, or one a simulation moves. Every "now" a run compares
/// with (a scheduled time's lead, a state's future times, when its calls are booked) comes from
/// here, so that a simulated day is a day to the library too and a failure replays exactly.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Some(Arc::new(now)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(now) => now(),
            None => Utc::now(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(set)"
        } else {
            "Clock(system)"
        })
    }
}

/// How far ahead of the clock a scheduled time may be. A schedule fires at its time, give or
/// take seconds, and host clocks drift by seconds; fifteen minutes covers both with room, and is
/// still far less than the shortest poll interval a state could be pushed forward by.
pub const MAX_LEAD: TimeDelta = TimeDelta::minutes(15);

/// A scheduled time further ahead of the clock than [`MAX_LEAD`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {at} is more than {lead} minutes ahead of the clock ({now}): not the time of this run (a typo in the year?); give a time up to now, or leave it out for now")]
pub struct TimeError {
    /// Which input carried the time: `--at`, the event's `time`.
    pub field: String,
    /// The time given, RFC 3339.
    pub at: String,
    /// The clock's time, RFC 3339.
    pub now: String,
    /// [`MAX_LEAD`] in minutes.
    pub lead: i64,
}

/// Refuses `at` when it is more than [`MAX_LEAD`] ahead of `now`; `field` names the input in the
/// error (`--at`, `` `time` ``). Past times pass.
pub fn check_scheduled(
    field: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), TimeError> {
    // Past the end of chrono's range no time can be further ahead.
    let ahead = now
        .checked_add_signed(MAX_LEAD)
        .is_some_and(|limit| at > limit);
    if !ahead {
        return Ok(());
    }
    Err(TimeError {
        field: field.to_string(),
        at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
        now: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        lead: MAX_LEAD.num_minutes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_time_past_the_lead_is_refused_and_past_times_pass() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .expect("time");
        let old = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
            .single()
            .expect("time");
        assert_eq!(check_scheduled("--at", old, now), Ok(()));
        assert_eq!(check_scheduled("--at", now + MAX_LEAD, now), Ok(()));
        let e = check_scheduled("--at", now + MAX_LEAD + TimeDelta::seconds(1), now)
            .expect_err("refused");
        let message = e.to_string();
        assert!(
            message.starts_with("--at 2026-01-01T12:15:01Z is more than 15 minutes ahead of the clock (2026-01-01T12:00:00Z)"),
            "{message}"
        );
        let typo = Utc
            .with_ymd_and_hms(2032, 9, 2, 0, 0, 15)
            .single()
            .expect("time");
        assert!(check_scheduled("`time`", typo, now).is_err());
        // At the end of chrono's range nothing is further ahead.
        assert_eq!(
            check_scheduled("--at", DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC),
            Ok(())
        );
    }
}
