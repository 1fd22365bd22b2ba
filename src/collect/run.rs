//! One run of a job, from its scheduled time to its summary: book the calls, fetch and flatten
//! (`brands`, `hashtags`), decide whether the run failed, then hand everything to `persist`.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Timelike, Utc};

use super::booking::{backfill_pages_per_account, book_brands, plan_and_reserve, BrandsBooking};
use super::collected::{Collected, Deadlines, ThisRun};
use super::events::TokenRejected;
use super::history::{History, Pages};
use super::store::{write_state, Loaded};
use super::{brands, drift, hashtags, persist, App, Job, RunError, RunSummary};
use crate::config::Config;
use crate::graph::{GraphError, Session, Source};
use crate::health;
use crate::sink::SinkError;
use crate::state::{CallSpan, Spend, State};

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

/// What every step of one run shares.
struct Ctx<'a, 's> {
    app: &'a App,
    /// The run's targets (`App::targets`).
    targets: Vec<usize>,
    job: Job,
    scheduled: DateTime<Utc>,
    deadlines: Deadlines,
    session: &'a Session<'s>,
    replaying: bool,
    run: ThisRun,
}

/// What a job fetched, with the state it read and will write.
struct Fetched {
    collected: Collected,
    /// The brands run's ledger as it booked its calls: its final booking goes there.
    brands_booked: Option<Loaded>,
    /// The hashtags run's state as read, and as advanced.
    start: Option<Loaded>,
    next_state: Option<State>,
    /// Per credential (ledger key): what the brands run's lookback needed.
    lookback_need: Vec<(String, crate::lookback::Need)>,
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
    let targets = app.targets(job);
    let session = app
        .source
        .session(&app.config.retry, &app.config.graph, deadlines.calls);
    let mut summary = RunSummary::new(job, scheduled, targets.len());
    let finish = |mut s: RunSummary| {
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.graph = session.stats();
        Box::new(s)
    };
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
    let c = Ctx {
        app,
        targets,
        job,
        scheduled,
        deadlines,
        session: &session,
        replaying: matches!(app.source, Source::Replay(_)),
        run,
    };
    // Before any call: the fields earlier runs found removed are left out from the first one.
    let removed = drift::start(app, &session, deadlines.writes, &mut summary).await;
    let fetched = match job {
        Job::Brands => fetch_brands(&c, &mut summary).await,
        Job::Hashtags => fetch_hashtags(&c, &mut summary).await,
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(location = %e.location, "the state was not read, or the calls not booked: {e}");
            return Err(RunError::StateUnreadable(e, finish(summary)));
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
    match conclude(&c, fetched, &mut summary).await {
        Ok(()) => Ok(*finish(summary)),
        Err(failure) => Err(failure.into_error(finish(summary))),
    }
}

/// The brands job: books its calls, then fetches every account (with its history) beside the
/// daily token check, then renews a token that needs it.
async fn fetch_brands(c: &Ctx<'_, '_>, summary: &mut RunSummary) -> Result<Fetched, SinkError> {
    let app = c.app;
    // Once a day, the first brands run after 00:00 UTC checks the token, alongside the brand
    // calls so that it adds no time to the run.
    let daily = !c.replaying && c.scheduled.hour() == 0 && app.checks_tokens();
    let (loaded, booked) = book(c, daily).await?;
    let (pages, backfill_pages, backfill_granted, pages_skipped) = booked;
    let no_progress = BTreeMap::new();
    let check = async {
        match daily {
            true => health::check(c.session, app.source.lanes()).await,
            false => Vec::new(),
        }
    };
    let history = History {
        since: crate::backfill::since(c.scheduled, app.config.brands.backfill_days),
        per_account: backfill_pages_per_account(&app.config).1,
        progress: loaded.as_ref().map_or(&no_progress, |l| &l.state.brands),
        pages: backfill_pages,
    };
    let writes = c.deadlines.writes;
    let (mut collected, checked) = tokio::join!(
        brands::collect(
            app,
            &c.targets,
            c.session,
            c.scheduled,
            writes,
            &pages,
            &history
        ),
        check
    );
    report_history(
        &app.config,
        &mut collected,
        &history,
        summary,
        (backfill_granted, pages_skipped),
    );
    // After the brand calls, not before or beside them: their posts never wait for it, and it
    // spends only the call booked for it (`book_brands`). Before the final booking, so that the
    // ledger counts it.
    if let (true, Some(below)) = (daily, app.config.health.refresh_days_left) {
        let renewal = health::renew(c.session, &checked, health::Renew::Below(below)).await;
        summary.token_refresh = renewal.report;
        summary.renewed_tokens = renewal.tokens;
    }
    summary.token_health = checked.into_iter().filter_map(Result::ok).collect();
    let lookback_need = lookback_needs(app, c.session, c.targets.len(), &pages);
    Ok(Fetched {
        collected,
        brands_booked: loaded,
        start: None,
        next_state: None,
        lookback_need,
    })
}

/// Books the brands run's calls in the credentials' ledger before they are made, so retries and
/// redeliveries count against the hour like the hashtags job's calls; a replay books nothing.
/// Returns the ledger as read, the lookback's and backfill's pages, the backfill's calls and the
/// lookback pages the hour could not book.
async fn book(
    c: &Ctx<'_, '_>,
    daily: bool,
) -> Result<(Option<Loaded>, (Pages, Pages, u64, u64)), SinkError> {
    if c.replaying {
        return Ok((None, (Pages::unlimited(), Pages::unlimited(), 0, 0)));
    }
    let (targets, session, run) = (&c.targets, c.session, &c.run);
    let b = book_brands(
        c.app,
        targets,
        session,
        c.scheduled,
        run,
        daily,
        c.deadlines,
    )
    .await?;
    let pages = (b.pages, b.backfill, b.backfill_granted, b.pages_skipped);
    Ok((Some(b.loaded), pages))
}

/// The lookback's and the backfill's reports in the summary; `booking`: the backfill's calls
/// granted and the lookback pages the hour could not book.
fn report_history(
    config: &Config,
    collected: &mut Collected,
    history: &History<'_>,
    summary: &mut RunSummary,
    (backfill_granted, pages_skipped): (u64, u64),
) {
    if history.since.is_some() {
        collected.backfill.days = config.brands.backfill_days;
        collected.backfill.calls_granted = backfill_granted;
        summary.brands_backfill = Some(collected.backfill.clone());
    }
    collected.lookback.pages_skipped = pages_skipped;
    if config.brands.lookback_days == 0 {
        return;
    }
    collected.lookback.days = config.brands.lookback_days;
    if pages_skipped > 0 || collected.lookback.accounts_cut_short > 0 {
        tracing::warn!(
            pages_skipped,
            accounts_cut_short = collected.lookback.accounts_cut_short,
            "the hour's calls could not book every lookback page: the first pages were booked first, and the oldest posts of some windows wait for a run with calls to spare; raise budget.calls_per_hour_per_credential, lower brands.lookback_days, or add credentials"
        );
    }
    summary.brands_lookback = Some(collected.lookback.clone());
}

/// The hashtags job: reads the state, plans and books the run's polls, then fetches them.
async fn fetch_hashtags(c: &Ctx<'_, '_>, summary: &mut RunSummary) -> Result<Fetched, SinkError> {
    let (loaded, planned) =
        plan_and_reserve(c.app, c.session, c.scheduled, &c.run, c.deadlines).await?;
    summary.state = loaded.note.clone();
    summary.state_as_of = loaded.state.as_of.clone();
    let (collected, state, paging) = hashtags::collect(
        c.app,
        c.session,
        planned,
        &loaded.state,
        c.scheduled,
        &c.run,
        c.deadlines.writes,
    )
    .await;
    summary.posts_behind = Some(paging.hashtags.values().map(|r| r.posts_behind).sum());
    summary.posts_given_up = Some(paging.hashtags.values().map(|r| r.posts_given_up).sum());
    summary.hashtags = paging.hashtags;
    summary.hashtag_budget = paging.budget;
    Ok(Fetched {
        collected,
        brands_booked: None,
        start: Some(loaded),
        next_state: Some(state),
        lookback_need: Vec::new(),
    })
}

/// Why a run failed, once what it could keep is written.
enum Failure {
    TokenRejected(GraphError),
    AllTargetsFailed,
    Write(SinkError),
}

impl Failure {
    fn into_error(self, summary: Box<RunSummary>) -> RunError {
        match self {
            Failure::TokenRejected(e) => RunError::TokenRejected(e, summary),
            Failure::AllTargetsFailed => RunError::AllTargetsFailed(summary),
            Failure::Write(e) => RunError::Write(e, summary),
        }
    }
}

/// After the calls: the summary's figures, then what the run keeps. Every call made is booked,
/// whatever happens; a run with nothing to keep writes nothing else, so its retry starts clean.
async fn conclude(
    c: &Ctx<'_, '_>,
    fetched: Fetched,
    summary: &mut RunSummary,
) -> Result<(), Failure> {
    let Fetched {
        collected,
        brands_booked,
        start,
        next_state,
        lookback_need,
    } = fetched;
    // What the brands run really sent replaces its booking once the data is written (with the
    // backfill's progress) or has failed (without it).
    let settle =
        brands_booked.map(|loaded| brands_settle(loaded, c.session, &c.run, lookback_need));
    let (objects, progress) = collected.into_summary(c.job, summary);
    let rejected = rejected_token(c.session);
    let all_failed = !c.targets.is_empty() && summary.failed_targets.len() == c.targets.len();
    let writes = c.deadlines.writes;
    if all_failed && rejected.is_none() {
        // No data, but the calls it made are booked: an hour of failing runs cannot spend more
        // than the hour's allowance.
        if let (Some(state), Some(start), false) = (next_state, start, c.replaying) {
            if let Err(e) = write_state(c.app, state, start.etag, writes, summary).await {
                tracing::error!(location = %e.location, "{e}");
            }
        }
        if let Some(b) = settle {
            b.write(c.app, c.scheduled, None, writes, summary).await;
        }
        return Err(Failure::AllTargetsFailed);
    }
    let nothing_collected = summary.records.values().all(|n| *n == 0);
    if let (Some(e), true) = (&rejected, nothing_collected) {
        // Nothing to keep: no object, no capture, no hashtag state, so the retry starts clean.
        // The calls made are booked all the same.
        if let Some(b) = settle {
            b.write(c.app, c.scheduled, None, writes, summary).await;
        }
        return Err(Failure::TokenRejected(e.clone()));
    }
    let run = persist::Run {
        job: c.job,
        scheduled: c.scheduled,
        replaying: c.replaying,
        failing: rejected.is_some(),
        until: writes,
    };
    let objects = super::collected::Objects {
        captured: c.session.take_captured(),
        ..objects
    };
    let state = persist::NextState { start, next_state };
    let written = persist::write(c.app, run, objects, state, summary).await;
    if let Some(b) = settle {
        // The backfill's progress only once its posts are written.
        let progress = written.is_ok().then_some(progress);
        b.write(c.app, c.scheduled, progress, writes, summary).await;
    }
    if let Err(e) = written {
        tracing::error!(location = %e.location, "{e}");
        return Err(Failure::Write(e));
    }
    rejected.map_or(Ok(()), |e| Err(Failure::TokenRejected(e)))
}

/// The brands run's final booking: what it really sent on each credential.
fn brands_settle(
    loaded: Loaded,
    session: &Session<'_>,
    run: &ThisRun,
    lookback_need: Vec<(String, crate::lookback::Need)>,
) -> BrandsBooking {
    let spends = (0..session.lanes().max(1))
        .map(|lane| {
            let key = crate::credential::brands_ledger_key(session, lane);
            let calls = run.calls.ended_after(run.took());
            Spend::new(calls, &run.id, key, session.calls_on(lane), false)
        })
        .collect();
    BrandsBooking {
        loaded,
        spends,
        lookback_need,
    }
}

/// What each credential's lookback needed in this run (`pages`, over `targets` accounts): the
/// pages it read; when accounts were cut short, at least the assumption's (how many more each
/// wanted is unknown).
fn lookback_needs(
    app: &App,
    session: &Session<'_>,
    targets: usize,
    pages: &Pages,
) -> Vec<(String, crate::lookback::Need)> {
    let lanes = session.lanes().max(1);
    pages
        .used()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(lane, (taken, refused))| {
            let accounts = crate::credential::units_on(targets, lane, lanes) as u64;
            let pages = match refused {
                0 => taken,
                _ => (taken + refused).max(app.config.lookback_pages_to_book(None, accounts)),
            };
            let key = crate::credential::ledger_key(session, lane);
            (key, crate::lookback::Need { accounts, pages })
        })
        .collect()
}

/// The token rejection that fails the run: when every credential's token was rejected. Each
/// rejected token is logged, whatever the others did.
fn rejected_token(session: &Session<'_>) -> Option<GraphError> {
    for (lane, error) in session.rejected_tokens() {
        let ig_user_id = session.lane_user(lane).unwrap_or_default();
        TokenRejected {
            ig_user_id,
            error: &error,
        }
        .emit();
    }
    session
        .all_tokens_rejected()
        .then(|| session.rejected_tokens().into_iter().next().map(|(_, e)| e))
        .flatten()
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
