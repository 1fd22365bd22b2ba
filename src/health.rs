//! Token health: how long the access token has left, from `debug_token`, and its renewal.
//!
//! A long-lived user token dies after about 60 days, silently. Checking once a day (the first
//! brands run after 00:00 UTC) and on `ig-collector token-status` turns that into a metric
//! (`TokenDaysLeft`), a WARN under 14 days and an ERROR under 3. When the credential has an app
//! id and an app secret, [`renew`] exchanges a token that has fewer days left than
//! `health.refresh_days_left` for a fresh one (the daily check), or every token
//! (`ig-collector token-refresh`); `setup::renew` writes the fresh tokens to the token secret.
//!
//! This module decides which tokens are exchanged and says what became of each
//! ([`TokenRefresh`]). It must not know where tokens are stored, nor how a Graph answer is laid
//! out: `graph::debug_token` reads the answer, this module judges it ([`TokenHealth::new`]).

use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::graph::{AccessToken, DebugToken, ErrorKind, Exchanged, Expiry, GraphError, Session};

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

impl TokenHealth {
    /// What `debug_token`'s answer (read by `graph`) means for one credential's token at `now`:
    /// its days left, to a tenth. Pure.
    pub fn new(ig_user_id: &str, token: DebugToken, now: DateTime<Utc>) -> TokenHealth {
        let expires_at = match token.expiry {
            Expiry::At(e) => Some(e),
            Expiry::Never | Expiry::Unreported => None,
        };
        TokenHealth {
            ig_user_id: ig_user_id.to_string(),
            valid: token.valid,
            expires_at,
            days_left: expires_at.map(|e| {
                (e.saturating_sub(now.timestamp()) as f64 / 86_400.0 * 10.0).round() / 10.0
            }),
            never_expires: token.expiry == Expiry::Never,
            data_access_expires_at: token.data_access_expires_at,
            scopes: token.scopes,
        }
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
            .map(|token| TokenHealth::new(&user, token, Utc::now()))
            .map_err(|e| (user.clone(), e));
        match &result {
            Ok(h) => log(h),
            Err((user, e)) => tracing::error!(ig_user_id = %user, "token check failed: {e}"),
        }
        out.push(result);
    }
    out
}

/// When tokens are exchanged for fresh ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    /// Never: each token's days left are reported with what a refresh would need (`--dry-run`).
    Never,
    /// Every token that can be exchanged (`ig-collector token-refresh`).
    Always,
    /// Tokens with fewer days left than this (the daily check, `health.refresh_days_left`);
    /// credentials without an app id and app secret are left out.
    Below(NonZeroU32),
}

/// What became of one credential's token at a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOutcome {
    /// Exchanged for a fresh token, not (yet) written to the token secret.
    Exchanged,
    /// Exchanged, and the fresh token written to the token secret.
    Refreshed,
    /// Exchanged, but by then the secret held another token for the account (another delivery
    /// of the run refreshed it, or an operator rotated it): the secret was left as it is.
    Superseded,
    /// Not exchanged: not due, never expires, or a dry run (the message says which).
    Skipped,
    /// Not exchanged, or the fresh token not written: the current token stays in use until it
    /// expires. The message says what to do.
    Failed,
}

impl RefreshOutcome {
    /// A stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            RefreshOutcome::Exchanged => "exchanged",
            RefreshOutcome::Refreshed => "refreshed",
            RefreshOutcome::Superseded => "superseded",
            RefreshOutcome::Skipped => "skipped",
            RefreshOutcome::Failed => "failed",
        }
    }
}

/// One credential's token at a refresh: in the run summary, the `TokensRefreshed` and
/// `TokenRefreshFailed` metrics and `ig-collector token-refresh`'s report. Holds no token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenRefresh {
    pub ig_user_id: String,
    pub outcome: RefreshOutcome,
    /// Days the token had left, from `debug_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<f64>,
    /// Days the fresh token lasts, as the exchange said (`expires_in`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_days_left: Option<f64>,
    /// What happened, and what to do when something must be done.
    pub message: String,
}

impl TokenRefresh {
    /// Logs it at the level its outcome calls for: the one place a refresh is logged.
    pub fn log(&self) {
        let (user, outcome) = (&self.ig_user_id, self.outcome.name());
        match self.outcome {
            RefreshOutcome::Failed => {
                tracing::error!(ig_user_id = %user, outcome, "token refresh failed: {}", self.message)
            }
            RefreshOutcome::Exchanged => {
                tracing::warn!(ig_user_id = %user, outcome, "token exchanged but not stored: {}", self.message)
            }
            RefreshOutcome::Refreshed | RefreshOutcome::Superseded | RefreshOutcome::Skipped => {
                tracing::info!(ig_user_id = %user, outcome, "token refresh: {}", self.message)
            }
        }
    }
}

/// A fresh token beside the one it replaces: the token secret's entry for the account is
/// rewritten only while it still holds the old one.
#[derive(Clone)]
pub struct RenewedToken {
    pub ig_user_id: String,
    pub old: AccessToken,
    pub new: AccessToken,
}

/// The fresh tokens a refresh obtained, on their way to the token secret. Prints nothing of
/// them, and is never serialized (the run summary skips it).
#[derive(Clone, Default)]
pub struct RenewedTokens(pub Vec<RenewedToken>);

impl RenewedTokens {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for RenewedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RenewedTokens({} [redacted])", self.0.len())
    }
}

impl PartialEq for RenewedTokens {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| {
                a.ig_user_id == b.ig_user_id
                    && a.old.expose() == b.old.expose()
                    && a.new.expose() == b.new.expose()
            })
    }
}

/// What [`renew`] did: a report line per credential it looked at, and the fresh tokens.
#[derive(Debug, Default)]
pub struct Renewal {
    pub report: Vec<TokenRefresh>,
    pub tokens: RenewedTokens,
}

/// What to do with one credential's token.
#[derive(Debug, PartialEq)]
enum Due {
    /// Exchange it.
    Now,
    /// Report this outcome and message, without exchanging.
    Report(RefreshOutcome, String),
    /// Due, but its credential cannot exchange it (no app id or app secret): the refresh is off
    /// for it. Said in the log, not reported.
    Off(f64),
    /// Nothing to exchange or report: not due and off, or the check already said why.
    Quiet,
}

/// What to do with a token, given its check, whether its credential can exchange it, and
/// `when`. Pure.
fn due(
    checked: &Result<TokenHealth, (String, GraphError)>,
    can_exchange: bool,
    when: Renew,
) -> Due {
    let skipped = |m: String| Due::Report(RefreshOutcome::Skipped, m);
    let failed = |m: String| Due::Report(RefreshOutcome::Failed, m);
    let needs = "a refresh needs the app id (IG_APP_ID, or `app_id` in the token secret) and the app secret (IG_APP_SECRET, or `app_secret`)";
    let h = match (checked, when) {
        (Err(_), Renew::Below(_)) => return Due::Quiet,
        (Err((_, e)), _) => {
            return failed(format!(
                "the token check failed ({e}), so the token was not exchanged"
            ))
        }
        (Ok(h), _) => h,
    };
    match when {
        Renew::Never => skipped(match (h.days_left, can_exchange) {
            _ if !h.valid => "the token is not valid: it cannot be exchanged; put a new long-lived token in the token secret".into(),
            (None, _) => "the token never expires: nothing to refresh".into(),
            (Some(d), true) => format!("{d} days left; dry run: not exchanged"),
            (Some(d), false) => format!("{d} days left; dry run: not exchanged; {needs}"),
        }),
        Renew::Always => match h.days_left {
            _ if !h.valid => failed("the token is not valid any more, so it cannot be exchanged: create a new long-lived token and put it in the token secret (README, Token health)".into()),
            None => skipped("the token never expires (a system user token): nothing to refresh".into()),
            Some(_) if !can_exchange => failed(needs.into()),
            Some(_) => Due::Now,
        },
        Renew::Below(below) => match h.days_left {
            Some(d) if h.valid && can_exchange && d < f64::from(below.get()) => Due::Now,
            Some(d) if h.valid && can_exchange => skipped(format!(
                "{d} days left: refreshed under {below} (health.refresh_days_left)"
            )),
            Some(d) if h.valid && d < f64::from(below.get()) => Due::Off(d),
            _ => Due::Quiet,
        },
    }
}

/// What to tell the operator about a failed exchange.
fn exchange_failure(e: &GraphError) -> String {
    match (e.kind, e.status, e.code) {
        (ErrorKind::Token, _, _) => format!(
            "Meta refused to exchange the token ({e}): it expired or was revoked, or was issued for another app than IG_APP_ID (or `app_id`); check the app id, else create a new long-lived token and put it in the token secret"
        ),
        // `oauth/access_token` answers an app id or app secret it does not accept with an
        // OAuthException: code 101 (application) or 1 (client secret), HTTP 400.
        (_, Some(400), Some(1 | 101)) => format!(
            "Meta refused the app id or app secret ({e}): set IG_APP_ID and IG_APP_SECRET (or `app_id` and `app_secret` in the token secret) to those of the app the token was issued for (App Dashboard, App settings, Basic)"
        ),
        _ => format!(
            "the exchange failed ({e}); the current token stays in use: try again later (ig-collector token-refresh, or the next daily check)"
        ),
    }
}

/// Days in `secs`, to a tenth, as [`TokenHealth::new`] counts them.
fn days(secs: u64) -> f64 {
    (secs as f64 / 86_400.0 * 10.0).round() / 10.0
}

/// Exchanges the tokens `when` says are due, given each credential's check (`checked[lane]`,
/// as [`check`] returns them), concurrently, through the run's session (booked, retried and
/// bounded like every call). Reports what it did for each credential it looked at; the fresh
/// tokens are for `setup::renew` to store.
pub async fn renew(
    session: &Session<'_>,
    checked: &[Result<TokenHealth, (String, GraphError)>],
    when: Renew,
) -> Renewal {
    let decisions: Vec<(usize, Due)> = checked
        .iter()
        .enumerate()
        .map(|(lane, c)| (lane, due(c, session.can_exchange(lane), when)))
        .collect();
    let exchanges = decisions
        .iter()
        .filter(|(_, d)| *d == Due::Now)
        .map(|(lane, _)| async move { (*lane, session.exchange_token(*lane).await) });
    let mut exchanged: Vec<_> = futures::future::join_all(exchanges).await;
    let mut out = Renewal::default();
    for (lane, decision) in decisions {
        let (user, days_left) = match &checked[lane] {
            Ok(h) => (h.ig_user_id.clone(), h.days_left),
            Err((user, _)) => (user.clone(), None),
        };
        let line = |outcome, message| TokenRefresh {
            ig_user_id: user.clone(),
            outcome,
            days_left,
            new_days_left: None,
            message,
        };
        match decision {
            Due::Quiet => {}
            Due::Off(d) => log_off(&user, d, when),
            Due::Report(outcome, message) => out.report.push(line(outcome, message)),
            Due::Now => {
                let Some(i) = exchanged.iter().position(|(l, _)| *l == lane) else {
                    continue;
                };
                record(&mut out, &user, line, exchanged.swap_remove(i).1);
            }
        }
    }
    out
}

/// Says that `user`'s token, with `d` days left, is due but its credential cannot exchange it.
fn log_off(user: &str, d: f64, when: Renew) {
    let below = match when {
        Renew::Below(b) => b.get(),
        _ => 0,
    };
    tracing::info!(ig_user_id = %user, days_left = d, "the token has fewer days left than health.refresh_days_left ({below}) but is not refreshed automatically: that needs the app id (IG_APP_ID, or `app_id` in the token secret) and the app secret (IG_APP_SECRET, or `app_secret`); or refresh it with ig-collector token-refresh");
}

/// Adds what `user`'s exchange gave to `out`: its report line (made by `line`) and, when it
/// succeeded, the fresh token beside the one it replaces.
fn record(
    out: &mut Renewal,
    user: &str,
    line: impl Fn(RefreshOutcome, String) -> TokenRefresh,
    exchanged: Result<Exchanged, GraphError>,
) {
    match exchanged {
        Ok(x) => {
            let new_days_left = x.expires_in.map(|d| days(d.as_secs()));
            let lasts = new_days_left
                .map(|d| format!("a token that lasts {d} days"))
                .unwrap_or_else(|| "a fresh token".into());
            out.report.push(TokenRefresh {
                new_days_left,
                ..line(RefreshOutcome::Exchanged, format!("exchanged for {lasts}"))
            });
            out.tokens.0.push(RenewedToken {
                ig_user_id: user.to_string(),
                old: x.replaces,
                new: x.token,
            });
        }
        Err(e) => out
            .report
            .push(line(RefreshOutcome::Failed, exchange_failure(&e))),
    }
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

    #[test]
    fn days_left_and_never_expiring_tokens_are_read() {
        let now = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 0)
            .single()
            .expect("time");
        let token = |expiry| DebugToken {
            valid: true,
            expiry,
            data_access_expires_at: None,
            scopes: vec!["instagram_basic".into()],
        };
        let h = TokenHealth::new("1", token(Expiry::At(now.timestamp() + 10 * 86_400)), now);
        assert_eq!(h.days_left, Some(10.0));
        assert_eq!(h.expires_at, Some(now.timestamp() + 10 * 86_400));
        assert!(!h.never_expires);
        let h = TokenHealth::new("1", token(Expiry::Never), now);
        assert!(h.never_expires);
        assert_eq!((h.days_left, h.expires_at), (None, None));
        let h = TokenHealth::new("1", token(Expiry::Unreported), now);
        assert!(!h.never_expires);
        assert_eq!((h.days_left, h.expires_at), (None, None));
    }

    type Checked = Result<TokenHealth, (String, GraphError)>;

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_token_is_exchanged_when_due_and_its_credential_can_and_only_then() {
        let health = |days_left: Option<f64>, valid: bool| -> Checked {
            Ok(TokenHealth {
                ig_user_id: "1".into(),
                valid,
                expires_at: days_left.map(|_| 1),
                days_left,
                never_expires: days_left.is_none(),
                data_access_expires_at: None,
                scopes: Vec::new(),
            })
        };
        let below = Renew::Below(NonZeroU32::new(14).expect("non-zero"));
        let outcome = |d: Due| match d {
            Due::Now => "now".to_string(),
            Due::Off(_) => "off".to_string(),
            Due::Quiet => "quiet".to_string(),
            Due::Report(o, _) => o.name().to_string(),
        };
        let failed_check: Result<TokenHealth, (String, GraphError)> =
            Err(("1".into(), GraphError::local(ErrorKind::Network, "reset")));
        for (checked, can, when, expected) in [
            (health(Some(13.9), true), true, below, "now"),
            (health(Some(14.0), true), true, below, "skipped"),
            (health(Some(3.0), true), false, below, "off"),
            (health(Some(30.0), true), false, below, "quiet"),
            (health(Some(3.0), false), true, below, "quiet"),
            (health(None, true), true, below, "quiet"),
            (failed_check.clone(), true, below, "quiet"),
            (health(Some(50.0), true), true, Renew::Always, "now"),
            (health(Some(50.0), true), false, Renew::Always, "failed"),
            (health(Some(50.0), false), true, Renew::Always, "failed"),
            (health(None, true), true, Renew::Always, "skipped"),
            (failed_check, true, Renew::Always, "failed"),
            (health(Some(3.0), true), true, Renew::Never, "skipped"),
        ] {
            let got = outcome(due(&checked, can, when));
            assert_eq!(got, expected, "{checked:?} can {can} {when:?}");
        }
    }

    #[test]
    fn a_refused_app_secret_says_which_settings_to_fix() {
        let refused = GraphError {
            code: Some(1),
            status: Some(400),
            ..GraphError::local(ErrorKind::Transient, "Error validating client secret.")
        };
        let m = exchange_failure(&refused);
        assert!(
            m.contains("IG_APP_SECRET") && m.contains("`app_secret`"),
            "{m}"
        );
        let expired = GraphError {
            code: Some(190),
            status: Some(400),
            ..GraphError::local(ErrorKind::Token, "expired")
        };
        assert!(exchange_failure(&expired).contains("create a new long-lived token"));
    }
}
