//! File shapes → a checked [`Config`]: every range, name and key is checked, and every problem
//! is collected (not only the first), each naming its key. The checks of one field are declared
//! on its shape in `file.rs` and run here by `validator`; what spans fields, sections or targets
//! is checked here.

use std::collections::HashSet;
use std::time::Duration;

use super::file::FileConfig;
use super::keys::{check_rendered, KeyTemplate, Rendered, LONGEST_PART};
use super::*;
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

pub(super) fn check(
    raw: FileConfig,
    o: &Overrides,
    problems: &mut Vec<Problem>,
    file: &str,
) -> Config {
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
    if let Err(m) = check_base_url(&base_url) {
        bad(url_key, m);
    }
    // Every range and name the file's shapes declare (`file.rs`).
    if let Err(errors) = raw.validate() {
        for p in declared(&errors) {
            bad(&p.key, p.message);
        }
    }
    let g = &raw.graph;
    let fo = &raw.fanout;
    if fo.invocation_timeout_secs <= raw.retry.deadline_margin_secs {
        bad(
            "fanout.invocation_timeout_secs",
            format!(
                "{} leaves no time for calls after retry.deadline_margin_secs ({})",
                fo.invocation_timeout_secs, raw.retry.deadline_margin_secs
            ),
        );
    }
    let r = &raw.retry;
    if r.base_delay_ms > r.max_delay_ms {
        bad(
            "retry.base_delay_ms",
            format!(
                "{} is larger than retry.max_delay_ms ({})",
                r.base_delay_ms, r.max_delay_ms
            ),
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
    let compression = Compression::parse(&raw.output.compression).unwrap_or_else(|| {
        bad(
            "output.compression",
            format!(
                "`{}` is not one of \"none\", \"gzip\"",
                raw.output.compression
            ),
        );
        Compression::None
    });
    // The key says whether an object is compressed: readers (DuckDB, Spark, Athena) inflate a
    // `.gz` key and only those, so a key that disagrees with the bytes is unreadable downstream.
    for (key, text) in [
        ("output.brand_key", &raw.output.brand_key),
        ("output.media_key", &raw.output.media_key),
        ("output.media_hashtag_key", &raw.output.media_hashtag_key),
    ] {
        match (compression, text.ends_with(".gz")) {
            (Compression::Gzip, false) => bad(
                key,
                format!("`{text}` does not end in `.gz`, but output.compression is \"gzip\": readers would not inflate it"),
            ),
            (Compression::None, true) => bad(
                key,
                format!("`{text}` ends in `.gz`, but output.compression is \"none\": set it to \"gzip\" or drop the `.gz`"),
            ),
            _ => {}
        }
    }
    let mut templates_ok = true;
    let mut template = |key: &str, text: &str| {
        KeyTemplate::parse(text).unwrap_or_else(|m| {
            bad(key, m);
            templates_ok = false;
            KeyTemplate::unchecked(text)
        })
    };
    let brand_key = template("output.brand_key", &raw.output.brand_key);
    let media_key = template("output.media_key", &raw.output.media_key);
    let media_hashtag_key = template("output.media_hashtag_key", &raw.output.media_hashtag_key);

    let hs = &raw.hashtags;
    let raw_capture_key = KeyTemplate::parse(&raw.output.raw_capture_key).unwrap_or_else(|m| {
        bad("output.raw_capture_key", m);
        templates_ok = false;
        KeyTemplate::unchecked(&raw.output.raw_capture_key)
    });
    if templates_ok && (1..=60).contains(&hs.runs_per_hour) {
        let brands =
            chrono::Duration::minutes(60 / i64::from(raw.budget.brands_runs_per_hour.clamp(1, 60)));
        let hashtags = chrono::Duration::minutes(60 / i64::from(hs.runs_per_hour));
        let data = |config_key, template, job, interval| Rendered {
            config_key,
            template,
            job,
            interval,
            folder: false,
            longest_inside: "",
        };
        // A shard writes part files beside each object (`KeyTemplate::part`): they are checked
        // as the keys of the same setting, so they may not collide with any other setting's,
        // with the longest part number, so they fit S3's key length.
        let parts = [
            brand_key.part(LONGEST_PART),
            media_key.part(LONGEST_PART),
            media_hashtag_key.part(LONGEST_PART),
        ];
        let inside = longest_captures(&raw);
        let mut rendered = vec![
            data("output.brand_key", &brand_key, "brands", brands),
            data("output.media_key", &media_key, "brands", brands),
            data(
                "output.media_hashtag_key",
                &media_hashtag_key,
                "hashtags",
                hashtags,
            ),
            data("output.brand_key", &parts[0], "brands", brands),
            data("output.media_key", &parts[1], "brands", brands),
            data("output.media_hashtag_key", &parts[2], "hashtags", hashtags),
        ];
        if raw.output.raw_capture {
            rendered.push(Rendered {
                folder: true,
                longest_inside: &inside.brands,
                ..data(
                    "output.raw_capture_key (brands)",
                    &raw_capture_key,
                    "brands",
                    brands,
                )
            });
            rendered.push(Rendered {
                folder: true,
                longest_inside: &inside.hashtags,
                ..data(
                    "output.raw_capture_key (hashtags)",
                    &raw_capture_key,
                    "hashtags",
                    hashtags,
                )
            });
        }
        let fixed = [
            ("hashtags.state_key", hs.state_key.as_str()),
            ("graph.removed_fields_key", g.removed_fields_key.as_str()),
        ];
        for (key, message) in check_rendered(&rendered, &fixed) {
            bad(&key, message);
        }
    }

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
        removed_by_api: defaults.removed_by_api,
    };

    if raw.targets.is_empty() {
        bad("targets", "no [[targets]]: nothing to collect".into());
    }
    let mut seen_users = HashSet::new();
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (i, t) in raw.targets.iter().enumerate() {
        let key = |field: &str| format!("targets[{i}].{field}");
        if !seen_users.insert(t.username.to_ascii_lowercase()) {
            bad(
                &key("username"),
                format!("`{}` is listed twice", t.username),
            );
        }
        if t.hashtag.is_empty() && !t.hashtag_id.is_empty() {
            bad(
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

    Config {
        file: file.to_string(),
        graph: GraphSettings {
            api_version,
            base_url: base_url.trim_end_matches('/').to_string(),
            concurrency: g.concurrency.max(1) as usize,
            request_timeout: Duration::from_secs(g.request_timeout_secs),
            brand_media_limit: g.brand_media_limit,
            hashtag_media_limit: g.hashtag_media_limit,
            max_body_bytes: g.max_body_bytes,
            removed_fields_key: g.removed_fields_key.clone(),
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
            compression,
            brand_key,
            media_key,
            media_hashtag_key,
            raw_capture: raw.output.raw_capture,
            raw_capture_key,
        },
        hashtags: HashtagSettings {
            max_delay: Duration::from_secs(hs.max_delay_mins.saturating_mul(60)),
            overlap: Duration::from_secs(hs.overlap_secs),
            late_window: Duration::from_secs(hs.late_window_mins.saturating_mul(60)),
            runs_per_hour: hs.runs_per_hour,
            known_window: Duration::from_secs(hs.known_window_mins.saturating_mul(60)),
            fresh_delay: (hs.fresh_delay_mins > 0)
                .then(|| Duration::from_secs(hs.fresh_delay_mins.saturating_mul(60))),
            state_key: hs.state_key.clone(),
        },
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

/// The refusals of the file's declarations, keyed as the file spells them (`graph.concurrency`,
/// `targets[3].user_id`), in a stable order (sections by name, targets by index).
fn declared(errors: &ValidationErrors) -> Vec<Problem> {
    fn walk(errors: &ValidationErrors, prefix: &str, out: &mut Vec<(String, Problem)>) {
        for (field, kind) in errors.errors() {
            let key = if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            };
            match kind {
                ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| {
                    (
                        key.clone(),
                        Problem {
                            key: key.clone(),
                            message: sentence(e),
                        },
                    )
                })),
                ValidationErrorsKind::Struct(inner) => walk(inner, &key, out),
                ValidationErrorsKind::List(items) => {
                    for (i, inner) in items {
                        walk(inner, &format!("{key}[{i}]"), out)
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(errors, "", &mut found);
    // Indices zero-padded for the order only: targets[2] before targets[10].
    let order = |key: &str| {
        key.split(['[', ']'])
            .map(|part| match part.parse::<u64>() {
                Ok(n) => format!("{n:020}"),
                Err(_) => part.to_string(),
            })
            .collect::<Vec<_>>()
    };
    found.sort_by_key(|(key, _)| order(key));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The sentence of one refusal: "`value` is not in `min..=max`" (and why, when the declaration
/// says) for a range; the declaration's own sentence otherwise.
fn sentence(e: &ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(ToString::to_string);
    match (e.code.as_ref(), param("value"), param("min"), param("max")) {
        ("range", Some(value), Some(min), Some(max)) => {
            let why = e
                .message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!("{value} is not in {min}..={max}{why}")
        }
        _ => e
            .message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| format!("is refused ({})", e.code)),
    }
}

/// The longest name each job writes inside its raw capture folder, as a shard writes it
/// (`part-9999/hashtags/{hashtag}.{page}.json.gz`), for the key length check.
struct LongestCaptures {
    brands: String,
    hashtags: String,
}

fn longest_captures(raw: &FileConfig) -> LongestCaptures {
    use crate::graph::replay::{
        brand_page_path, brand_path, hashtag_search_path, recent_media_path,
    };
    // A run cannot fetch more pages of one hashtag, or of one account's media, than its
    // credential's hourly calls.
    let pages = raw.budget.calls_per_hour_per_credential.max(2);
    let longest = |names: Vec<String>| {
        let name = names
            .into_iter()
            .max_by_key(String::len)
            .unwrap_or_default();
        // `collect::persist` stores each capture gzip-compressed, as `{name}.gz`.
        format!("{}/{name}.gz", part_name(LONGEST_PART))
    };
    let tags = raw.targets.iter().filter(|t| !t.hashtag.is_empty());
    LongestCaptures {
        brands: longest(
            raw.targets
                .iter()
                .flat_map(|t| [brand_path(&t.username), brand_page_path(&t.username, pages)])
                .collect(),
        ),
        hashtags: longest(
            tags.flat_map(|t| {
                [
                    hashtag_search_path(&t.hashtag),
                    recent_media_path(&t.hashtag, pages),
                ]
            })
            .chain(["state.json".to_string()])
            .collect(),
        ),
    }
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
