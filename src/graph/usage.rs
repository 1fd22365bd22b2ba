//! Rate-limit headers: `X-App-Usage` and `X-Business-Use-Case-Usage`, read on every response.

use std::time::Duration;

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
}

impl Usage {
    pub fn from_headers(headers: &HeaderMap) -> Usage {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Usage::parse(
            text("x-app-usage").as_deref(),
            text("x-business-use-case-usage").as_deref(),
        )
    }

    /// Parses the two header values; anything unreadable counts as 0, never as an error.
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
                    let minutes = entry
                        .get("estimated_time_to_regain_access")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    if minutes > 0 {
                        let d = Duration::from_secs(minutes * 60);
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

fn percent_of(v: &Value) -> u32 {
    ["call_count", "total_time", "total_cputime"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_u64))
        .max()
        .unwrap_or(0)
        .min(u32::MAX as u64) as u32
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
}
