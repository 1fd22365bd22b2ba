//! Command line: run a job locally (against the live API or recorded responses) and check the
//! configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use ig_collector::collect::{self, Job};
use ig_collector::config::{Config, Overrides};
use ig_collector::setup::{self, Choice};
use ig_collector::telemetry;

#[derive(Parser)]
#[command(
    name = "ig-collector",
    version,
    about = "Collects Instagram brand profiles, media and hashtag media into dated JSON"
)]
struct Cli {
    /// Configuration file (default: CONFIG_PATH, else the embedded configure.toml).
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
    /// Validates the configuration and prints the plan.
    CheckConfig,
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

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_text();
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => Config::load_file(path, &Overrides::from_env()),
        None => Config::load(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (jobs, args): (Vec<Job>, RunArgs) = match cli.command {
        Command::CheckConfig => {
            println!("{}: ok", config.file);
            println!(
                "Graph API {} at {}",
                config.graph.api_version, config.graph.base_url
            );
            println!("{} targets:", config.targets.len());
            for t in &config.targets {
                let id = t.hashtag_id.as_deref().unwrap_or("(resolved at run time)");
                println!("  {:<16} {}  #{} {}", t.username, t.user_id, t.hashtag, id);
            }
            println!("output ({:?}):", config.output.format);
            for k in ig_collector::records::Kind::ALL {
                println!("  {}", config.key_template(k).as_str());
            }
            return ExitCode::SUCCESS;
        }
        Command::Brands(a) => (vec![Job::Brands], a),
        Command::Hashtags(a) => (vec![Job::Hashtags], a),
        Command::All(a) => (vec![Job::Brands, Job::Hashtags], a),
    };
    let at: DateTime<Utc> = match &args.at {
        None => Utc::now(),
        Some(text) => {
            match DateTime::parse_from_rfc3339(text) {
                Ok(t) => t.with_timezone(&Utc),
                Err(e) => {
                    eprintln!("error: --at `{text}` is not an RFC 3339 time like 2023-09-02T00:00:15Z: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let choice = Choice {
        replay: args.replay.clone(),
        out_dir: Some(args.out.clone()),
    };
    let app = match setup::build(config, &choice).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut code = ExitCode::SUCCESS;
    for job in jobs {
        let result = collect::run(&app, job, at, None).await;
        let summary = match &result {
            Ok(s) => s,
            Err(e) => e.summary(),
        };
        telemetry::log_summary(summary, if result.is_ok() { "ok" } else { "failed" });
        println!(
            "{}",
            serde_json::to_string_pretty(summary).unwrap_or_default()
        );
        if let Err(e) = result {
            eprintln!("error: {job} job failed: {e}", job = job.name());
            code = ExitCode::FAILURE;
        }
    }
    code
}
