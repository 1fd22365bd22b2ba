//! The configuration file as written: serde shapes, with each field's default and its allowed
//! values declared beside it (`validator`: ranges, and the shape of each target's names). Unknown
//! keys are found by `serde_ignored` in `Config::parse`; `check` runs these declarations, adds
//! the checks that span fields or sections, and turns the shapes into a `Config`.
//! The shipped `configure.toml` documents each field for operators; a test checks that it sets
//! every field these shapes know, with the same defaults.
//!
//! The sections on how the collector runs (`[sink]`, `[fanout]`, `[health]`) are in `operation`,
//! the `[[targets]]` entries and the checks on their names in `targets`.

mod operation;
mod targets;

use serde::Deserialize;
use validator::Validate;

pub(super) use operation::{FanoutSection, HealthSection, SinkSection};
pub(super) use targets::TargetEntry;

#[derive(Debug, Deserialize, Validate)]
pub(super) struct FileConfig {
    #[validate(nested)]
    pub(super) graph: GraphSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) retry: RetrySection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) output: OutputSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) hashtags: HashtagsSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) budget: BudgetSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) validation: ValidationSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) sink: SinkSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) fanout: FanoutSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) health: HealthSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) brands: BrandsSection,
    #[serde(default)]
    #[validate(nested)]
    pub(super) targets: Vec<TargetEntry>,
}

/// How far back the brands job reads each account's media.
#[derive(Debug, Deserialize, Validate)]
pub(super) struct BrandsSection {
    #[serde(default = "default_lookback_days")]
    #[validate(range(
        min = 0,
        max = 365,
        message = "0 reads only the first page; every day more adds pages to every account's hourly run, and a year is far past the days in which a post's counts still move"
    ))]
    pub(super) lookback_days: u32,
    #[serde(default = "default_backfill_days")]
    #[validate(range(
        min = 0,
        max = 3650,
        message = "0 fetches no history; ten years is the most"
    ))]
    pub(super) backfill_days: u32,
}

impl Default for BrandsSection {
    fn default() -> Self {
        BrandsSection {
            lookback_days: default_lookback_days(),
            backfill_days: default_backfill_days(),
        }
    }
}

/// A post's counts move most in its first days; a week, at one post every 2 hours, is a few
/// pages per account per hour (README, "Brands: a week of counts").
pub(super) fn default_lookback_days() -> u32 {
    7
}
pub(super) fn default_backfill_days() -> u32 {
    0
}

#[derive(Debug, Deserialize, Default, Validate)]
pub(super) struct ValidationSection {
    pub(super) media_types: Option<Vec<String>>,
    pub(super) media_product_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Validate)]
pub(super) struct HashtagsSection {
    #[serde(default = "default_max_delay_mins")]
    #[validate(range(
        min = 5,
        max = 720,
        message = "at least one schedule, and well inside the API's 24 hours"
    ))]
    pub(super) max_delay_mins: u64,
    #[serde(default = "default_overlap_secs")]
    #[validate(range(min = 0, max = 3600))]
    pub(super) overlap_secs: u64,
    #[serde(default = "default_late_window_mins")]
    #[validate(range(min = 0, max = 240))]
    pub(super) late_window_mins: u64,
    #[serde(default = "default_runs_per_hour")]
    #[validate(range(min = 1, max = 60))]
    pub(super) runs_per_hour: u32,
    #[serde(default = "default_known_window_mins")]
    #[validate(range(min = 5, max = 2880, message = "the API serves the last 24 hours"))]
    pub(super) known_window_mins: u64,
    #[serde(default = "default_fresh_delay_mins")]
    #[validate(range(
        min = 0,
        max = 720,
        message = "0 polls each hashtag only as often as its fewest calls need; above hashtags.max_delay_mins it changes nothing"
    ))]
    pub(super) fresh_delay_mins: u64,
    #[serde(default = "default_state_key")]
    pub(super) state_key: String,
}

impl Default for HashtagsSection {
    fn default() -> Self {
        HashtagsSection {
            max_delay_mins: default_max_delay_mins(),
            overlap_secs: default_overlap_secs(),
            late_window_mins: default_late_window_mins(),
            runs_per_hour: default_runs_per_hour(),
            known_window_mins: default_known_window_mins(),
            fresh_delay_mins: default_fresh_delay_mins(),
            state_key: default_state_key(),
        }
    }
}

pub(super) fn default_max_delay_mins() -> u64 {
    30
}
pub(super) fn default_overlap_secs() -> u64 {
    120
}
pub(super) fn default_late_window_mins() -> u64 {
    20
}
pub(super) fn default_runs_per_hour() -> u32 {
    12
}
pub(super) fn default_known_window_mins() -> u64 {
    180
}
/// Spare calls poll a hashtag so that its posts wait at most this long: two schedules, so a
/// busy hashtag is polled every run and a post waits for the next run at most.
pub(super) fn default_fresh_delay_mins() -> u64 {
    10
}
pub(super) fn default_state_key() -> String {
    "state/hashtags.json".to_string()
}

#[derive(Debug, Deserialize, Validate)]
pub(super) struct BudgetSection {
    #[serde(default = "default_calls_per_hour")]
    #[validate(range(min = 1, max = 100000))]
    pub(super) calls_per_hour_per_credential: u32,
    #[serde(default = "default_brands_runs_per_hour")]
    #[validate(range(min = 1, max = 100))]
    pub(super) brands_runs_per_hour: u32,
}

impl Default for BudgetSection {
    fn default() -> Self {
        BudgetSection {
            calls_per_hour_per_credential: default_calls_per_hour(),
            brands_runs_per_hour: default_brands_runs_per_hour(),
        }
    }
}

pub(super) fn default_calls_per_hour() -> u32 {
    200
}
pub(super) fn default_brands_runs_per_hour() -> u32 {
    1
}

#[derive(Debug, Deserialize, Validate)]
pub(super) struct GraphSection {
    pub(super) api_version: String,
    #[serde(default = "default_base_url")]
    pub(super) base_url: String,
    #[serde(default = "default_concurrency")]
    #[validate(range(min = 1, max = 64))]
    pub(super) concurrency: u32,
    #[serde(default = "default_request_timeout_secs")]
    #[validate(range(min = 1, max = 300))]
    pub(super) request_timeout_secs: u64,
    #[serde(default = "default_brand_media_limit")]
    #[validate(range(min = 1, max = 100))]
    pub(super) brand_media_limit: u32,
    #[serde(default = "default_hashtag_media_limit")]
    #[validate(range(min = 1, max = 50, message = "the API's page limit"))]
    pub(super) hashtag_media_limit: u32,
    #[serde(default = "default_max_body_bytes")]
    #[validate(range(min = 65536, max = 268435456))]
    pub(super) max_body_bytes: u64,
    #[serde(default = "default_removed_fields_key")]
    pub(super) removed_fields_key: String,
}

pub(super) fn default_removed_fields_key() -> String {
    "state/removed_fields.json".to_string()
}
pub(super) fn default_base_url() -> String {
    "https://graph.facebook.com".to_string()
}
pub(super) fn default_concurrency() -> u32 {
    16
}
pub(super) fn default_request_timeout_secs() -> u64 {
    20
}
pub(super) fn default_brand_media_limit() -> u32 {
    25
}
pub(super) fn default_hashtag_media_limit() -> u32 {
    50
}
pub(super) fn default_max_body_bytes() -> u64 {
    8 * 1024 * 1024
}

#[derive(Debug, Deserialize, Validate)]
pub(super) struct RetrySection {
    #[serde(default = "default_max_attempts")]
    #[validate(range(min = 1, max = 10))]
    pub(super) max_attempts: u32,
    #[serde(default = "default_base_delay_ms")]
    pub(super) base_delay_ms: u64,
    #[serde(default = "default_max_delay_ms")]
    #[validate(range(min = 0, max = 600000))]
    pub(super) max_delay_ms: u64,
    #[serde(default = "default_usage_threshold_percent")]
    #[validate(range(min = 1, max = 100))]
    pub(super) usage_threshold_percent: u32,
    #[serde(default = "default_deadline_margin_secs")]
    #[validate(range(min = 0, max = 600))]
    pub(super) deadline_margin_secs: u64,
    #[serde(default = "default_max_throttle_wait_secs")]
    #[validate(range(min = 0, max = 3600))]
    pub(super) max_throttle_wait_secs: u64,
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

pub(super) fn default_max_attempts() -> u32 {
    4
}
pub(super) fn default_base_delay_ms() -> u64 {
    500
}
pub(super) fn default_max_delay_ms() -> u64 {
    8000
}
pub(super) fn default_usage_threshold_percent() -> u32 {
    80
}
pub(super) fn default_deadline_margin_secs() -> u64 {
    8
}
pub(super) fn default_max_throttle_wait_secs() -> u64 {
    120
}

#[derive(Debug, Deserialize, Validate)]
pub(super) struct OutputSection {
    #[serde(default = "default_format")]
    pub(super) format: String,
    #[serde(default = "default_compression")]
    pub(super) compression: String,
    #[serde(default = "default_brand_key")]
    pub(super) brand_key: String,
    #[serde(default = "default_media_key")]
    pub(super) media_key: String,
    #[serde(default = "default_media_hashtag_key")]
    pub(super) media_hashtag_key: String,
    #[serde(default = "default_raw_capture")]
    pub(super) raw_capture: bool,
    #[serde(default = "default_raw_capture_key")]
    pub(super) raw_capture_key: String,
}

pub(super) fn default_raw_capture() -> bool {
    true
}
pub(super) fn default_raw_capture_key() -> String {
    "raw_api/{job}/{%Y-%m-%d}/{%Y-%m-%d_%H%M%S}".to_string()
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            format: default_format(),
            compression: default_compression(),
            brand_key: default_brand_key(),
            media_key: default_media_key(),
            media_hashtag_key: default_media_hashtag_key(),
            raw_capture: default_raw_capture(),
            raw_capture_key: default_raw_capture_key(),
        }
    }
}

pub(super) fn default_compression() -> String {
    "none".to_string()
}

pub(super) fn default_format() -> String {
    "json".to_string()
}
pub(super) fn default_brand_key() -> String {
    "raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json".to_string()
}
pub(super) fn default_media_key() -> String {
    "raw/media_{%Y-%m-%d}/media_{%Y-%m-%d_%H%M%S}.json".to_string()
}
pub(super) fn default_media_hashtag_key() -> String {
    "raw/media_hashtag_{%Y-%m-%d}/media_hashtag_{%Y-%m-%d_%H%M%S}.json".to_string()
}
