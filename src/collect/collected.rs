//! What a run holds between its calls and its writes: what the jobs collected, what the brands
//! job already streamed, and the run as the ledger knows it.

use std::collections::BTreeMap;
use std::time::Instant;

use super::output::Output;
use super::{FailedTarget, Job, RunSummary};
use crate::graph::Captured;
use crate::records::{Batch, Kind};
use crate::sink::{SinkError, Written};
use crate::state::CallSpan;
use crate::validate::Tally;

/// What fetching and flattening produced, before anything is written.
#[derive(Default)]
pub(super) struct Collected {
    pub batch: Batch,
    /// What the brands job rendered and captured as the answers arrived.
    pub streamed: Streamed,
    pub tally: Tally,
    pub failed: Vec<FailedTarget>,
    pub resolved: BTreeMap<String, String>,
    /// Pages fetched per hashtag.
    pub pages: BTreeMap<String, u32>,
    /// What the brands job's lookback fetched (`brands.lookback_days`).
    pub lookback: crate::lookback::Report,
    /// What the brands job's backfill fetched (`brands.backfill_days`).
    pub backfill: crate::backfill::Report,
    /// Where each account's backfill stands after the run, to write with the state.
    pub progress: BTreeMap<String, crate::backfill::Progress>,
}

impl Collected {
    /// Records collected of `kind`.
    fn count(&self, kind: Kind) -> usize {
        let streamed = self.streamed.outputs.get(&kind).map_or(0, |o| o.count());
        self.batch.get(kind).len() + streamed
    }

    /// Puts its figures in the summary (records per kind of `job`, counts, failed targets,
    /// resolved ids, pages); returns what is left to write: the objects, and where each
    /// account's backfill stands.
    pub(super) fn into_summary(
        self,
        job: Job,
        summary: &mut RunSummary,
    ) -> (Objects, BTreeMap<String, crate::backfill::Progress>) {
        summary.records = job.kinds().iter().map(|k| (*k, self.count(*k))).collect();
        summary.dropped_total = self.tally.dropped_total();
        summary.dropped = self.tally.dropped_rows();
        summary.defaulted_total = self.tally.defaulted_total();
        summary.defaulted = self.tally.defaulted_rows();
        summary.failed_targets = self.failed;
        summary.resolved_hashtag_ids = self.resolved;
        summary.hashtag_pages = self.pages;
        let objects = Objects {
            batch: self.batch,
            streamed: self.streamed,
            captured: Vec::new(),
        };
        (objects, self.progress)
    }
}

/// The objects a run writes: the records of the jobs that batch them, what the brands job
/// streamed, and the raw bodies not yet captured.
pub(super) struct Objects {
    pub batch: Batch,
    pub streamed: Streamed,
    pub captured: Vec<Captured>,
}

/// What a streaming job wrote, or began to write, while it collected.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// The data objects so far, per kind.
    pub outputs: BTreeMap<Kind, Output>,
    /// Capture files written while collecting.
    pub capture_written: u32,
    /// Of those, the files an earlier delivery had written (kept, not replaced).
    pub capture_kept: u32,
    /// The first capture write that failed while collecting. The run still writes its data
    /// objects (what was collected is kept), then fails with it, so Lambda's retry writes again.
    pub failed: Option<SinkError>,
}

impl Streamed {
    /// Counts a capture file written while collecting; the first failure is kept, and fails the
    /// run after its data is written.
    pub(super) fn note_capture(&mut self, written: Result<Option<Written>, SinkError>) {
        match written {
            Ok(None) => {}
            Ok(Some(written)) => {
                self.capture_written += 1;
                if written == Written::Conflict {
                    self.capture_kept += 1;
                }
            }
            Err(e) => {
                tracing::error!(location = %e.location, "raw capture not written: {e}");
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// A run as the ledger knows it: its id, when its calls are made, and since when it has run.
pub(super) struct ThisRun {
    pub id: String,
    /// From the start of its calls to its deadline ([`CallSpan::of_run`]).
    pub calls: CallSpan,
    pub started: Instant,
}

impl ThisRun {
    /// How long the run has taken so far.
    pub fn took(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// When a run must stop. Graph calls stop at `calls`, early enough that what was collected can
/// still be written; every S3 call ends by `writes` at the latest, so the invocation answers with
/// its summary (and a clear error if S3 stalled) before Lambda would kill it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    pub calls: Option<Instant>,
    pub writes: Option<Instant>,
}
