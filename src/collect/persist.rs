//! The one place a run writes, and the order it writes in: the data objects, then the raw
//! capture, then (hashtags) the state. The state comes last so that a crash in between means
//! some posts are collected twice, never that one is lost.
//!
//! The brands job streams: each answer's records are joined to the data objects as they arrive
//! (`output::Output`), and each answer that yielded records has its raw capture written at once
//! ([`CaptureTo`]), so a run holds neither the answers nor the records until the end. Its data
//! objects are still written at the end, one per kind. Writing such a capture before the data is
//! safe because the brands job has no state: a capture only ever reproduces what its delivery
//! collected, and a crash before the data means Lambda's retry collects and writes the data
//! again (its own capture files then find the first ones and keep them, as for any
//! redelivery). Bodies that yielded nothing (failed targets) are kept until the end and written
//! after the data as before, so a run that collected nothing still writes nothing.
//!
//! Every write is conditional, so that another delivery of the same scheduled time, or an
//! overlapping run, cannot remove what this one wrote: the rules are ARCHITECTURE.md's
//! "Delivery: at least once, in any order, overlapping".

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::hashtags::Loaded;
use super::output::{Body, Output};
use super::{App, Job, RunSummary};
use crate::graph::{gzip, Captured};
use crate::records::{self, Batch, Kind};
use crate::sink::{Condition, Op, SinkError, Written};
use crate::state::State;

/// What `write` needs to know about the run.
pub(super) struct Run {
    pub job: Job,
    pub scheduled: DateTime<Utc>,
    /// Replayed runs write data only: no capture, no state.
    pub replaying: bool,
    /// The run will fail (a rejected token): write what was collected, but no empty objects.
    pub failing: bool,
    pub until: Option<Instant>,
}

/// What a streaming job wrote, or began to write, while it collected.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// The data objects so far, per kind.
    pub outputs: BTreeMap<Kind, Output>,
    /// Capture files written while collecting.
    pub capture_written: u32,
    /// Of those, the files an earlier delivery had written (kept, not replaced).
    pub capture_kept: u32,
    /// The first capture write that failed while collecting. The run still writes its data
    /// objects (what was collected is kept), then fails with it, so Lambda's retry writes again.
    pub failed: Option<SinkError>,
}

impl Streamed {
    /// Counts a capture file written while collecting; the first failure is kept, and fails the
    /// run after its data is written.
    pub(super) fn note_capture(&mut self, written: Result<Option<Written>, SinkError>) {
        match written {
            Ok(None) => {}
            Ok(Some(written)) => {
                self.capture_written += 1;
                if written == Written::Conflict {
                    self.capture_kept += 1;
                }
            }
            Err(e) => {
                tracing::error!(location = %e.location, "raw capture not written: {e}");
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// Where, and whether, a run's raw capture goes: nowhere for a replayed run or when
/// `output.raw_capture` is off.
pub(super) struct CaptureTo<'a> {
    app: &'a App,
    prefix: Option<String>,
    until: Option<Instant>,
}

impl<'a> CaptureTo<'a> {
    pub(super) fn new(
        app: &'a App,
        job: Job,
        scheduled: DateTime<Utc>,
        replaying: bool,
        until: Option<Instant>,
    ) -> CaptureTo<'a> {
        let output = &app.config.output;
        let prefix = (output.raw_capture && !replaying)
            .then(|| output.raw_capture_key.render_for(job.name(), scheduled));
        CaptureTo { app, prefix, until }
    }

    /// Writes one body, gzip-compressed, once (`If-None-Match: *`): `Written::Conflict` means an
    /// earlier delivery's file is kept. `None` when the run keeps no capture.
    pub(super) async fn put(&self, file: &Captured) -> Result<Option<Written>, SinkError> {
        let Some(prefix) = &self.prefix else {
            return Ok(None);
        };
        let key = format!("{prefix}/{}.gz", file.path);
        self.app
            .sink
            .put(
                &key,
                gzip(&file.body),
                "application/gzip",
                &Condition::Absent,
                self.until,
            )
            .await
            .map(Some)
    }
}

/// Writes the run's objects in order, recording each in the summary. `streamed` holds what a
/// streaming job (brands) already rendered and captured; `batch` the records of the others.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    app: &App,
    run: Run,
    batch: Batch,
    streamed: Streamed,
    captured: Vec<Captured>,
    start: Option<Loaded>,
    next_state: Option<State>,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    summary.capture_files_kept += streamed.capture_kept;
    let mut outputs = streamed.outputs;
    let format = app.config.output.format;
    let compression = app.config.output.compression;
    let Batch {
        brand,
        media,
        media_hashtag,
    } = batch;
    for (kind, records) in [
        (Kind::Brand, brand),
        (Kind::Media, media),
        (Kind::MediaHashtag, media_hashtag),
    ] {
        if !run.job.kinds().contains(&kind) {
            continue;
        }
        let key = app.config.key_template(kind).render(run.scheduled);
        let (body, count) = match outputs.remove(&kind) {
            Some(output) => {
                let count = output.count();
                let body = output.finish().map_err(|e| not_assembled(app, &key, &e))?;
                let body = body
                    .compressed(compression)
                    .map_err(|e| not_assembled(app, &key, &e))?;
                (body, count)
            }
            None => (
                Body::Bytes(compression.encode(records::render(&records, format))),
                records.len(),
            ),
        };
        if run.failing && count == 0 {
            continue;
        }
        let merged = write_records(app, kind, &key, body, &run, summary).await?;
        let location = app.sink.location(&key);
        if merged {
            tracing::info!(kind = kind.name(), %location, records = count, "object written, merged with an earlier delivery's");
            summary.merged_with_earlier.push(location.clone());
        } else {
            tracing::info!(kind = kind.name(), %location, records = count, "object written");
        }
        summary.keys_written.push(location);
    }
    if let Some(e) = streamed.failed {
        return Err(e);
    }

    let capture = CaptureTo::new(app, run.job, run.scheduled, run.replaying, run.until);
    if let Some(prefix) = &capture.prefix {
        let mut files = captured;
        if let Some(start) = &start {
            // The state the run started from, so a reprocess recognises the same posts as known.
            files.push(Captured {
                path: "state.json".into(),
                body: start.state.to_bytes(),
            });
        }
        let count = files.len() + streamed.capture_written as usize;
        for file in &files {
            if capture.put(file).await? == Some(Written::Conflict) {
                summary.capture_files_kept += 1;
            }
        }
        tracing::info!(location = %app.sink.location(prefix), files = count, kept = summary.capture_files_kept, "raw responses captured");
        summary.raw_capture = Some(app.sink.location(prefix));
    }

    if let (Some(state), false) = (next_state, run.replaying) {
        let etag = start.and_then(|s| s.etag);
        write_state(app, state, etag, run.until, summary).await?;
    }
    Ok(())
}

/// Writes a data object, merging with one already there. Returns whether it merged.
async fn write_records(
    app: &App,
    kind: Kind,
    key: &str,
    body: Body,
    run: &Run,
    summary: &mut RunSummary,
) -> Result<bool, SinkError> {
    let format = app.config.output.format;
    let compression = app.config.output.compression;
    let content_type = compression.content_type(format);
    let first = match &body {
        Body::Bytes(bytes) => {
            app.sink
                .put(
                    key,
                    bytes.clone(),
                    content_type,
                    &Condition::Absent,
                    run.until,
                )
                .await?
        }
        Body::File(path) => {
            app.sink
                .put_file(key, path, content_type, &Condition::Absent, run.until)
                .await?
        }
    };
    if let Written::Done(_) = first {
        return Ok(false);
    }
    // An earlier delivery wrote the object: this run's records are read back from what it
    // rendered, and merged in. Only a redelivery pays for parsing them.
    let records = body.records_as(compression).map_err(|e| SinkError {
        op: Op::Read,
        location: app.sink.location(key),
        message: format!("this run's own object could not be read back to merge: {e}"),
        timed_out: false,
    })?;
    drop(body);
    for _ in 0..=app.config.sink.conflict_retries {
        let (condition, mut existing) = match app.sink.get(key, run.until).await? {
            None => (Condition::Absent, Vec::new()),
            Some(object) => {
                let existing = match compression.parse_object(&object.body) {
                    Ok(r) => r,
                    Err(e) => {
                        set_aside(app, key, object.body, run.until, &e).await?;
                        Vec::new()
                    }
                };
                (Condition::Matches(object.etag), existing)
            }
        };
        let changed = records::merge(kind, &mut existing, records.clone());
        if !changed && condition != Condition::Absent {
            return Ok(true);
        }
        let body = compression.encode(records::render(&existing, format));
        match app
            .sink
            .put(key, body, content_type, &condition, run.until)
            .await?
        {
            Written::Done(_) => return Ok(true),
            Written::Conflict => summary.write_conflicts += 1,
        }
    }
    Err(gave_up(app, key))
}

/// Books a run's calls before it makes any: the state it read, with `spends` (each `reserved`)
/// added, written under the version read; the run keeps the state it read and the new version. A run that then crashes, times out or
/// cannot write its final state leaves its reservation booked, so the next runs assume the
/// worst; its final state replaces the reservation with what it spent. `Ok(false)`: another
/// run wrote the state meanwhile; the caller reads it again and plans anew.
///
/// `first_polls` are the hashtags polled for the first time: where their tracking begins is
/// booked too (`State::mark_tracking_began`).
pub(super) async fn reserve(
    app: &App,
    loaded: &mut Loaded,
    spends: Vec<crate::state::Spend>,
    first_polls: &[String],
    scheduled: DateTime<Utc>,
    until: Option<Instant>,
) -> Result<bool, SinkError> {
    let mut state = loaded.state.clone();
    state.book(spends, scheduled);
    for tag in first_polls {
        state.mark_tracking_began(tag, scheduled);
    }
    let condition = match &loaded.etag {
        Some(e) => Condition::Matches(e.clone()),
        None => Condition::Absent,
    };
    let key = &app.config.hashtags.state_key;
    match app
        .sink
        .put(key, state.to_bytes(), "application/json", &condition, until)
        .await?
    {
        Written::Done(etag) => {
            // The run goes on from the state it planned from (the capture keeps that one); its
            // final write replaces this version, reservation included.
            loaded.etag = Some(etag);
            Ok(true)
        }
        Written::Conflict => Ok(false),
    }
}

/// Writes the advanced state under the condition that nobody wrote since it was read; after a
/// conflict, merges into what the other run wrote and tries again.
pub(super) async fn write_state(
    app: &App,
    state: State,
    etag: Option<String>,
    until: Option<Instant>,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let window = app.config.hashtags.known_window;
    let key = &app.config.hashtags.state_key;
    write_merging(
        app,
        key,
        state,
        etag,
        until,
        summary,
        State::to_bytes,
        |body, ours| State::parse(body).map(|(theirs, _)| theirs.merge(ours, window)),
    )
    .await
}

/// Writes the removed fields (`crate::drift`) under the condition that nobody wrote them since
/// they were read; after a conflict, merges with what the other run wrote (every entry of both
/// kept) and tries again. An object there that cannot be read is kept aside first.
pub(super) async fn write_removed_fields(
    app: &App,
    removed: crate::drift::RemovedFields,
    etag: Option<String>,
    until: Option<Instant>,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let key = &app.config.graph.removed_fields_key;
    let entries = removed.len();
    let to_bytes = crate::drift::RemovedFields::to_bytes;
    write_merging(
        app,
        key,
        removed,
        etag,
        until,
        summary,
        to_bytes,
        |body, ours| crate::drift::RemovedFields::parse(body).map(|(theirs, _)| theirs.merge(ours)),
    )
    .await?;
    tracing::info!(location = %app.sink.location(key), entries, "removed fields written");
    Ok(())
}

/// Writes `value` to `key` under the condition that the object is still the version read
/// (`etag`; none: still absent). After a conflict it reads what another run wrote, `merge`s its
/// own into it and tries again, up to `sink.conflict_retries` times; an object there that cannot
/// be read is kept aside first (`set_aside`), so nothing is lost either way.
#[allow(clippy::too_many_arguments)]
async fn write_merging<T>(
    app: &App,
    key: &str,
    mut value: T,
    etag: Option<String>,
    until: Option<Instant>,
    summary: &mut RunSummary,
    to_bytes: impl Fn(&T) -> Vec<u8>,
    merge: impl Fn(&[u8], &T) -> Result<T, String>,
) -> Result<(), SinkError> {
    let mut condition = match etag {
        Some(e) => Condition::Matches(e),
        None => Condition::Absent,
    };
    for _ in 0..=app.config.sink.conflict_retries {
        let body = to_bytes(&value);
        match app
            .sink
            .put(key, body, "application/json", &condition, until)
            .await?
        {
            Written::Done(_) => return Ok(()),
            Written::Conflict => summary.write_conflicts += 1,
        }
        condition = match app.sink.get(key, until).await? {
            None => Condition::Absent,
            Some(object) => {
                match merge(&object.body, &value) {
                    Ok(merged) => value = merged,
                    Err(e) => {
                        set_aside(app, key, object.body, until, &e).await?;
                    }
                }
                Condition::Matches(object.etag)
            }
        };
        tracing::info!(location = %app.sink.location(key), "the object changed since it was read (an overlapping run): merged and written again");
    }
    Err(gave_up(app, key))
}

/// Keeps an object this program cannot read under `{key}.unreadable-{time}` before replacing it,
/// so nothing is lost even then. Returns the key it was kept under.
pub(super) async fn set_aside(
    app: &App,
    key: &str,
    body: Vec<u8>,
    until: Option<Instant>,
    why: &str,
) -> Result<String, SinkError> {
    let aside = format!(
        "{key}.unreadable-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    tracing::warn!(location = %app.sink.location(key), kept_as = %app.sink.location(&aside), "an existing object is unreadable ({why}): kept aside and replaced");
    app.sink
        .put(
            &aside,
            body,
            "application/octet-stream",
            &Condition::Overwrite,
            until,
        )
        .await
        .map(|_| aside)
}

/// A data object whose bytes could not be put together in the temporary file (a full or
/// unwritable temporary folder): nothing is written, the run fails and Lambda retries it.
fn not_assembled(app: &App, key: &str, e: &std::io::Error) -> SinkError {
    SinkError {
        op: Op::Write,
        location: app.sink.location(key),
        message: format!(
            "the object could not be assembled in a temporary file ({}): {e}",
            std::env::temp_dir().display()
        ),
        timed_out: false,
    }
}

pub(super) fn gave_up(app: &App, key: &str) -> SinkError {
    SinkError {
        op: Op::Write,
        location: app.sink.location(key),
        message: format!(
            "other runs kept writing it: gave up after {} merges (sink.conflict_retries); a retry merges again",
            app.config.sink.conflict_retries + 1
        ),
        timed_out: false,
    }
}
