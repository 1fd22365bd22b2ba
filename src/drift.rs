//! The fields the Graph API reported removed, remembered between runs. **Pure: no IO**;
//! `collect` reads and writes the object (`graph.removed_fields_key`) through `sink`.
//!
//! Meta removes fields between API versions. The first run that asks for one is refused (code
//! 100), leaves it out and asks again (`graph::fields`); this object is how the runs after it,
//! of both jobs and every shard, leave it out of their first call instead of tripping over it
//! again. An entry is keyed by what it describes: the API version, the endpoint and the field
//! (`v24.0`, `business_discovery`, `media.media_product_type`). A run applies only the entries of
//! its configured version, so changing `graph.api_version` starts afresh: the new version is
//! asked for every field, and the old version's entries stay for a switch back.
//!
//! Like the hashtag state, the object only grows by merging: two runs that each found a field
//! write the union (`RemovedFields::merge`), and an entry is never dropped because a newer
//! program no longer asks for its field. Reading it never fails as a whole: an unreadable object
//! is treated as empty (the caller says so and keeps it aside), and entries this program could
//! not have written are left out, each with a note.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::{Endpoint, FieldRef, Omitted};

/// The most entries kept: every field of every endpoint over dozens of API versions; more
/// cannot have been written by this program. Past it, the oldest entries are forgotten (a
/// forgotten field costs one refused call per target, once).
pub const MAX_ENTRIES: usize = 1_000;

/// The largest object read; a larger one is unreadable (an entry is about 150 bytes).
pub const MAX_BYTES: usize = 1 << 20;

/// The longest API version, endpoint or field name an entry may hold.
const MAX_TEXT: usize = 100;

/// What an entry describes: a field of an endpoint's request in one API version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub api_version: String,
    pub endpoint: String,
    /// As the request names it, the edge first for a nested field (`media.like_count`).
    pub field: String,
}

impl Key {
    fn of(api_version: &str, field: &FieldRef) -> Key {
        Key {
            api_version: api_version.to_string(),
            endpoint: field.endpoint().name().to_string(),
            field: field.qualified(),
        }
    }

    /// The field this entry names in this program's tables, when it names one.
    fn field_ref(&self) -> Option<FieldRef> {
        FieldRef::parse(Endpoint::parse(&self.endpoint)?, &self.field)
    }
}

/// The fields reported removed, per API version, endpoint and field, with when each was first
/// reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedFields {
    /// Entry → the scheduled time (RFC 3339) of the first run that was refused it.
    entries: BTreeMap<Key, String>,
}

/// The object as stored: a version and a list of entries.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    #[serde(default)]
    removed: Vec<Value>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    api_version: String,
    endpoint: String,
    field: String,
    since: String,
}

/// One field a run left out of its requests, as its summary names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldRemoved {
    pub api_version: String,
    pub endpoint: Endpoint,
    /// As the request names it (`media.media_product_type`).
    pub field: String,
    /// When a run was first refused it (its scheduled time, RFC 3339).
    pub since: String,
    /// True when this run was refused it; false when an earlier run was and this one left it out
    /// from its first call.
    pub found_this_run: bool,
}

impl RemovedFields {
    /// Reads the stored object. `Err` when it is not one at all (not JSON, another shape, too
    /// large): the caller treats it as empty and says so. Entries this program could not have
    /// written (an API version not shaped like `v24.0`, an unknown endpoint, a name too long or
    /// with control characters, an unreadable time) are left out and described.
    pub fn parse(bytes: &[u8]) -> Result<(RemovedFields, Vec<String>), String> {
        if bytes.len() > MAX_BYTES {
            return Err(format!(
                "{} bytes, more than this program ever writes ({MAX_BYTES})",
                bytes.len()
            ));
        }
        let stored: Stored = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a removed-fields object: {e}"))?;
        let mut notes = Vec::new();
        let mut out = RemovedFields::default();
        let mut ignored = 0;
        for value in stored.removed {
            let Some((key, since)) = serde_json::from_value::<StoredEntry>(value)
                .ok()
                .and_then(checked)
            else {
                ignored += 1;
                continue;
            };
            out.add_entry(key, since);
        }
        if ignored > 0 {
            notes.push(format!("{ignored} unreadable entries ignored"));
        }
        let forgotten = out.bound();
        if forgotten > 0 {
            notes.push(format!(
                "{forgotten} oldest entries past the bound ({MAX_ENTRIES}) forgotten"
            ));
        }
        Ok((out, notes))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let removed = self
            .entries
            .iter()
            .map(|(k, since)| {
                serde_json::to_value(StoredEntry {
                    api_version: k.api_version.clone(),
                    endpoint: k.endpoint.clone(),
                    field: k.field.clone(),
                    since: since.clone(),
                })
                .unwrap_or(Value::Null)
            })
            .collect();
        serde_json::to_vec_pretty(&Stored {
            version: 1,
            removed,
        })
        .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields `api_version`'s requests leave out: its entries that name a field this
    /// program asks for and can do without (never an id, whatever the object says).
    pub fn omitted(&self, api_version: &str) -> Omitted {
        let mut omitted = Omitted::default();
        for key in self.entries.keys().filter(|k| k.api_version == api_version) {
            if let Some(field) = key.field_ref() {
                omitted.insert(field);
            }
        }
        omitted
    }

    /// When `field` was first reported removed from `api_version`.
    pub fn since(&self, api_version: &str, field: &FieldRef) -> Option<&str> {
        self.entries
            .get(&Key::of(api_version, field))
            .map(String::as_str)
    }

    /// Records that `api_version` no longer has `field`, first reported by the run scheduled at
    /// `at`. Returns whether the entry is new (an entry keeps its first time).
    pub fn add(&mut self, api_version: &str, field: &FieldRef, at: DateTime<Utc>) -> bool {
        let since = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let key = Key::of(api_version, field);
        if self.entries.contains_key(&key) {
            return false;
        }
        self.add_entry(key, since);
        self.bound();
        true
    }

    /// This object and one another run wrote meanwhile: every entry of either, each with the
    /// earlier time.
    pub fn merge(&self, other: &RemovedFields) -> RemovedFields {
        let mut out = self.clone();
        for (key, since) in &other.entries {
            out.add_entry(key.clone(), since.clone());
        }
        out.bound();
        out
    }

    fn add_entry(&mut self, key: Key, since: String) {
        let time = |t: &str| DateTime::parse_from_rfc3339(t).ok();
        match self.entries.get_mut(&key) {
            Some(kept) if time(&since) < time(kept) => *kept = since,
            Some(_) => {}
            None => {
                self.entries.insert(key, since);
            }
        }
    }

    /// Keeps at most [`MAX_ENTRIES`], the newest; returns how many were forgotten.
    fn bound(&mut self) -> usize {
        let over = self.entries.len().saturating_sub(MAX_ENTRIES);
        if over == 0 {
            return 0;
        }
        let mut by_age: Vec<(Option<DateTime<chrono::FixedOffset>>, Key)> = self
            .entries
            .iter()
            .map(|(k, since)| (DateTime::parse_from_rfc3339(since).ok(), k.clone()))
            .collect();
        by_age.sort();
        for (_, key) in by_age.into_iter().take(over) {
            self.entries.remove(&key);
        }
        over
    }
}

/// An entry as this program writes it, or `None`.
fn checked(e: StoredEntry) -> Option<(Key, String)> {
    let text_ok = |s: &str| {
        !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(|c| c.is_control() || c == '/')
    };
    let version_ok = e
        .api_version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
        });
    let ok = version_ok
        && Endpoint::parse(&e.endpoint).is_some()
        && text_ok(&e.field)
        && DateTime::parse_from_rfc3339(&e.since).is_ok();
    if !ok {
        return None;
    }
    let key = Key {
        api_version: e.api_version,
        endpoint: e.endpoint,
        field: e.field,
    };
    Some((key, e.since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Kind;

    fn at(h: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0)
            .single()
            .expect("a time")
    }

    fn product_type() -> FieldRef {
        FieldRef::find(
            Endpoint::BusinessDiscovery,
            Kind::Media,
            "media_product_type",
        )
        .expect("in the table")
    }

    fn likes() -> FieldRef {
        FieldRef::find(Endpoint::RecentMedia, Kind::MediaHashtag, "like_count")
            .expect("in the table")
    }

    #[test]
    fn entries_apply_to_their_api_version_only_and_survive_a_round_trip() {
        let mut r = RemovedFields::default();
        assert!(r.add("v24.0", &product_type(), at(1)));
        assert!(
            !r.add("v24.0", &product_type(), at(2)),
            "kept once, first time"
        );
        assert!(r.add("v24.0", &likes(), at(3)));
        assert_eq!(
            r.since("v24.0", &product_type()),
            Some("2026-03-01T01:00:00Z")
        );
        let omitted = r.omitted("v24.0");
        assert!(omitted.contains(&product_type()) && omitted.contains(&likes()));
        assert!(r.omitted("v25.0").is_empty(), "a new version starts afresh");
        let (back, notes) = RemovedFields::parse(&r.to_bytes()).expect("readable");
        assert_eq!(back, r);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_merge_keeps_every_entry_of_both_with_the_earlier_time() {
        let mut a = RemovedFields::default();
        a.add("v24.0", &product_type(), at(5));
        let mut b = RemovedFields::default();
        b.add("v24.0", &product_type(), at(2));
        b.add("v25.0", &likes(), at(3));
        for merged in [a.merge(&b), b.merge(&a)] {
            assert_eq!(merged.len(), 2);
            assert_eq!(
                merged.since("v24.0", &product_type()),
                Some("2026-03-01T02:00:00Z")
            );
            assert!(merged.omitted("v25.0").contains(&likes()));
        }
    }

    #[test]
    fn a_hostile_object_is_unreadable_or_cleaned_never_a_panic_and_never_removes_an_id() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"removed\": 3}",
            b"{\"version\": 1, \"removed\": {}}",
            &[0xff, 0xfe][..],
        ] {
            assert!(
                RemovedFields::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(RemovedFields::parse(&vec![b' '; MAX_BYTES + 1]).is_err());
        let entry = |v: &str, e: &str, f: &str, s: &str| serde_json::json!({"api_version": v, "endpoint": e, "field": f, "since": s});
        let t = "2026-03-01T01:00:00Z";
        let object = serde_json::json!({"version": 1, "removed": [
            entry("v24.0", "business_discovery", "media.media_product_type", t),
            entry("v24.0", "business_discovery", "media.id", t),
            entry("v24.0", "business_discovery", "id", t),
            entry("v24.0", "recent_media", "a_field_of_a_later_program", t),
            entry("latest", "recent_media", "like_count", t),
            entry("v24.0", "graph_explorer", "like_count", t),
            entry("v24.0", "recent_media", "like\ncount", t),
            entry("v24.0", "recent_media", &"x".repeat(101), t),
            entry("v24.0", "recent_media", "like_count", "yesterday"),
            serde_json::json!({"api_version": 24}),
            serde_json::json!("v24.0"),
        ]});
        let (r, notes) = RemovedFields::parse(object.to_string().as_bytes()).expect("readable");
        assert_eq!(notes, ["7 unreadable entries ignored"]);
        // Kept, and written back: a later program's field, and ids (never applied).
        assert_eq!(r.len(), 4);
        let omitted = r.omitted("v24.0");
        assert_eq!(omitted.iter().collect::<Vec<_>>(), [&product_type()]);
    }

    #[test]
    fn the_object_is_bounded_and_forgets_its_oldest_entries() {
        let entries: Vec<Value> = (0..MAX_ENTRIES + 5)
            .map(|i| {
                serde_json::json!({"api_version": format!("v{}.0", i % 500), "endpoint": "recent_media",
                    "field": format!("f{i}"), "since": format!("2026-03-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60)})
            })
            .collect();
        let object = serde_json::json!({"version": 1, "removed": entries});
        let (r, notes) = RemovedFields::parse(object.to_string().as_bytes()).expect("readable");
        assert_eq!(r.len(), MAX_ENTRIES);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("5 oldest"), "{notes:?}");
    }
}
