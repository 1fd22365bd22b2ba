//! Fresh tokens written back to the token secret, and `ig-collector token-refresh`.
//!
//! The daily check (`collect`, through `health::renew`) and `token-refresh` exchange tokens for
//! fresh ones; [`settle`] then writes them to the token secret they were read from, and says in
//! each credential's report line what became of its token. The secret is read again just before
//! the write, and an entry is rewritten only while it still holds the token its fresh one
//! replaces: what the entry describes (the account and its current token) decides, so a token an
//! operator or another delivery put there meanwhile is never overwritten by an older refresh.
//! Every other field of the secret is kept, in its order.
//!
//! Secrets Manager has no conditional write: two refreshes of the same secret at the same moment
//! (two credentials' shards at 00:00) can each write a version the other did not see, and one
//! fresh token is then lost. Nothing breaks: the old token keeps working until it expires, and
//! the next daily check, which finds it still due, refreshes it again. So a refresh threshold of
//! several days leaves several chances.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::credentials::credentials;
use super::env::Env;
use super::error::SetupError;
use super::secret::{is_timeout, read_secret_text, secrets_client, within};
use crate::config::Config;
use crate::graph::{Scrubber, Source};
use crate::health::{self, RefreshOutcome, Renew, RenewedToken, RenewedTokens, TokenRefresh};

/// How long the write of the token secret may take, attempts included, when the caller leaves
/// more.
pub const SECRET_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one fresh token in the secret.
#[derive(Debug, Clone, PartialEq)]
enum Placed {
    /// Its entry held the old token and now holds the fresh one.
    Written,
    /// Its entry holds another token (or is gone): left as it is, for this reason.
    Superseded(&'static str),
}

/// The secret's text with each fresh token in place of the token it replaces, and what became
/// of each (in `renewed`'s order). Pure. The forms are those `parse_secret` reads: a raw token,
/// JSON with `access_token`, or JSON with `credentials`; the JSON keeps every other field.
fn rewrite(text: &str, renewed: &[RenewedToken]) -> Result<(String, Vec<Placed>), String> {
    const OTHER: &str = "the secret holds another token for the account now";
    let text = text.trim();
    if !text.starts_with('{') {
        let mut out = text.to_string();
        let placed = renewed
            .iter()
            .map(|r| {
                if out == r.old.expose() {
                    out = r.new.expose().to_string();
                    Placed::Written
                } else {
                    Placed::Superseded(OTHER)
                }
            })
            .collect();
        return Ok((out, placed));
    }
    let mut doc: Value = serde_json::from_str(text)
        .map_err(|_| "the secret looks like JSON but does not parse".to_string())?;
    let mut placed = Vec::with_capacity(renewed.len());
    for r in renewed {
        let entry = match doc.get_mut("credentials").and_then(Value::as_array_mut) {
            Some(list) => list
                .iter_mut()
                .find(|c| c.get("ig_user_id").and_then(Value::as_str) == Some(&r.ig_user_id)),
            None => Some(&mut doc),
        };
        placed.push(match entry {
            None => Placed::Superseded("the account is no longer in the secret"),
            Some(e) if e.get("access_token").and_then(Value::as_str) == Some(r.old.expose()) => {
                e["access_token"] = Value::String(r.new.expose().to_string());
                Placed::Written
            }
            Some(_) => Placed::Superseded(OTHER),
        });
    }
    let out = serde_json::to_string(&doc).map_err(|e| format!("cannot write JSON: {e}"))?;
    Ok((out, placed))
}

/// Writes the fresh tokens to the token secret `arn`: reads it, rewrites the entries that still
/// hold the tokens being replaced, and puts the result as the secret's new version (only when
/// something changed). The read and the write each end by `until`, and within their own
/// timeout. Every message is scrubbed of the old and new tokens.
async fn store(
    arn: &str,
    renewed: &RenewedTokens,
    until: Option<Instant>,
) -> Result<Vec<Placed>, SetupError> {
    let scrubber = Scrubber::new(
        renewed
            .0
            .iter()
            .flat_map(|r| [r.old.expose(), r.new.expose()]),
    );
    let fail = |message: String| SetupError::SecretWrite {
        arn: arn.to_string(),
        message: scrubber.scrub(&message),
    };
    let text = read_secret_text(arn, until).await?;
    let (text, placed) = rewrite(&text, &renewed.0).map_err(fail)?;
    if !placed.contains(&Placed::Written) {
        return Ok(placed);
    }
    let bound = within(SECRET_WRITE_TIMEOUT, until);
    let timed_out = || SetupError::SecretTimeout {
        arn: arn.to_string(),
        secs: bound.as_secs_f64(),
    };
    let write = async {
        let client = secrets_client(bound).await;
        client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(text)
            .send()
            .await
    };
    match tokio::time::timeout(bound, write).await {
        Err(_) => Err(timed_out()),
        Ok(Err(e)) if is_timeout(&e) => Err(timed_out()),
        Ok(Err(e)) => Err(fail(
            aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        )),
        Ok(Ok(_)) => Ok(placed),
    }
}

/// Stores a refresh's fresh tokens in the token secret `arn` and completes `report`: each
/// `exchanged` line becomes `refreshed`, `superseded` or `failed`. Then logs every line (the
/// one place a refresh is logged). Returns how many fresh tokens were written. Ends by `until`.
pub async fn settle(
    report: &mut [TokenRefresh],
    renewed: RenewedTokens,
    arn: Option<&str>,
    until: Option<Instant>,
) -> usize {
    let stored = match (renewed.is_empty(), arn) {
        (true, _) => Ok(Vec::new()),
        (false, Some(arn)) => store(arn, &renewed, until).await,
        // Credentials get an app id only when their token comes from the secret.
        (false, None) => Err(SetupError::RefreshWithoutSecret),
    };
    let mut written = 0;
    for line in report
        .iter_mut()
        .filter(|l| l.outcome == RefreshOutcome::Exchanged)
    {
        let i = renewed
            .0
            .iter()
            .position(|r| r.ig_user_id == line.ig_user_id);
        let placed = match (&stored, i) {
            (Ok(placed), Some(i)) => placed.get(i).cloned(),
            _ => None,
        };
        match (placed, &stored) {
            (Some(Placed::Written), _) => {
                written += 1;
                line.outcome = RefreshOutcome::Refreshed;
                line.message.push_str(", and written to the token secret");
            }
            (Some(Placed::Superseded(why)), _) => {
                line.outcome = RefreshOutcome::Superseded;
                line.message = format!("{}, but {why}: left as it is", line.message);
            }
            (None, Err(e)) => {
                line.outcome = RefreshOutcome::Failed;
                line.message = format!(
                    "{}, but the fresh token was not stored: {e}. The current token stays in use; the next daily check tries again (or run ig-collector token-refresh)",
                    line.message
                );
            }
            (None, Ok(_)) => {
                line.outcome = RefreshOutcome::Failed;
                line.message
                    .push_str(", but the fresh token was lost before it was stored");
            }
        }
    }
    report.iter().for_each(TokenRefresh::log);
    written
}

/// `ig-collector token-refresh`: checks each credential's token (`debug_token`) and exchanges
/// every token that can be (or none, for a `dry_run`), then writes the fresh ones to the token
/// secret. A credential without an app id or an app secret stops it before any call, saying
/// which to set. Every wait is bounded: the Graph calls by their timeouts and attempts, the
/// secret's read and write by theirs.
pub async fn refresh(
    config: &Config,
    env: &Env,
    dry_run: bool,
) -> Result<Vec<TokenRefresh>, SetupError> {
    let arn = env.token_secret_arn.as_deref();
    if !dry_run && arn.is_none() {
        return Err(SetupError::RefreshWithoutSecret);
    }
    let credentials = credentials(env, None).await?;
    if !dry_run {
        for (i, c) in credentials.iter().enumerate() {
            let (entry, ig_user_id) = (i + 1, c.ig_user_id.clone());
            if c.app_id.is_none() {
                return Err(SetupError::MissingAppId { entry, ig_user_id });
            }
            if c.app_secret.is_none() {
                return Err(SetupError::MissingAppSecret { entry, ig_user_id });
            }
        }
    }
    let lanes = credentials.len();
    let source = Source::live(&config.graph, credentials)?;
    let session = source.session(&config.retry, &config.graph, None);
    let checked = health::check(&session, lanes).await;
    let when = if dry_run { Renew::Never } else { Renew::Always };
    let renewal = health::renew(&session, &checked, when).await;
    let mut report = renewal.report;
    settle(&mut report, renewal.tokens, arn, None).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::AccessToken;

    const OLD: &str = "EAAGoldTOKENoldTOKEN0123";
    const NEW: &str = "EAAGnewTOKENnewTOKEN4567";

    fn renewed(user: &str) -> RenewedToken {
        RenewedToken {
            ig_user_id: user.into(),
            old: AccessToken::new(OLD),
            new: AccessToken::new(NEW),
        }
    }

    fn check(text: &str, expected: &str, placed: &[Placed]) {
        let (out, got) = rewrite(text, &[renewed("2")]).expect("rewritten");
        assert_eq!(out, expected, "{text}");
        assert_eq!(got, placed, "{text}");
    }

    #[test]
    fn each_form_of_the_secret_takes_the_fresh_token_and_keeps_its_other_fields() {
        let written = [Placed::Written];
        check(OLD, NEW, &written);
        check(
            &format!(
                r#"{{"note": "kept", "access_token": "{OLD}", "app_secret": "s", "app_id": "42"}}"#
            ),
            &format!(r#"{{"note":"kept","access_token":"{NEW}","app_secret":"s","app_id":"42"}}"#),
            &written,
        );
        check(
            &format!(
                r#"{{"credentials": [{{"ig_user_id": "1", "access_token": "{OLD}"}}, {{"ig_user_id": "2", "access_token": "{OLD}", "app_id": "42"}}], "owner": "ops"}}"#
            ),
            &format!(
                r#"{{"credentials":[{{"ig_user_id":"1","access_token":"{OLD}"}},{{"ig_user_id":"2","access_token":"{NEW}","app_id":"42"}}],"owner":"ops"}}"#
            ),
            &written,
        );
    }

    #[test]
    fn an_entry_that_holds_another_token_or_is_gone_is_left_as_it_is() {
        let other = Placed::Superseded("the secret holds another token for the account now");
        check(
            "EAAGrotatedByHandTOKEN",
            "EAAGrotatedByHandTOKEN",
            std::slice::from_ref(&other),
        );
        let rotated = r#"{"access_token":"EAAGrotatedByHandTOKEN"}"#;
        check(rotated, rotated, &[other]);
        let gone = format!(r#"{{"credentials":[{{"ig_user_id":"1","access_token":"{OLD}"}}]}}"#);
        check(
            &gone,
            &gone,
            &[Placed::Superseded("the account is no longer in the secret")],
        );
        assert!(rewrite("{oops", &[renewed("2")]).is_err());
    }
}
