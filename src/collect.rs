//! The two jobs: fetch from the Graph API, flatten and validate, write one object per kind.
//!
//! A target's failure is recorded and the others go on; the run fails as a whole only when the
//! token is rejected, every target failed, or a write failed: the cases where Lambda should retry
//! or an operator must act.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Format, Target};
use crate::graph::{ErrorKind, GraphError, GraphStats, Need, Session, Source};
use crate::records::{render, Batch, Kind};
use crate::sink::{Sink, SinkError};
use crate::validate::{self, Tally, TallyRow};

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// Hourly: each account's profile and latest media (`brand`, `media`).
    Brands,
    /// Every 5 minutes: each hashtag's recent media (`media_hashtag`).
    Hashtags,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Brands => "brands",
            Job::Hashtags => "hashtags",
        }
    }

    /// The record kinds the job writes.
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            Job::Brands => &[Kind::Brand, Kind::Media],
            Job::Hashtags => &[Kind::MediaHashtag],
        }
    }
}

/// Everything a run needs, built once per process.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub source: Source,
    pub sink: Sink,
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
    pub graph: GraphStats,
    pub duration_ms: u64,
}

/// Why a run failed as a whole. The summary of what it did is kept for the log.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Code 190: no call can succeed until an operator replaces the token. Nothing is written.
    #[error("the Graph API rejected the access token: {}; create a new long-lived or system user token and update the secret (IG_TOKEN_SECRET_ARN) or IG_ACCESS_TOKEN ({})", token_reason(.0.subcode), .0)]
    TokenRejected(GraphError, Box<RunSummary>),
    /// Every target failed; nothing is written so the retry starts clean.
    #[error("all {} targets failed; first: {}", .0.targets_total, .0.failed_targets.first().map(|f| f.message.as_str()).unwrap_or("?"))]
    AllTargetsFailed(Box<RunSummary>),
    /// A write failed: the invocation fails so Lambda retries it (keys are deterministic).
    #[error("{0}")]
    Write(SinkError, Box<RunSummary>),
}

impl RunError {
    pub fn summary(&self) -> &RunSummary {
        match self {
            RunError::TokenRejected(_, s)
            | RunError::AllTargetsFailed(s)
            | RunError::Write(_, s) => s,
        }
    }

    /// A stable name for the failure, used as the Lambda `errorType`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            RunError::TokenRejected(..) => "TokenRejected",
            RunError::AllTargetsFailed(_) => "AllTargetsFailed",
            RunError::Write(..) => "WriteFailed",
        }
    }
}

/// What fetching and flattening produced, before anything is written.
struct Collected {
    batch: Batch,
    tally: Tally,
    failed: Vec<FailedTarget>,
    resolved: BTreeMap<String, String>,
}

/// Runs `job` for the run scheduled at `scheduled`, stopping Graph calls at `deadline`.
pub async fn run(
    app: &App,
    job: Job,
    scheduled: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let session = app
        .source
        .session(&app.config.retry, &app.config.graph, deadline);
    let collected = match job {
        Job::Brands => collect_brands(&app.config, &session).await,
        Job::Hashtags => collect_hashtags(&app.config, &session).await,
    };
    let mut summary = RunSummary {
        job,
        scheduled_time: scheduled.to_rfc3339_opts(SecondsFormat::Secs, true),
        keys_written: Vec::new(),
        records: job
            .kinds()
            .iter()
            .map(|k| (*k, collected.batch.get(*k).len()))
            .collect(),
        dropped_total: collected.tally.dropped_total(),
        dropped: collected.tally.dropped_rows(),
        defaulted_total: collected.tally.defaulted_total(),
        defaulted: collected.tally.defaulted_rows(),
        targets_total: app.config.targets.len(),
        failed_targets: collected.failed,
        resolved_hashtag_ids: collected.resolved,
        graph: session.stats(),
        duration_ms: 0,
    };
    let finish = |mut s: RunSummary| {
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.graph = session.stats();
        Box::new(s)
    };

    if let Some(e) = session.stopped_by().filter(|e| e.kind == ErrorKind::Token) {
        tracing::error!(
            severity = "CRITICAL", code = ?e.code, subcode = ?e.subcode,
            "the access token was rejected: {}; no object was written. Create a new long-lived (or system user) token and update the secret",
            token_reason(e.subcode)
        );
        return Err(RunError::TokenRejected(e, finish(summary)));
    }
    if !app.config.targets.is_empty() && summary.failed_targets.len() == app.config.targets.len() {
        return Err(RunError::AllTargetsFailed(finish(summary)));
    }

    let format = app.config.output.format;
    let content_type = match format {
        Format::Json => "application/json",
        Format::Ndjson => "application/x-ndjson",
    };
    for kind in job.kinds() {
        let key = app.config.key_template(*kind).render(scheduled);
        let body = render(collected.batch.get(*kind), format);
        if let Err(e) = app.sink.put(&key, body, content_type).await {
            return Err(RunError::Write(e, finish(summary)));
        }
        tracing::info!(kind = kind.name(), location = %app.sink.location(&key), records = collected.batch.get(*kind).len(), "object written");
        summary.keys_written.push(app.sink.location(&key));
    }
    Ok(*finish(summary))
}

/// What each code-190 subcode means, for the operator.
pub fn token_reason(subcode: Option<i64>) -> &'static str {
    match subcode {
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

async fn collect_brands(config: &Config, session: &Session<'_>) -> Collected {
    let results: Vec<(&Target, Result<Value, GraphError>)> = stream::iter(&config.targets)
        .map(|t| async move { (t, session.business_discovery(&t.username).await) })
        .buffered(config.graph.concurrency)
        .collect()
        .await;
    let mut out = Collected {
        batch: Batch::default(),
        tally: Tally::default(),
        failed: Vec::new(),
        resolved: BTreeMap::new(),
    };
    for (target, result) in results {
        match result.and_then(|body| flatten_brand(&body, target, &mut out.tally)) {
            Ok(batch) => out.batch.append(batch),
            Err(e) => {
                tracing::warn!(target_name = %target.username, error_kind = e.kind.name(), code = ?e.code, "brand not collected: {e}");
                out.failed.push(FailedTarget::new(&target.username, &e));
            }
        }
    }
    out
}

/// A `business_discovery` response: one brand record and its media records.
pub fn flatten_brand(
    body: &Value,
    target: &Target,
    tally: &mut Tally,
) -> Result<Batch, GraphError> {
    let Some(bd) = body.get("business_discovery").filter(|v| v.is_object()) else {
        return Err(bad_shape("the response has no business_discovery object"));
    };
    let mut batch = Batch::default();
    // The media belong to the account even if its own record is dropped for a bad id.
    let owner = validate::valid_id(bd.get("id")).unwrap_or_else(|| target.user_id.clone());
    if let Some(brand) = validate::record(Kind::Brand, bd, None, tally) {
        batch.brand.push(brand);
    }
    let media = bd
        .get("media")
        .and_then(|m| m.get("data"))
        .and_then(Value::as_array);
    batch.media = validate::records(
        Kind::Media,
        media.map(Vec::as_slice).unwrap_or(&[]),
        Some(&owner),
        tally,
    );
    Ok(batch)
}

/// A `recent_media` page: its records (owned by the brand whose hashtag found them).
pub fn flatten_hashtag_page(
    body: &Value,
    target: &Target,
    tally: &mut Tally,
) -> Result<Vec<crate::records::Record>, GraphError> {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(bad_shape("the response has no data array"));
    };
    Ok(validate::records(
        Kind::MediaHashtag,
        data,
        Some(&target.user_id),
        tally,
    ))
}

fn bad_shape(message: &str) -> GraphError {
    GraphError {
        kind: ErrorKind::BadResponse,
        code: None,
        subcode: None,
        status: None,
        message: message.to_string(),
        fbtrace_id: None,
        attempts: 1,
        regain_after: None,
    }
}

async fn collect_hashtags(config: &Config, session: &Session<'_>) -> Collected {
    let results: Vec<_> = stream::iter(&config.targets)
        .map(|t| async move { (t, collect_hashtag(t, session).await) })
        .buffered(config.graph.concurrency)
        .collect()
        .await;
    let mut out = Collected {
        batch: Batch::default(),
        tally: Tally::default(),
        failed: Vec::new(),
        resolved: BTreeMap::new(),
    };
    for (target, result) in results {
        match result {
            Ok((records, tally, resolved)) => {
                out.batch.media_hashtag.extend(records);
                out.tally.merge(&tally);
                if let Some(id) = resolved {
                    out.resolved.insert(target.hashtag.clone(), id);
                }
            }
            Err(e) => {
                tracing::warn!(hashtag = %target.hashtag, error_kind = e.kind.name(), code = ?e.code, "hashtag not collected: {e}");
                out.failed.push(FailedTarget::new(&target.hashtag, &e));
            }
        }
    }
    out
}

type HashtagResult = (Vec<crate::records::Record>, Tally, Option<String>);

async fn collect_hashtag(
    target: &Target,
    session: &Session<'_>,
) -> Result<HashtagResult, GraphError> {
    let (id, resolved) = match &target.hashtag_id {
        Some(id) => (id.clone(), None),
        None => {
            let id = session.hashtag_search(&target.hashtag).await?;
            tracing::info!(
                hashtag = %target.hashtag, hashtag_id = %id,
                "hashtag id resolved with ig_hashtag_search; pin it in configure.toml as hashtag_id = \"{id}\" to save the search call"
            );
            (id.clone(), Some(id))
        }
    };
    let mut tally = Tally::default();
    let body = session
        .recent_media(&target.hashtag, &id, None, 1, Need::Required)
        .await?;
    let mut records = flatten_hashtag_page(&body, target, &mut tally)?;
    // The API can repeat a post within a response; each post appears once per hashtag.
    let mut seen = HashSet::new();
    records.retain(|r| {
        seen.insert(
            r.get("media_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    });
    Ok((records, tally, resolved))
}
