//! Credentials: which one a target uses, what its hour allows each job, and the name its calls
//! are booked under in the ledger. One name for one idea: a *credential* is an Instagram user's
//! token; its position among the configured ones is its index (`lane` in the code below), and
//! its ledger key is its Instagram user id.
//!
//! Targets are spread over the credentials in turn (unit i uses credential i mod n, a unit being
//! an account, or a hashtag with every account tracking it), brands and hashtags alike: [`of`]
//! is the only place that rule is written. On each credential the brands job's calls are fixed (one per account per
//! brands run, its lookback pages, and the daily token check); the hashtags job gets the rest of the hour
//! (`pager`). The least it must spend is one page per hashtag per longest poll interval (the
//! freshness target); every call above that fetches up to a page of posts.

use crate::config::{Config, ConfigError, Problem};
use crate::graph::Session;
use crate::pager;
use crate::state::BRANDS;

/// The credential unit `unit` uses among `credentials` (unit i on credential i mod n).
pub fn of(unit: usize, credentials: usize) -> usize {
    unit % credentials.max(1)
}

/// The units of `0..count` on credential `lane` of `credentials`.
pub fn units_on(count: usize, lane: usize, credentials: usize) -> usize {
    (0..count).filter(|&i| of(i, credentials) == lane).count()
}

/// A shard's fixed share of its credential's hourly hashtag calls (`plan`). Shards of one
/// credential book under separate names, so only fixed shares that add up to at most the
/// credential's allowance keep the credential within its budget, whatever each shard does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashtagShare {
    /// Calls per hour this shard may spend.
    pub calls: u64,
    /// Its credential's hourly hashtag allowance, every shard of it together.
    pub of: u64,
    /// The name its runs book their calls under in the ledger, after the credential's id
    /// (`{ig_user_id}/{name}`), so a shard finds its own spending and every shard of a
    /// credential counts all of it.
    pub name: String,
}

/// The calls a brands run over `accounts` accounts needs to lose no page: each first page, the
/// token check, and `lookback_pages` lookback pages with a quarter more for retries.
pub fn brands_run_calls(accounts: u64, lookback_pages: u64) -> u64 {
    (accounts + 1).saturating_add(crate::lookback::calls_to_book(lookback_pages))
}

/// How the ledger names credential `lane` (its Instagram user id, never a token): the hashtags
/// job books under it, a shard of it under `{key}/{part}`.
pub fn ledger_key(session: &Session<'_>, lane: usize) -> String {
    session
        .lane_user(lane)
        .map(str::to_string)
        .unwrap_or_else(|| format!("lane-{lane}"))
}

/// How the ledger names the brands job's calls on credential `lane`.
pub fn brands_ledger_key(session: &Session<'_>, lane: usize) -> String {
    format!("{}/{BRANDS}", ledger_key(session, lane))
}

/// The hashtags job's view of each credential of `session` for the pager ([`lane_of`]).
pub fn hashtag_lanes(
    config: &Config,
    share: Option<&HashtagShare>,
    session: &Session<'_>,
    state: &crate::state::State,
) -> Vec<pager::Lane> {
    let lanes = session.lanes().max(1);
    (0..lanes)
        .map(|lane| {
            lane_of(
                config,
                share,
                ledger_key(session, lane),
                (lane, lanes),
                state,
            )
        })
        .collect()
}

/// Credential `lane` of `lanes`, named `key` in the ledger, for the pager: its hourly allowance
/// (or the shard's `share` of it), the first pages it leaves the brands job, and the next brands
/// run's booking, its lookback at what the credential's last run needed (`state`).
pub fn lane_of(
    config: &Config,
    share: Option<&HashtagShare>,
    key: String,
    (lane, lanes): (usize, usize),
    state: &crate::state::State,
) -> pager::Lane {
    pager::Lane {
        calls_per_hour: share.map_or_else(|| config.hashtag_calls_per_hour(lane, lanes), |s| s.of),
        total: u64::from(config.budget.calls_per_hour_per_credential),
        share: share.map(|s| (s.name.clone(), s.calls)),
        first_pages: config.brands_first_calls_per_hour(lane, lanes),
        brands_run: config.brands_run_booking(lane, lanes, state.lookback.get(&key)),
        key,
    }
}

/// The API's limit of unique hashtags one app user may query in 7 days.
pub const MAX_HASHTAGS_PER_CREDENTIAL: usize = 30;

/// The schedule's calls per hour against the budget, with the arithmetic for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetUse {
    /// The least the schedule spends per hour, all credentials: brands calls, the token check
    /// and one page per hashtag per longest interval.
    pub calls_per_hour: u64,
    /// The budget, all credentials.
    pub limit: u64,
    /// Per credential: calls per hour left to the hashtags job after the brands job.
    pub for_hashtags: Vec<u64>,
    /// Posts per hour the hashtags job can fetch beyond its minimum polls, all credentials.
    pub posts_per_hour: u64,
    pub arithmetic: String,
}

impl Config {
    /// Accounts on credential `lane` of `lanes` (account i on credential i mod n).
    fn accounts_on(&self, lane: usize, lanes: usize) -> usize {
        units_on(self.accounts(), lane, lanes)
    }

    /// Hashtags on credential `lane` of `lanes` (the i-th hashtag, however many accounts track
    /// it, on credential i mod n).
    fn hashtags_on(&self, lane: usize, lanes: usize) -> usize {
        units_on(self.hashtag_groups().len(), lane, lanes)
    }

    /// Calls per hour the brands job makes on credential `lane`: one per account per run, and
    /// the daily token check (booked as one call every hour, to be safe). When the check also
    /// refreshes the token (`health.refresh_days_left`, once in some 45 days), that hour's run
    /// sends one call more than this plans: the ledger books what each run really sends, and the
    /// hashtags job never spends past the whole allowance less every booking (`pager::Lane`).
    ///
    /// With `brands.lookback_days`, each account's run also pages back
    /// `lookback::pages_per_account` pages (at `lookback::POSTS_PER_DAY`): they are booked
    /// here, so the hashtags job's least spend is checked against what the lookback leaves.
    fn brands_calls_per_hour(&self, lane: usize, lanes: usize) -> u64 {
        let accounts = self.accounts_on(lane, lanes) as u64;
        let runs = u64::from(self.budget.brands_runs_per_hour);
        accounts * runs + self.lookback_calls_per_hour(lane, lanes) + 1
    }

    /// Calls per hour the brands job's first pages and daily token check make on credential
    /// `lane`: what the hashtags job always leaves it (`pager::Lane::first_pages`).
    pub fn brands_first_calls_per_hour(&self, lane: usize, lanes: usize) -> u64 {
        let accounts = self.accounts_on(lane, lanes) as u64;
        accounts * u64::from(self.budget.brands_runs_per_hour) + 1
    }

    /// What one brands run needs booked on credential `lane` to lose no page
    /// (`collect::booking`): its accounts' first pages and the token check, and its lookback's
    /// pages (what the credential's last run needed, `need`, else the assumption) with a quarter
    /// more for their retries. Freshness polls and the backfill leave it to the next brands run.
    pub fn brands_run_booking(
        &self,
        lane: usize,
        lanes: usize,
        need: Option<&crate::lookback::Need>,
    ) -> u64 {
        let accounts = self.accounts_on(lane, lanes) as u64;
        brands_run_calls(accounts, self.lookback_pages_to_book(need, accounts))
    }

    /// The lookback pages a brands run of `accounts` accounts books (`lookback::pages_to_book`).
    pub fn lookback_pages_to_book(
        &self,
        need: Option<&crate::lookback::Need>,
        accounts: u64,
    ) -> u64 {
        crate::lookback::pages_to_book(
            need,
            accounts,
            self.brands.lookback_days,
            self.graph.brand_media_limit,
        )
    }

    /// The lookback's pages per hour on credential `lane`: pages per account × accounts × runs.
    fn lookback_calls_per_hour(&self, lane: usize, lanes: usize) -> u64 {
        self.lookback_pages_per_account()
            .saturating_mul(self.accounts_on(lane, lanes) as u64)
            .saturating_mul(u64::from(self.budget.brands_runs_per_hour))
    }

    /// Pages past the first one account's run reads back (`brands.lookback_days`).
    fn lookback_pages_per_account(&self) -> u64 {
        crate::lookback::pages_per_account(self.brands.lookback_days, self.graph.brand_media_limit)
    }

    /// What freshness and backfill take from credential `lane`'s `spare` calls per hour (what
    /// is left after the brands job and the hashtags' least spend), for `check-config`.
    fn history_cost(&self, lane: usize, lanes: usize, spare: f64) -> String {
        let spare = spare.max(0.0);
        let fresh = match self.pager_settings().fresh_interval() {
            Some(i) => format!(
                "freshness (hashtags.fresh_delay_mins {}): a hashtag with a post waiting is polled as often as every {} min, from the {spare:.1} spare calls/h, keeping an hour of due polls in hand",
                self.hashtags.fresh_delay.map_or(0, |d| d.as_secs() / 60),
                i.as_secs() / 60
            ),
            None => "freshness: off (hashtags.fresh_delay_mins 0)".to_string(),
        };
        let days = self.brands.backfill_days;
        let backfill = if days == 0 {
            "backfill: off (brands.backfill_days 0)".to_string()
        } else {
            let pages = crate::lookback::pages_per_account(days, self.graph.brand_media_limit)
                .saturating_sub(self.lookback_pages_per_account())
                .saturating_mul(self.accounts_on(lane, lanes) as u64);
            let hours = pages as f64 / spare.max(f64::MIN_POSITIVE);
            format!(
                "backfill (brands.backfill_days {days}): at most {pages} pages once, from what freshness leaves of the spare calls: at least {:.0} h at {spare:.1} calls/h",
                hours.ceil()
            )
        };
        format!("credential {} of {lanes}: {fresh}; {backfill}", lane + 1)
    }

    /// Calls per hour the hashtags job may spend on credential `lane` of `lanes`.
    pub fn hashtag_calls_per_hour(&self, lane: usize, lanes: usize) -> u64 {
        u64::from(self.budget.calls_per_hour_per_credential)
            .saturating_sub(self.brands_calls_per_hour(lane, lanes))
    }

    /// The pager's settings.
    pub fn pager_settings(&self) -> pager::Settings {
        pager::Settings {
            page_size: self.graph.hashtag_media_limit,
            run_every: self.hashtags.run_every(),
            max_delay: self.hashtags.max_delay,
            overlap: self.hashtags.overlap,
            late_window: self.hashtags.late_window,
            known_window: self.hashtags.known_window,
            fresh_delay: self.hashtags.fresh_delay,
        }
    }

    /// The schedule against the budget of `credentials` credentials.
    pub fn budget_use(&self, credentials: usize) -> BudgetUse {
        let lanes = credentials.max(1);
        let b = &self.budget;
        let settings = self.pager_settings();
        let interval_mins = settings.max_interval().as_secs() / 60;
        let polls_per_hour = 60.0 / interval_mins.max(1) as f64;
        let page = u64::from(self.graph.hashtag_media_limit);
        let mut lines = Vec::new();
        let (mut least, mut limit, mut posts) = (0.0f64, 0u64, 0u64);
        let mut for_hashtags = Vec::new();
        for lane in 0..lanes {
            let accounts = self.accounts_on(lane, lanes);
            let hashtags = self.hashtags_on(lane, lanes);
            let budget = u64::from(b.calls_per_hour_per_credential);
            let brands = self.brands_calls_per_hour(lane, lanes);
            let left = self.hashtag_calls_per_hour(lane, lanes);
            let minimum = hashtags as f64 * polls_per_hour;
            let spare = (left as f64 - minimum).max(0.0);
            least += brands as f64 + minimum;
            limit += budget;
            posts += (spare * page as f64) as u64;
            for_hashtags.push(left);
            let lookback = self.lookback_calls_per_hour(lane, lanes);
            let history = self.history_cost(lane, lanes, left as f64 - minimum);
            lines.push(format!(
                "credential {} of {lanes}: {budget} calls/h - {accounts} accounts × {} brands run/h - {lookback} lookback pages/h ({accounts} accounts × {} pages back for brands.lookback_days {} at {} posts/day, {} a page) - 1 token check = {left} calls/h for {hashtags} hashtags; \
                 each polled at least every {interval_mins} min (hashtags.max_delay_mins {}, on the {}-min schedule): {hashtags} × {polls_per_hour:.1} = {minimum:.1} calls/h; \
                 the {spare:.1} calls/h left fetch up to {} more posts/h ({page} a page)",
                lane + 1,
                b.brands_runs_per_hour,
                self.lookback_pages_per_account(),
                self.brands.lookback_days,
                crate::lookback::POSTS_PER_DAY,
                self.graph.brand_media_limit,
                self.hashtags.max_delay.as_secs() / 60,
                self.hashtags.run_every().as_secs() / 60,
                (spare * page as f64) as u64,
            ));
            lines.push(history);
        }
        BudgetUse {
            calls_per_hour: least.ceil() as u64,
            limit,
            for_hashtags,
            posts_per_hour: posts,
            arithmetic: lines.join("\n"),
        }
    }

    /// Refuses a schedule whose least spend is over a credential's hourly budget, or that puts
    /// more hashtags on one credential than the API allows, showing the arithmetic.
    pub fn check_budget(&self, credentials: usize) -> Result<BudgetUse, ConfigError> {
        let used = self.budget_use(credentials);
        let lanes = credentials.max(1);
        let settings = self.pager_settings();
        let polls_per_hour = 3600.0 / settings.max_interval().as_secs().max(1) as f64;
        let mut problems = Vec::new();
        for lane in 0..lanes {
            let hashtags = self.hashtags_on(lane, lanes);
            let left = self.hashtag_calls_per_hour(lane, lanes) as f64;
            if hashtags as f64 * polls_per_hour > left {
                problems.push(Problem {
                    key: "budget".into(),
                    message: format!(
                        "the schedule is over the Graph API budget of credential {} of {lanes}:\n{}\nRaise hashtags.max_delay_mins or budget.calls_per_hour_per_credential, lower brands.lookback_days, track fewer targets, or add credentials",
                        lane + 1,
                        used.arithmetic
                    ),
                });
            }
            if self.brands.backfill_days > 0
                && hashtags as f64 * polls_per_hour >= left
                && self.accounts_on(lane, lanes) > 0
            {
                problems.push(Problem {
                    key: "brands.backfill_days".into(),
                    message: format!(
                        "credential {} of {lanes} has no calls to spare after its least spend, so the backfill of {} days would never run:\n{}\nSet brands.backfill_days = 0, or raise budget.calls_per_hour_per_credential, or add credentials",
                        lane + 1,
                        self.brands.backfill_days,
                        used.arithmetic
                    ),
                });
            }
            if hashtags > MAX_HASHTAGS_PER_CREDENTIAL {
                problems.push(Problem {
                    key: "targets".into(),
                    message: format!(
                        "credential {} of {lanes} would query {hashtags} hashtags; the API allows {MAX_HASHTAGS_PER_CREDENTIAL} unique hashtags per app user in 7 days: add credentials",
                        lane + 1
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(used)
        } else {
            Err(ConfigError {
                file: self.file.clone(),
                problems,
            })
        }
    }
}
