//! Running the jobs from the command line: `brands`, `hashtags`, `all` and `reprocess`. Each run
//! writes where the command said (a folder, or the bucket), writes a token its daily check
//! refreshed back to the token secret, and prints its summary.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{parse_at, say, Failure, RunArgs};
use crate::collect::{self, App};
use crate::config::Config;
use crate::job::Job;
use crate::reprocess;
use crate::setup::{self, Choice, Env};
use crate::telemetry;

/// Runs `jobs` in turn at `--at`, once the output is known to be writable: every job runs, and
/// every failure is reported, not only the last.
pub(super) async fn run(
    config: Config,
    env: &Env,
    jobs: &[Job],
    args: RunArgs,
) -> Result<(), Failure> {
    let at = parse_at(args.at.as_deref()).map_err(Failure::setup)?;
    let out_dir = match (&env.bucket, args.out) {
        (Some(bucket), Some(out)) => {
            return Err(Failure::setup(format!(
                "both --out {} and BUCKET={bucket} are set, and the records go to one place: drop --out to write to the bucket, or unset BUCKET to write to the folder",
                out.display()
            )))
        }
        (Some(_), None) => None,
        (None, out) => {
            let dir = out.unwrap_or_else(|| PathBuf::from("./out"));
            writable(&dir).map_err(Failure::setup)?;
            Some(dir)
        }
    };
    let choice = Choice {
        replay: args.replay.clone(),
        out_dir,
    };
    let app = setup::build(config, env, &choice, None).await?;
    // Before any Graph call: a run that could not write its records would spend its calls for
    // nothing.
    app.sink
        .check_credentials(app.config.sink.operation_timeout)
        .await
        .map_err(Failure::setup)?;
    let mut failed = Vec::new();
    for job in jobs {
        if let Err(message) = run_one(&app, env, *job, at).await {
            failed.push(message);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(failed.join("\nerror: ")))
    }
}

/// Checks, before any Graph call, that `dir` exists or can be created and takes a file: a run
/// that found out only when writing would have spent its calls for nothing.
fn writable(dir: &Path) -> Result<(), String> {
    let refused = |e: std::io::Error| {
        format!(
            "--out {} cannot be written to ({e}): choose a folder you can write to, or set BUCKET to write to S3",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(refused)?;
    let probe = dir.join(format!(".ig-collector-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(refused)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// One run of `job` at `at`: a refreshed token goes to the token secret, the summary to the log
/// and to stdout, whether the run succeeded or not. Fails with what to print when the run failed.
async fn run_one(app: &App, env: &Env, job: Job, at: DateTime<Utc>) -> Result<(), String> {
    let mut result = collect::run(app, job, at, None).await;
    // The daily check may have refreshed a token: it goes to the token secret it came from.
    let summary = match &mut result {
        Ok(s) => s,
        Err(e) => e.summary_mut(),
    };
    if !summary.token_refresh.is_empty() {
        let renewed = std::mem::take(&mut summary.renewed_tokens);
        let arn = env.token_secret_arn.as_deref();
        setup::renew::settle(&mut summary.token_refresh, renewed, arn, None).await;
    }
    let summary = match &result {
        Ok(s) => s,
        Err(e) => e.summary(),
    };
    telemetry::log_summary(summary, if result.is_ok() { "ok" } else { "failed" });
    say!(
        "{}",
        serde_json::to_string_pretty(summary).unwrap_or_default()
    );
    result
        .map(|_| ())
        .map_err(|e| format!("{} job failed: {e}", job.name()))
}

/// Reprocesses a capture: each part of a sharded run in turn, every part run even when one
/// fails; the last failure is the command's.
pub(super) async fn reprocess(
    config: Config,
    env: &Env,
    request: &reprocess::Task,
) -> Result<(), Failure> {
    let prepared = reprocess::prepare(config, env, request, Utc::now()).await?;
    let mut failure = None;
    for (part, app) in &prepared.runs {
        if !part.is_empty() {
            tracing::info!(part = %part, "reprocessing one part of a sharded run");
        }
        if let Err(message) = run_one(app, env, prepared.job, prepared.at).await {
            failure = Some(Failure::run(message));
        }
    }
    failure.map_or(Ok(()), Err)
}
