//! Configuration: `configure.toml` (embedded in the binaries at build time, or the file named by
//! `CONFIG_PATH`) plus a few environment overrides, checked once into a [`Config`] before anything
//! runs.
//!
//! Every problem is collected and reported at once, each naming the file and the key, so an
//! operator fixes a bad file in one round instead of one error per deploy.
//!
//! - `file`: the file's serde shapes and defaults, as written;
//! - `check`: file → checked [`Config`], collecting every [`Problem`];
//! - `keys`: [`KeyTemplate`] and the checks on the keys it renders;
//! - the schedule's Graph calls per hour against the credentials' budget are the
//!   `credential` module's.
//!
//! This module reads files and the environment overrides; nothing else in the crate reads
//! configuration.

mod check;
mod file;
mod keys;

pub use check::check_api_version;
pub use keys::{part_key, part_name, KeyTemplate};

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The repository's `configure.toml`, compiled in so a Lambda needs no file next to it.
pub const EMBEDDED: &str = include_str!("../../configure.toml");
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

pub use crate::records::{Compression, Format};
pub use crate::validate::is_digits;

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
    pub fanout: FanoutSettings,
    pub health: HealthSettings,
    pub brands: BrandsSettings,
    pub targets: Vec<Target>,
}

/// How far back the brands job reads each account's media (`[brands]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrandsSettings {
    /// Every brands run pages each account's media back this many days before its scheduled
    /// time, so the counts of the posts of the window are refreshed every hour. 0: the first
    /// page only.
    pub lookback_days: u32,
    /// Parsed and checked, not yet used: a newly tracked account's history to fetch once.
    pub backfill_days: u32,
}

/// What the daily token check does besides reporting (`[health]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// A token with fewer days left than this is exchanged for a fresh one by the daily check
    /// (`health::renew`), when its credential has an app id and an app secret; `None` (the
    /// file's 0): never. Non-zero by its type, so "refresh below 0 days" cannot be asked for.
    pub refresh_days_left: Option<std::num::NonZeroU32>,
}

/// What one invocation can take on; `plan` cuts a run into shards that each fit it.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutSettings {
    /// The function's timeout (template.yaml's `Timeout`): the time one shard has.
    pub invocation_timeout: Duration,
    /// The time budgeted per Graph call (about its p99, retries of a slow call included), so a
    /// shard of the planned size ends its calls before the deadline margin.
    pub call_time: Duration,
}

/// How the hashtags job pages and remembers what it has seen (see `pager`).
#[derive(Debug, Clone)]
pub struct HashtagSettings {
    /// The freshness target: a post is written at most this long after the API lists it.
    pub max_delay: Duration,
    /// How far past its frontier a poll reaches, for posts listed slightly out of order.
    pub overlap: Duration,
    /// How far past its frontier a poll goes on, budget allowing, for posts listed late.
    pub late_window: Duration,
    /// How often the hashtags job runs (12: every 5 minutes).
    pub runs_per_hour: u32,
    /// How far behind the newest post ids are remembered, to recognise posts already written.
    pub known_window: Duration,
    /// With calls to spare, the most a post waits: a hashtag is polled sooner than its fewest
    /// calls need (`pager`, freshness polls). `None`: only as often as `max_delay` needs.
    pub fresh_delay: Option<Duration>,
    /// Object key of the per-hashtag state (ids, watermark, resolved hashtag ids).
    pub state_key: String,
}

impl Config {
    /// How many accounts the brands job calls for: every target.
    pub fn accounts(&self) -> usize {
        self.targets.len()
    }
}

/// A hashtag and every account that tracks it: the unit the hashtags job polls, plans and keeps
/// state for. A hashtag tracked by several accounts is polled once per run and its posts are
/// written once for each of them; its state entry is its own, whichever shard polls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashtagGroup {
    /// The hashtag in lower case (Instagram's hashtags ignore case): its state's key, its
    /// capture files' name.
    pub hashtag: String,
    /// Indexes into `Config::targets` of the accounts tracking it, in configuration order.
    pub targets: Vec<usize>,
    /// The id pinned by any of them.
    pub hashtag_id: Option<String>,
    /// The highest priority any of them gives it.
    pub priority: u8,
}

impl Config {
    /// The tracked hashtags in order of first appearance, each with its accounts. Instagram's
    /// hashtags ignore case, so `Dior` and `dior` are one hashtag.
    pub fn hashtag_groups(&self) -> Vec<HashtagGroup> {
        self.hashtag_groups_of(0..self.targets.len())
    }

    /// The hashtags of the targets `of` (indexes into `targets`), grouped as
    /// [`Config::hashtag_groups`] groups them: a shard's hashtags.
    pub fn hashtag_groups_of(&self, of: impl IntoIterator<Item = usize>) -> Vec<HashtagGroup> {
        let mut groups: Vec<HashtagGroup> = Vec::new();
        let mut of: Vec<usize> = of.into_iter().collect();
        of.sort_unstable();
        of.dedup();
        for i in of {
            let Some(t) = self.targets.get(i) else {
                continue;
            };
            if t.hashtag.is_empty() {
                continue;
            }
            let hashtag = t.hashtag.to_lowercase();
            match groups.iter_mut().find(|g| g.hashtag == hashtag) {
                Some(g) => {
                    g.targets.push(i);
                    g.priority = g.priority.max(t.hashtag_priority);
                    if g.hashtag_id.is_none() {
                        g.hashtag_id = t.hashtag_id.clone();
                    }
                }
                None => groups.push(HashtagGroup {
                    hashtag,
                    targets: vec![i],
                    hashtag_id: t.hashtag_id.clone(),
                    priority: t.hashtag_priority,
                }),
            }
        }
        groups
    }
}

impl HashtagSettings {
    /// The schedule's period.
    pub fn run_every(&self) -> Duration {
        Duration::from_secs(3600 / u64::from(self.runs_per_hour.max(1)))
    }
}

/// The hourly call budget the schedule must fit.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    pub calls_per_hour_per_credential: u32,
    pub brands_runs_per_hour: u32,
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
    /// Object key of the fields the API reported removed, per API version and endpoint
    /// (`drift`): read by every run before its first call, written when a run finds one.
    pub removed_fields_key: String,
}

impl Default for SinkSettings {
    /// The defaults of the `[sink]` section, for an S3 read made before a configuration is
    /// known (a `CONFIG_PATH` in S3).
    fn default() -> Self {
        check::sink_settings(&file::SinkSection::default())
    }
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
    /// Whether data objects are gzip-compressed (their keys then end in `.gz`).
    pub compression: Compression,
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
    /// Tracked hashtag, without `#`; empty when the account is tracked without one (the
    /// hashtags job skips it).
    pub hashtag: String,
    /// Pinned id of the hashtag, when known.
    pub hashtag_id: Option<String>,
    /// When the hourly budget cannot cover every due hashtag, higher priorities are served
    /// first (1..=10).
    pub hashtag_priority: u8,
}

/// Environment overrides (`GRAPH_API_URL`, `GRAPH_API_VERSION`, `OUTPUT_FORMAT`), read by
/// `setup::Env`; tests build one by hand instead of setting variables.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub graph_api_url: Option<String>,
    pub graph_api_version: Option<String>,
    pub output_format: Option<String>,
}

impl Config {
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
        let _: Result<file::FileConfig, _> =
            serde_ignored::deserialize(toml::Value::Table(table), |path| {
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
        let raw: file::FileConfig = toml::from_str(text).map_err(|e| {
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
        let config = check::check(raw, overrides, &mut problems, file);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
