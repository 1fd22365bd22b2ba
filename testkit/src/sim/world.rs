//! The simulated Instagram: brand accounts that post every few hours, and hashtags whose posts
//! arrive at seeded rates, some listed minutes late and slightly out of order.
//!
//! A hashtag's posts are kept sorted by their listing order, so a page is a walk from a cursor
//! rather than a sort of a day of posts.

use chrono::{DateTime, Duration, Utc};

use super::rng::Rng;

/// One post (a hashtag's or a brand's).
#[derive(Debug, Clone)]
pub struct Post {
    pub id: String,
    pub ts: DateTime<Utc>,
    /// When the API starts listing it (a few seconds after `ts`, or minutes when late).
    pub listed: DateTime<Utc>,
    /// Its place in `recent_media`'s newest-first order (ms): its timestamp, or near it.
    pub order: i64,
    pub caption: String,
    pub media_type: &'static str,
    pub likes: u64,
    pub comments: u64,
}

impl Post {
    /// Whether `recent_media` lists it at `now`: listed, and inside the API's 24 hours.
    pub fn visible(&self, now: DateTime<Utc>) -> bool {
        self.listed <= now && self.ts > now - Duration::hours(24)
    }

    /// Whether the API listed it at all before it aged out.
    pub fn ever_listed(&self) -> bool {
        self.listed < self.ts + Duration::hours(24)
    }
}

#[derive(Debug)]
pub struct Tag {
    pub name: String,
    pub id: String,
    pub per_hour: f64,
    /// Sorted by `(order, id)`, oldest first.
    pub posts: Vec<Post>,
    next_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Brand {
    pub username: String,
    pub user_id: String,
    pub name: String,
    pub followers: u64,
    pub every_hours: f64,
    /// Newest last.
    pub media: Vec<Post>,
    next_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct World {
    rng: Rng,
    pub now: DateTime<Utc>,
    pub tags: Vec<Tag>,
    pub brands: Vec<Brand>,
    next_id: u64,
    /// Upper bound of a caption's length.
    pub caption_max: usize,
}

const MEDIA_TYPES: &[&str] = &["IMAGE", "VIDEO", "CAROUSEL_ALBUM"];

impl World {
    pub fn new(rng: Rng, now: DateTime<Utc>, caption_max: usize) -> World {
        World {
            rng,
            now,
            tags: Vec::new(),
            brands: Vec::new(),
            next_id: 1,
            caption_max,
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("18{:016}", self.next_id)
    }

    /// A hashtag with posts arriving at `per_hour`; returns its index.
    pub fn add_tag(&mut self, name: &str, per_hour: f64) -> usize {
        let id = format!("178414{:011}", self.tags.len() + 1);
        let first = self.arrival(self.now, per_hour);
        self.tags.push(Tag {
            name: name.to_string(),
            id,
            per_hour,
            posts: Vec::new(),
            next_at: first,
        });
        self.tags.len() - 1
    }

    pub fn add_brand(&mut self, username: &str) -> usize {
        let user_id = format!("178414{:011}", 50_000 + self.brands.len());
        let every_hours = 1.0 + self.rng.unit() * 8.0;
        let followers = self.rng.below(20_000_000);
        let first = self.arrival(self.now, 1.0 / every_hours);
        let mut brand = Brand {
            username: username.to_string(),
            user_id,
            name: format!("{} official", username.to_uppercase()),
            followers,
            every_hours,
            media: Vec::new(),
            next_at: first,
        };
        // An account has a history: its last 30 posts, before the simulation starts.
        for k in (1..=30).rev() {
            let ts = self.now - Duration::minutes((k as f64 * every_hours * 60.0) as i64);
            let post = self.post(ts, false);
            brand.media.push(post);
        }
        self.brands.push(brand);
        self.brands.len() - 1
    }

    fn arrival(&mut self, from: DateTime<Utc>, per_hour: f64) -> DateTime<Utc> {
        let u = self.rng.unit().max(1e-12);
        let hours = -u.ln() / per_hour.max(1e-6);
        from + Duration::milliseconds((hours * 3_600_000.0).min(1e12) as i64)
    }

    fn post(&mut self, ts: DateTime<Utc>, hashtag: bool) -> Post {
        let late = hashtag && self.rng.chance(0.08);
        let listed = if late {
            ts + Duration::seconds(self.rng.between(60, 900))
        } else {
            ts + Duration::seconds(self.rng.between(0, 20))
        };
        let order = if hashtag && self.rng.chance(0.15) {
            ts.timestamp_millis() + self.rng.between(-90_000, 90_000)
        } else {
            ts.timestamp_millis()
        };
        let len = self.rng.below(self.caption_max as u64) as usize;
        let caption = format!("{} #sim {}", self.rng.word(8), self.rng.word(len));
        Post {
            id: self.id(),
            ts,
            listed,
            order,
            caption,
            media_type: MEDIA_TYPES[self.rng.below(3) as usize],
            likes: self.rng.below(5000),
            comments: self.rng.below(300),
        }
    }

    /// Moves time to `to`: posts whose timestamps fall before it arrive; posts older than the
    /// API's 24 hours (and a margin for the checks) are forgotten.
    pub fn advance(&mut self, to: DateTime<Utc>) {
        for t in 0..self.tags.len() {
            while self.tags[t].next_at < to {
                let ts = self.tags[t].next_at;
                let post = self.post(ts, true);
                let rate = self.tags[t].per_hour;
                let next = self.arrival(ts, rate);
                let tag = &mut self.tags[t];
                let key = (post.order, post.id.clone());
                let at = tag
                    .posts
                    .partition_point(|p| (p.order, p.id.as_str()) < (key.0, key.1.as_str()));
                tag.posts.insert(at, post);
                tag.next_at = next;
            }
            let horizon = to - Duration::hours(25);
            let old = self.tags[t]
                .posts
                .partition_point(|p| p.order < horizon.timestamp_millis());
            self.tags[t].posts.drain(..old);
        }
        for b in 0..self.brands.len() {
            while self.brands[b].next_at < to {
                let ts = self.brands[b].next_at;
                let post = self.post(ts, false);
                let rate = 1.0 / self.brands[b].every_hours;
                let next = self.arrival(ts, rate);
                let brand = &mut self.brands[b];
                brand.media.push(post);
                if brand.media.len() > 60 {
                    brand.media.remove(0);
                }
                brand.next_at = next;
            }
        }
        self.now = to;
    }

    pub fn tag_by_id(&self, id: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.id == id)
    }

    pub fn tag_by_name(&self, name: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.name == name)
    }

    pub fn brand_by_name(&self, username: &str) -> Option<usize> {
        self.brands.iter().position(|b| b.username == username)
    }

    /// One page of `recent_media` at `now`: up to `limit` visible posts, newest first, after
    /// the cursor `(order, id)`; and the cursor of its last post when more follow.
    pub fn page(
        &self,
        tag: usize,
        now: DateTime<Utc>,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> (Vec<&Post>, Option<(i64, String)>) {
        let posts = &self.tags[tag].posts;
        let end = match after {
            Some((order, id)) => posts.partition_point(|p| (p.order, p.id.as_str()) < (order, id)),
            None => posts.len(),
        };
        let mut out = Vec::new();
        let mut i = end;
        while i > 0 {
            i -= 1;
            let p = &posts[i];
            if p.ts <= now - Duration::hours(24)
                && p.order < (now - Duration::hours(24)).timestamp_millis() - 120_000
            {
                break;
            }
            if !p.visible(now) {
                continue;
            }
            if out.len() == limit {
                let last: &&Post = out.last().expect("a full page");
                return (out.clone(), Some((last.order, last.id.clone())));
            }
            out.push(p);
        }
        (out, None)
    }

    /// An account's newest `limit` posts at `now`, newest first.
    pub fn brand_page(&self, brand: usize, now: DateTime<Utc>, limit: usize) -> Vec<&Post> {
        self.brands[brand]
            .media
            .iter()
            .rev()
            .filter(|p| p.ts <= now)
            .take(limit)
            .collect()
    }
}
