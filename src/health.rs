//! Token health: how long the access token has left, from `debug_token`.
//!
//! A long-lived user token dies after about 60 days, silently. Checking once a day (the first
//! brands run after 00:00 UTC) and on `ig-collector token-status` turns that into a metric
//! (`TokenDaysLeft`), a WARN under 14 days and an ERROR under 3.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::graph::{ErrorKind, GraphError, Session};

/// Days left under which the check warns.
pub const WARN_DAYS: f64 = 14.0;
/// Days left under which the check reports an error.
pub const ERROR_DAYS: f64 = 3.0;

/// What `debug_token` says of one credential's token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenHealth {
    /// The account the token belongs to (the credential's `IG_USER_ID`).
    pub ig_user_id: String,
    pub valid: bool,
    /// Unix seconds; absent when the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Days until `expires_at`; absent when the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<f64>,
    /// `expires_at` is 0: a system user token, or one that does not expire.
    pub never_expires: bool,
    /// When the token's data access ends (Unix seconds), if reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_access_expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Reads a `debug_token` answer (`{"data": {...}}`). Pure.
///
/// An expiry that is there but not an integer (a string, a float, `null`) is an error: read as
/// "never expires", a token about to die would look healthy until it did.
pub fn parse(ig_user_id: &str, body: &Value, now: DateTime<Utc>) -> Result<TokenHealth, String> {
    let data = body.get("data").unwrap_or(&Value::Null);
    let expires_at = timestamp(data, "expires_at")?;
    let never_expires = expires_at == Some(0);
    let expires_at = expires_at.filter(|e| *e > 0);
    Ok(TokenHealth {
        ig_user_id: ig_user_id.to_string(),
        valid: data
            .get("is_valid")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        expires_at,
        days_left: expires_at
            .map(|e| (e.saturating_sub(now.timestamp()) as f64 / 86_400.0 * 10.0).round() / 10.0),
        never_expires,
        data_access_expires_at: timestamp(data, "data_access_expires_at")?.filter(|e| *e > 0),
        scopes: data
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A Unix-seconds field: absent is `None`, an integer is its value, anything else an error.
fn timestamp(data: &Value, field: &str) -> Result<Option<i64>, String> {
    match data.get(field) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            let mut shown = v.to_string();
            if shown.len() > 40 {
                shown = format!("{}…", shown.chars().take(40).collect::<String>());
            }
            format!(
                "unreadable expiry: debug_token answered {field} = {shown}, not Unix seconds; \
                 check the token by hand (Access Token Debugger) before trusting it"
            )
        }),
    }
}

/// Checks every credential's token and logs the outcome at the level its days left call for.
pub async fn check(
    session: &Session<'_>,
    lanes: usize,
) -> Vec<Result<TokenHealth, (String, GraphError)>> {
    let mut out = Vec::new();
    for lane in 0..lanes {
        let user = session.lane_user(lane).unwrap_or_default().to_string();
        let result = session
            .debug_token(lane)
            .await
            .and_then(|body| {
                parse(&user, &body, Utc::now()).map_err(|message| GraphError {
                    attempts: 1,
                    ..GraphError::local(ErrorKind::BadResponse, message)
                })
            })
            .map_err(|e| (user.clone(), e));
        match &result {
            Ok(h) => log(h),
            Err((user, e)) => tracing::error!(ig_user_id = %user, "token check failed: {e}"),
        }
        out.push(result);
    }
    out
}

fn log(h: &TokenHealth) {
    match h.days_left {
        _ if !h.valid => {
            tracing::error!(ig_user_id = %h.ig_user_id, "the access token is not valid: replace it now (see README, token rotation)")
        }
        None => {
            tracing::info!(ig_user_id = %h.ig_user_id, never_expires = h.never_expires, "the access token never expires")
        }
        Some(d) if d < ERROR_DAYS => {
            tracing::error!(ig_user_id = %h.ig_user_id, days_left = d, "the access token expires in under {ERROR_DAYS} days: rotate it now")
        }
        Some(d) if d < WARN_DAYS => {
            tracing::warn!(ig_user_id = %h.ig_user_id, days_left = d, "the access token expires in under {WARN_DAYS} days: plan its rotation")
        }
        Some(d) => {
            tracing::info!(ig_user_id = %h.ig_user_id, days_left = d, "access token checked")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn days_left_and_never_expiring_tokens_are_read() {
        let now = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 0)
            .single()
            .expect("time");
        let body = json!({"data": {"is_valid": true, "expires_at": now.timestamp() + 10 * 86_400, "scopes": ["instagram_basic"]}});
        let h = parse("1", &body, now).expect("readable");
        assert_eq!(h.days_left, Some(10.0));
        assert!(!h.never_expires);
        let h = parse(
            "1",
            &json!({"data": {"is_valid": true, "expires_at": 0}}),
            now,
        )
        .expect("readable");
        assert!(h.never_expires);
        assert_eq!(h.days_left, None);
    }

    #[test]
    fn an_expiry_that_is_not_an_integer_is_an_error_not_never_expires() {
        let now = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 0)
            .single()
            .expect("time");
        for bad in [
            json!({"data": {"is_valid": true, "expires_at": "1700000000"}}),
            json!({"data": {"is_valid": true, "expires_at": 1.7e9}}),
            json!({"data": {"is_valid": true, "expires_at": null}}),
            json!({"data": {"is_valid": true, "expires_at": 0, "data_access_expires_at": "soon"}}),
        ] {
            let e = parse("1", &bad, now).expect_err("unreadable");
            assert!(e.starts_with("unreadable expiry"), "{e}");
        }
    }
}
