//! Field-level validation: turns Graph API objects into records of a [`Kind`].
//!
//! **Pure: no IO, never fails as a whole.** A bad field gets its default and is counted; an object
//! without a valid id is dropped and counted. Values that pass are copied verbatim (timestamps
//! exactly as the API gave them), so the output matches what the replaced system wrote.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, FixedOffset};
use serde::Serialize;
use serde_json::{Map, Value};
use validator::ValidateUrl;

use crate::records::{Domain, Field, Kind, Record, Rule, MEDIA_PRODUCT_TYPES, MEDIA_TYPES};

pub use crate::records::EPOCH;

/// The timestamp format of the contract.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%z";
/// The years a post timestamp may carry. Instagram began in 2010; a year far past today is a
/// broken value, and letting one through would push the hashtag watermark into the future.
pub const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 2010..=2100;
/// Stands where `graph` found a character it could not decode (an unpaired UTF-16 surrogate
/// escape, invalid UTF-8). A noncharacter, so it does not occur in real text: validation turns
/// it into U+FFFD and counts the field as defaulted (`Reason::InvalidUnicode`).
pub const UNDECODABLE: char = '\u{FDD0}';

/// Why a value was replaced by its default, or a record dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The field is absent or null.
    Missing,
    /// The field has another JSON type than its rule needs (a number for a caption, …).
    WrongType,
    /// A string that is not an http(s) URL.
    NotHttpUrl,
    /// A string that is not `%Y-%m-%dT%H:%M:%S%z`.
    BadTimestamp,
    /// A string outside the field's allowed values.
    NotInDomain,
    /// A count below zero.
    NegativeCount,
    /// A count written as a float (`2.5`, `7.0`): the API sends counts as integers.
    NotAnInteger,
    /// A count above `i64::MAX` (`18446744073709551615`, `1e30`): readers load counts as signed
    /// 64-bit integers (`bigint`), so such a value could not be loaded, and no real count is near it.
    CountTooLarge,
    /// A second object with an id already seen in the same list: the first one is kept.
    Duplicate,
    /// An id that is not all digits.
    NotNumeric,
    /// The element is not a JSON object at all.
    NotAnObject,
    /// The text held a character that could not be decoded; it is kept with U+FFFD in its place.
    InvalidUnicode,
    /// The field is absent because the API version no longer has it (code 100, "nonexisting
    /// field") and the request left it out: every record lacks it until the configuration or
    /// the API changes, which is news of another kind than a value one post lacks.
    RemovedByApi,
}

/// What the rules need besides the field tables: the allowed values of each [`Domain`]
/// (configuration), and the fields the API version no longer has (learned by the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub media_types: Vec<String>,
    pub media_product_types: Vec<String>,
    /// (kind, API name) of the fields the requests left out because the API version no longer
    /// has them: a record lacking one is counted as [`Reason::RemovedByApi`].
    pub removed_by_api: BTreeSet<(Kind, &'static str)>,
}

impl Default for Rules {
    /// The contract's lists; no field removed.
    fn default() -> Self {
        Rules {
            media_types: MEDIA_TYPES.iter().map(|s| s.to_string()).collect(),
            media_product_types: MEDIA_PRODUCT_TYPES.iter().map(|s| s.to_string()).collect(),
            removed_by_api: BTreeSet::new(),
        }
    }
}

impl Rules {
    fn allows(&self, domain: Domain, value: &str) -> bool {
        let list = match domain {
            Domain::MediaType => &self.media_types,
            Domain::MediaProductType => &self.media_product_types,
        };
        list.iter().any(|v| v == value)
    }
}

/// What validation replaced or rejected, counted by (kind, field, reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub defaulted: BTreeMap<(Kind, &'static str, Reason), u64>,
    pub dropped: BTreeMap<(Kind, &'static str, Reason), u64>,
}

/// One row of a [`Tally`], as it appears in logs and summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TallyRow {
    pub kind: Kind,
    pub field: &'static str,
    pub reason: Reason,
    pub count: u64,
}

impl Tally {
    pub fn default_field(&mut self, kind: Kind, field: &'static str, reason: Reason) {
        *self.defaulted.entry((kind, field, reason)).or_default() += 1;
    }

    pub fn drop_record(&mut self, kind: Kind, field: &'static str, reason: Reason) {
        *self.dropped.entry((kind, field, reason)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.defaulted {
            *self.defaulted.entry(*k).or_default() += v;
        }
        for (k, v) in &other.dropped {
            *self.dropped.entry(*k).or_default() += v;
        }
    }

    pub fn defaulted_total(&self) -> u64 {
        self.defaulted.values().sum()
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    fn rows(map: &BTreeMap<(Kind, &'static str, Reason), u64>) -> Vec<TallyRow> {
        map.iter()
            .map(|(&(kind, field, reason), &count)| TallyRow {
                kind,
                field,
                reason,
                count,
            })
            .collect()
    }

    pub fn defaulted_rows(&self) -> Vec<TallyRow> {
        Tally::rows(&self.defaulted)
    }

    pub fn dropped_rows(&self) -> Vec<TallyRow> {
        Tally::rows(&self.dropped)
    }
}

/// Builds a record of `kind` from one API object, or drops it.
///
/// `parent_id` fills the kind's parent field (the brand's user id for media kinds).
pub fn record(
    kind: Kind,
    object: &Value,
    parent_id: Option<&str>,
    rules: &Rules,
    tally: &mut Tally,
) -> Option<Record> {
    let Some(obj) = object.as_object() else {
        tally.drop_record(kind, kind.id_field(), Reason::NotAnObject);
        return None;
    };
    let mut out = Map::new();
    if let Some(parent) = kind.parent_field() {
        out.insert(
            parent.to_string(),
            Value::String(parent_id.unwrap_or_default().to_string()),
        );
    }
    for f in kind.fields() {
        match check(f, obj.get(f.api), rules) {
            Ok(Value::String(text)) if text.contains(UNDECODABLE) => {
                // Keep the text: only the undecodable characters are lost, and that is counted.
                tally.default_field(kind, f.name, Reason::InvalidUnicode);
                out.insert(
                    f.name.to_string(),
                    Value::String(text.replace(UNDECODABLE, "\u{FFFD}")),
                );
            }
            Ok(v) => {
                out.insert(f.name.to_string(), v);
            }
            Err(reason) if f.rule == Rule::Id => {
                tally.drop_record(kind, f.name, reason);
                return None;
            }
            Err(reason) => {
                let reason = match reason {
                    Reason::Missing if rules.removed_by_api.contains(&(kind, f.api)) => {
                        Reason::RemovedByApi
                    }
                    other => other,
                };
                tally.default_field(kind, f.name, reason);
                out.insert(f.name.to_string(), f.rule.default_value());
            }
        }
    }
    Some(out)
}

/// Records of `kind` from a list of API objects (a `data` array), in order, each id once: an
/// object whose id came earlier in the list is dropped and counted as [`Reason::Duplicate`], so
/// one answer never yields the same record twice.
pub fn records(
    kind: Kind,
    objects: &[Value],
    parent_id: Option<&str>,
    rules: &Rules,
    tally: &mut Tally,
) -> Vec<Record> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(objects.len());
    let id_api = kind
        .fields()
        .iter()
        .find(|f| f.rule == Rule::Id)
        .map_or("id", |f| f.api);
    for o in objects {
        // Checked before the record is built, so a duplicate's own defects are not counted.
        if let Some(id) = valid_id(o.get(id_api)) {
            if !seen.insert(id) {
                tally.drop_record(kind, kind.id_field(), Reason::Duplicate);
                continue;
            }
        }
        out.extend(record(kind, o, parent_id, rules, tally));
    }
    out
}

/// The id of an object if it is valid, as the record would carry it.
pub fn valid_id(value: Option<&Value>) -> Option<String> {
    match check_id(value) {
        Ok(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn check(field: &Field, value: Option<&Value>, rules: &Rules) -> Result<Value, Reason> {
    let value = match value {
        None | Some(Value::Null) => return Err(Reason::Missing),
        Some(v) => v,
    };
    match field.rule {
        Rule::Id => check_id(Some(value)),
        Rule::Text => value
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or(Reason::WrongType),
        Rule::Url => {
            let s = value.as_str().ok_or(Reason::WrongType)?;
            if is_http_url(s) {
                Ok(Value::String(s.to_string()))
            } else {
                Err(Reason::NotHttpUrl)
            }
        }
        Rule::Timestamp => {
            let s = value.as_str().ok_or(Reason::WrongType)?;
            parse_timestamp(s)
                .map(|_| Value::String(s.to_string()))
                .ok_or(Reason::BadTimestamp)
        }
        Rule::Count => match value {
            Value::Number(n) => count(n).map(Value::from),
            _ => Err(Reason::WrongType),
        },
        Rule::OneOf(domain) => {
            let s = value.as_str().ok_or(Reason::WrongType)?;
            if rules.allows(domain, s) {
                Ok(Value::String(s.to_string()))
            } else {
                Err(Reason::NotInDomain)
            }
        }
    }
}

/// A count as written: an integer in `0..=i64::MAX`, the range every reader's signed 64-bit
/// integer holds. JSON numbers arrive as `u64`, `i64` or `f64`; only the first two can be counts.
fn count(n: &serde_json::Number) -> Result<i64, Reason> {
    if let Some(i) = n.as_i64() {
        return if i < 0 {
            Err(Reason::NegativeCount)
        } else {
            Ok(i)
        };
    }
    if n.is_u64() {
        // A u64 that is not an i64 is above i64::MAX.
        return Err(Reason::CountTooLarge);
    }
    match n.as_f64() {
        Some(f) if f < 0.0 => Err(Reason::NegativeCount),
        Some(f) if f >= i64::MAX as f64 => Err(Reason::CountTooLarge),
        _ => Err(Reason::NotAnInteger),
    }
}

/// A timestamp in the Graph form only (`2023-09-02T00:00:15+0000`: four-digit year, two-digit
/// fields, a `±hhmm` offset) with a plausible year. chrono alone also accepts `+00:00`, a leading
/// space, one-digit fields and years like 9999 or -0001; none of those come from the API.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd+dddd";
    let b = s.as_bytes();
    if b.len() != SHAPE.len() {
        return None;
    }
    let shaped = b.iter().zip(SHAPE).all(|(c, want)| match want {
        b'd' => c.is_ascii_digit(),
        b'+' => *c == b'+' || *c == b'-',
        other => c == other,
    });
    if !shaped {
        return None;
    }
    DateTime::parse_from_str(s, TIMESTAMP_FORMAT)
        .ok()
        .filter(|t| PLAUSIBLE_YEARS.contains(&t.year()))
}

fn check_id(value: Option<&Value>) -> Result<Value, Reason> {
    match value {
        None | Some(Value::Null) => Err(Reason::Missing),
        Some(Value::String(s)) if is_digits(s) => Ok(Value::String(s.clone())),
        Some(Value::String(_)) => Err(Reason::NotNumeric),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Value::String(n.to_string()))
            .ok_or(Reason::NotNumeric),
        Some(_) => Err(Reason::WrongType),
    }
}

/// True for a non-empty string of ASCII digits: the shape of every Instagram id.
pub fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An absolute http or https URL with a host.
pub fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")) && s.validate_url()
}
