//! The brands job's fetching: `business_discovery` per account, concurrently and bounded. Each
//! answer is flattened as it arrives and dropped: its records are rendered into the run's data
//! objects (`output::Output`) and its raw body is written to the capture at once
//! (`persist::CaptureTo`), so memory does not grow with the number of accounts. A failing
//! account is a [`FailedTarget`]; the others go on. Past its first page, an account's history
//! (lookback and backfill) is `history`'s.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use super::collected::Collected;
use super::events::{TargetFailed, TargetOf};
use super::history::{account_key, media_id, Account, History, PageSink, Pages};
use super::output::Output;
use super::persist::CaptureTo;
use super::{App, Job};
use crate::backfill::{self, Progress};
use crate::config::Target;
use crate::graph::{replay, shapes, GraphError, Session};
use crate::lookback;
use crate::records::{Fragment, Kind, Record};
use crate::sink::{SinkError, Written};
use crate::validate::Tally;

/// One account's answer, flattened and rendered.
struct AccountAnswer {
    brand: Fragment,
    media: Fragment,
    /// What writing its captures did (its first page, then its lookback's): `None` when the
    /// run keeps no capture.
    captured: Vec<Result<Option<Written>, SinkError>>,
    lookback: lookback::Report,
    backfill: backfill::Report,
    /// Where its backfill stands after this run (`None`: no backfill to do).
    progress: Option<Progress>,
}

/// Fetches every account of the run, `graph.concurrency` at a time, and joins their answers in
/// configuration order.
pub(super) async fn collect(
    app: &App,
    targets: &[usize],
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    until: Option<Instant>,
    pages: &Pages,
    history: &History<'_>,
) -> Collected {
    let capture = CaptureTo::new(app, Job::Brands, scheduled, session.is_replay(), until);
    let mut out = Collected::default();
    for kind in Job::Brands.kinds() {
        out.streamed
            .outputs
            .insert(*kind, Output::new(app.config.output.format));
    }
    let fetch = Fetch {
        app,
        session,
        scheduled,
        capture: &capture,
        pages,
        history,
    };
    let fetch = &fetch;
    // `buffered` hands the answers back in target order, so the objects list the accounts in
    // configuration order whatever order the calls end in; at most `concurrency` answers wait.
    let accounts = targets.iter().filter_map(|&i| app.config.targets.get(i));
    let mut answers = stream::iter(accounts.enumerate())
        .map(|(i, t)| async move {
            let mut tally = Tally::default();
            let answer = fetch.account(i, t, &mut tally).await;
            (t, tally, answer)
        })
        .buffered(app.config.graph.concurrency);
    while let Some((target, tally, answer)) = answers.next().await {
        out.tally.merge(&tally);
        match answer {
            Ok(answer) => absorb(&mut out, target, answer, history),
            Err(error) => TargetFailed {
                what: TargetOf::Account,
                name: &target.username,
                targets: vec![target.username.clone()],
                error: &error,
            }
            .emit(&mut out.failed),
        }
    }
    out
}

/// What every account's fetch shares.
struct Fetch<'a, 's> {
    app: &'a App,
    session: &'a Session<'s>,
    scheduled: DateTime<Utc>,
    capture: &'a CaptureTo<'a>,
    pages: &'a Pages,
    history: &'a History<'a>,
}

impl Fetch<'_, '_> {
    /// Account `i`'s first page, flattened and rendered, then its history.
    async fn account(
        &self,
        i: usize,
        t: &Target,
        tally: &mut Tally,
    ) -> Result<AccountAnswer, GraphError> {
        let (config, session) = (&self.app.config, self.session);
        let format = config.output.format;
        let body = session.business_discovery(i, &t.username).await?;
        // Taken after the call: it knows the fields the call found removed.
        let rules = session.rules(&config.validation);
        let batch = shapes::brand(&body, t, &rules, tally)?;
        let paging = shapes::media_paging(&body);
        drop(body);
        let brand = fragment(format, &batch.brand);
        let mut media = fragment(format, &batch.media);
        let mut seen: HashSet<String> = batch.media.iter().filter_map(media_id).collect();
        drop(batch);
        // Only an answer that yielded records is captured now; the others stay with the
        // session and are written after the data, so a run that collected nothing writes
        // nothing.
        let collected = !(brand.is_empty() && media.is_empty());
        let mut captured = Vec::new();
        if let Some(file) = collected
            .then(|| session.take_capture(&replay::brand_path(&t.username)))
            .flatten()
        {
            captured.push(self.capture.put(&file).await);
        }
        let account = Account {
            session,
            target: t,
            index: i,
            rules: &config.validation,
            capture: self.capture,
        };
        let mut sink = PageSink {
            media: &mut media,
            seen: &mut seen,
            tally,
            captured: &mut captured,
        };
        let (lookback, backfill, progress) = account
            .history(
                self.scheduled,
                &config.brands,
                paging,
                self.pages,
                self.history,
                &mut sink,
            )
            .await;
        Ok(AccountAnswer {
            brand,
            media,
            captured,
            lookback,
            backfill,
            progress,
        })
    }
}

/// Adds an account's answer to the run: its reports, its progress, its captures' results and
/// its records, joined to the data objects.
fn absorb(out: &mut Collected, target: &Target, answer: AccountAnswer, history: &History<'_>) {
    out.lookback.add(&answer.lookback);
    out.backfill.pages += answer.backfill.pages;
    out.backfill.posts += answer.backfill.posts;
    out.backfill.pages_failed += answer.backfill.pages_failed;
    if let (Some(p), Some(since)) = (answer.progress, history.since) {
        let key = account_key(target);
        let moved = history.progress.get(&key) != Some(&p);
        out.backfill.account(&target.username, &p, since, moved);
        out.progress.insert(key, p);
    }
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

fn fragment(format: crate::records::Format, records: &[Record]) -> Fragment {
    let mut f = Fragment::new(format);
    records.iter().for_each(|r| f.push(r));
    f
}
