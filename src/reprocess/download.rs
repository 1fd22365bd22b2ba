//! A capture folder downloaded from S3, held to its bounds: the total size and the file count
//! checked on the listing before any object is fetched, every object read through the same
//! budget as it streams in, every key kept inside the folder.

use std::path::{Component, Path};
use std::time::Duration;

use super::{ReprocessError, MAX_CAPTURE_FILES};
use crate::sink::Sink;

/// Downloads the capture under `prefix` into `into`: the listing's sizes are checked against
/// `cap` (and the count against [`MAX_CAPTURE_FILES`]) before any object is fetched, and each
/// object is read through the same budget as it streams in, so an object that grew after the
/// listing still stops at the cap. Each key must stay inside the folder once its prefix is taken
/// off: a key such as `{prefix}/../../tmp/x` is refused, never written outside `into`.
pub async fn download_capture(
    source: &Sink,
    bucket: &str,
    prefix: &str,
    into: &Path,
    cap: u64,
) -> Result<(), ReprocessError> {
    let Sink::S3 {
        client,
        operation_timeout,
        ..
    } = source
    else {
        return Err(ReprocessError::Local(
            "a capture download needs an S3 source".into(),
        ));
    };
    let listed = list_sized(client, bucket, prefix, *operation_timeout).await?;
    if listed.is_empty() {
        return Err(ReprocessError::Empty {
            bucket: bucket.into(),
            prefix: prefix.into(),
        });
    }
    let too_large = |what: String, cap: String| ReprocessError::TooLarge {
        bucket: bucket.into(),
        prefix: prefix.into(),
        what,
        cap,
    };
    if listed.len() > MAX_CAPTURE_FILES {
        return Err(too_large(
            format!("more than {} files", listed.len() - 1),
            format!("{MAX_CAPTURE_FILES} files"),
        ));
    }
    let total: u64 = listed.iter().map(|(_, size)| *size).sum();
    if total > cap {
        return Err(too_large(format!("{total} bytes"), format!("{cap} bytes")));
    }
    let mut left = cap;
    for (key, _) in listed {
        let relative = key
            .strip_prefix(prefix)
            .unwrap_or(&key)
            .trim_start_matches('/');
        let safe = !relative.is_empty()
            && Path::new(relative)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(ReprocessError::Outside {
                bucket: bucket.into(),
                key,
                into: into.display().to_string(),
            });
        }
        let Some(body) = get_within(client, bucket, &key, left, *operation_timeout).await? else {
            continue;
        };
        left -= body.len() as u64;
        let path = into.join(relative);
        let local = |e: std::io::Error| ReprocessError::Local(format!("{}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(local)?;
        }
        std::fs::write(&path, body).map_err(local)?;
    }
    Ok(())
}

/// Every key under `{prefix}/` with its size, at most [`MAX_CAPTURE_FILES`] + 1 of them; each
/// page of the listing bounded by `timeout`.
async fn list_sized(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<(String, u64)>, ReprocessError> {
    let failed = |message: String| {
        ReprocessError::Download(format!("could not list s3://{bucket}/{prefix}/: {message}"))
    };
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{prefix}/"))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    loop {
        let page = match tokio::time::timeout(timeout, pages.next()).await {
            Err(_) => {
                return Err(failed(format!(
                    "no answer within {} s (sink.operation_timeout_secs)",
                    timeout.as_secs()
                )))
            }
            Ok(None) => break,
            Ok(Some(page)) => {
                page.map_err(|e| failed(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?
            }
        };
        for object in page.contents() {
            if let Some(key) = object.key() {
                let size = object
                    .size()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0);
                out.push((key.to_string(), size));
            }
        }
        if out.len() > MAX_CAPTURE_FILES {
            break;
        }
    }
    Ok(out)
}

/// Reads one object of at most `left` bytes, the whole call within `timeout`; `None` when it
/// is gone since the listing.
async fn get_within(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    left: u64,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, ReprocessError> {
    let failed = |message: String| {
        ReprocessError::Download(format!("could not read s3://{bucket}/{key}: {message}"))
    };
    let read = async {
        let mut out = match client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                return Err(failed(
                    aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                ))
            }
        };
        let mut body = Vec::new();
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| failed(e.to_string()))?;
            if (body.len() + chunk.len()) as u64 > left {
                return Err(failed(format!(
                    "the capture grew past the download cap since it was listed ({left} bytes left of --max-download-bytes): refused"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(failed(format!(
                "no answer within {} s (sink.operation_timeout_secs)",
                timeout.as_secs()
            )))
        })
}
