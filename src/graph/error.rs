//! What a Graph answer means when it is not data: the error body ([`ApiError`]), what kind of
//! failure it is ([`ErrorKind`], decided by [`classify`]), the error the rest of the crate sees
//! ([`GraphError`]), and [`decode`], which turns one status and body into a JSON value or an
//! error.
//!
//! This module owns reading a body once, whatever its status, and every Graph error code's
//! meaning. It must not send requests, sleep, or decide on retries (that is [`super::retry`],
//! which reads the kinds given here); and every text it copies from a body goes through the
//! [`Scrubber`] first.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::repair;
use super::token::Scrubber;

/// The `error` object of a Graph API error body. Only `message` and `code` are always there.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub error_type: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub is_transient: Option<bool>,
    #[serde(default)]
    pub error_user_title: Option<String>,
    #[serde(default)]
    pub error_user_msg: Option<String>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

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

/// A failed Graph call, after retries. Carries no secret: every text in it was scrubbed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}{}", self.detail())]
pub struct GraphError {
    pub kind: ErrorKind,
    /// Graph error code and subcode, when the API sent an error body.
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What happened, scrubbed of secrets; for non-JSON bodies a short excerpt.
    pub message: String,
    pub fbtrace_id: Option<String>,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// For throttling: when the API says access comes back.
    pub regain_after: Option<Duration>,
}

impl GraphError {
    fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.code {
            parts.push(match self.subcode {
                Some(s) => format!("code {c}, subcode {s}"),
                None => format!("code {c}"),
            });
        }
        if let Some(s) = self.status {
            parts.push(format!("HTTP {s}"));
        }
        if self.attempts > 1 {
            parts.push(format!("after {} attempts", self.attempts));
        }
        if let Some(t) = &self.fbtrace_id {
            parts.push(format!("fbtrace_id {t}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }

    /// An error decided here rather than by the API (no code, no status).
    pub(crate) fn local(kind: ErrorKind, message: impl Into<String>) -> GraphError {
        GraphError {
            kind,
            code: None,
            subcode: None,
            status: None,
            message: message.into(),
            fbtrace_id: None,
            attempts: 0,
            regain_after: None,
        }
    }

    /// An error about a response that arrived with `status`, decided on this side.
    pub(crate) fn answered(status: u16, kind: ErrorKind, message: impl Into<String>) -> GraphError {
        GraphError {
            status: Some(status),
            attempts: 1,
            ..GraphError::local(kind, message)
        }
    }

    /// The same error without any text of the answer: for an answer that may hold a secret the
    /// scrubber does not know (a new token). Only a Graph error object's own `message` is kept
    /// (an error carries no new token); any other text about an answer may quote its body.
    pub(crate) fn unquoted(mut self) -> GraphError {
        if self.code.is_none() && self.status.is_some() {
            self.message = "the answer is not shown, as it may hold a new token".into();
        }
        self
    }

    /// What a rejected token's subcode (code 190) means, for the operator.
    pub fn token_reason(&self) -> &'static str {
        match self.subcode {
            Some(458) => "the app is not installed for the user (subcode 458)",
            Some(459) => "the user is checkpointed and must log in to Facebook (subcode 459)",
            Some(460) => "the password changed, which invalidated the token (subcode 460)",
            Some(463) => "the token expired (subcode 463)",
            Some(464) => "the user is not confirmed (subcode 464)",
            Some(467) => "the token is invalid (subcode 467)",
            Some(492) => "the user lost their role on the page (subcode 492)",
            _ => "the token is invalid or revoked",
        }
    }

    /// The same error with every text it carries scrubbed of secrets.
    pub fn scrubbed(mut self, scrubber: &Scrubber) -> GraphError {
        self.message = scrubber.scrub(&self.message);
        self.fbtrace_id = self.fbtrace_id.map(|t| scrubber.scrub(&t));
        self
    }
}

/// Decodes one response body. Errors can come with any status, or inside a 200.
///
/// Undecodable characters (invalid UTF-8, lone surrogate escapes) are first marked by
/// [`repair::mark_undecodable`], so one bad caption cannot make the whole body unreadable. A body
/// cut off mid-JSON is a transport failure (the connection ended early), worth a retry; a 429
/// is throttling whatever its body says. `scrub` hides secrets in every text kept from the body.
pub fn decode(status: u16, body: &[u8], scrub: Option<&Scrubber>) -> Result<Value, GraphError> {
    let none = Scrubber::default();
    let scrubber = scrub.unwrap_or(&none);
    let body = repair::mark_undecodable(body);
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => {
            if value.get("error").is_some() {
                let error = serde_json::from_value::<ErrorBody>(value)
                    .map(|b| b.error)
                    .map_err(|_| {
                        GraphError::answered(
                            status,
                            ErrorKind::BadResponse,
                            format!("unreadable error body: {}", excerpt(&body, scrubber)),
                        )
                    })?;
                let kind = classify(status, Some(&error));
                return Err(GraphError {
                    kind,
                    code: Some(error.code),
                    subcode: error.error_subcode,
                    status: Some(status),
                    message: scrubber.scrub(&error.message),
                    fbtrace_id: error.fbtrace_id.map(|t| scrubber.scrub(&t)),
                    attempts: 1,
                    regain_after: None,
                });
            }
            if (200..300).contains(&status) {
                Ok(value)
            } else {
                Err(GraphError::answered(
                    status,
                    classify(status, None),
                    format!("HTTP {status} without an error object"),
                ))
            }
        }
        Err(e) => {
            let (kind, what) = if status == 429 {
                (ErrorKind::Throttled, "HTTP 429 without a Graph error body")
            } else if e.is_eof() {
                (ErrorKind::Transient, "cut-off JSON")
            } else if status >= 500 {
                (ErrorKind::Transient, "a body that is not JSON")
            } else {
                (ErrorKind::BadResponse, "a body that is not JSON")
            };
            Err(GraphError::answered(
                status,
                kind,
                format!("{what}: {}", excerpt(&body, scrubber)),
            ))
        }
    }
}

/// Characters of a body kept in an error message.
const EXCERPT_CHARS: usize = 120;

/// A short, single-line, scrubbed excerpt of a body for error messages: at most
/// [`EXCERPT_CHARS`] characters of the body, quoted, so a megabyte of HTML cannot flood a log.
pub(crate) fn excerpt(body: &[u8], scrubber: &Scrubber) -> String {
    // Scrub the whole body first: cutting first could split a secret and let half of it through.
    let text = scrubber.scrub(&String::from_utf8_lossy(body));
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    // Debug quoting escapes what does not print; bound the escaped form too.
    let mut quoted: String = format!("{flat:?}")
        .chars()
        .take(EXCERPT_CHARS + 40)
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_body_is_transient_whatever_its_status() {
        for status in [200, 400] {
            let e = decode(status, br#"{"data": [{"id": "1"#, None).expect_err("cut off");
            assert_eq!(e.kind, ErrorKind::Transient, "{e}");
            assert!(e.message.starts_with("cut-off JSON"), "{e}");
        }
        let e = decode(200, b"<html>", None).expect_err("not json");
        assert_eq!(e.kind, ErrorKind::BadResponse);
    }

    #[test]
    fn a_429_is_throttling_with_or_without_a_body() {
        for body in [&b"Too Many Requests"[..], b"{}", b""] {
            let e = decode(429, body, None).expect_err("429");
            assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
        }
    }

    #[test]
    fn a_rejected_tokens_subcode_says_why() {
        let rejected = |subcode| GraphError {
            code: Some(190),
            subcode,
            ..GraphError::local(ErrorKind::Token, "Error validating access token")
        };
        assert_eq!(
            rejected(Some(463)).token_reason(),
            "the token expired (subcode 463)"
        );
        assert_eq!(
            rejected(Some(460)).token_reason(),
            "the password changed, which invalidated the token (subcode 460)"
        );
        for unknown in [None, Some(1)] {
            assert_eq!(
                rejected(unknown).token_reason(),
                "the token is invalid or revoked"
            );
        }
    }

    #[test]
    fn excerpts_are_short_and_scrubbed() {
        let scrubber = Scrubber::new(["EAAGsecret-token"]);
        let body = format!("EAAGsecret-token {}", "\u{1}\u{FDD1}x".repeat(5000));
        let e = excerpt(body.as_bytes(), &scrubber);
        assert!(e.chars().count() <= EXCERPT_CHARS + 41, "{e}");
        assert!(e.starts_with("\"[redacted] "), "{e}");
    }
}
