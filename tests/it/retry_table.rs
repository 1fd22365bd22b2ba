//! The retry decision, by table: (HTTP status, Graph code, subcode, attempt) → decision.

use std::time::Duration;

use ig_collector::config::RetryPolicy;
use ig_collector::graph::{classify, decide, ApiError, Decision, ErrorKind};

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(8),
        usage_threshold_percent: 80,
        deadline_margin: Duration::from_secs(8),
        max_throttle_wait: Duration::from_secs(120),
    }
}

fn api(code: i64, subcode: Option<i64>, transient: Option<bool>) -> ApiError {
    ApiError {
        message: "x".into(),
        error_type: Some("OAuthException".into()),
        code,
        error_subcode: subcode,
        is_transient: transient,
        error_user_title: None,
        error_user_msg: None,
        fbtrace_id: None,
    }
}

/// (HTTP status, code, subcode, is_transient, expected kind)
type ClassifyRow = (u16, i64, Option<i64>, Option<bool>, ErrorKind);
/// (kind, attempt, regain time, time left, jitter, expected decision)
type DecideRow = (
    ErrorKind,
    u32,
    Option<Duration>,
    Option<Duration>,
    f64,
    Decision,
);

const RETRY: fn(u64) -> Decision = |ms| Decision::RetryAfter(Duration::from_millis(ms));

#[test]
fn errors_are_classified_by_code_not_by_status() {
    let rows: &[ClassifyRow] = &[
        (500, 1, None, None, ErrorKind::Transient),
        (400, 2, None, None, ErrorKind::Transient),
        (200, 2, None, None, ErrorKind::Transient),
        (400, 9999, None, Some(true), ErrorKind::Transient),
        (403, 4, None, None, ErrorKind::Throttled),
        (400, 17, None, None, ErrorKind::Throttled),
        (400, 32, None, None, ErrorKind::Throttled),
        (400, 613, None, None, ErrorKind::Throttled),
        (400, 80001, None, None, ErrorKind::Throttled),
        (429, 80002, None, None, ErrorKind::Throttled),
        (400, 190, Some(463), None, ErrorKind::Token),
        (500, 190, Some(460), None, ErrorKind::Token),
        (403, 10, None, None, ErrorKind::Permission),
        (400, 200, None, None, ErrorKind::Permission),
        (400, 299, None, None, ErrorKind::Permission),
        (400, 100, None, None, ErrorKind::InvalidParameter),
        (400, 110, Some(2207013), None, ErrorKind::UnknownAccount),
        (400, 368, None, None, ErrorKind::PolicyBlock),
        (404, 803, None, None, ErrorKind::NotFound),
        (400, 12345, None, None, ErrorKind::Unknown),
        (503, 12345, None, None, ErrorKind::Transient),
    ];
    for (status, code, subcode, transient, kind) in rows {
        assert_eq!(
            classify(*status, Some(&api(*code, *subcode, *transient))),
            *kind,
            "HTTP {status}, code {code}"
        );
    }
    assert_eq!(classify(502, None), ErrorKind::Transient);
    assert_eq!(classify(404, None), ErrorKind::BadResponse);
}

#[test]
fn the_decision_table() {
    let p = policy();
    let minute = Some(Duration::from_secs(60));
    let lots = Some(Duration::from_secs(3600));
    // (kind, attempt, regain, time left, jitter) → decision
    let rows: &[DecideRow] = &[
        (ErrorKind::Transient, 1, None, None, 0.0, RETRY(250)),
        (ErrorKind::Transient, 1, None, None, 1.0, RETRY(500)),
        (ErrorKind::Transient, 2, None, None, 0.0, RETRY(500)),
        (ErrorKind::Transient, 3, None, None, 1.0, RETRY(2000)),
        (ErrorKind::Transient, 4, None, None, 0.0, Decision::GiveUp),
        (ErrorKind::Timeout, 1, None, lots, 0.0, RETRY(250)),
        (ErrorKind::Network, 2, None, lots, 0.5, RETRY(750)),
        (
            ErrorKind::Transient,
            1,
            None,
            Some(Duration::from_millis(100)),
            0.0,
            Decision::GiveUp,
        ),
        (ErrorKind::Throttled, 1, None, None, 0.0, Decision::GiveUp),
        (
            ErrorKind::Throttled,
            1,
            Some(Duration::ZERO),
            None,
            0.0,
            Decision::GiveUp,
        ),
        (
            ErrorKind::Throttled,
            1,
            minute,
            lots,
            0.0,
            Decision::RetryAfter(Duration::from_secs(60)),
        ),
        (
            ErrorKind::Throttled,
            1,
            minute,
            Some(Duration::from_secs(30)),
            0.0,
            Decision::GiveUp,
        ),
        (
            ErrorKind::Throttled,
            1,
            Some(Duration::from_secs(600)),
            lots,
            0.0,
            Decision::GiveUp,
        ),
        (ErrorKind::Token, 1, None, None, 0.0, Decision::GiveUp),
        (ErrorKind::Permission, 1, None, None, 0.0, Decision::GiveUp),
        (
            ErrorKind::InvalidParameter,
            1,
            None,
            None,
            0.0,
            Decision::GiveUp,
        ),
        (
            ErrorKind::UnknownAccount,
            1,
            None,
            None,
            0.0,
            Decision::GiveUp,
        ),
        (ErrorKind::PolicyBlock, 1, None, None, 0.0, Decision::GiveUp),
        (ErrorKind::NotFound, 1, None, None, 0.0, Decision::GiveUp),
        (ErrorKind::Unknown, 1, None, None, 0.0, Decision::GiveUp),
        (ErrorKind::BadResponse, 1, None, None, 0.0, Decision::GiveUp),
    ];
    for (kind, attempt, regain, left, jitter, expected) in rows {
        assert_eq!(
            decide(*kind, *attempt, *regain, *left, &p, *jitter),
            *expected,
            "{kind:?} attempt {attempt} regain {regain:?} left {left:?}"
        );
    }
}

#[test]
fn backoff_is_capped() {
    let p = policy();
    assert_eq!(
        decide(
            ErrorKind::Transient,
            3,
            None,
            None,
            &RetryPolicy {
                max_attempts: 10,
                ..p.clone()
            },
            1.0
        ),
        RETRY(2000)
    );
    assert_eq!(
        decide(
            ErrorKind::Transient,
            9,
            None,
            None,
            &RetryPolicy {
                max_attempts: 10,
                ..p
            },
            1.0
        ),
        RETRY(8000)
    );
}
