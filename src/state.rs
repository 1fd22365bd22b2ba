//! What the hashtags job remembers between runs: per hashtag, its resolved id, the newest post
//! time seen (the watermark) and the ids seen near it. **Pure: no IO.**
//!
//! `recent_media` is not strictly ordered by time and repeats posts across runs, so a post is
//! recognised by its id; the timestamp only bounds how long ids are kept and tells whether a page
//! still reaches into time not covered yet.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::validate::parse_timestamp;

/// The most ids kept per hashtag, newest first; bounds the state object's size.
pub const MAX_KNOWN_IDS: usize = 2000;

/// The state object (`state/hashtags.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub hashtags: BTreeMap<String, TagState>,
}

/// One hashtag's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagState {
    /// The id `ig_hashtag_search` returned, so later runs make no search call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtag_id: Option<String>,
    /// The newest post timestamp seen, as the API wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Post id → timestamp of the posts seen within the window behind the watermark.
    #[serde(default)]
    pub known: BTreeMap<String, String>,
}

fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    parse_timestamp(s)
}

impl State {
    /// Parses the stored state; a missing or unreadable one is reported, never fatal.
    pub fn parse(bytes: &[u8]) -> Result<State, String> {
        serde_json::from_slice::<State>(bytes).map_err(|e| format!("unreadable state: {e}"))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

impl TagState {
    pub fn is_known(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// True when a post of this time is inside the window the state covers, so a page holding a
    /// new one may be followed by more new posts.
    pub fn is_recent(&self, timestamp: &str, window: Duration) -> bool {
        let (Some(mark), Some(ts)) = (
            self.watermark.as_deref().and_then(parse_ts),
            parse_ts(timestamp),
        ) else {
            return false;
        };
        let window = chrono::Duration::from_std(window).unwrap_or_default();
        ts >= mark - window
    }

    /// The state after a run that saw `seen` (id, timestamp) posts: the watermark moves to the
    /// newest post, and every id seen this run or still within the window is kept.
    pub fn advance(
        &self,
        seen: &[(String, String)],
        window: Duration,
        hashtag_id: Option<String>,
    ) -> TagState {
        let candidates = seen
            .iter()
            .map(|(_, ts)| ts.as_str())
            .chain(self.watermark.as_deref());
        let watermark = candidates
            .filter_map(|s| parse_ts(s).map(|t| (t, s)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s.to_string());
        let floor = watermark
            .as_deref()
            .and_then(parse_ts)
            .map(|m| m - chrono::Duration::from_std(window).unwrap_or_default());
        let this_run: HashSet<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        let mut known: Vec<(String, String)> = self
            .known
            .iter()
            .filter(|(id, ts)| {
                this_run.contains(id.as_str())
                    || match (parse_ts(ts), floor) {
                        (Some(t), Some(f)) => t >= f,
                        _ => false,
                    }
            })
            .map(|(a, b)| (a.clone(), b.clone()))
            .chain(seen.iter().cloned())
            .collect();
        // Newest first, then keep the bound.
        known.sort_by_key(|b| std::cmp::Reverse(parse_ts(&b.1)));
        let mut map = BTreeMap::new();
        for (id, ts) in known {
            if map.len() >= MAX_KNOWN_IDS {
                break;
            }
            map.entry(id).or_insert(ts);
        }
        TagState {
            hashtag_id: hashtag_id.or_else(|| self.hashtag_id.clone()),
            watermark,
            known: map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_watermark_moves_to_the_newest_post_and_old_ids_age_out() {
        let hour = Duration::from_secs(3600);
        let first = TagState::default().advance(
            &seen(&[
                ("1", "2023-09-02T00:00:10+0000"),
                ("2", "2023-09-01T22:00:00+0000"),
            ]),
            hour,
            Some("99".into()),
        );
        assert_eq!(first.watermark.as_deref(), Some("2023-09-02T00:00:10+0000"));
        assert!(
            first.is_known("1") && first.is_known("2"),
            "ids seen this run are always kept"
        );
        let second = first.advance(&seen(&[("3", "2023-09-02T02:00:00+0000")]), hour, None);
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
        assert!(second.is_recent("2023-09-02T01:30:00+0000", hour));
        assert!(!second.is_recent("2023-09-02T00:30:00+0000", hour));
    }
}
