//! The command line's grammar: what `ig-collector` accepts, each flag's meaning (the doc comments
//! are the `--help` text), and the parsers that turn a value into a job, a kind, an engine, an
//! API version or a time, each refusing with the values it expects.
//!
//! The types carry no doc comments of their own: clap would print them in `--help`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::ddl::Engine;
use crate::job::Job;
use crate::records::Kind;
use crate::reprocess::DEFAULT_MAX_DOWNLOAD_BYTES;
use crate::{config, schedule, validate};

#[derive(Parser)]
#[command(
    name = "ig-collector",
    version,
    about = "Collects Instagram brand profiles, media and hashtag media into dated JSON"
)]
pub struct Cli {
    /// Configuration file or s3://bucket/key (default: CONFIG_PATH, else the embedded
    /// configure.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Debug logs too on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter `--quiet` and `--verbose` ask for.
    pub fn log_level(&self) -> &'static str {
        if self.quiet {
            "warn"
        } else if self.verbose {
            "debug"
        } else {
            "info"
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
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

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Scheduled time the keys derive from (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Output folder (default ./out); not together with BUCKET, which writes to S3.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Read recorded Graph responses from this folder instead of calling the API (no token needed).
    #[arg(long)]
    pub replay: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s)
        .ok_or_else(|| format!("`{s}` is not a record kind: brand, media or media_hashtag"))
}

fn parse_api_version(s: &str) -> Result<String, String> {
    config::check_api_version(s).map(|()| s.to_string())
}

fn parse_engine(s: &str) -> Result<Engine, String> {
    Engine::parse(s).ok_or_else(|| format!("`{s}` is not an engine: athena or duckdb"))
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
pub fn parse_at(text: Option<&str>) -> Result<DateTime<Utc>, String> {
    let now = Utc::now();
    let Some(t) = text else {
        return Ok(now);
    };
    let at = DateTime::parse_from_rfc3339(t)
        .or_else(|e| validate::parse_timestamp(t).ok_or(e))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("--at `{t}` is not a time like 2023-09-02T00:00:15Z or 2023-09-02T00:00:15+0000: {e}")
        })?;
    schedule::check_scheduled("--at", at, now).map_err(|e| e.to_string())?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own checks of the grammar (conflicting names, a `global` flag that a subcommand
    /// also declares, defaults its parser refuses) run only when the binary parses; here they
    /// run on every `cargo test`.
    #[test]
    fn the_grammar_passes_claps_checks() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quiet_and_verbose_choose_the_log_level_and_refuse_each_other() {
        let level = |args: &[&str]| {
            Cli::try_parse_from(args.iter().copied())
                .map(|c| c.log_level())
                .map_err(|e| e.kind())
        };
        assert_eq!(level(&["ig-collector", "schema"]), Ok("info"));
        assert_eq!(level(&["ig-collector", "-q", "schema"]), Ok("warn"));
        assert_eq!(level(&["ig-collector", "schema", "--verbose"]), Ok("debug"));
        assert_eq!(
            level(&["ig-collector", "-q", "-v", "schema"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
    }
}
