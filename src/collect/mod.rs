//! The two jobs: fetch from the Graph API, flatten and validate, write one object per kind.
//!
//! A target's failure is recorded and the others go on; the run fails as a whole only when the
//! token is rejected, every target failed, the state could not be read, or a write failed: the
//! cases where Lambda should retry or an operator must act.
//!
//! - [`run`](run::run): the orchestration of one run;
//! - `brands`, `hashtags`: what each job fetches and keeps;
//! - `persist`: the one place that writes, and the order it writes in (data, capture, state),
//!   each write merged with what an earlier or overlapping delivery wrote;
//! - `output`: a data object assembled as the answers arrive (in memory, then a temporary file);
//! - `drift`: the fields the API version no longer has, read before the first call and written
//!   back when the run finds one.
//!
//! Nothing here knows Graph JSON (`graph::shapes` does) or S3 (`sink` does).

mod brands;
mod drift;
mod hashtags;
mod output;
mod persist;
mod run;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::graph::{ErrorKind, GraphError, GraphStats, Source};
use crate::health::{RenewedTokens, TokenHealth, TokenRefresh};
use crate::records::Kind;
use crate::sink::{Sink, SinkError};
use crate::validate::TallyRow;

pub use crate::job::Job;
pub use run::{run, run_until, Deadlines};

/// Everything a run needs, built once per process.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub source: Source,
    pub sink: Sink,
    /// The clock runs read (the system's, but for a simulation).
    pub clock: crate::schedule::Clock,
}

impl App {
    /// The fan-out plan of `job` over this app's credentials.
    pub fn plan(&self, job: Job) -> crate::plan::Plan {
        crate::plan::plan(&self.config.for_job(job), self.source.lanes(), job)
    }

    /// The app shard `index` of `job` runs as: the shard's configuration (its targets, part
    /// keys, hashtag share) and, for a shard of one credential, a source of that credential
    /// only, so every target of the shard is called with the credential the plan gave it.
    /// The same sink: part files go under the same prefixes. `None`: no such shard.
    pub fn shard(&self, job: Job, index: usize) -> Option<App> {
        let plan = self.plan(job);
        let config = plan.shard_config(&self.config.for_job(job), index)?;
        let source = match plan.shards.get(index)?.credential {
            Some(lane) => self.source.lane(lane)?,
            None => self.source.clone(),
        };
        Some(App {
            clock: self.clock.clone(),
            config,
            source,
            sink: self.sink.clone(),
        })
    }
}

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
    fn new(target: &str, e: &GraphError) -> FailedTarget {
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
