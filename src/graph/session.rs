//! One run's calls: the endpoints, and the one call path every endpoint goes through.
//!
//! A [`Session`] counts calls, reads usage headers, honours the run deadline, keeps every body
//! for the raw capture, stops further calls once a token is rejected or the API throttles, and
//! scrubs every error before it leaves. Every endpoint, `debug_token` included, goes through
//! `Session::call`, so none can skip the retries, the deadline, the usage reading or the
//! scrub. The endpoints whose `fields=` come from the record tables also leave out the fields
//! the API version no longer has, learning them from its refusals (`call_fields`, with the pure
//! `fields::removed_field` deciding), each call again through the same path. It must not know
//! the wire (that is `http`) nor decide retries itself (that is the pure [`decide`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::debug_token::{self, DebugToken};
use super::error::{decode, ErrorKind, GraphError};
use super::fields::{
    business_discovery_fields, recent_media_fields, removed_field, Endpoint, FieldRef, Omitted,
    Removed,
};
use super::http::{Answer, LiveClient, Request};
use super::replay::{self, read_recorded, Captured};
use super::retry::{decide, Decision};
use super::shapes;
use super::source::Source;
use super::token::Scrubber;
use super::usage::Usage;
use crate::config::{GraphSettings, RetryPolicy};
use crate::validate::Rules;

/// Counters of one run's Graph traffic, for the summary and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GraphStats {
    /// HTTP requests sent (or replayed responses read), retries included.
    pub calls: u64,
    pub retries: u64,
    /// Calls answered with a throttling error (a Graph rate-limit code or HTTP 429).
    pub throttled: u64,
    /// The highest usage percentage any response header reported.
    pub max_usage_percent: u32,
    /// Optional calls (extra pages) not made because usage was high.
    pub optional_calls_skipped: u64,
}

/// A call's role: optional calls (extra pages) are the first dropped under high usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// Which calls a stop applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The app is throttled as a whole (code 4): every lane.
    All,
    /// One credential: its token was rejected or its user is throttled (code 17).
    Lane(usize),
}

/// One run's view of a [`Source`]: it counts calls, honours the run deadline, keeps every body
/// for the raw capture, and stops further calls once a token is rejected or the app throttled.
#[derive(Debug)]
pub struct Session<'a> {
    source: &'a Source,
    policy: &'a RetryPolicy,
    settings: &'a GraphSettings,
    deadline: Option<Instant>,
    /// Every secret of every credential, applied to every body and error.
    scrubber: Scrubber,
    stats: Mutex<GraphStats>,
    calls: AtomicU64,
    max_usage: AtomicU32,
    /// The errors that stopped calls, repeated to every later call in their scope.
    stops: Mutex<Vec<(Scope, GraphError)>>,
    stopped: AtomicBool,
    captured: Mutex<Vec<Captured>>,
    /// HTTP requests sent per lane, retries included (the hashtags job books them).
    lane_calls: Mutex<std::collections::BTreeMap<usize, u64>>,
    /// The most requests a lane may still send, retries included, when the run booked its
    /// calls before making them ([`Session::limit_calls`]); no entry: no limit.
    allowance: Mutex<std::collections::BTreeMap<usize, u64>>,
    /// The fields every request leaves out because the API version no longer has them: those
    /// earlier runs found ([`Session::omit`]) and those this run found.
    omitted: Mutex<Omitted>,
    /// The fields the API refused this run (code 100, "nonexisting field"), ids included, in the
    /// order refused.
    refused: Mutex<Vec<FieldRef>>,
}

impl Source {
    /// Starts a run over this source: its counters, its deadline and its stop switches. Here
    /// rather than in `source`, so that a source knows nothing of the runs made over it.
    pub fn session<'a>(
        &'a self,
        policy: &'a RetryPolicy,
        settings: &'a GraphSettings,
        deadline: Option<Instant>,
    ) -> Session<'a> {
        Session::new(self, policy, settings, deadline)
    }
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        source: &'a Source,
        policy: &'a RetryPolicy,
        settings: &'a GraphSettings,
        deadline: Option<Instant>,
    ) -> Session<'a> {
        Session {
            source,
            policy,
            settings,
            deadline,
            scrubber: source.scrubber(),
            stats: Mutex::new(GraphStats::default()),
            calls: AtomicU64::new(0),
            max_usage: AtomicU32::new(0),
            stops: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            captured: Mutex::new(Vec::new()),
            lane_calls: Mutex::new(std::collections::BTreeMap::new()),
            allowance: Mutex::new(std::collections::BTreeMap::new()),
            omitted: Mutex::new(Omitted::default()),
            refused: Mutex::new(Vec::new()),
        }
    }
}

impl Session<'_> {
    /// The Graph traffic of this run so far.
    pub fn stats(&self) -> GraphStats {
        let mut s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.calls = self.calls.load(Ordering::Relaxed);
        s.max_usage_percent = self.max_usage.load(Ordering::Relaxed);
        s
    }

    /// Limits the requests `lane` may still send, retries included, to `calls`: what the run
    /// booked for it before its first call. A request past it is not sent
    /// (`ErrorKind::BudgetSpent`), so no run can spend more than it booked, however the API
    /// fails or pages.
    pub fn limit_calls(&self, lane: usize, calls: u64) {
        if let Ok(mut a) = self.allowance.lock() {
            a.insert(lane, calls);
        }
    }

    /// Leaves `fields` out of every request from now on: what earlier runs found the API
    /// version no longer has, so this run's first calls do not trip over them again.
    pub fn omit(&self, fields: &Omitted) {
        if let Ok(mut o) = self.omitted.lock() {
            for f in fields.iter() {
                o.insert(*f);
            }
        }
    }

    /// The fields requests leave out now: found removed by earlier runs or by this one.
    pub fn omitted(&self) -> Omitted {
        self.omitted.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The fields the API refused this run (code 100, "nonexisting field"), in the order
    /// refused: those left out since, and a records' id that failed its call.
    pub fn refused_this_run(&self) -> Vec<FieldRef> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// `base` with the fields requests leave out: validation counts a record lacking one as
    /// `removed_by_api`, not as an ordinary missing field.
    pub fn rules(&self, base: &Rules) -> Rules {
        let mut rules = base.clone();
        rules.removed_by_api = self.omitted().by_kind();
        rules
    }

    /// Records that the API no longer has `field`; every later request leaves it out unless it
    /// is an id. Said once per field and run.
    fn note_refused(&self, field: FieldRef) {
        let first = self.refused.lock().is_ok_and(|mut r| {
            let first = !r.contains(&field);
            if first {
                r.push(field);
            }
            first
        });
        if let Ok(mut o) = self.omitted.lock() {
            o.insert(field);
        }
        if first && !field.is_identity() {
            tracing::warn!(
                api_version = %self.settings.api_version,
                endpoint = field.endpoint().name(),
                field = %field.qualified(),
                "the Graph API version no longer has this field (code 100, nonexisting field): it is left out of the requests and written as its default (removed_by_api); check Meta's changelog, run `ig-collector check-api` (with --api-version to try another version), then update graph.api_version or the fields"
            );
        }
    }

    /// Requests `lane` may still send under its limit (`None`: not limited).
    pub fn calls_left(&self, lane: usize) -> Option<u64> {
        self.allowance.lock().ok()?.get(&lane).copied()
    }

    /// Takes one request from `lane`'s limit; false when it is spent.
    fn take_call(&self, lane: usize) -> bool {
        let Ok(mut a) = self.allowance.lock() else {
            return false;
        };
        match a.get_mut(&lane) {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// HTTP requests sent on `lane` so far, retries included.
    pub fn calls_on(&self, lane: usize) -> u64 {
        self.lane_calls
            .lock()
            .map(|c| c.get(&lane).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Counts an optional call not made (page budget or high usage).
    pub fn skipped_optional(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.optional_calls_skipped += 1;
        }
    }

    /// Lanes whose token was rejected, with the error.
    pub fn rejected_tokens(&self) -> Vec<(usize, GraphError)> {
        let stops = self.stops.lock().map(|s| s.clone()).unwrap_or_default();
        stops
            .into_iter()
            .filter_map(|(scope, e)| match scope {
                Scope::Lane(l) if e.kind == ErrorKind::Token => Some((l, e)),
                _ => None,
            })
            .collect()
    }

    /// True when every lane's token was rejected: nothing this run can succeed.
    pub fn all_tokens_rejected(&self) -> bool {
        let rejected = self.rejected_tokens();
        !rejected.is_empty()
            && (0..self.source.lanes()).all(|l| rejected.iter().any(|(r, _)| *r == l))
    }

    /// The bodies received so far, for the raw capture.
    pub fn take_captured(&self) -> Vec<Captured> {
        self.captured
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// Takes the body captured under `path` (a [`replay`] name such as `brands/dior.json`), so
    /// that a caller writing it at once does not keep it until the end of the run.
    pub fn take_capture(&self, path: &str) -> Option<Captured> {
        let mut captured = self.captured.lock().ok()?;
        let i = captured.iter().position(|c| c.path == path)?;
        Some(captured.remove(i))
    }

    /// Adds a file to the raw capture (what the run knew beside the bodies it received).
    pub fn add_capture(&self, path: &str, body: &[u8]) {
        self.capture(path, body);
    }

    /// True when usage headers report at least the configured threshold.
    pub fn usage_is_high(&self) -> bool {
        self.max_usage.load(Ordering::Relaxed) >= self.policy.usage_threshold_percent
    }

    /// Time left before the run deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(super) fn client(&self, lane: usize) -> Option<(usize, &LiveClient)> {
        match self.source {
            Source::Live(c) if !c.is_empty() => Some((lane % c.len(), &c[lane % c.len()])),
            _ => None,
        }
    }

    /// True when responses come from recorded files.
    pub fn is_replay(&self) -> bool {
        matches!(self.source, Source::Replay(_))
    }

    /// How many credentials (lanes) the run has.
    pub fn lanes(&self) -> usize {
        self.source.lanes()
    }

    /// The account a lane's calls are made as (for messages).
    pub fn lane_user(&self, lane: usize) -> Option<&str> {
        self.client(lane)
            .map(|(_, c)| c.credentials.ig_user_id.as_str())
    }

    /// `GET /{ig-user-id}?fields=business_discovery.username(…){…}`: a profile and its latest media.
    pub async fn business_discovery(
        &self,
        lane: usize,
        username: &str,
    ) -> Result<Value, GraphError> {
        let capture = replay::brand_path(username);
        self.discover(lane, username, None, Need::Required, capture)
            .await
    }

    /// `business_discovery` with its media from the cursor `after` on
    /// (`media.after(…).limit(n)`): page `page` (2 or more) of the brands job's lookback or
    /// backfill. An optional call (dropped when usage is high), through the same call path as
    /// every other.
    pub async fn business_discovery_page(
        &self,
        lane: usize,
        username: &str,
        after: &str,
        page: u32,
    ) -> Result<Value, GraphError> {
        let capture = replay::brand_page_path(username, page);
        self.discover(lane, username, Some(after), Need::Optional, capture)
            .await
    }

    /// One `business_discovery` call of `username`'s profile and media (from `after` on),
    /// replayed from `capture` when there is no live client.
    async fn discover(
        &self,
        lane: usize,
        username: &str,
        after: Option<&str>,
        need: Need,
        capture: String,
    ) -> Result<Value, GraphError> {
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let limit = self.settings.brand_media_limit;
                let request = |omitted: &Omitted| Request::Get {
                    path: c.credentials.ig_user_id.clone(),
                    query: vec![(
                        "fields",
                        business_discovery_fields(username, limit, after, omitted),
                    )],
                };
                self.call_fields(Endpoint::BusinessDiscovery, lane, c, request, need, capture)
                    .await
            }
        }
    }

    /// `GET /ig_hashtag_search?user_id=…&q=…`: the id of a hashtag.
    pub async fn hashtag_search(&self, lane: usize, hashtag: &str) -> Result<String, GraphError> {
        let capture = replay::hashtag_search_path(hashtag);
        let body = match self.client(lane) {
            None => self.replay(&capture).await?,
            Some((lane, c)) => {
                let request = Request::Get {
                    path: "ig_hashtag_search".into(),
                    query: vec![
                        ("user_id", c.credentials.ig_user_id.clone()),
                        ("q", hashtag.to_string()),
                    ],
                };
                self.call(lane, c, request, Need::Required, Some(capture))
                    .await?
            }
        };
        shapes::hashtag_search_id(&body).ok_or_else(|| GraphError {
            attempts: 1,
            ..GraphError::local(
                ErrorKind::NotFound,
                format!("ig_hashtag_search found no id for #{hashtag}"),
            )
        })
    }

    /// `GET /{hashtag-id}/recent_media?user_id=…&fields=…&limit=…[&after=…]`: page `page` (1-based).
    pub async fn recent_media(
        &self,
        lane: usize,
        hashtag: &str,
        hashtag_id: &str,
        after: Option<&str>,
        page: u32,
        need: Need,
    ) -> Result<Value, GraphError> {
        let capture = replay::recent_media_path(hashtag, page);
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let request = |omitted: &Omitted| {
                    let mut query = vec![
                        ("user_id", c.credentials.ig_user_id.clone()),
                        ("fields", recent_media_fields(omitted)),
                        ("limit", self.settings.hashtag_media_limit.to_string()),
                    ];
                    if let Some(a) = after {
                        query.push(("after", a.to_string()));
                    }
                    Request::Get {
                        path: format!("{hashtag_id}/recent_media"),
                        query,
                    }
                };
                let endpoint = Endpoint::RecentMedia;
                self.call_fields(endpoint, lane, c, request, need, capture)
                    .await
            }
        }
    }

    /// `POST /debug_token` with `method=GET`: what the API knows of the token, read by
    /// [`debug_token::read`]. The token goes in the form body (and the header), never in the
    /// URL. Retried, throttled and bounded by the deadline like every other call; its body is
    /// not captured (it is not collected data).
    pub async fn debug_token(&self, lane: usize) -> Result<DebugToken, GraphError> {
        let Some((lane, c)) = self.client(lane) else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no live credentials (replay)",
            ));
        };
        let request = Request::Form {
            path: "debug_token".into(),
            form: vec![
                ("method", "GET".to_string()),
                ("input_token", c.credentials.token.expose().to_string()),
            ],
        };
        let body = self.call(lane, c, request, Need::Required, None).await?;
        debug_token::read(&body)
    }

    /// Reads a recorded body (`.json` or `.json.gz`) and decodes it like a live one.
    async fn replay(&self, relative: &str) -> Result<Value, GraphError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Source::Replay(dir) = self.source else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no recorded responses",
            ));
        };
        match read_recorded(dir, relative, self.settings.max_body_bytes) {
            Ok(Some(bytes)) => {
                self.capture(relative, &bytes);
                decode(200, &bytes, None)
            }
            Ok(None) => Err(GraphError::local(
                ErrorKind::NotFound,
                format!(
                    "no recorded response {} (nor .gz)",
                    dir.join(relative).display()
                ),
            )),
            Err(e) => Err(GraphError::local(ErrorKind::BadResponse, e)),
        }
    }

    fn capture(&self, path: &str, body: &[u8]) {
        if let Ok(mut c) = self.captured.lock() {
            // A retried call keeps the body that decided its outcome: the last one.
            c.retain(|x| x.path != path);
            c.push(Captured {
                path: path.to_string(),
                body: body.to_vec(),
            });
        }
    }

    fn stopped_for(&self, lane: usize) -> Option<GraphError> {
        if !self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let stops = self.stops.lock().ok()?;
        stops
            .iter()
            .find(|(scope, _)| *scope == Scope::All || *scope == Scope::Lane(lane))
            .map(|(_, e)| GraphError {
                attempts: 0,
                ..e.clone()
            })
    }

    /// A call whose `fields=` comes from the record tables, through [`Session::call`]: when the
    /// API answers that the version no longer has a field the request named (code 100,
    /// "nonexisting field") and the records can do without it, the field is left out from then
    /// on and the call made again, once per field removed. Each call goes through the one call
    /// path, so it is counted and booked like any other and stops when the run's calls are
    /// spent; there are never more of them than fields the request could leave out. A request
    /// that loses the records' id fails with [`ErrorKind::IdRemoved`]; any other error is
    /// returned as it came.
    async fn call_fields(
        &self,
        endpoint: Endpoint,
        lane: usize,
        c: &LiveClient,
        request: impl Fn(&Omitted) -> Request,
        need: Need,
        capture: String,
    ) -> Result<Value, GraphError> {
        let mut omitted = self.omitted();
        let bound = omitted.droppable_left(endpoint);
        let mut calls_again = 0;
        loop {
            let err = match self
                .call(lane, c, request(&omitted), need, Some(capture.clone()))
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // Judged against what this request asked for: a concurrent call may have found the
            // same field removed meanwhile.
            match removed_field(endpoint, &omitted, err.code, &err.message) {
                Some(Removed::Droppable(field)) if calls_again < bound => {
                    self.note_refused(field);
                    omitted = self.omitted();
                    calls_again += 1;
                }
                Some(Removed::Identity(field)) => {
                    self.note_refused(field);
                    return Err(GraphError {
                        kind: ErrorKind::IdRemoved,
                        message: format!(
                            "Graph API {} no longer has `{}` on {} ({}): without the records' id nothing can be written; check Meta's changelog and run `ig-collector check-api --api-version …` to find a version that has it, then update graph.api_version",
                            self.settings.api_version,
                            field.qualified(),
                            endpoint.name(),
                            err.message
                        ),
                        ..err
                    });
                }
                _ => return Err(err),
            }
        }
    }

    /// The one call path: one logical call with the usage gate, the stop switches, the
    /// deadline, retries and throttling applied. Every error it returns is scrubbed.
    pub(super) async fn call(
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
                Decision::RetryAfter(delay) => {
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
            }
        }
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

    /// A rejected token (190) stops its credential's calls; a throttled app (code 4) stops every
    /// call and a throttled user (17) its credential's, so a throttled API is not hammered by the
    /// remaining targets.
    fn maybe_stop(&self, lane: usize, err: &GraphError) {
        let scope = match (err.kind, err.code) {
            (ErrorKind::Token, _) => Scope::Lane(lane),
            (ErrorKind::Throttled, Some(4)) => Scope::All,
            (ErrorKind::Throttled, Some(17)) => Scope::Lane(lane),
            _ => return,
        };
        if let Ok(mut s) = self.stops.lock() {
            if !s.iter().any(|(sc, _)| *sc == scope) {
                s.push((scope, err.clone()));
            }
        }
        self.stopped.store(true, Ordering::Relaxed);
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
