//! Reading the token secret from Secrets Manager, within its own bounds and the caller's.

use std::time::{Duration, Instant};

use super::error::SetupError;

/// How long the token secret read may take, attempts included, when the caller leaves more.
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to Secrets Manager may take.
const SECRET_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The shorter of `limit` and the time left until `until`.
pub(super) fn within(limit: Duration, until: Option<Instant>) -> Duration {
    until.map_or(limit, |u| {
        limit.min(u.saturating_duration_since(Instant::now()))
    })
}

/// A Secrets Manager client whose every call ends within `bound`.
pub(super) async fn secrets_client(bound: Duration) -> aws_sdk_secretsmanager::Client {
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
pub(super) async fn read_secret_text(
    arn: &str,
    until: Option<Instant>,
) -> Result<String, SetupError> {
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
pub(super) fn is_timeout<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> bool {
    use aws_sdk_secretsmanager::error::SdkError;
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    }
}
