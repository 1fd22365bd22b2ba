//! The `ig-collector` command line: run a job locally (against the live API or recorded
//! responses), check the configuration, the token and the API version's fields, resolve hashtag
//! ids, reprocess captured responses, and print the published contract (schemas, DDL).
//!
//! `src/bin/ig-collector.rs` only parses ([`Cli`]) and calls [`run`]. The commands print their
//! results to stdout and say why they failed in a [`Failure`], whose [`Exit`] tells a command
//! refused before it ran (2: configuration, arguments, credentials, output) from one that ran
//! and failed (1). This module uses the rest of the crate; nothing in the crate uses it.

mod args;
mod check;
mod jobs;
mod resolve;
mod tokens;

use args::parse_at;
pub use args::{Cli, Command, RunArgs};

use crate::job::Job;
use crate::setup::{self, Env};
use crate::{ddl, reprocess, schema};

/// Prints a line to stdout, ignoring a closed pipe (`ig-collector … | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

/// Prints text as is to stdout, ignoring a closed pipe.
fn print_raw(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// How a command failed, which is its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code 1: the command ran and failed (a job, a token, a field, a hashtag).
    Run,
    /// Exit code 2: the command could not start (configuration, arguments, credentials, output).
    Setup,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Run => 1,
            Exit::Setup => 2,
        }
    }
}

/// A failed command: the message printed after `error: ` and how it failed.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    fn run(message: String) -> Failure {
        Failure {
            exit: Exit::Run,
            message,
        }
    }

    fn setup(message: String) -> Failure {
        Failure {
            exit: Exit::Setup,
            message,
        }
    }
}

/// Any error that reaches a command unhandled stopped it before it ran: a setup failure.
impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::setup(e.to_string())
    }
}

/// Runs the parsed command line: reads the environment and the configuration, then the command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
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
        Command::CheckConfig { credentials } => check::config(&config, &env, credentials),
        Command::Brands(a) => jobs::run(config, &env, &[Job::Brands], a).await,
        Command::Hashtags(a) => jobs::run(config, &env, &[Job::Hashtags], a).await,
        Command::All(a) => jobs::run(config, &env, &[Job::Brands, Job::Hashtags], a).await,
        Command::TokenStatus => tokens::status(config, &env).await,
        Command::CheckApi { replay, .. } => check::api(config, &env, replay).await,
        Command::TokenRefresh { dry_run } => tokens::refresh(&config, &env, dry_run).await,
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
            print_raw(&ddl::ddl(&config, engine, &root).map_err(Failure::setup)?);
            Ok(())
        }
        Command::ResolveHashtags { replay } => resolve::hashtags(config, &env, replay).await,
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
                .map_err(Failure::setup)?;
            let request = reprocess::Task {
                from,
                to,
                job,
                at,
                max_download_bytes,
            };
            jobs::reprocess(config, &env, &request).await
        }
    }
}
