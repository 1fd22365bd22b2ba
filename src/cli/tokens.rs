//! `token-status` and `token-refresh`: how long each credential's token has left, and its
//! exchange for a fresh one written back to the token secret.

use super::{say, Failure};
use crate::config::Config;
use crate::graph::Source;
use crate::health::{self, RefreshOutcome};
use crate::setup::{self, Env};

/// Prints each credential's token health (JSON, no token); fails when a token is invalid or
/// expires within [`health::ERROR_DAYS`].
pub(super) async fn status(config: Config, env: &Env) -> Result<(), Failure> {
    let credentials = setup::credentials(env, None).await?;
    let lanes = credentials.len();
    let source = Source::live(&config.graph, credentials)?;
    let session = source.session(&config.retry, &config.graph, None);
    let mut worst_ok = true;
    let mut report = Vec::new();
    for result in health::check(&session, lanes).await {
        match result {
            Ok(h) => {
                worst_ok &= h.valid && h.days_left.is_none_or(|d| d >= health::ERROR_DAYS);
                report.push(serde_json::to_value(&h).unwrap_or_default());
            }
            Err((user, e)) => {
                worst_ok = false;
                report.push(serde_json::json!({"ig_user_id": user, "error": e.to_string()}));
            }
        }
    }
    say!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if worst_ok {
        Ok(())
    } else {
        Err(Failure::run(
            "a token is invalid or expires within days: rotate it".into(),
        ))
    }
}

/// Prints the refresh report (JSON, one entry per credential, no token); fails when a token
/// could not be refreshed.
pub(super) async fn refresh(config: &Config, env: &Env, dry_run: bool) -> Result<(), Failure> {
    let report = setup::renew::refresh(config, env, dry_run).await?;
    say!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let failed: Vec<String> = report
        .iter()
        .filter(|r| {
            !matches!(
                r.outcome,
                RefreshOutcome::Refreshed | RefreshOutcome::Skipped | RefreshOutcome::Superseded
            )
        })
        .map(|r| format!("Instagram user {}: {}", r.ig_user_id, r.message))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(format!(
            "{} of {} tokens not refreshed: {}",
            failed.len(),
            report.len(),
            failed.join("; ")
        )))
    }
}
