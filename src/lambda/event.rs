//! An invocation's event and answer: the scheduled time and what the event asks for (the whole
//! run, the plan, or one shard), read from the event's JSON, and what the invocation answers.
//! A bad event is refused with [`InvocationError::BadEvent`], saying what was expected.

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use serde_json::Value;

use crate::collect::{RunError, RunSummary};
use crate::job::Job;
use crate::schedule;
use crate::setup::SetupError;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("{0}")]
    Setup(SetupError),
    #[error("{0}")]
    BadEvent(String),
    #[error("{0}")]
    Run(#[from] RunError),
    /// A defect: the run panicked. Reported with its message instead of the runtime's opaque
    /// `Box<dyn Any>` error type, so the log says what broke.
    #[error("internal error, please report it: the run panicked: {0}")]
    Panic(String),
}

impl InvocationError {
    /// The Lambda `errorType`: a stable name an alarm or a person can act on.
    pub fn kind_name(&self) -> &'static str {
        match self {
            InvocationError::Setup(s) => s.kind_name(),
            InvocationError::BadEvent(_) => "BadEvent",
            InvocationError::Run(r) => r.kind_name(),
            InvocationError::Panic(_) => "InternalError",
        }
    }
}

impl From<InvocationError> for Diagnostic {
    fn from(e: InvocationError) -> Diagnostic {
        Diagnostic {
            error_type: e.kind_name().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// How far ahead of the clock an event's time may be: the one rule of [`schedule::MAX_LEAD`].
pub const MAX_EVENT_LEAD: chrono::TimeDelta = schedule::MAX_LEAD;

/// The scheduled time of an event: its `time` field, RFC 3339. Both the classic EventBridge
/// "Scheduled Event" and the EventBridge Scheduler input in `template.yaml` carry it. Keys derive
/// from it, never from the clock, so a redelivered event finds its own objects again. A time in
/// the past is fine (a late redelivery, an operator's re-invoke); one more than
/// [`MAX_EVENT_LEAD`] ahead of `now` is refused.
pub fn scheduled_time(event: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, InvocationError> {
    const EXPECTED: &str = "expected an EventBridge scheduled event: a JSON object with a `time` field in RFC 3339, e.g. {\"time\": \"2023-09-02T00:00:00Z\"}";
    let time = event
        .get("time")
        .ok_or_else(|| InvocationError::BadEvent(format!("{EXPECTED}; the event has no `time`")))?;
    let text = time
        .as_str()
        .ok_or_else(|| InvocationError::BadEvent(format!("{EXPECTED}; `time` is {time}")))?;
    let at = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| InvocationError::BadEvent(format!("{EXPECTED}; `time` is \"{text}\": {e}")))?;
    schedule::check_scheduled("`time`", at, now)
        .map_err(|e| InvocationError::BadEvent(format!("{EXPECTED}; {e}")))?;
    Ok(at)
}

/// What an event asks for, besides its scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The whole run in this invocation (the schedules' plain events, an operator's re-invoke).
    Run,
    /// The fan-out plan: the shard indexes the state machine's Map runs (`{"plan": true}`).
    Plan,
    /// One shard of the plan (`{"shard": 3}`).
    Shard(usize),
}

/// What the event asks for: `plan: true`, a `shard` index, or (neither) the whole run.
pub fn asked(event: &Value) -> Result<Asked, InvocationError> {
    let plan = match event.get("plan") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Err(InvocationError::BadEvent(format!(
                "expected `plan` to be true or false (a planning event is {{\"time\": \"...\", \"plan\": true}}); it is {other}"
            )))
        }
    };
    let shard = match event.get("shard") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    InvocationError::BadEvent(format!(
                        "expected `shard` to be a shard index, a whole number from 0, as the planning event's `shards` lists them; it is {v}"
                    ))
                })?,
        ),
    };
    match (plan, shard) {
        (true, Some(_)) => Err(InvocationError::BadEvent(
            "expected either `plan` or `shard`, not both".into(),
        )),
        (true, None) => Ok(Asked::Plan),
        (false, Some(i)) => Ok(Asked::Shard(i)),
        (false, None) => Ok(Asked::Run),
    }
}

/// The answer to a planning event: what the state machine's Map iterates over.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct PlanAnswer {
    pub job: Job,
    /// The event's time, passed on to every shard so their keys agree.
    pub time: String,
    /// The shard indexes, `0..n`.
    pub shards: Vec<usize>,
    /// True when the run is cut (else the one shard is the whole run, writing the usual keys).
    pub sharded: bool,
}

/// An invocation's answer: a run's summary, or the plan.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Reply {
    Run(Box<RunSummary>),
    Plan(PlanAnswer),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_ask_for_the_whole_run_the_plan_or_one_shard() {
        let parse = |text: &str| asked(&serde_json::from_str(text).expect("json"));
        assert_eq!(
            parse(include_str!("../../events/brands-plan.json")).ok(),
            Some(Asked::Plan)
        );
        assert_eq!(
            parse(include_str!("../../events/brands-shard.json")).ok(),
            Some(Asked::Shard(0))
        );
        assert_eq!(
            parse(include_str!("../../events/hashtags-scheduler.json")).ok(),
            Some(Asked::Run)
        );
        for (event, expected) in [
            (json!({"shard": -1}), "shard index"),
            (json!({"shard": 1.5}), "shard index"),
            (json!({"shard": "2"}), "shard index"),
            (json!({"plan": "yes"}), "true or false"),
            (json!({"plan": true, "shard": 0}), "not both"),
        ] {
            let message = asked(&event).expect_err("refused").to_string();
            assert!(message.contains(expected), "{event}: {message}");
        }
    }
}
