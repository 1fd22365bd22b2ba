//! The stop switches: a rejected token stops its credential's calls, a throttled API the calls
//! it throttles, so that a dead token or a throttled API is not hammered by the remaining
//! targets.

use std::sync::atomic::Ordering;

use super::{Scope, Session};
use crate::graph::error::{ErrorKind, GraphError};

impl Session<'_> {
    /// Lanes whose token was rejected, with the error.
    pub fn rejected_tokens(&self) -> Vec<(usize, GraphError)> {
        let stops = self.stops.lock().map(|s| s.clone()).unwrap_or_default();
        stops
            .into_iter()
            .filter_map(|(scope, e)| match scope {
                Scope::Lane(l) if e.kind == ErrorKind::Token => Some((l, e)),
                _ => None,
            })
            .collect()
    }

    /// True when every lane's token was rejected: nothing this run can succeed.
    pub fn all_tokens_rejected(&self) -> bool {
        let rejected = self.rejected_tokens();
        !rejected.is_empty()
            && (0..self.source.lanes()).all(|l| rejected.iter().any(|(r, _)| *r == l))
    }

    pub(super) fn stopped_for(&self, lane: usize) -> Option<GraphError> {
        if !self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let stops = self.stops.lock().ok()?;
        stops
            .iter()
            .find(|(scope, _)| *scope == Scope::All || *scope == Scope::Lane(lane))
            .map(|(_, e)| GraphError {
                attempts: 0,
                ..e.clone()
            })
    }

    /// A rejected token (190) stops its credential's calls; a throttled app (code 4) stops every
    /// call and a throttled user (17) its credential's, so a throttled API is not hammered by the
    /// remaining targets.
    pub(super) fn maybe_stop(&self, lane: usize, err: &GraphError) {
        let scope = match (err.kind, err.code) {
            (ErrorKind::Token, _) => Scope::Lane(lane),
            (ErrorKind::Throttled, Some(4)) => Scope::All,
            (ErrorKind::Throttled, Some(17)) => Scope::Lane(lane),
            _ => return,
        };
        if let Ok(mut s) = self.stops.lock() {
            if !s.iter().any(|(sc, _)| *sc == scope) {
                s.push((scope, err.clone()));
            }
        }
        self.stopped.store(true, Ordering::Relaxed);
    }
}
