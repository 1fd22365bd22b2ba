//! Where records go: **the only module that knows S3.** A local folder stands in for a bucket
//! on the CLI, with the same keys.
//!
//! Every call is bounded twice: by the SDK's connect and operation timeouts
//! (`[sink]` in `configure.toml`), and by the run's own end (`until`), so a stalled S3 can never
//! keep an invocation past its deadline. Writes can be conditional (`If-None-Match: *`,
//! `If-Match: <etag>`): that is how overlapping and redelivered runs merge instead of replacing
//! each other's objects. This module does not decide what to merge; `collect` does.
//!
//! - `error`: [`SinkError`], what a failed call says;
//! - `object`: [`Object`], [`Condition`], [`Written`]: what a call carries;
//! - `s3`: the S3 client and its calls;
//! - `dir`: the folder that stands in for a bucket.
//!
//! The parts import only `error` and `object`; this file holds the [`Sink`] and its [`Store`],
//! and bounds every call.

mod dir;
mod error;
mod object;
mod s3;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

pub use error::{Op, SinkError};
pub use object::{Condition, Object, Written};

use crate::config::SinkSettings;
use object::Payload;

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
        Sink::S3 {
            client: s3::client(shared, path_style, settings),
            bucket,
            operation_timeout: settings.operation_timeout,
            credentials: shared.credentials_provider(),
        }
    }

    /// For an S3 sink, whether AWS credentials resolve (environment, profile, SSO, instance
    /// role: the SDK's chain), within `timeout`: a CLI run checks it before its first Graph call,
    /// so that missing credentials cost no budget. `Err` says what to do in a sentence.
    pub async fn check_credentials(&self, timeout: std::time::Duration) -> Result<(), String> {
        let Sink::S3 {
            bucket,
            credentials,
            ..
        } = self
        else {
            return Ok(());
        };
        s3::check_credentials(bucket, credentials.as_ref(), timeout).await
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
                    s3::put(client, bucket, key, body, content_type, condition, fail).await
                }
                Sink::Dir(root) => dir::put(&root.join(key), body, condition)
                    .await
                    .map_err(|e| fail(e.to_string())),
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
                Sink::S3 { client, bucket, .. } => s3::get(client, bucket, key, fail).await,
                Sink::Dir(root) => dir::get(&root.join(key))
                    .await
                    .map_err(|e| fail(e.to_string())),
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
        let fail = |message: String| self.failure(Op::List, prefix, message);
        let call = s3::list(client, bucket, prefix, fail);
        self.bounded(Op::List, prefix, until, call).await
    }
}
