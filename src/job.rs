//! The two scheduled jobs, and what each asks the API for and writes. A leaf: configuration,
//! the planner and the runs all name a job, so it depends on none of them.

use serde::Serialize;

use crate::graph::Endpoint;
use crate::records::Kind;

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// Hourly: each account's profile and latest media (`brand`, `media`).
    Brands,
    /// Every 5 minutes: each hashtag's recent media (`media_hashtag`).
    Hashtags,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Brands => "brands",
            Job::Hashtags => "hashtags",
        }
    }

    /// The endpoints whose `fields=` the job asks for (`graph::fields`).
    pub fn endpoints(self) -> &'static [Endpoint] {
        match self {
            Job::Brands => &[Endpoint::BusinessDiscovery],
            Job::Hashtags => &[Endpoint::RecentMedia],
        }
    }

    /// The record kinds the job writes.
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            Job::Brands => &[Kind::Brand, Kind::Media],
            Job::Hashtags => &[Kind::MediaHashtag],
        }
    }
}
