//! The folder sink: the CLI's stand-in for a bucket, under the same keys, with the same
//! conditional writes (checked, then written: it serves one process at a time).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::object::{Condition, Object, Payload, Written};

/// Writes `body` to `path` if `condition` holds, by way of a `.partial` file.
pub(super) async fn put(
    path: &Path,
    body: Payload<'_>,
    condition: &Condition,
) -> std::io::Result<Written> {
    // Checked, then written: the folder sink serves one CLI process at a time.
    let current = read_file(path).await?;
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
        tokio::fs::create_dir_all(parent).await?;
    }
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("partial");
    let tag = match body {
        Payload::Bytes(b) => {
            tokio::fs::write(&tmp, &b).await?;
            content_tag(&b)
        }
        Payload::File(from) => {
            tokio::fs::copy(from, &tmp).await?;
            file_tag(&tmp)?
        }
    };
    tokio::fs::rename(&tmp, path).await?;
    Ok(Written::Done(tag))
}

/// The file at `path` as an object; `Ok(None)` when there is none.
pub(super) async fn get(path: &Path) -> std::io::Result<Option<Object>> {
    Ok(read_file(path).await?.map(|body| Object {
        etag: content_tag(&body),
        body,
    }))
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

async fn read_file(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
