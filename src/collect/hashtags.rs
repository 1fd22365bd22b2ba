//! The hashtags job's fetching: the `recent_media` pages the pager asks for, round after round,
//! each page flattened as it arrives and its posts kept when the pager says they are new.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::output::{Output, Spool};
use super::persist::CaptureTo;
use super::run::Collected;
use super::{App, FailedTarget, Job};
use crate::config::{Config, HashtagGroup};
use crate::graph::{read_recorded, replay, shapes, GraphError, Need, Session, Source};
use crate::pager::{LaneUse, Page, Pager, Tag, TagReport};
use crate::records::{Kind, Record};
use crate::sink::SinkError;
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
                let aside = super::persist::set_aside(app, key, bytes, until, &e).await?;
                note.push_str(&format!("; the unreadable state was kept as {aside}; every hashtag pages back through the API's 24 hours"));
                let since = scheduled - chrono::Duration::hours(24);
                for group in app.config.hashtag_groups() {
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

/// What the hashtags job adds to the summary: per hashtag, whether it was due and what its poll
/// did; per credential, the budget.
#[derive(Debug, Default)]
pub(super) struct Paging {
    pub hashtags: BTreeMap<String, TagReport>,
    pub budget: Vec<LaneUse>,
}

/// A run's paging plan over the tracked hashtags, before any call: which hashtags are due and
/// what each credential may spend. Its reservations are booked in the state before the first
/// call (`persist::reserve`).
pub(super) struct Planned {
    pub pager: Pager,
    groups: Vec<HashtagGroup>,
}

/// Plans the run scheduled at `scheduled` from `prev`: hashtag k (with every account tracking
/// it) on credential k mod n, the rule `plan` shards by.
pub(super) fn plan(
    config: &Config,
    session: &Session<'_>,
    prev: &State,
    scheduled: DateTime<Utc>,
    calls: CallSpan,
) -> Planned {
    let lanes = session.lanes().max(1);
    let groups = config.hashtag_groups();
    let tags = groups
        .iter()
        .enumerate()
        .map(|(k, g)| Tag {
            name: g.hashtag.clone(),
            lane: crate::credential::of(k, lanes),
            priority: g.priority,
        })
        .collect();
    let budgets =
        crate::credential::hashtag_lanes(config, config.budget.hashtag_share.as_ref(), session);
    Planned {
        pager: Pager::new(
            config.pager_settings(),
            scheduled,
            calls,
            tags,
            prev,
            budgets,
        ),
        groups,
    }
}

/// Fetches the hashtags the pager says are due, against `prev`; returns what was collected, the
/// advanced state (with this run's calls booked) and the paging report.
///
/// Each page is flattened as it arrives; its new posts go to its hashtag's [`Spool`] (one
/// record per account tracking the hashtag) and its raw body to the capture at once, so the
/// run holds neither the pages nor the records, however many pages a catch-up takes. The
/// hashtags' records are joined into the data object in configuration order at the end.
pub(super) async fn collect(
    app: &App,
    session: &Session<'_>,
    planned: Planned,
    prev: &State,
    scheduled: DateTime<Utc>,
    run: &super::run::ThisRun,
    until: Option<Instant>,
) -> (Collected, State, Paging) {
    let config = &app.config;
    let Planned { mut pager, groups } = planned;
    let capture = CaptureTo::new(app, Job::Hashtags, scheduled, session.is_replay(), until);
    let mut out = Collected::default();
    // Hashtag ids: pinned, kept in the state, or searched when the hashtag is first fetched.
    let mut ids: Vec<Option<String>> = groups
        .iter()
        .map(|g| {
            g.hashtag_id.clone().or_else(|| {
                prev.hashtags
                    .get(&g.hashtag)
                    .and_then(|s| s.hashtag_id.clone())
            })
        })
        .collect();
    let mut failed = vec![false; groups.len()];
    let mut spools: Vec<Spool> = groups.iter().map(|_| Spool::default()).collect();
    let parent = Kind::MediaHashtag.parent_field();
    loop {
        for lane in 0..session.lanes().max(1) {
            if let Some(left) = session.calls_left(lane) {
                pager.cap_calls(lane, left);
            }
        }
        let requests = pager.round();
        if requests.is_empty() {
            break;
        }
        let fetched: Vec<_> = stream::iter(requests)
            .map(|req| {
                let group = &groups[req.tag];
                let id = ids[req.tag].clone();
                async move {
                    let lane = req.lane;
                    let (id, resolved) = match id {
                        Some(id) => (id, None),
                        None => match resolve(session, lane, &group.hashtag).await {
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
                            &group.hashtag,
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
            let group = &groups[req.tag];
            let first = &config.targets[group.targets[0]];
            if let Some(id) = resolved {
                out.resolved.insert(group.hashtag.clone(), id.clone());
                ids[req.tag] = Some(id);
            }
            let rules = session.rules(&config.validation);
            let page = body.and_then(|b| shapes::hashtag_page(&b, first, &rules, &mut out.tally));
            match page {
                Ok(page) => {
                    let posts = page
                        .records
                        .iter()
                        .map(|r| {
                            (
                                text(r, Kind::MediaHashtag.id_field()),
                                text(r, Kind::MediaHashtag.time_field().unwrap_or_default()),
                            )
                        })
                        .collect();
                    let fresh = pager.absorb(
                        req.tag,
                        &Page {
                            posts,
                            next: page.after,
                        },
                    );
                    let spool = &mut spools[req.tag];
                    for record in page
                        .records
                        .into_iter()
                        .zip(fresh)
                        .filter_map(|(r, new)| new.then_some(r))
                    {
                        for &t in &group.targets {
                            let mut r = record.clone();
                            if let Some(field) = parent {
                                r.insert(
                                    field.to_string(),
                                    config.targets[t].user_id.clone().into(),
                                );
                            }
                            spool.push(&r);
                        }
                    }
                    let path = replay::recent_media_path(&group.hashtag, req.page);
                    if let Some(file) = session.take_capture(&path) {
                        out.streamed.note_capture(capture.put(&file).await);
                    }
                }
                Err(e) if req.page == 1 => {
                    tracing::warn!(hashtag = %group.hashtag, error_kind = e.kind.name(), code = ?e.code, "hashtag not collected: {e}");
                    for &t in &group.targets {
                        let mut f = FailedTarget::new(&group.hashtag, &e);
                        f.target = config.targets[t].hashtag.clone();
                        out.failed.push(f);
                    }
                    failed[req.tag] = true;
                    pager.failed(req.tag);
                }
                Err(e) => {
                    tracing::warn!(hashtag = %group.hashtag, page = req.page, error_kind = e.kind.name(), "page not fetched: the next run pages back to this hashtag's frontier again: {e}");
                    if e.kind == crate::graph::ErrorKind::UsageHigh {
                        session.skipped_optional();
                    }
                    pager.failed(req.tag);
                }
            }
        }
    }
    let mut output = Output::new(config.output.format);
    for spool in spools {
        if let Err(e) = output.append_spool(spool) {
            tracing::error!(
                kind = Kind::MediaHashtag.name(),
                "the object could not be assembled: {e}"
            );
        }
    }
    out.streamed.outputs.insert(Kind::MediaHashtag, output);
    // Book what was really sent (retries and searches included) beyond the pages planned.
    let planned = pager.planned();
    for (lane, planned) in planned.iter().enumerate() {
        let sent = session.calls_on(lane);
        pager.note_calls(lane, sent.saturating_sub(*planned));
    }
    let outcome = pager.finish(&run.id, run.took());

    let mut next = State {
        version: 1,
        ..prev.clone()
    };
    next.mark_as_of(scheduled);
    let mut paging = Paging {
        budget: outcome.budget,
        ..Paging::default()
    };
    for (k, (state, report)) in outcome.states.into_iter().zip(outcome.reports).enumerate() {
        let tag = &groups[k].hashtag;
        if report.pages > 0 {
            out.pages.insert(tag.clone(), report.pages);
        }
        if let (Some(from), Some(to)) = (&report.given_up_from, &report.given_up_to) {
            tracing::error!(hashtag = %tag, posts_given_up = report.posts_given_up, given_up_from = %from, given_up_to = %to, "posts aged out of the API's 24 hours before the budget reached them: raise budget.calls_per_hour_per_credential, add a credential, or lower other hashtags' hashtag_priority");
        } else if report.posts_behind > 0 && !failed[k] {
            tracing::warn!(hashtag = %tag, posts_behind = report.posts_behind, due = ?report.due, "hashtag behind: the budget or the run's time ran out before its frontier; the next runs catch up (posts stay fetchable for 24 h)");
        }
        let mut state = state;
        if state.hashtag_id.is_none() {
            state.hashtag_id = ids[k].clone();
        }
        next.hashtags.insert(tag.clone(), state);
        paging.hashtags.insert(tag.clone(), report);
    }
    next.book(outcome.spends, scheduled);
    next.bound();
    (out, next, paging)
}

fn text(r: &Record, field: &str) -> String {
    r.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Looks up a hashtag's id with `ig_hashtag_search`, and says how to pin it.
async fn resolve(session: &Session<'_>, lane: usize, hashtag: &str) -> Result<String, GraphError> {
    let id = session.hashtag_search(lane, hashtag).await?;
    if session.is_replay() {
        tracing::info!(hashtag = %hashtag, hashtag_id = %id, "hashtag id read from a recorded search (replay: not an id to pin)");
    } else {
        tracing::info!(
            hashtag = %hashtag, hashtag_id = %id,
            "hashtag id resolved with ig_hashtag_search and kept in the state; pin it in configure.toml as hashtag_id = \"{id}\""
        );
    }
    Ok(id)
}
