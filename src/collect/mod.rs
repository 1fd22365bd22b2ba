//! The two jobs: fetch from the Graph API, flatten and validate, write one object per kind.
//!
//! A target's failure is recorded and the others go on; the run fails as a whole only when the
//! token is rejected, every target failed, the state could not be read, or a write failed: the
//! cases where Lambda should retry or an operator must act.
//!
//! - [`run`](run::run): the orchestration of one run, from its scheduled time to its summary;
//! - `booking`: the run's calls booked in the credentials' ledger before any is made;
//! - `brands`, `hashtags`: what each job fetches and keeps; `history`: an account's pages past
//!   its first (lookback and backfill);
//! - `collected`: what a run holds between its calls and its writes;
//! - `persist`: the one writer, and the order it writes in (data, capture, state);
//! - `merge`: the one conditional-put-and-merge loop every write of a shared object goes through;
//! - `store`: the state (and the removed fields): load, reserve, save, set aside;
//! - `output`: a data object assembled as the answers arrive (in memory, then a temporary file);
//! - `drift`: the fields the API version no longer has, read before the first call and written
//!   back when the run finds one;
//! - `events`: what a run tells about itself, one struct per thing that happens, logged and
//!   counted in one place;
//! - `summary`: what the run did ([`RunSummary`]) and why it failed ([`RunError`]).
//!
//! They import one way only: `run` → `booking` → the jobs → `persist` → `store` → `merge`.
//!
//! Nothing here knows Graph JSON (`graph::shapes` does) or S3 (`sink` does).

mod booking;
mod brands;
mod collected;
mod drift;
mod events;
mod hashtags;
mod history;
mod merge;
mod output;
mod persist;
mod run;
mod store;
mod summary;

use crate::config::{Config, KeyTemplate};
use crate::graph::Source;
use crate::plan::Shard;
use crate::sink::Sink;

pub use crate::job::Job;
pub use collected::Deadlines;
pub use run::{run, run_until};
pub use summary::{FailedTarget, RunError, RunSummary};

/// Everything a run needs, built once per process.
#[derive(Debug)]
pub struct App {
    /// The checked configuration, never changed after: a shard runs with the same one, and
    /// its part of it is [`App::shard`]'s description.
    pub config: Config,
    pub source: Source,
    pub sink: Sink,
    /// The clock runs read (the system's, but for a simulation).
    pub clock: crate::schedule::Clock,
    /// The shard of the plan this app runs (`None`: the whole run, every credential, the
    /// usual keys).
    pub shard: Option<Shard>,
}

impl App {
    /// The fan-out plan of `job` over this app's credentials.
    pub fn plan(&self, job: Job) -> crate::plan::Plan {
        crate::plan::plan(&self.config, self.source.lanes(), job)
    }

    /// The app shard `index` of `job` runs as: the same configuration, the shard's description
    /// (its targets, part keys, hashtag share, token duty) and, for a shard of one credential,
    /// a source of that credential only, so every target of the shard is called with the
    /// credential the plan gave it. The same sink: part files go under the same prefixes.
    /// `None`: no such shard.
    pub fn shard(&self, job: Job, index: usize) -> Option<App> {
        let plan = self.plan(job);
        let shard = plan.shards.get(index)?.clone();
        let source = match shard.credential {
            Some(lane) => self.source.lane(lane)?,
            None => self.source.clone(),
        };
        Some(App {
            clock: self.clock.clone(),
            config: self.config.clone(),
            source,
            sink: self.sink.clone(),
            shard: shard.credential.is_some().then_some(shard),
        })
    }

    /// The targets a run of `job` calls for (indexes into `Config::targets`, in configuration
    /// order): the shard's, or every account (brands), or every target with a hashtag.
    pub fn targets(&self, job: Job) -> Vec<usize> {
        if let Some(shard) = &self.shard {
            return shard.targets.clone();
        }
        let all = self.config.targets.iter().enumerate();
        match job {
            Job::Brands => all.map(|(i, _)| i).collect(),
            Job::Hashtags => all
                .filter(|(_, t)| !t.hashtag.is_empty())
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The hashtags of this app's targets, grouped (`Config::hashtag_groups_of`).
    pub fn hashtag_groups(&self) -> Vec<crate::config::HashtagGroup> {
        match &self.shard {
            Some(shard) => self.config.hashtag_groups_of(shard.targets.iter().copied()),
            None => self.config.hashtag_groups(),
        }
    }

    /// The key template of `kind`'s data objects: a shard's writes its part.
    pub fn key_template(&self, kind: crate::records::Kind) -> KeyTemplate {
        match &self.shard {
            Some(shard) => shard.key_template(&self.config, kind),
            None => self.config.key_template(kind).clone(),
        }
    }

    /// The raw capture's folder template: a shard's captures go to its part's folder.
    pub fn raw_capture_key(&self) -> KeyTemplate {
        match &self.shard {
            Some(shard) => shard.raw_capture_key(&self.config),
            None => self.config.output.raw_capture_key.clone(),
        }
    }

    /// Whether runs of this app make the daily token check.
    pub fn checks_tokens(&self) -> bool {
        self.shard.as_ref().is_none_or(|s| s.checks_tokens)
    }
}
