//! Configuration: `configure.toml` (embedded in the binaries at build time, or the file named by
//! `CONFIG_PATH`) plus a few environment overrides, checked once into a [`Config`] before anything
//! runs.
//!
//! Every problem is collected and reported at once, each naming the file and the key, so an
//! operator fixes a bad file in one round instead of one error per deploy.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The repository's `configure.toml`, compiled in so a Lambda needs no file next to it.
pub const EMBEDDED: &str = include_str!("../configure.toml");
/// How the embedded file is named in error messages.
pub const EMBEDDED_NAME: &str = "configure.toml (embedded)";

/// The oldest Graph API major version we accept: older ones are expired or close to it.
const MIN_API_MAJOR: u32 = 24;

/// One problem in the configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`graph.concurrency`, `targets[3].user_id`) or environment variable name.
    pub key: String,
    pub message: String,
}

/// The configuration could not be used. Lists every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `configure.toml (embedded)`) the problems are in.
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}: ", self.file)?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

pub use crate::records::Format;
pub use crate::validate::is_digits;

// ---------------------------------------------------------------------------------------------
// The file, as written. Field docs are the user documentation; defaults sit beside the fields.

#[derive(Debug, Deserialize)]
struct FileConfig {
    graph: GraphSection,
    #[serde(default)]
    retry: RetrySection,
    #[serde(default)]
    output: OutputSection,
    #[serde(default)]
    hashtags: HashtagsSection,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    validation: ValidationSection,
    #[serde(default)]
    sink: SinkSection,
    #[serde(default)]
    targets: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
struct SinkSection {
    #[serde(default = "default_sink_connect_timeout_secs")]
    connect_timeout_secs: u64,
    #[serde(default = "default_sink_operation_timeout_secs")]
    operation_timeout_secs: u64,
    #[serde(default = "default_sink_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_sink_conflict_retries")]
    conflict_retries: u32,
}

impl Default for SinkSection {
    fn default() -> Self {
        SinkSection {
            connect_timeout_secs: default_sink_connect_timeout_secs(),
            operation_timeout_secs: default_sink_operation_timeout_secs(),
            max_attempts: default_sink_max_attempts(),
            conflict_retries: default_sink_conflict_retries(),
        }
    }
}

fn default_sink_connect_timeout_secs() -> u64 {
    3
}
fn default_sink_operation_timeout_secs() -> u64 {
    10
}
fn default_sink_max_attempts() -> u32 {
    3
}
fn default_sink_conflict_retries() -> u32 {
    5
}

#[derive(Debug, Deserialize, Default)]
struct ValidationSection {
    media_types: Option<Vec<String>>,
    media_product_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct HashtagsSection {
    #[serde(default = "default_max_pages")]
    max_pages: u32,
    #[serde(default = "default_extra_pages_per_hour")]
    extra_pages_per_hour: u32,
    #[serde(default = "default_runs_per_hour")]
    runs_per_hour: u32,
    #[serde(default = "default_known_window_mins")]
    known_window_mins: u64,
    #[serde(default = "default_state_key")]
    state_key: String,
}

impl Default for HashtagsSection {
    fn default() -> Self {
        HashtagsSection {
            max_pages: default_max_pages(),
            extra_pages_per_hour: default_extra_pages_per_hour(),
            runs_per_hour: default_runs_per_hour(),
            known_window_mins: default_known_window_mins(),
            state_key: default_state_key(),
        }
    }
}

fn default_max_pages() -> u32 {
    4
}
fn default_extra_pages_per_hour() -> u32 {
    36
}
fn default_runs_per_hour() -> u32 {
    12
}
fn default_known_window_mins() -> u64 {
    180
}
fn default_state_key() -> String {
    "state/hashtags.json".to_string()
}

#[derive(Debug, Deserialize)]
struct BudgetSection {
    #[serde(default = "default_calls_per_hour")]
    calls_per_hour_per_credential: u32,
    #[serde(default = "default_brands_runs_per_hour")]
    brands_runs_per_hour: u32,
}

impl Default for BudgetSection {
    fn default() -> Self {
        BudgetSection {
            calls_per_hour_per_credential: default_calls_per_hour(),
            brands_runs_per_hour: default_brands_runs_per_hour(),
        }
    }
}

fn default_calls_per_hour() -> u32 {
    200
}
fn default_brands_runs_per_hour() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
struct GraphSection {
    api_version: String,
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default = "default_concurrency")]
    concurrency: u32,
    #[serde(default = "default_request_timeout_secs")]
    request_timeout_secs: u64,
    #[serde(default = "default_brand_media_limit")]
    brand_media_limit: u32,
    #[serde(default = "default_hashtag_media_limit")]
    hashtag_media_limit: u32,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
}

fn default_base_url() -> String {
    "https://graph.facebook.com".to_string()
}
fn default_concurrency() -> u32 {
    16
}
fn default_request_timeout_secs() -> u64 {
    20
}
fn default_brand_media_limit() -> u32 {
    25
}
fn default_hashtag_media_limit() -> u32 {
    50
}
fn default_max_body_bytes() -> u64 {
    8 * 1024 * 1024
}

#[derive(Debug, Deserialize)]
struct RetrySection {
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_base_delay_ms")]
    base_delay_ms: u64,
    #[serde(default = "default_max_delay_ms")]
    max_delay_ms: u64,
    #[serde(default = "default_usage_threshold_percent")]
    usage_threshold_percent: u32,
    #[serde(default = "default_deadline_margin_secs")]
    deadline_margin_secs: u64,
    #[serde(default = "default_max_throttle_wait_secs")]
    max_throttle_wait_secs: u64,
}

impl Default for RetrySection {
    fn default() -> Self {
        RetrySection {
            max_attempts: default_max_attempts(),
            base_delay_ms: default_base_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
            usage_threshold_percent: default_usage_threshold_percent(),
            deadline_margin_secs: default_deadline_margin_secs(),
            max_throttle_wait_secs: default_max_throttle_wait_secs(),
        }
    }
}

fn default_max_attempts() -> u32 {
    4
}
fn default_base_delay_ms() -> u64 {
    500
}
fn default_max_delay_ms() -> u64 {
    8000
}
fn default_usage_threshold_percent() -> u32 {
    80
}
fn default_deadline_margin_secs() -> u64 {
    8
}
fn default_max_throttle_wait_secs() -> u64 {
    120
}

#[derive(Debug, Deserialize)]
struct OutputSection {
    #[serde(default = "default_format")]
    format: String,
    #[serde(default = "default_brand_key")]
    brand_key: String,
    #[serde(default = "default_media_key")]
    media_key: String,
    #[serde(default = "default_media_hashtag_key")]
    media_hashtag_key: String,
    #[serde(default = "default_raw_capture")]
    raw_capture: bool,
    #[serde(default = "default_raw_capture_key")]
    raw_capture_key: String,
}

fn default_raw_capture() -> bool {
    true
}
fn default_raw_capture_key() -> String {
    "raw_api/{job}/{%Y-%m-%d}/{%Y-%m-%d_%H%M%S}".to_string()
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            format: default_format(),
            brand_key: default_brand_key(),
            media_key: default_media_key(),
            media_hashtag_key: default_media_hashtag_key(),
            raw_capture: default_raw_capture(),
            raw_capture_key: default_raw_capture_key(),
        }
    }
}

fn default_format() -> String {
    "json".to_string()
}
fn default_brand_key() -> String {
    "raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json".to_string()
}
fn default_media_key() -> String {
    "raw/media_{%Y-%m-%d}/media_{%Y-%m-%d_%H%M%S}.json".to_string()
}
fn default_media_hashtag_key() -> String {
    "raw/media_hashtag_{%Y-%m-%d}/media_hashtag_{%Y-%m-%d_%H%M%S}.json".to_string()
}

#[derive(Debug, Deserialize)]
struct TargetEntry {
    username: String,
    user_id: String,
    hashtag: String,
    #[serde(default)]
    hashtag_id: String,
}

// ---------------------------------------------------------------------------------------------
// The checked configuration the rest of the program uses.

/// A checked configuration. Built only by [`Config::parse`] / [`Config::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub file: String,
    pub graph: GraphSettings,
    pub retry: RetryPolicy,
    pub output: OutputSettings,
    pub hashtags: HashtagSettings,
    pub budget: BudgetSettings,
    /// The allowed values of the closed-list fields.
    pub validation: crate::validate::Rules,
    pub sink: SinkSettings,
    pub targets: Vec<Target>,
}

/// How the hashtags job pages and remembers what it has seen.
#[derive(Debug, Clone)]
pub struct HashtagSettings {
    /// Pages per hashtag per run, the first included.
    pub max_pages: u32,
    /// Extra pages (beyond each hashtag's first) the schedule may spend per hour, all hashtags
    /// together; a run may spend `extra_pages_per_hour / runs_per_hour` of them.
    pub extra_pages_per_hour: u32,
    /// How often the hashtags job runs (12: every 5 minutes).
    pub runs_per_hour: u32,
    /// How far behind the newest post ids are remembered, to recognise posts already written.
    pub known_window: Duration,
    /// Object key of the per-hashtag state (ids, watermark, resolved hashtag ids).
    pub state_key: String,
}

impl HashtagSettings {
    /// Extra pages one run may fetch, over all hashtags.
    pub fn extra_pages_per_run(&self) -> u32 {
        self.extra_pages_per_hour / self.runs_per_hour.max(1)
    }
}

/// The hourly call budget the schedule must fit.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    pub calls_per_hour_per_credential: u32,
    pub brands_runs_per_hour: u32,
}

/// The schedule's calls per hour against the budget, with the arithmetic for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub calls_per_hour: u64,
    pub limit: u64,
    pub arithmetic: String,
}

#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub api_version: String,
    /// Base URL without trailing slash.
    pub base_url: String,
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub brand_media_limit: u32,
    pub hashtag_media_limit: u32,
    /// The largest response body read; a larger one fails its target (the functions have 128 MB).
    pub max_body_bytes: u64,
}

/// How the sink talks to S3: every call is bounded, so a stalled S3 cannot outlive the invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    pub connect_timeout: Duration,
    /// One S3 call, retries included, and also the run's time left before its hard end.
    pub operation_timeout: Duration,
    /// Attempts per S3 call (the SDK's standard retry).
    pub max_attempts: u32,
    /// How often a conditional write that lost a race is merged again and retried.
    pub conflict_retries: u32,
}

/// How Graph calls are retried; read by the pure decision in `graph::retry`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub usage_threshold_percent: u32,
    pub deadline_margin: Duration,
    /// The longest a throttled call waits for the API's announced regain time.
    pub max_throttle_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub format: Format,
    pub brand_key: KeyTemplate,
    pub media_key: KeyTemplate,
    pub media_hashtag_key: KeyTemplate,
    /// Store every Graph response body, gzip-compressed, under `raw_capture_key`.
    pub raw_capture: bool,
    /// Folder key of a run's raw capture; `{job}` is the job name.
    pub raw_capture_key: KeyTemplate,
}

/// One tracked account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub username: String,
    /// The account's Instagram user id; `media_hashtag.user_id` carries it.
    pub user_id: String,
    /// Tracked hashtag, without `#`.
    pub hashtag: String,
    /// Pinned id of the hashtag, when known.
    pub hashtag_id: Option<String>,
}

/// An object key pattern: literal text with `{strftime}` holes filled from the scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
}

impl KeyTemplate {
    /// Checks the pattern: balanced braces, valid strftime items, no absolute path or `..`.
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let source_text = source;
        let replaced = source.replace("{job}", "job");
        let source = replaced.as_str();
        if source.is_empty() {
            return Err("is empty".into());
        }
        if source.starts_with('/') || source.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(format!(
                "`{source}` must be a relative key without empty or `..` segments"
            ));
        }
        let mut rest = source;
        let mut holes = 0;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("`{source}` has a `}}` without `{{`"));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{source}` has a `{{` without `}}`"))?;
            let pattern = &after[..close];
            if pattern.is_empty() || pattern.contains('{') {
                return Err(format!("`{source}` has an empty or nested `{{}}`"));
            }
            if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                return Err(format!("`{{{pattern}}}` is not a valid strftime pattern"));
            }
            holes += 1;
            rest = &after[close + 1..];
        }
        if holes == 0 {
            return Err(format!(
                "`{source}` has no `{{%...}}` time hole: every run would overwrite the same key"
            ));
        }
        Ok(KeyTemplate {
            source: source_text.to_string(),
        })
    }

    /// The key for a job's run: `{job}` becomes the job name, then the time holes are filled.
    pub fn render_for(&self, job: &str, at: DateTime<Utc>) -> String {
        KeyTemplate {
            source: self.source.replace("{job}", job),
        }
        .render(at)
    }

    /// The key for a run scheduled at `at`. Pure: the same time always gives the same key, which
    /// is what makes a redelivered event overwrite its own objects instead of adding new ones.
    pub fn render(&self, at: DateTime<Utc>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        let mut rest = self.source.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            // `parse` guarantees the closing brace.
            let close = after.find('}').unwrap_or(after.len());
            out.push_str(&at.format(&after[..close]).to_string());
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Environment overrides, read once; tests build one by hand instead of setting variables.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub graph_api_url: Option<String>,
    pub graph_api_version: Option<String>,
    pub output_format: Option<String>,
}

impl Overrides {
    /// `GRAPH_API_URL`, `GRAPH_API_VERSION`, `OUTPUT_FORMAT`; empty values count as unset.
    pub fn from_env() -> Overrides {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Overrides {
            graph_api_url: var("GRAPH_API_URL"),
            graph_api_version: var("GRAPH_API_VERSION"),
            output_format: var("OUTPUT_FORMAT"),
        }
    }
}

impl Config {
    /// Loads `CONFIG_PATH` if set, else the embedded file, then applies the environment overrides.
    pub fn load() -> Result<Config, ConfigError> {
        let overrides = Overrides::from_env();
        match std::env::var("CONFIG_PATH") {
            Ok(path) if !path.trim().is_empty() => Config::load_file(Path::new(&path), &overrides),
            _ => Config::parse(EMBEDDED, EMBEDDED_NAME, &overrides),
        }
    }

    /// Loads a file from disk.
    pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            problems: vec![Problem {
                key: "CONFIG_PATH".into(),
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Config::parse(&text, &name, overrides)
    }

    /// Parses and checks a configuration text. `file` names it in errors.
    pub fn parse(text: &str, file: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            file: file.to_string(),
            problems,
        };
        // Unknown keys are collected (all of them) by a first pass, before the typed parse reports
        // the first type error with its line; serde's `deny_unknown_fields` would stop at the
        // first unknown key.
        let mut unknown = Vec::new();
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                key: "(syntax)".into(),
                message: toml_message(text, &e),
            }])
        })?;
        let _: Result<FileConfig, _> =
            serde_ignored::deserialize(toml::Value::Table(table.clone()), |path| {
                unknown.push(path.to_string())
            });
        if !unknown.is_empty() {
            return Err(fail(
                unknown
                    .into_iter()
                    .map(|k| Problem {
                        key: k,
                        message: "unknown key".into(),
                    })
                    .collect(),
            ));
        }
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .and_then(|s| key_at(text, s.start))
                .unwrap_or_else(|| "(value)".into());
            fail(vec![Problem {
                key,
                message: toml_message(text, &e),
            }])
        })?;
        let mut problems = Vec::new();
        let config = check(raw, overrides, &mut problems, file);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }

    /// The schedule's Graph calls per hour against the budget of `credentials` credentials:
    /// accounts × brands runs + hashtags × hashtag runs + the extra-page allowance. Hashtag
    /// searches are not counted: ids are resolved once and kept.
    pub fn budget_use(&self, credentials: usize) -> BudgetUse {
        let accounts = self.targets.len() as u64;
        let b = &self.budget;
        let h = &self.hashtags;
        let calls = accounts * b.brands_runs_per_hour as u64
            + accounts * h.runs_per_hour as u64
            + h.extra_pages_per_hour as u64;
        let limit = b.calls_per_hour_per_credential as u64 * credentials.max(1) as u64;
        BudgetUse {
            calls_per_hour: calls,
            limit,
            arithmetic: format!(
                "{accounts} accounts × {} brands run/h + {accounts} hashtags × {} runs/h + {} extra pages/h = {calls} calls/h; budget {} calls/h × {} credential(s) = {limit}",
                b.brands_runs_per_hour, h.runs_per_hour, h.extra_pages_per_hour, b.calls_per_hour_per_credential, credentials.max(1)
            ),
        }
    }

    /// Refuses a schedule above the hourly call budget, showing the arithmetic.
    pub fn check_budget(&self, credentials: usize) -> Result<BudgetUse, ConfigError> {
        let used = self.budget_use(credentials);
        if used.calls_per_hour > used.limit {
            return Err(ConfigError {
                file: self.file.clone(),
                problems: vec![Problem {
                    key: "budget".into(),
                    message: format!(
                        "the schedule is over the Graph API budget: {}. Lower hashtags.extra_pages_per_hour or hashtags.runs_per_hour, track fewer targets, or add credentials",
                        used.arithmetic
                    ),
                }],
            });
        }
        Ok(used)
    }

    /// The key template of a record kind.
    pub fn key_template(&self, kind: crate::records::Kind) -> &KeyTemplate {
        use crate::records::Kind;
        match kind {
            Kind::Brand => &self.output.brand_key,
            Kind::Media => &self.output.media_key,
            Kind::MediaHashtag => &self.output.media_hashtag_key,
        }
    }
}

/// The dotted key whose value starts at byte `offset`: the `key =` of that line under the
/// nearest `[section]` or `[[section]]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let mut section = None;
    let mut index: i64 = -1;
    for l in before.lines() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            if section.as_deref() == Some(name) {
                index += 1;
            } else {
                index = 0;
            }
            section = Some(name.to_string());
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = Some(name.to_string());
            index = -1;
        }
    }
    Some(match section {
        Some(s) if index >= 0 => format!("{s}[{index}].{key}"),
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

fn check(raw: FileConfig, o: &Overrides, problems: &mut Vec<Problem>, _file: &str) -> Config {
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_string(),
            message,
        })
    };

    let (version_key, api_version) = match &o.graph_api_version {
        Some(v) => ("GRAPH_API_VERSION (environment)", v.clone()),
        None => ("graph.api_version", raw.graph.api_version.clone()),
    };
    if let Err(m) = check_api_version(&api_version) {
        bad(version_key, m);
    }
    let (url_key, base_url) = match &o.graph_api_url {
        Some(v) => ("GRAPH_API_URL (environment)", v.clone()),
        None => ("graph.base_url", raw.graph.base_url.clone()),
    };
    if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
        || !validator::ValidateUrl::validate_url(&base_url)
    {
        bad(url_key, format!("`{base_url}` is not an http(s) URL"));
    }
    let g = &raw.graph;
    if !(1..=64).contains(&g.concurrency) {
        bad(
            "graph.concurrency",
            format!("{} is not in 1..=64", g.concurrency),
        );
    }
    if !(1..=300).contains(&g.request_timeout_secs) {
        bad(
            "graph.request_timeout_secs",
            format!("{} is not in 1..=300", g.request_timeout_secs),
        );
    }
    if !(1..=100).contains(&g.brand_media_limit) {
        bad(
            "graph.brand_media_limit",
            format!("{} is not in 1..=100", g.brand_media_limit),
        );
    }
    if !(1..=50).contains(&g.hashtag_media_limit) {
        bad(
            "graph.hashtag_media_limit",
            format!(
                "{} is not in 1..=50 (the API's page limit)",
                g.hashtag_media_limit
            ),
        );
    }

    if !(64 * 1024..=256 * 1024 * 1024).contains(&g.max_body_bytes) {
        bad(
            "graph.max_body_bytes",
            format!("{} is not in 65536..=268435456", g.max_body_bytes),
        );
    }
    let sk = &raw.sink;
    for (key, value, range) in [
        ("sink.connect_timeout_secs", sk.connect_timeout_secs, 1..=60),
        (
            "sink.operation_timeout_secs",
            sk.operation_timeout_secs,
            1..=300,
        ),
        ("sink.max_attempts", u64::from(sk.max_attempts), 1..=10),
        (
            "sink.conflict_retries",
            u64::from(sk.conflict_retries),
            0..=50,
        ),
    ] {
        if !range.contains(&value) {
            bad(
                key,
                format!("{value} is not in {}..={}", range.start(), range.end()),
            );
        }
    }

    let r = &raw.retry;
    if !(1..=10).contains(&r.max_attempts) {
        bad(
            "retry.max_attempts",
            format!("{} is not in 1..=10", r.max_attempts),
        );
    }
    if r.deadline_margin_secs > 600 {
        bad(
            "retry.deadline_margin_secs",
            format!("{} is not in 0..=600", r.deadline_margin_secs),
        );
    }
    if r.max_throttle_wait_secs > 3600 {
        bad(
            "retry.max_throttle_wait_secs",
            format!("{} is not in 0..=3600", r.max_throttle_wait_secs),
        );
    }
    if r.max_delay_ms > 600_000 {
        bad(
            "retry.max_delay_ms",
            format!("{} is not in 0..=600000", r.max_delay_ms),
        );
    }
    if r.base_delay_ms > r.max_delay_ms {
        bad(
            "retry.base_delay_ms",
            format!(
                "{} is larger than retry.max_delay_ms ({})",
                r.base_delay_ms, r.max_delay_ms
            ),
        );
    }
    if !(1..=100).contains(&r.usage_threshold_percent) {
        bad(
            "retry.usage_threshold_percent",
            format!("{} is not in 1..=100", r.usage_threshold_percent),
        );
    }

    let (format_key, format_text) = match &o.output_format {
        Some(v) => ("OUTPUT_FORMAT (environment)", v.clone()),
        None => ("output.format", raw.output.format.clone()),
    };
    let format = Format::parse(&format_text).unwrap_or_else(|| {
        bad(
            format_key,
            format!("`{format_text}` is not one of \"json\", \"ndjson\""),
        );
        Format::Json
    });
    let mut template = |key: &str, text: &str| {
        KeyTemplate::parse(text).unwrap_or_else(|m| {
            bad(key, m);
            KeyTemplate {
                source: text.to_string(),
            }
        })
    };
    let brand_key = template("output.brand_key", &raw.output.brand_key);
    let media_key = template("output.media_key", &raw.output.media_key);
    let media_hashtag_key = template("output.media_hashtag_key", &raw.output.media_hashtag_key);
    let keys = [&brand_key, &media_key, &media_hashtag_key];
    if keys[0] == keys[1] || keys[1] == keys[2] || keys[0] == keys[2] {
        bad(
            "output",
            "brand_key, media_key and media_hashtag_key must differ, or one kind overwrites another"
                .into(),
        );
    }

    let hs = &raw.hashtags;
    if !(1..=20).contains(&hs.max_pages) {
        bad(
            "hashtags.max_pages",
            format!("{} is not in 1..=20", hs.max_pages),
        );
    }
    if hs.extra_pages_per_hour > 100_000 {
        bad(
            "hashtags.extra_pages_per_hour",
            format!("{} is not in 0..=100000", hs.extra_pages_per_hour),
        );
    }
    if !(5..=2880).contains(&hs.known_window_mins) {
        bad(
            "hashtags.known_window_mins",
            format!(
                "{} is not in 5..=2880 (the API serves the last 24 hours)",
                hs.known_window_mins
            ),
        );
    }
    if !(1..=100_000).contains(&raw.budget.calls_per_hour_per_credential) {
        bad(
            "budget.calls_per_hour_per_credential",
            format!(
                "{} is not in 1..=100000",
                raw.budget.calls_per_hour_per_credential
            ),
        );
    }
    if !(1..=60).contains(&hs.runs_per_hour) {
        bad(
            "hashtags.runs_per_hour",
            format!("{} is not in 1..=60", hs.runs_per_hour),
        );
    }
    if hs.state_key.is_empty() || hs.state_key.starts_with('/') {
        bad(
            "hashtags.state_key",
            format!("`{}` is not a relative key", hs.state_key),
        );
    }
    if !(1..=100).contains(&raw.budget.brands_runs_per_hour) {
        bad(
            "budget.brands_runs_per_hour",
            format!("{} is not in 1..=100", raw.budget.brands_runs_per_hour),
        );
    }
    let raw_capture_key = KeyTemplate::parse(&raw.output.raw_capture_key).unwrap_or_else(|m| {
        bad("output.raw_capture_key", m);
        KeyTemplate {
            source: raw.output.raw_capture_key.clone(),
        }
    });

    let defaults = crate::validate::Rules::default();
    let mut domain = |key: &str, list: &Option<Vec<String>>, default: Vec<String>| match list {
        None => default,
        Some(l) if l.is_empty() || l.iter().any(|v| v.is_empty()) => {
            bad(key, "must list at least one non-empty value".into());
            default
        }
        Some(l) => l.clone(),
    };
    let validation = crate::validate::Rules {
        media_types: domain(
            "validation.media_types",
            &raw.validation.media_types,
            defaults.media_types,
        ),
        media_product_types: domain(
            "validation.media_product_types",
            &raw.validation.media_product_types,
            defaults.media_product_types,
        ),
    };

    if raw.targets.is_empty() {
        bad("targets", "no [[targets]]: nothing to collect".into());
    }
    let mut seen_users = HashSet::new();
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (i, t) in raw.targets.iter().enumerate() {
        let key = |field: &str| format!("targets[{i}].{field}");
        if !is_username(&t.username) {
            bad(
                &key("username"),
                format!(
                    "`{}` is not an Instagram username (1-30 of a-z, 0-9, '.', '_')",
                    t.username
                ),
            );
        } else if !seen_users.insert(t.username.to_ascii_lowercase()) {
            bad(
                &key("username"),
                format!("`{}` is listed twice", t.username),
            );
        }
        if !is_digits(&t.user_id) {
            bad(
                &key("user_id"),
                format!("`{}` is not a numeric Instagram user id", t.user_id),
            );
        }
        if t.hashtag.is_empty()
            || t.hashtag.starts_with('#')
            || !t.hashtag.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            bad(
                &key("hashtag"),
                format!(
                    "`{}` is not a hashtag name (letters, digits, '_', without '#')",
                    t.hashtag
                ),
            );
        }
        if !t.hashtag_id.is_empty() && !is_digits(&t.hashtag_id) {
            bad(
                &key("hashtag_id"),
                format!(
                    "`{}` is not numeric; leave it empty to resolve it at run time",
                    t.hashtag_id
                ),
            );
        }
        targets.push(Target {
            username: t.username.clone(),
            user_id: t.user_id.clone(),
            hashtag: t.hashtag.clone(),
            hashtag_id: Some(t.hashtag_id.clone()).filter(|s| !s.is_empty()),
        });
    }

    Config {
        file: _file.to_string(),
        graph: GraphSettings {
            api_version,
            base_url: base_url.trim_end_matches('/').to_string(),
            concurrency: g.concurrency.max(1) as usize,
            request_timeout: Duration::from_secs(g.request_timeout_secs),
            brand_media_limit: g.brand_media_limit,
            hashtag_media_limit: g.hashtag_media_limit,
            max_body_bytes: g.max_body_bytes,
        },
        retry: RetryPolicy {
            max_attempts: r.max_attempts.max(1),
            base_delay: Duration::from_millis(r.base_delay_ms),
            max_delay: Duration::from_millis(r.max_delay_ms),
            usage_threshold_percent: r.usage_threshold_percent,
            deadline_margin: Duration::from_secs(r.deadline_margin_secs),
            max_throttle_wait: Duration::from_secs(r.max_throttle_wait_secs),
        },
        output: OutputSettings {
            format,
            brand_key,
            media_key,
            media_hashtag_key,
            raw_capture: raw.output.raw_capture,
            raw_capture_key,
        },
        hashtags: HashtagSettings {
            max_pages: hs.max_pages,
            extra_pages_per_hour: hs.extra_pages_per_hour,
            runs_per_hour: hs.runs_per_hour,
            known_window: Duration::from_secs(hs.known_window_mins.saturating_mul(60)),
            state_key: hs.state_key.clone(),
        },
        budget: BudgetSettings {
            calls_per_hour_per_credential: raw.budget.calls_per_hour_per_credential,
            brands_runs_per_hour: raw.budget.brands_runs_per_hour,
        },
        validation,
        sink: SinkSettings {
            connect_timeout: Duration::from_secs(raw.sink.connect_timeout_secs),
            operation_timeout: Duration::from_secs(raw.sink.operation_timeout_secs),
            max_attempts: raw.sink.max_attempts.max(1),
            conflict_retries: raw.sink.conflict_retries,
        },
        targets,
    }
}

fn check_api_version(v: &str) -> Result<(), String> {
    let parsed = v
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(major, minor)| {
            let minor_ok = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
            major.parse::<u32>().ok().filter(|_| minor_ok)
        });
    match parsed {
        None => Err(format!("`{v}` is not a Graph API version like \"v24.0\"")),
        Some(major) if major < MIN_API_MAJOR => Err(format!(
            "`{v}` is too old: use v{MIN_API_MAJOR}.0 or newer (v17.0 expired on 2025-09-12)"
        )),
        Some(_) => Ok(()),
    }
}

fn is_username(s: &str) -> bool {
    (1..=30).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_shipped_file_is_valid_and_lists_the_eleven_brands() {
        let c = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default()).expect("valid");
        let names: Vec<_> = c.targets.iter().map(|t| t.username.as_str()).collect();
        assert_eq!(
            names,
            [
                "hermes",
                "chanelofficial",
                "dior",
                "louisvuitton",
                "gucci",
                "prada",
                "ysl",
                "celine",
                "maisonvalentino",
                "miumiu",
                "fendi"
            ]
        );
        assert_eq!(c.output.format, Format::Json);
    }

    #[test]
    fn key_templates_render_the_contract_layout() {
        let t = KeyTemplate::parse(&default_brand_key()).expect("valid");
        let at = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
            .single()
            .expect("time");
        assert_eq!(
            t.render(at),
            "raw/brand_2023-09-02/brand_2023-09-02_000015.json"
        );
    }

    #[test]
    fn key_templates_without_a_time_hole_or_with_bad_patterns_are_refused() {
        assert!(KeyTemplate::parse("raw/brand.json").is_err());
        assert!(KeyTemplate::parse("raw/{%Q}.json").is_err());
        assert!(KeyTemplate::parse("raw/{%Y.json").is_err());
        assert!(KeyTemplate::parse("/raw/{%Y}.json").is_err());
        assert!(KeyTemplate::parse("raw/../{%Y}.json").is_err());
    }
}
