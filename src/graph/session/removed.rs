//! The fields the API version no longer has: those earlier runs found, those this run's calls
//! are refused, and the call that leaves them out and asks again (`call_fields`).

use serde_json::Value;

use super::{Need, Session};
use crate::graph::error::{ErrorKind, GraphError};
use crate::graph::fields::{removed_field, Endpoint, FieldRef, Omitted, Removed};
use crate::graph::http::{LiveClient, Request};
use crate::validate::Rules;

impl Session<'_> {
    /// Leaves `fields` out of every request from now on: what earlier runs found the API
    /// version no longer has, so this run's first calls do not trip over them again.
    pub fn omit(&self, fields: &Omitted) {
        if let Ok(mut o) = self.omitted.lock() {
            for f in fields.iter() {
                o.insert(*f);
            }
        }
    }

    /// The fields requests leave out now: found removed by earlier runs or by this one.
    pub fn omitted(&self) -> Omitted {
        self.omitted.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The fields the API refused this run (code 100, "nonexisting field"), in the order
    /// refused: those left out since, and a records' id that failed its call.
    pub fn refused_this_run(&self) -> Vec<FieldRef> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// `base` with the fields requests leave out: validation counts a record lacking one as
    /// `removed_by_api`, not as an ordinary missing field.
    pub fn rules(&self, base: &Rules) -> Rules {
        let mut rules = base.clone();
        rules.removed_by_api = self.omitted().by_kind();
        rules
    }

    /// Records that the API no longer has `field`; every later request leaves it out unless it
    /// is an id. Said once per field and run.
    fn note_refused(&self, field: FieldRef) {
        let first = self.refused.lock().is_ok_and(|mut r| {
            let first = !r.contains(&field);
            if first {
                r.push(field);
            }
            first
        });
        if let Ok(mut o) = self.omitted.lock() {
            o.insert(field);
        }
        if first && !field.is_identity() {
            tracing::warn!(
                api_version = %self.settings.api_version,
                endpoint = field.endpoint().name(),
                field = %field.qualified(),
                "the Graph API version no longer has this field (code 100, nonexisting field): it is left out of the requests and written as its default (removed_by_api); check Meta's changelog, run `ig-collector check-api` (with --api-version to try another version), then update graph.api_version or the fields"
            );
        }
    }

    /// A call whose `fields=` comes from the record tables, through [`Session::call`]: when the
    /// API answers that the version no longer has a field the request named (code 100,
    /// "nonexisting field") and the records can do without it, the field is left out from then
    /// on and the call made again, once per field removed. Each call goes through the one call
    /// path, so it is counted and booked like any other and stops when the run's calls are
    /// spent; there are never more of them than fields the request could leave out. A request
    /// that loses the records' id fails with [`ErrorKind::IdRemoved`]; any other error is
    /// returned as it came.
    pub(super) async fn call_fields(
        &self,
        endpoint: Endpoint,
        lane: usize,
        c: &LiveClient,
        request: impl Fn(&Omitted) -> Request,
        need: Need,
        capture: String,
    ) -> Result<Value, GraphError> {
        let mut omitted = self.omitted();
        let bound = omitted.droppable_left(endpoint);
        let mut calls_again = 0;
        loop {
            let err = match self
                .call(lane, c, request(&omitted), need, Some(capture.clone()))
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // Judged against what this request asked for: a concurrent call may have found the
            // same field removed meanwhile.
            match removed_field(endpoint, &omitted, err.code, &err.message) {
                Some(Removed::Droppable(field)) if calls_again < bound => {
                    self.note_refused(field);
                    omitted = self.omitted();
                    calls_again += 1;
                }
                Some(Removed::Identity(field)) => {
                    self.note_refused(field);
                    return Err(GraphError {
                        kind: ErrorKind::IdRemoved,
                        message: format!(
                            "Graph API {} no longer has `{}` on {} ({}): without the records' id nothing can be written; check Meta's changelog and run `ig-collector check-api --api-version …` to find a version that has it, then update graph.api_version",
                            self.settings.api_version,
                            field.qualified(),
                            endpoint.name(),
                            err.message
                        ),
                        ..err
                    });
                }
                _ => return Err(err),
            }
        }
    }
}
