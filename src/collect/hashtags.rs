//! The hashtags job's fetching: each hashtag's first `recent_media` page, then extra pages
//! where the most new posts were, against the state of what earlier runs already wrote.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::run::Collected;
use super::{App, FailedTarget};
use crate::config::{Config, Target};
use crate::graph::{read_recorded, shapes, GraphError, Need, Session, Source};
use crate::records::Record;
use crate::sink::SinkError;
use crate::state::{State, TagState};
use crate::validate::{Rules, Tally};

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
pub(super) async fn load_state(
    app: &App,
    until: Option<std::time::Instant>,
) -> Result<Loaded, SinkError> {
    let fresh = "no state: first run (or state deleted), one page per hashtag".to_string();
    let key = &app.config.hashtags.state_key;
    let (bytes, etag) = match &app.source {
        Source::Replay(dir) => match read_recorded(dir, "state.json") {
            Ok(b) => (b, None),
            Err(e) => {
                return Ok(Loaded {
                    note: Some(format!("{e}; one page per hashtag")),
                    ..Loaded::default()
                })
            }
        },
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
        Ok((state, notes)) => Ok(Loaded {
            state,
            etag,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }),
        Err(e) => {
            let mut note = format!("{e}; one page per hashtag");
            if matches!(app.source, Source::Live(_)) {
                let aside = super::persist::set_aside(app, key, bytes, until, &e).await?;
                note.push_str(&format!("; the unreadable state was kept as {aside}"));
            }
            Ok(Loaded {
                state: State::default(),
                etag,
                note: Some(note),
            })
        }
    }
}

/// Fetches every hashtag against `prev`; returns what was collected and the advanced state.
pub(super) async fn collect(
    config: &Config,
    session: &Session<'_>,
    prev: &State,
    scheduled: DateTime<Utc>,
) -> (Collected, State) {
    // First pages, all hashtags, concurrently.
    let firsts: Vec<_> = stream::iter(config.targets.iter().enumerate())
        .map(|(lane, t)| {
            let prev = prev.hashtags.get(&t.hashtag);
            async move { (t, first_page(config, lane, t, session, prev).await) }
        })
        .buffered(config.graph.concurrency)
        .collect()
        .await;
    let mut out = Collected::default();
    let mut open = Vec::new();
    for (target, result) in firsts {
        match result {
            Ok(progress) => open.push(progress),
            Err(e) => {
                tracing::warn!(hashtag = %target.hashtag, error_kind = e.kind.name(), code = ?e.code, "hashtag not collected: {e}");
                out.failed.push(FailedTarget::new(&target.hashtag, &e));
            }
        }
    }
    more_pages(config, session, &mut open).await;

    let mut next = State {
        version: 1,
        ..prev.clone()
    };
    next.mark_as_of(scheduled);
    for h in open {
        let tag = h.target.hashtag.clone();
        out.batch.media_hashtag.extend(h.records);
        out.tally.merge(&h.tally);
        out.pages.insert(tag.clone(), h.page);
        if let Some(id) = h.resolved {
            out.resolved.insert(tag.clone(), id);
        }
        let state = h.prev.advance(
            &h.seen,
            config.hashtags.known_window,
            Some(h.hashtag_id),
            scheduled,
        );
        next.hashtags.insert(tag, state);
    }
    (out, next)
}

/// A hashtag part-way through its run.
struct HashtagProgress<'c> {
    target: &'c Target,
    lane: usize,
    hashtag_id: String,
    /// The id, when this run looked it up.
    resolved: Option<String>,
    prev: TagState,
    /// Whether there was a state to compare with (without one, one page only).
    has_state: bool,
    /// Posts not written by an earlier run, each once.
    records: Vec<Record>,
    tally: Tally,
    /// (id, timestamp) of every post seen this run.
    seen: Vec<(String, String)>,
    seen_ids: HashSet<String>,
    cursors: HashSet<String>,
    /// The cursor of the next page, while one is worth fetching.
    next: Option<String>,
    /// New posts inside the state's window on the last page: the priority for extra pages.
    new_recent: usize,
    page: u32,
}

impl HashtagProgress<'_> {
    /// Takes in one page: records the posts not seen before, and decides whether the next page
    /// is worth fetching: it is while the page held new posts inside the state's window (the
    /// API is not strictly ordered by time, and posts can show up late, so new posts anywhere on
    /// a page mean more may follow).
    fn absorb(
        &mut self,
        body: &Value,
        rules: &Rules,
        window: std::time::Duration,
    ) -> Result<(), GraphError> {
        let mut new_recent = 0;
        let page = shapes::hashtag_page(body, self.target, rules, &mut self.tally)?;
        for r in page.records {
            let media_id = r
                .get("media_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ts = r
                .get("timestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // The API can repeat a post within a run; each post appears once per hashtag.
            if !self.seen_ids.insert(media_id.clone()) {
                continue;
            }
            self.seen.push((media_id.clone(), ts.clone()));
            if !self.prev.is_known(&media_id) {
                if self.prev.is_recent(&ts, window) {
                    new_recent += 1;
                }
                self.records.push(r);
            }
        }
        self.new_recent = new_recent;
        let cursor = page.after;
        // A repeated cursor would loop.
        self.next =
            cursor.filter(|c| self.has_state && new_recent > 0 && self.cursors.insert(c.clone()));
        Ok(())
    }
}

/// Resolves the hashtag id (pinned, kept in the state, or searched) and takes in the first page.
async fn first_page<'c>(
    config: &Config,
    lane: usize,
    target: &'c Target,
    session: &Session<'_>,
    prev: Option<&TagState>,
) -> Result<HashtagProgress<'c>, GraphError> {
    let known_id = target
        .hashtag_id
        .clone()
        .or_else(|| prev.and_then(|p| p.hashtag_id.clone()));
    let (hashtag_id, resolved) = match known_id {
        Some(id) => (id, None),
        None => {
            let id = session.hashtag_search(lane, &target.hashtag).await?;
            if session.is_replay() {
                tracing::info!(hashtag = %target.hashtag, hashtag_id = %id, "hashtag id read from a recorded search (replay: not an id to pin)");
            } else {
                tracing::info!(
                    hashtag = %target.hashtag, hashtag_id = %id,
                    "hashtag id resolved with ig_hashtag_search and kept in the state; pin it in configure.toml as hashtag_id = \"{id}\""
                );
            }
            (id.clone(), Some(id))
        }
    };
    let body = session
        .recent_media(lane, &target.hashtag, &hashtag_id, None, 1, Need::Required)
        .await?;
    let mut progress = HashtagProgress {
        target,
        lane,
        hashtag_id,
        resolved,
        prev: prev.cloned().unwrap_or_default(),
        has_state: prev.is_some(),
        records: Vec::new(),
        tally: Tally::default(),
        seen: Vec::new(),
        seen_ids: HashSet::new(),
        cursors: HashSet::new(),
        next: None,
        new_recent: 0,
        page: 1,
    };
    progress.absorb(&body, &config.validation, config.hashtags.known_window)?;
    Ok(progress)
}

/// Spends the run's extra-page budget where it finds the most: in rounds, the hashtags whose
/// last page held the most new posts get the next pages first. An extra page that fails or is
/// skipped (high usage) ends that hashtag's paging; what it had is kept.
async fn more_pages(config: &Config, session: &Session<'_>, open: &mut [HashtagProgress<'_>]) {
    let mut budget = config.hashtags.extra_pages_per_run() as usize;
    loop {
        let mut wanting: Vec<usize> = (0..open.len())
            .filter(|&i| open[i].next.is_some() && open[i].page < config.hashtags.max_pages)
            .collect();
        if wanting.is_empty() {
            break;
        }
        if budget == 0 {
            for &i in &wanting {
                session.skipped_optional();
                tracing::warn!(hashtag = %open[i].target.hashtag, "extra-page budget of this run spent: posts may be missed (hashtags.extra_pages_per_hour)");
            }
            break;
        }
        wanting.sort_by_key(|&i| std::cmp::Reverse(open[i].new_recent));
        wanting.truncate(budget);
        budget -= wanting.len();
        let fetches = wanting.iter().map(|&i| {
            let h = &open[i];
            session.recent_media(
                h.lane,
                &h.target.hashtag,
                &h.hashtag_id,
                h.next.as_deref(),
                h.page + 1,
                Need::Optional,
            )
        });
        let bodies = futures::future::join_all(fetches).await;
        for (i, body) in wanting.into_iter().zip(bodies) {
            let h = &mut open[i];
            match body {
                Ok(body) => {
                    h.page += 1;
                    if let Err(e) =
                        h.absorb(&body, &config.validation, config.hashtags.known_window)
                    {
                        tracing::warn!(hashtag = %h.target.hashtag, page = h.page, "extra page unreadable, posts may be missed: {e}");
                        h.next = None;
                    }
                }
                Err(e) => {
                    tracing::warn!(hashtag = %h.target.hashtag, page = h.page + 1, error_kind = e.kind.name(), "extra page not fetched, posts may be missed: {e}");
                    h.next = None;
                }
            }
        }
    }
    for h in open
        .iter()
        .filter(|h| h.next.is_some() && h.page >= config.hashtags.max_pages)
    {
        tracing::warn!(hashtag = %h.target.hashtag, pages = h.page, "page limit reached with new posts still coming: raise hashtags.max_pages");
    }
}
