//! The fan-out plan: how a run's targets are cut into shards, each small enough for one
//! invocation, when one invocation cannot take them all. **Pure: no IO.**
//!
//! The state machine in `template.yaml` asks for the plan (a planning event), then runs one
//! invocation per shard (a shard event); both ends compute the same plan from the same
//! configuration and number of credentials, so the plan itself never travels.
//!
//! - One invocation takes `capacity` calls: `graph.concurrency` × the calls one slot makes in
//!   the invocation's usable time (`fanout.invocation_timeout_secs` less
//!   `retry.deadline_margin_secs`, at `fanout.call_time_ms` per call).
//! - When the whole run fits (brands: one call per account; hashtags: the most the credentials
//!   may spend in one run, their hourly allowance), the plan is one shard: the plain run, over
//!   every credential, writing the usual keys.
//! - Past that, shards never mix credentials and a unit keeps its credential (unit k on
//!   credential k mod n; a unit is an account, or a hashtag with every account tracking it), so
//!   a hashtag is always queried by the same app user (the API's 30 unique hashtags per 7 days)
//!   and polled by one shard only. A credential's units are cut into the fewest shards that
//!   fit, of near-equal size.
//! - A credential's hashtags split over several shards each get a fixed share of its hourly
//!   hashtag allowance, in proportion to their hashtags. Every shard reads and writes the one
//!   hashtag state (its ledger included); a shard spends at most its share, and at most its
//!   share's proportion of what the whole credential has left, so shards running at once stay
//!   within the credential's allowance together (`pager::Lane`).

use std::fmt::Write as _;

use crate::config::{part_name, Config, KeyTemplate, Problem};
use crate::credential::HashtagShare;
use crate::job::Job;
use crate::records::Kind;

/// How much one invocation can take on, with the arithmetic for `check-config`.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Graph calls one invocation can make before its deadline margin.
    pub calls: u64,
    pub arithmetic: String,
}

/// One invocation's part of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub index: usize,
    /// The credential (lane) every target of the shard is called with; `None` for the single
    /// shard of a run that fits one invocation (every credential, as an unsharded run).
    pub credential: Option<usize>,
    /// Indexes into `Config::targets`, in configuration order.
    pub targets: Vec<usize>,
    /// Hashtags: the calls per hour this shard may spend (its share of its credential's).
    pub hashtag_share: Option<u64>,
    /// Hashtags: its credential's hourly allowance, every shard of it together.
    pub credential_allowance: u64,
    /// Whether this shard makes the daily token check: every run does, except a shard that is
    /// not its credential's first (one check per credential a day, as the budget books it).
    pub checks_tokens: bool,
}

impl Shard {
    /// The name of the shard's part (`part-0003`) in its keys, its capture folder and its
    /// ledger entries; `None` for the whole run, which writes the usual keys.
    pub fn part(&self) -> Option<String> {
        self.credential.map(|_| part_name(self.index))
    }

    /// The key template of `kind`'s data objects: a shard's part of the configured one.
    pub fn key_template(&self, config: &Config, kind: Kind) -> KeyTemplate {
        let template = config.key_template(kind);
        match self.part() {
            Some(_) => template.part(self.index),
            None => template.clone(),
        }
    }

    /// The raw capture's folder template: a shard's captures go to its part's folder.
    pub fn raw_capture_key(&self, config: &Config) -> KeyTemplate {
        let template = &config.output.raw_capture_key;
        match self.part() {
            Some(part) => template.folder(&part),
            None => template.clone(),
        }
    }

    /// The shard's fixed share of its credential's hashtag calls, under its part's name.
    pub fn share(&self) -> Option<HashtagShare> {
        Some(HashtagShare {
            calls: self.hashtag_share?,
            of: self.credential_allowance,
            name: self.part()?,
        })
    }
}

/// A run cut into shards.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub job: Job,
    pub credentials: usize,
    pub capacity: Capacity,
    pub shards: Vec<Shard>,
}

/// What one invocation can take on.
pub fn capacity(config: &Config) -> Capacity {
    let timeout = config.fanout.invocation_timeout;
    let margin = config.retry.deadline_margin;
    let usable = timeout.saturating_sub(margin);
    let per_call = config.fanout.call_time.as_millis().max(1);
    let per_slot = (usable.as_millis() / per_call) as u64;
    let slots = config.graph.concurrency as u64;
    let calls = slots.saturating_mul(per_slot);
    Capacity {
        calls,
        arithmetic: format!(
            "one invocation makes {slots} concurrent calls (graph.concurrency) × {per_slot} calls each = {calls} calls: \
             ({} s timeout (fanout.invocation_timeout_secs) - {} s margin (retry.deadline_margin_secs)) ÷ {} ms per call (fanout.call_time_ms) = {per_slot}",
            timeout.as_secs(),
            margin.as_secs(),
            per_call
        ),
    }
}

/// What a shard is cut from: one account (brands), or one hashtag with every account that
/// tracks it (hashtags), so a hashtag is polled by exactly one shard and keeps its credential.
fn units(config: &Config, job: Job) -> Vec<Vec<usize>> {
    match job {
        Job::Brands => (0..config.targets.len()).map(|i| vec![i]).collect(),
        Job::Hashtags => config
            .hashtag_groups()
            .into_iter()
            .map(|g| g.targets)
            .collect(),
    }
}

/// The plan of `job` over `credentials` credentials.
pub fn plan(config: &Config, credentials: usize, job: Job) -> Plan {
    let lanes = credentials.max(1);
    let capacity = capacity(config);
    let cap = capacity.calls.max(1);
    let units = units(config, job);
    let allowance = |lane| config.hashtag_calls_per_hour(lane, lanes);
    // An account's calls: its first page and the pages its lookback is booked for.
    let per_account = 1 + crate::lookback::pages_per_account(
        config.brands.lookback_days,
        config.graph.brand_media_limit,
    );
    // The calls the whole run may make: those of every account, or every credential's hourly
    // hashtag allowance (the pager may spend it in one run).
    let whole = match job {
        Job::Brands => units.len() as u64 * per_account,
        Job::Hashtags => (0..lanes).map(allowance).sum(),
    };
    if whole <= cap || units.is_empty() {
        return Plan {
            job,
            credentials: lanes,
            capacity,
            shards: vec![Shard {
                index: 0,
                credential: None,
                targets: {
                    let mut all: Vec<usize> = units.into_iter().flatten().collect();
                    all.sort_unstable();
                    all
                },
                hashtag_share: None,
                credential_allowance: 0,
                checks_tokens: true,
            }],
        };
    }
    let mut shards = Vec::new();
    for lane in 0..lanes {
        // Unit k on credential k mod n: the rule `collect` follows for an unsharded run.
        let mine: Vec<usize> = (0..units.len())
            .filter(|&k| crate::credential::of(k, lanes) == lane)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let load = match job {
            Job::Brands => mine.len() as u64 * per_account,
            Job::Hashtags => allowance(lane),
        };
        let count = (load.div_ceil(cap) as usize).clamp(1, mine.len());
        for chunk in split(&mine, count) {
            let hashtag_share = (job == Job::Hashtags)
                .then(|| allowance(lane) * chunk.len() as u64 / mine.len() as u64);
            let mut targets: Vec<usize> = chunk
                .iter()
                .flat_map(|&k| units[k].iter().copied())
                .collect();
            targets.sort_unstable();
            // One token check per credential a day: its first shard makes it.
            let checks_tokens = !shards.iter().any(|s: &Shard| s.credential == Some(lane));
            shards.push(Shard {
                index: shards.len(),
                credential: Some(lane),
                targets,
                hashtag_share,
                credential_allowance: allowance(lane),
                checks_tokens,
            });
        }
    }
    Plan {
        job,
        credentials: lanes,
        capacity,
        shards,
    }
}

/// `items` cut into `count` contiguous parts whose sizes differ by at most one.
fn split(items: &[usize], count: usize) -> Vec<Vec<usize>> {
    let count = count.max(1);
    let (base, extra) = (items.len() / count, items.len() % count);
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for k in 0..count {
        let len = base + usize::from(k < extra);
        out.push(items[at..at + len].to_vec());
        at += len;
    }
    out
}

impl Plan {
    /// Whether the run is cut at all (more than the single whole-run shard).
    pub fn is_sharded(&self) -> bool {
        self.shards.iter().any(|s| s.credential.is_some())
    }

    /// Why the plan cannot be run within the API's limits: a shard's hashtag share below the
    /// least its hashtags need (one page per hashtag per longest poll interval).
    pub fn problems(&self, config: &Config) -> Vec<Problem> {
        let polls_per_hour =
            3600.0 / config.pager_settings().max_interval().as_secs().max(1) as f64;
        self.shards
            .iter()
            .filter_map(|s| {
                let share = s.hashtag_share?;
                let least = s.targets.len() as f64 * polls_per_hour;
                (least > share as f64).then(|| Problem {
                    key: "fanout".into(),
                    message: format!(
                        "shard {} gets {share} of its credential's hashtag calls per hour, less than the {least:.1} its {} hashtags need: raise fanout.call_time_ms's capacity (fewer, larger shards) or add credentials",
                        s.index,
                        s.targets.len()
                    ),
                })
            })
            .collect()
    }

    /// The plan in words, for `check-config`.
    pub fn describe(&self, config: &Config) -> String {
        let mut out = format!(
            "{} plan over {} credential(s): {}\n",
            self.job.name(),
            self.credentials,
            self.capacity.arithmetic
        );
        if !self.is_sharded() {
            let _ = write!(
                out,
                "  1 invocation takes all {} targets (the run needs at most {} calls)",
                self.shards.first().map_or(0, |s| s.targets.len()),
                match self.job {
                    Job::Brands => config.targets.len() as u64,
                    Job::Hashtags => (0..self.credentials)
                        .map(|l| config.hashtag_calls_per_hour(l, self.credentials))
                        .sum(),
                }
            );
            return out;
        }
        let _ = write!(
            out,
            "  {} shards (one invocation each, run in parallel by the state machine):",
            self.shards.len()
        );
        for s in &self.shards {
            let _ = write!(
                out,
                "\n  shard {:>4}: credential {} of {}, {} targets (indexes {}..={}, every {}th)",
                s.index,
                s.credential.map_or(0, |c| c + 1),
                self.credentials,
                s.targets.len(),
                s.targets.first().copied().unwrap_or(0),
                s.targets.last().copied().unwrap_or(0),
                self.credentials,
            );
            if let Some(share) = s.hashtag_share {
                let _ = write!(out, ", {share} hashtag calls/h");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, EMBEDDED, EMBEDDED_NAME};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn config(targets: usize, capacity_calls: u64) -> Config {
        let mut c = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default()).expect("valid");
        let template = c.targets[0].clone();
        c.targets = (0..targets)
            .map(|i| crate::config::Target {
                username: format!("u{i}"),
                hashtag: format!("h{i}"),
                ..template.clone()
            })
            .collect();
        // capacity = concurrency × (60 - 8) s ÷ 1 s
        c.graph.concurrency = 1;
        c.fanout.call_time =
            std::time::Duration::from_millis(52_000 / capacity_calls.clamp(1, 52_000));
        c
    }

    #[test]
    fn the_shipped_configuration_runs_in_one_invocation() {
        let c = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default()).expect("valid");
        for job in [Job::Brands, Job::Hashtags] {
            let p = plan(&c, 1, job);
            assert_eq!(p.shards.len(), 1);
            assert!(!p.is_sharded());
            assert_eq!(p.capacity.calls, 16 * 13, "{}", p.capacity.arithmetic);
            let whole = &p.shards[0];
            for kind in job.kinds() {
                let key = whole.key_template(&c, *kind);
                assert_eq!(key.as_str(), c.key_template(*kind).as_str());
            }
            let capture = whole.raw_capture_key(&c);
            assert_eq!(capture.as_str(), c.output.raw_capture_key.as_str());
            assert!(whole.part().is_none() && whole.share().is_none() && whole.checks_tokens);
        }
    }

    #[test]
    fn a_shard_writes_part_keys_and_gets_its_share() {
        let c = config(60, 12);
        let p = plan(&c, 2, Job::Hashtags);
        assert!(p.is_sharded());
        let s = &p.shards[1];
        assert!(s
            .key_template(&c, Kind::MediaHashtag)
            .as_str()
            .ends_with(".part-0001.json"));
        assert!(s.raw_capture_key(&c).as_str().ends_with("/part-0001"));
        let share = s.share().expect("a share");
        assert_eq!(Some(share.calls), s.hashtag_share);
        assert_eq!(share.of, c.hashtag_calls_per_hour(1, 2));
        assert_eq!(share.name, "part-0001");
        // The daily token check: once per credential, by its first shard.
        let checking: Vec<Option<usize>> = p
            .shards
            .iter()
            .filter(|s| s.checks_tokens)
            .map(|s| s.credential)
            .collect();
        assert_eq!(checking, [Some(0), Some(1)]);
    }

    proptest! {
        /// Every target in exactly one shard, on its own credential; no shard over capacity;
        /// at most 30 hashtags per credential when the budget check passes; shares within each
        /// credential's allowance.
        #[test]
        fn every_target_once_on_its_credential_within_capacity_and_budget(
            targets in 1usize..400,
            lanes in 1usize..8,
            cap in 1u64..200,
            hashtags in any::<bool>(),
        ) {
            let c = config(targets, cap);
            let job = if hashtags { Job::Hashtags } else { Job::Brands };
            let p = plan(&c, lanes, job);
            let mut seen = BTreeSet::new();
            for (k, s) in p.shards.iter().enumerate() {
                prop_assert_eq!(s.index, k);
                prop_assert!(!s.targets.is_empty());
                for &t in &s.targets {
                    prop_assert!(seen.insert(t), "target {} twice", t);
                    if let Some(lane) = s.credential {
                        prop_assert_eq!(t % lanes, lane);
                    }
                }
                if p.is_sharded() && job == Job::Brands {
                    prop_assert!(s.targets.len() as u64 <= p.capacity.calls.max(1));
                }
            }
            prop_assert_eq!(seen.len(), targets);
            if job == Job::Hashtags && p.is_sharded() {
                for lane in 0..lanes {
                    let shares: u64 = p.shards.iter()
                        .filter(|s| s.credential == Some(lane))
                        .filter_map(|s| s.hashtag_share).sum();
                    prop_assert!(shares <= c.hashtag_calls_per_hour(lane, lanes));
                }
            }
            if c.check_budget(lanes).is_ok() {
                for lane in 0..lanes {
                    let on: usize = p.shards.iter()
                        .filter(|s| s.credential.is_none_or(|l| l == lane))
                        .map(|s| s.targets.iter().filter(|&&t| t % lanes == lane).count())
                        .sum();
                    prop_assert!(on <= crate::credential::MAX_HASHTAGS_PER_CREDENTIAL);
                }
            }
        }
    }
}
