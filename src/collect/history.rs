//! An account's history past its first page: the lookback (`brands.lookback_days`), which
//! pages its media back to the window's start every run (`lookback::Walk`), and the backfill
//! (`brands.backfill_days`), which goes on from there, run after run, with the pages the hour
//! can spare, resuming where it stopped (`backfill::Progress`). Each page goes through the same
//! session call path, drawn from the pages the run booked on the account's credential
//! ([`Pages`]); a page that fails or is not booked ends that account's paging and keeps what it
//! had.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::events::{PageFailed, PageOf};
use super::persist::CaptureTo;
use crate::backfill::{self, Progress};
use crate::config::BrandsSettings;
use crate::graph::{replay, shapes, ErrorKind, GraphError, Session};
use crate::lookback::{self, End, Walk};
use crate::records::{Fragment, Kind, Record};
use crate::sink::{SinkError, Written};
use crate::validate::Tally;

/// The pages a run booked past the first pages (its lookback's, or its backfill's), per
/// credential. They are booked with a quarter more calls for their retries ([`Pages::calls_for`]);
/// the session refuses any call past the run's booking, so retries beyond that end the paging
/// of the account that needed them.
pub(super) struct Pages {
    /// Per credential (lane): pages left, and pages taken and refused so far; `None`: not
    /// limited (a replay, which sends nothing).
    lanes: Option<Mutex<Vec<PagesOfLane>>>,
}

/// One credential's pages: left to take, taken, and refused (an account that wanted one more).
#[derive(Debug, Clone, Copy, Default)]
struct PagesOfLane {
    left: u64,
    taken: u64,
    refused: u64,
}

impl Pages {
    /// The pages `calls` booked calls pay for (the inverse of [`Pages::calls_for`]).
    pub(super) fn pages_in(calls: u64) -> u64 {
        lookback::pages_booked(calls)
    }

    /// The calls to book for `pages` pages: a quarter more, for retries.
    pub(super) fn calls_for(pages: u64) -> u64 {
        lookback::calls_to_book(pages)
    }

    /// The pages `calls` booked per credential pay for.
    pub(super) fn booked(calls: Vec<u64>) -> Pages {
        let lanes = calls
            .into_iter()
            .map(|c| PagesOfLane {
                left: Pages::pages_in(c),
                ..PagesOfLane::default()
            })
            .collect();
        Pages {
            lanes: Some(Mutex::new(lanes)),
        }
    }

    pub(super) fn unlimited() -> Pages {
        Pages { lanes: None }
    }

    /// Takes one of `lane`'s pages; false when they are spent.
    fn take(&self, lane: usize) -> bool {
        let Some(lanes) = &self.lanes else {
            return true;
        };
        let Ok(mut lanes) = lanes.lock() else {
            return false;
        };
        match lanes.get_mut(lane) {
            Some(l) if l.left > 0 => {
                l.left -= 1;
                l.taken += 1;
                true
            }
            Some(l) => {
                l.refused += 1;
                false
            }
            None => false,
        }
    }

    /// Per credential, the pages taken and the pages refused (each refused account wanted at
    /// least one more). `None` when not limited.
    pub(super) fn used(&self) -> Option<Vec<(u64, u64)>> {
        let lanes = self.lanes.as_ref()?.lock().ok()?;
        Some(lanes.iter().map(|l| (l.taken, l.refused)).collect())
    }
}

/// What the run's backfill starts from and may spend (`brands.backfill_days`).
pub(super) struct History<'a> {
    /// The start of the history to fetch; `None`: no backfill.
    pub since: Option<DateTime<Utc>>,
    /// Each account's progress as the run read it (by [`account_key`]).
    pub progress: &'a BTreeMap<String, Progress>,
    /// The backfill's pages booked, per credential.
    pub pages: Pages,
    /// The most backfill pages one account reads in this run: what its share of the
    /// invocation's time leaves after its first page and lookback.
    pub per_account: u64,
}

/// An account's key in the state: its username in lower case (Instagram's usernames ignore
/// case).
pub(super) fn account_key(target: &crate::config::Target) -> String {
    target.username.to_lowercase()
}

/// One account's paging past its first page: what its pages need besides the walk.
pub(super) struct Account<'a, 's> {
    pub session: &'a Session<'s>,
    pub target: &'a crate::config::Target,
    /// The target's index: its credential (`credential::of`).
    pub index: usize,
    /// The configured validation rules (the session adds the fields found removed).
    pub rules: &'a crate::validate::Rules,
    pub capture: &'a CaptureTo<'a>,
}

/// Where an account's lookback stopped.
enum Stop {
    /// It read a page holding posts older than its window: the backfill goes on from that
    /// page's cursor. The page's oldest post, its cursor, and its posts older than the window
    /// (kept for the backfill, which would not read that page again).
    Window {
        oldest: Option<DateTime<Utc>>,
        after: Option<String>,
        older_posts: u64,
    },
    /// The account has no older posts.
    NoMore,
    /// It stopped short of its window (a failed or unbooked page, a refused cursor).
    Short,
}

impl Stop {
    /// Where a run without lookback stops: after its first page.
    fn after_first(first: shapes::MediaPaging) -> Stop {
        match (first.oldest, first.after) {
            (Some(oldest), Some(after)) => Stop::Window {
                oldest: Some(oldest),
                after: Some(after),
                older_posts: 0,
            },
            _ => Stop::NoMore,
        }
    }
}

/// A page's records and paging, or why there is none.
type Fetched = Result<(Vec<Record>, shapes::MediaPaging), GraphError>;

impl Account<'_, '_> {
    fn lane(&self) -> usize {
        crate::credential::of(self.index, self.session.lanes())
    }

    /// Reads the account's history past its first page (`first`): the lookback's pages, then,
    /// while the account's backfill is not complete, its older pages within the run's booking.
    /// Returns what each did and where the backfill stands (`None`: no backfill to do).
    pub(super) async fn history(
        &self,
        scheduled: DateTime<Utc>,
        days: &BrandsSettings,
        first: shapes::MediaPaging,
        pages: &Pages,
        history: &History<'_>,
        sink: &mut PageSink<'_>,
    ) -> (lookback::Report, backfill::Report, Option<Progress>) {
        let mut report = lookback::Report::default();
        let mut back = backfill::Report::default();
        let before = history.progress.get(&account_key(self.target)).cloned();
        let backfilling = history
            .since
            .filter(|s| !before.as_ref().is_some_and(|p| p.complete(*s)));
        let (lookback_since, (stop, page)) = match Walk::new(scheduled, days.lookback_days) {
            Some(walk) => (
                walk.since(),
                self.look_back(walk, first, backfilling, pages, sink, &mut report)
                    .await,
            ),
            None => (scheduled, (Stop::after_first(first), 1)),
        };
        let Some(since) = backfilling else {
            // A complete history is reported as it stands.
            return (report, back, before);
        };
        let mut p = before.unwrap_or_default();
        let start = backfill_start(&mut p, lookback_since, stop, since, &mut back);
        let walk = Walk::new(scheduled, days.backfill_days);
        if let (Some((cursor, resumed)), Some(walk)) = (start, walk) {
            let budget = Budget {
                pages: &history.pages,
                most: history.per_account,
            };
            self.back_fill(walk, cursor, resumed, page, budget, &mut p, sink, &mut back)
                .await;
        }
        (report, back, Some(p))
    }

    /// Fetches page `page` at `cursor`, keeping the posts not yet written for which
    /// `in_window` holds.
    async fn page(
        &self,
        cursor: &str,
        page: u32,
        seen: &HashSet<String>,
        tally: &mut Tally,
        in_window: impl Fn(DateTime<Utc>) -> bool,
    ) -> Fetched {
        let t = self.target;
        let body = self
            .session
            .business_discovery_page(self.index, &t.username, cursor, page)
            .await?;
        let rules = self.session.rules(self.rules);
        let keep = |id: Option<&str>, at: Option<DateTime<Utc>>| {
            id.is_none_or(|id| !seen.contains(id)) && at.is_none_or(&in_window)
        };
        shapes::brand_media(&body, t, &rules, tally, keep)
            .map(|records| (records, shapes::media_paging(&body)))
    }

    /// Appends a page's records to `media` (remembering their ids) and captures its body.
    async fn keep_page(&self, records: &[Record], page: u32, sink: &mut PageSink<'_>) {
        for r in records {
            if let Some(id) = media_id(r) {
                sink.seen.insert(id);
            }
            sink.media.push(r);
        }
        if !records.is_empty() {
            let path = replay::brand_page_path(&self.target.username, page);
            if let Some(file) = self.session.take_capture(&path) {
                sink.captured.push(self.capture.put(&file).await);
            }
        }
    }

    /// Pages the account's media back from the first page (`first`) to the walk's window,
    /// appending each page's posts of the window (or of `also_since`, the backfill's window,
    /// on the page that crosses it) not yet written to `media`, first page first. Returns where
    /// it stopped and the pages read, the first included.
    async fn look_back(
        &self,
        mut walk: Walk,
        first: shapes::MediaPaging,
        also_since: Option<DateTime<Utc>>,
        pages: &Pages,
        sink: &mut PageSink<'_>,
        report: &mut lookback::Report,
    ) -> (Stop, u32) {
        let t = self.target;
        let keep_since = also_since.map_or(walk.since(), |s| s.min(walk.since()));
        let mut next = walk.next(first.oldest, first.after.as_deref());
        let mut last = first;
        let mut page = 1u32;
        let mut older_posts = 0;
        loop {
            let cursor = match next {
                Ok(c) => c,
                Err(End::Window) => {
                    let stop = Stop::Window {
                        oldest: last.oldest,
                        after: last.after,
                        older_posts,
                    };
                    return (stop, page);
                }
                Err(End::NoMore) => return (Stop::NoMore, page),
                Err(End::RepeatedCursor | End::BadCursor) => {
                    tracing::warn!(target_name = %t.username, page, "the media paging answered a cursor already followed, or not a cursor: the account's lookback ends here");
                    report.cursors_refused += 1;
                    return (Stop::Short, page);
                }
            };
            if !pages.take(self.lane()) {
                report.accounts_cut_short += 1;
                return (Stop::Short, page);
            }
            page = page.saturating_add(1);
            let fetched = self
                .page(&cursor, page, sink.seen, sink.tally, |at| at >= keep_since)
                .await;
            let (records, paging) = match fetched {
                Ok(a) => a,
                // A replay of a capture made without this page: the capture ends here.
                Err(e) if self.session.is_replay() && e.kind == ErrorKind::NotFound => {
                    return (Stop::Short, page)
                }
                Err(error) => {
                    let (what, name) = (PageOf::Lookback, &t.username);
                    PageFailed {
                        what,
                        name,
                        page,
                        error: &error,
                    }
                    .emit();
                    report.pages_failed += 1;
                    return (Stop::Short, page);
                }
            };
            report.pages += 1;
            older_posts = records
                .iter()
                .filter(|r| record_time(r).is_some_and(|at| !walk.in_window(at)))
                .count() as u64;
            self.keep_page(&records, page, sink).await;
            next = walk.next(paging.oldest, paging.after.as_deref());
            last = paging;
        }
    }

    /// Fetches the account's older posts from `cursor`, with the backfill pages booked, until
    /// the walk's window (`backfill_days`) or the account's oldest post; page numbers go on from
    /// `page`. Moves `progress` with each page read; a stored cursor (`resumed`) the API
    /// refuses is dropped, so the next run pages again from the lookback's end.
    #[allow(clippy::too_many_arguments)]
    async fn back_fill(
        &self,
        mut walk: Walk,
        cursor: String,
        resumed: bool,
        mut page: u32,
        budget: Budget<'_>,
        progress: &mut Progress,
        sink: &mut PageSink<'_>,
        report: &mut backfill::Report,
    ) {
        let t = self.target;
        let mut next: Result<String, End> = Ok(cursor);
        let mut first = true;
        let mut taken = 0;
        loop {
            let cursor = match next {
                Ok(c) => c,
                Err(End::Window) => return,
                Err(End::NoMore) => {
                    progress.mark_no_more();
                    return;
                }
                Err(End::RepeatedCursor | End::BadCursor) => {
                    tracing::warn!(target_name = %t.username, page, "the media paging answered a cursor already followed, or not a cursor: the account's backfill goes on from its last page at the next run");
                    return;
                }
            };
            if taken >= budget.most || !budget.pages.take(self.lane()) {
                return;
            }
            taken += 1;
            page = page.saturating_add(1);
            let fetched = self
                .page(&cursor, page, sink.seen, sink.tally, |at| {
                    walk.in_window(at)
                })
                .await;
            let (records, paging) = match fetched {
                Ok(a) => a,
                Err(e) if self.session.is_replay() && e.kind == ErrorKind::NotFound => return,
                Err(e) => {
                    report.pages_failed += 1;
                    if resumed && first && e.kind == ErrorKind::InvalidParameter {
                        tracing::warn!(target_name = %t.username, "the API refused the cursor the backfill stopped at; the next run pages again from the lookback's end: {e}");
                        progress.drop_cursor();
                    } else {
                        let (what, name) = (PageOf::Backfill, &t.username);
                        PageFailed {
                            what,
                            name,
                            page,
                            error: &e,
                        }
                        .emit();
                    }
                    return;
                }
            };
            first = false;
            report.pages += 1;
            report.posts += records.len() as u64;
            progress.record_page(paging.oldest, paging.after.as_deref(), records.len() as u64);
            self.keep_page(&records, page, sink).await;
            next = walk.next(paging.oldest, paging.after.as_deref());
        }
    }
}

/// Where the backfill of an account not complete since `since` starts: the cursor it stored
/// (resumed), or the one the lookback stopped at (its older posts on that page are counted),
/// or nowhere (the account has no older posts, or the lookback stopped short).
fn backfill_start(
    p: &mut Progress,
    lookback_since: DateTime<Utc>,
    stop: Stop,
    since: DateTime<Utc>,
    back: &mut backfill::Report,
) -> Option<(String, bool)> {
    match (p.resume_from(lookback_since), stop) {
        (Some(c), _) => Some((c.to_string(), true)),
        (
            None,
            Stop::Window {
                oldest,
                after,
                older_posts,
            },
        ) => {
            p.record_page(oldest, after.as_deref(), older_posts);
            back.posts += older_posts;
            after.filter(|_| !p.complete(since)).map(|c| (c, false))
        }
        (None, Stop::NoMore) => {
            p.mark_no_more();
            None
        }
        (None, Stop::Short) => None,
    }
}

/// The backfill pages an account may take: from the run's booked pages, at most `most`.
struct Budget<'a> {
    pages: &'a Pages,
    most: u64,
}

/// Where an account's pages go: the run's media fragment of the account, the ids already in
/// it, the counts, and the results of writing captures.
pub(super) struct PageSink<'a> {
    pub media: &'a mut Fragment,
    pub seen: &'a mut HashSet<String>,
    pub tally: &'a mut Tally,
    pub captured: &'a mut Vec<Result<Option<Written>, SinkError>>,
}

/// A media record's time, when readable.
fn record_time(record: &Record) -> Option<DateTime<Utc>> {
    record
        .get(Kind::Media.time_field()?)
        .and_then(serde_json::Value::as_str)
        .and_then(crate::validate::parse_timestamp)
        .map(|t| t.with_timezone(&Utc))
}

/// A media record's id, for the lookback's deduplication.
pub(super) fn media_id(record: &Record) -> Option<String> {
    record
        .get(Kind::Media.id_field())
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}
