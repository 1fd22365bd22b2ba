//! A run's side of API drift: before the first call, the fields earlier runs found removed from
//! the configured API version are read and left out of the requests; after the last call, the
//! fields this run found are written back (`store::write_removed_fields`) and named in the
//! summary. See `crate::drift` for the object and `graph::fields` for what a refusal means.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{store, App, RunSummary};
use crate::drift::{FieldRemoved, RemovedFields};
use crate::graph::{read_recorded, Session, Source};

/// The capture name of the removed fields a run knew at its end, which a replay of the capture
/// reads back, so reprocessing counts the same fields as removed.
pub(super) const CAPTURE_NAME: &str = "removed_fields.json";

/// The removed fields a run started from.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub removed: RemovedFields,
    /// The version read, for the conditional write (`None`: there was none, or it could not be
    /// read or used; the write then finds out what is there).
    pub etag: Option<String>,
}

/// Reads the removed fields (from the replay folder when replaying) and has `session` leave out
/// those of the configured API version. Never fails the run: an object that cannot be read or
/// used is taken as empty, which only costs a refused call per target, and said in the log and
/// the summary.
pub(super) async fn start(
    app: &App,
    session: &Session<'_>,
    until: Option<Instant>,
    summary: &mut RunSummary,
) -> Loaded {
    let key = &app.config.graph.removed_fields_key;
    let read = match &app.source {
        Source::Replay(dir) => read_recorded(dir, CAPTURE_NAME, app.config.graph.max_body_bytes)
            .map(|b| b.map(|body| (body, None)))
            .map_err(|e| e.to_string()),
        Source::Live(_) => app
            .sink
            .get(key, until)
            .await
            .map(|o| o.map(|o| (o.body, Some(o.etag))))
            .map_err(|e| format!("{e}; every field is asked for")),
    };
    let mut note = |text: String| {
        tracing::warn!(location = %app.sink.location(key), "removed fields: {text}");
        summary.fields_removed_note = Some(text);
    };
    let loaded = match read {
        Ok(None) => Loaded::default(),
        Err(e) => {
            note(e);
            Loaded::default()
        }
        Ok(Some((body, etag))) => match RemovedFields::parse(&body) {
            Ok((removed, notes)) => {
                if !notes.is_empty() {
                    note(notes.join("; "));
                }
                Loaded { removed, etag }
            }
            Err(e) => {
                note(format!(
                    "unreadable ({e}): treated as empty, every field is asked for; it is kept aside when a run next writes it"
                ));
                Loaded::default()
            }
        },
    };
    session.omit(&loaded.removed.omitted(&app.config.graph.api_version));
    loaded
}

/// Names in the summary every field the job's requests left out, writes those it found removed back to
/// the store (merged with what other runs wrote; never when replaying), and keeps the object in
/// the raw capture. A failed write is logged, not fatal: the next run finds the field again.
pub(super) async fn finish(
    app: &App,
    session: &Session<'_>,
    mut loaded: Loaded,
    scheduled: DateTime<Utc>,
    until: Option<Instant>,
    summary: &mut RunSummary,
) {
    let version = &app.config.graph.api_version;
    // A refused id failed its target instead (`ErrorKind::IdRemoved`): it is not left out.
    let found: Vec<_> = session
        .refused_this_run()
        .into_iter()
        .filter(|f| !f.is_identity())
        .collect();
    let mut changed = false;
    for field in &found {
        changed |= loaded.removed.add(version, field, scheduled);
    }
    // The job's own requests: the other job's removed fields are its own summary's.
    summary.fields_removed = session
        .omitted()
        .iter()
        .filter(|f| summary.job.endpoints().contains(&f.endpoint()))
        .map(|field| FieldRemoved {
            api_version: version.clone(),
            endpoint: field.endpoint(),
            field: field.qualified(),
            since: loaded
                .removed
                .since(version, field)
                .unwrap_or_default()
                .to_string(),
            found_this_run: found.contains(field),
        })
        .collect();
    for f in summary.fields_removed.iter().filter(|f| !f.found_this_run) {
        tracing::warn!(
            api_version = %f.api_version, endpoint = f.endpoint.name(), field = %f.field, since = %f.since,
            "left out of the requests: the Graph API version no longer has it (written as its default, removed_by_api); check Meta's changelog, run `ig-collector check-api`, then update graph.api_version or the fields"
        );
    }
    if !loaded.removed.is_empty() {
        session.add_capture(CAPTURE_NAME, &loaded.removed.to_bytes());
    }
    if !changed || session.is_replay() {
        return;
    }
    if let Err(e) =
        store::write_removed_fields(app, loaded.removed, loaded.etag, until, summary).await
    {
        tracing::warn!(location = %e.location, "the removed fields were not written; the next run finds them again, at one refused call per target: {e}");
    }
}
