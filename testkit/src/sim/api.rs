//! The simulated Graph API: a [`Wire`] answering `business_discovery`, `ig_hashtag_search`,
//! `recent_media` and `debug_token` from the [`World`](super::world::World), shaped like Meta's
//! answers (the fake HTTP server's error bodies and usage headers), with the seed's faults, and
//! counting every request per token and time for the budget invariant.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use ig_collector::graph::{Wire, WireAnswer, WireRequest};
use serde_json::{json, Value};

use super::{Breakage, Shared};
use crate::graph::{error_body, headers};

/// One credential as the API knows it.
#[derive(Debug)]
pub struct Token {
    pub token: String,
    pub ig_user_id: String,
    /// Removed credentials are no longer configured; their token still works.
    pub configured: bool,
    /// Code 190 until then (an expired token, replaced by an operator later).
    pub rejected_until: Option<DateTime<Utc>>,
    /// Times of the requests made with it within the last hour, and whether each was the
    /// hashtags job's (`recent_media`, `ig_hashtag_search`).
    pub calls: VecDeque<(DateTime<Utc>, bool)>,
    /// The hour a budget violation was last reported for, so one excess is one line.
    pub reported: Option<DateTime<Utc>>,
}

/// The [`Wire`] the simulated runs' sources send through.
#[derive(Clone)]
pub struct SimGraph(pub Arc<Mutex<Shared>>);

impl std::fmt::Debug for SimGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimGraph")
    }
}

/// What the API does with one request.
enum Reply {
    Answer(u16, Value, u32, u64),
    CutOff(u16, Value, u32),
    Never,
}

impl Wire for SimGraph {
    fn send(&self, request: WireRequest) -> BoxFuture<'static, WireAnswer> {
        let (reply, latency) = match self.0.lock() {
            Ok(mut shared) => {
                let reply = shared.answer(&request);
                let latency = shared.rng.between(20, 900) as u64;
                (reply, latency)
            }
            Err(_) => (Reply::Answer(500, json!({}), 0, 0), 0),
        };
        Box::pin(async move {
            tokio::time::sleep(StdDuration::from_millis(latency)).await;
            match reply {
                Reply::Answer(status, body, usage, regain) => WireAnswer {
                    status,
                    headers: headers(usage, regain),
                    body: Ok(body.to_string().into_bytes()),
                },
                Reply::CutOff(status, body, usage) => {
                    let text = body.to_string();
                    WireAnswer {
                        status,
                        headers: headers(usage, 0),
                        body: Err(text.len() / 2),
                    }
                }
                Reply::Never => futures::future::pending().await,
            }
        })
    }
}

/// What a post is served as: id, timestamp, caption, media type, likes, comments.
type Served = (String, DateTime<Utc>, String, &'static str, u64, u64);

/// The timestamp format of the Graph API.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

/// A post's counts at `now`: they grow while it is seen, so a later answer is a fresher copy.
fn grown(p: &super::world::Post, now: DateTime<Utc>) -> (u64, u64) {
    let minutes = (now - p.ts).num_minutes().max(0) as u64;
    (p.likes + minutes / 3, p.comments + minutes / 45)
}

fn cursor(order: i64, id: &str) -> String {
    format!("QVFI{order}x{id}")
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let rest = c.strip_prefix("QVFI")?;
    let (order, id) = rest.split_once('x')?;
    Some((order.parse().ok()?, id.to_string()))
}

impl Shared {
    /// Counts the request, then decides its answer.
    fn answer(&mut self, request: &WireRequest) -> Reply {
        let now = self.now;
        let token = request.bearer_token().to_string();
        let copies = if self.breakage == Some(Breakage::GraphSendsTwice) {
            2
        } else {
            1
        };
        let Some(t) = self.tokens.iter().position(|t| t.token == token) else {
            return Reply::Answer(
                400,
                error_body(
                    190,
                    None,
                    None,
                    "Invalid OAuth access token - Cannot parse access token",
                ),
                0,
                0,
            );
        };
        let hashtags =
            request.path.ends_with("/recent_media") || request.path == "ig_hashtag_search";
        for _ in 0..copies {
            self.count_call(t, now, hashtags);
        }
        let mut usage = self.rng.between(5, 40) as u32;
        if self.faults.usage_high && self.rng.chance(0.02) {
            usage = self.rng.between(75, 130) as u32;
        }
        if self.tokens[t].rejected_until.is_some_and(|u| now < u) {
            return Reply::Answer(
                400,
                error_body(
                    190,
                    Some(463),
                    None,
                    "Error validating access token: Session has expired",
                ),
                usage,
                0,
            );
        }
        if self.faults.graph_errors {
            if self.rng.chance(0.01) {
                return Reply::Answer(
                    500,
                    error_body(
                        2,
                        None,
                        Some(true),
                        "An unexpected error has occurred. Please retry your request later.",
                    ),
                    usage,
                    0,
                );
            }
            if self.rng.chance(0.003) {
                return Reply::Never;
            }
            if self.rng.chance(0.004) {
                return Reply::CutOff(200, json!({"data": []}), usage);
            }
        }
        if self.faults.throttling && self.rng.chance(0.004) {
            let code = *self.rng.pick(&[4i64, 17, 32, 613]);
            let regain = self.rng.below(90);
            return Reply::Answer(
                if code == 4 { 403 } else { 400 },
                error_body(code, None, Some(true), "Application request limit reached"),
                100,
                regain,
            );
        }
        let path = request.path.as_str();
        if path == "debug_token" {
            return self.debug_token(request, usage);
        }
        if path == "ig_hashtag_search" {
            let q = request.param("q").unwrap_or_default();
            let data = match self.world.tag_by_name(q) {
                Some(i) => json!([{"id": self.world.tags[i].id}]),
                None => json!([]),
            };
            return Reply::Answer(200, json!({ "data": data }), usage, 0);
        }
        if let Some(id) = path.strip_suffix("/recent_media") {
            return self.recent_media(id, request, usage);
        }
        self.business_discovery(t, request, usage)
    }

    fn count_call(&mut self, t: usize, now: DateTime<Utc>, hashtags: bool) {
        let allowance = self.allowance;
        let token = &mut self.tokens[t];
        token.calls.push_back((now, hashtags));
        while token
            .calls
            .front()
            .is_some_and(|c| c.0 <= now - Duration::minutes(60))
        {
            token.calls.pop_front();
        }
        let n = token.calls.len() as u64;
        self.peak_calls = self.peak_calls.max(n);
        if n > allowance && token.reported.is_none_or(|r| now - r >= Duration::hours(1)) {
            token.reported = Some(now);
            let of_hashtags = token.calls.iter().filter(|c| c.1).count();
            let detail = format!(
                "credential {t} made {n} Graph calls ({of_hashtags} of the hashtags job, {} of the brands job) in the 60 minutes to {}, over its allowance of {allowance} (budget.calls_per_hour_per_credential)",
                n as usize - of_hashtags,
                now.to_rfc3339()
            );
            self.violate("budget", detail);
        }
    }

    fn debug_token(&mut self, request: &WireRequest, usage: u32) -> Reply {
        let input = request.param("input_token").unwrap_or_default();
        let valid = self.tokens.iter().any(|t| t.token == input);
        let expires = (self.now + Duration::days(50)).timestamp();
        Reply::Answer(
            200,
            json!({"data": {"app_id": "1234567890", "type": "USER", "application": "ig-collector", "data_access_expires_at": expires, "expires_at": expires, "is_valid": valid, "scopes": ["instagram_basic", "pages_read_engagement"], "user_id": "10150000000000000"}}),
            usage,
            0,
        )
    }

    /// A count as the API sends it, or an odd one.
    fn count(&mut self, n: u64) -> Value {
        if self.faults.odd_values && self.rng.chance(0.01) {
            return self
                .rng
                .pick(&[json!(1e20), json!(-5), json!(3.5), json!("12"), Value::Null])
                .clone();
        }
        json!(n)
    }

    fn recent_media(&mut self, id: &str, request: &WireRequest, usage: u32) -> Reply {
        let Some(tag) = self.world.tag_by_id(id) else {
            return Reply::Answer(
                400,
                error_body(
                    100,
                    Some(33),
                    None,
                    "Unsupported get request. Object does not exist",
                ),
                usage,
                0,
            );
        };
        let limit = request
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(25)
            .min(50);
        let after = match request.param("after") {
            Some(c) => match parse_cursor(c) {
                Some(c) => Some(c),
                None => {
                    return Reply::Answer(
                        400,
                        error_body(100, None, None, "Invalid cursor"),
                        usage,
                        0,
                    )
                }
            },
            None => None,
        };
        let now = self.now;
        let (posts, next) = self.world.page(
            tag,
            now,
            after.as_ref().map(|(o, i)| (*o, i.as_str())),
            limit,
        );
        let posts: Vec<Served> = posts
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.ts,
                    p.caption.clone(),
                    p.media_type,
                    grown(p, now).0,
                    grown(p, now).1,
                )
            })
            .collect();
        let mut data = Vec::with_capacity(posts.len() + 1);
        for (id, ts, caption, media_type, likes, comments) in posts {
            let like_count = self.count(likes);
            let comments_count = self.count(comments);
            data.push(json!({"id": id, "timestamp": stamp(ts), "caption": caption, "media_type": media_type, "like_count": like_count, "comments_count": comments_count}));
        }
        if self.faults.odd_values && !data.is_empty() && self.rng.chance(0.01) {
            let k = self.rng.below(data.len() as u64) as usize;
            let copy = data[k].clone();
            data.insert(k, copy);
        }
        let mut next = next.map(|(o, i)| cursor(o, &i));
        if self.faults.paging && next.is_some() {
            if self.rng.chance(0.01) {
                // The same page again: the cursor that was sent comes back.
                next = Some(
                    request
                        .param("after")
                        .map_or_else(|| cursor(i64::MAX, "9"), str::to_string),
                );
            } else if self.rng.chance(0.003) {
                // A loop: the next page is the first again.
                next = Some(cursor(i64::MAX, "9"));
            }
        }
        let mut body = json!({ "data": data });
        let cursor_after = next.clone().unwrap_or_else(|| "QVFIend".to_string());
        body["paging"] = json!({"cursors": {"before": "QVFIbefore", "after": cursor_after}});
        if let Some(n) = next {
            body["paging"]["next"] = json!(format!(
                "https://graph.facebook.com/v24.0/{id}/recent_media?limit={limit}&after={n}"
            ));
        }
        Reply::Answer(200, body, usage, 0)
    }

    fn business_discovery(&mut self, t: usize, request: &WireRequest, usage: u32) -> Reply {
        let fields = request.param("fields").unwrap_or_default();
        let Some(username) = fields
            .strip_prefix("business_discovery.username(")
            .and_then(|r| r.split_once(')'))
            .map(|(u, _)| u.to_string())
        else {
            return Reply::Answer(
                400,
                error_body(100, None, None, "(#100) Tried accessing nonexisting field"),
                usage,
                0,
            );
        };
        if request.path != self.tokens[t].ig_user_id {
            return Reply::Answer(
                400,
                error_body(100, Some(33), None, "Unsupported get request."),
                usage,
                0,
            );
        }
        let Some(b) = self.world.brand_by_name(&username) else {
            let mut e = error_body(110, Some(2_207_013), Some(false), "Invalid user id");
            e["error"]["error_user_msg"] = json!(format!(
                "The user with username: {username} cannot be found."
            ));
            return Reply::Answer(400, e, usage, 0);
        };
        let now = self.now;
        let posts: Vec<Served> = self
            .world
            .brand_page(b, now, 25)
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.ts,
                    p.caption.clone(),
                    p.media_type,
                    grown(p, now).0,
                    grown(p, now).1,
                )
            })
            .collect();
        let mut data = Vec::new();
        for (id, ts, caption, media_type, likes, comments) in posts {
            let like_count = self.count(likes);
            let comments_count = self.count(comments);
            data.push(json!({"id": id, "timestamp": stamp(ts), "caption": caption, "media_type": media_type, "media_product_type": "FEED", "media_url": format!("https://scontent.cdninstagram.com/v/{id}.jpg"), "permalink": format!("https://www.instagram.com/p/{id}/"), "like_count": like_count, "comments_count": comments_count}));
        }
        let brand = &self.world.brands[b];
        let mut user_id = json!(brand.user_id);
        let (name, followers, media_count) = (
            brand.name.clone(),
            brand.followers,
            brand.media.len() as u64 + 2000,
        );
        if self.faults.odd_values && self.rng.chance(0.005) {
            user_id = json!("17841499999999999");
        }
        let followers = self.count(followers);
        let body = json!({
            "business_discovery": {
                "username": username,
                "name": name,
                "profile_picture_url": format!("https://scontent.cdninstagram.com/v/{username}.jpg"),
                "followers_count": followers,
                "media_count": media_count,
                "media": {"data": data, "paging": {"cursors": {"before": "QVFIbefore", "after": "QVFIafter"}}},
                "id": user_id,
            },
            "id": request.path,
        });
        Reply::Answer(200, body, usage, 0)
    }
}
