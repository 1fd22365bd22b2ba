//! The hashtags job's fetching: the `recent_media` pages the pager asks for, round after round,
//! each page flattened as it arrives and its posts kept when the pager says they are new.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::run::Collected;
use super::{App, FailedTarget};
use crate::config::{Config, Target};
use crate::graph::{read_recorded, shapes, GraphError, Need, Session, Source};
use crate::pager::{Lane, LaneUse, Page, Pager, Tag, TagReport};
use crate::records::Record;
use crate::sink::SinkError;
use crate::state::State;

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

/// What the hashtags job adds to the summary: per hashtag, whether it was due and what its poll
/// did; per credential, the budget.
#[derive(Debug, Default)]
pub(super) struct Paging {
    pub hashtags: BTreeMap<String, TagReport>,
    pub budget: Vec<LaneUse>,
}

/// Fetches the hashtags the pager says are due, against `prev`; returns what was collected, the
/// advanced state (with this run's calls booked) and the paging report.
pub(super) async fn collect(
    config: &Config,
    session: &Session<'_>,
    prev: &State,
    scheduled: DateTime<Utc>,
    run_id: &str,
) -> (Collected, State, Paging) {
    let lanes = session.lanes().max(1);
    let tags = config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| Tag {
            name: t.hashtag.clone(),
            lane: i % lanes,
            priority: t.hashtag_priority,
        })
        .collect();
    let budgets = (0..lanes)
        .map(|lane| Lane {
            key: session
                .lane_user(lane)
                .map(str::to_string)
                .unwrap_or_else(|| format!("lane-{lane}")),
            calls_per_hour: config.hashtag_calls_per_hour(lane, lanes),
        })
        .collect();
    let mut pager = Pager::new(config.pager_settings(), scheduled, tags, prev, budgets);
    let mut out = Collected::default();
    // Hashtag ids: pinned, kept in the state, or searched when the hashtag is first fetched.
    let mut ids: Vec<Option<String>> = config
        .targets
        .iter()
        .map(|t| {
            t.hashtag_id.clone().or_else(|| {
                prev.hashtags
                    .get(&t.hashtag)
                    .and_then(|s| s.hashtag_id.clone())
            })
        })
        .collect();
    let mut failed = vec![false; config.targets.len()];
    // Records per hashtag, written in configuration order whatever order the pages came in.
    let mut kept: Vec<Vec<Record>> = vec![Vec::new(); config.targets.len()];
    loop {
        let requests = pager.round();
        if requests.is_empty() {
            break;
        }
        let fetched: Vec<_> = stream::iter(requests)
            .map(|req| {
                let target = &config.targets[req.tag];
                let id = ids[req.tag].clone();
                async move {
                    let lane = req.lane;
                    let (id, resolved) = match id {
                        Some(id) => (id, None),
                        None => match resolve(session, lane, target).await {
                            Ok(id) => (id.clone(), Some(id)),
                            Err(e) => return (req, None, Err(e)),
                        },
                    };
                    let need = if req.optional {
                        Need::Optional
                    } else {
                        Need::Required
                    };
                    let body = session
                        .recent_media(
                            lane,
                            &target.hashtag,
                            &id,
                            req.cursor.as_deref(),
                            req.page,
                            need,
                        )
                        .await;
                    (req, resolved, body)
                }
            })
            .buffered(config.graph.concurrency)
            .collect()
            .await;
        for (req, resolved, body) in fetched {
            let target = &config.targets[req.tag];
            if let Some(id) = resolved {
                out.resolved.insert(target.hashtag.clone(), id.clone());
                ids[req.tag] = Some(id);
            }
            let page = body
                .and_then(|b| shapes::hashtag_page(&b, target, &config.validation, &mut out.tally));
            match page {
                Ok(page) => {
                    let posts = page
                        .records
                        .iter()
                        .map(|r| (text(r, "media_id"), text(r, "timestamp")))
                        .collect();
                    let fresh = pager.absorb(
                        req.tag,
                        &Page {
                            posts,
                            next: page.after,
                        },
                    );
                    kept[req.tag].extend(
                        page.records
                            .into_iter()
                            .zip(fresh)
                            .filter_map(|(r, new)| new.then_some(r)),
                    );
                }
                Err(e) if req.page == 1 => {
                    tracing::warn!(hashtag = %target.hashtag, error_kind = e.kind.name(), code = ?e.code, "hashtag not collected: {e}");
                    out.failed.push(FailedTarget::new(&target.hashtag, &e));
                    failed[req.tag] = true;
                    pager.failed(req.tag);
                }
                Err(e) => {
                    tracing::warn!(hashtag = %target.hashtag, page = req.page, error_kind = e.kind.name(), "page not fetched: the next run pages back to this hashtag's frontier again: {e}");
                    if e.kind == crate::graph::ErrorKind::UsageHigh {
                        session.skipped_optional();
                    }
                    pager.failed(req.tag);
                }
            }
        }
    }
    out.batch.media_hashtag = kept.into_iter().flatten().collect();
    // Book what was really sent (retries and searches included) beyond the pages planned.
    let planned = pager.planned();
    for (lane, planned) in planned.iter().enumerate() {
        let sent = session.calls_on(lane);
        pager.note_calls(lane, sent.saturating_sub(*planned));
    }
    let outcome = pager.finish(run_id);

    let mut next = State {
        version: 1,
        ..prev.clone()
    };
    next.mark_as_of(scheduled);
    let mut paging = Paging {
        budget: outcome.budget,
        ..Paging::default()
    };
    for (i, (state, report)) in outcome.states.into_iter().zip(outcome.reports).enumerate() {
        let target = &config.targets[i];
        let tag = &target.hashtag;
        if report.pages > 0 {
            out.pages.insert(tag.clone(), report.pages);
        }
        if report.posts_given_up > 0 {
            tracing::error!(hashtag = %tag, posts_given_up = report.posts_given_up, "posts aged out of the API's 24 hours before the budget reached them: raise budget.calls_per_hour_per_credential, add a credential, or lower other hashtags' hashtag_priority");
        } else if report.posts_behind > 0 && !failed[i] {
            tracing::warn!(hashtag = %tag, posts_behind = report.posts_behind, due = ?report.due, "hashtag behind: the budget or the run's time ran out before its frontier; the next runs catch up (posts stay fetchable for 24 h)");
        }
        let mut state = state;
        if state.hashtag_id.is_none() {
            state.hashtag_id = ids[i].clone();
        }
        next.hashtags.insert(tag.clone(), state);
        paging.hashtags.insert(tag.clone(), report);
    }
    next.book(outcome.spends, scheduled);
    (out, next, paging)
}

fn text(r: &Record, field: &str) -> String {
    r.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Looks up a hashtag's id with `ig_hashtag_search`, and says how to pin it.
async fn resolve(
    session: &Session<'_>,
    lane: usize,
    target: &Target,
) -> Result<String, GraphError> {
    let id = session.hashtag_search(lane, &target.hashtag).await?;
    if session.is_replay() {
        tracing::info!(hashtag = %target.hashtag, hashtag_id = %id, "hashtag id read from a recorded search (replay: not an id to pin)");
    } else {
        tracing::info!(
            hashtag = %target.hashtag, hashtag_id = %id,
            "hashtag id resolved with ig_hashtag_search and kept in the state; pin it in configure.toml as hashtag_id = \"{id}\""
        );
    }
    Ok(id)
}
