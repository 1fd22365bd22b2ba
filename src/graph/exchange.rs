//! Exchanging a long-lived user token for a fresh one: `oauth/access_token` with
//! `grant_type=fb_exchange_token`, the app id (`client_id`) and the app secret (`client_secret`).
//! Meta answers `{"access_token", "token_type", "expires_in"}`: a token that lasts about 60
//! days from now. The old token keeps working until its own expiry.
//!
//! This module owns that one call and reading its answer. It must not decide when a token is
//! exchanged (that is `health::renew`) nor where the new token goes (that is `setup::renew`).
//!
//! Meta documents the call as a GET with its parameters in the query. Here they travel in a form
//! body (`POST` with `method=GET`, as `debug_token` does), because the query is part of the URL
//! and the app secret and the token must never be in one: URLs end up in proxies' and load
//! balancers' logs. The call goes through the session's one call path (retries, deadline,
//! booking, scrubbing), as a `Request::Exchange`, so that no text of its answer, which
//! holds a token the scrubber does not know, can be quoted in an error or a log line, and so
//! that its refusal stops none of the credential's other calls: Meta refuses a token issued for
//! another app with code 190, which from any other call would mean the token is dead.

use std::time::Duration;

use serde_json::Value;

use super::error::{ErrorKind, GraphError};
use super::http::Request;
use super::session::{Need, Session};
use super::token::AccessToken;

/// The shortest token taken from an answer. The [`super::Scrubber`] does not look for very
/// short secrets (it would redact ordinary words), so a token must be long enough for it to
/// hide; real tokens run to about 200 characters.
const MIN_TOKEN_CHARS: usize = 20;
/// The longest token taken from an answer: anything longer is not a token.
const MAX_TOKEN_CHARS: usize = 4096;

/// What `oauth/access_token` gave. Prints nothing of either token.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// The token it was exchanged for: the token secret's entry is the one that still holds it.
    pub replaces: AccessToken,
    pub token: AccessToken,
    /// How long the new token lasts, when the answer says (`expires_in`).
    pub expires_in: Option<Duration>,
}

impl Session<'_> {
    /// True when credential `lane`'s token can be exchanged: its app id and app secret are known.
    pub fn can_exchange(&self, lane: usize) -> bool {
        self.client(lane)
            .is_some_and(|(_, c)| c.credentials.can_exchange())
    }

    /// Exchanges credential `lane`'s token for a fresh one, with its app id and app secret.
    /// Retried, bounded by the run's deadline and booked like every other call.
    pub async fn exchange_token(&self, lane: usize) -> Result<Exchanged, GraphError> {
        let Some((lane, c)) = self.client(lane) else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no live credentials (replay)",
            ));
        };
        let (Some(app_id), Some(app_secret)) = (&c.credentials.app_id, &c.credentials.app_secret)
        else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no app id and app secret for this credential: set IG_APP_ID and IG_APP_SECRET, or `app_id` and `app_secret` in the token secret",
            ));
        };
        let request = Request::Exchange {
            form: vec![
                ("method", "GET".to_string()),
                ("grant_type", "fb_exchange_token".to_string()),
                ("client_id", app_id.clone()),
                ("client_secret", app_secret.expose().to_string()),
                (
                    "fb_exchange_token",
                    c.credentials.token.expose().to_string(),
                ),
            ],
        };
        let body = self.call(lane, c, request, Need::Required, None).await?;
        read_answer(&body, &c.credentials.token)
    }
}

/// Reads an `oauth/access_token` answer to the exchange of `replaces`. Pure. The answer is never
/// quoted: it holds the token.
pub fn read_answer(body: &Value, replaces: &AccessToken) -> Result<Exchanged, GraphError> {
    let refused = |what: &str| {
        GraphError {
        attempts: 1,
        ..GraphError::local(
            ErrorKind::BadResponse,
            format!("the token exchange answered without a usable token ({what}; the answer is not shown)"),
        )
    }
    };
    let token = match body.get("access_token") {
        None => return Err(refused("no `access_token`")),
        Some(Value::String(t)) => t,
        Some(_) => return Err(refused("`access_token` is not a string")),
    };
    let chars = token.chars().count();
    if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&chars) {
        return Err(refused(&format!(
            "`access_token` has {chars} characters, not {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS}"
        )));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(refused(
            "`access_token` holds characters a token does not have",
        ));
    }
    Ok(Exchanged {
        replaces: replaces.clone(),
        token: AccessToken::new(token.as_str()),
        // Informational: the next daily check reads the real expiry from `debug_token`.
        expires_in: body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEW: &str = "EAAGfreshTOKENfreshTOKEN0123";

    fn read_answer(body: &Value) -> Result<Exchanged, GraphError> {
        super::read_answer(body, &AccessToken::new("EAAGoldTOKENoldTOKEN0123"))
    }

    #[test]
    fn a_token_and_its_lifetime_are_read() {
        let got = read_answer(
            &json!({"access_token": NEW, "token_type": "bearer", "expires_in": 5183944}),
        )
        .expect("a token");
        assert_eq!(got.token.expose(), NEW);
        assert_eq!(got.expires_in, Some(Duration::from_secs(5183944)));
        let without = read_answer(&json!({"access_token": NEW})).expect("a token");
        assert_eq!(without.expires_in, None);
    }

    #[test]
    fn an_answer_without_a_usable_token_is_refused_without_quoting_it() {
        for (body, why) in [
            (json!({"token_type": "bearer"}), "no `access_token`"),
            (json!({"access_token": 12345}), "not a string"),
            (json!({"access_token": "short"}), "has 5 characters"),
            (
                json!({"access_token": "x".repeat(5000)}),
                "has 5000 characters",
            ),
            (
                json!({"access_token": "EAAG token with spaces in it"}),
                "characters a token does not have",
            ),
        ] {
            let e = read_answer(&body).expect_err("refused");
            assert_eq!(e.kind, ErrorKind::BadResponse);
            assert!(e.message.contains(why), "{body}: {e}");
            assert!(!e.message.contains("with spaces"), "{e}");
        }
    }
}
