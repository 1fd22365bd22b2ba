//! What a failed Graph call means, and whether to call again: pure functions, tested by tables.
//!
//! This module owns the error kinds and the retry decision. It must not do IO, sleep or read the
//! clock: the session passes in the attempt, the regain time, the time left and the jitter.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::ApiError;
use crate::config::RetryPolicy;

/// What kind of failure a Graph call ended in. Decided by the Graph error `code`, not by the HTTP
/// status, because Meta sends the same code with different statuses (and errors inside a 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Codes 1 and 2, `is_transient`, HTTP 5xx: worth a retry with backoff.
    Transient,
    /// Codes 4, 17, 32, 613, 80001, 80002: a rate limit; waiting is the only cure.
    Throttled,
    /// Code 190: the token is expired, revoked or invalid. Nothing works until an operator acts.
    Token,
    /// Code 10 and 200-299: the token lacks a permission.
    Permission,
    /// Code 100: a parameter the API does not accept.
    InvalidParameter,
    /// Code 110 (subcode 2207013 for business discovery): the username is not a business account.
    UnknownAccount,
    /// Code 368: blocked by a policy decision.
    PolicyBlock,
    /// Code 803 (or a hashtag search without a result): the object does not exist.
    NotFound,
    /// A code nobody has classified yet; the number is kept in the error.
    Unknown,
    /// A body that is not JSON or not shaped as expected. (A body cut off mid-JSON is
    /// `Transient`: the connection ended early.)
    BadResponse,
    /// A body longer than `graph.max_body_bytes`: not read, not retried.
    TooLarge,
    /// A 3xx answer: never followed (it would carry the token elsewhere), never retried.
    Redirected,
    /// The request did not finish within its timeout.
    Timeout,
    /// The connection failed or was reset.
    Network,
    /// The run's deadline came before the call could be made.
    Deadline,
    /// An optional call (an extra hashtag page) not made because API usage was at or above
    /// `retry.usage_threshold_percent`.
    UsageHigh,
    /// The call was not made: its credential's calls for the hour, booked before the run
    /// began, are spent (retries included). The next run goes on where this one stopped.
    BudgetSpent,
    /// The call has no source in this mode: `debug_token` while replaying recorded responses.
    NoSource,
    /// The answer describes another account than the target's configured `user_id`/`username`.
    WrongAccount,
    /// The API version no longer has the records' id field (code 100, "nonexisting field"):
    /// without it nothing can be written, so the field cannot be left out as others are.
    IdRemoved,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Transient => "transient API error",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Token => "access token rejected",
            ErrorKind::Permission => "missing permission",
            ErrorKind::InvalidParameter => "invalid parameter",
            ErrorKind::UnknownAccount => "unknown account",
            ErrorKind::PolicyBlock => "blocked by policy",
            ErrorKind::NotFound => "not found",
            ErrorKind::Unknown => "unclassified API error",
            ErrorKind::BadResponse => "unreadable response",
            ErrorKind::TooLarge => "response too large",
            ErrorKind::Redirected => "redirect refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network error",
            ErrorKind::Deadline => "run deadline reached",
            ErrorKind::UsageHigh => "skipped: API usage high",
            ErrorKind::BudgetSpent => "skipped: the hour's calls are spent",
            ErrorKind::NoSource => "not available from this source",
            ErrorKind::WrongAccount => "answer for another account",
            ErrorKind::IdRemoved => "the API version no longer has the records' id",
        };
        f.write_str(s)
    }
}

impl ErrorKind {
    /// A stable name for logs, metrics and summaries.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Token => "token",
            ErrorKind::Permission => "permission",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::UnknownAccount => "unknown_account",
            ErrorKind::PolicyBlock => "policy_block",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unknown => "unknown",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Redirected => "redirected",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::Deadline => "deadline",
            ErrorKind::UsageHigh => "usage_high",
            ErrorKind::BudgetSpent => "budget_spent",
            ErrorKind::NoSource => "no_source",
            ErrorKind::WrongAccount => "wrong_account",
            ErrorKind::IdRemoved => "id_removed",
        }
    }
}

/// Classifies a response by its Graph error (if any) and, only when the code says nothing, by
/// its HTTP status. A 429 is throttling even without a Graph error body (a proxy or load
/// balancer in front of the API sends it bare).
pub fn classify(status: u16, error: Option<&ApiError>) -> ErrorKind {
    if let Some(e) = error {
        let by_code = match e.code {
            1 | 2 => Some(ErrorKind::Transient),
            4 | 17 | 32 | 613 | 80001 | 80002 => Some(ErrorKind::Throttled),
            190 => Some(ErrorKind::Token),
            10 | 200..=299 => Some(ErrorKind::Permission),
            100 => Some(ErrorKind::InvalidParameter),
            110 => Some(ErrorKind::UnknownAccount),
            368 => Some(ErrorKind::PolicyBlock),
            803 => Some(ErrorKind::NotFound),
            _ => None,
        };
        if let Some(kind) = by_code {
            return kind;
        }
        if status == 429 {
            return ErrorKind::Throttled;
        }
        if e.is_transient == Some(true) || status >= 500 {
            return ErrorKind::Transient;
        }
        return ErrorKind::Unknown;
    }
    if status == 429 {
        ErrorKind::Throttled
    } else if status >= 500 {
        ErrorKind::Transient
    } else {
        ErrorKind::BadResponse
    }
}

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
