//! The credentials a run calls with: from the token secret or the environment, each user id
//! checked, and completed from the environment.

use std::time::Instant;

use super::env::Env;
use super::error::SetupError;
use super::secret::read_secret_text;
use crate::graph::{AccessToken, AppSecret, Credentials};

/// The credentials, one or more: from Secrets Manager when `IG_TOKEN_SECRET_ARN` is set, else
/// `IG_USER_ID` and `IG_ACCESS_TOKEN` (comma-separated lists of the same length for several).
/// `IG_APP_SECRET` (or `app_secret` in the secret) turns on `appsecret_proof`. `IG_APP_ID` (or
/// `app_id` in the secret) is kept for tokens read from the secret only: a refreshed token is
/// written back there (`renew`), and a token from `IG_ACCESS_TOKEN` has nowhere to go.
/// The Secrets Manager read ends by `until` (and within
/// [`SECRET_READ_TIMEOUT`](super::SECRET_READ_TIMEOUT)).
///
/// No Instagram user id may be named twice: two credentials of one user share one hourly budget,
/// and the budget check and the plan would count it twice.
pub async fn credentials(
    env: &Env,
    until: Option<Instant>,
) -> Result<Vec<Credentials>, SetupError> {
    let entries = match &env.token_secret_arn {
        Some(arn) => {
            let text = read_secret_text(arn, until).await?;
            let secret = parse_secret(&text).map_err(|message| SetupError::Secret {
                arn: arn.clone(),
                message,
            })?;
            secret_entries(secret, env)?
        }
        None => env_entries(env)?,
    };
    credentials_of(entries, env)
}

/// The entries of the token secret, the user id of a one-token secret taken from `IG_USER_ID`.
fn secret_entries(secret: SecretValue, env: &Env) -> Result<Vec<Entry>, SetupError> {
    match secret {
        SecretValue::Many(many) => Ok(many),
        SecretValue::One(mut entry) => {
            let ids = &env.ig_user_ids;
            match ids.len() {
                0 => return Err(SetupError::MissingUserId),
                1 => {}
                n => return Err(SetupError::UserIdCount(n)),
            }
            entry.ig_user_id = ids[0].clone();
            Ok(vec![entry])
        }
    }
}

/// `IG_USER_ID` and `IG_ACCESS_TOKEN`, paired.
fn env_entries(env: &Env) -> Result<Vec<Entry>, SetupError> {
    let ids = env.ig_user_ids.clone();
    let tokens = env.access_tokens.clone();
    if tokens.is_empty() {
        return Err(SetupError::MissingToken);
    }
    if ids.is_empty() {
        return Err(SetupError::MissingUserId);
    }
    if ids.len() != tokens.len() {
        return Err(SetupError::CredentialCount {
            ids: ids.len(),
            tokens: tokens.len(),
        });
    }
    Ok(ids
        .into_iter()
        .zip(tokens)
        .map(|(ig_user_id, token)| Entry {
            ig_user_id,
            token,
            app_secret: None,
            app_id: None,
        })
        .collect())
}

/// Checks the entries (numeric, distinct user ids) and completes them from the environment.
fn credentials_of(entries: Vec<Entry>, env: &Env) -> Result<Vec<Credentials>, SetupError> {
    let from_secret = env.token_secret_arn.is_some();
    let source_name = if from_secret {
        "the token secret's `credentials`"
    } else {
        "IG_USER_ID"
    };
    let mut out: Vec<Credentials> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let Entry {
            ig_user_id,
            token,
            app_secret,
            app_id,
        } = entry;
        if !crate::validate::is_digits(&ig_user_id) {
            return Err(SetupError::BadUserId(i + 1));
        }
        if let Some(first) = out.iter().position(|c| c.ig_user_id == ig_user_id) {
            return Err(SetupError::DuplicateUserId {
                source_name,
                ig_user_id,
                first: first + 1,
                repeat: i + 1,
            });
        }
        out.push(Credentials {
            ig_user_id,
            token: AccessToken::new(token),
            app_secret: app_secret
                .or_else(|| env.app_secret.clone())
                .map(AppSecret::new),
            app_id: app_id
                .or_else(|| env.app_id.clone())
                .filter(|_| from_secret),
        });
    }
    Ok(out)
}

/// One credential as the token secret or the environment gives it.
#[derive(Clone)]
struct Entry {
    /// Empty in a one-token secret until `IG_USER_ID` fills it.
    ig_user_id: String,
    token: String,
    app_secret: Option<String>,
    app_id: Option<String>,
}

/// What the token secret holds.
enum SecretValue {
    /// A raw token, or JSON `{"access_token", "app_secret"?, "app_id"?}`; the user id comes
    /// from `IG_USER_ID`.
    One(Entry),
    /// JSON `{"credentials": [{"ig_user_id", "access_token", "app_secret"?, "app_id"?}, …]}`.
    Many(Vec<Entry>),
}

fn parse_secret(text: &str) -> Result<SecretValue, String> {
    if !text.starts_with('{') {
        return if text.is_empty() {
            Err("the secret is empty".into())
        } else {
            Ok(SecretValue::One(Entry {
                ig_user_id: String::new(),
                token: text.to_string(),
                app_secret: None,
                app_id: None,
            }))
        };
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| "the secret looks like JSON but does not parse".to_string())?;
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|t| t.as_str()).map(str::to_string);
    if let Some(list) = v.get("credentials").and_then(|c| c.as_array()) {
        let mut many = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let id = s(c, "ig_user_id")
                .ok_or_else(|| format!("credentials[{i}] has no string `ig_user_id`"))?;
            let token = s(c, "access_token")
                .ok_or_else(|| format!("credentials[{i}] has no string `access_token`"))?;
            many.push(Entry {
                ig_user_id: id,
                token,
                app_secret: s(c, "app_secret"),
                app_id: s(c, "app_id"),
            });
        }
        if many.is_empty() {
            return Err("`credentials` is empty".into());
        }
        return Ok(SecretValue::Many(many));
    }
    let token = s(&v, "access_token").ok_or_else(|| {
        "the JSON secret has no string `access_token` (nor `credentials`)".to_string()
    })?;
    Ok(SecretValue::One(Entry {
        ig_user_id: String::new(),
        token,
        app_secret: s(&v, "app_secret"),
        app_id: s(&v, "app_id"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_instagram_user_named_twice_is_refused_naming_both_entries() {
        let env = Env::from_lookup(|k| match k {
            "IG_USER_ID" => Some("17841400000000001,17841400000000002,17841400000000001".into()),
            "IG_ACCESS_TOKEN" => Some("EAAGtokenA,EAAGtokenB,EAAGtokenC".into()),
            _ => None,
        });
        let e = credentials(&env, None).await.expect_err("refused");
        let message = e.to_string();
        assert_eq!(e.kind_name(), "UserIdInvalid");
        assert!(
            message.starts_with("IG_USER_ID entry 3 (counting from 1) names Instagram user 17841400000000001 again, as entry 1 does"),
            "{message}"
        );
        assert!(!message.contains("EAAGtoken"), "{message}");
        let distinct = Env::from_lookup(|k| match k {
            "IG_USER_ID" => Some("17841400000000001,17841400000000002".into()),
            "IG_ACCESS_TOKEN" => Some("EAAGtokenA,EAAGtokenB".into()),
            _ => None,
        });
        assert_eq!(
            credentials(&distinct, None).await.map(|c| c.len()).ok(),
            Some(2)
        );
    }

    #[test]
    fn the_app_id_is_kept_only_for_tokens_read_from_the_secret() {
        let entry = |app_id: Option<&str>| Entry {
            ig_user_id: "17841400000000001".into(),
            token: "EAAGtokenFromSomewhere".into(),
            app_secret: Some("app-secret-value".into()),
            app_id: app_id.map(str::to_string),
        };
        let env = |secret: bool| {
            Env::from_lookup(|k| match k {
                "IG_APP_ID" => Some("42".into()),
                "IG_TOKEN_SECRET_ARN" if secret => Some("arn:aws:secretsmanager:x".into()),
                _ => None,
            })
        };
        let app_id = |entry: Entry, env: &Env| {
            credentials_of(vec![entry], env)
                .ok()
                .and_then(|c| c.first().map(|c| c.app_id.clone()))
        };
        assert_eq!(app_id(entry(None), &env(true)), Some(Some("42".into())));
        assert_eq!(app_id(entry(Some("7")), &env(true)), Some(Some("7".into())));
        // A token from IG_ACCESS_TOKEN has no secret to be written back to.
        assert_eq!(app_id(entry(None), &env(false)), Some(None));
    }

    #[test]
    fn the_secret_may_be_raw_json_or_a_list_of_credentials() {
        assert!(
            matches!(parse_secret("EAAGraw"), Ok(SecretValue::One(e)) if e.token == "EAAGraw" && e.app_secret.is_none())
        );
        assert!(matches!(
            parse_secret(r#"{"access_token": "EAAGa", "app_secret": "s", "app_id": "42"}"#),
            Ok(SecretValue::One(e)) if e.token == "EAAGa" && e.app_secret.as_deref() == Some("s") && e.app_id.as_deref() == Some("42")
        ));
        let many = parse_secret(
            r#"{"credentials": [{"ig_user_id": "1", "access_token": "a"}, {"ig_user_id": "2", "access_token": "b", "app_id": "42"}]}"#,
        );
        assert!(
            matches!(many, Ok(SecretValue::Many(v)) if v.len() == 2 && v[1].ig_user_id == "2" && v[1].app_id.as_deref() == Some("42") && v[0].app_id.is_none())
        );
        let bad = [
            ("", "empty"),
            ("{oops", "does not parse"),
            (r#"{"token": "x"}"#, "no string `access_token`"),
            (
                r#"{"credentials": [{"ig_user_id": "1"}]}"#,
                "credentials[0] has no string `access_token`",
            ),
            (r#"{"credentials": []}"#, "is empty"),
        ];
        for (text, expected) in bad {
            match parse_secret(text) {
                Err(m) => assert!(m.contains(expected), "{text}: {m}"),
                Ok(_) => panic!("{text} must be refused"),
            }
        }
    }
}
