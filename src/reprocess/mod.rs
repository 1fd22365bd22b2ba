//! `reprocess`: runs validation and writing again over a run's captured responses, from a local
//! capture folder or one in S3.
//!
//! A capture comes from outside the process (a bucket others can write to, a folder copied
//! around), so replaying it is held to the bounds of a live run: each recorded body to
//! `graph.max_body_bytes` once inflated ([`crate::graph::read_recorded`]), the download to a
//! total size and a count of files checked on the listing before anything is fetched and again
//! while each object streams in, every S3 call to `sink.operation_timeout_secs`, and every key to
//! the folder it was listed under.
//!
//! A sharded run captured each shard in its own `part-0003/` folder inside the run's folder
//! (`plan::Shard::raw_capture_key`). Such a folder, or the run's folder holding several,
//! reprocesses each part as its shard (`App::shard`: its targets, part keys and share), so it
//! writes the part files the run wrote.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::collect::App;
use crate::config::{part_name, Config};
use crate::graph::Source;
use crate::job::Job;
use crate::plan::Shard;
use crate::schedule::{self, Clock, TimeError};
use crate::setup::Env;
use crate::sink::Sink;

mod download;

pub use download::download_capture;

/// What to reprocess and where to write it, as the operator gave it.
#[derive(Debug, Clone)]
pub struct Task {
    /// A capture folder (`raw_api/{job}/{date}/{time}`, or a `part-0003` folder in it), local or
    /// `s3://bucket/prefix`.
    pub from: String,
    /// An output folder, or `s3://bucket`.
    pub to: String,
    /// The job; default: read from the capture path.
    pub job: Option<Job>,
    /// The scheduled time; default: read from the capture path.
    pub at: Option<DateTime<Utc>>,
    /// The most an S3 capture may download, in bytes, all files together.
    pub max_download_bytes: u64,
}

/// The default of [`Task::max_download_bytes`]: far above a day's capture of the shipped
/// configuration (kilobytes a file, a few hundred files), far below a full disk.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// The most files a capture download may hold: a run captures one file per Graph call, and no
/// schedule's budget allows this many calls in one run.
pub const MAX_CAPTURE_FILES: usize = 100_000;

/// The most credentials a sharded run is assumed to have had, when its part is matched to the
/// plan it came from.
const MAX_LANES: usize = 64;

/// Why a reprocess could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    #[error("cannot tell the job from `{0}` (not …/{{brands|hashtags}}/{{date}}/{{date_time}}): pass --job")]
    NoJob(String),
    #[error(
        "cannot tell the time from `{0}` (not …/{{job}}/{{date}}/{{%Y-%m-%d_%H%M%S}}): pass --at"
    )]
    NoTime(String),
    #[error("{0}")]
    Time(#[from] TimeError),
    #[error("nothing under s3://{bucket}/{prefix}/: check the capture folder's path")]
    Empty { bucket: String, prefix: String },
    #[error("s3://{bucket}/{key} would be written outside {into}: refused (a capture key must not hold `..`, `.` or an absolute path)")]
    Outside {
        bucket: String,
        key: String,
        into: String,
    },
    #[error("the capture under s3://{bucket}/{prefix}/ is {what}, over the download cap of {cap}: refused before downloading; check the path names one run's capture folder, or raise --max-download-bytes")]
    TooLarge {
        bucket: String,
        prefix: String,
        what: String,
        cap: String,
    },
    #[error("{0}")]
    Download(String),
    #[error("{0}")]
    Local(String),
    #[error("cannot tell which targets {part} of {dir} ran: no shard {index} of the configuration's plan, over 1 to {MAX_LANES} credentials, holds every target captured there ({captured}); reprocess with the configuration the run used (--config)")]
    UnknownPart {
        part: String,
        index: usize,
        dir: String,
        captured: String,
    },
}

/// A capture ready to run again: one app per part (one for an unsharded run), the job and the
/// time. Holds the downloaded files while it lives.
pub struct Prepared {
    pub job: Job,
    pub at: DateTime<Utc>,
    /// `(part name or "", app)` in part order.
    pub runs: Vec<(String, App)>,
    _download: Option<tempfile::TempDir>,
}

/// The job and scheduled time a capture folder's path names: `…/{job}/{date}/{date_time}`, or a
/// `part-0003` folder inside one.
pub fn capture_identity(path: &str) -> Option<(Job, DateTime<Utc>)> {
    let path = path.trim_end_matches('/');
    let path = match path.rsplit_once('/') {
        Some((run, last)) if part_index(last).is_some() => run,
        _ => path,
    };
    let parts: Vec<&str> = path.rsplit('/').take(3).collect();
    let [time, _date, job] = parts.as_slice() else {
        return None;
    };
    let at = NaiveDateTime::parse_from_str(time, "%Y-%m-%d_%H%M%S")
        .ok()?
        .and_utc();
    let job = match *job {
        "brands" => Job::Brands,
        "hashtags" => Job::Hashtags,
        _ => return None,
    };
    Some((job, at))
}

/// The shard index a folder name such as `part-0003` names ([`part_name`] reversed).
fn part_index(name: &str) -> Option<usize> {
    let index: usize = name.strip_prefix("part-")?.parse().ok()?;
    (part_name(index) == name).then_some(index)
}

/// Resolves the job and time, downloads an S3 capture, and builds the apps that replay it.
/// `now` is the clock the time is checked against ([`schedule::check_scheduled`]).
pub async fn prepare(
    config: Config,
    env: &Env,
    request: &Task,
    now: DateTime<Utc>,
) -> Result<Prepared, ReprocessError> {
    let (job, at) = identity_of(request, now)?;
    let from = request.from.as_str();
    let (dir, download) = fetch_capture(&config, env, request).await?;
    let sink = match request.to.strip_prefix("s3://") {
        Some(bucket) => {
            let bucket = bucket.trim_end_matches('/').to_string();
            Sink::s3_from_env(bucket, env.s3_endpoint_overridden, &config.sink).await
        }
        None => Sink::Dir(PathBuf::from(&request.to)),
    };
    // A `part-0003` folder named itself (its name survives only in `from` once downloaded).
    let named_part = from
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(part_index);
    let parts = match named_part {
        Some(index) => vec![(index, dir.clone())],
        None => parts_in(&dir)?,
    };
    let app = |config: Config, dir: PathBuf, sink: Sink, shard: Option<Shard>| App {
        config,
        source: Source::Replay(dir),
        sink,
        clock: Clock::system(),
        shard,
    };
    let runs = if parts.is_empty() {
        vec![(String::new(), app(config, dir, sink, None))]
    } else {
        let mut runs = Vec::with_capacity(parts.len());
        for (index, part_dir) in parts {
            let shard = part_shard(&config, job, index, &part_dir)?;
            let part = app(config.clone(), part_dir, sink.clone(), Some(shard));
            runs.push((part_name(index), part));
        }
        runs
    };
    Ok(Prepared {
        job,
        at,
        runs,
        _download: download,
    })
}

/// The job and the scheduled time to reprocess: as given, else read from the capture path; the
/// time held to a live run's bounds.
fn identity_of(request: &Task, now: DateTime<Utc>) -> Result<(Job, DateTime<Utc>), ReprocessError> {
    let from = request.from.as_str();
    let identity = capture_identity(from);
    let job = request
        .job
        .or(identity.map(|(j, _)| j))
        .ok_or_else(|| ReprocessError::NoJob(from.to_string()))?;
    let (at, field) = match request.at {
        Some(t) => (t, "--at"),
        None => (
            identity
                .map(|(_, t)| t)
                .ok_or_else(|| ReprocessError::NoTime(from.to_string()))?,
            "the capture path's time",
        ),
    };
    schedule::check_scheduled(field, at, now)?;
    Ok((job, at))
}

/// The capture folder on this machine: the local folder given, or an S3 capture downloaded into
/// a temporary folder (kept alive by the returned handle).
async fn fetch_capture(
    config: &Config,
    env: &Env,
    request: &Task,
) -> Result<(PathBuf, Option<tempfile::TempDir>), ReprocessError> {
    let from = request.from.as_str();
    let Some(rest) = from.strip_prefix("s3://") else {
        return Ok((PathBuf::from(from), None));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let into = tempfile::tempdir()
        .map_err(|e| ReprocessError::Local(format!("no temporary folder for the download: {e}")))?;
    let source =
        Sink::s3_from_env(bucket.to_string(), env.s3_endpoint_overridden, &config.sink).await;
    let prefix = prefix.trim_end_matches('/');
    download_capture(
        &source,
        bucket,
        prefix,
        into.path(),
        request.max_download_bytes,
    )
    .await?;
    Ok((into.path().to_path_buf(), Some(into)))
}

/// The `part-NNNN` folders directly inside `dir`, in index order; none for an unsharded capture.
fn parts_in(dir: &Path) -> Result<Vec<(usize, PathBuf)>, ReprocessError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ReprocessError::Local(format!("{}: cannot be read: {e}", dir.display())))?;
    let mut parts = Vec::new();
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let (true, Some(index)) = (is_dir, entry.file_name().to_str().and_then(part_index)) {
            parts.push((index, entry.path()));
        }
    }
    parts.sort();
    Ok(parts)
}

/// The names of the targets a capture folder holds answers for: usernames (`brands/dior.json`)
/// for brands, hashtags (`hashtags/dior.json`, `hashtags/dior.2.json`,
/// `hashtag_search/dior.json`) for hashtags, each possibly `.gz`.
fn captured_targets(dir: &Path, job: Job) -> BTreeSet<String> {
    let folders: &[&str] = match job {
        Job::Brands => &["brands"],
        Job::Hashtags => &["hashtags", "hashtag_search"],
    };
    let mut names = BTreeSet::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let file = file.strip_suffix(".gz").unwrap_or(&file);
            let Some(stem) = file.strip_suffix(".json") else {
                continue;
            };
            // A later page: `{tag}.{n}`.
            let stem = match stem.rsplit_once('.') {
                Some((tag, n)) if n.parse::<u32>().is_ok() => tag,
                _ => stem,
            };
            names.insert(stem.to_string());
        }
    }
    names
}

/// The shard `index` ran as. The plan depends on how many credentials the run
/// had, which a replay does not know; the shard is the one, over 1 to [`MAX_LANES`] credentials,
/// whose targets are exactly those captured, else the smallest that holds them all (a target
/// whose call failed without an answer left no file).
fn part_shard(
    config: &Config,
    job: Job,
    index: usize,
    dir: &Path,
) -> Result<Shard, ReprocessError> {
    let captured = captured_targets(dir, job);
    let name_of = |t: &crate::config::Target| match job {
        Job::Brands => t.username.clone(),
        Job::Hashtags => t.hashtag.clone(),
    };
    let mut best: Option<Shard> = None;
    for lanes in 1..=MAX_LANES {
        let mut plan = crate::plan::plan(config, lanes, job);
        if !plan.is_sharded() || index >= plan.shards.len() {
            continue;
        }
        let shard = plan.shards.swap_remove(index);
        let names: BTreeSet<String> = shard
            .targets
            .iter()
            .filter_map(|&i| config.targets.get(i))
            .map(name_of)
            .collect();
        if names == captured {
            return Ok(shard);
        }
        let holds_all = captured.is_subset(&names);
        if holds_all
            && best
                .as_ref()
                .is_none_or(|b| shard.targets.len() < b.targets.len())
        {
            best = Some(shard);
        }
    }
    best.ok_or_else(|| ReprocessError::UnknownPart {
        part: part_name(index),
        index,
        dir: dir.display().to_string(),
        captured: captured.into_iter().collect::<Vec<_>>().join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_path_names_its_job_and_time_and_a_part_folder_its_run() {
        let brands = capture_identity("out/raw_api/brands/2023-09-02/2023-09-02_000015/");
        let part =
            capture_identity("s3://b/raw_api/hashtags/2023-09-02/2023-09-02_000500/part-0003");
        assert_eq!(
            brands.map(|(j, t)| (j, t.to_rfc3339())),
            Some((Job::Brands, "2023-09-02T00:00:15+00:00".to_string()))
        );
        assert_eq!(
            part.map(|(j, t)| (j, t.to_rfc3339())),
            Some((Job::Hashtags, "2023-09-02T00:05:00+00:00".to_string()))
        );
        assert_eq!(
            capture_identity("raw_api/films/2023-09-02/2023-09-02_000015"),
            None
        );
        assert_eq!(part_index("part-0003"), Some(3));
        assert_eq!(part_index("part-3"), None);
        assert_eq!(part_index("part-x"), None);
    }
}
