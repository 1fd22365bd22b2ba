//! One run of a job, from its scheduled time to its summary: read the state (hashtags), fetch
//! and flatten, decide whether the run failed, then hand everything to `persist`.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

use crate::pager::brands_booking;
use crate::state::{CallSpan, Spend};

use super::hashtags::{self, Loaded, Planned};
use super::{brands, drift, persist, App, FailedTarget, Job, RunError, RunSummary};
use crate::config::Config;
use crate::graph::{GraphStats, Session, Source};
use crate::health;
use crate::records::{Batch, Kind};
use crate::validate::Tally;

/// When a run must stop. Graph calls stop at `calls`, early enough that what was collected can
/// still be written; every S3 call ends by `writes` at the latest, so the invocation answers with
/// its summary (and a clear error if S3 stalled) before Lambda would kill it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    pub calls: Option<Instant>,
    pub writes: Option<Instant>,
}

/// What fetching and flattening produced, before anything is written.
#[derive(Default)]
pub(super) struct Collected {
    pub batch: Batch,
    /// What the brands job rendered and captured as the answers arrived.
    pub streamed: persist::Streamed,
    pub tally: Tally,
    pub failed: Vec<FailedTarget>,
    pub resolved: BTreeMap<String, String>,
    /// Pages fetched per hashtag.
    pub pages: BTreeMap<String, u32>,
    /// What the brands job's lookback fetched (`brands.lookback_days`).
    pub lookback: crate::lookback::Report,
    /// What the brands job's backfill fetched (`brands.backfill_days`).
    pub backfill: crate::backfill::Report,
    /// Where each account's backfill stands after the run, to write with the state.
    pub progress: BTreeMap<String, crate::backfill::Progress>,
}

impl Collected {
    /// Records collected of `kind`.
    fn count(&self, kind: Kind) -> usize {
        let streamed = self.streamed.outputs.get(&kind).map_or(0, |o| o.count());
        self.batch.get(kind).len() + streamed
    }
}

/// Runs `job` for the run scheduled at `scheduled`, stopping Graph calls at `deadline`; S3 calls
/// are bounded by their own timeouts only. See [`run_until`].
pub async fn run(
    app: &App,
    job: Job,
    scheduled: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<RunSummary, RunError> {
    let deadlines = Deadlines {
        calls: deadline,
        writes: None,
    };
    run_until(app, job, scheduled, deadlines).await
}

/// Runs `job` for the run scheduled at `scheduled`.
///
/// Any number of runs of the same scheduled time, in any order, overlapping or not, leave under
/// that time's keys at least every record any of them wrote: each write merges with what is there
/// (see `persist`). A replayed run reads state from the replay folder and writes neither capture
/// nor state.
pub async fn run_until(
    app: &App,
    job: Job,
    scheduled: DateTime<Utc>,
    deadlines: Deadlines,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let job_config = app.config.for_job(job);
    let session = app
        .source
        .session(&app.config.retry, &app.config.graph, deadlines.calls);
    let replaying = matches!(app.source, Source::Replay(_));
    let mut summary = RunSummary {
        job,
        scheduled_time: scheduled.to_rfc3339_opts(SecondsFormat::Secs, true),
        keys_written: Vec::new(),
        merged_with_earlier: Vec::new(),
        write_conflicts: 0,
        capture_files_kept: 0,
        records: BTreeMap::new(),
        dropped_total: 0,
        dropped: Vec::new(),
        defaulted_total: 0,
        defaulted: Vec::new(),
        targets_total: job_config.targets.len(),
        failed_targets: Vec::new(),
        resolved_hashtag_ids: BTreeMap::new(),
        hashtag_pages: BTreeMap::new(),
        hashtags: BTreeMap::new(),
        posts_behind: None,
        posts_given_up: None,
        hashtag_budget: Vec::new(),
        brands_lookback: None,
        brands_backfill: None,
        state: None,
        state_as_of: None,
        token_health: Vec::new(),
        fields_removed: Vec::new(),
        fields_removed_note: None,
        token_refresh: Vec::new(),
        renewed_tokens: Default::default(),
        raw_capture: None,
        graph: GraphStats::default(),
        duration_ms: 0,
    };
    let finish = |mut s: RunSummary| {
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.graph = session.stats();
        Box::new(s)
    };

    let mut brands_booked: Option<Loaded> = None;
    let mut progress_read = BTreeMap::new();
    let mut start: Option<Loaded> = None;
    let now = app.clock.now();
    if let Err(e) = crate::schedule::check_scheduled("the scheduled time", scheduled, now) {
        tracing::error!("{e}");
        return Err(RunError::ScheduledAhead(e, finish(summary)));
    }
    // Two deliveries of one scheduled time are two runs in the budget's ledger.
    let run = ThisRun {
        id: format!("{:016x}", rand::random::<u64>()),
        calls: CallSpan::of_run(scheduled, now, longest_calls(deadlines)),
        started,
    };
    // Before any call: the fields earlier runs found removed are left out from the first one.
    let removed = drift::start(app, &session, deadlines.writes, &mut summary).await;
    let mut next_state = None;
    let collected = match job {
        Job::Brands => {
            // Once a day, the first brands run after 00:00 UTC checks the token, alongside the
            // brand calls so that it adds no time to the run.
            let daily = !replaying && scheduled.hour() == 0 && app.config.fanout.checks_tokens;
            // The calls are booked in the credentials' ledger before they are made, so retries
            // and redeliveries count against the hour like the hashtags job's calls.
            let mut pages = brands::Pages::unlimited();
            let mut backfill_pages = brands::Pages::unlimited();
            let mut pages_skipped = 0;
            let mut backfill_granted = 0;
            if !replaying {
                match book_brands(app, &session, scheduled, &run, daily, deadlines).await {
                    Ok(booked) => {
                        progress_read = booked.loaded.state.brands.clone();
                        brands_booked = Some(booked.loaded);
                        pages = booked.pages;
                        backfill_pages = booked.backfill;
                        backfill_granted = booked.backfill_granted;
                        pages_skipped = booked.pages_skipped;
                    }
                    Err(e) => {
                        tracing::error!(location = %e.location, "the calls could not be booked: {e}");
                        return Err(RunError::StateUnreadable(e, finish(summary)));
                    }
                }
            }
            let check = async {
                if daily {
                    health::check(&session, app.source.lanes()).await
                } else {
                    Vec::new()
                }
            };
            let history = brands::History {
                since: crate::backfill::since(scheduled, app.config.brands.backfill_days),
                per_account: backfill_pages_per_account(&app.config).1,
                progress: &progress_read,
                pages: backfill_pages,
            };
            let (mut collected, checked) = tokio::join!(
                brands::collect(app, &session, scheduled, deadlines.writes, &pages, &history),
                check
            );
            if history.since.is_some() {
                collected.backfill.days = app.config.brands.backfill_days;
                collected.backfill.calls_granted = backfill_granted;
                summary.brands_backfill = Some(collected.backfill.clone());
            }
            collected.lookback.pages_skipped = pages_skipped;
            if app.config.brands.lookback_days > 0 {
                collected.lookback.days = app.config.brands.lookback_days;
                if pages_skipped > 0 || collected.lookback.accounts_cut_short > 0 {
                    tracing::warn!(
                        pages_skipped,
                        accounts_cut_short = collected.lookback.accounts_cut_short,
                        "the hour's calls could not book every lookback page: the first pages were booked first, and the oldest posts of some windows wait for a run with calls to spare; raise budget.calls_per_hour_per_credential, lower brands.lookback_days, or add credentials"
                    );
                }
                summary.brands_lookback = Some(collected.lookback.clone());
            }
            // After the brand calls, not before or beside them: their posts never wait for it,
            // and it spends only the call booked for it (`book_brands`). Before the final
            // booking below, so that the ledger counts it.
            if let (true, Some(below)) = (daily, app.config.health.refresh_days_left) {
                let renewal = health::renew(&session, &checked, health::Renew::Below(below)).await;
                summary.token_refresh = renewal.report;
                summary.renewed_tokens = renewal.tokens;
            }
            summary.token_health = checked.into_iter().filter_map(Result::ok).collect();
            collected
        }
        Job::Hashtags => {
            let (loaded, planned) = match plan_and_reserve(
                app,
                &job_config,
                &session,
                scheduled,
                &run,
                deadlines,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(location = %e.location, "hashtag state not read or booked: {e}");
                    return Err(RunError::StateUnreadable(e, finish(summary)));
                }
            };
            summary.state = loaded.note.clone();
            summary.state_as_of = loaded.state.as_of.clone();
            let (collected, state, paging) = hashtags::collect(
                app,
                &session,
                planned,
                &loaded.state,
                scheduled,
                &run,
                deadlines.writes,
            )
            .await;
            summary.posts_behind = Some(paging.hashtags.values().map(|r| r.posts_behind).sum());
            summary.posts_given_up = Some(paging.hashtags.values().map(|r| r.posts_given_up).sum());
            summary.hashtags = paging.hashtags;
            summary.hashtag_budget = paging.budget;
            start = Some(loaded);
            next_state = Some(state);
            collected
        }
    };
    drift::finish(
        app,
        &session,
        removed,
        scheduled,
        deadlines.writes,
        &mut summary,
    )
    .await;
    // What the brands run really sent replaces its booking once the data is written (with the
    // backfill's progress) or has failed (without it).
    let settle = brands_booked.map(|loaded| BrandsBooking {
        loaded,
        spends: (0..session.lanes().max(1))
            .map(|lane| {
                let key = crate::credential::brands_ledger_key(&session, lane);
                let calls = run.calls.ended_after(run.took());
                Spend::new(calls, &run.id, key, session.calls_on(lane), false)
            })
            .collect(),
    });
    summary.records = job
        .kinds()
        .iter()
        .map(|k| (*k, collected.count(*k)))
        .collect();
    summary.dropped_total = collected.tally.dropped_total();
    summary.dropped = collected.tally.dropped_rows();
    summary.defaulted_total = collected.tally.defaulted_total();
    summary.defaulted = collected.tally.defaulted_rows();
    summary.failed_targets = collected.failed;
    summary.resolved_hashtag_ids = collected.resolved;
    summary.hashtag_pages = collected.pages;

    for (lane, e) in session.rejected_tokens() {
        tracing::error!(
            severity = "CRITICAL", ig_user_id = session.lane_user(lane).unwrap_or_default(), code = ?e.code, subcode = ?e.subcode,
            "the access token was rejected: {}. Its targets were not collected. Create a new long-lived (or system user) token and update the secret",
            e.token_reason()
        );
    }
    let rejected = session
        .all_tokens_rejected()
        .then(|| session.rejected_tokens().into_iter().next().map(|(_, e)| e))
        .flatten();
    let all_failed =
        !job_config.targets.is_empty() && summary.failed_targets.len() == job_config.targets.len();
    if all_failed && rejected.is_none() {
        // No data, but the calls it made are booked: an hour of failing runs cannot spend more
        // than the hour's allowance.
        if let (Some(state), Some(start), false) = (next_state, start, replaying) {
            if let Err(e) =
                persist::write_state(app, state, start.etag, deadlines.writes, &mut summary).await
            {
                tracing::error!(location = %e.location, "{e}");
            }
        }
        if let Some(b) = settle {
            b.write(app, scheduled, None, deadlines.writes, &mut summary)
                .await;
        }
        return Err(RunError::AllTargetsFailed(finish(summary)));
    }

    let nothing_collected = summary.records.values().all(|n| *n == 0);
    if let (Some(e), true) = (&rejected, nothing_collected) {
        // Nothing to keep: no object, no capture, no hashtag state, so the retry starts clean.
        // The calls made are booked all the same.
        if let Some(b) = settle {
            b.write(app, scheduled, None, deadlines.writes, &mut summary)
                .await;
        }
        return Err(RunError::TokenRejected(e.clone(), finish(summary)));
    }
    let written = persist::write(
        app,
        persist::Run {
            job,
            scheduled,
            replaying,
            failing: rejected.is_some(),
            until: deadlines.writes,
        },
        collected.batch,
        collected.streamed,
        session.take_captured(),
        start,
        next_state,
        &mut summary,
    )
    .await;
    if let Some(b) = settle {
        // The backfill's progress only once its posts are written.
        let progress = written.is_ok().then_some(collected.progress);
        b.write(app, scheduled, progress, deadlines.writes, &mut summary)
            .await;
    }
    if let Err(e) = written {
        tracing::error!(location = %e.location, "{e}");
        return Err(RunError::Write(e, finish(summary)));
    }
    if let Some(e) = rejected {
        return Err(RunError::TokenRejected(e, finish(summary)));
    }
    Ok(*finish(summary))
}

/// The brands run's final booking, to write once the run knows whether its data was written.
struct BrandsBooking {
    /// The state as the run read it when it booked its calls (with its ETag).
    loaded: Loaded,
    /// What the run really sent, per credential: replaces its reservation.
    spends: Vec<Spend>,
}

impl BrandsBooking {
    /// Writes the booking and, when the run's data was written, each account's backfill
    /// progress (merged: never moved back). A failure leaves the reservation, which is never
    /// less than what was sent, and the progress where the last run left it.
    async fn write(
        self,
        app: &App,
        scheduled: DateTime<Utc>,
        progress: Option<BTreeMap<String, crate::backfill::Progress>>,
        until: Option<Instant>,
        summary: &mut RunSummary,
    ) {
        let mut state = self.loaded.state;
        state.book(self.spends, scheduled);
        for (account, p) in progress.into_iter().flatten() {
            let merged = match state.brands.get(&account) {
                Some(had) => had.merge(&p),
                None => p,
            };
            state.brands.insert(account, merged);
        }
        if let Err(e) = persist::write_state(app, state, self.loaded.etag, until, summary).await {
            tracing::warn!(location = %e.location, "the brands run's calls stay booked as reserved: {e}");
        }
    }
}

/// A run as the ledger knows it: its id, when its calls are made, and since when it has run.
pub(super) struct ThisRun {
    pub id: String,
    /// From the start of its calls to its deadline ([`CallSpan::of_run`]).
    pub calls: CallSpan,
    pub started: Instant,
}

impl ThisRun {
    /// How long the run has taken so far.
    pub fn took(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// The longest a run's calls may go on: to its call deadline, or, without one (a CLI run), as
/// long as a Lambda function may run.
fn longest_calls(deadlines: Deadlines) -> chrono::Duration {
    let longest = deadlines
        .calls
        .map_or(NO_DEADLINE, |d| d.saturating_duration_since(Instant::now()));
    chrono::Duration::from_std(longest).unwrap_or(chrono::Duration::hours(1))
}

/// How long a run without a deadline is booked for while it runs.
const NO_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Reads the hashtag state, plans the run from it and books the plan's calls in it before any
/// call is made (`persist::reserve`); when another run wrote the state meanwhile, reads and
/// plans again. The session then sends no more than was booked on each credential.
async fn plan_and_reserve(
    app: &App,
    config: &Config,
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    run: &ThisRun,
    deadlines: Deadlines,
) -> Result<(Loaded, Planned), crate::sink::SinkError> {
    let replaying = matches!(app.source, Source::Replay(_));
    for _ in 0..=app.config.sink.conflict_retries {
        let mut loaded = hashtags::load_state(app, scheduled, deadlines.writes).await?;
        if let Some(n) = &loaded.note {
            tracing::warn!("hashtag state: {n}");
        }
        let mut planned = hashtags::plan(config, session, &loaded.state, scheduled, run.calls);
        if replaying {
            return Ok((loaded, planned));
        }
        let reservations = planned.pager.reservations(&run.id);
        for lane in 0..session.lanes().max(1) {
            session.limit_calls(lane, planned.pager.calls_left(lane));
        }
        if reservations.is_empty()
            || persist::reserve(
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
    Err(persist::gave_up(app, &app.config.hashtags.state_key))
}

/// What [`book_brands`] booked: the ledger as read, and the lookback's and backfill's pages.
struct Booked {
    loaded: Loaded,
    pages: brands::Pages,
    backfill: brands::Pages,
    /// Calls booked for the backfill, all credentials.
    backfill_granted: u64,
    /// Lookback pages the estimate wanted that the hour had no calls left for.
    pages_skipped: u64,
}

/// Books the brands run's calls in the credentials' ledger (the hashtag state) before any call:
/// on each credential, its accounts' calls with every retry the policy allows, and the token
/// check's and refresh's, then the lookback's estimated pages (`lookback::pages_per_account`
/// per account, each with its retries), within what the credential's hour has left: a short
/// hour drops lookback pages first. The session then sends no more.
async fn book_brands(
    app: &App,
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    run: &ThisRun,
    daily: bool,
    deadlines: Deadlines,
) -> Result<Booked, crate::sink::SinkError> {
    let lanes = session.lanes().max(1);
    let attempts = u64::from(app.config.retry.max_attempts.max(1));
    let total = u64::from(app.config.budget.calls_per_hour_per_credential);
    let per_account = crate::lookback::pages_per_account(
        app.config.brands.lookback_days,
        app.config.graph.brand_media_limit,
    );
    for _ in 0..=app.config.sink.conflict_retries {
        let mut loaded = hashtags::load_state(app, scheduled, deadlines.writes).await?;
        let mut lookback_calls = Vec::with_capacity(lanes);
        let mut backfill_calls = Vec::with_capacity(lanes);
        let mut pages_skipped = 0;
        let spends: Vec<Spend> = (0..lanes)
            .map(|lane| {
                let accounts =
                    crate::credential::units_on(app.config.targets.len(), lane, lanes) as u64;
                // The daily check: `debug_token`, and the exchange of a token due for a refresh.
                let renews =
                    app.config.health.refresh_days_left.is_some() && app.source.can_exchange(lane);
                let checks = u64::from(daily) * (1 + u64::from(renews));
                let first = (accounts + checks) * attempts;
                // The lookback's and backfill's pages are booked with a quarter more for their
                // retries (`brands::Pages`): the session refuses any call past the booking, so
                // a page whose retries find it spent ends its account's paging, never another
                // account's first page.
                let lookback = brands::Pages::calls_for(accounts.saturating_mul(per_account));
                let key = crate::credential::ledger_key(session, lane);
                let fixed = first.saturating_add(lookback);
                let backfill = brands::Pages::calls_for(backfill_wanted(
                    app,
                    &loaded.state,
                    lane,
                    lanes,
                    scheduled,
                ))
                .min(crate::backfill::spare_calls(
                    total,
                    loaded.state.booked_near(&key, run.calls),
                    fixed,
                    hashtags_need(app, &loaded.state, lane, lanes),
                    loaded.state.booked_by_hashtags(&key, run.calls),
                ));
                let spend = brands_booking(
                    &loaded.state,
                    &key,
                    total,
                    fixed.saturating_add(backfill),
                    run.calls,
                    &run.id,
                );
                session.limit_calls(lane, spend.calls);
                // The first pages take the booking first, the lookback what is left, the
                // backfill the rest.
                let granted = spend.calls.saturating_sub(first).min(lookback);
                lookback_calls.push(granted);
                pages_skipped += brands::Pages::pages_in(lookback)
                    .saturating_sub(brands::Pages::pages_in(granted));
                backfill_calls.push(spend.calls.saturating_sub(first + granted).min(backfill));
                spend
            })
            .collect();
        if persist::reserve(app, &mut loaded, spends, &[], scheduled, deadlines.writes).await? {
            return Ok(Booked {
                loaded,
                pages: brands::Pages::booked(lookback_calls),
                backfill_granted: backfill_calls.iter().sum(),
                backfill: brands::Pages::booked(backfill_calls),
                pages_skipped,
            });
        }
    }
    Err(persist::gave_up(app, &app.config.hashtags.state_key))
}

/// Backfill pages a brands run wants on credential `lane`: for each of its accounts whose
/// history is not complete, as many pages as fit in one invocation after its first page and
/// lookback (`fanout`: the invocation's time over the time per call), so the run ends before its
/// deadline. 0 without `brands.backfill_days`.
fn backfill_wanted(
    app: &App,
    state: &crate::state::State,
    lane: usize,
    lanes: usize,
    scheduled: DateTime<Utc>,
) -> u64 {
    let config = &app.config;
    let Some(since) = crate::backfill::since(scheduled, config.brands.backfill_days) else {
        return 0;
    };
    let unfinished = config
        .targets
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            crate::credential::of(*i, lanes) == lane
                && !state
                    .brands
                    .get(&brands::account_key(t))
                    .is_some_and(|p| p.complete(since))
        })
        .count() as u64;
    let (per_invocation, per_account) = backfill_pages_per_account(config);
    let lookback = crate::lookback::pages_per_account(
        config.brands.lookback_days,
        config.graph.brand_media_limit,
    );
    // The invocation's calls: `concurrency` accounts at a time, each calling one after another.
    let accounts = crate::credential::units_on(config.targets.len(), lane, lanes) as u64;
    let capacity = per_invocation.saturating_mul(config.graph.concurrency as u64);
    let planned = accounts.saturating_mul(1 + lookback);
    unfinished
        .saturating_mul(per_account)
        .min(capacity.saturating_sub(planned))
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

/// Calls per hour the hashtags job needs on credential `lane` in the coming hour: each of its
/// hashtags (hashtag i on credential i mod n) at its rate in the state, due and freshness polls
/// (`pager::Settings::calls_per_hour_fresh`). What the backfill leaves it.
fn hashtags_need(app: &App, state: &crate::state::State, lane: usize, lanes: usize) -> u64 {
    let settings = app.config.pager_settings();
    let calls: f64 = app
        .config
        .hashtag_groups()
        .iter()
        .enumerate()
        .filter(|(i, _)| crate::credential::of(*i, lanes) == lane)
        .map(|(_, g)| {
            let rate = state
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
