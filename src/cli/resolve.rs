//! `resolve-hashtags`: the ids of the hashtags not pinned in the configuration, printed as the
//! lines to paste, so that a normal run makes no search call.

use std::path::PathBuf;

use super::{say, Failure};
use crate::config::Config;
use crate::graph::Source;
use crate::job::Job;
use crate::setup::{self, Env};

/// Searches each unpinned hashtag on the credential the hashtags job would use for it; a search
/// that fails is said on stderr and the others go on.
pub(super) async fn hashtags(
    config: Config,
    env: &Env,
    replay: Option<PathBuf>,
) -> Result<(), Failure> {
    let source = match replay {
        Some(dir) => Source::Replay(dir),
        None => Source::live(&config.graph, setup::credentials(env, None).await?)?,
    };
    let session = source.session(&config.retry, &config.graph, None);
    let mut failed = 0;
    say!("# Paste under each [[targets]] entry of {}:", config.file);
    // The hashtags job's credentials: the i-th hashtag on credential i mod n.
    let hashtags = config.for_job(Job::Hashtags);
    for (i, t) in hashtags.targets.iter().enumerate() {
        if let Some(id) = &t.hashtag_id {
            say!("# {} #{}: already pinned ({id})", t.username, t.hashtag);
            continue;
        }
        match session.hashtag_search(i, &t.hashtag).await {
            Ok(id) => say!("# {} #{}\nhashtag_id = \"{id}\"", t.username, t.hashtag),
            Err(e) => {
                failed += 1;
                eprintln!("#{}: {e}", t.hashtag);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::run(format!("{failed} hashtag(s) not resolved")));
    }
    Ok(())
}
