//! The hashtags job's fetching: the `recent_media` pages the pager asks for, round after round,
//! each page flattened as it arrives and its posts kept when the pager says they are new.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::collected::{Collected, ThisRun};
use super::events::{HashtagShort, PageFailed, PageOf, TargetFailed, TargetOf};
use super::output::{Output, Spool};
use super::persist::CaptureTo;
use super::{App, Job};
use crate::config::HashtagGroup;
use crate::graph::{replay, shapes, GraphError, Need, Session};
use crate::pager::{LaneUse, Page, PageRequest, Pager, Tag, TagReport};
use crate::records::{Kind, Record};
use crate::state::{CallSpan, State};

/// What the hashtags job adds to the summary: per hashtag, whether it was due and what its poll
/// did; per credential, the budget.
#[derive(Debug, Default)]
pub(super) struct Paging {
    pub hashtags: BTreeMap<String, TagReport>,
    pub budget: Vec<LaneUse>,
}

/// A run's paging plan over the tracked hashtags, before any call: which hashtags are due and
/// what each credential may spend. Its reservations are booked in the state before the first
/// call (`store::reserve`).
pub(super) struct Planned {
    pub pager: Pager,
    groups: Vec<HashtagGroup>,
}

/// Plans the run scheduled at `scheduled` from `prev`: hashtag k (with every account tracking
/// it) on credential k mod n, the rule `plan` shards by.
pub(super) fn plan(
    app: &App,
    session: &Session<'_>,
    prev: &State,
    scheduled: DateTime<Utc>,
    calls: CallSpan,
) -> Planned {
    let config = &app.config;
    let lanes = session.lanes().max(1);
    let groups = app.hashtag_groups();
    let tags = groups
        .iter()
        .enumerate()
        .map(|(k, g)| Tag {
            name: g.hashtag.clone(),
            lane: crate::credential::of(k, lanes),
            priority: g.priority,
        })
        .collect();
    let share = app.shard.as_ref().and_then(crate::plan::Shard::share);
    let budgets = crate::credential::hashtag_lanes(config, share.as_ref(), session, prev);
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
    run: &ThisRun,
    until: Option<Instant>,
) -> (Collected, State, Paging) {
    let Planned { pager, groups } = planned;
    // Hashtag ids: pinned, kept in the state, or searched when the hashtag is first fetched.
    let ids: Vec<Option<String>> = groups
        .iter()
        .map(|g| {
            g.hashtag_id.clone().or_else(|| {
                prev.hashtags
                    .get(&g.hashtag)
                    .and_then(|s| s.hashtag_id.clone())
            })
        })
        .collect();
    let mut poll = Poll {
        app,
        session,
        capture: CaptureTo::new(app, Job::Hashtags, scheduled, session.is_replay(), until),
        failed: vec![false; groups.len()],
        spools: groups.iter().map(|_| Spool::default()).collect(),
        out: Collected::default(),
        pager,
        groups,
        ids,
    };
    loop {
        for lane in 0..session.lanes().max(1) {
            if let Some(left) = session.calls_left(lane) {
                poll.pager.cap_calls(lane, left);
            }
        }
        let requests = poll.pager.round();
        if requests.is_empty() {
            break;
        }
        for (req, resolved, body) in poll.fetch(requests).await {
            poll.absorb(req, resolved, body).await;
        }
    }
    poll.finish(prev, scheduled, run)
}

/// One run's polls: the pager, the hashtags and their ids, and what their pages gave so far.
struct Poll<'a, 's> {
    app: &'a App,
    session: &'a Session<'s>,
    capture: CaptureTo<'a>,
    pager: Pager,
    groups: Vec<HashtagGroup>,
    ids: Vec<Option<String>>,
    /// Per hashtag: whether its first page failed.
    failed: Vec<bool>,
    /// Per hashtag: its new posts' records, in page order.
    spools: Vec<Spool>,
    out: Collected,
}

/// A page asked for, the hashtag id its search found (when it searched), and the answer.
type PageAnswer = (PageRequest, Option<String>, Result<Value, GraphError>);

impl Poll<'_, '_> {
    /// One round of the pager's requests, `graph.concurrency` at a time, answers in order.
    async fn fetch(&self, requests: Vec<PageRequest>) -> Vec<PageAnswer> {
        let session = self.session;
        stream::iter(requests)
            .map(|req| {
                let group = &self.groups[req.tag];
                let id = self.ids[req.tag].clone();
                async move {
                    let lane = req.lane;
                    let (id, resolved) = match id {
                        Some(id) => (id, None),
                        None => match resolve(session, lane, &group.hashtag).await {
                            Ok(id) => (id.clone(), Some(id)),
                            Err(e) => return (req, None, Err(e)),
                        },
                    };
                    let need = match req.optional {
                        true => Need::Optional,
                        false => Need::Required,
                    };
                    let (cursor, page) = (req.cursor.as_deref(), req.page);
                    let body = session
                        .recent_media(lane, &group.hashtag, &id, cursor, page, need)
                        .await;
                    (req, resolved, body)
                }
            })
            .buffered(self.app.config.graph.concurrency)
            .collect()
            .await
    }

    /// Flattens one answer: its new posts to the hashtag's spool (one record per account
    /// tracking it) and its body to the capture; a failure to the pager and the failed targets.
    async fn absorb(
        &mut self,
        req: PageRequest,
        resolved: Option<String>,
        body: Result<Value, GraphError>,
    ) {
        let config = &self.app.config;
        let group = &self.groups[req.tag];
        let first = &config.targets[group.targets[0]];
        if let Some(id) = resolved {
            self.out.resolved.insert(group.hashtag.clone(), id.clone());
            self.ids[req.tag] = Some(id);
        }
        let rules = self.session.rules(&config.validation);
        let page = body.and_then(|b| shapes::hashtag_page(&b, first, &rules, &mut self.out.tally));
        let page = match page {
            Ok(page) => page,
            Err(e) => return self.failed_page(&req, &e),
        };
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
        let next = page.after;
        let fresh = self.pager.absorb(req.tag, &Page { posts, next });
        let parent = Kind::MediaHashtag.parent_field();
        let spool = &mut self.spools[req.tag];
        let new = page
            .records
            .into_iter()
            .zip(fresh)
            .filter_map(|(r, new)| new.then_some(r));
        for record in new {
            for &t in &group.targets {
                let mut r = record.clone();
                if let Some(field) = parent {
                    r.insert(field.to_string(), config.targets[t].user_id.clone().into());
                }
                spool.push(&r);
            }
        }
        let path = replay::recent_media_path(&group.hashtag, req.page);
        if let Some(file) = self.session.take_capture(&path) {
            self.out
                .streamed
                .note_capture(self.capture.put(&file).await);
        }
    }

    /// A page not fetched: a failed first page fails the hashtag's targets; a later one only
    /// ends its poll, and the next run pages back to its frontier again.
    fn failed_page(&mut self, req: &PageRequest, e: &GraphError) {
        let group = &self.groups[req.tag];
        if req.page == 1 {
            let targets = group.targets.iter();
            let tags = targets.filter_map(|&t| self.app.config.targets.get(t));
            TargetFailed {
                what: TargetOf::Hashtag,
                name: &group.hashtag,
                targets: tags.map(|t| t.hashtag.clone()).collect(),
                error: e,
            }
            .emit(&mut self.out.failed);
            self.failed[req.tag] = true;
        } else {
            PageFailed {
                what: PageOf::Hashtag,
                name: &group.hashtag,
                page: req.page,
                error: e,
            }
            .emit();
            if e.kind == crate::graph::ErrorKind::UsageHigh {
                self.session.skipped_optional();
            }
        }
        self.pager.failed(req.tag);
    }

    /// The spools joined into the data object, what was sent booked, and the state advanced.
    fn finish(
        mut self,
        prev: &State,
        scheduled: DateTime<Utc>,
        run: &ThisRun,
    ) -> (Collected, State, Paging) {
        let mut output = Output::new(self.app.config.output.format);
        for spool in std::mem::take(&mut self.spools) {
            if let Err(e) = output.append_spool(spool) {
                tracing::error!(
                    kind = Kind::MediaHashtag.name(),
                    "the object could not be assembled: {e}"
                );
            }
        }
        self.out.streamed.outputs.insert(Kind::MediaHashtag, output);
        // Book what was really sent (retries and searches included) beyond the pages planned.
        let planned = self.pager.planned();
        for (lane, planned) in planned.iter().enumerate() {
            let sent = self.session.calls_on(lane);
            self.pager.note_calls(lane, sent.saturating_sub(*planned));
        }
        let outcome = self.pager.finish(&run.id, run.took());
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
            let tag = &self.groups[k].hashtag;
            if report.pages > 0 {
                self.out.pages.insert(tag.clone(), report.pages);
            }
            HashtagShort {
                hashtag: tag,
                report: &report,
                failed: self.failed[k],
            }
            .emit();
            let mut state = state;
            if state.hashtag_id.is_none() {
                state.hashtag_id = self.ids[k].clone();
            }
            next.hashtags.insert(tag.clone(), state);
            paging.hashtags.insert(tag.clone(), report);
        }
        next.book(outcome.spends, scheduled);
        next.bound();
        (self.out, next, paging)
    }
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
