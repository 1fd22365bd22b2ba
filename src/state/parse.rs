//! Reading a stored state: what this program could not have written is left out and described,
//! and times past the clock are forgotten.

use chrono::{DateTime, Utc};

use super::ledger::{Spend, MAX_SPEND};
use super::tag::{parse_ts, TagState, MAX_CLOCK_SKEW, MAX_RATE_PER_HOUR};
use super::{State, MAX_STATE_IDS};
use crate::validate::is_digits;

/// The largest state object read; a larger one cannot have been written by this program (see
/// [`MAX_STATE_IDS`]) and is set aside as unreadable.
pub const MAX_STATE_BYTES: usize = 16 << 20;

impl State {
    /// Parses the stored state. Entries that could not have been written by this program (a
    /// hashtag id or post id that is not all digits, an unreadable timestamp) are left out and
    /// described, so a damaged or hostile state cannot steer a request or a comparison.
    pub fn parse(bytes: &[u8]) -> Result<(State, Vec<String>), String> {
        if bytes.len() > MAX_STATE_BYTES {
            return Err(format!(
                "unreadable state: {} bytes, more than this program ever writes ({MAX_STATE_BYTES})",
                bytes.len()
            ));
        }
        let mut state =
            serde_json::from_slice::<State>(bytes).map_err(|e| format!("unreadable state: {e}"))?;
        let mut notes = Vec::new();
        if state
            .as_of
            .as_deref()
            .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_err())
        {
            notes.push("as_of is not an RFC 3339 time: ignored".to_string());
            state.as_of = None;
        }
        for (tag, t) in state.hashtags.iter_mut() {
            clean_tag(tag, t, &mut notes);
        }
        let before = state.ledger.len();
        state.ledger.retain(readable_entry);
        if state.ledger.len() < before {
            notes.push(format!(
                "{} unreadable ledger entries ignored",
                before - state.ledger.len()
            ));
        }
        let before = state.lookback.len();
        state
            .lookback
            .retain(|key, need| key.len() <= 64 && need.is_plausible());
        if state.lookback.len() < before {
            notes.push(format!(
                "{} lookback needs no brands run could have recorded ignored (the assumption is booked)",
                before - state.lookback.len()
            ));
        }
        let forgotten = state.bound();
        if forgotten > 0 {
            notes.push(format!(
                "{forgotten} known ids past the state's bound ({MAX_STATE_IDS}) forgotten"
            ));
        }
        Ok((state, notes))
    }

    /// Forgets what no run could have written by `now`: an `as_of`, a poll or a ledger entry
    /// later than `now` plus [`MAX_CLOCK_SKEW`] (an operator's `--at` typo, a clock gone wrong).
    /// Kept, such a time would make every later run take its hashtags for polled and make no
    /// call. Returns what was forgotten, for the run's notes.
    pub fn forget_future(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let Some(limit) = chrono::Duration::from_std(MAX_CLOCK_SKEW)
            .ok()
            .and_then(|skew| now.checked_add_signed(skew))
        else {
            return Vec::new();
        };
        let future = |t: Option<&str>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) > limit)
        };
        let graph_future = |t: Option<&str>| {
            t.and_then(parse_ts)
                .is_some_and(|t| t.with_timezone(&Utc) > limit)
        };
        let mut notes = Vec::new();
        if future(self.as_of.as_deref()) {
            notes.push("as_of is in the future: ignored".to_string());
            self.as_of = None;
        }
        if future(self.reset_at.as_deref()) {
            notes.push("reset_at is in the future: ignored".to_string());
            self.reset_at = None;
        }
        for (tag, t) in self.hashtags.iter_mut() {
            if future(t.polled_at.as_deref()) {
                notes.push(format!("#{tag}: polled_at is in the future: polled again"));
                t.polled_at = None;
            }
            for (field, what) in [
                (&mut t.watermark, "watermark"),
                (&mut t.complete_to, "frontier"),
                (&mut t.tracked_since, "tracked_since"),
            ] {
                if graph_future(field.as_deref()) {
                    notes.push(format!("#{tag}: {what} is in the future: ignored"));
                    *field = None;
                }
            }
        }
        let before = self.ledger.len();
        self.ledger.retain(|e| !future(Some(&e.at)));
        if self.ledger.len() < before {
            notes.push(format!(
                "{} ledger entries in the future ignored",
                before - self.ledger.len()
            ));
        }
        notes
    }
}

/// Leaves out of one hashtag's entry what this program could not have written, with a note for
/// each.
fn clean_tag(tag: &str, t: &mut TagState, notes: &mut Vec<String>) {
    if t.hashtag_id.as_deref().is_some_and(|id| !is_digits(id)) {
        notes.push(format!(
            "#{tag}: hashtag_id is not numeric: ignored, resolved again"
        ));
        t.hashtag_id = None;
    }
    // A time that does not parse is dropped with a note; the run then starts without it.
    let graph_ts = |w: &str| parse_ts(w).is_some();
    let rfc3339 = |w: &str| DateTime::parse_from_rfc3339(w).is_ok();
    for (field, readable, what) in [
        (
            &mut t.watermark,
            &graph_ts as &dyn Fn(&str) -> bool,
            "watermark",
        ),
        (&mut t.complete_to, &graph_ts, "frontier"),
        (&mut t.tracked_since, &graph_ts, "tracked_since"),
        (&mut t.polled_at, &rfc3339, "polled_at"),
    ] {
        if field.as_deref().is_some_and(|w| !readable(w)) {
            notes.push(format!("#{tag}: unreadable {what}: ignored"));
            *field = None;
        }
    }
    if t.rate_per_hour
        .is_some_and(|r| !(r.is_finite() && (0.0..=MAX_RATE_PER_HOUR).contains(&r)))
    {
        notes.push(format!("#{tag}: implausible rate_per_hour: ignored"));
        t.rate_per_hour = None;
    }
    let before = t.known.len();
    t.known
        .retain(|id, ts| is_digits(id) && parse_ts(ts).is_some());
    if t.known.len() < before {
        notes.push(format!(
            "#{tag}: {} unreadable known ids ignored",
            before - t.known.len()
        ));
    }
}

/// Whether a ledger entry could have been written by this program: a readable span, a believable
/// number of calls, and names of a bounded length without control characters.
fn readable_entry(e: &Spend) -> bool {
    e.span().is_some()
        && e.calls <= MAX_SPEND
        && e.run.len() <= 64
        && e.lane.len() <= 64
        && !e.lane.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{at, spend};

    #[test]
    fn a_hostile_state_is_cleaned_on_reading() {
        let text = br#"{"version": 1, "as_of": "yesterday", "hashtags": {"dior": {
            "hashtag_id": "../../x?y=", "watermark": "9999-01-01T00:00:00+0000",
            "known": {"1": "2023-09-02T00:00:00+0000", "../2": "2023-09-02T00:00:00+0000",
                      "3": "-262143-01-01T00:00:00+0000"}}}}"#;
        let (state, notes) = State::parse(text).expect("readable");
        let dior = &state.hashtags["dior"];
        assert_eq!(dior.hashtag_id, None);
        assert_eq!(dior.watermark, None);
        assert_eq!(dior.known.keys().collect::<Vec<_>>(), ["1"]);
        assert_eq!(state.as_of, None);
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    #[test]
    fn a_lookback_need_no_brands_run_could_record_is_ignored() {
        let text = br#"{"version": 1, "hashtags": {}, "lookback": {
            "1": {"accounts": 0, "pages": 5},
            "2": {"accounts": 1, "pages": 99999999},
            "3": {"accounts": 11, "pages": 33}}}"#;
        let (state, notes) = State::parse(text).expect("readable");
        assert_eq!(state.lookback.keys().collect::<Vec<_>>(), ["3"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("2 lookback needs"), "{notes:?}");
    }

    #[test]
    fn times_in_the_future_of_the_clock_are_forgotten() {
        let mut s = State {
            as_of: Some("2032-09-02T00:05:00Z".into()),
            ..State::default()
        };
        s.hashtags.insert(
            "dior".into(),
            TagState {
                polled_at: Some("2032-09-02T00:05:00Z".into()),
                complete_to: Some("2032-09-02T00:04:00+0000".into()),
                watermark: Some("2023-09-02T00:04:00+0000".into()),
                ..TagState::default()
            },
        );
        s.book(vec![spend("2032-09-02T00:05:00Z", "x", 9, false)], at(0, 5));
        let notes = s.forget_future(at(0, 10));
        assert_eq!(notes.len(), 4, "{notes:?}");
        let tag = &s.hashtags["dior"];
        assert_eq!(tag.polled_at, None);
        assert_eq!(tag.complete_to, None);
        assert_eq!(tag.watermark.as_deref(), Some("2023-09-02T00:04:00+0000"));
        assert_eq!(s.as_of, None);
        assert!(s.ledger.is_empty());
        // Within the clock skew: kept.
        let mut near = State {
            as_of: Some("2023-09-02T00:15:00Z".into()),
            ..State::default()
        };
        assert!(near.forget_future(at(0, 10)).is_empty());
    }
}
