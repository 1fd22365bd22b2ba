//! The state store: the one object both jobs read and write between runs (the hashtags'
//! frontiers, the credentials' ledger, the brands' backfill progress), and the fields the API
//! removed. Load (from the sink, or the replay folder), reserve before the calls, save after
//! them, each a conditional write merged on conflict (`merge`); an object nobody can read is
//! set aside, never lost.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::merge::{put_merged, set_aside, First, Merging};
use super::{App, RunSummary};
use crate::drift::RemovedFields;
use crate::graph::{read_recorded, Source};
use crate::sink::{Condition, SinkError, Written};
use crate::state::{CallSpan, State};

/// The state a run starts from, with what the run must know about it.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub state: State,
    /// The version read, for the conditional write at the end (`None`: there was no state).
    pub etag: Option<String>,
    /// Why the state was not (wholly) used, for the summary.
    pub note: Option<String>,
}

/// Loads the hashtag state: from the replay folder when replaying, else from the sink. No state
/// is a note (the run takes one page per hashtag); a state that cannot be read is an error, and
/// an unreadable one is set aside under `{key}.unreadable-{time}` before the run replaces it.
///
/// An unreadable state held frontiers nobody can know any more: every tracked hashtag then
/// starts from the API's whole 24 hours before `scheduled` (`State::mark_tracking_began`), so the
/// next polls fetch everything still listed, within the budget, instead of one page each. Its
/// ledger is lost too, so the hour before is booked as wholly spent (`State::assume_hour_spent`).
pub(super) async fn load_state(
    app: &App,
    scheduled: DateTime<Utc>,
    until: Option<std::time::Instant>,
) -> Result<Loaded, SinkError> {
    let fresh = "no state: first run (or state deleted), one page per hashtag".to_string();
    let key = &app.config.hashtags.state_key;
    let (bytes, etag) = match &app.source {
        Source::Replay(dir) => {
            match read_recorded(dir, "state.json", app.config.graph.max_body_bytes) {
                Ok(b) => (b, None),
                Err(e) => {
                    return Ok(Loaded {
                        note: Some(format!("{e}; one page per hashtag")),
                        ..Loaded::default()
                    })
                }
            }
        }
        Source::Live(_) => match app.sink.get(key, until).await? {
            Some(o) => (Some(o.body), Some(o.etag)),
            None => (None, None),
        },
    };
    let Some(bytes) = bytes else {
        return Ok(Loaded {
            note: Some(fresh),
            ..Loaded::default()
        });
    };
    match State::parse(&bytes) {
        Ok((mut state, mut notes)) => {
            notes.extend(state.forget_future(app.clock.now()));
            Ok(Loaded {
                state,
                etag,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            })
        }
        Err(e) => {
            let mut note = e.clone();
            let mut state = State::default();
            if matches!(app.source, Source::Live(_)) {
                let aside = set_aside(app, key, bytes, until, &e).await?;
                note.push_str(&format!("; the unreadable state was kept as {aside}; every hashtag pages back through the API's 24 hours"));
                let since = scheduled - chrono::Duration::hours(24);
                for group in app.hashtag_groups() {
                    state.mark_tracking_began(&group.hashtag, since);
                }
                // And for the hashtags this run does not track (other shards', the brands job's
                // booking): they page back too, when they are next polled.
                state.reset_at = Some(scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                // The ledger went with it: the hour before is booked as wholly spent.
                let calls = CallSpan::of_run(scheduled, app.clock.now(), chrono::Duration::zero());
                state.assume_hour_spent(calls.from);
            } else {
                note.push_str("; one page per hashtag");
            }
            Ok(Loaded {
                state,
                etag,
                note: Some(note),
            })
        }
    }
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
    let condition = condition(loaded.etag.clone());
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
    let merge = |body: &[u8], ours: &State| {
        State::parse(body).map(|(theirs, _)| Some(theirs.merge(ours, window)))
    };
    let how = Merging::json(key, until, &State::to_bytes, &merge);
    put_merged(app, how, state, First::Put(condition(etag)), summary).await
}

/// The condition of a write of what was read at `etag` (`None`: nothing was there).
fn condition(etag: Option<String>) -> Condition {
    etag.map_or(Condition::Absent, Condition::Matches)
}

/// Writes the removed fields (`crate::drift`) under the condition that nobody wrote them since
/// they were read; after a conflict, merges with what the other run wrote (every entry of both
/// kept) and tries again. An object there that cannot be read is kept aside first.
pub(super) async fn write_removed_fields(
    app: &App,
    removed: RemovedFields,
    etag: Option<String>,
    until: Option<Instant>,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let key = &app.config.graph.removed_fields_key;
    let entries = removed.len();
    let merge = |body: &[u8], ours: &RemovedFields| {
        RemovedFields::parse(body).map(|(theirs, _)| Some(theirs.merge(ours)))
    };
    let how = Merging::json(key, until, &RemovedFields::to_bytes, &merge);
    put_merged(app, how, removed, First::Put(condition(etag)), summary).await?;
    tracing::info!(location = %app.sink.location(key), entries, "removed fields written");
    Ok(())
}
