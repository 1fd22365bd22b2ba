//! Where records go: **the only module that knows S3.** A local folder stands in for a bucket
//! on the CLI, with the same keys.

use std::path::PathBuf;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// A write that did not happen. The run fails with it, so Lambda retries the invocation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not write {location}: {message}")]
pub struct SinkError {
    /// `s3://bucket/key` or the file path.
    pub location: String,
    pub message: String,
}

/// The destination of a run's objects.
#[derive(Debug, Clone)]
pub enum Sink {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Dir(PathBuf),
}

impl Sink {
    /// An S3 sink from the standard AWS environment (region, credentials, and the
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` overrides). Path-style addressing is used when
    /// an endpoint is overridden, because local S3 servers rarely serve virtual-host buckets.
    pub async fn s3_from_env(bucket: String) -> Sink {
        let shared = aws_config::load_from_env().await;
        let overridden = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(overridden)
            .build();
        Sink::S3 {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket,
        }
    }

    /// Where `key` ends up, for summaries and messages.
    pub fn location(&self, key: &str) -> String {
        match self {
            Sink::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Sink::Dir(root) => root.join(key).display().to_string(),
        }
    }

    /// Writes one object, replacing any object with the same key.
    ///
    /// Overwrite, not a conditional put, is the idempotency rule: keys are derived from the
    /// scheduled time only, so a redelivered event writes the same keys again and leaves exactly
    /// one object per key, holding the latest complete delivery.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), SinkError> {
        let location = self.location(key);
        match self {
            Sink::S3 { client, bucket } => client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| SinkError {
                    location,
                    message: DisplayErrorContext(&e).to_string(),
                }),
            Sink::Dir(root) => {
                let path = root.join(key);
                let err = |e: std::io::Error| SinkError {
                    location: path.display().to_string(),
                    message: e.to_string(),
                };
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(err)?;
                }
                // Write then rename, so a reader never sees half a file.
                let tmp = path.with_extension("partial");
                tokio::fs::write(&tmp, &body).await.map_err(err)?;
                tokio::fs::rename(&tmp, &path).await.map_err(err)
            }
        }
    }

    /// Reads one object; `Ok(None)` when there is none under that key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let location = self.location(key);
        match self {
            Sink::S3 { client, bucket } => {
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => out
                        .body
                        .collect()
                        .await
                        .map(|b| Some(b.into_bytes().to_vec()))
                        .map_err(|e| SinkError {
                            location,
                            message: e.to_string(),
                        }),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(SinkError {
                        location,
                        message: DisplayErrorContext(&e).to_string(),
                    }),
                }
            }
            Sink::Dir(root) => match tokio::fs::read(root.join(key)).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SinkError {
                    location,
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Every key under `prefix` (S3 only; a folder is read directly).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let Sink::S3 { client, bucket } = self else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SinkError {
                location: self.location(prefix),
                message: DisplayErrorContext(&e).to_string(),
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }
}
