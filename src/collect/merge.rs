//! The one conditional-put-and-merge loop every write of a shared object goes through: data
//! objects, the state, the removed fields. A write is conditional on the version read (or on
//! the object being absent); when another run wrote meanwhile, its object is read, ours merged
//! into it, and the write tried again, up to `sink.conflict_retries` times. An object there that
//! cannot be read is kept aside first, so nothing is lost either way. The rules are
//! ARCHITECTURE.md's "Delivery".

use std::time::Instant;

use chrono::Utc;

use super::events::WriteConflict;
use super::{App, RunSummary};
use crate::sink::{Condition, Op, SinkError, Written};

/// Where a merging write starts.
pub(super) enum First {
    /// With a put under this condition: the version read, or absent.
    Put(Condition),
    /// With a read: the object is known to be there (a first put found it).
    Read,
}

/// Ours merged into theirs: `Ok(None)` when theirs already holds all of ours.
pub(super) type MergeFn<'a, T> = dyn Fn(&[u8], &T) -> Result<Option<T>, String> + Sync + 'a;

/// How a value is written to its key, and merged with what another run wrote there.
pub(super) struct Merging<'a, T> {
    pub key: &'a str,
    pub content_type: &'a str,
    pub until: Option<Instant>,
    pub to_bytes: &'a (dyn Fn(&T) -> Vec<u8> + Sync),
    /// Ours merged into theirs (the bytes of the object there): `Ok(None)` when theirs already
    /// holds all of ours, `Err` when theirs cannot be read (it is then set aside).
    pub merge: &'a MergeFn<'a, T>,
}

impl<'a, T> Merging<'a, T> {
    /// A JSON object of this program's own (the state, the removed fields).
    pub fn json(
        key: &'a str,
        until: Option<Instant>,
        to_bytes: &'a (dyn Fn(&T) -> Vec<u8> + Sync),
        merge: &'a MergeFn<'a, T>,
    ) -> Merging<'a, T> {
        Merging {
            key,
            content_type: "application/json",
            until,
            to_bytes,
            merge,
        }
    }
}

/// Writes `value` as `how` says, starting with `first`: a conditional put, and after each
/// conflict a read, a merge and a put under the version read, up to `sink.conflict_retries`
/// times. Every conflict is counted in the summary.
pub(super) async fn put_merged<T>(
    app: &App,
    how: Merging<'_, T>,
    mut value: T,
    first: First,
    summary: &mut RunSummary,
) -> Result<(), SinkError> {
    let mut next = first;
    for _ in 0..=app.config.sink.conflict_retries {
        let condition = match next {
            First::Put(condition) => condition,
            First::Read => match app.sink.get(how.key, how.until).await? {
                None => Condition::Absent,
                Some(object) => {
                    match (how.merge)(&object.body, &value) {
                        Ok(Some(merged)) => value = merged,
                        Ok(None) => return Ok(()),
                        Err(e) => {
                            set_aside(app, how.key, object.body, how.until, &e).await?;
                        }
                    }
                    Condition::Matches(object.etag)
                }
            },
        };
        let body = (how.to_bytes)(&value);
        match app
            .sink
            .put(how.key, body, how.content_type, &condition, how.until)
            .await?
        {
            Written::Done(_) => return Ok(()),
            Written::Conflict => {
                WriteConflict {
                    location: app.sink.location(how.key),
                    after_read: matches!(condition, Condition::Matches(_)),
                }
                .emit(summary);
                next = First::Read;
            }
        }
    }
    Err(gave_up(app, how.key))
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

/// Other runs kept changing the object through every retry: the write gives up (a retry of
/// the run merges again).
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
