//! Graph response shapes → records: the `business_discovery` object with its `media` edge, and a
//! `recent_media` page with its `paging` cursor. Together with the rest of `graph`, the only code
//! that knows how Graph JSON is laid out; `validate` sees one API object at a time. It must not
//! make calls or decide on retries: it reads bodies the session already decoded.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::{ErrorKind, GraphError};
use super::fields::Endpoint;
use crate::config::Target;
use crate::records::{Batch, Kind, Record};
use crate::validate::{self, Reason, Rules, Tally};

/// A `business_discovery` response: one brand record and its media records.
///
/// An answer about another account than the target's (its `id` is not the configured `user_id`,
/// or its `username` not the configured one, ignoring case) is refused whole with
/// [`ErrorKind::WrongAccount`]: writing it would file one brand's posts under another's id.
/// A `media` edge that is missing or not an object with a `data` array yields no media and is
/// counted (`brand.media`, missing or wrong type), so an account whose media vanish shows up.
/// A media id listed twice yields one record (`validate::records`).
pub fn brand(
    body: &Value,
    target: &Target,
    rules: &Rules,
    tally: &mut Tally,
) -> Result<Batch, GraphError> {
    let Some(bd) = body.get("business_discovery").filter(|v| v.is_object()) else {
        return Err(bad_shape("the response has no business_discovery object"));
    };
    same_account(bd, target)?;
    let mut batch = Batch::default();
    // The media belong to the account even if its own record is dropped for a bad id: the
    // answer's id, when valid, is the target's (checked above).
    let owner = target.user_id.as_str();
    if let Some(brand) = validate::record(Kind::Brand, bd, None, rules, tally) {
        batch.brand.push(brand);
    }
    let media = media_list(bd, tally);
    batch.media = validate::records(Kind::Media, media, Some(owner), rules, tally);
    Ok(batch)
}

/// The media edge's posts; a missing or malformed edge is none, counted.
fn media_list<'b>(bd: &'b Value, tally: &mut Tally) -> &'b [Value] {
    match bd.get("media") {
        None | Some(Value::Null) => {
            tally.default_field(Kind::Brand, "media", Reason::Missing);
            &[][..]
        }
        Some(m) => match m.get("data").and_then(Value::as_array) {
            Some(data) => data.as_slice(),
            None => {
                tally.default_field(Kind::Brand, "media", Reason::WrongType);
                &[][..]
            }
        },
    }
}

/// Where a `business_discovery` answer's media page ends: its oldest post and the cursor of
/// the page after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaPaging {
    /// The oldest readable `timestamp` among the page's posts; `None` when none has one.
    pub oldest: Option<DateTime<Utc>>,
    /// `media.paging.cursors.after`. Meta leaves `paging.next` out of an edge read through
    /// field expansion, so the cursor alone says there may be more; an empty page ends it.
    pub after: Option<String>,
}

/// The paging of a `business_discovery` answer's media edge.
pub fn media_paging(body: &Value) -> MediaPaging {
    let media = body.get("business_discovery").and_then(|b| b.get("media"));
    let oldest = media
        .and_then(|m| m.get("data"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("timestamp").and_then(Value::as_str))
        .filter_map(validate::parse_timestamp)
        .map(|t| t.with_timezone(&Utc))
        .min();
    let after = media
        .and_then(|m| m.pointer("/paging/cursors/after"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    MediaPaging { oldest, after }
}

/// The media of a lookback page (`media.after(…)`): the posts `keep` accepts (by id and time;
/// the caller drops those already written and those before its window), as records. The
/// page's profile is not a record (the first page's is); an answer about another account is
/// refused whole, as [`brand`] does.
pub fn brand_media(
    body: &Value,
    target: &Target,
    rules: &Rules,
    tally: &mut Tally,
    keep: impl Fn(Option<&str>, Option<DateTime<Utc>>) -> bool,
) -> Result<Vec<Record>, GraphError> {
    let Some(bd) = body.get("business_discovery").filter(|v| v.is_object()) else {
        return Err(bad_shape("the response has no business_discovery object"));
    };
    same_account(bd, target)?;
    let kept: Vec<Value> = media_list(bd, tally)
        .iter()
        .filter(|p| {
            let id = p.get("id").and_then(Value::as_str);
            let at = p
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(validate::parse_timestamp)
                .map(|t| t.with_timezone(&Utc));
            keep(id, at)
        })
        .cloned()
        .collect();
    Ok(validate::records(
        Kind::Media,
        &kept,
        Some(&target.user_id),
        rules,
        tally,
    ))
}

/// Refuses a `business_discovery` object that names another account than `target`. An id or
/// username the answer lacks (or that is not valid) says nothing and is left to validation.
fn same_account(bd: &Value, target: &Target) -> Result<(), GraphError> {
    let id = validate::valid_id(bd.get("id"));
    let username = bd.get("username").and_then(Value::as_str);
    let other_id = id.as_deref().filter(|id| *id != target.user_id);
    let other_name = username.filter(|u| !u.eq_ignore_ascii_case(&target.username));
    if other_id.is_none() && other_name.is_none() {
        return Ok(());
    }
    let text = |v: Option<&str>| v.map_or_else(|| "none".to_string(), |v| format!("`{v}`"));
    Err(GraphError {
        attempts: 1,
        ..GraphError::local(
            ErrorKind::WrongAccount,
            format!(
                "business_discovery for `{}` answered account {} (id {}), not the configured one (user_id `{}`): nothing of it is written; check the target's username and user_id",
                target.username,
                text(username),
                text(id.as_deref()),
                target.user_id
            ),
        )
    })
}

/// One `recent_media` page, flattened.
#[derive(Debug, Default)]
pub struct HashtagPage {
    /// The page's records (owned by the brand whose hashtag found them), in API order.
    pub records: Vec<Record>,
    /// The cursor of the next page, when the API says there is one (`paging.next`).
    pub after: Option<String>,
}

/// A `recent_media` page: its records and the cursor of the next page.
pub fn hashtag_page(
    body: &Value,
    target: &Target,
    rules: &Rules,
    tally: &mut Tally,
) -> Result<HashtagPage, GraphError> {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(bad_shape("the response has no data array"));
    };
    let after = body
        .get("paging")
        .filter(|p| p.get("next").is_some())
        .and_then(|p| p.pointer("/cursors/after"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(HashtagPage {
        records: validate::records(
            Kind::MediaHashtag,
            data,
            Some(&target.user_id),
            rules,
            tally,
        ),
        after,
    })
}

/// The objects of `kind` in an answer of `endpoint`: the `business_discovery` object (`brand`),
/// its media (`media`), a page's posts (`media_hashtag`). Whatever is not a JSON object is
/// left out.
pub fn objects<'b>(
    endpoint: Endpoint,
    kind: Kind,
    body: &'b Value,
) -> Vec<&'b serde_json::Map<String, Value>> {
    let list = |v: Option<&'b Value>| {
        v.and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default()
    };
    let bd = body.get("business_discovery");
    match (endpoint, kind) {
        (Endpoint::BusinessDiscovery, Kind::Brand) => {
            bd.and_then(Value::as_object).into_iter().collect()
        }
        (Endpoint::BusinessDiscovery, Kind::Media) => {
            list(bd.and_then(|b| b.get("media")).and_then(|m| m.get("data")))
        }
        (Endpoint::RecentMedia, Kind::MediaHashtag) => list(body.get("data")),
        _ => Vec::new(),
    }
}

/// The id `ig_hashtag_search` answered, if it is a valid id.
pub fn hashtag_search_id(body: &Value) -> Option<String> {
    body.get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|h| validate::valid_id(h.get("id")))
}

fn bad_shape(message: &str) -> GraphError {
    GraphError {
        attempts: 1,
        ..GraphError::local(ErrorKind::BadResponse, message)
    }
}
