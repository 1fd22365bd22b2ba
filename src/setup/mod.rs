//! Building an [`App`] from the environment: configuration, credentials, sink. The Lambda runs
//! it inside an invocation until it succeeds once (a failure fails that event only); the CLI
//! once per call. [`env`] reads every variable; nothing else in the crate looks at the
//! environment.
//!
//! Every wait here is bounded twice: by its own timeout (the token secret read, the
//! configuration's S3 read) and by the caller's `until`, the time the invocation leaves. A
//! Secrets Manager or an S3 that accepts a connection and never answers therefore ends in an
//! error that names it, not in a cold start that never takes its first event.
//!
//! - `error`: [`SetupError`], why the collector could not start;
//! - `load`: the configuration, embedded, from a file or from S3 ([`load_config`]);
//! - `secret`: the token secret's read from Secrets Manager, bounded;
//! - `credentials`: the credentials, from the secret or the environment ([`credentials()`]);
//! - [`renew`]: fresh tokens written back to the token secret.
//!
//! This file builds the [`App`] from them.

mod credentials;
mod env;
mod error;
mod load;
pub mod renew;
mod secret;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use credentials::credentials;
pub use env::Env;
pub use error::SetupError;
pub use load::load_config;
pub use secret::SECRET_READ_TIMEOUT;

use crate::collect::App;
use crate::config::Config;
use crate::graph::{AppSecret, Credentials, Source};
use crate::schedule::Clock;
use crate::sink::Sink;

/// Where records come from and go to, as chosen on the command line or by the environment.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// Recorded responses instead of the live API.
    pub replay: Option<PathBuf>,
    /// Folder output when `BUCKET` is not set (the CLI's `--out`); `None` requires `BUCKET`.
    pub out_dir: Option<PathBuf>,
}

/// How long a warm process keeps the token it read from the secret, unless
/// `TOKEN_CACHE_TTL_SECS` says otherwise: a rotated token is taken up within this time even if
/// the old one still works.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

/// The token cache time the environment asks for (`TOKEN_CACHE_TTL_SECS`), else
/// [`TOKEN_CACHE_TTL`].
pub fn token_cache_ttl(env: &Env) -> Result<Duration, SetupError> {
    match &env.token_cache_ttl_secs {
        None => Ok(TOKEN_CACHE_TTL),
        Some(text) => text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| SetupError::BadTokenCacheTtl(text.clone())),
    }
}

/// Builds the app from the process environment: config (embedded, a file or an S3 object named
/// by `CONFIG_PATH`), source, sink; every wait ends by `until` when given.
pub async fn app_from_env(choice: &Choice, until: Option<Instant>) -> Result<App, SetupError> {
    let env = Env::read();
    let config = load_config(&env, until).await?;
    build(config, &env, choice, until).await
}

/// Builds the app around a loaded config. A live source must fit the hourly call budget of
/// its credentials.
pub async fn build(
    config: Config,
    env: &Env,
    choice: &Choice,
    until: Option<Instant>,
) -> Result<App, SetupError> {
    let source = match &choice.replay {
        Some(dir) => Source::Replay(dir.clone()),
        None => {
            let credentials = credentials(env, until).await?;
            let used = config.check_budget(credentials.len())?;
            tracing::info!(
                calls_per_hour = used.calls_per_hour,
                budget = used.limit,
                "schedule within the Graph API budget: {}",
                used.arithmetic
            );
            Source::live(&config.graph, credentials)?
        }
    };
    let sink = match (&env.bucket, &choice.out_dir) {
        (Some(bucket), _) => {
            Sink::s3_from_env(bucket.clone(), env.s3_endpoint_overridden, &config.sink).await
        }
        (None, Some(dir)) => Sink::Dir(dir.clone()),
        (None, None) => return Err(SetupError::MissingBucket),
    };
    Ok(App {
        shard: None,
        config,
        source,
        sink,
        clock: Clock::system(),
    })
}

/// Reads the token secret again and returns `app` over the credentials it now holds, or `None`
/// when they are the ones `app` already uses (or the tokens do not come from a secret, so that
/// nothing can have changed). The configuration and the sink are kept: only the credentials
/// rotate. Bounded by `until` and [`SECRET_READ_TIMEOUT`].
pub async fn refreshed(app: &App, until: Option<Instant>) -> Result<Option<App>, SetupError> {
    let env = Env::read();
    if env.token_secret_arn.is_none() {
        return Ok(None);
    }
    let fresh = credentials(&env, until).await?;
    if same_credentials(&app.source, &fresh) {
        return Ok(None);
    }
    app.config.check_budget(fresh.len())?;
    Ok(Some(App {
        shard: None,
        config: app.config.clone(),
        source: Source::live(&app.config.graph, fresh)?,
        sink: app.sink.clone(),
        clock: app.clock.clone(),
    }))
}

/// True when `source` calls with exactly these credentials, in this order.
fn same_credentials(source: &Source, fresh: &[Credentials]) -> bool {
    let Source::Live(clients) = source else {
        return false;
    };
    clients.len() == fresh.len()
        && clients.iter().zip(fresh).all(|(c, f)| {
            let k = &c.credentials;
            k.ig_user_id == f.ig_user_id
                && k.token.expose() == f.token.expose()
                && k.app_secret.as_ref().map(AppSecret::expose)
                    == f.app_secret.as_ref().map(AppSecret::expose)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_cache_time_defaults_to_15_minutes_and_a_bad_value_names_the_variable() {
        let env = |v: Option<&str>| {
            Env::from_lookup(|k| (k == "TOKEN_CACHE_TTL_SECS").then(|| v.map(str::to_string))?)
        };
        assert_eq!(token_cache_ttl(&env(None)).ok(), Some(TOKEN_CACHE_TTL));
        assert_eq!(
            token_cache_ttl(&env(Some("60"))).ok(),
            Some(Duration::from_secs(60))
        );
        let e = token_cache_ttl(&env(Some("15m"))).expect_err("refused");
        assert_eq!(e.kind_name(), "ConfigInvalid");
        assert!(
            e.to_string().starts_with("TOKEN_CACHE_TTL_SECS is \"15m\""),
            "{e}"
        );
    }
}
