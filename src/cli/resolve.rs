//! `resolve-hashtags`: the ids of the hashtags not pinned in the configuration, printed as the
//! lines to paste, so that a normal run makes no search call.

use std::path::PathBuf;

use super::{say, Failure};
use crate::config::Config;
use crate::graph::Source;
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
    // Searched with the credential the hashtags job polls it with (`credential::of`): the
    // API's 30 unique hashtags per 7 days are counted per app user.
    let groups = config.hashtag_groups();
    let on = |i: usize| {
        groups
            .iter()
            .position(|g| g.targets.contains(&i))
            .unwrap_or(0)
    };
    for (i, t) in config.targets.iter().enumerate() {
        if t.hashtag.is_empty() {
            continue;
        }
        if let Some(id) = &t.hashtag_id {
            say!("# {} #{}: already pinned ({id})", t.username, t.hashtag);
            continue;
        }
        match session.hashtag_search(on(i), &t.hashtag).await {
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
