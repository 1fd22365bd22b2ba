//! Building an [`App`] from the environment: configuration, credentials, sink. The Lambda runs
//! it inside an invocation until it succeeds once (a failure fails that event only); the CLI
//! once per call. [`env`] reads every variable; nothing else in the crate looks at the
//! environment.
//!
//! Every wait here is bounded twice: by its own timeout (the token secret read, the
//! configuration's S3 read) and by the caller's `until`, the time the invocation leaves. A
//! Secrets Manager or an S3 that accepts a connection and never answers therefore ends in an
//! error that names it, not in a cold start that never takes its first event.

mod env;
pub mod renew;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use env::Env;

use crate::collect::App;
use crate::config::{Config, ConfigError, Problem, SinkSettings, EMBEDDED, EMBEDDED_NAME};
use crate::graph::{AccessToken, AppSecret, Credentials, GraphError, Source};
use crate::schedule::Clock;
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
    /// Secrets Manager took the connection (or none came) and sent no answer in time.
    #[error("the token secret {arn} did not answer within {secs:.1} s: check that Secrets Manager is reachable from here (a function in a VPC needs a NAT gateway or a secretsmanager VPC endpoint) and, if AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL is set, that it points at Secrets Manager")]
    SecretTimeout { arn: String, secs: f64 },
    /// Two credentials for one Instagram user: they would spend one hourly budget twice.
    #[error("{source_name} entry {repeat} (counting from 1) names Instagram user {ig_user_id} again, as entry {first} does: one user's calls share one hourly budget, so two credentials for it would overspend it; remove one of the two")]
    DuplicateUserId {
        source_name: &'static str,
        ig_user_id: String,
        first: usize,
        repeat: usize,
    },
    /// Setup as a whole outlived the time it was given (a wait without its own bound, e.g.
    /// resolving AWS credentials or region).
    #[error("setup (configuration, token, clients) did not finish within {secs:.1} s, the time this invocation leaves before its answer is due: check that S3, Secrets Manager and the AWS credentials are reachable; the next event tries again")]
    Unfinished { secs: f64 },
    #[error("BUCKET is not set: the S3 bucket the records are written to")]
    MissingBucket,
    #[error("{0}")]
    Graph(#[from] GraphError),
    #[error("TOKEN_CACHE_TTL_SECS is \"{0}\": set it to a whole number of seconds (900 reads the token secret again every 15 minutes), or unset it")]
    BadTokenCacheTtl(String),
    /// The value written is not shown, nor any token: the message is scrubbed of them.
    #[error("could not write the fresh token to the token secret {arn}: {message}; check that this role may call secretsmanager:PutSecretValue on it (template.yaml grants it when IgAppId is set)")]
    SecretWrite { arn: String, message: String },
    #[error("a refreshed token is written back to the token secret, and there is none: set IG_TOKEN_SECRET_ARN to the Secrets Manager secret that holds the token (a token in IG_ACCESS_TOKEN cannot be rewritten); --dry-run only reports")]
    RefreshWithoutSecret,
    #[error("no app id for credential {entry} (Instagram user {ig_user_id}): set IG_APP_ID to the id of the Meta app the token was issued for (App Dashboard, App settings, Basic), or put `app_id` in the token secret")]
    MissingAppId { entry: usize, ig_user_id: String },
    #[error("no app secret for credential {entry} (Instagram user {ig_user_id}): put `app_secret` in the token secret, or set IG_APP_SECRET, to the secret of the Meta app the token was issued for")]
    MissingAppSecret { entry: usize, ig_user_id: String },
}

impl SetupError {
    pub fn kind_name(&self) -> &'static str {
        match self {
            SetupError::Config(_) | SetupError::BadTokenCacheTtl(_) => "ConfigInvalid",
            SetupError::MissingToken
            | SetupError::Secret { .. }
            | SetupError::SecretTimeout { .. } => "TokenUnavailable",
            SetupError::MissingUserId
            | SetupError::UserIdCount(_)
            | SetupError::BadUserId(_)
            | SetupError::CredentialCount { .. }
            | SetupError::DuplicateUserId { .. } => "UserIdInvalid",
            SetupError::Unfinished { .. } => "SetupTimeout",
            SetupError::MissingBucket => "BucketMissing",
            SetupError::Graph(_) => "GraphClientSetup",
            SetupError::SecretWrite { .. } => "TokenNotStored",
            SetupError::RefreshWithoutSecret
            | SetupError::MissingAppId { .. }
            | SetupError::MissingAppSecret { .. } => "RefreshUnavailable",
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

/// How long the token secret read may take, attempts included, when the caller leaves more.
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to Secrets Manager may take.
const SECRET_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The `CONFIG_PATH=s3://` read's own bounds: the configuration's `[sink]` settings are not known
/// before it is read.
const CONFIG_READ_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CONFIG_READ_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The shorter of `limit` and the time left until `until`.
fn within(limit: Duration, until: Option<Instant>) -> Duration {
    until.map_or(limit, |u| {
        limit.min(u.saturating_duration_since(Instant::now()))
    })
}

/// Builds the app from the process environment: config (embedded, a file or an S3 object named
/// by `CONFIG_PATH`), source, sink; every wait ends by `until` when given.
pub async fn app_from_env(choice: &Choice, until: Option<Instant>) -> Result<App, SetupError> {
    let env = Env::read();
    let config = load_config(&env, until).await?;
    build(config, &env, choice, until).await
}

/// The configuration `CONFIG_PATH` names (a file, or `s3://bucket/key`, read with the same
/// checks), else the embedded one; then the environment overrides.
///
/// An object in S3 lets an operator change the tracked targets without a rebuild: upload the
/// file, and the next cold start reads it (README, "Change the configuration without a rebuild").
pub async fn load_config(env: &Env, until: Option<Instant>) -> Result<Config, SetupError> {
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
    // The configuration's own S3 settings are not known yet: this read has its own bounds.
    let settings = SinkSettings {
        connect_timeout: CONFIG_READ_CONNECT_TIMEOUT,
        operation_timeout: CONFIG_READ_TIMEOUT,
        ..SinkSettings::default()
    };
    let sink = Sink::s3_from_env(bucket.to_string(), env.s3_endpoint_overridden, &settings).await;
    let object = sink
        .get(key, until)
        .await
        .map_err(|e| unreadable(format!("{e}")))?
        .ok_or_else(|| unreadable(format!("there is no object s3://{bucket}/{key}")))?;
    let text = String::from_utf8(object.body)
        .map_err(|_| unreadable("the object is not UTF-8 text".into()))?;
    Ok(Config::parse(&text, path, &env.overrides)?)
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

/// The credentials, one or more: from Secrets Manager when `IG_TOKEN_SECRET_ARN` is set, else
/// `IG_USER_ID` and `IG_ACCESS_TOKEN` (comma-separated lists of the same length for several).
/// `IG_APP_SECRET` (or `app_secret` in the secret) turns on `appsecret_proof`. `IG_APP_ID` (or
/// `app_id` in the secret) is kept for tokens read from the secret only: a refreshed token is
/// written back there (`renew`), and a token from `IG_ACCESS_TOKEN` has nowhere to go.
/// The Secrets Manager read ends by `until` (and within [`SECRET_READ_TIMEOUT`]).
///
/// No Instagram user id may be named twice: two credentials of one user share one hourly budget,
/// and the budget check and the plan would count it twice.
pub async fn credentials(
    env: &Env,
    until: Option<Instant>,
) -> Result<Vec<Credentials>, SetupError> {
    let entries = match &env.token_secret_arn {
        Some(arn) => {
            let text = read_secret_text(arn, until).await?;
            let secret = parse_secret(&text).map_err(|message| SetupError::Secret {
                arn: arn.clone(),
                message,
            })?;
            secret_entries(secret, env)?
        }
        None => env_entries(env)?,
    };
    credentials_of(entries, env)
}

/// The entries of the token secret, the user id of a one-token secret taken from `IG_USER_ID`.
fn secret_entries(secret: SecretValue, env: &Env) -> Result<Vec<Entry>, SetupError> {
    match secret {
        SecretValue::Many(many) => Ok(many),
        SecretValue::One(mut entry) => {
            let ids = &env.ig_user_ids;
            match ids.len() {
                0 => return Err(SetupError::MissingUserId),
                1 => {}
                n => return Err(SetupError::UserIdCount(n)),
            }
            entry.ig_user_id = ids[0].clone();
            Ok(vec![entry])
        }
    }
}

/// `IG_USER_ID` and `IG_ACCESS_TOKEN`, paired.
fn env_entries(env: &Env) -> Result<Vec<Entry>, SetupError> {
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
    Ok(ids
        .into_iter()
        .zip(tokens)
        .map(|(ig_user_id, token)| Entry {
            ig_user_id,
            token,
            app_secret: None,
            app_id: None,
        })
        .collect())
}

/// Checks the entries (numeric, distinct user ids) and completes them from the environment.
fn credentials_of(entries: Vec<Entry>, env: &Env) -> Result<Vec<Credentials>, SetupError> {
    let from_secret = env.token_secret_arn.is_some();
    let source_name = if from_secret {
        "the token secret's `credentials`"
    } else {
        "IG_USER_ID"
    };
    let mut out: Vec<Credentials> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let Entry {
            ig_user_id,
            token,
            app_secret,
            app_id,
        } = entry;
        if !crate::validate::is_digits(&ig_user_id) {
            return Err(SetupError::BadUserId(i + 1));
        }
        if let Some(first) = out.iter().position(|c| c.ig_user_id == ig_user_id) {
            return Err(SetupError::DuplicateUserId {
                source_name,
                ig_user_id,
                first: first + 1,
                repeat: i + 1,
            });
        }
        out.push(Credentials {
            ig_user_id,
            token: AccessToken::new(token),
            app_secret: app_secret
                .or_else(|| env.app_secret.clone())
                .map(AppSecret::new),
            app_id: app_id
                .or_else(|| env.app_id.clone())
                .filter(|_| from_secret),
        });
    }
    Ok(out)
}

/// One credential as the token secret or the environment gives it.
#[derive(Clone)]
struct Entry {
    /// Empty in a one-token secret until `IG_USER_ID` fills it.
    ig_user_id: String,
    token: String,
    app_secret: Option<String>,
    app_id: Option<String>,
}

/// What the token secret holds.
enum SecretValue {
    /// A raw token, or JSON `{"access_token", "app_secret"?, "app_id"?}`; the user id comes
    /// from `IG_USER_ID`.
    One(Entry),
    /// JSON `{"credentials": [{"ig_user_id", "access_token", "app_secret"?, "app_id"?}, …]}`.
    Many(Vec<Entry>),
}

/// A Secrets Manager client whose every call ends within `bound`.
async fn secrets_client(bound: Duration) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
    let shared = aws_config::load_from_env().await;
    let conf = aws_sdk_secretsmanager::config::Builder::from(&shared)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(SECRET_CONNECT_TIMEOUT.min(bound))
                .read_timeout(bound)
                .operation_timeout(bound)
                .build(),
        )
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// Reads the token secret's text, within [`SECRET_READ_TIMEOUT`] and by `until`. The client has
/// its own connect and operation timeouts too; whichever bound ends the wait, the error is
/// [`SetupError::SecretTimeout`].
async fn read_secret_text(arn: &str, until: Option<Instant>) -> Result<String, SetupError> {
    let bound = within(SECRET_READ_TIMEOUT, until);
    let timed_out = || SetupError::SecretTimeout {
        arn: arn.to_string(),
        secs: bound.as_secs_f64(),
    };
    let fail = |message: String| SetupError::Secret {
        arn: arn.to_string(),
        message,
    };
    let read = async {
        let client = secrets_client(bound).await;
        client.get_secret_value().secret_id(arn).send().await
    };
    let out = match tokio::time::timeout(bound, read).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) if is_timeout(&e) => return Err(timed_out()),
        Ok(Err(e)) => {
            return Err(fail(
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            ))
        }
        Ok(Ok(out)) => out,
    };
    Ok(out
        .secret_string()
        .ok_or_else(|| fail("the secret has no SecretString".into()))?
        .trim()
        .to_string())
}

/// An SDK error that is the client's own timeout (connect, read or operation).
fn is_timeout<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> bool {
    use aws_sdk_secretsmanager::error::SdkError;
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    }
}

fn parse_secret(text: &str) -> Result<SecretValue, String> {
    if !text.starts_with('{') {
        return if text.is_empty() {
            Err("the secret is empty".into())
        } else {
            Ok(SecretValue::One(Entry {
                ig_user_id: String::new(),
                token: text.to_string(),
                app_secret: None,
                app_id: None,
            }))
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
            many.push(Entry {
                ig_user_id: id,
                token,
                app_secret: s(c, "app_secret"),
                app_id: s(c, "app_id"),
            });
        }
        if many.is_empty() {
            return Err("`credentials` is empty".into());
        }
        return Ok(SecretValue::Many(many));
    }
    let token = s(&v, "access_token").ok_or_else(|| {
        "the JSON secret has no string `access_token` (nor `credentials`)".to_string()
    })?;
    Ok(SecretValue::One(Entry {
        ig_user_id: String::new(),
        token,
        app_secret: s(&v, "app_secret"),
        app_id: s(&v, "app_id"),
    }))
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

    #[tokio::test]
    async fn one_instagram_user_named_twice_is_refused_naming_both_entries() {
        let env = Env::from_lookup(|k| match k {
            "IG_USER_ID" => Some("17841400000000001,17841400000000002,17841400000000001".into()),
            "IG_ACCESS_TOKEN" => Some("EAAGtokenA,EAAGtokenB,EAAGtokenC".into()),
            _ => None,
        });
        let e = credentials(&env, None).await.expect_err("refused");
        let message = e.to_string();
        assert_eq!(e.kind_name(), "UserIdInvalid");
        assert!(
            message.starts_with("IG_USER_ID entry 3 (counting from 1) names Instagram user 17841400000000001 again, as entry 1 does"),
            "{message}"
        );
        assert!(!message.contains("EAAGtoken"), "{message}");
        let distinct = Env::from_lookup(|k| match k {
            "IG_USER_ID" => Some("17841400000000001,17841400000000002".into()),
            "IG_ACCESS_TOKEN" => Some("EAAGtokenA,EAAGtokenB".into()),
            _ => None,
        });
        assert_eq!(
            credentials(&distinct, None).await.map(|c| c.len()).ok(),
            Some(2)
        );
    }

    #[test]
    fn the_app_id_is_kept_only_for_tokens_read_from_the_secret() {
        let entry = |app_id: Option<&str>| Entry {
            ig_user_id: "17841400000000001".into(),
            token: "EAAGtokenFromSomewhere".into(),
            app_secret: Some("app-secret-value".into()),
            app_id: app_id.map(str::to_string),
        };
        let env = |secret: bool| {
            Env::from_lookup(|k| match k {
                "IG_APP_ID" => Some("42".into()),
                "IG_TOKEN_SECRET_ARN" if secret => Some("arn:aws:secretsmanager:x".into()),
                _ => None,
            })
        };
        let app_id = |entry: Entry, env: &Env| {
            credentials_of(vec![entry], env)
                .ok()
                .and_then(|c| c.first().map(|c| c.app_id.clone()))
        };
        assert_eq!(app_id(entry(None), &env(true)), Some(Some("42".into())));
        assert_eq!(app_id(entry(Some("7")), &env(true)), Some(Some("7".into())));
        // A token from IG_ACCESS_TOKEN has no secret to be written back to.
        assert_eq!(app_id(entry(None), &env(false)), Some(None));
    }

    #[test]
    fn the_secret_may_be_raw_json_or_a_list_of_credentials() {
        assert!(
            matches!(parse_secret("EAAGraw"), Ok(SecretValue::One(e)) if e.token == "EAAGraw" && e.app_secret.is_none())
        );
        assert!(matches!(
            parse_secret(r#"{"access_token": "EAAGa", "app_secret": "s", "app_id": "42"}"#),
            Ok(SecretValue::One(e)) if e.token == "EAAGa" && e.app_secret.as_deref() == Some("s") && e.app_id.as_deref() == Some("42")
        ));
        let many = parse_secret(
            r#"{"credentials": [{"ig_user_id": "1", "access_token": "a"}, {"ig_user_id": "2", "access_token": "b", "app_id": "42"}]}"#,
        );
        assert!(
            matches!(many, Ok(SecretValue::Many(v)) if v.len() == 2 && v[1].ig_user_id == "2" && v[1].app_id.as_deref() == Some("42") && v[0].app_id.is_none())
        );
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
