//! The configuration file as written: serde shapes and defaults, beside each field. Unknown
//! keys are found by `serde_ignored` in `Config::parse`; `check` turns these into a `Config`.
//! The shipped `configure.toml` documents each field for operators; a test checks that it sets
//! every field these shapes know, with the same defaults.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct FileConfig {
    pub(super) graph: GraphSection,
    #[serde(default)]
    pub(super) retry: RetrySection,
    #[serde(default)]
    pub(super) output: OutputSection,
    #[serde(default)]
    pub(super) hashtags: HashtagsSection,
    #[serde(default)]
    pub(super) budget: BudgetSection,
    #[serde(default)]
    pub(super) validation: ValidationSection,
    #[serde(default)]
    pub(super) sink: SinkSection,
    #[serde(default)]
    pub(super) fanout: FanoutSection,
    #[serde(default)]
    pub(super) targets: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SinkSection {
    #[serde(default = "default_sink_connect_timeout_secs")]
    pub(super) connect_timeout_secs: u64,
    #[serde(default = "default_sink_operation_timeout_secs")]
    pub(super) operation_timeout_secs: u64,
    #[serde(default = "default_sink_max_attempts")]
    pub(super) max_attempts: u32,
    #[serde(default = "default_sink_conflict_retries")]
    pub(super) conflict_retries: u32,
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

pub(super) fn default_sink_connect_timeout_secs() -> u64 {
    3
}
pub(super) fn default_sink_operation_timeout_secs() -> u64 {
    10
}
pub(super) fn default_sink_max_attempts() -> u32 {
    3
}
pub(super) fn default_sink_conflict_retries() -> u32 {
    5
}

/// How much one invocation can take on, from which a run is cut into shards (`plan`).
#[derive(Debug, Deserialize)]
pub(super) struct FanoutSection {
    #[serde(default = "default_invocation_timeout_secs")]
    pub(super) invocation_timeout_secs: u64,
    #[serde(default = "default_call_time_ms")]
    pub(super) call_time_ms: u64,
}

impl Default for FanoutSection {
    fn default() -> Self {
        FanoutSection {
            invocation_timeout_secs: default_invocation_timeout_secs(),
            call_time_ms: default_call_time_ms(),
        }
    }
}

pub(super) fn default_invocation_timeout_secs() -> u64 {
    60
}
pub(super) fn default_call_time_ms() -> u64 {
    4000
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct ValidationSection {
    pub(super) media_types: Option<Vec<String>>,
    pub(super) media_product_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct HashtagsSection {
    #[serde(default = "default_max_delay_mins")]
    pub(super) max_delay_mins: u64,
    #[serde(default = "default_overlap_secs")]
    pub(super) overlap_secs: u64,
    #[serde(default = "default_late_window_mins")]
    pub(super) late_window_mins: u64,
    #[serde(default = "default_runs_per_hour")]
    pub(super) runs_per_hour: u32,
    #[serde(default = "default_known_window_mins")]
    pub(super) known_window_mins: u64,
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
pub(super) fn default_state_key() -> String {
    "state/hashtags.json".to_string()
}

#[derive(Debug, Deserialize)]
pub(super) struct BudgetSection {
    #[serde(default = "default_calls_per_hour")]
    pub(super) calls_per_hour_per_credential: u32,
    #[serde(default = "default_brands_runs_per_hour")]
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

#[derive(Debug, Deserialize)]
pub(super) struct GraphSection {
    pub(super) api_version: String,
    #[serde(default = "default_base_url")]
    pub(super) base_url: String,
    #[serde(default = "default_concurrency")]
    pub(super) concurrency: u32,
    #[serde(default = "default_request_timeout_secs")]
    pub(super) request_timeout_secs: u64,
    #[serde(default = "default_brand_media_limit")]
    pub(super) brand_media_limit: u32,
    #[serde(default = "default_hashtag_media_limit")]
    pub(super) hashtag_media_limit: u32,
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: u64,
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

#[derive(Debug, Deserialize)]
pub(super) struct RetrySection {
    #[serde(default = "default_max_attempts")]
    pub(super) max_attempts: u32,
    #[serde(default = "default_base_delay_ms")]
    pub(super) base_delay_ms: u64,
    #[serde(default = "default_max_delay_ms")]
    pub(super) max_delay_ms: u64,
    #[serde(default = "default_usage_threshold_percent")]
    pub(super) usage_threshold_percent: u32,
    #[serde(default = "default_deadline_margin_secs")]
    pub(super) deadline_margin_secs: u64,
    #[serde(default = "default_max_throttle_wait_secs")]
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

#[derive(Debug, Deserialize)]
pub(super) struct OutputSection {
    #[serde(default = "default_format")]
    pub(super) format: String,
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
            brand_key: default_brand_key(),
            media_key: default_media_key(),
            media_hashtag_key: default_media_hashtag_key(),
            raw_capture: default_raw_capture(),
            raw_capture_key: default_raw_capture_key(),
        }
    }
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

#[derive(Debug, Deserialize)]
pub(super) struct TargetEntry {
    pub(super) username: String,
    pub(super) user_id: String,
    #[serde(default)]
    pub(super) hashtag: String,
    #[serde(default)]
    pub(super) hashtag_id: String,
    #[serde(default = "default_hashtag_priority")]
    pub(super) hashtag_priority: u8,
}

pub(super) fn default_hashtag_priority() -> u8 {
    5
}
