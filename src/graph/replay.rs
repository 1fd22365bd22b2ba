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

/// The capture name of page `page` (1-based) of a `business_discovery` answer's media: the
/// first is [`brand_path`]'s, the lookback's pages follow it.
pub fn brand_page_path(username: &str, page: u32) -> String {
    if page <= 1 {
        brand_path(username)
    } else {
        format!("brands/{username}.{page}.json")
    }
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

/// Decompresses a gzip body of at most `cap` bytes once inflated. The inflater is read through a
/// bounded reader, so a small bomb (kilobytes that inflate to gigabytes) stops at `cap + 1` bytes
/// instead of filling memory first and being measured after.
pub fn gunzip_capped(bytes: &[u8], cap: u64) -> std::io::Result<Vec<u8>> {
    read_capped(flate2::read::GzDecoder::new(bytes), cap)
}

/// Decompresses a gzip body this crate wrote (a data object, a capture file), up to
/// [`GUNZIP_CAP`]. Bodies from elsewhere are read with their own cap: [`read_recorded`].
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    gunzip_capped(bytes, GUNZIP_CAP)
}

/// The most [`gunzip`] inflates: well above any object a run writes, well below what would
/// exhaust a host.
pub const GUNZIP_CAP: u64 = 1 << 30;

/// Reads at most `cap` bytes from `reader`; more is an error of kind `FileTooLarge` that says so.
fn read_capped(reader: impl Read, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("more than {cap} bytes once inflated, over the cap (graph.max_body_bytes) a live answer is held to"),
        ));
    }
    Ok(out)
}

/// Reads `relative` (for example `brands/dior.json` or `state.json`) from a recorded folder: the
/// plain file, else the same name with `.gz`, decompressed. `Ok(None)` when neither exists;
/// `Err` (a sentence naming the file) when one exists but cannot be read, is not gzip, or holds
/// more than `cap` bytes (`graph.max_body_bytes`: a recorded body is held to the cap of a live
/// one, and a gzip bomb is refused while it inflates).
///
/// Blocking: recorded files are small and read only by the CLI's replay.
pub fn read_recorded(dir: &Path, relative: &str, cap: u64) -> Result<Option<Vec<u8>>, String> {
    let plain = dir.join(relative);
    match std::fs::File::open(&plain) {
        Ok(file) => {
            return read_capped(file, cap)
                .map(Some)
                .map_err(|e| format!("{}: refused: {e}", plain.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: cannot be read: {e}", plain.display())),
    }
    let gz = dir.join(format!("{relative}.gz"));
    match std::fs::File::open(&gz) {
        Ok(file) => read_capped(
            flate2::read::GzDecoder::new(std::io::BufReader::new(file)),
            cap,
        )
        .map(Some)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => format!("{}: refused: {e}", gz.display()),
            _ => format!("{}: not gzip: {e}", gz.display()),
        }),
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
        let read = |name: &str| read_recorded(&dir, name, 1024);
        assert_eq!(read("brands/a.json"), Ok(Some(b"{}".to_vec())));
        assert_eq!(read("brands/b.json"), Ok(Some(b"[1]".to_vec())));
        assert_eq!(read("brands/d.json"), Ok(None));
        let e = read("brands/c.json").expect_err("not gzip");
        assert!(e.contains("c.json.gz: not gzip"), "{e}");
        // Held to the cap, plain or inflated; exactly the cap passes.
        std::fs::write(dir.join("brands/e.json.gz"), gzip(&[b' '; 1025])).expect("write");
        std::fs::write(dir.join("brands/f.json"), [b' '; 1025]).expect("write");
        std::fs::write(dir.join("brands/g.json.gz"), gzip(&[b' '; 1024])).expect("write");
        for name in ["brands/e.json", "brands/f.json"] {
            let e = read(name).expect_err("over the cap");
            assert!(e.contains("refused: more than 1024 bytes"), "{e}");
        }
        assert_eq!(
            read("brands/g.json").map(|b| b.map(|b| b.len())),
            Ok(Some(1024))
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(recent_media_path("dior", 1), "hashtags/dior.json");
        assert_eq!(recent_media_path("dior", 3), "hashtags/dior.3.json");
    }
}
