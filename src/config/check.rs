//! File shapes → a checked [`Config`]: every range, name and key is checked, and every problem
//! is collected (not only the first), each naming its key. The checks of one field are declared
//! on its shape in `file.rs` and run here by `validator`; what spans fields, sections or targets
//! is checked here.
//!
//! One function per section collects that section's problems, in the order the sections are
//! checked; `declared` words the refusals of the declarations, and `output` checks the
//! `[output]` section, the keys it renders included.

mod declared;
mod output;

use std::collections::HashSet;
use std::time::Duration;

use super::file::{
    FileConfig, GraphSection, HashtagsSection, RetrySection, TargetEntry, ValidationSection,
};
use super::*;
use declared::declared;
use validator::Validate;

/// Adds a problem under `key`.
fn bad(problems: &mut Vec<Problem>, key: &str, message: String) {
    problems.push(Problem {
        key: key.to_string(),
        message,
    })
}

pub(super) fn check(
    raw: FileConfig,
    o: &Overrides,
    problems: &mut Vec<Problem>,
    file: &str,
) -> Config {
    let graph = graph(&raw.graph, o, problems);
    // Every range and name the file's shapes declare (`file.rs`).
    if let Err(errors) = raw.validate() {
        problems.extend(declared(&errors));
    }
    fanout_leaves_time(&raw, problems);
    let retry = retry(&raw.retry, problems);
    let output = output::output(&raw, o, problems);
    let validation = validation(&raw.validation, problems);
    let targets = targets(&raw.targets, problems);
    let fo = &raw.fanout;
    Config {
        file: file.to_string(),
        graph,
        retry,
        output,
        hashtags: hashtags(&raw.hashtags),
        budget: BudgetSettings {
            calls_per_hour_per_credential: raw.budget.calls_per_hour_per_credential,
            brands_runs_per_hour: raw.budget.brands_runs_per_hour,
        },
        validation,
        sink: sink_settings(&raw.sink),
        fanout: FanoutSettings {
            invocation_timeout: Duration::from_secs(fo.invocation_timeout_secs),
            call_time: Duration::from_millis(fo.call_time_ms),
        },
        health: HealthSettings {
            refresh_days_left: std::num::NonZeroU32::new(raw.health.refresh_days_left),
        },
        brands: BrandsSettings {
            lookback_days: raw.brands.lookback_days,
            backfill_days: raw.brands.backfill_days,
        },
        targets,
    }
}

/// The `[graph]` section, with the environment's overrides: the API version and the base URL,
/// each checked under the key that set it.
fn graph(g: &GraphSection, o: &Overrides, problems: &mut Vec<Problem>) -> GraphSettings {
    let (version_key, api_version) = match &o.graph_api_version {
        Some(v) => ("GRAPH_API_VERSION (environment)", v.clone()),
        None => ("graph.api_version", g.api_version.clone()),
    };
    if let Err(m) = check_api_version(&api_version) {
        bad(problems, version_key, m);
    }
    let (url_key, base_url) = match &o.graph_api_url {
        Some(v) => ("GRAPH_API_URL (environment)", v.clone()),
        None => ("graph.base_url", g.base_url.clone()),
    };
    if let Err(m) = check_base_url(&base_url) {
        bad(problems, url_key, m);
    }
    GraphSettings {
        api_version,
        base_url: base_url.trim_end_matches('/').to_string(),
        concurrency: g.concurrency.max(1) as usize,
        request_timeout: Duration::from_secs(g.request_timeout_secs),
        brand_media_limit: g.brand_media_limit,
        hashtag_media_limit: g.hashtag_media_limit,
        max_body_bytes: g.max_body_bytes,
        removed_fields_key: g.removed_fields_key.clone(),
    }
}

/// The `[fanout]` section's invocation leaves time for calls after the retries' margin.
fn fanout_leaves_time(raw: &FileConfig, problems: &mut Vec<Problem>) {
    let fo = &raw.fanout;
    if fo.invocation_timeout_secs <= raw.retry.deadline_margin_secs {
        bad(
            problems,
            "fanout.invocation_timeout_secs",
            format!(
                "{} leaves no time for calls after retry.deadline_margin_secs ({})",
                fo.invocation_timeout_secs, raw.retry.deadline_margin_secs
            ),
        );
    }
}

/// The `[retry]` section: its first delay is no longer than its longest.
fn retry(r: &RetrySection, problems: &mut Vec<Problem>) -> RetryPolicy {
    if r.base_delay_ms > r.max_delay_ms {
        bad(
            problems,
            "retry.base_delay_ms",
            format!(
                "{} is larger than retry.max_delay_ms ({})",
                r.base_delay_ms, r.max_delay_ms
            ),
        );
    }
    RetryPolicy {
        max_attempts: r.max_attempts.max(1),
        base_delay: Duration::from_millis(r.base_delay_ms),
        max_delay: Duration::from_millis(r.max_delay_ms),
        usage_threshold_percent: r.usage_threshold_percent,
        deadline_margin: Duration::from_secs(r.deadline_margin_secs),
        max_throttle_wait: Duration::from_secs(r.max_throttle_wait_secs),
    }
}

/// The `[hashtags]` section (its ranges are declared on its shape).
fn hashtags(hs: &HashtagsSection) -> HashtagSettings {
    HashtagSettings {
        max_delay: Duration::from_secs(hs.max_delay_mins.saturating_mul(60)),
        overlap: Duration::from_secs(hs.overlap_secs),
        late_window: Duration::from_secs(hs.late_window_mins.saturating_mul(60)),
        runs_per_hour: hs.runs_per_hour,
        known_window: Duration::from_secs(hs.known_window_mins.saturating_mul(60)),
        fresh_delay: (hs.fresh_delay_mins > 0)
            .then(|| Duration::from_secs(hs.fresh_delay_mins.saturating_mul(60))),
        state_key: hs.state_key.clone(),
    }
}

/// The `[validation]` section: each list, when given, names at least one non-empty value.
fn validation(v: &ValidationSection, problems: &mut Vec<Problem>) -> crate::validate::Rules {
    let defaults = crate::validate::Rules::default();
    let mut domain = |key: &str, list: &Option<Vec<String>>, default: Vec<String>| match list {
        None => default,
        Some(l) if l.is_empty() || l.iter().any(|v| v.is_empty()) => {
            bad(
                problems,
                key,
                "must list at least one non-empty value".into(),
            );
            default
        }
        Some(l) => l.clone(),
    };
    crate::validate::Rules {
        media_types: domain(
            "validation.media_types",
            &v.media_types,
            defaults.media_types,
        ),
        media_product_types: domain(
            "validation.media_product_types",
            &v.media_product_types,
            defaults.media_product_types,
        ),
        removed_by_api: defaults.removed_by_api,
    }
}

/// The `[[targets]]`: at least one, no account twice, no hashtag id without its hashtag.
fn targets(entries: &[TargetEntry], problems: &mut Vec<Problem>) -> Vec<Target> {
    if entries.is_empty() {
        bad(
            problems,
            "targets",
            "no [[targets]]: nothing to collect".into(),
        );
    }
    let mut seen_users = HashSet::new();
    let mut targets = Vec::with_capacity(entries.len());
    for (i, t) in entries.iter().enumerate() {
        let key = |field: &str| format!("targets[{i}].{field}");
        if !seen_users.insert(t.username.to_ascii_lowercase()) {
            bad(
                problems,
                &key("username"),
                format!("`{}` is listed twice", t.username),
            );
        }
        if t.hashtag.is_empty() && !t.hashtag_id.is_empty() {
            bad(
                problems,
                &key("hashtag_id"),
                "is set but `hashtag` is empty: give the hashtag, or leave both empty to track the account without one".into(),
            );
        }
        targets.push(Target {
            hashtag_priority: t.hashtag_priority,
            username: t.username.clone(),
            user_id: t.user_id.clone(),
            hashtag: t.hashtag.clone(),
            hashtag_id: Some(t.hashtag_id.clone()).filter(|s| !s.is_empty()),
        });
    }
    targets
}

/// The Graph base URL: https, because every request carries the access token. Plain http only
/// to a loopback host (`127.0.0.1`, `::1`, `localhost`), where the local fakes and tests listen
/// and the token never leaves the machine.
fn check_base_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text)
        .ok()
        .filter(|u| u.has_host() && validator::ValidateUrl::validate_url(text));
    let Some(url) = url else {
        return Err(format!("`{text}` is not an http(s) URL"));
    };
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "`{text}` is plain http: the access token would travel in clear; use https (plain http is accepted only for a loopback host, 127.0.0.1, ::1 or localhost, where local fakes listen)"
        )),
        _ => Err(format!("`{text}` is not an http(s) URL")),
    }
}

/// Whether `v` names a Graph API version this program can call (`v24.0`); the message says
/// what is wrong.
pub fn check_api_version(v: &str) -> Result<(), String> {
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

/// The checked form of the `[sink]` section.
pub(super) fn sink_settings(s: &super::file::SinkSection) -> SinkSettings {
    SinkSettings {
        connect_timeout: Duration::from_secs(s.connect_timeout_secs),
        operation_timeout: Duration::from_secs(s.operation_timeout_secs),
        max_attempts: s.max_attempts.max(1),
        conflict_retries: s.conflict_retries,
    }
}
