//! Building an [`App`] from the environment: configuration, credentials, sink. Runs once per
//! process (a Lambda cold start, or a CLI call). [`env`] reads every variable; nothing else in
//! the crate looks at the environment.

mod env;

use std::path::{Path, PathBuf};

pub use env::Env;

use crate::collect::App;
use crate::config::{Config, ConfigError, Problem, SinkSettings, EMBEDDED, EMBEDDED_NAME};
use crate::graph::{AccessToken, AppSecret, Credentials, GraphError, Source};
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
    #[error("IG_USER_ID lists {0} ids but the secret holds one token: set one id, or store {{\"credentials\": [...]}} in the secret")]
    UserIdCount(usize),
    /// The value is not shown: a token pasted into the wrong variable would be printed.
    #[error("IG_USER_ID entry {0} (counting from 1) is not a numeric Instagram user id; its value is not shown, in case it is a token")]
    BadUserId(usize),
    #[error("IG_USER_ID lists {ids} ids but IG_ACCESS_TOKEN {tokens} tokens: give one token per id, comma-separated")]
    CredentialCount { ids: usize, tokens: usize },
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
            SetupError::MissingUserId
            | SetupError::UserIdCount(_)
            | SetupError::BadUserId(_)
            | SetupError::CredentialCount { .. } => "UserIdInvalid",
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

/// Builds the app from the process environment: config (embedded, a file or an S3 object named
/// by `CONFIG_PATH`), source, sink.
pub async fn app_from_env(choice: &Choice) -> Result<App, SetupError> {
    let env = Env::read();
    let config = load_config(&env).await?;
    build(config, &env, choice).await
}

/// The configuration `CONFIG_PATH` names (a file, or `s3://bucket/key`, read with the same
/// checks), else the embedded one; then the environment overrides.
///
/// An object in S3 lets an operator change the tracked targets without a rebuild: upload the
/// file, and the next cold start reads it (README, "Change the configuration without a rebuild").
pub async fn load_config(env: &Env) -> Result<Config, SetupError> {
    let Some(path) = &env.config_path else {
        return Ok(Config::parse(EMBEDDED, EMBEDDED_NAME, &env.overrides)?);
    };
    let Some(rest) = path.strip_prefix("s3://") else {
        return Ok(Config::load_file(Path::new(path), &env.overrides)?);
    };
    let unreadable = |message: String| ConfigError {
        file: path.clone(),
        problems: vec![Problem {
            key: "CONFIG_PATH (environment)".into(),
            message,
        }],
    };
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => (b, k),
        _ => {
            return Err(
                unreadable("is not s3://bucket/key: name the bucket and the object".into()).into(),
            )
        }
    };
    // The configuration's own S3 settings are not known yet: the defaults bound this read.
    let settings = SinkSettings::default();
    let sink = Sink::s3_from_env(bucket.to_string(), env.s3_endpoint_overridden, &settings).await;
    let object = sink
        .get(key, None)
        .await
        .map_err(|e| unreadable(format!("{e}")))?
        .ok_or_else(|| unreadable(format!("there is no object s3://{bucket}/{key}")))?;
    let text = String::from_utf8(object.body)
        .map_err(|_| unreadable("the object is not UTF-8 text".into()))?;
    Ok(Config::parse(&text, path, &env.overrides)?)
}

/// Builds the app around a loaded config. A live source must fit the hourly call budget of
/// its credentials.
pub async fn build(config: Config, env: &Env, choice: &Choice) -> Result<App, SetupError> {
    let source = match &choice.replay {
        Some(dir) => Source::Replay(dir.clone()),
        None => {
            let credentials = credentials(env).await?;
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
        config,
        source,
        sink,
    })
}

/// The credentials, one or more: from Secrets Manager when `IG_TOKEN_SECRET_ARN` is set, else
/// `IG_USER_ID` and `IG_ACCESS_TOKEN` (comma-separated lists of the same length for several).
/// `IG_APP_SECRET` (or `app_secret` in the secret) turns on `appsecret_proof`.
pub async fn credentials(env: &Env) -> Result<Vec<Credentials>, SetupError> {
    let app_secret = env.app_secret.clone();
    let pairs: Vec<(String, String, Option<String>)> = match &env.token_secret_arn {
        Some(arn) => {
            let secret = read_secret(arn).await?;
            match secret {
                SecretValue::Many(many) => many,
                SecretValue::One(token, app) => {
                    let ids = &env.ig_user_ids;
                    match ids.len() {
                        0 => return Err(SetupError::MissingUserId),
                        1 => {}
                        n => return Err(SetupError::UserIdCount(n)),
                    }
                    vec![(ids[0].clone(), token, app)]
                }
            }
        }
        None => {
            let ids = env.ig_user_ids.clone();
            let tokens = env.access_tokens.clone();
            if tokens.is_empty() {
                return Err(SetupError::MissingToken);
            }
            if ids.is_empty() {
                return Err(SetupError::MissingUserId);
            }
            if ids.len() != tokens.len() {
                return Err(SetupError::CredentialCount {
                    ids: ids.len(),
                    tokens: tokens.len(),
                });
            }
            ids.into_iter()
                .zip(tokens)
                .map(|(i, t)| (i, t, None))
                .collect()
        }
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (i, (ig_user_id, token, app)) in pairs.into_iter().enumerate() {
        if !crate::validate::is_digits(&ig_user_id) {
            return Err(SetupError::BadUserId(i + 1));
        }
        out.push(Credentials {
            ig_user_id,
            token: AccessToken::new(token),
            app_secret: app.or_else(|| app_secret.clone()).map(AppSecret::new),
        });
    }
    Ok(out)
}

/// What the token secret holds.
enum SecretValue {
    /// A raw token, or JSON `{"access_token", "app_secret"?}`; the user id comes from `IG_USER_ID`.
    One(String, Option<String>),
    /// JSON `{"credentials": [{"ig_user_id", "access_token", "app_secret"?}, …]}`.
    Many(Vec<(String, String, Option<String>)>),
}

/// Reads the token secret.
async fn read_secret(arn: &str) -> Result<SecretValue, SetupError> {
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
    parse_secret(&text).map_err(fail)
}

fn parse_secret(text: &str) -> Result<SecretValue, String> {
    if !text.starts_with('{') {
        return if text.is_empty() {
            Err("the secret is empty".into())
        } else {
            Ok(SecretValue::One(text.to_string(), None))
        };
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| "the secret looks like JSON but does not parse".to_string())?;
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|t| t.as_str()).map(str::to_string);
    if let Some(list) = v.get("credentials").and_then(|c| c.as_array()) {
        let mut many = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let id = s(c, "ig_user_id")
                .ok_or_else(|| format!("credentials[{i}] has no string `ig_user_id`"))?;
            let token = s(c, "access_token")
                .ok_or_else(|| format!("credentials[{i}] has no string `access_token`"))?;
            many.push((id, token, s(c, "app_secret")));
        }
        if many.is_empty() {
            return Err("`credentials` is empty".into());
        }
        return Ok(SecretValue::Many(many));
    }
    let token = s(&v, "access_token").ok_or_else(|| {
        "the JSON secret has no string `access_token` (nor `credentials`)".to_string()
    })?;
    Ok(SecretValue::One(token, s(&v, "app_secret")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_may_be_raw_json_or_a_list_of_credentials() {
        assert!(matches!(parse_secret("EAAGraw"), Ok(SecretValue::One(t, None)) if t == "EAAGraw"));
        assert!(matches!(
            parse_secret(r#"{"access_token": "EAAGa", "app_secret": "s"}"#),
            Ok(SecretValue::One(t, Some(a))) if t == "EAAGa" && a == "s"
        ));
        let many = parse_secret(
            r#"{"credentials": [{"ig_user_id": "1", "access_token": "a"}, {"ig_user_id": "2", "access_token": "b"}]}"#,
        );
        assert!(matches!(many, Ok(SecretValue::Many(v)) if v.len() == 2 && v[1].0 == "2"));
        let bad = [
            ("", "empty"),
            ("{oops", "does not parse"),
            (r#"{"token": "x"}"#, "no string `access_token`"),
            (
                r#"{"credentials": [{"ig_user_id": "1"}]}"#,
                "credentials[0] has no string `access_token`",
            ),
            (r#"{"credentials": []}"#, "is empty"),
        ];
        for (text, expected) in bad {
            match parse_secret(text) {
                Err(m) => assert!(m.contains(expected), "{text}: {m}"),
                Ok(_) => panic!("{text} must be refused"),
            }
        }
    }
}
