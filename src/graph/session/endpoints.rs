//! The Graph endpoints a run calls, each through the one call path (`Session::call`), or
//! replayed from the recorded bodies when there is no live client.

use serde_json::Value;

use super::{Need, Session};
use crate::graph::debug_token::{self, DebugToken};
use crate::graph::error::{ErrorKind, GraphError};
use crate::graph::fields::{business_discovery_fields, recent_media_fields, Endpoint, Omitted};
use crate::graph::http::Request;
use crate::graph::replay;
use crate::graph::shapes;

impl Session<'_> {
    /// `GET /{ig-user-id}?fields=business_discovery.username(…){…}`: a profile and its latest media.
    pub async fn business_discovery(
        &self,
        lane: usize,
        username: &str,
    ) -> Result<Value, GraphError> {
        let capture = replay::brand_path(username);
        self.discover(lane, username, None, Need::Required, capture)
            .await
    }

    /// `business_discovery` with its media from the cursor `after` on
    /// (`media.after(…).limit(n)`): page `page` (2 or more) of the brands job's lookback or
    /// backfill. An optional call (dropped when usage is high), through the same call path as
    /// every other.
    pub async fn business_discovery_page(
        &self,
        lane: usize,
        username: &str,
        after: &str,
        page: u32,
    ) -> Result<Value, GraphError> {
        let capture = replay::brand_page_path(username, page);
        self.discover(lane, username, Some(after), Need::Optional, capture)
            .await
    }

    /// One `business_discovery` call of `username`'s profile and media (from `after` on),
    /// replayed from `capture` when there is no live client.
    async fn discover(
        &self,
        lane: usize,
        username: &str,
        after: Option<&str>,
        need: Need,
        capture: String,
    ) -> Result<Value, GraphError> {
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let limit = self.settings.brand_media_limit;
                let request = |omitted: &Omitted| Request::Get {
                    path: c.credentials.ig_user_id.clone(),
                    query: vec![(
                        "fields",
                        business_discovery_fields(username, limit, after, omitted),
                    )],
                };
                self.call_fields(Endpoint::BusinessDiscovery, lane, c, request, need, capture)
                    .await
            }
        }
    }

    /// `GET /ig_hashtag_search?user_id=…&q=…`: the id of a hashtag.
    pub async fn hashtag_search(&self, lane: usize, hashtag: &str) -> Result<String, GraphError> {
        let capture = replay::hashtag_search_path(hashtag);
        let body = match self.client(lane) {
            None => self.replay(&capture).await?,
            Some((lane, c)) => {
                let request = Request::Get {
                    path: "ig_hashtag_search".into(),
                    query: vec![
                        ("user_id", c.credentials.ig_user_id.clone()),
                        ("q", hashtag.to_string()),
                    ],
                };
                self.call(lane, c, request, Need::Required, Some(capture))
                    .await?
            }
        };
        shapes::hashtag_search_id(&body).ok_or_else(|| GraphError {
            attempts: 1,
            ..GraphError::local(
                ErrorKind::NotFound,
                format!("ig_hashtag_search found no id for #{hashtag}"),
            )
        })
    }

    /// `GET /{hashtag-id}/recent_media?user_id=…&fields=…&limit=…[&after=…]`: page `page` (1-based).
    pub async fn recent_media(
        &self,
        lane: usize,
        hashtag: &str,
        hashtag_id: &str,
        after: Option<&str>,
        page: u32,
        need: Need,
    ) -> Result<Value, GraphError> {
        let capture = replay::recent_media_path(hashtag, page);
        match self.client(lane) {
            None => self.replay(&capture).await,
            Some((lane, c)) => {
                let request = |omitted: &Omitted| {
                    let mut query = vec![
                        ("user_id", c.credentials.ig_user_id.clone()),
                        ("fields", recent_media_fields(omitted)),
                        ("limit", self.settings.hashtag_media_limit.to_string()),
                    ];
                    if let Some(a) = after {
                        query.push(("after", a.to_string()));
                    }
                    Request::Get {
                        path: format!("{hashtag_id}/recent_media"),
                        query,
                    }
                };
                let endpoint = Endpoint::RecentMedia;
                self.call_fields(endpoint, lane, c, request, need, capture)
                    .await
            }
        }
    }

    /// `POST /debug_token` with `method=GET`: what the API knows of the token, read by
    /// [`debug_token::read`]. The token goes in the form body (and the header), never in the
    /// URL. Retried, throttled and bounded by the deadline like every other call; its body is
    /// not captured (it is not collected data).
    pub async fn debug_token(&self, lane: usize) -> Result<DebugToken, GraphError> {
        let Some((lane, c)) = self.client(lane) else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no live credentials (replay)",
            ));
        };
        let request = Request::Form {
            path: "debug_token".into(),
            form: vec![
                ("method", "GET".to_string()),
                ("input_token", c.credentials.token.expose().to_string()),
            ],
        };
        let body = self.call(lane, c, request, Need::Required, None).await?;
        debug_token::read(&body)
    }
}
