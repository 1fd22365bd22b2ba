//! What a run tells about itself: one small struct per thing that happens, whose `emit` is the
//! one place that logs it and counts it in the run's summary. Call sites say *what* happened;
//! the wording, the level and the fields of the log line, and the figure it moves, are here.
//! Labels are low-cardinality (kinds, codes); no event says "dropped" for work a later run
//! does again.

use super::{FailedTarget, RunSummary};
use crate::graph::GraphError;
use crate::pager::TagReport;
use crate::records::Kind;

/// A data object written: created, or merged into an earlier delivery's.
pub(super) struct ObjectWritten {
    pub kind: Kind,
    pub location: String,
    pub records: usize,
    pub merged: bool,
}

impl ObjectWritten {
    pub fn emit(self, summary: &mut RunSummary) {
        let (kind, location, records) = (self.kind.name(), &self.location, self.records);
        if self.merged {
            tracing::info!(kind, %location, records, "object written, merged with an earlier delivery's");
            summary.merged_with_earlier.push(self.location.clone());
        } else {
            tracing::info!(kind, %location, records, "object written");
        }
        summary.keys_written.push(self.location);
    }
}

/// A conditional write found another run's newer object: ours is merged into it and written
/// again.
pub(super) struct WriteConflict {
    pub location: String,
    /// Whether ours was already merged into a version read (else it was a first write).
    pub after_read: bool,
}

impl WriteConflict {
    pub fn emit(self, summary: &mut RunSummary) {
        summary.write_conflicts += 1;
        if self.after_read {
            tracing::info!(location = %self.location, "the object changed since it was read (an overlapping run): merging and writing again");
        }
    }
}

/// The run's raw responses captured (those not written while collecting).
pub(super) struct CaptureWritten {
    pub location: String,
    pub files: usize,
}

impl CaptureWritten {
    pub fn emit(self, summary: &mut RunSummary) {
        let kept = summary.capture_files_kept;
        tracing::info!(location = %self.location, files = self.files, kept, "raw responses captured");
        summary.raw_capture = Some(self.location);
    }
}

/// A target that yielded nothing this run: an account whose first page failed, or a hashtag
/// whose first page failed (one failed target per account tracking it).
pub(super) struct TargetFailed<'a> {
    pub what: TargetOf,
    pub name: &'a str,
    /// The targets it fails, as the summary names them.
    pub targets: Vec<String>,
    pub error: &'a GraphError,
}

impl TargetFailed<'_> {
    pub fn emit(self, failed: &mut Vec<FailedTarget>) {
        let e = self.error;
        let (name, error_kind, code) = (self.name, e.kind.name(), e.code);
        match self.what {
            TargetOf::Hashtag => {
                tracing::warn!(hashtag = %name, error_kind, code = ?code, "hashtag not collected: {e}")
            }
            TargetOf::Account => {
                tracing::warn!(target_name = %name, error_kind, code = ?code, "brand not collected: {e}")
            }
        }
        for target in self.targets {
            let mut f = FailedTarget::new(self.name, e);
            f.target = target;
            failed.push(f);
        }
    }
}

/// What kind of target failed.
pub(super) enum TargetOf {
    Account,
    Hashtag,
}

/// A page past a target's first that was not fetched: what it ends, and what the next run does.
pub(super) struct PageFailed<'a> {
    pub what: PageOf,
    pub name: &'a str,
    pub page: u32,
    pub error: &'a GraphError,
}

/// Which paging a page belonged to.
pub(super) enum PageOf {
    /// A hashtag's poll: the next run pages back to its frontier again.
    Hashtag,
    /// An account's lookback: it ends there, and what it had is written.
    Lookback,
    /// An account's backfill: it goes on from there at the next run.
    Backfill,
}

impl PageFailed<'_> {
    pub fn emit(self) {
        let (name, page, e) = (self.name, self.page, self.error);
        let error_kind = e.kind.name();
        match self.what {
            PageOf::Hashtag => {
                tracing::warn!(hashtag = %name, page, error_kind, "page not fetched: the next run pages back to this hashtag's frontier again: {e}")
            }
            PageOf::Lookback => {
                tracing::warn!(target_name = %name, page, error_kind, "a lookback page was not collected; the account's lookback ends here and what it had is written: {e}")
            }
            PageOf::Backfill => {
                tracing::warn!(target_name = %name, page, error_kind, "a backfill page was not collected; the account's backfill goes on from there at the next run: {e}")
            }
        }
    }
}

/// A hashtag's poll ended short: posts given up (aged out of the API's 24 hours) or behind.
pub(super) struct HashtagShort<'a> {
    pub hashtag: &'a str,
    pub report: &'a TagReport,
    /// Its first page failed (already said as [`TargetFailed`]).
    pub failed: bool,
}

impl HashtagShort<'_> {
    pub fn emit(self) {
        let (tag, report) = (self.hashtag, self.report);
        if let (Some(from), Some(to)) = (&report.given_up_from, &report.given_up_to) {
            tracing::error!(hashtag = %tag, posts_given_up = report.posts_given_up, given_up_from = %from, given_up_to = %to, "posts aged out of the API's 24 hours before the budget reached them: raise budget.calls_per_hour_per_credential, add a credential, or lower other hashtags' hashtag_priority");
        } else if report.posts_behind > 0 && !self.failed {
            tracing::warn!(hashtag = %tag, posts_behind = report.posts_behind, due = ?report.due, "hashtag behind: the budget or the run's time ran out before its frontier; the next runs catch up (posts stay fetchable for 24 h)");
        }
    }
}

/// A credential's token the API rejected (code 190): its targets were not collected.
pub(super) struct TokenRejected<'a> {
    pub ig_user_id: &'a str,
    pub error: &'a GraphError,
}

impl TokenRejected<'_> {
    pub fn emit(self) {
        let e = self.error;
        tracing::error!(
            severity = "CRITICAL", ig_user_id = self.ig_user_id, code = ?e.code, subcode = ?e.subcode,
            "the access token was rejected: {}. Its targets were not collected. Create a new long-lived (or system user) token and update the secret",
            e.token_reason()
        );
    }
}
