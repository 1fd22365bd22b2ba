//! `check-config` and `check-api`: what the configuration plans and spends, and whether the
//! Graph API version answers every field the collector asks for.

use std::path::PathBuf;

use super::{say, Failure};
use crate::config::{Config, ConfigError};
use crate::graph::Source;
use crate::job::Job;
use crate::records::Kind;
use crate::setup::{self, Env};
use crate::{plan, probe};

/// Prints the targets, the keys, the budget arithmetic, the token refresh and each job's plan;
/// fails naming the file and every problem of the plans.
pub(super) fn config(
    config: &Config,
    env: &Env,
    credentials: Option<usize>,
) -> Result<(), Failure> {
    let credentials = credentials.unwrap_or(env.ig_user_ids.len().max(1));
    say!("{}: ok", config.file);
    say!(
        "Graph API {} at {}",
        config.graph.api_version,
        config.graph.base_url
    );
    say!("{} targets:", config.targets.len());
    for t in &config.targets {
        if t.hashtag.is_empty() {
            say!("  {:<16} {}  (no hashtag)", t.username, t.user_id);
            continue;
        }
        let id = t
            .hashtag_id
            .as_deref()
            .unwrap_or("(resolved at run time, then kept in the state)");
        say!("  {:<16} {}  #{} {}", t.username, t.user_id, t.hashtag, id);
    }
    say!("output ({:?}):", config.output.format);
    for k in Kind::ALL {
        say!("  {}", config.key_template(k).as_str());
    }
    let used = config.check_budget(credentials)?;
    say!("budget: {}", used.arithmetic);
    match config.health.refresh_days_left {
        None => say!("token refresh: off (health.refresh_days_left = 0)"),
        Some(days) => say!(
            "token refresh: the daily check exchanges a token with fewer than {days} days left for a fresh one and writes it to the token secret (health.refresh_days_left), for credentials with an app id and an app secret{}",
            if env.app_id.is_some() { "" } else { " (IG_APP_ID is not set here: unless the secret holds `app_id`, tokens are not refreshed)" }
        ),
    }
    let mut problems = Vec::new();
    for job in [Job::Brands, Job::Hashtags] {
        let plan = plan::plan(config, credentials, job);
        say!("{}", plan.describe(config));
        problems.extend(plan.problems(config));
    }
    if !problems.is_empty() {
        return Err(ConfigError {
            file: config.file.clone(),
            problems,
        }
        .into());
    }
    Ok(())
}

/// Probes each endpoint with every field (live, or recorded responses), prints the report, and
/// fails naming each field that does not answer.
pub(super) async fn api(config: Config, env: &Env, replay: Option<PathBuf>) -> Result<(), Failure> {
    let source = match replay {
        Some(dir) => Source::Replay(dir),
        None => Source::live(&config.graph, setup::credentials(env, None).await?)?,
    };
    let report = probe::probe(&config, &source).await;
    say!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let problems = report.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::run(format!(
        "Graph API {} does not answer everything the collector asks for:\n  {}\nCheck Meta's changelog; try another version with --api-version, then update graph.api_version (README, \"API drift\")",
        report.api_version,
        problems.join("\n  ")
    )))
}
