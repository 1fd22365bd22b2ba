//! How the pager decides, from the configuration: the freshness target, and the polling interval
//! that costs each hashtag the fewest pages per hour at its rate.

use std::time::Duration;

/// How far back `recent_media` lists posts.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How the pager decides; built from the configuration by `collect`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Posts per page (`graph.hashtag_media_limit`).
    pub page_size: u32,
    /// The schedule's period (every 5 minutes).
    pub run_every: Duration,
    /// The freshness target: a post is written at most this long after the API lists it.
    pub max_delay: Duration,
    /// How far past the frontier a poll must reach, for posts listed slightly out of order.
    pub overlap: Duration,
    /// How far past the frontier a poll goes on, with calls nobody reserved, for posts the API
    /// lists late (minutes after their timestamp).
    pub late_window: Duration,
    /// How long ids are remembered behind the watermark (and the frontier).
    pub known_window: Duration,
    /// With calls to spare, the most a post should wait (`hashtags.fresh_delay_mins`): see
    /// [`Settings::fresh_interval`]. `None`: no freshness polls.
    pub fresh_delay: Option<Duration>,
}

impl Settings {
    /// The longest interval between two polls of one hashtag that keeps the freshness target:
    /// the largest multiple of the schedule at most `max_delay`, at least one schedule. A post
    /// listed just after a poll is written by the next one, `max_delay` later.
    pub fn max_interval(&self) -> Duration {
        let every = self.run_every.as_secs().max(1);
        let k = (self.max_delay.as_secs() / every).max(1);
        Duration::from_secs(k * every)
    }

    /// The interval between polls that costs the fewest pages per hour at `rate_per_hour`:
    /// each poll pays for its new posts, the overlap and the page that reaches the frontier.
    pub fn interval_for(&self, rate_per_hour: f64) -> Duration {
        let every = self.run_every.as_secs().max(1);
        let max = self.max_interval().as_secs() / every;
        let overlap_h = self.reach().as_secs_f64() / 3600.0;
        let mut best = (f64::INFINITY, max);
        for k in 1..=max {
            let hours = (k * every) as f64 / 3600.0;
            let pages = self.pages_for(rate_per_hour * (hours + overlap_h));
            let per_hour = pages as f64 / hours;
            // Ties go to the shorter interval: the same cost, fresher.
            if per_hour < best.0 - 1e-9 {
                best = (per_hour, k);
            }
        }
        Duration::from_secs(best.1 * every)
    }

    /// How often spare calls poll a hashtag: the largest multiple of the schedule at most
    /// `fresh_delay`, at least every run. A post listed just after a poll is written by the next
    /// one, `fresh_delay` later (and the seconds the run takes). A shorter interval would keep
    /// that bound to the second, but it doubles the polls of a 10-minute target, and with the
    /// spare calls of one credential the busiest hashtags then took them all while the others
    /// waited for their due polls (p99 24.5 minutes from listing on the real day, 12.0 at the
    /// whole target; `benches/capture_day.rs`). `None` without a freshness target, or when it is
    /// not sooner than the fewest-calls interval could be.
    pub fn fresh_interval(&self) -> Option<Duration> {
        let target = self.fresh_delay?;
        let every = self.run_every.as_secs().max(1);
        let k = (target.as_secs() / every).max(1);
        let interval = Duration::from_secs(k * every);
        (interval < self.max_interval()).then_some(interval)
    }

    /// Calls per hour one hashtag at `rate_per_hour` costs when spare calls also poll it for
    /// freshness: every fresh interval while each poll is estimated to find a post, else at its
    /// fewest-calls interval. What the brands job's backfill keeps for the hashtags job.
    pub fn calls_per_hour_fresh(&self, rate_per_hour: f64) -> f64 {
        let due = self.calls_per_hour(rate_per_hour);
        let Some(interval) = self.fresh_interval() else {
            return due;
        };
        let polls = (3600.0 / interval.as_secs_f64().max(1.0)).min(rate_per_hour / FRESH_MIN_POSTS);
        if !polls.is_finite() || polls <= 0.0 {
            return due;
        }
        let overlap_h = self.overlap.as_secs_f64() / 3600.0;
        let fresh =
            polls * self.pages_for(rate_per_hour / polls + rate_per_hour * overlap_h) as f64;
        due.max(fresh)
    }

    /// How far past the frontier a poll reads when the budget allows.
    fn reach(&self) -> Duration {
        self.overlap.max(self.late_window)
    }

    /// Pages a poll needs to fetch `posts` new posts and reach the frontier.
    pub(super) fn pages_for(&self, posts: f64) -> u64 {
        let per_page = f64::from(self.page_size.max(1));
        if !posts.is_finite() || posts <= 0.0 {
            return 1;
        }
        ((posts + 1.0) / per_page).ceil().clamp(1.0, 1e6) as u64
    }

    /// Polls and pages per hour one hashtag at `rate_per_hour` costs at its best interval.
    pub fn calls_per_hour(&self, rate_per_hour: f64) -> f64 {
        let interval = self.interval_for(rate_per_hour);
        let hours = interval.as_secs_f64() / 3600.0;
        let overlap_h = self.reach().as_secs_f64() / 3600.0;
        self.pages_for(rate_per_hour * (hours + overlap_h)) as f64 / hours
    }
}

/// The fewest new posts a freshness poll must be estimated to find: a poll that expects less
/// than one post spends a call on nothing most of the time.
pub(super) const FRESH_MIN_POSTS: f64 = 1.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pager::tests::settings;

    #[test]
    fn a_quiet_hashtag_waits_for_its_longest_interval_and_a_busy_one_fills_its_pages() {
        let s = settings();
        assert_eq!(s.max_interval(), Duration::from_secs(30 * 60));
        assert_eq!(s.interval_for(0.0), Duration::from_secs(30 * 60));
        assert_eq!(s.interval_for(10.0), Duration::from_secs(30 * 60));
        // Each poll also reads 20 minutes past its frontier for late posts. At 1.2 posts a
        // minute, 20 minutes is 48 posts with that reach, one page; 25 or 30 minutes need two.
        assert_eq!(s.interval_for(72.0), Duration::from_secs(20 * 60));
        assert!((s.calls_per_hour(72.0) - 3.0).abs() < 1e-9);
        // 3 a minute: three pages every 25 minutes beat three every 15 and four every 30.
        assert_eq!(s.interval_for(180.0), Duration::from_secs(25 * 60));
        // Ten a minute: the pages fill at any interval; the longest reads the reach least often.
        assert_eq!(s.interval_for(600.0), Duration::from_secs(30 * 60));
        assert!((s.calls_per_hour(600.0) - 22.0).abs() < 1e-9);
    }
}
