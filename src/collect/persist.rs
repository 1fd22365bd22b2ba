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

use super::collected::Objects;
use super::events::{CaptureWritten, ObjectWritten};
use super::merge::{put_merged, First, Merging};
use super::output::{Body, Output};
use super::store::{write_state, Loaded};
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
            .then(|| app.raw_capture_key().render_for(job.name(), scheduled));
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

/// The state a hashtags run read, and the state it advanced to: written last.
pub(super) struct NextState {
    pub start: Option<Loaded>,
    pub next_state: Option<State>,
}

/// Writes the run's objects in order, recording each in the summary: the data objects, then the
/// raw capture, then the state. `objects.streamed` holds what a streaming job (brands) already
/// rendered and captured; `objects.batch` the records of the others.
pub(super) async fn write(
    app: &App,
    run: Run,
    objects: Objects,
    state: NextState,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let Objects {
        batch,
        streamed,
        captured,
    } = objects;
    summary.capture_files_kept += streamed.capture_kept;
    let (capture_written, failed) = (streamed.capture_written, streamed.failed);
    write_data(app, &run, batch, streamed.outputs, summary).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let start = state.start;
    write_capture(
        app,
        &run,
        captured,
        start.as_ref(),
        capture_written,
        summary,
    )
    .await?;
    if let (Some(next), false) = (state.next_state, run.replaying) {
        let etag = start.and_then(|s| s.etag);
        write_state(app, next, etag, run.until, summary).await?;
    }
    Ok(())
}

/// Writes one data object per kind of the run's job: what was streamed, or the batch rendered.
/// A failing run writes no empty object.
async fn write_data(
    app: &App,
    run: &Run,
    batch: Batch,
    mut outputs: BTreeMap<Kind, Output>,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
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
        let key = app.key_template(kind).render(run.scheduled);
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
        let merged = write_records(app, kind, &key, body, run, summary).await?;
        ObjectWritten {
            kind,
            location: app.sink.location(&key),
            records: count,
            merged,
        }
        .emit(summary);
    }
    Ok(())
}

/// Writes the raw bodies not yet captured, and the state the run started from (so a reprocess
/// recognises the same posts as known); `streamed` files were written while collecting.
async fn write_capture(
    app: &App,
    run: &Run,
    mut files: Vec<Captured>,
    start: Option<&Loaded>,
    streamed: u32,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let capture = CaptureTo::new(app, run.job, run.scheduled, run.replaying, run.until);
    let Some(prefix) = &capture.prefix else {
        return Ok(());
    };
    if let Some(start) = start {
        files.push(Captured {
            path: "state.json".into(),
            body: start.state.to_bytes(),
        });
    }
    let count = files.len() + streamed as usize;
    for file in &files {
        if capture.put(file).await? == Some(Written::Conflict) {
            summary.capture_files_kept += 1;
        }
    }
    CaptureWritten {
        location: app.sink.location(prefix),
        files: count,
    }
    .emit(summary);
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
    let to_bytes =
        |records: &Vec<records::Record>| compression.encode(records::render(records, format));
    // Theirs with ours merged in: ours are this run's records, whatever an earlier round of
    // the loop merged.
    let merge = |body: &[u8], _: &Vec<records::Record>| {
        let mut existing = compression.parse_object(body)?;
        let changed = records::merge(kind, &mut existing, records.clone());
        Ok(changed.then_some(existing))
    };
    let how = Merging {
        key,
        content_type,
        until: run.until,
        to_bytes: &to_bytes,
        merge: &merge,
    };
    put_merged(app, how, records.clone(), First::Read, summary).await?;
    Ok(true)
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
