//! Whether to call again after a failed Graph call: a pure function, tested by tables.
//!
//! This module owns the retry decision, from the [`ErrorKind`] that `error` gave the failure. It
//! must not do IO, sleep or read the clock: the session passes in the attempt, the regain time,
//! the time left and the jitter.

use std::time::Duration;

use super::error::ErrorKind;
use crate::config::RetryPolicy;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Call again after this delay.
    RetryAfter(Duration),
    /// Stop; the error is final for this target.
    GiveUp,
}

/// Whether attempt number `attempt` (1-based) is followed by another.
///
/// Transient failures back off exponentially (`base * 2^(attempt-1)`, capped), with "equal
/// jitter": half the delay fixed, half drawn from `jitter` in [0, 1), so that concurrent targets do
/// not retry in lockstep. A throttled call is retried only after the API's announced regain time,
/// and only when that fits both the configured wait and the time left; without a regain time it is
/// never retried (a hot loop would deepen the throttle). A retry that would end past the deadline
/// is not made.
pub fn decide(
    kind: ErrorKind,
    attempt: u32,
    regain_after: Option<Duration>,
    time_left: Option<Duration>,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    if attempt >= policy.max_attempts {
        return Decision::GiveUp;
    }
    let fits = |d: Duration| time_left.is_none_or(|left| d < left);
    match kind {
        ErrorKind::Transient | ErrorKind::Timeout | ErrorKind::Network => {
            let exp = policy.base_delay.saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            );
            let capped = exp.min(policy.max_delay);
            let delay = capped / 2 + capped.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
            if fits(delay) {
                Decision::RetryAfter(delay)
            } else {
                Decision::GiveUp
            }
        }
        ErrorKind::Throttled => match regain_after {
            Some(wait) if !wait.is_zero() && wait <= policy.max_throttle_wait && fits(wait) => {
                Decision::RetryAfter(wait)
            }
            _ => Decision::GiveUp,
        },
        _ => Decision::GiveUp,
    }
}
