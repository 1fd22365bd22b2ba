//! What a `debug_token` answer says of a token: valid or not, when it expires, which scopes it
//! has. Meta answers `{"data": {"is_valid", "expires_at", "data_access_expires_at", "scopes",
//! …}}`, times in Unix seconds, and an `expires_at` of 0 for a token that never expires.
//!
//! This module owns reading that body, so no other module knows its layout. It must not call
//! (that is `Session::debug_token`) nor judge what the answer means for the run (that is
//! `health`: days left, warnings, renewal).

use serde_json::Value;

use super::error::{ErrorKind, GraphError};

/// When a token expires, as `debug_token` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No `expires_at` in the answer (or one before 1970, which no live token has).
    Unreported,
    /// `expires_at` is 0: a system user token, or one that does not expire.
    Never,
    /// The Unix second the token expires at.
    At(i64),
}

/// What `debug_token` says of one token.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugToken {
    /// `is_valid`; a missing or non-boolean value reads as not valid.
    pub valid: bool,
    pub expiry: Expiry,
    /// When the token's data access ends (Unix seconds), if reported and not 0.
    pub data_access_expires_at: Option<i64>,
    /// The permissions the token carries; entries that are not strings are left out.
    pub scopes: Vec<String>,
}

/// Reads a `debug_token` answer (`{"data": {...}}`). Pure.
///
/// An expiry that is there but not an integer (a string, a float, `null`) is an error
/// ([`ErrorKind::BadResponse`]): read as "never expires", a token about to die would look
/// healthy until it did.
pub fn read(body: &Value) -> Result<DebugToken, GraphError> {
    let data = body.get("data").unwrap_or(&Value::Null);
    let expiry = match timestamp(data, "expires_at")? {
        Some(0) => Expiry::Never,
        Some(e) if e > 0 => Expiry::At(e),
        _ => Expiry::Unreported,
    };
    Ok(DebugToken {
        valid: data
            .get("is_valid")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        expiry,
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
fn timestamp(data: &Value, field: &str) -> Result<Option<i64>, GraphError> {
    match data.get(field) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            let mut shown = v.to_string();
            if shown.len() > 40 {
                shown = format!("{}…", shown.chars().take(40).collect::<String>());
            }
            GraphError {
                attempts: 1,
                ..GraphError::local(
                    ErrorKind::BadResponse,
                    format!(
                        "unreadable expiry: debug_token answered {field} = {shown}, not Unix \
                         seconds; check the token by hand (Access Token Debugger) before \
                         trusting it"
                    ),
                )
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiries_validity_and_scopes_are_read() {
        let t = read(&json!({"data": {"is_valid": true, "expires_at": 1_700_000_000, "data_access_expires_at": 1_800_000_000, "scopes": ["instagram_basic", 7]}}))
            .expect("readable");
        assert_eq!(
            t,
            DebugToken {
                valid: true,
                expiry: Expiry::At(1_700_000_000),
                data_access_expires_at: Some(1_800_000_000),
                scopes: vec!["instagram_basic".to_string()],
            }
        );
        let t = read(
            &json!({"data": {"is_valid": true, "expires_at": 0, "data_access_expires_at": 0}}),
        )
        .expect("readable");
        assert_eq!((t.expiry, t.data_access_expires_at), (Expiry::Never, None));
        let t = read(&json!({"data": {"is_valid": "yes"}})).expect("readable");
        assert_eq!((t.valid, t.expiry), (false, Expiry::Unreported));
    }

    #[test]
    fn an_expiry_that_is_not_an_integer_is_an_error_not_never_expires() {
        for bad in [
            json!({"data": {"is_valid": true, "expires_at": "1700000000"}}),
            json!({"data": {"is_valid": true, "expires_at": 1.7e9}}),
            json!({"data": {"is_valid": true, "expires_at": null}}),
            json!({"data": {"is_valid": true, "expires_at": 0, "data_access_expires_at": "soon"}}),
        ] {
            let e = read(&bad).expect_err("unreadable");
            assert_eq!(e.kind, ErrorKind::BadResponse, "{e}");
            assert!(e.message.starts_with("unreadable expiry"), "{e}");
        }
        let e = read(&json!({"data": {"expires_at": "1700000000"}})).expect_err("unreadable");
        assert_eq!(
            e.to_string(),
            "unreadable response: unreadable expiry: debug_token answered expires_at = \"1700000000\", not Unix seconds; check the token by hand (Access Token Debugger) before trusting it"
        );
    }
}
