//! Where Graph responses come from: the live API over one or more credentials, or a folder of
//! recorded bodies.
//!
//! This module owns the choice of source and the lanes its [`Credentials`] make, and builds the
//! [`Scrubber`] that knows every secret of every credential. It must not make calls itself, nor
//! know of a run: a run's calls go through a [`Session`](super::session::Session), which
//! `Source::session` (in `session`) starts over a source.

use std::path::PathBuf;
use std::sync::Arc;

use super::credentials::Credentials;
use super::error::GraphError;
use super::http::{build_client, LiveClient, Transport, Wire};
use super::token::{AppSecret, Scrubber};
use crate::config::GraphSettings;

/// Where Graph responses come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The Graph API over HTTP, with one or more credentials ("lanes"). Targets are spread over
    /// the lanes, so each credential's hourly budget adds to the schedule's.
    Live(Vec<LiveClient>),
    /// Recorded response bodies in a folder: `brands/{username}.json`,
    /// `hashtag_search/{hashtag}.json`, `hashtags/{hashtag}.json` then `hashtags/{hashtag}.{n}.json`
    /// for page n (each also as `.json.gz`). Raw captures use the same layout.
    Replay(PathBuf),
}

impl Source {
    /// A live source over one or more credentials. Fails only if the TLS stack cannot be set up.
    pub fn live(
        settings: &GraphSettings,
        credentials: Vec<Credentials>,
    ) -> Result<Source, GraphError> {
        let http = build_client(settings)?;
        Ok(Source::over(settings, credentials, Transport::Http(http)))
    }

    /// A live source whose requests go to an in-process [`Wire`] (a simulated Graph API)
    /// instead of over HTTP; everything else is as [`Source::live`].
    pub fn simulated(
        settings: &GraphSettings,
        credentials: Vec<Credentials>,
        wire: Arc<dyn Wire>,
    ) -> Source {
        Source::over(settings, credentials, Transport::Wire(wire))
    }

    fn over(
        settings: &GraphSettings,
        credentials: Vec<Credentials>,
        transport: Transport,
    ) -> Source {
        let clients = credentials
            .into_iter()
            .map(|credentials| LiveClient {
                transport: transport.clone(),
                base: format!("{}/{}", settings.base_url, settings.api_version),
                proof: credentials
                    .app_secret
                    .as_ref()
                    .map(|secret| secret.proof_for(&credentials.token)),
                credentials,
            })
            .collect();
        Source::Live(clients)
    }

    /// How many credentials calls are spread over (1 for replay).
    pub fn lanes(&self) -> usize {
        match self {
            Source::Live(c) => c.len().max(1),
            Source::Replay(_) => 1,
        }
    }

    /// The source of one credential only, for a shard whose targets all use it (`plan`): its
    /// targets then all run on lane 0, which is that credential. `None` past the last lane. A
    /// replay source has one lane for every target.
    pub fn lane(&self, lane: usize) -> Option<Source> {
        match self {
            Source::Live(clients) => clients.get(lane).map(|c| Source::Live(vec![c.clone()])),
            Source::Replay(dir) => Some(Source::Replay(dir.clone())),
        }
    }

    /// True when credential `lane`'s token can be exchanged for a fresh one
    /// ([`Credentials::can_exchange`]); never for a replay.
    pub fn can_exchange(&self, lane: usize) -> bool {
        match self {
            Source::Live(clients) => clients
                .get(lane)
                .is_some_and(|c| c.credentials.can_exchange()),
            Source::Replay(_) => false,
        }
    }

    /// Every secret of every credential: tokens, app secrets and the proofs derived from them.
    /// Any response may echo any of them (a shared app, a proxy), whichever lane asked.
    pub fn scrubber(&self) -> Scrubber {
        match self {
            Source::Live(clients) => Scrubber::new(clients.iter().flat_map(|c| {
                [
                    Some(c.credentials.token.expose()),
                    c.credentials.app_secret.as_ref().map(AppSecret::expose),
                    c.proof.as_deref(),
                ]
                .into_iter()
                .flatten()
            })),
            Source::Replay(_) => Scrubber::default(),
        }
    }
}
