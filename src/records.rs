//! The three record kinds and their fields: the output contract.
//!
//! Each kind is a table of [`Field`]s, in output order. The table is the single definition of a
//! record: `validate` builds records from it, and `graph` derives the `fields=` expression it asks
//! the API for from it, so the request and the output cannot drift apart.

use serde::Serialize;
use serde_json::{Map, Value};

mod encoding;

pub use encoding::{parse, render, Compression, Format, Fragment, Joiner};

/// A record kind, one output file each per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Brand,
    Media,
    MediaHashtag,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Brand, Kind::Media, Kind::MediaHashtag];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Brand => "brand",
            Kind::Media => "media",
            Kind::MediaHashtag => "media_hashtag",
        }
    }

    /// The kind a name (`brand`, `media`, `media_hashtag`) stands for.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The fields taken from the API object, in output order.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Kind::Brand => BRAND,
            Kind::Media => MEDIA,
            Kind::MediaHashtag => MEDIA_HASHTAG,
        }
    }

    /// The output field filled from the owning brand rather than from the API object; it comes
    /// first. `media_hashtag` needs it because the API does not say who posted.
    pub fn parent_field(self) -> Option<&'static str> {
        match self {
            Kind::Brand => None,
            Kind::Media | Kind::MediaHashtag => Some("user_id"),
        }
    }

    /// The output name of the record's own id (the record is dropped without a valid one).
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Brand => "user_id",
            Kind::Media | Kind::MediaHashtag => "media_id",
        }
    }

    /// The output name of the post's time, for the kinds that are posts.
    pub fn time_field(self) -> Option<&'static str> {
        match self {
            Kind::Brand => None,
            Kind::Media | Kind::MediaHashtag => Some("timestamp"),
        }
    }

    /// The fields that identify a record of this kind. A `media` post belongs to the account
    /// that posted it, so its id alone is the key; a `media_hashtag` post is one record per brand
    /// whose hashtag found it, so the same `media_id` repeats under each such `user_id`.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            Kind::Brand => &["user_id"],
            Kind::Media => &["media_id"],
            Kind::MediaHashtag => &["user_id", "media_id"],
        }
    }

    /// Output field names in order, the parent field included.
    pub fn columns(self) -> Vec<&'static str> {
        self.parent_field()
            .into_iter()
            .chain(self.fields().iter().map(|f| f.name))
            .collect()
    }

    /// The comma-separated Graph API field list for this kind, e.g. `id,timestamp,caption`.
    pub fn api_fields(self) -> String {
        let names: Vec<&str> = self.fields().iter().map(|f| f.api).collect();
        names.join(",")
    }
}

/// How a field's value is checked; see `validate` for the exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// All digits (string, or a non-negative JSON integer); the record is dropped otherwise.
    Id,
    /// Any string; default `""`.
    Text,
    /// An http(s) URL; default `""`.
    Url,
    /// `%Y-%m-%dT%H:%M:%S%z`; default `1970-01-01T00:00:00+0000`.
    Timestamp,
    /// An integer in `0..=i64::MAX` (readers load counts as signed 64-bit integers); default `0`.
    Count,
    /// One of the allowed values of a [`Domain`]; default `""`.
    OneOf(Domain),
}

/// The default timestamp, written when the API's value is missing or malformed.
pub const EPOCH: &str = "1970-01-01T00:00:00+0000";

impl Rule {
    /// The value written when the API's value is missing or fails the rule.
    pub fn default_value(self) -> Value {
        match self {
            Rule::Count => Value::from(0u64),
            Rule::Timestamp => Value::String(EPOCH.to_string()),
            Rule::Id | Rule::Text | Rule::Url | Rule::OneOf(_) => Value::String(String::new()),
        }
    }
}

/// A field whose values come from a closed list. The lists are configuration
/// (`[validation]`), so a value Meta adds later can be allowed, and history reprocessed, without
/// a new release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    MediaType,
    MediaProductType,
}

/// One output field: its name, where it comes from in the API object, and its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub api: &'static str,
    pub rule: Rule,
}

pub const MEDIA_TYPES: &[&str] = &["IMAGE", "VIDEO", "CAROUSEL_ALBUM"];
pub const MEDIA_PRODUCT_TYPES: &[&str] = &["AD", "FEED", "STORY", "REELS"];

const fn field(name: &'static str, api: &'static str, rule: Rule) -> Field {
    Field { name, api, rule }
}

pub const BRAND: &[Field] = &[
    field("user_id", "id", Rule::Id),
    field("user_name", "username", Rule::Text),
    field("name", "name", Rule::Text),
    field("profile_picture_url", "profile_picture_url", Rule::Url),
    field("followers_count", "followers_count", Rule::Count),
    field("media_count", "media_count", Rule::Count),
];

pub const MEDIA: &[Field] = &[
    field("media_id", "id", Rule::Id),
    field("timestamp", "timestamp", Rule::Timestamp),
    field("caption", "caption", Rule::Text),
    field("media_type", "media_type", Rule::OneOf(Domain::MediaType)),
    field(
        "media_product_type",
        "media_product_type",
        Rule::OneOf(Domain::MediaProductType),
    ),
    field("media_url", "media_url", Rule::Url),
    field("permalink", "permalink", Rule::Url),
    field("like_count", "like_count", Rule::Count),
    field("comments_count", "comments_count", Rule::Count),
];

pub const MEDIA_HASHTAG: &[Field] = &[
    field("media_id", "id", Rule::Id),
    field("timestamp", "timestamp", Rule::Timestamp),
    field("caption", "caption", Rule::Text),
    field("media_type", "media_type", Rule::OneOf(Domain::MediaType)),
    field("like_count", "like_count", Rule::Count),
    field("comments_count", "comments_count", Rule::Count),
];

/// One output record: an ordered JSON object whose fields follow its kind's table.
pub type Record = Map<String, Value>;

/// A run's records, one list per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub brand: Vec<Record>,
    pub media: Vec<Record>,
    pub media_hashtag: Vec<Record>,
}

impl Batch {
    pub fn get(&self, kind: Kind) -> &Vec<Record> {
        match kind {
            Kind::Brand => &self.brand,
            Kind::Media => &self.media,
            Kind::MediaHashtag => &self.media_hashtag,
        }
    }

    pub fn append(&mut self, other: Batch) {
        self.brand.extend(other.brand);
        self.media.extend(other.media);
        self.media_hashtag.extend(other.media_hashtag);
    }
}

/// What makes two records of a kind the same record: the owning brand and the record's own id.
/// A post found by two brands' hashtags is two `media_hashtag` records.
fn identity(kind: Kind, r: &Record) -> (&str, &str) {
    let text = |name: &str| r.get(name).and_then(Value::as_str).unwrap_or_default();
    match kind.parent_field() {
        Some(parent) => (text(parent), text(kind.id_field())),
        None => ("", text(kind.id_field())),
    }
}

/// Merges a run's records into what an earlier delivery of the same scheduled time wrote: the
/// existing records keep their place; one with the same identity is replaced by the newer copy
/// (fresher counts), field by field except where the newer copy holds the field's default and
/// the earlier one does not (an answer that lacked the field, see [`refresh`]); the rest are
/// appended in their order. Nothing already written is removed, which is what makes a
/// redelivery safe. Returns whether anything changed.
pub fn merge(kind: Kind, existing: &mut Vec<Record>, new: Vec<Record>) -> bool {
    let mut index: std::collections::HashMap<(String, String), usize> = existing
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (a, b) = identity(kind, r);
            ((a.to_string(), b.to_string()), i)
        })
        .collect();
    let mut changed = false;
    for r in new {
        let (a, b) = identity(kind, &r);
        let id = (a.to_string(), b.to_string());
        match index.get(&id) {
            Some(&i) => {
                let newer = refresh(kind, &existing[i], r);
                if existing[i] != newer {
                    existing[i] = newer;
                    changed = true;
                }
            }
            None => {
                index.insert(id, existing.len());
                existing.push(r);
                changed = true;
            }
        }
    }
    changed
}

/// The newer copy of a record, with each field of `kind`'s table that it holds only as the
/// field's default (`""`, `0`, the epoch) taken from the earlier copy instead: a default means
/// the answer lacked or broke the value, which is no news about the record, so it must not wipe
/// a value an earlier delivery did get.
fn refresh(kind: Kind, earlier: &Record, mut newer: Record) -> Record {
    for f in kind.fields() {
        let default = f.rule.default_value();
        if newer.get(f.name) == Some(&default) {
            if let Some(old) = earlier.get(f.name).filter(|old| **old != default) {
                newer.insert(f.name.to_string(), old.clone());
            }
        }
    }
    newer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_contract_order() {
        assert_eq!(
            Kind::Media.columns(),
            [
                "user_id",
                "media_id",
                "timestamp",
                "caption",
                "media_type",
                "media_product_type",
                "media_url",
                "permalink",
                "like_count",
                "comments_count"
            ]
        );
        assert_eq!(
            Kind::Brand.api_fields(),
            "id,username,name,profile_picture_url,followers_count,media_count"
        );
    }

    pub(super) fn post(user: &str, id: &str, likes: u64) -> Record {
        let mut r = Record::new();
        r.insert("user_id".into(), Value::from(user));
        r.insert("media_id".into(), Value::from(id));
        r.insert("like_count".into(), Value::from(likes));
        r
    }

    #[test]
    fn merging_keeps_every_written_record_refreshes_counts_and_appends_new_ones() {
        let mut written = vec![post("1", "10", 5), post("1", "11", 7), post("2", "10", 1)];
        let changed = merge(
            Kind::MediaHashtag,
            &mut written,
            vec![post("1", "11", 9), post("1", "12", 0)],
        );
        assert!(changed);
        assert_eq!(
            written,
            vec![
                post("1", "10", 5),
                post("1", "11", 9),
                post("2", "10", 1),
                post("1", "12", 0)
            ]
        );
        assert!(!merge(
            Kind::MediaHashtag,
            &mut written,
            vec![post("2", "10", 1)]
        ));
        assert!(!merge(Kind::MediaHashtag, &mut written, Vec::new()));
    }

    /// A full `media` record as validation builds it: every field of the table.
    fn media(id: &str, caption: &str, likes: u64, at: &str) -> Record {
        let mut r = Record::new();
        r.insert("user_id".into(), Value::from("1"));
        for f in MEDIA {
            let v = match f.name {
                "media_id" => Value::from(id),
                "caption" => Value::from(caption),
                "like_count" => Value::from(likes),
                "timestamp" => Value::from(at),
                _ => f.rule.default_value(),
            };
            r.insert(f.name.into(), v);
        }
        r
    }

    #[test]
    fn a_merge_never_replaces_a_value_with_the_fields_default() {
        let at = "2023-09-01T07:38:34+0000";
        let epoch = EPOCH;
        let mut written = vec![media("10", "Tutti Twilly", 5, at)];
        // The redelivered answer lacked caption, likes and timestamp: each stays as written.
        assert!(!merge(
            Kind::Media,
            &mut written,
            vec![media("10", "", 0, epoch)]
        ));
        assert_eq!(written, vec![media("10", "Tutti Twilly", 5, at)]);
        // A value that is not the default still replaces, field by field.
        assert!(merge(
            Kind::Media,
            &mut written,
            vec![media("10", "", 9, epoch)]
        ));
        assert_eq!(written, vec![media("10", "Tutti Twilly", 9, at)]);
        // A default over a default stays a default; a real value fills it.
        let mut bare = vec![media("11", "", 0, epoch)];
        assert!(merge(
            Kind::Media,
            &mut bare,
            vec![media("11", "new", 0, at)]
        ));
        assert_eq!(bare, vec![media("11", "new", 0, at)]);
    }
}
