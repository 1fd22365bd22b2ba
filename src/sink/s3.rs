//! The S3 calls of the sink: the client with this crate's timeouts and retries, the credentials
//! check, and a conditional write, a read and a listing, each failure as a [`SinkError`].

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::error::SinkError;
use super::object::{Condition, Object, Payload, Written};
use crate::config::SinkSettings;

/// An S3 client from an SDK configuration, with this crate's timeouts and retries. Path-style
/// addressing when the endpoint is overridden, because local S3 servers rarely serve
/// virtual-host buckets.
pub(super) fn client(
    shared: &aws_config::SdkConfig,
    path_style: bool,
    settings: &SinkSettings,
) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(path_style)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .read_timeout(settings.operation_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .build();
    Client::from_conf(conf)
}

/// Whether the SDK's credentials chain resolves within `timeout` (see
/// `Sink::check_credentials`); `Err` says what to do in a sentence.
pub(super) async fn check_credentials(
    bucket: &str,
    credentials: Option<&aws_sdk_s3::config::SharedCredentialsProvider>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use aws_sdk_s3::config::ProvideCredentials;
    let fix = format!("set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or log in with `aws sso login`) to write to s3://{bucket}, or unset BUCKET and use --out for a folder");
    let Some(provider) = credentials else {
        return Err(format!("no AWS credentials are configured: {fix}"));
    };
    match tokio::time::timeout(timeout, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "AWS credentials could not be resolved ({}): {fix}",
            one_line(&e.to_string())
        )),
        Err(_) => Err(format!(
            "AWS credentials did not resolve within {} s: {fix}",
            timeout.as_secs()
        )),
    }
}

/// Writes `body` under `key` if `condition` holds; `fail` makes the error of a failed write.
pub(super) async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Payload<'_>,
    content_type: &str,
    condition: &Condition,
    fail: impl Fn(String) -> SinkError,
) -> Result<Written, SinkError> {
    let stream = match body {
        Payload::Bytes(b) => ByteStream::from(b),
        // Read from the path on each attempt, so the SDK's retries resend it.
        Payload::File(path) => ByteStream::from_path(path)
            .await
            .map_err(|e| fail(format!("{} cannot be read: {e}", path.display())))?,
    };
    let mut req = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(stream);
    req = match condition {
        Condition::Overwrite => req,
        Condition::Absent => req.if_none_match("*"),
        Condition::Matches(etag) => req.if_match(etag),
    };
    match req.send().await {
        Ok(out) => Ok(Written::Done(out.e_tag().unwrap_or_default().to_string())),
        Err(e) if is_conflict(&e) => Ok(Written::Conflict),
        Err(e) => Err(sdk_failure(fail, e)),
    }
}

/// Reads the object under `key`; `Ok(None)` only when S3 says there is none.
pub(super) async fn get(
    client: &Client,
    bucket: &str,
    key: &str,
    fail: impl Fn(String) -> SinkError,
) -> Result<Option<Object>, SinkError> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let etag = out.e_tag().unwrap_or_default().to_string();
            let body = out.body.collect().await.map_err(|e| fail(e.to_string()))?;
            Ok(Some(Object {
                body: body.into_bytes().to_vec(),
                etag,
            }))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(sdk_failure(fail, e)),
    }
}

/// Every key under `prefix`, page after page.
pub(super) async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    fail: impl Fn(String) -> SinkError,
) -> Result<Vec<String>, SinkError> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

/// An SDK failure as a [`SinkError`], marked as a timeout when the SDK's own timeouts fired.
fn sdk_failure<E, R>(fail: impl Fn(String) -> SinkError, e: SdkError<E, R>) -> SinkError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let timed_out = matches!(e, SdkError::TimeoutError(_));
    SinkError {
        timed_out,
        ..fail(DisplayErrorContext(&e).to_string())
    }
}

/// 412 Precondition Failed, or 409 ConditionalRequestConflict (two conditional writes to one
/// key at once): either way another writer got there first.
fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        e.code(),
        Some("PreconditionFailed") | Some("ConditionalRequestConflict")
    ) || matches!(
        e.raw_response().map(|r| r.status().as_u16()),
        Some(412) | Some(409)
    )
}

/// The first line of `text`, at most 200 characters: an SDK message, never a debug dump.
fn one_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}
