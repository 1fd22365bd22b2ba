//! What the hashtags job remembers between runs: per hashtag, its resolved id, the newest post
//! time seen (the watermark) and the ids seen near it. **Pure: no IO.**
//!
//! `recent_media` is not strictly ordered by time and repeats posts across runs, so a post is
//! recognised by its id; the timestamp only bounds how long ids are kept and tells whether a page
//! still reaches into time not covered yet.
//!
//! The state only moves forward. Two runs that read the same state (an overlap, a redelivery)
//! each advance it, and the second to write [`State::merge`]s its result into what the first
//! wrote: known ids are united, the watermark and `as_of` take the later value. So a run of an
//! older scheduled time arriving late can add what it saw but never takes anything back.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{is_digits, parse_timestamp};

/// The most ids kept per hashtag, newest first; bounds the state object's size (a hashtag
/// catching up on a backlog keeps the ids down to its frontier).
pub const MAX_KNOWN_IDS: usize = 10_000;

/// The most ids kept in the whole state, every hashtag together: bounds the object's size and
/// a run's memory (the state is read, advanced and written once per run; at this bound it is
/// about 5 MB as JSON and a few MB in memory). Past it, the hashtags holding the most ids forget
/// their oldest first: a forgotten id can only make a post be written twice, never lost.
pub const MAX_STATE_IDS: usize = 60_000;

/// The largest state object read; a larger one cannot have been written by this program (see
/// [`MAX_STATE_IDS`]) and is set aside as unreadable.
pub const MAX_STATE_BYTES: usize = 16 << 20;

/// The name the brands job books its calls under, after the credential's id
/// (`{ig_user_id}/brands`): both jobs share each credential's hourly allowance in one ledger.
pub const BRANDS: &str = "brands";

/// The most calls one ledger entry may book; a larger number is a broken value.
const MAX_SPEND: u64 = 1_000_000;

/// The ledger's name for every credential: an entry booked under it counts on each
/// ([`State::assume_hour_spent`]).
pub const EVERY_CREDENTIAL: &str = "*";

/// How long ledger entries are kept: the budget looks an hour back (and an hour ahead, for a
/// late delivery of an older time).
const LEDGER_KEEP: chrono::Duration = chrono::Duration::hours(2);

/// How far past the scheduled time a post timestamp may be and still move the watermark.
/// Clocks differ a little; a post "from tomorrow" (or year 9999) is a broken value, and as a
/// watermark it would make every real post look old and turn extra pages off.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// The highest believable post rate of one hashtag (per hour); a larger stored value is broken.
pub const MAX_RATE_PER_HOUR: f64 = 1_000_000.0;

/// The state object (`state/hashtags.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The latest scheduled time (RFC 3339, UTC) whose run wrote into this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub hashtags: BTreeMap<String, TagState>,
    /// Graph calls booked per run and credential, for the hourly budget (`pager`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<Spend>,
    /// When an unreadable state was replaced (RFC 3339): the frontiers it held are lost, so a
    /// hashtag with no entry is not taken for a new one (one page) while that is within the
    /// API's 24 hours; it pages back through them (`pager`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
    /// Per account (username, lower case): where its history's backfill stands
    /// (`brands.backfill_days`). Written by the brands job after its data object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brands: BTreeMap<String, crate::backfill::Progress>,
}

/// The calls one run made on one credential, booked over the time its calls are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// When the run's calls began (RFC 3339, UTC): its scheduled time, or the clock's time
    /// for a run delivered late ([`CallSpan`]).
    pub at: String,
    /// When its calls ended, or will have ended at the latest (a reservation: the run's
    /// deadline). Absent: at `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The run's id: two deliveries of one scheduled time are two runs.
    pub run: String,
    /// The credential (its Instagram user id, then `/{part}` for a shard), never a token.
    pub lane: String,
    pub calls: u64,
    /// Booked before the run's first call: the most the run may spend. A run that never writes
    /// its final state (a crash, a timeout, a failed write) leaves this; its final entry (same
    /// time, run and credential) replaces it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reserved: bool,
}

impl Spend {
    /// What `run` books on `lane` over `span`.
    pub fn new(span: CallSpan, run: &str, lane: String, calls: u64, reserved: bool) -> Spend {
        Spend {
            at: span.from.to_rfc3339_opts(SecondsFormat::Secs, true),
            until: (span.to > span.from)
                .then(|| span.to.to_rfc3339_opts(SecondsFormat::Secs, true)),
            run: run.to_string(),
            lane,
            calls,
            reserved,
        }
    }

    fn span(&self) -> Option<CallSpan> {
        let from = rfc3339(&self.at)?;
        // A span longer than any run can call is a broken value: it would hold the budget
        // for as long as it says.
        let to = match &self.until {
            Some(t) => rfc3339(t)?.clamp(from, from + MAX_CALL_SPAN),
            None => from,
        };
        Some(CallSpan { from, to })
    }
}

fn rfc3339(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The longest a run's calls can span (a Lambda function calls for 15 minutes at most; a CLI
/// run is bounded by its own deadline or, without one, by its booking's calls).
const MAX_CALL_SPAN: chrono::Duration = chrono::Duration::hours(6);

/// How late a delivery may be and still be booked at the clock's time: a run scheduled longer
/// ago than this is an operator's re-run of a past time (`--at`, a replay of a day), booked at
/// its scheduled time as if on time, so that a day re-run in minutes keeps each hour's budget.
pub const LATE_HORIZON: chrono::Duration = chrono::Duration::hours(24);

/// The time over which a run's Graph calls are made, as the ledger books them.
///
/// A run delivered on time calls from its scheduled time; one delivered late (a redelivery, a
/// retry of the state machine, within [`LATE_HORIZON`]) calls at the clock's time, so it is
/// booked there: a booking at its older scheduled time would miss the 60 minutes its calls
/// really fall in. The span ends at the run's deadline while it runs (the reservation) and at
/// its last call once it has finished. A 60-minute window holds a run's calls when it meets
/// their span, so the ledger counts every run whose calls could share an hour with this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl CallSpan {
    /// A run of `scheduled` starting its calls with the clock at `now`, that may call for `longest`.
    pub fn of_run(
        scheduled: DateTime<Utc>,
        now: DateTime<Utc>,
        longest: chrono::Duration,
    ) -> CallSpan {
        let late = now > scheduled && now - scheduled <= LATE_HORIZON;
        let from = if late { now } else { scheduled };
        CallSpan {
            from,
            to: from + longest.max(chrono::Duration::zero()),
        }
    }

    /// Calls at one instant.
    pub fn at(t: DateTime<Utc>) -> CallSpan {
        CallSpan { from: t, to: t }
    }

    /// The same start, ending `took` after it (a finished run's real span).
    pub fn ended_after(self, took: chrono::Duration) -> CallSpan {
        CallSpan {
            from: self.from,
            to: self.from + took.max(chrono::Duration::zero()),
        }
    }

    /// Whether calls over `self` and over `other` can fall in one 60-minute window (both ends
    /// included).
    fn shares_an_hour_with(&self, other: &CallSpan) -> bool {
        let hour = chrono::Duration::hours(1);
        other.from <= self.to + hour && other.to >= self.from - hour
    }
}

/// One hashtag's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagState {
    /// The id `ig_hashtag_search` returned, so later runs make no search call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtag_id: Option<String>,
    /// The newest post timestamp seen, as the API wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Post id → timestamp of the posts seen within the window behind the watermark (and down
    /// to the frontier while catching up).
    #[serde(default)]
    pub known: BTreeMap<String, String>,
    /// The frontier: every post up to this timestamp (since tracking began, within the API's
    /// 24 hours) has been fetched. A poll pages back until it reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_to: Option<String>,
    /// The oldest post timestamp of the first poll: tracking began there. Older posts were never
    /// in scope, so they are neither written nor taken for late ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_since: Option<String>,
    /// The scheduled time (RFC 3339) of the last run that fetched this hashtag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<String>,
    /// Estimated new posts per hour, from what the polls found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_hour: Option<f64>,
    /// The last poll stopped before reaching the frontier (budget, error, deadline): the posts
    /// between are still to fetch, so the hashtag is due at the next run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub behind: bool,
}

fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    parse_timestamp(s)
}

fn window_floor(watermark: Option<&str>, window: Duration) -> Option<DateTime<FixedOffset>> {
    let mark = watermark.and_then(parse_ts)?;
    let window = chrono::Duration::from_std(window).ok()?;
    mark.checked_sub_signed(window)
}

impl State {
    /// Parses the stored state. Entries that could not have been written by this program (a
    /// hashtag id or post id that is not all digits, an unreadable timestamp) are left out and
    /// described, so a damaged or hostile state cannot steer a request or a comparison.
    pub fn parse(bytes: &[u8]) -> Result<(State, Vec<String>), String> {
        if bytes.len() > MAX_STATE_BYTES {
            return Err(format!(
                "unreadable state: {} bytes, more than this program ever writes ({MAX_STATE_BYTES})",
                bytes.len()
            ));
        }
        let mut state =
            serde_json::from_slice::<State>(bytes).map_err(|e| format!("unreadable state: {e}"))?;
        let mut notes = Vec::new();
        if state
            .as_of
            .as_deref()
            .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_err())
        {
            notes.push("as_of is not an RFC 3339 time: ignored".to_string());
            state.as_of = None;
        }
        for (tag, t) in state.hashtags.iter_mut() {
            if t.hashtag_id.as_deref().is_some_and(|id| !is_digits(id)) {
                notes.push(format!(
                    "#{tag}: hashtag_id is not numeric: ignored, resolved again"
                ));
                t.hashtag_id = None;
            }
            // A time that does not parse is dropped with a note; the run then starts without it.
            let graph_ts = |w: &str| parse_ts(w).is_some();
            let rfc3339 = |w: &str| DateTime::parse_from_rfc3339(w).is_ok();
            for (field, readable, what) in [
                (
                    &mut t.watermark,
                    &graph_ts as &dyn Fn(&str) -> bool,
                    "watermark",
                ),
                (&mut t.complete_to, &graph_ts, "frontier"),
                (&mut t.tracked_since, &graph_ts, "tracked_since"),
                (&mut t.polled_at, &rfc3339, "polled_at"),
            ] {
                if field.as_deref().is_some_and(|w| !readable(w)) {
                    notes.push(format!("#{tag}: unreadable {what}: ignored"));
                    *field = None;
                }
            }
            if t.rate_per_hour
                .is_some_and(|r| !(r.is_finite() && (0.0..=MAX_RATE_PER_HOUR).contains(&r)))
            {
                notes.push(format!("#{tag}: implausible rate_per_hour: ignored"));
                t.rate_per_hour = None;
            }
            let before = t.known.len();
            t.known
                .retain(|id, ts| is_digits(id) && parse_ts(ts).is_some());
            if t.known.len() < before {
                notes.push(format!(
                    "#{tag}: {} unreadable known ids ignored",
                    before - t.known.len()
                ));
            }
        }
        let before = state.ledger.len();
        state.ledger.retain(|e| {
            e.span().is_some()
                && e.calls <= MAX_SPEND
                && e.run.len() <= 64
                && e.lane.len() <= 64
                && !e.lane.chars().any(char::is_control)
        });
        if state.ledger.len() < before {
            notes.push(format!(
                "{} unreadable ledger entries ignored",
                before - state.ledger.len()
            ));
        }
        let forgotten = state.bound();
        if forgotten > 0 {
            notes.push(format!(
                "{forgotten} known ids past the state's bound ({MAX_STATE_IDS}) forgotten"
            ));
        }
        Ok((state, notes))
    }

    /// Forgets what no run could have written by `now`: an `as_of`, a poll or a ledger entry
    /// later than `now` plus [`MAX_CLOCK_SKEW`] (an operator's `--at` typo, a clock gone wrong).
    /// Kept, such a time would make every later run take its hashtags for polled and make no
    /// call. Returns what was forgotten, for the run's notes.
    pub fn forget_future(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let Some(limit) = chrono::Duration::from_std(MAX_CLOCK_SKEW)
            .ok()
            .and_then(|skew| now.checked_add_signed(skew))
        else {
            return Vec::new();
        };
        let future = |t: Option<&str>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) > limit)
        };
        let graph_future = |t: Option<&str>| {
            t.and_then(parse_ts)
                .is_some_and(|t| t.with_timezone(&Utc) > limit)
        };
        let mut notes = Vec::new();
        if future(self.as_of.as_deref()) {
            notes.push("as_of is in the future: ignored".to_string());
            self.as_of = None;
        }
        if future(self.reset_at.as_deref()) {
            notes.push("reset_at is in the future: ignored".to_string());
            self.reset_at = None;
        }
        for (tag, t) in self.hashtags.iter_mut() {
            if future(t.polled_at.as_deref()) {
                notes.push(format!("#{tag}: polled_at is in the future: polled again"));
                t.polled_at = None;
            }
            for (field, what) in [
                (&mut t.watermark, "watermark"),
                (&mut t.complete_to, "frontier"),
                (&mut t.tracked_since, "tracked_since"),
            ] {
                if graph_future(field.as_deref()) {
                    notes.push(format!("#{tag}: {what} is in the future: ignored"));
                    *field = None;
                }
            }
        }
        let before = self.ledger.len();
        self.ledger.retain(|e| !future(Some(&e.at)));
        if self.ledger.len() < before {
            notes.push(format!(
                "{} ledger entries in the future ignored",
                before - self.ledger.len()
            ));
        }
        notes
    }

    /// Records that tracking of `tag` began at `at`, for a first poll about to be made: its
    /// frontier and `tracked_since` become `at`, so that if the poll never finishes (a crash, a
    /// failed write), the next run pages back to `at` instead of starting again further on and
    /// skipping what was posted in between. A hashtag already tracked is left as it is.
    pub fn mark_tracking_began(&mut self, tag: &str, at: DateTime<Utc>) {
        let t = self.hashtags.entry(tag.to_string()).or_default();
        if t.polled_at.is_none() && t.complete_to.is_none() {
            let stamp = at.format(crate::validate::TIMESTAMP_FORMAT).to_string();
            t.complete_to = Some(stamp.clone());
            t.tracked_since = Some(stamp);
            t.behind = true;
        }
    }

    /// Keeps at most [`MAX_STATE_IDS`] known ids: the hashtag holding the most forgets its
    /// oldest first. Returns how many were forgotten.
    pub fn bound(&mut self) -> usize {
        let total: usize = self.hashtags.values().map(|t| t.known.len()).sum();
        if total <= MAX_STATE_IDS {
            return 0;
        }
        // The largest per-hashtag count `c` such that keeping min(len, c) ids each fits.
        let mut sizes: Vec<usize> = self.hashtags.values().map(|t| t.known.len()).collect();
        sizes.sort_unstable();
        let (mut cap, mut used) = (0, 0);
        for (i, &n) in sizes.iter().enumerate() {
            let rest = sizes.len() - i;
            if used + n * rest > MAX_STATE_IDS {
                cap = (MAX_STATE_IDS - used) / rest;
                break;
            }
            used += n;
            cap = n;
        }
        let mut forgotten = 0;
        for t in self.hashtags.values_mut() {
            if t.known.len() <= cap {
                continue;
            }
            let mut by_age: Vec<(Option<DateTime<FixedOffset>>, String)> = t
                .known
                .iter()
                .map(|(id, ts)| (parse_ts(ts), id.clone()))
                .collect();
            by_age.sort();
            let drop = t.known.len() - cap;
            for (_, id) in by_age.into_iter().take(drop) {
                t.known.remove(&id);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Calls booked on `lane` by runs whose calls can share a 60-minute window with calls over
    /// `span` (see [`CallSpan`]): what was spent in the hour before, and what later runs already
    /// spent when an older scheduled time is run late, so no 60-minute window goes over the budget.
    ///
    /// `lane` is the credential: its shards' entries (`{lane}/{part}`) count too.
    pub fn booked_near(&self, lane: &str, span: CallSpan) -> u64 {
        self.booked_where(span, |e| {
            e.lane == lane
                || e.lane == EVERY_CREDENTIAL
                || e.lane
                    .strip_prefix(lane)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Calls the hashtags job booked on credential `lane` near `span`: its runs' and its
    /// shards' entries, not the brands job's ([`BRANDS`]).
    pub fn booked_by_hashtags(&self, lane: &str, span: CallSpan) -> u64 {
        let brands = format!("{lane}/{BRANDS}");
        self.booked_near(lane, span)
            .saturating_sub(self.booked_exactly(&brands, span))
    }

    /// Calls booked under exactly this name (one shard's) near `span`.
    pub fn booked_exactly(&self, name: &str, span: CallSpan) -> u64 {
        self.booked_where(span, |e| e.lane == name)
    }

    fn booked_where(&self, span: CallSpan, keep: impl Fn(&Spend) -> bool) -> u64 {
        self.ledger
            .iter()
            .filter(|e| keep(e))
            .filter(|e| e.span().is_some_and(|t| t.shares_an_hour_with(&span)))
            .map(|e| e.calls)
            .sum()
    }

    /// After the ledger was lost (an unreadable state replaced), what the hour before `now`
    /// spent is unknown: this books the worst, every credential's whole allowance over that
    /// hour, so that no run in the next hour spends a call that could take a credential past
    /// its allowance. Both jobs wait that hour out; the hashtags job then pages back through
    /// what was listed meanwhile (the API keeps 24 hours).
    pub fn assume_hour_spent(&mut self, now: DateTime<Utc>) {
        let hour = CallSpan {
            from: now - chrono::Duration::hours(1),
            to: now,
        };
        self.ledger.push(Spend::new(
            hour,
            "unknown",
            EVERY_CREDENTIAL.to_string(),
            MAX_SPEND,
            false,
        ));
    }

    /// Books this run's calls, and forgets entries too old to count.
    /// A final entry of no calls is kept only where it replaces the run's reservation.
    pub fn book(&mut self, spends: Vec<Spend>, now: DateTime<Utc>) {
        let reserved = |s: &Spend| {
            self.ledger
                .iter()
                .any(|e| e.reserved && e.at == s.at && e.run == s.run && e.lane == s.lane)
        };
        let kept: Vec<Spend> = spends
            .into_iter()
            .filter(|s| s.calls > 0 || reserved(s))
            .collect();
        self.ledger.extend(kept);
        self.prune_ledger(now);
    }

    fn prune_ledger(&mut self, now: DateTime<Utc>) {
        self.ledger
            .retain(|e| e.span().is_some_and(|t| t.to > now - LEDGER_KEEP));
        self.dedup_ledger();
    }

    /// One entry per (time, run, credential): merging a state with one that shares its past
    /// must not book those runs twice. A run's final entry wins over its reservation.
    fn dedup_ledger(&mut self) {
        self.ledger.sort_by(|a, b| {
            (&a.at, &a.run, &a.lane, a.reserved).cmp(&(&b.at, &b.run, &b.lane, b.reserved))
        });
        self.ledger
            .dedup_by(|a, b| a.run == b.run && a.lane == b.lane && a.at == b.at);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// `as_of` as a time, when readable.
    pub fn as_of_time(&self) -> Option<DateTime<Utc>> {
        self.as_of
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Records that a run scheduled at `scheduled` wrote into the state: `as_of` never goes back.
    pub fn mark_as_of(&mut self, scheduled: DateTime<Utc>) {
        if self.as_of_time().is_none_or(|t| t < scheduled) {
            self.as_of = Some(scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }

    /// This state and another written meanwhile, combined: every hashtag of either, each merged
    /// with [`TagState::merge`], and the later `as_of`.
    pub fn merge(&self, other: &State, window: Duration) -> State {
        let mut out = self.clone();
        if let Some(t) = other.as_of_time() {
            out.mark_as_of(t);
        }
        out.version = self.version.max(other.version);
        out.reset_at = [self.reset_at.as_deref(), other.reset_at.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|p| (p, t)))
            .max_by_key(|(p, _)| *p)
            .map(|(_, t)| t.to_string());
        for (tag, theirs) in &other.hashtags {
            let merged = match self.hashtags.get(tag) {
                Some(mine) => mine.merge(theirs, window),
                None => theirs.clone(),
            };
            out.hashtags.insert(tag.clone(), merged);
        }
        for (account, theirs) in &other.brands {
            let merged = match self.brands.get(account) {
                Some(mine) => mine.merge(theirs),
                None => theirs.clone(),
            };
            out.brands.insert(account.clone(), merged);
        }
        // Each run's spends are its own entries: the union books every run once.
        out.ledger.extend(other.ledger.iter().cloned());
        match out.as_of_time() {
            Some(t) => out.prune_ledger(t),
            None => out.dedup_ledger(),
        }
        out.bound();
        out
    }
}

impl TagState {
    pub fn is_known(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// The state after a run scheduled at `scheduled` saw `seen` (id, timestamp) posts: the
    /// watermark moves to the newest post no later than `scheduled` + [`MAX_CLOCK_SKEW`], and
    /// every id seen this run or still within the window is kept.
    pub fn advance(
        &self,
        seen: &[(String, String)],
        window: Duration,
        hashtag_id: Option<String>,
        scheduled: DateTime<Utc>,
    ) -> TagState {
        let cap = chrono::Duration::from_std(MAX_CLOCK_SKEW)
            .ok()
            .and_then(|skew| scheduled.checked_add_signed(skew))
            .unwrap_or(scheduled);
        let watermark = seen
            .iter()
            .map(|(_, ts)| ts.as_str())
            .chain(self.watermark.as_deref())
            .filter_map(|s| parse_ts(s).map(|t| (t, s)))
            .filter(|(t, _)| t.with_timezone(&Utc) <= cap)
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s.to_string());
        let this_run: HashSet<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        let entries = self
            .known
            .iter()
            .filter(|(id, _)| !this_run.contains(id.as_str()))
            .map(|(a, b)| (a.clone(), b.clone()))
            .chain(seen.iter().cloned());
        let anchor = older(watermark.as_deref(), self.complete_to.as_deref());
        TagState {
            hashtag_id: hashtag_id.or_else(|| self.hashtag_id.clone()),
            known: compact(entries, &this_run, anchor, window),
            watermark: watermark.clone(),
            ..self.clone()
        }
    }

    /// Two states of one hashtag combined: the later watermark and frontier (each side's
    /// frontier is a sound claim on its own: everything up to it was fetched), the ids either
    /// kept, the rate of the later poll, "behind" if either is, and this state's hashtag id if
    /// it has one.
    pub fn merge(&self, other: &TagState, window: Duration) -> TagState {
        let watermark = later(self.watermark.as_deref(), other.watermark.as_deref());
        let complete_to = later(self.complete_to.as_deref(), other.complete_to.as_deref());
        let polled = |t: &TagState| {
            t.polled_at
                .as_deref()
                .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
        };
        let newer_poll = if polled(other) > polled(self) {
            other
        } else {
            self
        };
        let entries = self
            .known
            .iter()
            .chain(other.known.iter())
            .map(|(a, b)| (a.clone(), b.clone()));
        // Each side already applied the window when it advanced (keeping every id its own run
        // saw); merging keeps whatever either kept, within the size bound.
        let all: HashSet<&str> = self
            .known
            .keys()
            .chain(other.known.keys())
            .map(String::as_str)
            .collect();
        let anchor = older(watermark.as_deref(), complete_to.as_deref());
        TagState {
            hashtag_id: self.hashtag_id.clone().or_else(|| other.hashtag_id.clone()),
            known: compact(entries, &all, anchor, window),
            watermark: watermark.clone(),
            polled_at: newer_poll.polled_at.clone(),
            rate_per_hour: newer_poll.rate_per_hour.or(self.rate_per_hour),
            behind: self.behind || other.behind,
            tracked_since: older(
                self.tracked_since.as_deref(),
                other.tracked_since.as_deref(),
            )
            .map(str::to_string),
            complete_to,
        }
    }
}

/// The later of two Graph timestamps (an unreadable one counts as absent).
fn later(a: Option<&str>, b: Option<&str>) -> Option<String> {
    [a, b]
        .into_iter()
        .flatten()
        .filter_map(|s| parse_ts(s).map(|t| (t, s)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, s)| s.to_string())
}

/// The earlier of two Graph timestamps: ids are kept from a window behind it.
fn older<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    [a, b]
        .into_iter()
        .flatten()
        .filter_map(|s| parse_ts(s).map(|t| (t, s)))
        .min_by_key(|(t, _)| *t)
        .map(|(_, s)| s)
}

/// The known ids to keep: those seen this run, and those within the window behind `anchor` (the
/// watermark, or the frontier when it is older), newest first up to [`MAX_KNOWN_IDS`].
fn compact(
    entries: impl Iterator<Item = (String, String)>,
    this_run: &HashSet<&str>,
    anchor: Option<&str>,
    window: Duration,
) -> BTreeMap<String, String> {
    let floor = window_floor(anchor, window);
    let mut kept: Vec<(Option<DateTime<FixedOffset>>, String, String)> = entries
        .filter_map(|(id, ts)| {
            let t = parse_ts(&ts);
            let keep = this_run.contains(id.as_str())
                || matches!((t, floor), (Some(t), Some(f)) if t >= f);
            keep.then_some((t, id, ts))
        })
        .collect();
    kept.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut map = BTreeMap::new();
    for (_, id, ts) in kept {
        if map.len() >= MAX_KNOWN_IDS {
            break;
        }
        map.entry(id).or_insert(ts);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn seen(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 9, 2, h, m, 0)
            .single()
            .expect("time")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_watermark_moves_to_the_newest_post_and_old_ids_age_out() {
        let first = TagState::default().advance(
            &seen(&[
                ("1", "2023-09-02T00:00:10+0000"),
                ("2", "2023-09-01T22:00:00+0000"),
            ]),
            HOUR,
            Some("99".into()),
            at(0, 5),
        );
        assert_eq!(first.watermark.as_deref(), Some("2023-09-02T00:00:10+0000"));
        assert!(
            first.is_known("1") && first.is_known("2"),
            "ids seen this run are always kept"
        );
        let second = first.advance(
            &seen(&[("3", "2023-09-02T02:00:00+0000")]),
            HOUR,
            None,
            at(2, 5),
        );
        assert_eq!(
            second.watermark.as_deref(),
            Some("2023-09-02T02:00:00+0000")
        );
        assert!(second.is_known("3"));
        assert!(
            !second.is_known("1"),
            "older than the window and not seen again"
        );
        assert_eq!(second.hashtag_id.as_deref(), Some("99"));
    }

    #[test]
    fn a_post_from_the_future_does_not_become_the_watermark() {
        let next = TagState::default().advance(
            &seen(&[
                ("1", "2023-09-02T00:04:00+0000"),
                ("2", "2099-12-31T23:59:59+0000"),
                ("3", "2023-09-03T00:04:00+0000"),
            ]),
            HOUR,
            None,
            at(0, 5),
        );
        assert_eq!(next.watermark.as_deref(), Some("2023-09-02T00:04:00+0000"));
        assert!(next.is_known("2") && next.is_known("3"), "still recognised");
        // A state poisoned before the cap existed heals on the next run.
        let poisoned = TagState {
            watermark: Some("2099-01-01T00:00:00+0000".into()),
            ..TagState::default()
        };
        let healed = poisoned.advance(
            &seen(&[("4", "2023-09-02T00:09:00+0000")]),
            HOUR,
            None,
            at(0, 10),
        );
        assert_eq!(
            healed.watermark.as_deref(),
            Some("2023-09-02T00:09:00+0000")
        );
    }

    #[test]
    fn merging_unites_ids_and_never_moves_back() {
        let a = TagState::default().advance(
            &seen(&[("1", "2023-09-02T01:00:00+0000")]),
            HOUR,
            Some("7".into()),
            at(1, 5),
        );
        let b = TagState::default().advance(
            &seen(&[("2", "2023-09-02T00:30:00+0000")]),
            HOUR,
            None,
            at(0, 35),
        );
        for m in [a.merge(&b, HOUR), b.merge(&a, HOUR)] {
            assert!(m.is_known("1") && m.is_known("2"));
            assert_eq!(m.watermark.as_deref(), Some("2023-09-02T01:00:00+0000"));
            assert_eq!(m.hashtag_id.as_deref(), Some("7"));
        }
        let mut newer = State::default();
        newer.mark_as_of(at(1, 5));
        let mut older = State::default();
        older.mark_as_of(at(0, 35));
        assert_eq!(older.merge(&newer, HOUR).as_of, newer.as_of);
        assert_eq!(newer.merge(&older, HOUR).as_of, newer.as_of);
        older.mark_as_of(at(0, 5));
        assert_eq!(
            older.as_of_time(),
            Some(at(0, 35)),
            "as_of never moves back"
        );
    }

    #[test]
    fn the_known_id_cap_keeps_the_newest() {
        let many: Vec<(String, String)> = (0..MAX_KNOWN_IDS + 10)
            .map(|i| {
                let t = at(0, 0) + chrono::Duration::seconds(i as i64);
                (
                    format!("{}", 1000 + i),
                    t.format(crate::validate::TIMESTAMP_FORMAT).to_string(),
                )
            })
            .collect();
        let s = TagState::default().advance(&many, HOUR * 24, None, at(2, 0));
        assert_eq!(s.known.len(), MAX_KNOWN_IDS);
        assert!(!s.is_known("1000"), "the oldest are dropped first");
        assert!(s.is_known(&format!("{}", 1000 + MAX_KNOWN_IDS + 9)));
    }

    #[test]
    fn a_hostile_state_is_cleaned_on_reading() {
        let text = br#"{"version": 1, "as_of": "yesterday", "hashtags": {"dior": {
            "hashtag_id": "../../x?y=", "watermark": "9999-01-01T00:00:00+0000",
            "known": {"1": "2023-09-02T00:00:00+0000", "../2": "2023-09-02T00:00:00+0000",
                      "3": "-262143-01-01T00:00:00+0000"}}}}"#;
        let (state, notes) = State::parse(text).expect("readable");
        let dior = &state.hashtags["dior"];
        assert_eq!(dior.hashtag_id, None);
        assert_eq!(dior.watermark, None);
        assert_eq!(dior.known.keys().collect::<Vec<_>>(), ["1"]);
        assert_eq!(state.as_of, None);
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    fn spend(at: &str, run: &str, calls: u64, reserved: bool) -> Spend {
        Spend {
            at: at.into(),
            until: None,
            run: run.into(),
            lane: "17841400000000001".into(),
            calls,
            reserved,
        }
    }

    #[test]
    fn a_runs_final_booking_replaces_its_reservation_and_a_crashed_run_keeps_it() {
        let t = "2023-09-02T00:05:00Z";
        let mut s = State::default();
        s.book(
            vec![spend(t, "a", 150, true), spend(t, "b", 150, true)],
            at(0, 5),
        );
        assert_eq!(
            s.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            300
        );
        // Run "a" finished having made no call: its final entry of 0 replaces the reservation.
        // Run "b" crashed: its reservation stays booked.
        let mut finished = s.clone();
        finished.book(vec![spend(t, "a", 0, false)], at(0, 5));
        assert_eq!(
            finished.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            150
        );
        // Merged either way round with a state that still holds the reservation: the final wins.
        for merged in [finished.merge(&s, HOUR), s.merge(&finished, HOUR)] {
            assert_eq!(
                merged.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
                150
            );
        }
        // A zero booking with no reservation behind it is not kept.
        let mut quiet = State::default();
        quiet.book(vec![spend(t, "c", 0, false)], at(0, 5));
        assert!(quiet.ledger.is_empty());
    }

    #[test]
    fn a_shards_bookings_count_for_its_credential() {
        let t = "2023-09-02T00:05:00Z";
        let mut s = State::default();
        let mut part = spend(t, "a", 7, false);
        part.lane = "17841400000000001/part-0002".into();
        let mut other = spend(t, "b", 5, false);
        other.lane = "178414000000000012".into();
        s.book(vec![spend(t, "c", 3, false), part, other], at(0, 5));
        assert_eq!(
            s.booked_near("17841400000000001", CallSpan::at(at(0, 5))),
            10
        );
        assert_eq!(
            s.booked_exactly("17841400000000001/part-0002", CallSpan::at(at(0, 5))),
            7
        );
        assert_eq!(
            s.booked_near("178414000000000012", CallSpan::at(at(0, 5))),
            5
        );
    }

    #[test]
    fn a_late_run_is_booked_when_its_calls_are_made_and_an_old_time_when_it_was_scheduled() {
        let min = |m: i64| chrono::Duration::minutes(m);
        // Scheduled 10:00, delivered at 10:50: its calls fall in the hour of 10:50.
        let late = CallSpan::of_run(at(10, 0), at(10, 50), min(1));
        assert_eq!((late.from, late.to), (at(10, 50), at(10, 51)));
        let mut s = State::default();
        let lane = "17841400000000001";
        s.book(
            vec![Spend::new(
                late.ended_after(min(0)),
                "late",
                lane.into(),
                40,
                false,
            )],
            at(10, 50),
        );
        // The on-time run of 11:45 shares 10:50's hour, whatever time the late run was for.
        let next = CallSpan::of_run(at(11, 45), at(11, 45), min(1));
        assert_eq!(s.booked_near(lane, next), 40);
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 51))), 0);
        // A re-run of a day long past (an operator's --at) keeps its own hours.
        let past = Utc
            .with_ymd_and_hms(2023, 8, 31, 10, 0, 0)
            .single()
            .expect("time");
        let rerun = CallSpan::of_run(past, at(10, 0), min(1));
        assert_eq!(rerun.from, past);
        // A time ahead of the clock is its own time too.
        assert_eq!(
            CallSpan::of_run(at(10, 10), at(10, 0), min(1)).from,
            at(10, 10)
        );
    }

    #[test]
    fn a_booking_counts_over_its_whole_span_and_a_broken_span_is_bounded() {
        let lane = "17841400000000001";
        let spend = |from, until: &str| Spend {
            at: from,
            until: Some(until.to_string()),
            run: "r".into(),
            lane: lane.into(),
            calls: 9,
            reserved: true,
        };
        let mut s = State::default();
        // A reservation from 10:00 to its deadline at 10:14 meets the hour of a run at 11:10.
        s.ledger
            .push(spend("2023-09-02T10:00:00Z".into(), "2023-09-02T10:14:00Z"));
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 10))), 9);
        assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 15))), 0);
        // An end in year 9999 holds the budget for MAX_CALL_SPAN at most, not for ever.
        let mut broken = State::default();
        broken
            .ledger
            .push(spend("2023-09-02T10:00:00Z".into(), "9999-01-01T00:00:00Z"));
        assert_eq!(broken.booked_near(lane, CallSpan::at(at(16, 59))), 9);
        assert_eq!(broken.booked_near(lane, CallSpan::at(at(17, 1))), 0);
    }

    #[test]
    fn a_lost_ledger_books_the_hour_before_as_spent_on_every_credential() {
        let mut s = State::default();
        s.assume_hour_spent(at(10, 0));
        for lane in ["17841400000000001", "17841400000000002/part-0001"] {
            assert!(s.booked_near(lane, CallSpan::at(at(11, 0))) >= MAX_SPEND);
            assert!(s.booked_by_hashtags(lane, CallSpan::at(at(10, 30))) >= MAX_SPEND);
            assert_eq!(s.booked_near(lane, CallSpan::at(at(11, 1))), 0);
        }
        // It survives the state's own checks, so the runs after the next still see it.
        let (read, _) = State::parse(&s.to_bytes()).expect("parse");
        assert!(read.booked_near("1", CallSpan::at(at(10, 59))) >= MAX_SPEND);
    }

    #[test]
    fn times_in_the_future_of_the_clock_are_forgotten() {
        let mut s = State {
            as_of: Some("2032-09-02T00:05:00Z".into()),
            ..State::default()
        };
        s.hashtags.insert(
            "dior".into(),
            TagState {
                polled_at: Some("2032-09-02T00:05:00Z".into()),
                complete_to: Some("2032-09-02T00:04:00+0000".into()),
                watermark: Some("2023-09-02T00:04:00+0000".into()),
                ..TagState::default()
            },
        );
        s.book(vec![spend("2032-09-02T00:05:00Z", "x", 9, false)], at(0, 5));
        let notes = s.forget_future(at(0, 10));
        assert_eq!(notes.len(), 4, "{notes:?}");
        let tag = &s.hashtags["dior"];
        assert_eq!(tag.polled_at, None);
        assert_eq!(tag.complete_to, None);
        assert_eq!(tag.watermark.as_deref(), Some("2023-09-02T00:04:00+0000"));
        assert_eq!(s.as_of, None);
        assert!(s.ledger.is_empty());
        // Within the clock skew: kept.
        let mut near = State {
            as_of: Some("2023-09-02T00:15:00Z".into()),
            ..State::default()
        };
        assert!(near.forget_future(at(0, 10)).is_empty());
    }

    #[test]
    fn the_whole_state_is_bounded_and_the_largest_hashtags_forget_their_oldest() {
        let mut s = State::default();
        let ts = |i: usize| {
            format!(
                "2023-09-01T{:02}:{:02}:{:02}+0000",
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            )
        };
        for (tag, n) in [("small", 100usize), ("big", 50_000), ("mid", 20_000)] {
            let known = (0..n)
                .map(|i| (format!("{}", 1_000_000 + i), ts(i)))
                .collect();
            s.hashtags.insert(
                tag.into(),
                TagState {
                    known,
                    ..TagState::default()
                },
            );
        }
        let forgotten = s.bound();
        let total: usize = s.hashtags.values().map(|t| t.known.len()).sum();
        assert_eq!(forgotten, 70_100 - MAX_STATE_IDS);
        assert!(total <= MAX_STATE_IDS);
        assert_eq!(
            s.hashtags["small"].known.len(),
            100,
            "a small hashtag keeps all"
        );
        let big = &s.hashtags["big"];
        assert!(
            big.is_known(&format!("{}", 1_000_000 + 49_999)),
            "the newest is kept"
        );
        assert!(!big.is_known("1000000"), "the oldest is forgotten");
        // Reading a state past the bound applies it, and says so.
        let (read, notes) = State::parse(&serde_json::to_vec(&s).expect("json")).expect("state");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(read, s);
    }
}
