//! The Lambda side: a scheduled event in, a [`RunSummary`] out.
//!
//! Setup (config, secret, clients) runs inside an invocation, bounded by that invocation's
//! deadline less [`ANSWER_RESERVE`], until it succeeds once; the app is then kept for the life of
//! the process, its credentials read again from the token secret when they are older than
//! `TOKEN_CACHE_TTL_SECS` (15 minutes) or the API rejected them, so a rotated token is taken up
//! without a new process. A run whose token was rejected before it collected anything runs once
//! more at once if the secret holds a new token. When a run's daily check refreshed a token,
//! the fresh token is written to the secret after the run (`setup::renew::settle`, bounded by
//! the run's write deadline) and the secret is read again at the next event, so the process
//! calls with it from then on. A setup that fails or does not finish in time fails that event only, as an
//! invocation error (alarms, retries, the failure queue) with a message that says what to fix;
//! the next event tries again. Run at cold start instead, a Secrets Manager that never answered
//! would hang the process before its first event, and a passing fault (a 500) would be kept
//! until the process is replaced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use futures::FutureExt;
use std::panic::AssertUnwindSafe;

mod event;

pub use event::{asked, scheduled_time, Asked, InvocationError, PlanAnswer, Reply, MAX_EVENT_LEAD};

use crate::collect::{self, App, Deadlines, RunError, RunSummary};
use crate::job::Job;
use crate::setup::{self, Choice, SetupError};
use crate::telemetry;

/// The app a warm process keeps, and what it knows of its token's age.
struct Kept {
    app: Arc<App>,
    /// When the token secret was last read.
    read_at: Instant,
    /// How long the token read is kept ([`setup::token_cache_ttl`]).
    ttl: Duration,
    /// The last run ended because the API rejected the token: read the secret again before
    /// the next run, whatever its age.
    rejected: bool,
    /// A run of this process wrote a fresh token to the secret: read it again before the next
    /// run, so that the fresh token is the one used.
    renewed: bool,
}

impl Kept {
    fn stale(&self) -> bool {
        self.rejected || self.renewed || self.read_at.elapsed() >= self.ttl
    }
}

/// The handler state kept across invocations: the app once it is built, with its credentials
/// read again from the token secret when they are older than the cache time or were rejected,
/// so a rotated token is taken up by a warm process.
pub struct Handler {
    job: Job,
    kept: tokio::sync::Mutex<Option<Kept>>,
    cold: AtomicBool,
}

impl Handler {
    /// A handler that builds its app at its first invocation. Nothing here waits.
    pub fn new(job: Job) -> Handler {
        Handler {
            job,
            kept: tokio::sync::Mutex::new(None),
            cold: AtomicBool::new(true),
        }
    }

    /// The app, built now if no earlier invocation built it, by `until`; a kept app whose
    /// token read is stale gets its credentials read again first. A failed build is returned
    /// and not kept: the next invocation tries again. A failed re-read keeps the credentials
    /// read before (they may still work), with a warning, and is tried again next time.
    async fn app(&self, until: Instant) -> Result<Arc<App>, SetupError> {
        let left = until.saturating_duration_since(Instant::now());
        let unfinished = || SetupError::Unfinished {
            secs: left.as_secs_f64(),
        };
        let mut kept = match tokio::time::timeout(left, self.kept.lock()).await {
            Ok(kept) => kept,
            Err(_) => return Err(unfinished()),
        };
        match kept.as_mut() {
            None => {
                let build = async {
                    let ttl = setup::token_cache_ttl(&setup::Env::read())?;
                    let app = setup::app_from_env(&Choice::default(), Some(until)).await?;
                    Ok::<_, SetupError>((app, ttl))
                };
                let (app, ttl) = match tokio::time::timeout(left, build).await {
                    Ok(built) => built?,
                    Err(_) => return Err(unfinished()),
                };
                let app = Arc::new(app);
                *kept = Some(Kept {
                    app: app.clone(),
                    read_at: Instant::now(),
                    ttl,
                    rejected: false,
                    renewed: false,
                });
                Ok(app)
            }
            Some(k) => {
                if k.stale() {
                    refresh(k, until).await;
                }
                Ok(k.app.clone())
            }
        }
    }

    /// After a run that ended with the token rejected and nothing collected: reads the secret
    /// again by `until` and returns the app over the new token, if it changed; else marks the
    /// token rejected, so that the next event reads the secret again.
    async fn after_rejection(&self, until: Option<Instant>) -> Option<Arc<App>> {
        let mut kept = self.kept.lock().await;
        let k = kept.as_mut()?;
        k.rejected = true;
        let before = k.app.clone();
        refresh(k, until.unwrap_or_else(Instant::now)).await;
        (!Arc::ptr_eq(&before, &k.app)).then(|| k.app.clone())
    }

    /// After a run wrote a fresh token to the secret: the next event reads the secret again
    /// (whatever the cache time), so the fresh token is used from then on.
    async fn fresh_token_stored(&self) {
        if let Some(k) = self.kept.lock().await.as_mut() {
            k.renewed = true;
        }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Reply, InvocationError> {
        let cold = self.cold.swap(false, Ordering::Relaxed);
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id, job = self.job.name(), cold_start = cold);
        // The event first: it needs no setup, and a bad one is refused without a wait.
        let (scheduled, asked) = {
            let _enter = span.enter();
            scheduled_time(&event.payload, Utc::now())
                .and_then(|at| Ok((at, asked(&event.payload)?)))
                .map_err(logged)?
        };
        let setup_until = Instant::now()
            + time_left(event.context.deadline)
                .unwrap_or(SETUP_FALLBACK)
                .saturating_sub(ANSWER_RESERVE);
        let built = tracing::Instrument::instrument(self.app(setup_until), span.clone()).await;
        let mut app = {
            let _enter = span.enter();
            built.map_err(|e| logged(InvocationError::Setup(e)))?
        };
        // At most one run again, over a token the secret holds since the rejected one.
        let mut rerun = true;
        loop {
            let shard = {
                let _enter = span.enter();
                match asked {
                    Asked::Plan => return Ok(self.plan_answer(&app, scheduled)),
                    Asked::Run => {
                        self.warn_if_sharded(&app);
                        None
                    }
                    Asked::Shard(index) => Some(self.shard_of(&app, index).map_err(logged)?),
                }
            };
            let run_app = shard.as_ref().unwrap_or(&*app);
            let deadlines = deadlines_of(
                event.context.deadline,
                run_app.config.retry.deadline_margin,
                run_app.config.fanout.invocation_timeout,
            );
            let run = collect::run_until(run_app, self.job, scheduled, deadlines);
            let result = guarded(tracing::Instrument::instrument(run, span.clone()), &span).await?;
            if let Err(RunError::TokenRejected(_, summary)) = &result {
                // A rejected token may have been rotated in the secret: read it now, not at the
                // next event. A run that collected nothing wrote nothing (no object, no state),
                // so it can run again at once over the new token.
                let nothing_collected = summary.records.values().all(|n| *n == 0);
                let fresh = self.after_rejection(deadlines.calls);
                let fresh = tracing::Instrument::instrument(fresh, span.clone()).await;
                if let (Some(fresh), true, true) = (fresh, nothing_collected, rerun) {
                    let _enter = span.enter();
                    tracing::warn!("the API rejected the token and the token secret holds a new one: running again with it");
                    app = fresh;
                    rerun = false;
                    continue;
                }
            }
            return self.answer(result, deadlines, cold, &span).await;
        }
    }

    /// The answer to a planning event: the shard indexes the state machine's Map runs.
    fn plan_answer(&self, app: &App, scheduled: DateTime<Utc>) -> Reply {
        let plan = app.plan(self.job);
        tracing::info!(
            shards = plan.shards.len(),
            "planned: {}",
            plan.describe(&app.config)
        );
        Reply::Plan(PlanAnswer {
            job: self.job,
            time: scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sharded: plan.is_sharded(),
            shards: (0..plan.shards.len()).collect(),
        })
    }

    /// A plain event runs every target here, even when the plan cuts the run: said, not refused.
    fn warn_if_sharded(&self, app: &App) {
        if app.plan(self.job).is_sharded() {
            tracing::warn!("a plain event for a run the plan cuts into shards: running every target in this invocation, under the unsharded keys and state; it may reach its deadline before the last targets (the state machine sends one event per shard)");
        }
    }

    /// The app shard `index` of the plan runs as, or why there is no such shard.
    fn shard_of(&self, app: &App, index: usize) -> Result<App, InvocationError> {
        let shard = app.shard(self.job, index).ok_or_else(|| {
            InvocationError::BadEvent(format!(
                "expected `shard` to be one of the plan's shards, 0..{}; it is {index} (did the configuration or the credentials change since the plan was made?)",
                app.plan(self.job).shards.len()
            ))
        })?;
        tracing::info!(
            shard = index,
            targets = shard.targets(self.job).len(),
            "running one shard of the plan"
        );
        Ok(shard)
    }

    /// The run's answer: the refreshed tokens stored first, then the summary logged and its
    /// metrics line printed, whatever the run's outcome.
    async fn answer(
        &self,
        mut result: Result<RunSummary, RunError>,
        deadlines: Deadlines,
        cold: bool,
        span: &tracing::Span,
    ) -> Result<Reply, InvocationError> {
        let summary = match &mut result {
            Ok(s) => s,
            Err(e) => e.summary_mut(),
        };
        if !summary.token_refresh.is_empty() {
            let renewed = std::mem::take(&mut summary.renewed_tokens);
            let arn = setup::Env::read().token_secret_arn;
            let settled = setup::renew::settle(
                &mut summary.token_refresh,
                renewed,
                arn.as_deref(),
                deadlines.writes,
            );
            if tracing::Instrument::instrument(settled, span.clone()).await > 0 {
                self.fresh_token_stored().await;
            }
        }
        let _enter = span.enter();
        let summary = match &result {
            Ok(s) => s,
            Err(e) => e.summary(),
        };
        telemetry::log_summary(summary, if result.is_ok() { "ok" } else { "failed" });
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        println!("{}", telemetry::emf(summary, result.is_ok(), cold, now_ms));
        if let Err(e) = &result {
            tracing::error!(error_type = e.kind_name(), "invocation failed: {e}");
        }
        Ok(Reply::Run(Box::new(result?)))
    }
}

/// Failures before the run are logged too: the answer alone reaches only Lambda.
fn logged(e: InvocationError) -> InvocationError {
    tracing::error!(error_type = e.kind_name(), "invocation failed: {e}");
    e
}

/// Runs `run`, turning a panic into the invocation's error (logged with its message), so a bug
/// answers Lambda with a failure instead of killing the runtime.
async fn guarded<F>(run: F, span: &tracing::Span) -> Result<F::Output, InvocationError>
where
    F: std::future::Future,
{
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => Ok(result),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            let _enter = span.enter();
            tracing::error!(error_type = "InternalError", "the run panicked: {message}");
            Err(InvocationError::Panic(message))
        }
    }
}

/// Reads the token secret again for `kept` by `until` (and within the secret read's own
/// timeout): a changed token replaces the app's credentials; a failed read keeps them, with a
/// warning that does not show either token.
async fn refresh(kept: &mut Kept, until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    let read = setup::refreshed(&kept.app, Some(until));
    match tokio::time::timeout(left, read).await {
        Ok(Ok(Some(app))) => {
            tracing::info!("the token secret holds new credentials: using them from now on");
            kept.app = Arc::new(app);
            kept.read_at = Instant::now();
            kept.rejected = false;
            kept.renewed = false;
        }
        Ok(Ok(None)) => {
            kept.read_at = Instant::now();
            kept.renewed = false;
        }
        Ok(Err(e)) => tracing::warn!(
            error_type = e.kind_name(),
            "could not read the token secret again, keeping the credentials read before: {e}"
        ),
        Err(_) => tracing::warn!(
            "the token secret did not answer within {:.1} s, keeping the credentials read before; the next event tries again",
            left.as_secs_f64()
        ),
    }
}

/// How long before the invocation's deadline the last S3 call must have ended, so the summary,
/// the metrics line and the answer still go out.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(1500);

/// Lambda's longest function timeout; a deadline further away than this (plus a minute of clock
/// slack) cannot be a real one.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(900 + 60);

/// How long until the invocation's deadline (`Lambda-Runtime-Deadline-Ms`, epoch ms), when it
/// is one the invocation can keep: in the future, and no further than the longest timeout.
fn time_left(deadline_ms: u64) -> Option<Duration> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let given = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    (deadline_ms > now_ms && given <= LONGEST_TIMEOUT).then_some(given)
}

/// The time setup is given when the invocation's deadline is not one it can keep (see
/// [`deadlines_of`]); the configured function timeout is not known before setup. A minute:
/// Lambda's default function timeout is shorter, `template.yaml`'s longer.
const SETUP_FALLBACK: Duration = Duration::from_secs(60);

/// The run's deadlines from the invocation's (`Lambda-Runtime-Deadline-Ms`, epoch ms): Graph
/// calls stop `margin` before it, S3 calls [`ANSWER_RESERVE`] before it.
///
/// Lambda always sends a deadline in the future. A deadline that is missing, already past or
/// further than the longest timeout is not one the run can keep (an emulator that sends a
/// constant, a host clock gone wrong): taking it at its word would refuse every call, or none.
/// Such a deadline is replaced by `fallback` from now (the function timeout the configuration
/// declares, `fanout.invocation_timeout_secs`), with a warning that names the header's value.
pub fn deadlines_of(deadline_ms: u64, margin: Duration, fallback: Duration) -> Deadlines {
    let left = time_left(deadline_ms).unwrap_or_else(|| {
        let sent = i64::try_from(deadline_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| "out of range".into());
        tracing::warn!(
            deadline_ms,
            "the Runtime API sent a deadline this invocation cannot keep ({deadline_ms} ms = {sent}, not between now and {} s from now); using the configured function timeout instead, {} s from now (fanout.invocation_timeout_secs)",
            LONGEST_TIMEOUT.as_secs(),
            fallback.as_secs()
        );
        fallback
    });
    let at = |before: Duration| Instant::now().checked_add(left.saturating_sub(before));
    Deadlines {
        calls: at(margin.max(ANSWER_RESERVE)),
        writes: at(ANSWER_RESERVE),
    }
}

/// The whole of a Lambda binary: JSON logs, then the runtime loop (setup runs in the first
/// invocation, see [`Handler`]).
pub async fn main(job: Job) -> Result<(), lambda_runtime::Error> {
    telemetry::init_json(telemetry::lambda_log_level(
        setup::Env::read().lambda_log_level.as_deref(),
    ));
    let handler = Arc::new(Handler::new(job));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        // Boxed: the handler's future (setup, then the run) nested in the runtime's is past the
        // compiler's query depth.
        Box::pin(async move { handler.handle(event).await })
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_the_run_cannot_keep_is_replaced_by_the_configured_timeout() {
        let margin = Duration::from_secs(8);
        let fallback = Duration::from_secs(60);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .expect("clock");
        // Seconds from now until the Graph calls must stop.
        let calls_in = |deadline_ms: u64| {
            let d = deadlines_of(deadline_ms, margin, fallback);
            let calls = d.calls.expect("a call deadline");
            let writes = d.writes.expect("a write deadline");
            assert!(writes > calls, "S3 writes may go on after the last call");
            calls
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        };
        // A real deadline is kept: 30 s from now, calls stop 8 s before it.
        let kept = calls_in(now_ms + 30_000);
        assert!((21.0..=22.1).contains(&kept), "{kept}");
        // A constant in 1970 (cargo-lambda's emulator sends 600000), a missing one, one just
        // past and one days away all give the configured 60 s, less the margin.
        for deadline_ms in [600_000, 0, now_ms - 1, now_ms + 3 * 86_400_000, u64::MAX] {
            let given = calls_in(deadline_ms);
            assert!((51.0..=52.1).contains(&given), "{deadline_ms}: {given}");
        }
    }
}
