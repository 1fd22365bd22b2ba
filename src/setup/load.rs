//! The configuration a run starts from: the embedded file, a file, or an S3 object, as
//! `CONFIG_PATH` says.

use std::path::Path;
use std::time::{Duration, Instant};

use super::env::Env;
use super::error::SetupError;
use crate::config::{Config, ConfigError, Problem, SinkSettings, EMBEDDED, EMBEDDED_NAME};
use crate::sink::Sink;

/// The `CONFIG_PATH=s3://` read's own bounds: the configuration's `[sink]` settings are not known
/// before it is read.
const CONFIG_READ_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CONFIG_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
