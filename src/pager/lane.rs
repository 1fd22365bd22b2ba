//! The credentials' hourly allowances: what each [`Lane`] may spend given the ledger, what the
//! brands job books before its calls, and what a run spent ([`LaneUse`]).

use serde::Serialize;

use crate::state::{CallSpan, Spend, State};

/// One credential's hourly allowance for hashtag calls.
#[derive(Debug, Clone)]
pub struct Lane {
    /// How the ledger names it (the credential's Instagram user id).
    pub key: String,
    /// The credential's hourly allowance for hashtag calls, every shard of it together: the
    /// whole allowance less what is kept for the brands job.
    pub calls_per_hour: u64,
    /// The credential's whole hourly allowance, both jobs together. The brands job books in the
    /// same ledger (`{key}/brands`); when it spent more than was kept for it (retries), the
    /// hashtags job spends that much less.
    pub total: u64,
    /// A shard's share of it: `(name, calls per hour)`. The run books under `{key}/{name}`.
    pub share: Option<(String, u64)>,
    /// Calls per hour the brands job's first pages and token check need: always left to them.
    /// Every hashtag post comes before the lookback's pages, so a due poll may also spend what
    /// `calls_per_hour` keeps for the lookback; freshness polls may not.
    pub first_pages: u64,
    /// Calls the next brands run needs on the credential: its first pages and token check, and
    /// its lookback's pages with a quarter more (`Config::brands_run_booking`). Freshness polls
    /// leave it whole.
    pub brands_run: u64,
}

impl Lane {
    /// The name this run books its calls under.
    pub(super) fn book_as(&self) -> String {
        match &self.share {
            Some((name, _)) => format!("{}/{name}", self.key),
            None => self.key.clone(),
        }
    }

    /// What this run may spend, given the ledger, with what the hashtags job booked within the
    /// hour: the hashtag allowance less the hashtags job's bookings, and never more than the
    /// whole allowance less every booking of the credential (both jobs). A shard may also
    /// spend at most its share less its own bookings, and at most its share's proportion of
    /// what the credential has left, so that shards reading the same ledger at once cannot
    /// together pass the allowance, however the credential's earlier runs were cut.
    ///
    /// Returns the calls booked by the hashtags job, what due polls may spend, and what
    /// freshness polls may spend: within the hashtag allowance, and only while every booking
    /// near the run, both jobs, leaves the next brands run its whole booking (first pages, token
    /// check and lookback). That run shares a 60-minute window with the one before it (an hour
    /// apart, both ends counted), so the ledger holds both brands runs in it: a freshness poll
    /// never takes what the next lookback needs.
    pub(super) fn left(&self, state: &State, at: CallSpan) -> (u64, u64, u64) {
        let booked = state.booked_by_hashtags(&self.key, at);
        let all = state.booked_near(&self.key, at);
        let left = self
            .calls_per_hour
            .saturating_sub(booked)
            .min(self.total.saturating_sub(all));
        match &self.share {
            None => {
                let due = self
                    .total
                    .saturating_sub(self.first_pages)
                    .saturating_sub(all)
                    .max(left);
                let fresh = left.min(
                    self.total
                        .saturating_sub(all)
                        .saturating_sub(self.brands_run),
                );
                (booked, due, fresh)
            }
            Some((_, share)) => {
                let own = state.booked_exactly(&self.book_as(), at);
                let proportional = (u128::from(left) * u128::from(*share)
                    / u128::from(self.calls_per_hour.max(1)))
                    as u64;
                let left = share.saturating_sub(own).min(proportional);
                (booked, left, left)
            }
        }
    }
}

/// The brands job's booking on one credential before its calls: what it may spend, the most
/// `wanted`, within what the whole allowance has left in the ledger (it comes first: the hashtag
/// allowance leaves its calls out); a booking of 0 calls when nothing is left.
pub fn brands_booking(
    state: &State,
    key: &str,
    total: u64,
    wanted: u64,
    calls: CallSpan,
    run_id: &str,
) -> Spend {
    let left = total.saturating_sub(state.booked_near(key, calls));
    let lane = format!("{key}/{}", crate::state::BRANDS);
    Spend::new(calls, run_id, lane, wanted.min(left), true)
}

/// One credential's budget in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneUse {
    pub calls_per_hour: u64,
    /// Calls booked by runs within the hour before this one started.
    pub booked: u64,
    pub spent: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pager::tests::t0;
    use chrono::SecondsFormat;

    #[test]
    fn a_shard_spends_its_share_and_its_part_of_what_the_credential_has_left() {
        let at = t0();
        let booked = |entries: &[(&str, u64)]| {
            let mut state = State::default();
            let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
            state.book(
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, (lane, calls))| Spend {
                        at: stamp.clone(),
                        until: None,
                        run: format!("r{i}"),
                        lane: lane.to_string(),
                        calls: *calls,
                        reserved: false,
                    })
                    .collect(),
                at,
            );
            state
        };
        let shard = Lane {
            key: "1".into(),
            calls_per_hour: 100,
            total: 112,
            share: Some(("part-0001".into(), 40)),
            first_pages: 0,
            brands_run: 0,
        };
        // Nothing booked: the whole share.
        assert_eq!(shard.left(&State::default(), CallSpan::at(at)).1, 40);
        // Its own bookings come off its share.
        assert_eq!(
            shard
                .left(&booked(&[("1/part-0001", 30)]), CallSpan::at(at))
                .1,
            10
        );
        // 80 booked on the credential by an earlier plan: 40 % of the 20 left, so the shards
        // running at once cannot together pass the credential's allowance.
        assert_eq!(shard.left(&booked(&[("1", 80)]), CallSpan::at(at)).1, 8);
        // Another credential's bookings do not count.
        assert_eq!(shard.left(&booked(&[("12", 80)]), CallSpan::at(at)).1, 40);
        // The brands job's calls within what was kept for it (12) take nothing from the
        // hashtags; past it (retries), they do.
        assert_eq!(
            shard.left(&booked(&[("1/brands", 12)]), CallSpan::at(at)).1,
            40
        );
        assert_eq!(
            shard.left(&booked(&[("1/brands", 62)]), CallSpan::at(at)).1,
            20
        );
        // An unsharded run counts every shard's bookings of its credential. The 12 kept for
        // the brands job are its first pages: every call is the hashtags' to spend.
        let whole = Lane {
            share: None,
            first_pages: 12,
            brands_run: 0,
            ..shard.clone()
        };
        let two_shards = booked(&[("1/part-0001", 30), ("1/part-0002", 20)]);
        assert_eq!(whole.left(&two_shards, CallSpan::at(at)), (50, 50, 50));
        // When 12 of the brands job's are its lookback's, a due poll may spend them (every
        // hashtag post comes first), a freshness poll may not.
        let with_lookback = Lane {
            first_pages: 0,
            brands_run: 0,
            ..whole.clone()
        };
        assert_eq!(
            with_lookback.left(&two_shards, CallSpan::at(at)),
            (50, 62, 50)
        );
        assert_eq!(
            with_lookback
                .left(&booked(&[("1", 50), ("1/brands", 62)]), CallSpan::at(at))
                .1,
            0,
            "never past the whole allowance"
        );
    }
}
