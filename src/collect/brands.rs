//! The brands job's fetching: `business_discovery` per account, concurrently and bounded. Each
//! answer is flattened as it arrives and dropped: its records are rendered into the run's data
//! objects (`output::Output`) and its raw body is written to the capture at once
//! (`persist::CaptureTo`), so memory does not grow with the number of accounts. A failing
//! account is a [`FailedTarget`]; the others go on.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use super::output::Output;
use super::persist::CaptureTo;
use super::run::Collected;
use super::{App, FailedTarget, Job};
use crate::graph::{replay, shapes, GraphError, Session};
use crate::records::{Fragment, Kind, Record};
use crate::sink::{SinkError, Written};
use crate::validate::Tally;

/// One account's answer, flattened and rendered.
struct Answer {
    brand: Fragment,
    media: Fragment,
    /// What writing its capture did: `None` when the run keeps no capture.
    captured: Result<Option<Written>, SinkError>,
}

pub(super) async fn collect(
    app: &App,
    session: &Session<'_>,
    scheduled: DateTime<Utc>,
    until: Option<Instant>,
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
                drop(body);
                let brand = fragment(format, &batch.brand);
                let media = fragment(format, &batch.media);
                drop(batch);
                // Only an answer that yielded records is captured now; the others stay with the
                // session and are written after the data, so a run that collected nothing
                // writes nothing.
                let collected = !(brand.is_empty() && media.is_empty());
                let captured = match collected
                    .then(|| session.take_capture(&replay::brand_path(&t.username)))
                    .flatten()
                {
                    Some(file) => capture.put(&file).await,
                    None => Ok(None),
                };
                Ok::<_, GraphError>(Answer {
                    brand,
                    media,
                    captured,
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
        let streamed = &mut out.streamed;
        streamed.note_capture(answer.captured);
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

fn fragment(format: crate::records::Format, records: &[Record]) -> Fragment {
    let mut f = Fragment::new(format);
    records.iter().for_each(|r| f.push(r));
    f
}
