//! The file's sections on how the collector runs rather than what it collects: `[sink]` (the S3
//! calls' bounds), `[fanout]` (what one invocation takes on) and `[health]` (the token's
//! refresh), as written, with their defaults and allowed values.

use serde::Deserialize;
use validator::Validate;

#[derive(Debug, Deserialize, Validate)]
pub(in crate::config) struct SinkSection {
    #[serde(default = "default_sink_connect_timeout_secs")]
    #[validate(range(min = 1, max = 60))]
    pub(in crate::config) connect_timeout_secs: u64,
    #[serde(default = "default_sink_operation_timeout_secs")]
    #[validate(range(min = 1, max = 300))]
    pub(in crate::config) operation_timeout_secs: u64,
    #[serde(default = "default_sink_max_attempts")]
    #[validate(range(min = 1, max = 10))]
    pub(in crate::config) max_attempts: u32,
    #[serde(default = "default_sink_conflict_retries")]
    #[validate(range(min = 0, max = 50))]
    pub(in crate::config) conflict_retries: u32,
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
#[derive(Debug, Deserialize, Validate)]
pub(in crate::config) struct FanoutSection {
    #[serde(default = "default_invocation_timeout_secs")]
    #[validate(range(min = 10, max = 900, message = "Lambda's longest timeout is 900 s"))]
    pub(in crate::config) invocation_timeout_secs: u64,
    #[serde(default = "default_call_time_ms")]
    #[validate(range(min = 50, max = 120000))]
    pub(in crate::config) call_time_ms: u64,
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

/// The token's health: when the daily check refreshes a token by itself.
#[derive(Debug, Deserialize, Validate)]
pub(in crate::config) struct HealthSection {
    #[serde(default = "default_refresh_days_left")]
    #[validate(range(
        min = 0,
        max = 50,
        message = "0 turns the refresh off; a long-lived token lasts about 60 days, and one refreshed with more days left than 50 would be refreshed every day"
    ))]
    pub(in crate::config) refresh_days_left: u32,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            refresh_days_left: default_refresh_days_left(),
        }
    }
}

/// The level at which the daily check starts to warn (`health::WARN_DAYS`): a token is
/// refreshed before anyone is warned about it, with two weeks of daily checks left to retry.
pub(super) fn default_refresh_days_left() -> u32 {
    14
}
