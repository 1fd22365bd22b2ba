//! What a run did, and why it failed when it did: the one summary a run returns, logs and
//! measures, filled by the parts that know each figure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::graph::{ErrorKind, GraphError, GraphStats};
use crate::health::{RenewedTokens, TokenHealth, TokenRefresh};
use crate::job::Job;
use crate::records::Kind;
use crate::sink::SinkError;
use crate::validate::TallyRow;

/// A target that yielded nothing this run, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedTarget {
    /// The account username (brands) or hashtag (hashtags).
    pub target: String,
    pub error_kind: ErrorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    pub message: String,
}

impl FailedTarget {
    pub(super) fn new(target: &str, e: &GraphError) -> FailedTarget {
        FailedTarget {
            target: target.to_string(),
            error_kind: e.kind,
            code: e.code,
            subcode: e.subcode,
            message: e.to_string(),
        }
    }
}

/// What a run did: returned by the Lambda invocation, printed by the CLI, logged once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunSummary {
    pub job: Job,
    /// The time the keys derive from (RFC 3339, UTC).
    pub scheduled_time: String,
    /// Locations written (`s3://bucket/key` or paths).
    pub keys_written: Vec<String>,
    /// Data objects an earlier delivery of the same scheduled time had written: this run's
    /// records were merged into them, none removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_with_earlier: Vec<String>,
    /// Conditional writes that found another run's newer object and merged again.
    #[serde(skip_serializing_if = "is_zero")]
    pub write_conflicts: u32,
    /// Raw capture files an earlier delivery had already written (kept, not replaced).
    #[serde(skip_serializing_if = "is_zero")]
    pub capture_files_kept: u32,
    /// Records written per kind.
    pub records: BTreeMap<Kind, usize>,
    pub dropped_total: u64,
    pub dropped: Vec<TallyRow>,
    pub defaulted_total: u64,
    pub defaulted: Vec<TallyRow>,
    pub targets_total: usize,
    pub failed_targets: Vec<FailedTarget>,
    /// Hashtag ids looked up this run: pin them in configure.toml to save search calls.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resolved_hashtag_ids: BTreeMap<String, String>,
    /// Pages fetched per hashtag (hashtags job).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hashtag_pages: BTreeMap<String, u32>,
    /// Per hashtag (hashtags job): whether it was due, what its poll did, posts behind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hashtags: BTreeMap<String, crate::pager::TagReport>,
    /// Posts estimated still to fetch, all hashtags: due hashtags the budget made wait, and
    /// polls cut short of their frontier. They stay fetchable for 24 hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posts_behind: Option<u64>,
    /// Posts estimated lost: gaps that aged out of the API's 24 hours before the budget reached
    /// them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posts_given_up: Option<u64>,
    /// Per credential (hashtags job): the hourly allowance, calls booked within the hour, spent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashtag_budget: Vec<crate::pager::LaneUse>,
    /// What the brands job's lookback fetched (`brands.lookback_days` above 0): pages, pages
    /// the hour's calls could not book, accounts cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brands_lookback: Option<crate::lookback::Report>,
    /// What the brands job's backfill did (`brands.backfill_days` above 0): calls the hour
    /// could spare, pages and posts fetched, and where each account not yet complete stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brands_backfill: Option<crate::backfill::Report>,
    /// Why the hashtag state was not (wholly) used, when it was not: missing, unreadable,
    /// entries ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The scheduled time the state was as of when this run read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_as_of: Option<String>,
    /// The daily token check (first brands run after 00:00 UTC).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_health: Vec<TokenHealth>,
    /// The fields this run left out of its requests because the Graph API version no longer has
    /// them (code 100, "nonexisting field"): found by this run, or by an earlier one. Their
    /// records hold the fields' defaults, counted as `removed_by_api`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields_removed: Vec<crate::drift::FieldRemoved>,
    /// Why the stored removed fields were not (wholly) used, when they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_removed_note: Option<String>,
    /// What the daily check's refresh did with each token (`health.refresh_days_left`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_refresh: Vec<TokenRefresh>,
    /// The fresh tokens of that refresh, for the caller to store in the token secret
    /// (`setup::renew::settle`): never serialized, and they print nothing of themselves.
    #[serde(skip)]
    pub renewed_tokens: RenewedTokens,
    /// Where the run's raw Graph responses were stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_capture: Option<String>,
    pub graph: GraphStats,
    pub duration_ms: u64,
}

impl RunSummary {
    /// The summary of a run of `job` at `scheduled` over `targets_total` targets, before it
    /// has done anything.
    pub(super) fn new(job: Job, scheduled: DateTime<Utc>, targets_total: usize) -> RunSummary {
        RunSummary {
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
            targets_total,
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
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a run failed as a whole. The summary of what it did is kept for the log.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Code 190 on every credential: no call can succeed until an operator replaces the token.
    /// What was collected before the rejection is written first.
    #[error("the Graph API rejected the access token: {}; create a new long-lived or system user token and update the secret (IG_TOKEN_SECRET_ARN) or IG_ACCESS_TOKEN ({})", .0.token_reason(), .0)]
    TokenRejected(GraphError, Box<RunSummary>),
    /// Every target failed; nothing is written so the retry starts clean.
    #[error("all {} targets failed; first: {}", .0.targets_total, .0.failed_targets.first().map(|f| f.message.as_str()).unwrap_or("?"))]
    AllTargetsFailed(Box<RunSummary>),
    /// The hashtag state could not be read (other than "there is none"). Going on without it
    /// would write posts already written and search every hashtag id again, so the run stops
    /// and Lambda retries it.
    #[error("{0}; the run stopped before any Graph call, and is safe to retry")]
    StateUnreadable(SinkError, Box<RunSummary>),
    /// The scheduled time is further ahead of the clock than any schedule fires: refused before
    /// anything is read, called or written (`schedule::check_scheduled`).
    #[error("{0}")]
    ScheduledAhead(crate::schedule::TimeError, Box<RunSummary>),
    /// A write failed or timed out: the invocation fails so Lambda retries it. Writes merge, so
    /// the retry completes the set without removing what this run wrote.
    #[error("{0}")]
    Write(SinkError, Box<RunSummary>),
}

impl RunError {
    pub fn summary(&self) -> &RunSummary {
        match self {
            RunError::TokenRejected(_, s)
            | RunError::AllTargetsFailed(s)
            | RunError::StateUnreadable(_, s)
            | RunError::ScheduledAhead(_, s)
            | RunError::Write(_, s) => s,
        }
    }

    /// The summary, to complete it after the run (the refreshed tokens stored).
    pub fn summary_mut(&mut self) -> &mut RunSummary {
        match self {
            RunError::TokenRejected(_, s)
            | RunError::AllTargetsFailed(s)
            | RunError::StateUnreadable(_, s)
            | RunError::ScheduledAhead(_, s)
            | RunError::Write(_, s) => s,
        }
    }

    /// A stable name for the failure, used as the Lambda `errorType`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            RunError::TokenRejected(..) => "TokenRejected",
            RunError::AllTargetsFailed(_) => "AllTargetsFailed",
            RunError::StateUnreadable(..) => "StateReadFailed",
            RunError::ScheduledAhead(..) => "BadTime",
            RunError::Write(..) => "WriteFailed",
        }
    }
}
