//! Which hashtags a run polls, and in what order: where each one's poll starts from, whether it
//! is due, whether spare calls would poll it sooner for freshness, and the service order.

use chrono::{DateTime, Utc};

use super::poll::{Tag, TagRun};
use super::report::Due;
use super::settings::{Settings, FRESH_MIN_POSTS};
use super::time::{graph_ts, hours_between, rfc3339};
use crate::state::{State, TagState};

/// The poll of `tag` in a run scheduled at `scheduled`, from its entry in `state`: whether it is
/// due, and the posts estimated behind or waiting at its rate.
pub(super) fn start(
    settings: &Settings,
    state: &State,
    scheduled: DateTime<Utc>,
    tag: Tag,
) -> TagRun {
    let prev = previous(state, &tag.name, scheduled);
    let rate = prev
        .rate_per_hour
        .filter(|r| r.is_finite() && *r >= 0.0)
        .unwrap_or(0.0);
    let due = due_of(settings, &prev, rate, scheduled);
    let waiting = match due {
        Due::NotDue => fresh_waiting(settings, &prev, rate, scheduled),
        _ => 0.0,
    };
    let behind_at_start = match prev.complete_to.as_deref().and_then(graph_ts) {
        Some(c) if due != Due::NotDue || waiting > 0.0 => rate * hours_between(scheduled, c),
        _ => 0.0,
    };
    TagRun::new(tag, prev, due, behind_at_start, waiting, rate)
}

/// What the poll of hashtag `name` starts from: its entry in `state`, or, without one, where
/// its tracking is taken to have begun.
fn previous(state: &State, name: &str, scheduled: DateTime<Utc>) -> TagState {
    let mut prev = match state.hashtags.get(name) {
        Some(t) => t.clone(),
        None => {
            // No entry after the state was lost: tracking began at the start of the
            // API's 24 hours then, not at this poll's one page.
            let mut fresh = State::default();
            if let Some(reset) = state.reset_at.as_deref().and_then(rfc3339) {
                if scheduled - reset < chrono::Duration::hours(24) {
                    fresh.mark_tracking_began(name, reset - chrono::Duration::hours(24));
                }
            }
            fresh.hashtags.remove(name).unwrap_or_default()
        }
    };
    if prev.polled_at.is_none() && prev.complete_to.is_none() {
        // A state written before frontiers existed: its runs paged while pages held
        // new posts, so its watermark is where it had got to.
        if let Some(w) = prev.watermark.clone() {
            prev.complete_to = Some(w);
            prev.polled_at = state.as_of.clone();
        }
    }
    prev
}

/// The service order, as indexes into `runs`: `hashtag_priority` (highest first), then first
/// polls, then most posts behind, then name.
pub(super) fn service_order(runs: &[TagRun]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&runs[a], &runs[b]);
        // A first poll costs one page and starts the hashtag's frontier, from which anything
        // not fetched in time is reported given up: it never waits behind a backlog.
        let first = |r: &TagRun| r.due == Due::First;
        y.tag
            .priority
            .cmp(&x.tag.priority)
            .then(first(y).cmp(&first(x)))
            .then(y.behind_at_start.total_cmp(&x.behind_at_start))
            .then_with(|| x.tag.name.cmp(&y.tag.name))
    });
    order
}

/// Posts estimated waiting on a hashtag that is not due at `scheduled`, when a freshness poll
/// is worth making (its fresh interval has passed and at least [`FRESH_MIN_POSTS`] are
/// expected); else 0.
fn fresh_waiting(settings: &Settings, prev: &TagState, rate: f64, scheduled: DateTime<Utc>) -> f64 {
    let (Some(interval), Some(polled)) = (
        settings.fresh_interval(),
        prev.polled_at.as_deref().and_then(rfc3339),
    ) else {
        return 0.0;
    };
    if prev.behind || scheduled <= polled || prev.complete_to.is_none() {
        return 0.0;
    }
    let elapsed = (scheduled - polled).to_std().unwrap_or_default();
    let waiting = rate * elapsed.as_secs_f64() / 3600.0;
    if elapsed + settings.run_every / 2 >= interval && waiting >= FRESH_MIN_POSTS {
        waiting
    } else {
        0.0
    }
}

/// Whether a hashtag is due at `scheduled`.
fn due_of(settings: &Settings, prev: &TagState, rate: f64, scheduled: DateTime<Utc>) -> Due {
    let Some(polled) = prev.polled_at.as_deref().and_then(rfc3339) else {
        // A frontier without a poll: a first poll was booked (tracking began there) but never
        // finished; this one pages back to where tracking began.
        return if prev.complete_to.is_some() {
            Due::Behind
        } else {
            Due::First
        };
    };
    if prev.behind {
        return Due::Behind;
    }
    let interval = settings.interval_for(rate);
    let slack = settings.run_every / 2;
    let elapsed = (scheduled - polled).to_std().unwrap_or_default();
    if elapsed + slack >= interval && scheduled > polled {
        Due::Interval
    } else {
        Due::NotDue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pager::tests::{polled_ago, settings, t0, MIN};
    use crate::pager::{Lane, Pager};
    use crate::state::CallSpan;

    #[test]
    fn a_hashtag_is_due_when_its_interval_has_passed_or_it_is_behind() {
        let s = settings();
        let polled = |mins_ago: i64, behind: bool| TagState {
            behind,
            ..polled_ago(mins_ago * MIN, 6.0)
        };
        assert_eq!(due_of(&s, &TagState::default(), 0.0, t0()), Due::First);
        assert_eq!(due_of(&s, &polled(5, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(20, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(25, false), 6.0, t0()), Due::NotDue);
        assert_eq!(due_of(&s, &polled(30, false), 6.0, t0()), Due::Interval);
        assert_eq!(due_of(&s, &polled(5, true), 6.0, t0()), Due::Behind);
        // A late delivery of an older time finds the hashtag polled after it: not due.
        assert_eq!(due_of(&s, &polled(-5, false), 6.0, t0()), Due::NotDue);
    }

    #[test]
    fn after_a_lost_state_a_hashtag_without_an_entry_pages_back_not_one_page() {
        let at = t0();
        let tags = || {
            vec![Tag {
                name: "dior".into(),
                lane: 0,
                priority: 5,
            }]
        };
        let lane = || {
            vec![Lane {
                key: "1".into(),
                calls_per_hour: 100,
                total: 100,
                share: None,
                first_pages: 0,
                brands_run: 0,
            }]
        };
        let fresh = Pager::new(
            settings(),
            at,
            CallSpan::at(at),
            tags(),
            &State::default(),
            lane(),
        );
        assert_eq!(fresh.runs[0].due, Due::First, "a new hashtag: one page");
        let reset = State {
            reset_at: Some((at - chrono::Duration::hours(1)).to_rfc3339()),
            ..State::default()
        };
        let after = Pager::new(settings(), at, CallSpan::at(at), tags(), &reset, lane());
        assert_eq!(
            after.runs[0].due,
            Due::Behind,
            "tracking began 24 hours before the reset"
        );
        let long_ago = State {
            reset_at: Some((at - chrono::Duration::hours(30)).to_rfc3339()),
            ..State::default()
        };
        let later = Pager::new(settings(), at, CallSpan::at(at), tags(), &long_ago, lane());
        assert_eq!(
            later.runs[0].due,
            Due::First,
            "past the API's 24 hours: nothing to page back to"
        );
    }
}
