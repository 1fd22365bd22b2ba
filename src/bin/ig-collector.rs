//! Command line: parses the arguments and runs them ([`ig_collector::cli`] holds the commands).

use std::process::ExitCode;

use clap::Parser;
use ig_collector::cli::{self, Cli, Failure};
use ig_collector::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_text(cli.log_level());
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { exit, message }) => {
            eprintln!("error: {message}");
            ExitCode::from(exit.code())
        }
    }
}
