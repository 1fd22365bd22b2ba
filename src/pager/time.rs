//! The time arithmetic the pager's decisions share: configured durations as chrono ones, and
//! the two timestamp forms it reads (RFC 3339 in the state, the Graph form in pages).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::validate::parse_timestamp;

/// `d` as a chrono duration (a `std` duration too large for chrono saturates at zero: every one
/// here comes from checked configuration).
pub(super) fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// `d` before `t`, when representable.
pub(super) fn before(t: DateTime<FixedOffset>, d: Duration) -> Option<DateTime<FixedOffset>> {
    t.checked_sub_signed(span(d))
}

pub(super) fn hours_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    ((later - earlier).num_seconds().max(0)) as f64 / 3600.0
}

pub(super) fn rfc3339(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn graph_ts(t: &str) -> Option<DateTime<Utc>> {
    parse_timestamp(t).map(|t| t.with_timezone(&Utc))
}
