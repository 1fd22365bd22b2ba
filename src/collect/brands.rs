//! The brands job's fetching: `business_discovery` per account, concurrently and bounded,
//! flattened as each answer arrives. A failing account is a [`FailedTarget`]; the others go on.

use futures::stream::{self, StreamExt};

use super::run::Collected;
use super::FailedTarget;
use crate::config::Config;
use crate::graph::{shapes, Session};

pub(super) async fn collect(config: &Config, session: &Session<'_>) -> Collected {
    let mut out = Collected::default();
    let mut answers = stream::iter(config.targets.iter().enumerate())
        .map(|(i, t)| async move { (t, session.business_discovery(i, &t.username).await) })
        .buffered(config.graph.concurrency);
    while let Some((target, result)) = answers.next().await {
        match result
            .and_then(|body| shapes::brand(&body, target, &config.validation, &mut out.tally))
        {
            Ok(batch) => out.batch.append(batch),
            Err(e) => {
                tracing::warn!(target_name = %target.username, error_kind = e.kind.name(), code = ?e.code, "brand not collected: {e}");
                out.failed.push(FailedTarget::new(&target.username, &e));
            }
        }
    }
    out
}
