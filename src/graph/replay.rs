//! Recorded bodies: how a capture is named, how it is compressed, and how a recorded body is read
//! back for `--replay` and `reprocess`.
//!
//! The live session and the replay read the same names, so a raw capture folder replays as it
//! was fetched. This module owns the layout (`brands/{username}.json`,
//! `hashtag_search/{tag}.json`, `hashtags/{tag}.json`, `hashtags/{tag}.{n}.json`, each possibly
//! `.json.gz`) and the gzip format. It must not decode bodies (that is [`super::decode`]) nor know
//! where a capture is written (that is `collect` and `sink`).

use std::io::{Read, Write};
use std::path::Path;

/// One response body as received (secrets scrubbed), named as `--replay` reads it
/// (`brands/dior.json`).
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub body: Vec<u8>,
}

/// The capture name of a `business_discovery` answer.
pub fn brand_path(username: &str) -> String {
    format!("brands/{username}.json")
}

/// The capture name of an `ig_hashtag_search` answer.
pub fn hashtag_search_path(hashtag: &str) -> String {
    format!("hashtag_search/{hashtag}.json")
}

/// The capture name of page `page` (1-based) of a hashtag's `recent_media`.
pub fn recent_media_path(hashtag: &str, page: u32) -> String {
    if page <= 1 {
        format!("hashtags/{hashtag}.json")
    } else {
        format!("hashtags/{hashtag}.{page}.json")
    }
}

/// Compresses a body for the raw capture.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decompresses a gzip body.
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Reads `relative` (for example `brands/dior.json` or `state.json`) from a recorded folder: the
/// plain file, else the same name with `.gz`, decompressed. `Ok(None)` when neither exists;
/// `Err` (a sentence naming the file) when one exists but cannot be read or is not gzip.
///
/// Blocking: recorded files are small and read only by the CLI's replay.
pub fn read_recorded(dir: &Path, relative: &str) -> Result<Option<Vec<u8>>, String> {
    let plain = dir.join(relative);
    match std::fs::read(&plain) {
        Ok(bytes) => return Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: cannot be read: {e}", plain.display())),
    }
    let gz = dir.join(format!("{relative}.gz"));
    match std::fs::read(&gz) {
        Ok(bytes) => gunzip(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not gzip: {e}", gz.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot be read: {e}", gz.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_body_is_read_plain_then_gzipped() {
        let dir = std::env::temp_dir().join(format!("ig-replay-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("brands")).expect("dir");
        std::fs::write(dir.join("brands/a.json"), b"{}").expect("write");
        std::fs::write(dir.join("brands/b.json.gz"), gzip(b"[1]")).expect("write");
        std::fs::write(dir.join("brands/c.json.gz"), b"not gzip").expect("write");
        assert_eq!(
            read_recorded(&dir, "brands/a.json"),
            Ok(Some(b"{}".to_vec()))
        );
        assert_eq!(
            read_recorded(&dir, "brands/b.json"),
            Ok(Some(b"[1]".to_vec()))
        );
        assert_eq!(read_recorded(&dir, "brands/d.json"), Ok(None));
        let e = read_recorded(&dir, "brands/c.json").expect_err("not gzip");
        assert!(e.contains("c.json.gz: not gzip"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(recent_media_path("dior", 1), "hashtags/dior.json");
        assert_eq!(recent_media_path("dior", 3), "hashtags/dior.3.json");
    }
}
