//! Why the collector could not start: [`SetupError`], each variant saying what to set or fix.

use crate::config::ConfigError;
use crate::graph::GraphError;

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
