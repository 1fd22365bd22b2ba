//! Building an [`App`] from the environment: configuration, credentials, sink. Runs once per
//! process (a Lambda cold start, or a CLI call).

use std::path::PathBuf;

use crate::collect::App;
use crate::config::{Config, ConfigError};
use crate::graph::{AccessToken, Credentials, GraphError, Source};
use crate::sink::Sink;

/// Why the collector could not start. Each variant says what to set or fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("no access token: set IG_TOKEN_SECRET_ARN (Secrets Manager) or IG_ACCESS_TOKEN; to run offline use --replay DIR")]
    MissingToken,
    #[error(
        "IG_USER_ID is not set: the Instagram business account id the Graph calls are made as"
    )]
    MissingUserId,
    #[error("IG_USER_ID `{0}` is not a numeric Instagram user id")]
    BadUserId(String),
    #[error("could not read the token secret {arn}: {message}")]
    Secret { arn: String, message: String },
    #[error("BUCKET is not set: the S3 bucket the records are written to")]
    MissingBucket,
    #[error("{0}")]
    Graph(#[from] GraphError),
}

impl SetupError {
    pub fn kind_name(&self) -> &'static str {
        match self {
            SetupError::Config(_) => "ConfigInvalid",
            SetupError::MissingToken | SetupError::Secret { .. } => "TokenUnavailable",
            SetupError::MissingUserId | SetupError::BadUserId(_) => "UserIdInvalid",
            SetupError::MissingBucket => "BucketMissing",
            SetupError::Graph(_) => "GraphClientSetup",
        }
    }
}

/// Where records come from and go to, as chosen on the command line or by the environment.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// Recorded responses instead of the live API.
    pub replay: Option<PathBuf>,
    /// Folder output when `BUCKET` is not set (the CLI's `--out`); `None` requires `BUCKET`.
    pub out_dir: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Builds the app: config (embedded or `CONFIG_PATH`), source, sink.
pub async fn app_from_env(choice: &Choice) -> Result<App, SetupError> {
    let config = Config::load()?;
    build(config, choice).await
}

/// Builds the app around a loaded config.
pub async fn build(config: Config, choice: &Choice) -> Result<App, SetupError> {
    let source = match &choice.replay {
        Some(dir) => Source::Replay(dir.clone()),
        None => Source::live(&config.graph, credentials_from_env().await?)?,
    };
    let sink = match (env("BUCKET"), &choice.out_dir) {
        (Some(bucket), _) => Sink::s3_from_env(bucket).await,
        (None, Some(dir)) => Sink::Dir(dir.clone()),
        (None, None) => return Err(SetupError::MissingBucket),
    };
    Ok(App {
        config,
        source,
        sink,
    })
}

/// `IG_USER_ID` and the token: from Secrets Manager when `IG_TOKEN_SECRET_ARN` is set, else from
/// `IG_ACCESS_TOKEN`. `IG_APP_SECRET` (or `app_secret` in the secret) turns on `appsecret_proof`.
pub async fn credentials_from_env() -> Result<Credentials, SetupError> {
    let ig_user_id = env("IG_USER_ID").ok_or(SetupError::MissingUserId)?;
    if !crate::config::is_digits(&ig_user_id) {
        return Err(SetupError::BadUserId(ig_user_id));
    }
    let (token, secret_app) = match env("IG_TOKEN_SECRET_ARN") {
        Some(arn) => read_secret(&arn).await?,
        None => (
            env("IG_ACCESS_TOKEN").ok_or(SetupError::MissingToken)?,
            None,
        ),
    };
    let app_secret = secret_app
        .or_else(|| env("IG_APP_SECRET"))
        .map(AccessToken::new);
    Ok(Credentials {
        ig_user_id,
        token: AccessToken::new(token),
        app_secret,
    })
}

/// Reads the token secret. Its value is the raw token, or JSON with `access_token` (and
/// optionally `app_secret`).
async fn read_secret(arn: &str) -> Result<(String, Option<String>), SetupError> {
    let shared = aws_config::load_from_env().await;
    let client = aws_sdk_secretsmanager::Client::new(&shared);
    let fail = |message: String| SetupError::Secret {
        arn: arn.to_string(),
        message,
    };
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    let text = out
        .secret_string()
        .ok_or_else(|| fail("the secret has no SecretString".into()))?
        .trim()
        .to_string();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| fail("the secret looks like JSON but does not parse".into()))?;
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| fail("the JSON secret has no string `access_token`".into()))?;
        let app = v
            .get("app_secret")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        Ok((token.to_string(), app))
    } else if text.is_empty() {
        Err(fail("the secret is empty".into()))
    } else {
        Ok((text, None))
    }
}
