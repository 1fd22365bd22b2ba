//! The simulated S3: one bucket of objects with S3's conditional writes, seen by each delivery
//! through its own [`DeliveryStore`] that injects that delivery's faults (errors, stalls, a crash
//! after the k-th write, an unreadable state). Every write is checked as it lands: nothing
//! written is removed, no value is replaced by a default, no token is stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use futures::future::BoxFuture;
use ig_collector::records::{self, Record};
use ig_collector::sink::{Condition, Object, Store, Written};
use serde_json::Value;

use super::{Breakage, Shared};

/// What a delivery's view of the store does wrong.
#[derive(Debug, Clone, Default)]
pub struct StoreFaults {
    /// Probability of a 5xx on a call.
    pub errors: f64,
    /// Probability of a call that never answers.
    pub stall: f64,
    /// Every write after this many fails (a crash between two writes).
    pub crash_after: Option<usize>,
}

/// One delivery's view of the bucket.
pub struct DeliveryStore {
    pub shared: Arc<Mutex<Shared>>,
    pub faults: StoreFaults,
    writes: AtomicUsize,
}

impl std::fmt::Debug for DeliveryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryStore")
    }
}

impl DeliveryStore {
    pub fn new(shared: Arc<Mutex<Shared>>, faults: StoreFaults) -> DeliveryStore {
        DeliveryStore {
            shared,
            faults,
            writes: AtomicUsize::new(0),
        }
    }

    /// The call's fate: a latency, or an error, or never.
    fn draw(&self) -> (u64, Option<Fate>) {
        let Ok(mut s) = self.shared.lock() else {
            return (0, Some(Fate::Fail("the store is poisoned".into())));
        };
        let latency = s.rng.between(2, 120) as u64;
        let fate = if s.rng.chance(self.faults.stall) {
            Some(Fate::Never)
        } else if s.rng.chance(self.faults.errors) {
            Some(Fate::Fail(
                s.rng
                    .pick(&[
                        "service error: 500 InternalError: We encountered an internal error. Please try again.",
                        "service error: 503 SlowDown: Please reduce your request rate.",
                    ])
                    .to_string(),
            ))
        } else {
            None
        };
        (latency, fate)
    }
}

enum Fate {
    Fail(String),
    Never,
}

impl Store for DeliveryStore {
    fn get(&self, key: &str) -> BoxFuture<'static, Result<Option<Object>, String>> {
        let (latency, fate) = self.draw();
        let shared = self.shared.clone();
        let key = key.to_string();
        Box::pin(async move {
            tokio::time::sleep(StdDuration::from_millis(latency)).await;
            match fate {
                Some(Fate::Never) => futures::future::pending().await,
                Some(Fate::Fail(e)) => Err(e),
                None => {
                    let s = shared.lock().map_err(|_| "poisoned".to_string())?;
                    if key.starts_with("state/") && s.state_forbidden {
                        return Err("service error: 403 AccessDenied: Access Denied".into());
                    }
                    Ok(s.objects.get(&key).map(|(body, tag)| Object {
                        body: body.clone(),
                        etag: format!("\"{tag}\""),
                    }))
                }
            }
        })
    }

    fn put(
        &self,
        key: &str,
        mut body: Vec<u8>,
        condition: &Condition,
    ) -> BoxFuture<'static, Result<Written, String>> {
        let (latency, fate) = self.draw();
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let crashed = self.faults.crash_after.is_some_and(|k| n >= k);
        let shared = self.shared.clone();
        let key = key.to_string();
        let condition = condition.clone();
        Box::pin(async move {
            tokio::time::sleep(StdDuration::from_millis(latency)).await;
            if crashed {
                return Err("connection reset by peer: the process stopped".into());
            }
            match fate {
                Some(Fate::Never) => futures::future::pending().await,
                Some(Fate::Fail(e)) => Err(e),
                None => {
                    let mut s = shared.lock().map_err(|_| "poisoned".to_string())?;
                    let data = records_kind(&key).is_some();
                    let breakage = s.breakage;
                    match breakage {
                        Some(Breakage::StoreDropsARecordInAMerge)
                            if data && matches!(condition, Condition::Matches(_)) =>
                        {
                            body = drop_last(&body);
                        }
                        Some(Breakage::StoreLosesHashtagWrites)
                            if key.contains("media_hashtag") && s.rng.chance(0.3) =>
                        {
                            s.etag += 1;
                            return Ok(Written::Done(format!("\"{}\"", s.etag)));
                        }
                        _ => {}
                    }
                    Ok(s.put(&key, body, &condition))
                }
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let shared = self.shared.clone();
        let prefix = prefix.to_string();
        Box::pin(async move {
            let s = shared.lock().map_err(|_| "poisoned".to_string())?;
            Ok(s.objects
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect())
        })
    }
}

/// The record kind a data key holds, by its folder (`raw/media_hashtag_…`).
pub fn records_kind(key: &str) -> Option<records::Kind> {
    if key.starts_with("raw/media_hashtag_") {
        Some(records::Kind::MediaHashtag)
    } else if key.starts_with("raw/media_") {
        Some(records::Kind::Media)
    } else if key.starts_with("raw/brand_") {
        Some(records::Kind::Brand)
    } else {
        None
    }
}

fn drop_last(body: &[u8]) -> Vec<u8> {
    match records::parse(body) {
        Ok(mut rs) if rs.len() > 1 => {
            rs.pop();
            records::render(&rs, records::Format::Json)
        }
        _ => body.to_vec(),
    }
}

/// A record's identity: its owner and its own id.
pub fn identity(r: &Record) -> (String, String) {
    let text = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let id = if r.contains_key("media_id") {
        text("media_id")
    } else {
        String::new()
    };
    (text("user_id"), id)
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

impl Shared {
    /// A write landing in the bucket, under its condition, checked.
    pub fn put(&mut self, key: &str, body: Vec<u8>, condition: &Condition) -> Written {
        let current = self.objects.get(key).map(|(_, tag)| format!("\"{tag}\""));
        let holds = match (condition, &current) {
            (Condition::Overwrite, _) => true,
            (Condition::Absent, c) => c.is_none(),
            (Condition::Matches(tag), Some(c)) => tag == c,
            (Condition::Matches(_), None) => false,
        };
        if !holds {
            return Written::Conflict;
        }
        self.check_secrets(key, &body);
        if let Some(kind) = records_kind(key) {
            let new = records::parse(&body);
            if let Some((old, _)) = self.objects.get(key) {
                if let Ok(old) = records::parse(old) {
                    self.check_kept(key, &old, &new);
                }
            }
            if let (Ok(new), records::Kind::MediaHashtag) = (&new, kind) {
                for r in new {
                    self.written.insert(identity(r));
                }
            }
        } else if key.starts_with("raw_api/") && self.objects.contains_key(key) {
            self.violate("kept", format!("the capture {key} was replaced"));
        }
        self.etag += 1;
        self.bytes_stored += body.len();
        if let Some((old, _)) = self.objects.insert(key.to_string(), (body, self.etag)) {
            self.bytes_stored -= old.len();
        }
        Written::Done(format!("\"{}\"", self.etag))
    }

    /// Invariant 2: every record of the object's earlier version is still there, and no value
    /// it had is now a default.
    fn check_kept(&mut self, key: &str, old: &[Record], new: &Result<Vec<Record>, String>) {
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                self.violate(
                    "kept",
                    format!("{key} was replaced by an unreadable object: {e}"),
                );
                return;
            }
        };
        let index: std::collections::HashMap<(String, String), &Record> =
            new.iter().map(|r| (identity(r), r)).collect();
        for r in old {
            let id = identity(r);
            let Some(now) = index.get(&id) else {
                self.violate(
                    "kept",
                    format!("{key}: record {id:?} was written, then removed by a later write"),
                );
                return;
            };
            for (field, value) in r {
                let later = now.get(field).unwrap_or(&Value::Null);
                if !is_default(value) && is_default(later) {
                    self.violate(
                        "kept",
                        format!("{key}: record {id:?} field {field} was {value}, then replaced by the default {later}"),
                    );
                    return;
                }
            }
        }
    }

    /// Invariant 5: no token in any object (captures are read through their gzip).
    fn check_secrets(&mut self, key: &str, body: &[u8]) {
        let plain;
        let text: &[u8] = if key.ends_with(".gz") {
            plain = ig_collector::graph::gunzip(body).unwrap_or_default();
            &plain
        } else {
            body
        };
        if let Some(t) = self.leaked(text) {
            self.violate(
                "secret",
                format!("the object {key} holds the token of credential {t}"),
            );
        }
    }
}
