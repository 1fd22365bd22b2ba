//! Where records go: **the only module that knows S3.** A local folder stands in for a bucket
//! on the CLI, with the same keys.
//!
//! Every call is bounded twice: by the SDK's connect and operation timeouts
//! (`[sink]` in `configure.toml`), and by the run's own end (`until`), so a stalled S3 can never
//! keep an invocation past its deadline. Writes can be conditional (`If-None-Match: *`,
//! `If-Match: <etag>`): that is how overlapping and redelivered runs merge instead of replacing
//! each other's objects. This module does not decide what to merge; `collect` does.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::config::SinkSettings;

/// What a failed sink call was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::List => "list",
        }
    }
}

/// A sink call that did not happen. The run fails with it, so Lambda retries the invocation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not {} {location}: {message}", op.verb())]
pub struct SinkError {
    pub op: Op,
    /// `s3://bucket/key` or the file path.
    pub location: String,
    pub message: String,
    /// True when the call ran out of time (its timeout or the run's end).
    pub timed_out: bool,
}

/// An object as read, with the version tag a conditional write can name.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub body: Vec<u8>,
    /// The ETag (S3) or a content hash (folder); `If-Match` compares it.
    pub etag: String,
}

/// The condition a write is made under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Replace whatever is there.
    Overwrite,
    /// Only if there is no object under the key (`If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (`If-Match`).
    Matches(String),
}

/// What a conditional write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object was written; its new version tag.
    Done(String),
    /// The condition did not hold: another run wrote the key first (HTTP 412, or 409 for a
    /// concurrent conditional write). Nothing was written.
    Conflict,
}

/// The destination of a run's objects.
#[derive(Debug, Clone)]
pub enum Sink {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// The bound of one call, retries included.
        operation_timeout: Duration,
        /// The SDK's credentials chain, to check before a run spends its calls.
        credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
    },
    Dir(PathBuf),
    /// An in-process object store (a simulated S3), bounded like S3 by `operation_timeout`.
    Sim {
        store: Arc<dyn Store>,
        operation_timeout: Duration,
    },
}

/// An object store in the same process, standing in for S3: the calls [`Sink`] makes, with S3's
/// conditional-write semantics. A call that never returns is a stalled S3; the sink bounds it.
pub trait Store: Send + Sync + Debug {
    /// The object under `key` and its version tag; `Ok(None)`: no such key.
    fn get(&self, key: &str) -> BoxFuture<'static, Result<Option<Object>, String>>;
    /// Writes `body` under `key` if `condition` holds (else [`Written::Conflict`]).
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: &Condition,
    ) -> BoxFuture<'static, Result<Written, String>>;
    /// Every key under `prefix`.
    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, String>>;
}

impl Sink {
    /// An S3 sink from the standard AWS environment (region, credentials, and the
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` overrides).
    /// `path_style` when the endpoint is overridden (`setup::Env::s3_endpoint_overridden`).
    pub async fn s3_from_env(bucket: String, path_style: bool, settings: &SinkSettings) -> Sink {
        let shared = aws_config::load_from_env().await;
        Sink::s3(&shared, path_style, bucket, settings)
    }

    /// An S3 sink from an SDK configuration, with this crate's timeouts and retries. Path-style
    /// addressing when the endpoint is overridden, because local S3 servers rarely serve
    /// virtual-host buckets.
    pub fn s3(
        shared: &aws_config::SdkConfig,
        path_style: bool,
        bucket: String,
        settings: &SinkSettings,
    ) -> Sink {
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
        Sink::S3 {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket,
            operation_timeout: settings.operation_timeout,
            credentials: shared.credentials_provider(),
        }
    }

    /// For an S3 sink, whether AWS credentials resolve (environment, profile, SSO, instance
    /// role: the SDK's chain), within `timeout`: a CLI run checks it before its first Graph call,
    /// so that missing credentials cost no budget. `Err` says what to do in a sentence.
    pub async fn check_credentials(&self, timeout: std::time::Duration) -> Result<(), String> {
        use aws_sdk_s3::config::ProvideCredentials;
        let Sink::S3 {
            bucket,
            credentials,
            ..
        } = self
        else {
            return Ok(());
        };
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

    /// Where `key` ends up, for summaries and messages.
    pub fn location(&self, key: &str) -> String {
        match self {
            Sink::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Sink::Dir(root) => root.join(key).display().to_string(),
            Sink::Sim { .. } => format!("sim://{key}"),
        }
    }

    /// A failed call on `key`, not a timeout.
    fn failure(&self, op: Op, key: &str, message: String) -> SinkError {
        SinkError {
            op,
            location: self.location(key),
            message,
            timed_out: false,
        }
    }

    /// Runs one call within its bound: the operation timeout and the run's end, whichever
    /// comes first. The SDK's own timeouts do not cover a body that stops half-way.
    async fn bounded<T>(
        &self,
        op: Op,
        key: &str,
        until: Option<Instant>,
        call: impl std::future::Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        let limit = match self {
            Sink::S3 {
                operation_timeout, ..
            }
            | Sink::Sim {
                operation_timeout, ..
            } => *operation_timeout,
            // A local disk has no stall to guard against beyond the run's end.
            Sink::Dir(_) => Duration::from_secs(3600),
        };
        let (limit, why) = match until.map(|u| u.saturating_duration_since(Instant::now())) {
            Some(left) if left < limit => (left, "the run's time ran out"),
            _ => (
                limit,
                "the operation timeout (sink.operation_timeout_secs) passed",
            ),
        };
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(SinkError {
                op,
                location: self.location(key),
                message: format!(
                    "timed out: no answer within {} ms: {why}",
                    limit.as_millis()
                ),
                timed_out: true,
            }),
        }
    }

    /// Writes one object under `condition`, by `until` at the latest.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: &Condition,
        until: Option<Instant>,
    ) -> Result<Written, SinkError> {
        self.put_payload(key, Payload::Bytes(body), content_type, condition, until)
            .await
    }

    /// Writes the content of a local file as one object, like [`Sink::put`]: a large object
    /// goes from the disk to S3 without being held in memory.
    pub async fn put_file(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
        condition: &Condition,
        until: Option<Instant>,
    ) -> Result<Written, SinkError> {
        self.put_payload(key, Payload::File(file), content_type, condition, until)
            .await
    }

    async fn put_payload(
        &self,
        key: &str,
        body: Payload<'_>,
        content_type: &str,
        condition: &Condition,
        until: Option<Instant>,
    ) -> Result<Written, SinkError> {
        let fail = |message: String| self.failure(Op::Write, key, message);
        let call = async {
            match self {
                Sink::S3 { client, bucket, .. } => {
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
                Sink::Dir(root) => {
                    let path = root.join(key);
                    let err = |e: std::io::Error| fail(e.to_string());
                    // Checked, then written: the folder sink serves one CLI process at a time.
                    let current = read_file(&path).await.map_err(err)?;
                    let holds = match (condition, &current) {
                        (Condition::Overwrite, _) => true,
                        (Condition::Absent, c) => c.is_none(),
                        (Condition::Matches(tag), Some(c)) => &content_tag(c) == tag,
                        (Condition::Matches(_), None) => false,
                    };
                    if !holds {
                        return Ok(Written::Conflict);
                    }
                    if let Some(parent) = path.parent() {
                        tokio::fs::create_dir_all(parent).await.map_err(err)?;
                    }
                    // Write then rename, so a reader never sees half a file.
                    let tmp = path.with_extension("partial");
                    let tag = match body {
                        Payload::Bytes(b) => {
                            tokio::fs::write(&tmp, &b).await.map_err(err)?;
                            content_tag(&b)
                        }
                        Payload::File(from) => {
                            tokio::fs::copy(from, &tmp).await.map_err(err)?;
                            file_tag(&tmp).map_err(err)?
                        }
                    };
                    tokio::fs::rename(&tmp, &path).await.map_err(err)?;
                    Ok(Written::Done(tag))
                }
                Sink::Sim { store, .. } => {
                    let body = match body {
                        Payload::Bytes(b) => b,
                        Payload::File(path) => tokio::fs::read(path)
                            .await
                            .map_err(|e| fail(format!("{} cannot be read: {e}", path.display())))?,
                    };
                    store.put(key, body, condition).await.map_err(fail)
                }
            }
        };
        self.bounded(Op::Write, key, until, call).await
    }

    /// Reads one object; `Ok(None)` only when there is no object under that key. Any other
    /// failure (a 403, a 500 that outlived the retries, a timeout) is an error: a caller that
    /// took it for "no object" would act on a false picture.
    pub async fn get(
        &self,
        key: &str,
        until: Option<Instant>,
    ) -> Result<Option<Object>, SinkError> {
        let fail = |message: String| self.failure(Op::Read, key, message);
        let call = async {
            match self {
                Sink::S3 { client, bucket, .. } => {
                    match client.get_object().bucket(bucket).key(key).send().await {
                        Ok(out) => {
                            let etag = out.e_tag().unwrap_or_default().to_string();
                            let body = out.body.collect().await.map_err(|e| fail(e.to_string()))?;
                            Ok(Some(Object {
                                body: body.into_bytes().to_vec(),
                                etag,
                            }))
                        }
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                            Ok(None)
                        }
                        Err(e) => Err(sdk_failure(fail, e)),
                    }
                }
                Sink::Dir(root) => match read_file(&root.join(key)).await {
                    Ok(Some(body)) => Ok(Some(Object {
                        etag: content_tag(&body),
                        body,
                    })),
                    Ok(None) => Ok(None),
                    Err(e) => Err(fail(e.to_string())),
                },
                Sink::Sim { store, .. } => store.get(key).await.map_err(fail),
            }
        };
        self.bounded(Op::Read, key, until, call).await
    }

    /// Every key under `prefix` (S3 and a store; a folder is read directly).
    pub async fn list(
        &self,
        prefix: &str,
        until: Option<Instant>,
    ) -> Result<Vec<String>, SinkError> {
        let (client, bucket) = match self {
            Sink::S3 { client, bucket, .. } => (client, bucket),
            Sink::Dir(_) => return Ok(Vec::new()),
            Sink::Sim { store, .. } => {
                let call = async {
                    store
                        .list(prefix)
                        .await
                        .map_err(|e| self.failure(Op::List, prefix, e))
                };
                return self.bounded(Op::List, prefix, until, call).await;
            }
        };
        let call = async {
            let mut keys = Vec::new();
            let mut pages = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    self.failure(Op::List, prefix, DisplayErrorContext(&e).to_string())
                })?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
            }
            Ok(keys)
        };
        self.bounded(Op::List, prefix, until, call).await
    }
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

/// The folder sink's version tag: a content hash, as an ETag is for a simple S3 upload.
fn content_tag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

/// [`content_tag`] of a file, read in pieces. Blocking: the folder sink is the CLI's.
fn file_tag(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => hash.update(&chunk[..n]),
        }
    }
    Ok(format!("\"{}\"", hex::encode(hash.finalize())))
}

/// What a write sends.
enum Payload<'a> {
    Bytes(Vec<u8>),
    File(&'a Path),
}

async fn read_file(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
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
