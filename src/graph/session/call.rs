//! The one call path every endpoint goes through (`Session::call`): the usage gate, the stop
//! switches, the deadline, the booking, retries and throttling, and one request's sending,
//! usage reading, scrubbing and capture.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::{Need, Session};
use crate::graph::error::{decode, ErrorKind, GraphError};
use crate::graph::http::{Answer, LiveClient, Request};
use crate::graph::retry::{decide, Decision};
use crate::graph::usage::Usage;

impl Session<'_> {
    /// The one call path: one logical call with the usage gate, the stop switches, the
    /// deadline, retries and throttling applied. Every error it returns is scrubbed.
    pub(in crate::graph) async fn call(
        &self,
        lane: usize,
        c: &LiveClient,
        request: Request,
        need: Need,
        capture: Option<String>,
    ) -> Result<Value, GraphError> {
        if need == Need::Optional && self.usage_is_high() {
            self.skipped_optional();
            return Err(GraphError::local(
                ErrorKind::UsageHigh,
                "optional call skipped: API usage at or above the threshold",
            ));
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let timeout = self.admit(lane, attempt)?;
            let mut err = match self.attempt(c, &request, timeout, capture.as_deref()).await {
                Ok(v) => return Ok(v),
                Err(e) => e.scrubbed(&self.scrubber),
            };
            err.attempts = attempt;
            if err.kind == ErrorKind::Throttled {
                if let Ok(mut s) = self.stats.lock() {
                    s.throttled += 1;
                }
            }
            match decide(
                err.kind,
                attempt,
                err.regain_after,
                self.time_left(),
                self.policy,
                rand::random::<f64>(),
            ) {
                Decision::GiveUp => {
                    if !request.is_exchange() {
                        self.maybe_stop(lane, &err);
                    }
                    return Err(err);
                }
                Decision::RetryAfter(delay) => self.wait_to_retry(&err, attempt, delay).await,
            }
        }
    }

    /// Lets attempt `attempt` on `lane` go out: its lane not stopped, the deadline not reached,
    /// a request left of what the run booked (then taken, and counted as sent on the lane).
    /// Returns its timeout: the request timeout, or the time left when that is shorter.
    fn admit(&self, lane: usize, attempt: u32) -> Result<Duration, GraphError> {
        if let Some(e) = self.stopped_for(lane) {
            return Err(e);
        }
        let time_left = self.time_left();
        if time_left.is_some_and(|t| t.is_zero()) {
            return Err(GraphError {
                attempts: attempt - 1,
                ..GraphError::local(ErrorKind::Deadline, "run deadline reached before the call")
            });
        }
        let timeout = match time_left {
            Some(t) => t.min(self.settings.request_timeout),
            None => self.settings.request_timeout,
        };
        if !self.take_call(lane) {
            return Err(GraphError {
                attempts: attempt - 1,
                ..GraphError::local(
                    ErrorKind::BudgetSpent,
                    "not sent: the calls this run booked on its credential for the hour are spent",
                )
            });
        }
        if let Ok(mut calls) = self.lane_calls.lock() {
            *calls.entry(lane).or_default() += 1;
        }
        Ok(timeout)
    }

    /// Counts a retry, says why the call failed, and waits `delay` before the next attempt.
    async fn wait_to_retry(&self, err: &GraphError, attempt: u32, delay: Duration) {
        if let Ok(mut s) = self.stats.lock() {
            s.retries += 1;
        }
        tracing::warn!(
            error_kind = err.kind.name(), code = ?err.code, status = ?err.status, attempt,
            delay_ms = delay.as_millis() as u64,
            "Graph call failed and will be retried: {err}"
        );
        tokio::time::sleep(delay).await;
    }

    /// One request: sends it, reads the usage headers, scrubs and captures the body, decodes it.
    async fn attempt(
        &self,
        c: &LiveClient,
        request: &Request,
        timeout: Duration,
        capture: Option<&str>,
    ) -> Result<Value, GraphError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Answer {
            status,
            usage,
            body,
        } = c
            .send(request, timeout, self.settings.max_body_bytes)
            .await?;
        self.note_usage(&usage);
        let body = body.map_err(|e| throttle_time(e, &usage))?;
        // Scrubbed once, here: the capture, the decoded value and every message come from this.
        let body = self.scrubber.scrub_bytes(&body);
        if let Some(path) = capture {
            self.capture(path, &body);
        }
        decode(status, &body, Some(&self.scrubber))
            .map_err(|e| throttle_time(e, &usage))
            .map_err(|e| match request.is_exchange() {
                true => e.unquoted(),
                false => e,
            })
    }

    fn note_usage(&self, usage: &Usage) {
        self.max_usage
            .fetch_max(usage.max_percent(), Ordering::Relaxed);
        if usage.max_percent() >= self.policy.usage_threshold_percent {
            tracing::warn!(
                usage_percent = usage.max_percent(),
                "Graph API usage is high: optional calls stop"
            );
        }
    }
}

/// A throttling error takes its regain time from the headers: the longest of
/// `estimated_time_to_regain_access` and `Retry-After`.
fn throttle_time(mut e: GraphError, usage: &Usage) -> GraphError {
    if e.kind == ErrorKind::Throttled {
        e.regain_after = usage.regain();
    }
    e
}
