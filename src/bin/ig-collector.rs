//! Command line: run a job locally (against the live API or recorded responses), check the
//! configuration, the token and the API version's fields, resolve hashtag ids, and reprocess
//! captured responses.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use ig_collector::collect::{self, App, Job};
use ig_collector::config::Config;
use ig_collector::ddl::Engine;
use ig_collector::graph::Source;
use ig_collector::health::RefreshOutcome;
use ig_collector::records::Kind;
use ig_collector::reprocess::{self, DEFAULT_MAX_DOWNLOAD_BYTES};
use ig_collector::setup::{self, Choice, Env};
use ig_collector::{health, schedule, schema, telemetry};

/// Prints a line to stdout, ignoring a closed pipe (`ig-collector … | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "ig-collector",
    version,
    about = "Collects Instagram brand profiles, media and hashtag media into dated JSON"
)]
struct Cli {
    /// Configuration file or s3://bucket/key (default: CONFIG_PATH, else the embedded
    /// configure.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Debug logs too on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Profiles and latest media of every account (the hourly job).
    Brands(RunArgs),
    /// Recent media of every hashtag (the 5-minute job).
    Hashtags(RunArgs),
    /// Both jobs, brands then hashtags.
    All(RunArgs),
    /// Validates the configuration and prints the plan and the hourly call budget.
    CheckConfig {
        /// Credentials the budget is shared over (default: as many as IG_USER_ID lists, or 1).
        #[arg(long)]
        credentials: Option<usize>,
    },
    /// Asks debug_token how long each credential's token has left.
    TokenStatus,
    /// Checks that the Graph API version answers every field the collector asks for: one call
    /// per endpoint (the first account, the first hashtag); exits 1 if any field does not.
    CheckApi {
        /// Probe recorded responses from this folder instead of the API.
        #[arg(long)]
        replay: Option<PathBuf>,
        /// The version to probe instead of graph.api_version (e.g. v25.0): try one before
        /// switching to it.
        #[arg(long, value_parser = parse_api_version)]
        api_version: Option<String>,
    },
    /// Exchanges each credential's token for a fresh one (about 60 days) and writes it back to
    /// the token secret (IG_TOKEN_SECRET_ARN). Needs the app id (IG_APP_ID, or `app_id` in the
    /// secret) and the app secret (IG_APP_SECRET, or `app_secret`).
    TokenRefresh {
        /// Only report each token's days left and whether it could be refreshed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Looks up the hashtag ids not pinned in the configuration and prints the lines to paste.
    ResolveHashtags {
        /// Resolve from recorded responses instead of the API.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// Runs validation and writing again over a run's captured responses.
    Reprocess {
        /// A capture folder (raw_api/{job}/{date}/{time}), local or s3://bucket/prefix.
        #[arg(long)]
        from: String,
        /// Output folder, or s3://bucket (default ./reprocessed).
        #[arg(long, default_value = "./reprocessed")]
        to: String,
        /// The job (default: read from the capture path).
        #[arg(long, value_parser = parse_job)]
        job: Option<Job>,
        /// The scheduled time (default: read from the capture path).
        #[arg(long)]
        at: Option<String>,
        /// The most an S3 capture may download, all files together, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_DOWNLOAD_BYTES)]
        max_download_bytes: u64,
    },
    /// Prints the JSON Schema of a record kind, or of all three keyed by kind.
    Schema {
        /// brand, media or media_hashtag (default: all three).
        #[arg(value_parser = parse_kind)]
        kind: Option<Kind>,
    },
    /// Prints the table definitions that read the configured output.
    Ddl {
        /// athena or duckdb.
        #[arg(value_parser = parse_engine)]
        engine: Engine,
        /// Where the keys start: a local folder or s3://bucket (default: s3://BUCKET when BUCKET
        /// is set, else ./out).
        #[arg(long)]
        root: Option<String>,
    },
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s)
        .ok_or_else(|| format!("`{s}` is not a record kind: brand, media or media_hashtag"))
}

fn parse_api_version(s: &str) -> Result<String, String> {
    ig_collector::config::check_api_version(s).map(|()| s.to_string())
}

fn parse_engine(s: &str) -> Result<Engine, String> {
    Engine::parse(s).ok_or_else(|| format!("`{s}` is not an engine: athena or duckdb"))
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Scheduled time the keys derive from (RFC 3339); default now.
    #[arg(long)]
    at: Option<String>,
    /// Output folder (default ./out); not together with BUCKET, which writes to S3.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read recorded Graph responses from this folder instead of calling the API (no token needed).
    #[arg(long)]
    replay: Option<PathBuf>,
}

fn parse_job(s: &str) -> Result<Job, String> {
    match s {
        "brands" => Ok(Job::Brands),
        "hashtags" => Ok(Job::Hashtags),
        _ => Err(format!("`{s}` is not a job: brands or hashtags")),
    }
}

/// `--at`: RFC 3339 (`2023-09-02T00:00:15Z`), or the Graph form the outputs carry
/// (`2023-09-02T00:00:15+0000`), so a time can be pasted straight from a record. Default now.
/// A time further ahead of the clock than [`schedule::MAX_LEAD`] is refused (a typo in the year
/// would stamp the state as polled in the future).
fn parse_at(text: Option<&str>) -> Result<DateTime<Utc>, String> {
    let now = Utc::now();
    let Some(t) = text else {
        return Ok(now);
    };
    let at = DateTime::parse_from_rfc3339(t)
        .or_else(|e| ig_collector::validate::parse_timestamp(t).ok_or(e))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("--at `{t}` is not a time like 2023-09-02T00:00:15Z or 2023-09-02T00:00:15+0000: {e}")
        })?;
    schedule::check_scheduled("--at", at, now).map_err(|e| e.to_string())?;
    Ok(at)
}

/// Prints text as is to stdout, ignoring a closed pipe.
fn print_raw(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Failures of a command: the message and the exit code (2 = setup, 1 = run).
struct Failure(u8, String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(2, e.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_text(if cli.quiet {
        "warn"
    } else if cli.verbose {
        "debug"
    } else {
        "info"
    });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let mut env = Env::read();
    if let Some(path) = &cli.config {
        env.config_path = Some(path.display().to_string());
    }
    if let Command::CheckApi {
        api_version: Some(v),
        ..
    } = &cli.command
    {
        env.overrides.graph_api_version = Some(v.clone());
    }
    let config = setup::load_config(&env, None).await?;
    match cli.command {
        Command::CheckConfig { credentials } => check_config(&config, &env, credentials),
        Command::Brands(a) => run_jobs(config, &env, &[Job::Brands], a).await,
        Command::Hashtags(a) => run_jobs(config, &env, &[Job::Hashtags], a).await,
        Command::All(a) => run_jobs(config, &env, &[Job::Brands, Job::Hashtags], a).await,
        Command::TokenStatus => token_status(config, &env).await,
        Command::CheckApi { replay, .. } => check_api(config, &env, replay).await,
        Command::TokenRefresh { dry_run } => token_refresh(&config, &env, dry_run).await,
        Command::Schema { kind } => {
            let value = match kind {
                Some(kind) => schema::schema(kind, &config.validation),
                None => schema::all(&config.validation),
            };
            print_raw(&schema::render(&value));
            Ok(())
        }
        Command::Ddl { engine, root } => {
            let root = root.unwrap_or_else(|| match &env.bucket {
                Some(bucket) => format!("s3://{bucket}"),
                None => "./out".into(),
            });
            let text = ig_collector::ddl::ddl(&config, engine, &root).map_err(|m| Failure(2, m))?;
            print_raw(&text);
            Ok(())
        }
        Command::ResolveHashtags { replay } => resolve_hashtags(config, &env, replay).await,
        Command::Reprocess {
            from,
            to,
            job,
            at,
            max_download_bytes,
        } => {
            let at = at
                .map(|t| parse_at(Some(&t)))
                .transpose()
                .map_err(|m| Failure(2, m))?;
            let request = reprocess::Request {
                from,
                to,
                job,
                at,
                max_download_bytes,
            };
            reprocess(config, &env, &request).await
        }
    }
}

fn check_config(config: &Config, env: &Env, credentials: Option<usize>) -> Result<(), Failure> {
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
    for k in ig_collector::records::Kind::ALL {
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
        let plan = ig_collector::plan::plan(&config.for_job(job), credentials, job);
        say!("{}", plan.describe(config));
        problems.extend(plan.problems(config));
    }
    if !problems.is_empty() {
        return Err(ig_collector::config::ConfigError {
            file: config.file.clone(),
            problems,
        }
        .into());
    }
    Ok(())
}

async fn run_jobs(config: Config, env: &Env, jobs: &[Job], args: RunArgs) -> Result<(), Failure> {
    let at = parse_at(args.at.as_deref()).map_err(|m| Failure(2, m))?;
    let out_dir = match (&env.bucket, args.out) {
        (Some(bucket), Some(out)) => {
            return Err(Failure(
                2,
                format!(
                    "both --out {} and BUCKET={bucket} are set, and the records go to one place: drop --out to write to the bucket, or unset BUCKET to write to the folder",
                    out.display()
                ),
            ))
        }
        (Some(_), None) => None,
        (None, out) => {
            let dir = out.unwrap_or_else(|| PathBuf::from("./out"));
            writable(&dir).map_err(|m| Failure(2, m))?;
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
        .map_err(|m| Failure(2, m))?;
    // Every job runs, and every failure is reported, not only the last.
    let mut failures = Vec::new();
    for job in jobs {
        if let Err(Failure(code, message)) = run_one(&app, env, *job, at).await {
            failures.push((code, message));
        }
    }
    match failures.iter().map(|(c, _)| *c).max() {
        None => Ok(()),
        Some(code) => Err(Failure(
            code,
            failures
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("\nerror: "),
        )),
    }
}

/// Checks, before any Graph call, that `dir` exists or can be created and takes a file: a run
/// that found out only when writing would have spent its calls for nothing.
fn writable(dir: &std::path::Path) -> Result<(), String> {
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

async fn run_one(app: &App, env: &Env, job: Job, at: DateTime<Utc>) -> Result<(), Failure> {
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
        .map_err(|e| Failure(1, format!("{} job failed: {e}", job.name())))
}

async fn token_status(config: Config, env: &Env) -> Result<(), Failure> {
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
        Err(Failure(
            1,
            "a token is invalid or expires within days: rotate it".into(),
        ))
    }
}

async fn check_api(config: Config, env: &Env, replay: Option<PathBuf>) -> Result<(), Failure> {
    let source = match replay {
        Some(dir) => Source::Replay(dir),
        None => Source::live(&config.graph, setup::credentials(env, None).await?)?,
    };
    let report = ig_collector::probe::probe(&config, &source).await;
    say!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let problems = report.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure(
        1,
        format!(
            "Graph API {} does not answer everything the collector asks for:\n  {}\nCheck Meta's changelog; try another version with --api-version, then update graph.api_version (README, \"API drift\")",
            report.api_version,
            problems.join("\n  ")
        ),
    ))
}

/// Prints the refresh report (JSON, one entry per credential, no token); fails when a token
/// could not be refreshed.
async fn token_refresh(config: &Config, env: &Env, dry_run: bool) -> Result<(), Failure> {
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
        Err(Failure(
            1,
            format!(
                "{} of {} tokens not refreshed: {}",
                failed.len(),
                report.len(),
                failed.join("; ")
            ),
        ))
    }
}

async fn resolve_hashtags(
    config: Config,
    env: &Env,
    replay: Option<PathBuf>,
) -> Result<(), Failure> {
    let source = match replay {
        Some(dir) => Source::Replay(dir),
        None => Source::live(&config.graph, setup::credentials(env, None).await?)?,
    };
    let session = source.session(&config.retry, &config.graph, None);
    let mut failed = 0;
    say!("# Paste under each [[targets]] entry of {}:", config.file);
    // The hashtags job's credentials: the i-th hashtag on credential i mod n.
    let hashtags = config.for_job(ig_collector::collect::Job::Hashtags);
    for (i, t) in hashtags.targets.iter().enumerate() {
        if let Some(id) = &t.hashtag_id {
            say!("# {} #{}: already pinned ({id})", t.username, t.hashtag);
            continue;
        }
        match session.hashtag_search(i, &t.hashtag).await {
            Ok(id) => say!("# {} #{}\nhashtag_id = \"{id}\"", t.username, t.hashtag),
            Err(e) => {
                failed += 1;
                eprintln!("#{}: {e}", t.hashtag);
            }
        }
    }
    if failed > 0 {
        return Err(Failure(1, format!("{failed} hashtag(s) not resolved")));
    }
    Ok(())
}

/// Reprocesses a capture: each part of a sharded run in turn, every part run even when one
/// fails.
async fn reprocess(config: Config, env: &Env, request: &reprocess::Request) -> Result<(), Failure> {
    let prepared = reprocess::prepare(config, env, request, Utc::now()).await?;
    let mut failure = None;
    for (part, app) in &prepared.runs {
        if !part.is_empty() {
            tracing::info!(part = %part, "reprocessing one part of a sharded run");
        }
        if let Err(e) = run_one(app, env, prepared.job, prepared.at).await {
            failure = Some(e);
        }
    }
    failure.map_or(Ok(()), Err)
}
