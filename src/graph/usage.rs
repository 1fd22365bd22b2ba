//! Rate-limit headers: `X-App-Usage`, `X-Business-Use-Case-Usage` and `Retry-After`, read on
//! every response.
//!
//! This module owns turning those headers into percentages and durations, with checked
//! arithmetic: a value too large to represent means "longer than any wait we accept", never a
//! small number after a wrap-around. It must not decide anything (that is [`super::retry`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// What one response's usage headers say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Highest of `call_count`, `total_time`, `total_cputime` in `X-App-Usage`.
    pub app_percent: u32,
    /// Highest of the same in any entry of `X-Business-Use-Case-Usage`.
    pub business_percent: u32,
    /// Longest `estimated_time_to_regain_access` (minutes in the header).
    pub regain_after: Option<Duration>,
    /// `Retry-After` (seconds or an HTTP date), sent with a 429.
    pub retry_after: Option<Duration>,
}

impl Usage {
    pub fn from_headers(headers: &HeaderMap) -> Usage {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut usage = Usage::parse(
            text("x-app-usage").as_deref(),
            text("x-business-use-case-usage").as_deref(),
        );
        usage.retry_after = text("retry-after").and_then(|v| retry_after(&v, Utc::now()));
        usage
    }

    /// When access comes back, by the longest of the two signals.
    pub fn regain(&self) -> Option<Duration> {
        match (self.regain_after, self.retry_after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Parses the two header values; anything unreadable counts as 0, never as an error, and
    /// one unreadable figure does not hide the readable ones beside it (see `percent`).
    pub fn parse(app: Option<&str>, business: Option<&str>) -> Usage {
        let mut usage = Usage::default();
        if let Some(v) = app.and_then(|s| serde_json::from_str::<Value>(s).ok()) {
            usage.app_percent = percent_of(&v);
        }
        if let Some(Value::Object(map)) =
            business.and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            for entries in map.values() {
                for entry in entries.as_array().into_iter().flatten() {
                    usage.business_percent = usage.business_percent.max(percent_of(entry));
                    if let Some(d) = entry
                        .get("estimated_time_to_regain_access")
                        .and_then(minutes)
                    {
                        usage.regain_after = Some(usage.regain_after.map_or(d, |r| r.max(d)));
                    }
                }
            }
        }
        usage
    }

    pub fn max_percent(&self) -> u32 {
        self.app_percent.max(self.business_percent)
    }
}

/// A positive number of minutes as a duration; one too large to represent is [`Duration::MAX`].
fn minutes(v: &Value) -> Option<Duration> {
    if let Some(m) = v.as_u64() {
        return (m > 0).then(|| m.checked_mul(60).map_or(Duration::MAX, Duration::from_secs));
    }
    let m = v.as_f64().filter(|m| *m > 0.0)?;
    Some(Duration::try_from_secs_f64(m * 60.0).unwrap_or(Duration::MAX))
}

/// A `Retry-After` value: delay seconds, or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`)
/// measured from `now`. Seconds too many to represent are [`Duration::MAX`]; a date in the past
/// or an unreadable value is `None`.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            value
                .parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// The highest usage figure of one header object; a figure that cannot be read is skipped, so it
/// never hides the others.
fn percent_of(v: &Value) -> u32 {
    ["call_count", "total_time", "total_cputime"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(percent))
        .max()
        .unwrap_or(0)
}

/// One usage figure as a whole percentage, rounded up so that a figure over the threshold stays
/// over it (`85.5` → 86): a JSON number, or a number in a string (`"95"`). Above 100 is kept
/// (at or over any threshold); too large for `u32` is `u32::MAX`. Negative, `NaN`, `inf` and
/// other text is `None`: a broken figure says nothing about the usage.
fn percent(v: &Value) -> Option<u32> {
    let f = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Some(u32::try_from(u).unwrap_or(u32::MAX));
            }
            n.as_f64()?
        }
        Value::String(s) => {
            let s = s.trim();
            // Digits with a sign, point or exponent only: `f64::from_str` also reads "NaN" and
            // "inf", which are no figures.
            let numeric = s.bytes().any(|b| b.is_ascii_digit())
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            if !numeric {
                return None;
            }
            s.parse::<f64>().ok()?
        }
        _ => return None,
    };
    if f.is_nan() || f < 0.0 {
        return None;
    }
    let up = f.ceil();
    Some(if up >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        up as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_percentage_and_the_regain_time_are_read() {
        let u = Usage::parse(
            Some(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#),
            Some(
                r#"{"17841400008460056":[{"type":"instagram","call_count":91,"total_cputime":10,"total_time":12,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        assert_eq!(u.app_percent, 28);
        assert_eq!(u.business_percent, 91);
        assert_eq!(u.max_percent(), 91);
        assert_eq!(u.regain_after, Some(Duration::from_secs(180)));
        assert_eq!(Usage::parse(Some("not json"), None), Usage::default());
    }

    fn app_percent(header: &str) -> u32 {
        Usage::parse(Some(header), None).app_percent
    }

    #[test]
    fn fractions_round_up_and_figures_in_strings_count() {
        assert_eq!(app_percent(r#"{"call_count": 85.5}"#), 86);
        assert_eq!(app_percent(r#"{"call_count": 85.0001}"#), 86);
        assert_eq!(app_percent(r#"{"call_count": 85.0}"#), 85);
        assert_eq!(app_percent(r#"{"call_count": "95"}"#), 95);
        assert_eq!(app_percent(r#"{"total_time": " 94.2 "}"#), 95);
        let business = r#"{"1":[{"call_count": 90.01, "total_time": "NaN"}]}"#;
        assert_eq!(Usage::parse(None, Some(business)).business_percent, 91);
    }

    #[test]
    fn absurd_figures_count_as_over_any_threshold() {
        assert_eq!(app_percent(r#"{"call_count": 250}"#), 250);
        assert_eq!(
            app_percent(r#"{"call_count": 18446744073709551615}"#),
            u32::MAX
        );
        assert_eq!(app_percent(r#"{"call_count": 1e30}"#), u32::MAX);
        assert_eq!(app_percent(r#"{"call_count": "1e30"}"#), u32::MAX);
        assert_eq!(
            app_percent(r#"{"call_count": 99999999999999999999999999}"#),
            u32::MAX
        );
    }

    #[test]
    fn garbage_is_ignored_without_hiding_the_valid_figures_beside_it() {
        for garbage in [
            r#""NaN""#,
            r#""inf""#,
            r#""-Infinity""#,
            r#""high""#,
            r#""""#,
            "-5",
            "-0.5",
            r#""-95""#,
            "null",
            "true",
            "[96]",
            r#"{"v": 97}"#,
        ] {
            let header =
                format!(r#"{{"call_count": {garbage}, "total_time": 88, "total_cputime": 3}}"#);
            assert_eq!(app_percent(&header), 88, "{garbage}");
            let alone = format!(r#"{{"call_count": {garbage}}}"#);
            assert_eq!(app_percent(&alone), 0, "{garbage}");
        }
    }

    fn regain_minutes(minutes: &str) -> Option<Duration> {
        let header = format!(
            r#"{{"1":[{{"call_count":100,"estimated_time_to_regain_access":{minutes}}}]}}"#
        );
        Usage::parse(None, Some(&header)).regain_after
    }

    #[test]
    fn a_huge_regain_time_is_longer_than_any_wait_never_a_wrapped_small_one() {
        // u64::MAX / 60 + 1 minutes: the product with 60 overflows u64 (it would wrap to 4 s).
        assert_eq!(regain_minutes("307445734561825861"), Some(Duration::MAX));
        assert_eq!(regain_minutes("18446744073709551615"), Some(Duration::MAX));
        assert_eq!(regain_minutes("1e300"), Some(Duration::MAX));
        assert_eq!(regain_minutes("2"), Some(Duration::from_secs(120)));
        assert_eq!(regain_minutes("0"), None);
        assert_eq!(regain_minutes("-3"), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .expect("date")
            .with_timezone(&Utc);
        let check = |v: &str| retry_after(v, now);
        assert_eq!(check("1"), Some(Duration::from_secs(1)));
        assert_eq!(check(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(check("99999999999999999999999"), Some(Duration::MAX));
        assert_eq!(
            check("Wed, 21 Oct 2015 07:29:30 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(check("Wed, 21 Oct 2015 07:27:00 GMT"), None, "in the past");
        assert_eq!(check("soon"), None);
        assert_eq!(check("-5"), None);
        let both = Usage {
            regain_after: Some(Duration::from_secs(60)),
            retry_after: Some(Duration::from_secs(5)),
            ..Usage::default()
        };
        assert_eq!(both.regain(), Some(Duration::from_secs(60)));
    }
}
