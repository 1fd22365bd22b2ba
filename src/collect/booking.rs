//! Booking a run's calls in the credentials' ledger before it makes any (the hashtag state,
//! read and written conditionally): the hashtags job books its pager's plan, the brands job its
//! accounts' first pages and token check, then the lookback's pages, then the backfill's, each
//! within what the credential's hour has left. The session then sends no more than was booked.
//! After the run, its final booking replaces the reservation.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::collected::{Deadlines, ThisRun};
use super::hashtags::{self, Planned};
use super::history::{account_key, Pages};
use super::merge::gave_up;
use super::store::{load_state, reserve, write_state, Loaded};
use super::{App, RunSummary};
use crate::config::Config;
use crate::credential;
use crate::graph::{Session, Source};
use crate::pager::brands_booking;
use crate::state::Spend;

/// The brands run's final booking, to write once the run knows whether its data was written.
pub(super) struct BrandsBooking {
    /// The state as the run read it when it booked its calls (with its ETag).
    pub loaded: Loaded,
    /// What the run really sent, per credential: replaces its reservation.
    pub spends: Vec<Spend>,
    /// Per credential (ledger key): what the run's lookback needed, kept for the next run's
    /// booking once the run got as far as its data.
    pub lookback_need: Vec<(String, crate::lookback::Need)>,
}

impl BrandsBooking {
    /// Writes the booking and, when the run's data was written, each account's backfill
    /// progress (merged: never moved back) and what each credential's lookback needed. A
    /// failure leaves the reservation, which is never less than what was sent, and the progress
    /// where the last run left it.
    pub(super) async fn write(
        self,
        app: &App,
        scheduled: DateTime<Utc>,
        progress: Option<BTreeMap<String, crate::backfill::Progress>>,
        until: Option<Instant>,
        summary: &mut RunSummary,
    ) {
        let mut state = self.loaded.state;
        state.book(self.spends, scheduled);
        if progress.is_some() {
            state.lookback.extend(self.lookback_need);
        }
        for (account, p) in progress.into_iter().flatten() {
            let merged = match state.brands.get(&account) {
                Some(had) => had.merge(&p),
                None => p,
            };
            state.brands.insert(account, merged);
        }
        if let Err(e) = write_state(app, state, self.loaded.etag, until, summary).await {
            tracing::warn!(location = %e.location, "the brands run's calls stay booked as reserved: {e}");
        }
    }
}

/// Reads the hashtag state, plans the run from it and books the plan's calls in it before any
/// call is made (`reserve`); when another run wrote the state meanwhile, reads and
/// plans again. The session then sends no more than was booked on each credential.
pub(super) async fn plan_and_reserve(
    app: &App,
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    run: &ThisRun,
    deadlines: Deadlines,
) -> Result<(Loaded, Planned), crate::sink::SinkError> {
    let replaying = matches!(app.source, Source::Replay(_));
    for _ in 0..=app.config.sink.conflict_retries {
        let mut loaded = load_state(app, scheduled, deadlines.writes).await?;
        if let Some(n) = &loaded.note {
            tracing::warn!("hashtag state: {n}");
        }
        let mut planned = hashtags::plan(app, session, &loaded.state, scheduled, run.calls);
        if replaying {
            return Ok((loaded, planned));
        }
        let reservations = planned.pager.reservations(&run.id);
        for lane in 0..session.lanes().max(1) {
            session.limit_calls(lane, planned.pager.calls_left(lane));
        }
        if reservations.is_empty()
            || reserve(
                app,
                &mut loaded,
                reservations,
                &planned.pager.first_polls(),
                scheduled,
                deadlines.writes,
            )
            .await?
        {
            return Ok((loaded, planned));
        }
        tracing::info!("the hashtag state changed while this run booked its calls (an overlapping run): read again");
    }
    Err(gave_up(app, &app.config.hashtags.state_key))
}

/// What [`book_brands`] booked: the ledger as read, and the lookback's and backfill's pages.
pub(super) struct Booked {
    pub loaded: Loaded,
    pub pages: Pages,
    pub backfill: Pages,
    /// Calls booked for the backfill, all credentials.
    pub backfill_granted: u64,
    /// Lookback pages the estimate wanted that the hour had no calls left for.
    pub pages_skipped: u64,
}

/// Books the brands run's calls in the credentials' ledger (the hashtag state) before any call:
/// on each credential, its accounts' calls with every retry the policy allows, and the token
/// check's and refresh's, then the lookback's estimated pages (`lookback::pages_per_account`
/// per account, each with its retries), within what the credential's hour has left: a short
/// hour drops lookback pages first. The session then sends no more.
pub(super) async fn book_brands(
    app: &App,
    targets: &[usize],
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    run: &ThisRun,
    daily: bool,
    deadlines: Deadlines,
) -> Result<Booked, crate::sink::SinkError> {
    let lanes = session.lanes().max(1);
    for _ in 0..=app.config.sink.conflict_retries {
        let mut loaded = load_state(app, scheduled, deadlines.writes).await?;
        let booking = Booking {
            app,
            targets,
            session,
            state: &loaded.state,
            scheduled,
            run,
        };
        let lanes_booked: Vec<LaneBooking> =
            (0..lanes).map(|lane| booking.lane(lane, daily)).collect();
        let spends = lanes_booked.iter().map(|b| b.spend.clone()).collect();
        if reserve(app, &mut loaded, spends, &[], scheduled, deadlines.writes).await? {
            let lookback: Vec<u64> = lanes_booked.iter().map(|b| b.lookback).collect();
            let backfill: Vec<u64> = lanes_booked.iter().map(|b| b.backfill).collect();
            return Ok(Booked {
                loaded,
                pages: Pages::booked(lookback),
                backfill_granted: backfill.iter().sum(),
                backfill: Pages::booked(backfill),
                pages_skipped: lanes_booked.iter().map(|b| b.pages_skipped).sum(),
            });
        }
    }
    Err(gave_up(app, &app.config.hashtags.state_key))
}

/// What the brands run books on one credential: the spend, and the calls of it granted to the
/// lookback and to the backfill.
struct LaneBooking {
    spend: Spend,
    lookback: u64,
    backfill: u64,
    /// Lookback pages the estimate wanted that the hour had no calls left for.
    pages_skipped: u64,
}

/// Books credential `lane`'s share of a brands run: its accounts' first pages with every retry
/// the policy allows and the daily check's calls, then the lookback's estimated pages, then the
/// backfill's, within what the credential's hour has left. Limits the session to the booking.
/// What the brands run's booking on each credential reads.
struct Booking<'a, 's> {
    app: &'a App,
    /// The run's accounts (`App::targets`).
    targets: &'a [usize],
    session: &'a Session<'s>,
    /// The ledger as read.
    state: &'a crate::state::State,
    scheduled: DateTime<Utc>,
    run: &'a ThisRun,
}

impl Booking<'_, '_> {
    fn lane(&self, lane: usize, daily: bool) -> LaneBooking {
        let (app, session, state, run) = (self.app, self.session, self.state, self.run);
        let config = &app.config;
        let lanes = session.lanes().max(1);
        let attempts = u64::from(config.retry.max_attempts.max(1));
        let total = u64::from(config.budget.calls_per_hour_per_credential);
        let accounts = credential::units_on(self.targets.len(), lane, lanes) as u64;
        let key = credential::ledger_key(session, lane);
        let lookback_pages = config.lookback_pages_to_book(state.lookback.get(&key), accounts);
        // The daily check: `debug_token`, and the exchange of a token due for a refresh.
        let renews = config.health.refresh_days_left.is_some() && app.source.can_exchange(lane);
        let checks = u64::from(daily) * (1 + u64::from(renews));
        let first = (accounts + checks) * attempts;
        // The lookback's and backfill's pages are booked with a quarter more for their retries
        // (`Pages`): the session refuses any call past the booking, so a page whose retries find it
        // spent ends its account's paging, never another account's first page.
        let lookback = Pages::calls_for(lookback_pages);
        let fixed = first.saturating_add(lookback);
        // The next brands run's calls: its first pages, a token check and its lookback's pages.
        let next_run = credential::brands_run_calls(accounts, lookback_pages);
        let backfill =
            Pages::calls_for(self.backfill_wanted(lane)).min(crate::backfill::spare_calls(
                total,
                state.booked_near(&key, run.calls),
                fixed,
                next_run,
                self.hashtags_need(lane),
                state.booked_by_hashtags(&key, run.calls),
            ));
        let spend = brands_booking(
            state,
            &key,
            total,
            fixed.saturating_add(backfill),
            run.calls,
            &run.id,
        );
        session.limit_calls(lane, spend.calls);
        // The first pages take the booking first (one call each: their retries come first too,
        // as they are called first, and what is left of the booking limits them), the lookback
        // what is left, the backfill only what is left after every retry the policy allows.
        let granted = spend.calls.saturating_sub(accounts + checks).min(lookback);
        LaneBooking {
            pages_skipped: Pages::pages_in(lookback).saturating_sub(Pages::pages_in(granted)),
            backfill: spend.calls.saturating_sub(first + granted).min(backfill),
            lookback: granted,
            spend,
        }
    }

    /// Backfill pages a brands run wants on credential `lane`: for each of its accounts whose
    /// history is not complete, as many pages as fit in one invocation after its first page and
    /// lookback (`fanout`: the invocation's time over the time per call), so the run ends before its
    /// deadline. 0 without `brands.backfill_days`.
    fn backfill_wanted(&self, lane: usize) -> u64 {
        let config = &self.app.config;
        let lanes = self.session.lanes().max(1);
        let Some(since) = crate::backfill::since(self.scheduled, config.brands.backfill_days)
        else {
            return 0;
        };
        let unfinished = self
            .targets
            .iter()
            .enumerate()
            .filter(|(k, &i)| {
                credential::of(*k, lanes) == lane
                    && !config.targets.get(i).is_some_and(|t| {
                        self.state
                            .brands
                            .get(&account_key(t))
                            .is_some_and(|p| p.complete(since))
                    })
            })
            .count() as u64;
        let (per_invocation, per_account) = backfill_pages_per_account(config);
        let lookback = crate::lookback::pages_per_account(
            config.brands.lookback_days,
            config.graph.brand_media_limit,
        );
        // The invocation's calls: `concurrency` accounts at a time, each calling one after another.
        let accounts = credential::units_on(self.targets.len(), lane, lanes) as u64;
        let capacity = per_invocation.saturating_mul(config.graph.concurrency as u64);
        let planned = accounts.saturating_mul(1 + lookback);
        unfinished
            .saturating_mul(per_account)
            .min(capacity.saturating_sub(planned))
    }

    /// Calls per hour the hashtags job needs on credential `lane` in the coming hour: each of its
    /// hashtags (`credential::of`) at its rate in the state, due and freshness polls
    /// (`pager::Settings::calls_per_hour_fresh`). What the backfill leaves it.
    fn hashtags_need(&self, lane: usize) -> u64 {
        let lanes = self.session.lanes().max(1);
        let settings = self.app.config.pager_settings();
        let calls: f64 = self
            .app
            .hashtag_groups()
            .iter()
            .enumerate()
            .filter(|(i, _)| credential::of(*i, lanes) == lane)
            .map(|(_, g)| {
                let rate = self
                    .state
                    .hashtags
                    .get(&g.hashtag)
                    .and_then(|t| t.rate_per_hour)
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .unwrap_or(0.0);
                settings.calls_per_hour_fresh(rate)
            })
            .sum();
        calls.ceil().min(u64::MAX as f64) as u64
    }
}

/// The calls one account can make one after another in an invocation (`fanout`: its time
/// less the deadline margin, over the time per call), and how many of them are left to its
/// backfill after its first page and its lookback's pages.
pub(super) fn backfill_pages_per_account(config: &Config) -> (u64, u64) {
    let calls_time = config
        .fanout
        .invocation_timeout
        .saturating_sub(config.retry.deadline_margin);
    let per_invocation =
        (calls_time.as_millis() / config.fanout.call_time.as_millis().max(1)) as u64;
    let lookback = crate::lookback::pages_per_account(
        config.brands.lookback_days,
        config.graph.brand_media_limit,
    );
    (per_invocation, per_invocation.saturating_sub(1 + lookback))
}
