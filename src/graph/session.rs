//! One run's calls: the endpoints, and the one call path every endpoint goes through.
//!
//! A [`Session`] counts calls, reads usage headers, honours the run deadline, keeps every body
//! for the raw capture, stops further calls once a token is rejected or the API throttles, and
//! scrubs every error before it leaves. Every endpoint, `debug_token` included, goes through
//! `Session::call`, so none can skip the retries, the deadline, the usage reading or the
//! scrub. The endpoints whose `fields=` come from the record tables also leave out the fields
//! the API version no longer has, learning them from its refusals (`call_fields`, with the pure
//! `fields::removed_field` deciding), each call again through the same path. It must not know
//! the wire (that is `http`) nor decide retries itself (that is the pure [`decide`]).
//!
//! This file holds the session's state and what a run reads of it; its parts add the rest, each
//! importing only this file and the graph modules it names:
//! - `endpoints`: the Graph endpoints a run calls;
//! - `call`: the one call path, with its retries (`Session::call`);
//! - `booking`: the requests each lane may still send, and those it sent;
//! - `stops`: the stop switches a rejected token or a throttled API sets;
//! - `removed`: the fields the API version no longer has (`call_fields`);
//! - `capture`: the bodies kept for the raw capture, and the recorded ones a replay reads.
//!
//! [`decide`]: super::retry::decide

mod booking;
mod call;
mod capture;
mod endpoints;
mod removed;
mod stops;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::GraphError;
use super::fields::{FieldRef, Omitted};
use super::http::LiveClient;
use super::replay::Captured;
use super::source::Source;
use super::token::Scrubber;
use crate::config::{GraphSettings, RetryPolicy};

/// Counters of one run's Graph traffic, for the summary and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GraphStats {
    /// HTTP requests sent (or replayed responses read), retries included.
    pub calls: u64,
    pub retries: u64,
    /// Calls answered with a throttling error (a Graph rate-limit code or HTTP 429).
    pub throttled: u64,
    /// The highest usage percentage any response header reported.
    pub max_usage_percent: u32,
    /// Optional calls (extra pages) not made because usage was high.
    pub optional_calls_skipped: u64,
}

/// A call's role: optional calls (extra pages) are the first dropped under high usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// Which calls a stop applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The app is throttled as a whole (code 4): every lane.
    All,
    /// One credential: its token was rejected or its user is throttled (code 17).
    Lane(usize),
}

/// One run's view of a [`Source`]: it counts calls, honours the run deadline, keeps every body
/// for the raw capture, and stops further calls once a token is rejected or the app throttled.
#[derive(Debug)]
pub struct Session<'a> {
    source: &'a Source,
    policy: &'a RetryPolicy,
    settings: &'a GraphSettings,
    deadline: Option<Instant>,
    /// Every secret of every credential, applied to every body and error.
    scrubber: Scrubber,
    stats: Mutex<GraphStats>,
    calls: AtomicU64,
    max_usage: AtomicU32,
    /// The errors that stopped calls, repeated to every later call in their scope.
    stops: Mutex<Vec<(Scope, GraphError)>>,
    stopped: AtomicBool,
    captured: Mutex<Vec<Captured>>,
    /// HTTP requests sent per lane, retries included (the hashtags job books them).
    lane_calls: Mutex<std::collections::BTreeMap<usize, u64>>,
    /// The most requests a lane may still send, retries included, when the run booked its
    /// calls before making them ([`Session::limit_calls`]); no entry: no limit.
    allowance: Mutex<std::collections::BTreeMap<usize, u64>>,
    /// The fields every request leaves out because the API version no longer has them: those
    /// earlier runs found ([`Session::omit`]) and those this run found.
    omitted: Mutex<Omitted>,
    /// The fields the API refused this run (code 100, "nonexisting field"), ids included, in the
    /// order refused.
    refused: Mutex<Vec<FieldRef>>,
}

impl Source {
    /// Starts a run over this source: its counters, its deadline and its stop switches. Here
    /// rather than in `source`, so that a source knows nothing of the runs made over it.
    pub fn session<'a>(
        &'a self,
        policy: &'a RetryPolicy,
        settings: &'a GraphSettings,
        deadline: Option<Instant>,
    ) -> Session<'a> {
        Session::new(self, policy, settings, deadline)
    }
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        source: &'a Source,
        policy: &'a RetryPolicy,
        settings: &'a GraphSettings,
        deadline: Option<Instant>,
    ) -> Session<'a> {
        Session {
            source,
            policy,
            settings,
            deadline,
            scrubber: source.scrubber(),
            stats: Mutex::new(GraphStats::default()),
            calls: AtomicU64::new(0),
            max_usage: AtomicU32::new(0),
            stops: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            captured: Mutex::new(Vec::new()),
            lane_calls: Mutex::new(std::collections::BTreeMap::new()),
            allowance: Mutex::new(std::collections::BTreeMap::new()),
            omitted: Mutex::new(Omitted::default()),
            refused: Mutex::new(Vec::new()),
        }
    }
}

impl Session<'_> {
    /// The Graph traffic of this run so far.
    pub fn stats(&self) -> GraphStats {
        let mut s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.calls = self.calls.load(Ordering::Relaxed);
        s.max_usage_percent = self.max_usage.load(Ordering::Relaxed);
        s
    }

    /// True when usage headers report at least the configured threshold.
    pub fn usage_is_high(&self) -> bool {
        self.max_usage.load(Ordering::Relaxed) >= self.policy.usage_threshold_percent
    }

    /// Time left before the run deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(super) fn client(&self, lane: usize) -> Option<(usize, &LiveClient)> {
        match self.source {
            Source::Live(c) if !c.is_empty() => Some((lane % c.len(), &c[lane % c.len()])),
            _ => None,
        }
    }

    /// True when responses come from recorded files.
    pub fn is_replay(&self) -> bool {
        matches!(self.source, Source::Replay(_))
    }

    /// How many credentials (lanes) the run has.
    pub fn lanes(&self) -> usize {
        self.source.lanes()
    }

    /// The account a lane's calls are made as (for messages).
    pub fn lane_user(&self, lane: usize) -> Option<&str> {
        self.client(lane)
            .map(|(_, c)| c.credentials.ig_user_id.as_str())
    }
}
