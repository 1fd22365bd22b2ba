//! One hashtag's entry in the state ([`TagState`]): its id, watermark, frontier, rate and the ids
//! seen near them; how a run advances it, and how two runs' entries merge.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::parse_timestamp;

/// The most ids kept per hashtag, newest first; bounds the state object's size (a hashtag
/// catching up on a backlog keeps the ids down to its frontier).
pub const MAX_KNOWN_IDS: usize = 10_000;

/// How far past the scheduled time a post timestamp may be and still move the watermark.
/// Clocks differ a little; a post "from tomorrow" (or year 9999) is a broken value, and as a
/// watermark it would make every real post look old and turn extra pages off.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// The highest believable post rate of one hashtag (per hour); a larger stored value is broken.
pub const MAX_RATE_PER_HOUR: f64 = 1_000_000.0;

/// One hashtag's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagState {
    /// The id `ig_hashtag_search` returned, so later runs make no search call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtag_id: Option<String>,
    /// The newest post timestamp seen, as the API wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Post id → timestamp of the posts seen within the window behind the watermark (and down
    /// to the frontier while catching up).
    #[serde(default)]
    pub known: BTreeMap<String, String>,
    /// The frontier: every post up to this timestamp (since tracking began, within the API's
    /// 24 hours) has been fetched. A poll pages back until it reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_to: Option<String>,
    /// The oldest post timestamp of the first poll: tracking began there. Older posts were never
    /// in scope, so they are neither written nor taken for late ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_since: Option<String>,
    /// The scheduled time (RFC 3339) of the last run that fetched this hashtag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<String>,
    /// Estimated new posts per hour, from what the polls found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_hour: Option<f64>,
    /// The last poll stopped before reaching the frontier (budget, error, deadline): the posts
    /// between are still to fetch, so the hashtag is due at the next run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub behind: bool,
}

pub(super) fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    parse_timestamp(s)
}

fn window_floor(watermark: Option<&str>, window: Duration) -> Option<DateTime<FixedOffset>> {
    let mark = watermark.and_then(parse_ts)?;
    let window = chrono::Duration::from_std(window).ok()?;
    mark.checked_sub_signed(window)
}

impl TagState {
    pub fn is_known(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// The state after a run scheduled at `scheduled` saw `seen` (id, timestamp) posts: the
    /// watermark moves to the newest post no later than `scheduled` + [`MAX_CLOCK_SKEW`], and
    /// every id seen this run or still within the window is kept.
    pub fn advance(
        &self,
        seen: &[(String, String)],
        window: Duration,
        hashtag_id: Option<String>,
        scheduled: DateTime<Utc>,
    ) -> TagState {
        let cap = chrono::Duration::from_std(MAX_CLOCK_SKEW)
            .ok()
            .and_then(|skew| scheduled.checked_add_signed(skew))
            .unwrap_or(scheduled);
        let watermark = seen
            .iter()
            .map(|(_, ts)| ts.as_str())
            .chain(self.watermark.as_deref())
            .filter_map(|s| parse_ts(s).map(|t| (t, s)))
            .filter(|(t, _)| t.with_timezone(&Utc) <= cap)
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s.to_string());
        let this_run: HashSet<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        let entries = self
            .known
            .iter()
            .filter(|(id, _)| !this_run.contains(id.as_str()))
            .map(|(a, b)| (a.clone(), b.clone()))
            .chain(seen.iter().cloned());
        let anchor = older(watermark.as_deref(), self.complete_to.as_deref());
        TagState {
            hashtag_id: hashtag_id.or_else(|| self.hashtag_id.clone()),
            known: compact(entries, &this_run, anchor, window),
            watermark: watermark.clone(),
            ..self.clone()
        }
    }

    /// Two states of one hashtag combined: the later watermark and frontier (each side's
    /// frontier is a sound claim on its own: everything up to it was fetched), the ids either
    /// kept, the rate of the later poll, "behind" if either is, and this state's hashtag id if
    /// it has one.
    pub fn merge(&self, other: &TagState, window: Duration) -> TagState {
        let watermark = later(self.watermark.as_deref(), other.watermark.as_deref());
        let complete_to = later(self.complete_to.as_deref(), other.complete_to.as_deref());
        let polled = |t: &TagState| {
            t.polled_at
                .as_deref()
                .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
        };
        let newer_poll = if polled(other) > polled(self) {
            other
        } else {
            self
        };
        let entries = self
            .known
            .iter()
            .chain(other.known.iter())
            .map(|(a, b)| (a.clone(), b.clone()));
        // Each side already applied the window when it advanced (keeping every id its own run
        // saw); merging keeps whatever either kept, within the size bound.
        let all: HashSet<&str> = self
            .known
            .keys()
            .chain(other.known.keys())
            .map(String::as_str)
            .collect();
        let anchor = older(watermark.as_deref(), complete_to.as_deref());
        TagState {
            hashtag_id: self.hashtag_id.clone().or_else(|| other.hashtag_id.clone()),
            known: compact(entries, &all, anchor, window),
            watermark: watermark.clone(),
            polled_at: newer_poll.polled_at.clone(),
            rate_per_hour: newer_poll.rate_per_hour.or(self.rate_per_hour),
            behind: self.behind || other.behind,
            tracked_since: older(
                self.tracked_since.as_deref(),
                other.tracked_since.as_deref(),
            )
            .map(str::to_string),
            complete_to,
        }
    }
}

/// The later of two Graph timestamps (an unreadable one counts as absent).
fn later(a: Option<&str>, b: Option<&str>) -> Option<String> {
    [a, b]
        .into_iter()
        .flatten()
        .filter_map(|s| parse_ts(s).map(|t| (t, s)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, s)| s.to_string())
}

/// The earlier of two Graph timestamps: ids are kept from a window behind it.
fn older<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    [a, b]
        .into_iter()
        .flatten()
        .filter_map(|s| parse_ts(s).map(|t| (t, s)))
        .min_by_key(|(t, _)| *t)
        .map(|(_, s)| s)
}

/// The known ids to keep: those seen this run, and those within the window behind `anchor` (the
/// watermark, or the frontier when it is older), newest first up to [`MAX_KNOWN_IDS`].
fn compact(
    entries: impl Iterator<Item = (String, String)>,
    this_run: &HashSet<&str>,
    anchor: Option<&str>,
    window: Duration,
) -> BTreeMap<String, String> {
    let floor = window_floor(anchor, window);
    let mut kept: Vec<(Option<DateTime<FixedOffset>>, String, String)> = entries
        .filter_map(|(id, ts)| {
            let t = parse_ts(&ts);
            let keep = this_run.contains(id.as_str())
                || matches!((t, floor), (Some(t), Some(f)) if t >= f);
            keep.then_some((t, id, ts))
        })
        .collect();
    kept.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut map = BTreeMap::new();
    for (_, id, ts) in kept {
        if map.len() >= MAX_KNOWN_IDS {
            break;
        }
        map.entry(id).or_insert(ts);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{at, seen, HOUR};

    #[test]
    fn the_watermark_moves_to_the_newest_post_and_old_ids_age_out() {
        let first = TagState::default().advance(
            &seen(&[
                ("1", "2023-09-02T00:00:10+0000"),
                ("2", "2023-09-01T22:00:00+0000"),
            ]),
            HOUR,
            Some("99".into()),
            at(0, 5),
        );
        assert_eq!(first.watermark.as_deref(), Some("2023-09-02T00:00:10+0000"));
        assert!(
            first.is_known("1") && first.is_known("2"),
            "ids seen this run are always kept"
        );
        let second = first.advance(
            &seen(&[("3", "2023-09-02T02:00:00+0000")]),
            HOUR,
            None,
            at(2, 5),
        );
        assert_eq!(
            second.watermark.as_deref(),
            Some("2023-09-02T02:00:00+0000")
        );
        assert!(second.is_known("3"));
        assert!(
            !second.is_known("1"),
            "older than the window and not seen again"
        );
        assert_eq!(second.hashtag_id.as_deref(), Some("99"));
    }

    #[test]
    fn a_post_from_the_future_does_not_become_the_watermark() {
        let next = TagState::default().advance(
            &seen(&[
                ("1", "2023-09-02T00:04:00+0000"),
                ("2", "2099-12-31T23:59:59+0000"),
                ("3", "2023-09-03T00:04:00+0000"),
            ]),
            HOUR,
            None,
            at(0, 5),
        );
        assert_eq!(next.watermark.as_deref(), Some("2023-09-02T00:04:00+0000"));
        assert!(next.is_known("2") && next.is_known("3"), "still recognised");
        // A state poisoned before the cap existed heals on the next run.
        let poisoned = TagState {
            watermark: Some("2099-01-01T00:00:00+0000".into()),
            ..TagState::default()
        };
        let healed = poisoned.advance(
            &seen(&[("4", "2023-09-02T00:09:00+0000")]),
            HOUR,
            None,
            at(0, 10),
        );
        assert_eq!(
            healed.watermark.as_deref(),
            Some("2023-09-02T00:09:00+0000")
        );
    }

    #[test]
    fn the_known_id_cap_keeps_the_newest() {
        let many: Vec<(String, String)> = (0..MAX_KNOWN_IDS + 10)
            .map(|i| {
                let t = at(0, 0) + chrono::Duration::seconds(i as i64);
                (
                    format!("{}", 1000 + i),
                    t.format(crate::validate::TIMESTAMP_FORMAT).to_string(),
                )
            })
            .collect();
        let s = TagState::default().advance(&many, HOUR * 24, None, at(2, 0));
        assert_eq!(s.known.len(), MAX_KNOWN_IDS);
        assert!(!s.is_known("1000"), "the oldest are dropped first");
        assert!(s.is_known(&format!("{}", 1000 + MAX_KNOWN_IDS + 9)));
    }
}
