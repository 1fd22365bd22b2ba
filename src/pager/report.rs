//! What a run reports: why each hashtag was or was not polled ([`Due`]), its part of the run
//! ([`TagReport`]), and what the run ends with ([`Outcome`]).

use serde::Serialize;

use super::lane::LaneUse;
use crate::state::{Spend, TagState};

/// Why a hashtag was or was not polled this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// Never polled (or no state): one page, and the frontier starts at its newest post.
    First,
    /// An earlier poll stopped before its frontier.
    Behind,
    /// Its interval has passed.
    Interval,
    /// Not due yet, polled sooner with calls the hour can spare (`fresh_delay`): its posts
    /// arrive sooner. Never with calls a due hashtag needs.
    Fresh,
    /// Not yet: polled again at `next_due`.
    NotDue,
}

/// One hashtag's part of the run, for the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagReport {
    pub due: Due,
    pub pages: u32,
    /// Posts not seen by an earlier run.
    pub new_posts: usize,
    /// Whether the poll reached the frontier (or the end of the list).
    pub caught_up: bool,
    /// Posts estimated still to fetch: the gap a cut-short poll left, or everything since the
    /// frontier when a due hashtag waited for budget.
    pub posts_behind: u64,
    /// Posts estimated lost: the part of a gap that aged out of the API's 24 hours.
    pub posts_given_up: u64,
    /// That gap: a post timestamped from `given_up_from` up to `given_up_to` (API timestamps)
    /// and not written by then was not fetched and no longer can be. It starts `late_window`
    /// before the frontier, where the sweep for posts listed late would have looked. The count
    /// above is an estimate from the hashtag's rate; the times are what an analyst can rely on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_up_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_up_to: Option<String>,
    /// Pages the budget refused this hashtag this run.
    pub pages_refused: u32,
    pub rate_per_hour: f64,
    /// When it is next due (RFC 3339), at the latest.
    pub next_due: Option<String>,
}

/// What a run ends with.
#[derive(Debug)]
pub struct Outcome {
    /// The new state of each polled or reported hashtag, by tag index.
    pub states: Vec<TagState>,
    pub reports: Vec<TagReport>,
    /// The calls to book in the ledger.
    pub spends: Vec<Spend>,
    /// Per credential: the allowance this run had, and what it spent.
    pub budget: Vec<LaneUse>,
}
