//! The brands job's fetching: `business_discovery` per account, concurrently and bounded. Each
//! answer is flattened as it arrives and dropped: its records are rendered into the run's data
//! objects (`output::Output`) and its raw body is written to the capture at once
//! (`persist::CaptureTo`), so memory does not grow with the number of accounts. A failing
//! account is a [`FailedTarget`]; the others go on.
//!
//! With `brands.lookback_days`, each account's media are then paged back to the window's start
//! (`lookback::Walk`), each page through the same session call path, drawn from the pages the
//! run booked on the account's credential ([`Pages`]); a lookback page that fails or is not
//! booked ends that account's paging and keeps what it had.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use super::output::Output;
use super::persist::CaptureTo;
use super::run::Collected;
use super::{App, FailedTarget, Job};
use crate::graph::{replay, shapes, ErrorKind, GraphError, Session};
use crate::lookback::{self, End, Walk};
use crate::records::{Fragment, Kind, Record};
use crate::sink::{SinkError, Written};
use crate::validate::Tally;

/// One account's answer, flattened and rendered.
struct Answer {
    brand: Fragment,
    media: Fragment,
    /// What writing its captures did (its first page, then its lookback's): `None` when the
    /// run keeps no capture.
    captured: Vec<Result<Option<Written>, SinkError>>,
    lookback: lookback::Report,
}

/// The lookback pages a run booked, per credential, in calls: a page takes as many as its
/// attempts may send, so a page never spends calls booked for the first pages.
pub(super) struct Pages {
    /// Calls left per credential (lane); `None`: not limited (a replay, which sends nothing).
    calls: Option<Mutex<Vec<u64>>>,
    per_page: u64,
}

impl Pages {
    pub(super) fn booked(calls: Vec<u64>, per_page: u64) -> Pages {
        Pages {
            calls: Some(Mutex::new(calls)),
            per_page: per_page.max(1),
        }
    }

    pub(super) fn unlimited() -> Pages {
        Pages {
            calls: None,
            per_page: 1,
        }
    }

    /// Takes one page from `lane`'s calls; false when they are spent.
    fn take(&self, lane: usize) -> bool {
        let Some(calls) = &self.calls else {
            return true;
        };
        let Ok(mut calls) = calls.lock() else {
            return false;
        };
        match calls.get_mut(lane) {
            Some(left) if *left >= self.per_page => {
                *left -= self.per_page;
                true
            }
            _ => false,
        }
    }
}

pub(super) async fn collect(
    app: &App,
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    until: Option<Instant>,
    pages: &Pages,
) -> Collected {
    let config = &app.config;
    let format = config.output.format;
    let capture = CaptureTo::new(app, Job::Brands, scheduled, session.is_replay(), until);
    let mut out = Collected::default();
    for kind in Job::Brands.kinds() {
        out.streamed.outputs.insert(*kind, Output::new(format));
    }
    let capture = &capture;
    // `buffered` hands the answers back in target order, so the objects list the accounts in
    // configuration order whatever order the calls end in; at most `concurrency` answers wait.
    let mut answers = stream::iter(config.targets.iter().enumerate())
        .map(|(i, t)| async move {
            let mut tally = Tally::default();
            let answer = async {
                let body = session.business_discovery(i, &t.username).await?;
                // Taken after the call: it knows the fields the call found removed.
                let rules = session.rules(&config.validation);
                let batch = shapes::brand(&body, t, &rules, &mut tally)?;
                let paging = shapes::media_paging(&body);
                drop(body);
                let brand = fragment(format, &batch.brand);
                let mut media = fragment(format, &batch.media);
                let mut seen: HashSet<String> = batch.media.iter().filter_map(media_id).collect();
                drop(batch);
                // Only an answer that yielded records is captured now; the others stay with the
                // session and are written after the data, so a run that collected nothing
                // writes nothing.
                let collected = !(brand.is_empty() && media.is_empty());
                let mut captured = Vec::new();
                if let Some(file) = collected
                    .then(|| session.take_capture(&replay::brand_path(&t.username)))
                    .flatten()
                {
                    captured.push(capture.put(&file).await);
                }
                let mut report = lookback::Report::default();
                if let Some(walk) = Walk::new(scheduled, config.brands.lookback_days) {
                    let account = Account {
                        session,
                        target: t,
                        index: i,
                        rules: &config.validation,
                        capture,
                    };
                    account
                        .look_back(
                            walk,
                            paging,
                            pages,
                            &mut media,
                            &mut seen,
                            &mut tally,
                            &mut captured,
                            &mut report,
                        )
                        .await;
                }
                Ok::<_, GraphError>(Answer {
                    brand,
                    media,
                    captured,
                    lookback: report,
                })
            }
            .await;
            (t, tally, answer)
        })
        .buffered(config.graph.concurrency);
    while let Some((target, tally, answer)) = answers.next().await {
        out.tally.merge(&tally);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target_name = %target.username, error_kind = e.kind.name(), code = ?e.code, "brand not collected: {e}");
                out.failed.push(FailedTarget::new(&target.username, &e));
                continue;
            }
        };
        out.lookback.add(&answer.lookback);
        let streamed = &mut out.streamed;
        for captured in answer.captured {
            streamed.note_capture(captured);
        }
        for (kind, fragment) in [(Kind::Brand, &answer.brand), (Kind::Media, &answer.media)] {
            let Some(output) = streamed.outputs.get_mut(&kind) else {
                continue;
            };
            // The object is then incomplete: the run fails when it comes to write it.
            if let Err(e) = output.append(fragment) {
                tracing::error!(kind = kind.name(), "the object could not be assembled: {e}");
            }
        }
    }
    out
}

/// One account's lookback: what its pages need besides the walk.
struct Account<'a, 's> {
    session: &'a Session<'s>,
    target: &'a crate::config::Target,
    /// The target's index: its credential (lane) is `index` mod the credentials.
    index: usize,
    /// The configured validation rules (the session adds the fields found removed).
    rules: &'a crate::validate::Rules,
    capture: &'a CaptureTo<'a>,
}

impl Account<'_, '_> {
    /// Pages the account's media back from the first page (`first`) to the walk's window,
    /// appending each page's posts of the window not yet written to `media`, first page first.
    #[allow(clippy::too_many_arguments)]
    async fn look_back(
        &self,
        mut walk: Walk,
        first: shapes::MediaPaging,
        pages: &Pages,
        media: &mut Fragment,
        seen: &mut HashSet<String>,
        tally: &mut Tally,
        captured: &mut Vec<Result<Option<Written>, SinkError>>,
        report: &mut lookback::Report,
    ) {
        let t = self.target;
        let lanes = self.session.lanes().max(1);
        let mut next = walk.next(first.oldest, first.after.as_deref());
        let mut page = 1u32;
        loop {
            let cursor = match next {
                Ok(c) => c,
                Err(End::Window | End::NoMore) => return,
                Err(End::RepeatedCursor | End::BadCursor) => {
                    tracing::warn!(target_name = %t.username, page, "the media paging answered a cursor already followed, or not a cursor: the account's lookback ends here");
                    report.cursors_refused += 1;
                    return;
                }
            };
            if !pages.take(self.index % lanes) {
                report.accounts_cut_short += 1;
                return;
            }
            page = page.saturating_add(1);
            let answer = match self
                .session
                .business_discovery_page(self.index, &t.username, &cursor, page)
                .await
            {
                Ok(body) => {
                    let rules = self.session.rules(self.rules);
                    let keep = |id: Option<&str>, at: Option<DateTime<Utc>>| {
                        id.is_none_or(|id| !seen.contains(id))
                            && at.is_none_or(|at| walk.in_window(at))
                    };
                    shapes::brand_media(&body, t, &rules, tally, keep)
                        .map(|records| (records, shapes::media_paging(&body)))
                }
                Err(e) => Err(e),
            };
            let (records, paging) = match answer {
                Ok(a) => a,
                // A replay of a capture made without this page: the capture ends here.
                Err(e) if self.session.is_replay() && e.kind == ErrorKind::NotFound => return,
                Err(e) => {
                    tracing::warn!(target_name = %t.username, page, error_kind = e.kind.name(), "a lookback page was not collected; the account's lookback ends here and what it had is written: {e}");
                    report.pages_failed += 1;
                    return;
                }
            };
            report.pages += 1;
            for r in &records {
                if let Some(id) = media_id(r) {
                    seen.insert(id);
                }
                media.push(r);
            }
            if !records.is_empty() {
                if let Some(file) = self
                    .session
                    .take_capture(&replay::brand_page_path(&t.username, page))
                {
                    captured.push(self.capture.put(&file).await);
                }
            }
            next = walk.next(paging.oldest, paging.after.as_deref());
        }
    }
}

/// A media record's id, for the lookback's deduplication.
fn media_id(record: &Record) -> Option<String> {
    record
        .get(Kind::Media.id_field())
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

fn fragment(format: crate::records::Format, records: &[Record]) -> Fragment {
    let mut f = Fragment::new(format);
    records.iter().for_each(|r| f.push(r));
    f
}
