//! The `[[targets]]` entries as written, with the checks on their names: an Instagram username,
//! a numeric user id, a hashtag without its `#`, a numeric hashtag id.

use serde::Deserialize;
use validator::Validate;

use crate::validate::is_digits;

#[derive(Debug, Deserialize, Validate)]
pub(in crate::config) struct TargetEntry {
    #[validate(custom(function = "username"))]
    pub(in crate::config) username: String,
    #[validate(custom(function = "user_id"))]
    pub(in crate::config) user_id: String,
    #[serde(default)]
    #[validate(custom(function = "hashtag"))]
    pub(in crate::config) hashtag: String,
    #[serde(default)]
    #[validate(custom(function = "hashtag_id"))]
    pub(in crate::config) hashtag_id: String,
    #[serde(default = "default_hashtag_priority")]
    #[validate(range(min = 1, max = 10))]
    pub(in crate::config) hashtag_priority: u8,
}

pub(super) fn default_hashtag_priority() -> u8 {
    5
}

/// A refusal whose message is the whole sentence shown to the operator.
fn refused(code: &'static str, message: String) -> validator::ValidationError {
    validator::ValidationError::new(code).with_message(message.into())
}

fn username(s: &str) -> Result<(), validator::ValidationError> {
    let ok = (1..=30).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    ok.then_some(()).ok_or_else(|| {
        refused(
            "username",
            format!("`{s}` is not an Instagram username (1-30 of a-z, 0-9, '.', '_')"),
        )
    })
}

fn user_id(s: &str) -> Result<(), validator::ValidationError> {
    is_digits(s).then_some(()).ok_or_else(|| {
        refused(
            "user_id",
            format!("`{s}` is not a numeric Instagram user id"),
        )
    })
}

/// Empty is allowed: the account is tracked by the brands job only.
fn hashtag(s: &str) -> Result<(), validator::ValidationError> {
    let ok = s.is_empty() || s.chars().all(|c| c.is_alphanumeric() || c == '_');
    ok.then_some(()).ok_or_else(|| {
        refused(
            "hashtag",
            format!("`{s}` is not a hashtag name (letters, digits, '_', without '#')"),
        )
    })
}

/// Empty is allowed: the id is then resolved at run time.
fn hashtag_id(s: &str) -> Result<(), validator::ValidationError> {
    (s.is_empty() || is_digits(s)).then_some(()).ok_or_else(|| {
        refused(
            "hashtag_id",
            format!("`{s}` is not numeric; leave it empty to resolve it at run time"),
        )
    })
}
