//! The two jobs: fetch from the Graph API, flatten and validate, write one object per kind.
//!
//! A target's failure is recorded and the others go on; the run fails as a whole only when the
//! token is rejected, every target failed, or a write failed: the cases where Lambda should retry
//! or an operator must act.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Format, Target};
use crate::graph::{shapes, Captured, ErrorKind, GraphError, GraphStats, Need, Session, Source};
use crate::health::{self, TokenHealth};
use crate::records::{render, Batch, Kind, Record};
use crate::sink::{Sink, SinkError};
use crate::state::{State, TagState};
use crate::validate::{Rules, Tally, TallyRow};

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
    /// Pages fetched per hashtag (hashtags job).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hashtag_pages: BTreeMap<String, u32>,
    /// Why the hashtag state was not used, when it was not (missing, unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The daily token check (first brands run after 00:00 UTC).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_health: Vec<TokenHealth>,
    /// Where the run's raw Graph responses were stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_capture: Option<String>,
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
#[derive(Default)]
struct Collected {
    batch: Batch,
    tally: Tally,
    failed: Vec<FailedTarget>,
    resolved: BTreeMap<String, String>,
    /// Pages fetched per hashtag.
    pages: BTreeMap<String, u32>,
    /// The hashtag state the run started from (hashtags job).
    prev_state: Option<State>,
}

/// Runs `job` for the run scheduled at `scheduled`, stopping Graph calls at `deadline`.
///
/// Writes, in this order: the data objects, the raw capture, then (hashtags) the state. The state
/// comes last so that a crash in between means some posts are collected twice, never that one is
/// lost. A replayed run reads state from the replay folder and writes neither capture nor state.
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
    let replaying = matches!(app.source, Source::Replay(_));
    let mut state_note = None;
    let mut next_state = None;
    let mut token_health = Vec::new();
    let collected = match job {
        Job::Brands => {
            // Once a day, the first brands run after 00:00 UTC checks the token, alongside the
            // brand calls so that it adds no time to the run.
            let daily = !replaying && scheduled.hour() == 0;
            let check = async {
                if daily {
                    health::check(&session, app.source.lanes()).await
                } else {
                    Vec::new()
                }
            };
            let (collected, checked) = tokio::join!(collect_brands(&app.config, &session), check);
            token_health = checked.into_iter().filter_map(Result::ok).collect();
            collected
        }
        Job::Hashtags => {
            let (prev, note) = load_state(app).await;
            if let Some(n) = &note {
                tracing::warn!("hashtag state: {n}");
            }
            state_note = note;
            let (collected, state) = collect_hashtags(&app.config, &session, &prev).await;
            next_state = Some(state);
            collected
        }
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
        hashtag_pages: collected.pages,
        state: state_note,
        token_health,
        raw_capture: None,
        graph: session.stats(),
        duration_ms: 0,
    };
    let finish = |mut s: RunSummary| {
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.graph = session.stats();
        Box::new(s)
    };

    for (lane, e) in session.rejected_tokens() {
        tracing::error!(
            severity = "CRITICAL", ig_user_id = session.lane_user(lane).unwrap_or_default(), code = ?e.code, subcode = ?e.subcode,
            "the access token was rejected: {}. Its targets were not collected. Create a new long-lived (or system user) token and update the secret",
            token_reason(e.subcode)
        );
    }
    if session.all_tokens_rejected() {
        let e = session.rejected_tokens().remove(0).1;
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

    if app.config.output.raw_capture && !replaying {
        let prefix = app
            .config
            .output
            .raw_capture_key
            .render_for(job.name(), scheduled);
        let mut files = session.take_captured();
        if let Some(state) = &collected.prev_state {
            // The state the run started from, so a reprocess recognises the same posts as known.
            files.push(Captured {
                path: "state.json".into(),
                body: state.to_bytes(),
            });
        }
        let count = files.len();
        for file in files {
            let key = format!("{prefix}/{}.gz", file.path);
            if let Err(e) = app
                .sink
                .put(&key, gzip(&file.body), "application/gzip")
                .await
            {
                return Err(RunError::Write(e, finish(summary)));
            }
        }
        tracing::info!(location = %app.sink.location(&prefix), files = count, "raw responses captured");
        summary.raw_capture = Some(app.sink.location(&prefix));
    }

    if let (Some(state), false) = (next_state, replaying) {
        let key = &app.config.hashtags.state_key;
        if let Err(e) = app
            .sink
            .put(key, state.to_bytes(), "application/json")
            .await
        {
            return Err(RunError::Write(e, finish(summary)));
        }
    }
    Ok(*finish(summary))
}

/// Loads the hashtag state: from the replay folder when replaying, else from the sink. A missing
/// or unreadable state is a note, never an error: the run then takes one page per hashtag.
async fn load_state(app: &App) -> (State, Option<String>) {
    let fresh = "no state: first run (or state deleted), one page per hashtag".to_string();
    let bytes = match &app.source {
        Source::Replay(dir) => match tokio::fs::read(dir.join("state.json")).await {
            Ok(b) => Some(b),
            Err(_) => match tokio::fs::read(dir.join("state.json.gz")).await {
                Ok(gz) => crate::graph::gunzip(&gz).ok(),
                Err(_) => None,
            },
        },
        Source::Live(_) => match app.sink.get(&app.config.hashtags.state_key).await {
            Ok(b) => b,
            Err(e) => return (State::default(), Some(format!("{e}; one page per hashtag"))),
        },
    };
    match bytes {
        None => (State::default(), Some(fresh)),
        Some(b) => match State::parse(&b) {
            Ok(s) => (s, None),
            Err(e) => (State::default(), Some(format!("{e}; one page per hashtag"))),
        },
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
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
        .enumerate()
        .map(|(i, t)| async move { (t, session.business_discovery(i, &t.username).await) })
        .buffered(config.graph.concurrency)
        .collect()
        .await;
    let mut out = Collected::default();
    for (target, result) in results {
        match result
            .and_then(|body| shapes::brand(&body, target, &config.validation, &mut out.tally))
        {
            Ok(batch) => out.batch.append(batch),
            Err(e) => {
                tracing::warn!(target_name = %target.username, error_kind = e.kind.name(), code = ?e.code, "brand not collected: {e}");
                out.failed.push(FailedTarget::new(&target.username, &e));
            }
        }
    }
    out
}

async fn collect_hashtags(
    config: &Config,
    session: &Session<'_>,
    prev: &State,
) -> (Collected, State) {
    // First pages, all hashtags, concurrently.
    let firsts: Vec<_> = stream::iter(config.targets.iter().enumerate())
        .map(|(lane, t)| {
            let prev = prev.hashtags.get(&t.hashtag);
            async move { (t, first_page(config, lane, t, session, prev).await) }
        })
        .buffered(config.graph.concurrency)
        .collect()
        .await;
    let mut out = Collected {
        prev_state: Some(prev.clone()),
        ..Collected::default()
    };
    let mut open = Vec::new();
    for (target, result) in firsts {
        match result {
            Ok(progress) => open.push(progress),
            Err(e) => {
                tracing::warn!(hashtag = %target.hashtag, error_kind = e.kind.name(), code = ?e.code, "hashtag not collected: {e}");
                out.failed.push(FailedTarget::new(&target.hashtag, &e));
            }
        }
    }
    more_pages(config, session, &mut open).await;

    let mut next = State {
        version: 1,
        hashtags: prev.hashtags.clone(),
    };
    for h in open {
        let tag = h.target.hashtag.clone();
        out.batch.media_hashtag.extend(h.records);
        out.tally.merge(&h.tally);
        out.pages.insert(tag.clone(), h.page);
        if let Some(id) = h.resolved {
            out.resolved.insert(tag.clone(), id);
        }
        let state = h
            .prev
            .advance(&h.seen, config.hashtags.known_window, Some(h.hashtag_id));
        next.hashtags.insert(tag, state);
    }
    (out, next)
}

/// A hashtag part-way through its run.
struct HashtagProgress<'c> {
    target: &'c Target,
    lane: usize,
    hashtag_id: String,
    /// The id, when this run looked it up.
    resolved: Option<String>,
    prev: TagState,
    /// Whether there was a state to compare with (without one, one page only).
    has_state: bool,
    /// Posts not written by an earlier run, each once.
    records: Vec<Record>,
    tally: Tally,
    /// (id, timestamp) of every post seen this run.
    seen: Vec<(String, String)>,
    seen_ids: HashSet<String>,
    cursors: HashSet<String>,
    /// The cursor of the next page, while one is worth fetching.
    next: Option<String>,
    /// New posts inside the state's window on the last page: the priority for extra pages.
    new_recent: usize,
    page: u32,
}

impl HashtagProgress<'_> {
    /// Takes in one page: records the posts not seen before, and decides whether the next page
    /// is worth fetching: it is while the page held new posts inside the state's window (the
    /// API is not strictly ordered by time, and posts can show up late, so new posts anywhere on
    /// a page mean more may follow).
    fn absorb(
        &mut self,
        body: &Value,
        rules: &Rules,
        window: std::time::Duration,
    ) -> Result<(), GraphError> {
        let mut new_recent = 0;
        let page = shapes::hashtag_page(body, self.target, rules, &mut self.tally)?;
        for r in page.records {
            let media_id = r
                .get("media_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ts = r
                .get("timestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // The API can repeat a post within a run; each post appears once per hashtag.
            if !self.seen_ids.insert(media_id.clone()) {
                continue;
            }
            self.seen.push((media_id.clone(), ts.clone()));
            if !self.prev.is_known(&media_id) {
                if self.prev.is_recent(&ts, window) {
                    new_recent += 1;
                }
                self.records.push(r);
            }
        }
        self.new_recent = new_recent;
        let cursor = page.after;
        // A repeated cursor would loop.
        self.next =
            cursor.filter(|c| self.has_state && new_recent > 0 && self.cursors.insert(c.clone()));
        Ok(())
    }
}

/// Resolves the hashtag id (pinned, kept in the state, or searched) and takes in the first page.
async fn first_page<'c>(
    config: &Config,
    lane: usize,
    target: &'c Target,
    session: &Session<'_>,
    prev: Option<&TagState>,
) -> Result<HashtagProgress<'c>, GraphError> {
    let known_id = target
        .hashtag_id
        .clone()
        .or_else(|| prev.and_then(|p| p.hashtag_id.clone()));
    let (hashtag_id, resolved) = match known_id {
        Some(id) => (id, None),
        None => {
            let id = session.hashtag_search(lane, &target.hashtag).await?;
            if session.is_replay() {
                tracing::info!(hashtag = %target.hashtag, hashtag_id = %id, "hashtag id read from a recorded search (replay: not an id to pin)");
            } else {
                tracing::info!(
                    hashtag = %target.hashtag, hashtag_id = %id,
                    "hashtag id resolved with ig_hashtag_search and kept in the state; pin it in configure.toml as hashtag_id = \"{id}\""
                );
            }
            (id.clone(), Some(id))
        }
    };
    let body = session
        .recent_media(lane, &target.hashtag, &hashtag_id, None, 1, Need::Required)
        .await?;
    let mut progress = HashtagProgress {
        target,
        lane,
        hashtag_id,
        resolved,
        prev: prev.cloned().unwrap_or_default(),
        has_state: prev.is_some(),
        records: Vec::new(),
        tally: Tally::default(),
        seen: Vec::new(),
        seen_ids: HashSet::new(),
        cursors: HashSet::new(),
        next: None,
        new_recent: 0,
        page: 1,
    };
    progress.absorb(&body, &config.validation, config.hashtags.known_window)?;
    Ok(progress)
}

/// Spends the run's extra-page budget where it finds the most: in rounds, the hashtags whose
/// last page held the most new posts get the next pages first. An extra page that fails or is
/// skipped (high usage) ends that hashtag's paging; what it had is kept.
async fn more_pages(config: &Config, session: &Session<'_>, open: &mut [HashtagProgress<'_>]) {
    let mut budget = config.hashtags.extra_pages_per_run() as usize;
    loop {
        let mut wanting: Vec<usize> = (0..open.len())
            .filter(|&i| open[i].next.is_some() && open[i].page < config.hashtags.max_pages)
            .collect();
        if wanting.is_empty() {
            break;
        }
        if budget == 0 {
            for &i in &wanting {
                session.skipped_optional();
                tracing::warn!(hashtag = %open[i].target.hashtag, "extra-page budget of this run spent: posts may be missed (hashtags.extra_pages_per_hour)");
            }
            break;
        }
        wanting.sort_by_key(|&i| std::cmp::Reverse(open[i].new_recent));
        wanting.truncate(budget);
        budget -= wanting.len();
        let fetches = wanting.iter().map(|&i| {
            let h = &open[i];
            session.recent_media(
                h.lane,
                &h.target.hashtag,
                &h.hashtag_id,
                h.next.as_deref(),
                h.page + 1,
                Need::Optional,
            )
        });
        let bodies = futures::future::join_all(fetches).await;
        for (i, body) in wanting.into_iter().zip(bodies) {
            let h = &mut open[i];
            match body {
                Ok(body) => {
                    h.page += 1;
                    if let Err(e) =
                        h.absorb(&body, &config.validation, config.hashtags.known_window)
                    {
                        tracing::warn!(hashtag = %h.target.hashtag, page = h.page, "extra page unreadable, posts may be missed: {e}");
                        h.next = None;
                    }
                }
                Err(e) => {
                    tracing::warn!(hashtag = %h.target.hashtag, page = h.page + 1, error_kind = e.kind.name(), "extra page not fetched, posts may be missed: {e}");
                    h.next = None;
                }
            }
        }
    }
    for h in open
        .iter()
        .filter(|h| h.next.is_some() && h.page >= config.hashtags.max_pages)
    {
        tracing::warn!(hashtag = %h.target.hashtag, pages = h.page, "page limit reached with new posts still coming: raise hashtags.max_pages");
    }
}
