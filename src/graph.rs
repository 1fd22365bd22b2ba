//! The Instagram Graph API: **the only module that knows Graph HTTP and JSON.**
//!
//! A [`Source`] answers the three calls the collector makes (`business_discovery`,
//! `ig_hashtag_search`, `recent_media`), either live over HTTP or from recorded response files
//! (`--replay`). Both go through [`decode`], so a replayed run exercises the same parsing as a live
//! one. Errors are decoded once, into a [`GraphError`] whose [`ErrorKind`] drives the pure retry
//! decision in [`retry`].

pub mod retry;
pub mod shapes;
pub mod usage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{GraphSettings, RetryPolicy};
use crate::records::Kind;
pub use retry::{classify, decide, Decision, ErrorKind};
pub use usage::Usage;

/// The Graph API access token. Its `Debug` and `Display` print nothing of it, and every message
/// that came from the network is scrubbed of it before it is kept, so it cannot reach a log.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(token.into().trim().to_string())
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces any occurrence of the token in `text`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() >= 8 && text.contains(&self.0) {
            text.replace(&self.0, "[redacted]")
        } else {
            text.to_string()
        }
    }

    /// `appsecret_proof`: hex HMAC-SHA256 of the token keyed by the app secret. Graph API apps
    /// that require it refuse calls without it; it proves the caller knows the app secret.
    pub fn appsecret_proof(&self, app_secret: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256>>::new_from_slice(app_secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(self.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl std::fmt::Display for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

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

/// A failed Graph call, after retries. Carries no token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}{}", self.detail())]
pub struct GraphError {
    pub kind: ErrorKind,
    /// Graph error code and subcode, when the API sent an error body.
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What happened, scrubbed of the token; for non-JSON bodies a short excerpt.
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
}

/// Decodes one response body. Errors can come with any status, or inside a 200.
pub fn decode(status: u16, body: &[u8], token: Option<&AccessToken>) -> Result<Value, GraphError> {
    let scrub = |s: &str| match token {
        Some(t) => t.scrub(s),
        None => s.to_string(),
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            if value.get("error").is_some() {
                let error = serde_json::from_value::<ErrorBody>(value)
                    .map(|b| b.error)
                    .map_err(|_| GraphError {
                        status: Some(status),
                        ..GraphError::local(
                            ErrorKind::BadResponse,
                            format!(
                                "unreadable error body: {}",
                                excerpt(&scrub(&String::from_utf8_lossy(body)))
                            ),
                        )
                    })?;
                let kind = classify(status, Some(&error));
                return Err(GraphError {
                    kind,
                    code: Some(error.code),
                    subcode: error.error_subcode,
                    status: Some(status),
                    message: scrub(&error.message),
                    fbtrace_id: error.fbtrace_id.clone(),
                    attempts: 1,
                    regain_after: None,
                });
            }
            if (200..300).contains(&status) {
                Ok(value)
            } else {
                Err(GraphError {
                    status: Some(status),
                    attempts: 1,
                    ..GraphError::local(
                        classify(status, None),
                        format!("HTTP {status} without an error object"),
                    )
                })
            }
        }
        Err(e) => {
            let kind = if status >= 500 {
                ErrorKind::Transient
            } else {
                ErrorKind::BadResponse
            };
            let what = if e.is_eof() {
                "cut-off JSON"
            } else {
                "a body that is not JSON"
            };
            Err(GraphError {
                status: Some(status),
                attempts: 1,
                ..GraphError::local(
                    kind,
                    format!(
                        "{what}: {}",
                        excerpt(&scrub(&String::from_utf8_lossy(body)))
                    ),
                )
            })
        }
    }
}

/// A short, single-line excerpt of a body for error messages.
fn excerpt(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if text.chars().count() > 120 {
        format!("{flat:?}…")
    } else {
        format!("{flat:?}")
    }
}

/// The `fields=` expression of `business_discovery`, derived from the record tables.
pub fn business_discovery_fields(username: &str, media_limit: u32) -> String {
    format!(
        "business_discovery.username({username}){{{},media.limit({media_limit}){{{}}}}}",
        Kind::Brand.api_fields(),
        Kind::Media.api_fields()
    )
}

/// Counters of one run's Graph traffic, for the summary and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GraphStats {
    /// HTTP requests sent (or replayed responses read), retries included.
    pub calls: u64,
    pub retries: u64,
    /// Calls answered with a throttling error.
    pub throttled: u64,
    /// The highest usage percentage any response header reported.
    pub max_usage_percent: u32,
    /// Optional calls (extra pages) not made because usage was high.
    pub optional_calls_skipped: u64,
}

/// Credentials of a live source: one Instagram business account and its token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The Instagram business account the calls are made as.
    pub ig_user_id: String,
    pub token: AccessToken,
    /// When set, every call carries `appsecret_proof`.
    pub app_secret: Option<AccessToken>,
}

/// Where Graph responses come from.
#[derive(Debug)]
pub enum Source {
    /// The Graph API over HTTP, with one or more credentials ("lanes"). Targets are spread over
    /// the lanes, so each credential's hourly budget adds to the schedule's.
    Live(Vec<LiveClient>),
    /// Recorded response bodies in a folder: `brands/{username}.json`,
    /// `hashtag_search/{hashtag}.json`, `hashtags/{hashtag}.json` then `hashtags/{hashtag}.{n}.json`
    /// for page n (each also as `.json.gz`). Raw captures use the same layout.
    Replay(PathBuf),
}

/// The HTTP side of one credential: built once per process, reused across runs.
#[derive(Debug)]
pub struct LiveClient {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    proof: Option<String>,
}

impl Source {
    /// A live source over one or more credentials. Fails only if the TLS stack cannot be set up.
    pub fn live(
        settings: &GraphSettings,
        credentials: Vec<Credentials>,
    ) -> Result<Source, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ig-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                GraphError::local(ErrorKind::Network, format!("HTTP client setup failed: {e}"))
            })?;
        let clients = credentials
            .into_iter()
            .map(|credentials| LiveClient {
                http: http.clone(),
                base: format!("{}/{}", settings.base_url, settings.api_version),
                proof: credentials
                    .app_secret
                    .as_ref()
                    .map(|secret| credentials.token.appsecret_proof(secret.expose())),
                credentials,
            })
            .collect();
        Ok(Source::Live(clients))
    }

    /// How many credentials calls are spread over (1 for replay).
    pub fn lanes(&self) -> usize {
        match self {
            Source::Live(c) => c.len().max(1),
            Source::Replay(_) => 1,
        }
    }

    /// Starts a run: its counters, its deadline and its stop switches.
    pub fn session<'a>(
        &'a self,
        policy: &'a RetryPolicy,
        settings: &'a GraphSettings,
        deadline: Option<Instant>,
    ) -> Session<'a> {
        Session {
            source: self,
            policy,
            settings,
            deadline,
            stats: Mutex::new(GraphStats::default()),
            calls: AtomicU64::new(0),
            max_usage: AtomicU32::new(0),
            stops: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            captured: Mutex::new(Vec::new()),
        }
    }
}

/// One response body as received, named as `--replay` reads it (`brands/dior.json`).
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub body: Vec<u8>,
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
    stats: Mutex<GraphStats>,
    calls: AtomicU64,
    max_usage: AtomicU32,
    /// The errors that stopped calls, repeated to every later call in their scope.
    stops: Mutex<Vec<(Scope, GraphError)>>,
    stopped: AtomicBool,
    captured: Mutex<Vec<Captured>>,
}

/// A call's role: optional calls (extra pages) are the first dropped under high usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

impl Session<'_> {
    /// The Graph traffic of this run so far.
    pub fn stats(&self) -> GraphStats {
        let mut s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.calls = self.calls.load(Ordering::Relaxed);
        s.max_usage_percent = self.max_usage.load(Ordering::Relaxed);
        s
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

    /// True when usage headers report at least the configured threshold.
    pub fn usage_is_high(&self) -> bool {
        self.max_usage.load(Ordering::Relaxed) >= self.policy.usage_threshold_percent
    }

    /// Time left before the run deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn client(&self, lane: usize) -> Option<(usize, &LiveClient)> {
        match self.source {
            Source::Live(c) if !c.is_empty() => Some((lane % c.len(), &c[lane % c.len()])),
            _ => None,
        }
    }

    /// True when responses come from recorded files.
    pub fn is_replay(&self) -> bool {
        matches!(self.source, Source::Replay(_))
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
        let capture = format!("brands/{username}.json");
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let fields = business_discovery_fields(username, self.settings.brand_media_limit);
                let path = format!("{}/{}", c.base, c.credentials.ig_user_id);
                self.get(
                    lane,
                    c,
                    &path,
                    vec![("fields", fields)],
                    Need::Required,
                    capture,
                )
                .await
            }
        }
    }

    /// `GET /ig_hashtag_search?user_id=…&q=…`: the id of a hashtag.
    pub async fn hashtag_search(&self, lane: usize, hashtag: &str) -> Result<String, GraphError> {
        let capture = format!("hashtag_search/{hashtag}.json");
        let body = match self.client(lane) {
            None => self.replay(&capture).await?,
            Some((lane, c)) => {
                let path = format!("{}/ig_hashtag_search", c.base);
                let query = vec![
                    ("user_id", c.credentials.ig_user_id.clone()),
                    ("q", hashtag.to_string()),
                ];
                self.get(lane, c, &path, query, Need::Required, capture)
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
        let capture = if page <= 1 {
            format!("hashtags/{hashtag}.json")
        } else {
            format!("hashtags/{hashtag}.{page}.json")
        };
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let path = format!("{}/{}/recent_media", c.base, hashtag_id);
                let mut query = vec![
                    ("user_id", c.credentials.ig_user_id.clone()),
                    ("fields", Kind::MediaHashtag.api_fields()),
                    ("limit", self.settings.hashtag_media_limit.to_string()),
                ];
                if let Some(a) = after {
                    query.push(("after", a.to_string()));
                }
                self.get(lane, c, &path, query, need, capture).await
            }
        }
    }

    /// `POST /debug_token` with `method=GET`: what the API knows of the token. The token goes in
    /// the form body (and the header), never in the URL.
    pub async fn debug_token(&self, lane: usize) -> Result<Value, GraphError> {
        let Some((lane, c)) = self.client(lane) else {
            return Err(GraphError::local(
                ErrorKind::Skipped,
                "no live credentials (replay)",
            ));
        };
        if let Some(e) = self.stopped_for(lane) {
            return Err(e);
        }
        let timeout = match self.time_left() {
            Some(t) if t.is_zero() => {
                return Err(GraphError::local(
                    ErrorKind::Deadline,
                    "run deadline reached before the token check",
                ))
            }
            Some(t) => t.min(self.settings.request_timeout),
            None => self.settings.request_timeout,
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let token = &c.credentials.token;
        let mut form = vec![
            ("method", "GET".to_string()),
            ("input_token", token.expose().to_string()),
        ];
        if let Some(p) = &c.proof {
            form.push(("appsecret_proof", p.clone()));
        }
        let response = c
            .http
            .post(format!("{}/debug_token", c.base))
            .bearer_auth(token.expose())
            .form(&form)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, token))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, token))?;
        let result = decode(status, &body, Some(token));
        if let Err(e) = &result {
            self.maybe_stop(lane, e);
        }
        result
    }

    /// Reads a recorded body (`.json` or `.json.gz`) and decodes it like a live one.
    async fn replay(&self, relative: &str) -> Result<Value, GraphError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Source::Replay(dir) = self.source else {
            return Err(GraphError::local(
                ErrorKind::Skipped,
                "no recorded responses",
            ));
        };
        let plain = dir.join(relative);
        let gz = dir.join(format!("{relative}.gz"));
        let bytes = match tokio::fs::read(&plain).await {
            Ok(b) => b,
            Err(_) => match tokio::fs::read(&gz).await {
                Ok(b) => gunzip(&b).map_err(|e| {
                    GraphError::local(
                        ErrorKind::BadResponse,
                        format!("{}: not gzip: {e}", gz.display()),
                    )
                })?,
                Err(_) => {
                    return Err(GraphError::local(
                        ErrorKind::NotFound,
                        format!("no recorded response {} (nor .gz)", plain.display()),
                    ))
                }
            },
        };
        self.capture(relative, &bytes);
        decode(200, &bytes, None)
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

    /// One logical call with retries, throttling and the deadline applied.
    async fn get(
        &self,
        lane: usize,
        c: &LiveClient,
        url: &str,
        mut query: Vec<(&str, String)>,
        need: Need,
        capture: String,
    ) -> Result<Value, GraphError> {
        if let Some(p) = &c.proof {
            query.push(("appsecret_proof", p.clone()));
        }
        if need == Need::Optional && self.usage_is_high() {
            self.skipped_optional();
            return Err(GraphError::local(
                ErrorKind::Skipped,
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
            let mut err = match self.send(c, url, &query, timeout, &capture).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
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
                    self.maybe_stop(lane, &err);
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

    async fn send(
        &self,
        c: &LiveClient,
        url: &str,
        query: &[(&str, String)],
        timeout: Duration,
        capture: &str,
    ) -> Result<Value, GraphError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let token = &c.credentials.token;
        let response = c
            .http
            .get(url)
            .query(query)
            .bearer_auth(token.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, token))?;
        let status = response.status().as_u16();
        let usage = Usage::from_headers(response.headers());
        self.max_usage
            .fetch_max(usage.max_percent(), Ordering::Relaxed);
        if usage.max_percent() >= self.policy.usage_threshold_percent {
            tracing::warn!(
                usage_percent = usage.max_percent(),
                "Graph API usage is high: optional calls stop"
            );
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, token))?;
        self.capture(
            capture,
            &token.scrub(&String::from_utf8_lossy(&body)).into_bytes(),
        );
        decode(status, &body, Some(token)).map_err(|mut e| {
            if e.kind == ErrorKind::Throttled {
                e.regain_after = usage.regain_after;
            }
            e
        })
    }
}

/// Decompresses a gzip body.
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn transport_error(e: reqwest::Error, token: &AccessToken) -> GraphError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    // Without the URL: it carries the appsecret_proof, and the token scrub covers the rest.
    let e = e.without_url();
    let mut message = token.scrub(&e.to_string());
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&token.scrub(&s.to_string()));
        source = s.source();
    }
    GraphError::local(kind, message)
}
