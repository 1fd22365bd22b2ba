//! Command line: run a job locally (against the live API or recorded responses), check the
//! configuration and the token, resolve hashtag ids, and reprocess captured responses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDateTime, Utc};
use clap::{Args, Parser, Subcommand};
use ig_collector::collect::{self, App, Job};
use ig_collector::config::Config;
use ig_collector::graph::Source;
use ig_collector::setup::{self, Choice, Env};
use ig_collector::sink::Sink;
use ig_collector::{health, telemetry};

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
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Scheduled time the keys derive from (RFC 3339); default now.
    #[arg(long)]
    at: Option<String>,
    /// Output folder when BUCKET is not set.
    #[arg(long, default_value = "./out")]
    out: PathBuf,
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
/// (`2023-09-02T00:00:15+0000`), so a time can be pasted straight from a record.
fn parse_at(text: Option<&str>) -> Result<DateTime<Utc>, String> {
    match text {
        None => Ok(Utc::now()),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .or_else(|e| ig_collector::validate::parse_timestamp(t).ok_or(e))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                format!("--at `{t}` is not a time like 2023-09-02T00:00:15Z or 2023-09-02T00:00:15+0000: {e}")
            }),
    }
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
    telemetry::init_text();
    let cli = Cli::parse();
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
    let config = setup::load_config(&env).await?;
    match cli.command {
        Command::CheckConfig { credentials } => check_config(&config, &env, credentials),
        Command::Brands(a) => run_jobs(config, &env, &[Job::Brands], a).await,
        Command::Hashtags(a) => run_jobs(config, &env, &[Job::Hashtags], a).await,
        Command::All(a) => run_jobs(config, &env, &[Job::Brands, Job::Hashtags], a).await,
        Command::TokenStatus => token_status(config, &env).await,
        Command::ResolveHashtags { replay } => resolve_hashtags(config, &env, replay).await,
        Command::Reprocess { from, to, job, at } => {
            reprocess(config, &env, &from, &to, job, at.as_deref()).await
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
    let choice = Choice {
        replay: args.replay.clone(),
        out_dir: Some(args.out.clone()),
    };
    let app = setup::build(config, env, &choice).await?;
    let mut failure = None;
    for job in jobs {
        if let Err(e) = run_one(&app, *job, at).await {
            failure = Some(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

async fn run_one(app: &App, job: Job, at: DateTime<Utc>) -> Result<(), Failure> {
    let result = collect::run(app, job, at, None).await;
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
    let credentials = setup::credentials(env).await?;
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

async fn resolve_hashtags(
    config: Config,
    env: &Env,
    replay: Option<PathBuf>,
) -> Result<(), Failure> {
    let source = match replay {
        Some(dir) => Source::Replay(dir),
        None => Source::live(&config.graph, setup::credentials(env).await?)?,
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

/// The job and scheduled time a capture folder's path names: `…/{job}/{date}/{date_time}`.
fn capture_identity(path: &str) -> Option<(Job, DateTime<Utc>)> {
    let path = path.trim_end_matches('/');
    // A shard's capture is a `part-0003` folder inside its run's.
    let path = match path.rsplit_once('/') {
        Some((run, last)) if last.starts_with("part-") => run,
        _ => path,
    };
    let parts: Vec<&str> = path.rsplit('/').take(3).collect();
    let [time, _date, job] = parts.as_slice() else {
        return None;
    };
    let at = NaiveDateTime::parse_from_str(time, "%Y-%m-%d_%H%M%S")
        .ok()?
        .and_utc();
    Some((parse_job(job).ok()?, at))
}

async fn reprocess(
    config: Config,
    env: &Env,
    from: &str,
    to: &str,
    job: Option<Job>,
    at: Option<&str>,
) -> Result<(), Failure> {
    let identity = capture_identity(from);
    let job = job
        .or(identity.map(|(j, _)| j))
        .ok_or_else(|| Failure(2, format!("cannot tell the job from `{from}`: pass --job")))?;
    let at = match at {
        Some(t) => parse_at(Some(t)).map_err(|m| Failure(2, m))?,
        None => identity
            .map(|(_, t)| t)
            .ok_or_else(|| Failure(2, format!("cannot tell the time from `{from}`: pass --at")))?,
    };
    let download;
    let dir: PathBuf = match from.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            download = tempfile::tempdir()
                .map_err(|e| Failure(2, format!("no temporary folder for the download: {e}")))?;
            fetch_capture(
                bucket,
                prefix.trim_end_matches('/'),
                download.path(),
                env,
                &config.sink,
            )
            .await?;
            download.path().to_path_buf()
        }
        None => PathBuf::from(from),
    };
    let sink = match to.strip_prefix("s3://") {
        Some(bucket) => {
            let bucket = bucket.trim_end_matches('/').to_string();
            Sink::s3_from_env(bucket, env.s3_endpoint_overridden, &config.sink).await
        }
        None => Sink::Dir(PathBuf::from(to)),
    };
    let app = App {
        config,
        source: Source::Replay(dir),
        sink,
    };
    run_one(&app, job, at).await
}

/// Downloads a capture folder. Each key must stay inside the folder once its prefix is taken
/// off: a key such as `{prefix}/../../tmp/x` is refused, never written outside `into`.
async fn fetch_capture(
    bucket: &str,
    prefix: &str,
    into: &Path,
    env: &Env,
    settings: &ig_collector::config::SinkSettings,
) -> Result<(), Failure> {
    let source = Sink::s3_from_env(bucket.to_string(), env.s3_endpoint_overridden, settings).await;
    let keys = source.list(&format!("{prefix}/"), None).await?;
    if keys.is_empty() {
        return Err(Failure(2, format!("nothing under s3://{bucket}/{prefix}/")));
    }
    for key in keys {
        let relative = key
            .strip_prefix(prefix)
            .unwrap_or(&key)
            .trim_start_matches('/');
        let safe = !relative.is_empty()
            && Path::new(relative)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(Failure(
                2,
                format!("s3://{bucket}/{key} would be written outside {}: refused (a capture key must not hold `..`, `.` or an absolute path)", into.display()),
            ));
        }
        let Some(object) = source.get(&key, None).await? else {
            continue;
        };
        let path = into.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Failure(2, e.to_string()))?;
        }
        std::fs::write(&path, object.body).map_err(|e| Failure(2, e.to_string()))?;
    }
    Ok(())
}
