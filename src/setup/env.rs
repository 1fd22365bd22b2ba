//! The environment: **every environment variable the collector reads is read here**, once, into
//! an [`Env`]. The Lambda binaries and the CLI both use it; tests build one by hand instead of
//! setting variables. (The AWS SDK reads its own `AWS_*` variables.)

use crate::config::Overrides;

/// What the environment says. Empty values count as unset.
#[derive(Clone, Default)]
pub struct Env {
    /// `CONFIG_PATH`: a file, or `s3://bucket/key`, instead of the embedded configuration.
    pub config_path: Option<String>,
    /// `GRAPH_API_URL`, `GRAPH_API_VERSION`, `OUTPUT_FORMAT`.
    pub overrides: Overrides,
    /// `BUCKET`: where records go (else the CLI's `--out`).
    pub bucket: Option<String>,
    /// True when `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` points S3 elsewhere (a local
    /// server): path-style addressing then.
    pub s3_endpoint_overridden: bool,
    /// `IG_USER_ID`, comma-separated.
    pub ig_user_ids: Vec<String>,
    /// `IG_ACCESS_TOKEN`, comma-separated, one per id. Never printed.
    pub access_tokens: Vec<String>,
    /// `IG_TOKEN_SECRET_ARN`: the Secrets Manager secret holding the token(s).
    pub token_secret_arn: Option<String>,
    /// `IG_APP_SECRET`: turns on `appsecret_proof`. Never printed.
    pub app_secret: Option<String>,
    /// `IG_APP_ID`: the Meta app's id, which (with the app secret) lets a token be exchanged for
    /// a fresh one (`ig-collector token-refresh`, `health.refresh_days_left`). Not a secret.
    pub app_id: Option<String>,
    /// `TOKEN_CACHE_TTL_SECS`: how long a warm Lambda process keeps the token it read from the
    /// secret before reading it again (checked by [`super::token_cache_ttl`]).
    pub token_cache_ttl_secs: Option<String>,
    /// `AWS_LAMBDA_LOG_LEVEL`: the log level Lambda's logging controls set.
    pub lambda_log_level: Option<String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("config_path", &self.config_path)
            .field("overrides", &self.overrides)
            .field("bucket", &self.bucket)
            .field("s3_endpoint_overridden", &self.s3_endpoint_overridden)
            .field("ig_user_ids", &self.ig_user_ids.len())
            .field("access_tokens", &self.access_tokens.len())
            .field("token_secret_arn", &self.token_secret_arn)
            .field("app_id", &self.app_id)
            .field("token_cache_ttl_secs", &self.token_cache_ttl_secs)
            .field("lambda_log_level", &self.lambda_log_level)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Env {
    /// Reads the process environment.
    pub fn read() -> Env {
        Env::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the process environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Env {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| -> Vec<String> {
            var(name)
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Env {
            config_path: var("CONFIG_PATH"),
            overrides: Overrides {
                graph_api_url: var("GRAPH_API_URL"),
                graph_api_version: var("GRAPH_API_VERSION"),
                output_format: var("OUTPUT_FORMAT"),
            },
            bucket: var("BUCKET"),
            s3_endpoint_overridden: var("AWS_ENDPOINT_URL_S3").is_some()
                || var("AWS_ENDPOINT_URL").is_some(),
            ig_user_ids: list("IG_USER_ID"),
            access_tokens: list("IG_ACCESS_TOKEN"),
            token_secret_arn: var("IG_TOKEN_SECRET_ARN"),
            app_secret: var("IG_APP_SECRET"),
            app_id: var("IG_APP_ID"),
            token_cache_ttl_secs: var("TOKEN_CACHE_TTL_SECS"),
            lambda_log_level: var("AWS_LAMBDA_LOG_LEVEL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_split_and_empty_values_are_unset_and_secrets_are_not_printed() {
        let env = Env::from_lookup(|k| match k {
            "IG_USER_ID" => Some(" 1, 2 ,".into()),
            "IG_ACCESS_TOKEN" => Some("EAAGsecretA,EAAGsecretB".into()),
            "IG_APP_SECRET" => Some("appsecretvalue".into()),
            "BUCKET" => Some("  ".into()),
            "AWS_ENDPOINT_URL_S3" => Some("http://127.0.0.1:9000".into()),
            _ => None,
        });
        assert_eq!(env.ig_user_ids, ["1", "2"]);
        assert_eq!(env.access_tokens.len(), 2);
        assert_eq!(env.bucket, None);
        assert!(env.s3_endpoint_overridden);
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("EAAGsecret") && !shown.contains("appsecretvalue"),
            "{shown}"
        );
    }
}
