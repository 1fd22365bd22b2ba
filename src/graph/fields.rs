//! The `fields=` each endpoint asks for, and what the API says when a version no longer has one.
//! **Pure: no IO.**
//!
//! Meta removes fields between Graph API versions. A request naming a removed field is refused
//! whole (code 100, `(#100) Tried accessing nonexisting field (media_product_type) on node type
//! (IGMedia)`), so without this every account and every hashtag would fail on every run. The
//! session asks [`removed_field`] what such an answer means for the request it made: a field the
//! request named and the records can do without is left out of the next request ([`Omitted`]),
//! and its records take the field's default; a record's own id cannot be left out, since nothing
//! could be written without it.
//!
//! A [`FieldRef`] is built only from the record tables (`records`), so it always names a field
//! the collector really asks for: whatever text an error or a stored object holds, nothing else
//! can be left out of a request.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::records::{Field, Kind, Rule};

/// An endpoint that carries a `fields=` expression derived from the record tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /{ig-user-id}?fields=business_discovery.username(…){…,media.limit(n){…}}`.
    BusinessDiscovery,
    /// `GET /{hashtag-id}/recent_media?fields=…`.
    RecentMedia,
}

impl Endpoint {
    pub const ALL: [Endpoint; 2] = [Endpoint::BusinessDiscovery, Endpoint::RecentMedia];

    /// A stable name for summaries, metrics and the stored object.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::BusinessDiscovery => "business_discovery",
            Endpoint::RecentMedia => "recent_media",
        }
    }

    pub fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The record kinds whose fields the request names, the top level first.
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            Endpoint::BusinessDiscovery => &[Kind::Brand, Kind::Media],
            Endpoint::RecentMedia => &[Kind::MediaHashtag],
        }
    }

    /// The edge a kind's fields are nested under in the request (`media` in
    /// `business_discovery`), `None` at the top level.
    fn edge(self, kind: Kind) -> Option<&'static str> {
        match (self, kind) {
            (Endpoint::BusinessDiscovery, Kind::Media) => Some("media"),
            _ => None,
        }
    }

    /// Every field the endpoint asks for when nothing is left out.
    pub fn fields(self) -> impl Iterator<Item = FieldRef> {
        self.kinds().iter().flat_map(move |&kind| {
            kind.fields().iter().map(move |f| FieldRef {
                endpoint: self,
                kind,
                api: f.api,
            })
        })
    }
}

/// One field of one endpoint's request, as the record tables define it. Its parts are private:
/// it can only be found in the tables ([`FieldRef::find`], [`FieldRef::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldRef {
    endpoint: Endpoint,
    kind: Kind,
    /// The API name, a `'static` string of the table.
    api: &'static str,
}

impl FieldRef {
    /// The field `api` of `kind` in `endpoint`'s request, if the request names it.
    pub fn find(endpoint: Endpoint, kind: Kind, api: &str) -> Option<FieldRef> {
        endpoint.fields().find(|f| f.kind == kind && f.api == api)
    }

    /// The field a [`FieldRef::qualified`] name stands for (`media.like_count`, `media_count`).
    pub fn parse(endpoint: Endpoint, qualified: &str) -> Option<FieldRef> {
        endpoint.fields().find(|f| f.qualified() == qualified)
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The name the API knows the field by.
    pub fn api(&self) -> &'static str {
        self.api
    }

    /// The name within the request: the edge first for a nested field (`media.like_count`).
    pub fn qualified(&self) -> String {
        match self.endpoint.edge(self.kind) {
            Some(edge) => format!("{edge}.{}", self.api),
            None => self.api.to_string(),
        }
    }

    /// The table's entry.
    pub fn field(&self) -> Option<&'static Field> {
        self.kind.fields().iter().find(|f| f.api == self.api)
    }

    /// True for the record's own id: without it no record can be written, so it is never left
    /// out.
    pub fn is_identity(&self) -> bool {
        self.field().is_none_or(|f| f.rule == Rule::Id)
    }
}

/// The fields left out of the requests because the API version no longer has them. Holds no
/// record id ([`Omitted::insert`] refuses one), so every request still asks for the ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Omitted(BTreeSet<FieldRef>);

impl Omitted {
    /// Leaves `field` out from now on; false when it is an id (never left out) or already was.
    pub fn insert(&mut self, field: FieldRef) -> bool {
        !field.is_identity() && self.0.insert(field)
    }

    pub fn contains(&self, field: &FieldRef) -> bool {
        self.0.contains(field)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldRef> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The (kind, API name) pairs left out, as validation counts them (`Reason::RemovedByApi`).
    pub fn by_kind(&self) -> BTreeSet<(Kind, &'static str)> {
        self.0.iter().map(|f| (f.kind, f.api)).collect()
    }

    /// The API names of `kind` that `endpoint` still asks for, comma-separated, in table order.
    fn list(&self, endpoint: Endpoint, kind: Kind) -> String {
        let names: Vec<&str> = endpoint
            .fields()
            .filter(|f| f.kind == kind && !self.0.contains(f))
            .map(|f| f.api)
            .collect();
        names.join(",")
    }

    /// How many fields of `endpoint`'s request could still be left out: the bound on the
    /// calls made again for removed fields.
    pub fn droppable_left(&self, endpoint: Endpoint) -> usize {
        endpoint
            .fields()
            .filter(|f| !f.is_identity() && !self.0.contains(f))
            .count()
    }
}

/// The `fields=` expression of `business_discovery` for `username`, without the omitted fields:
/// the first page of its media, or the page after the cursor `after`
/// (`media.after(…).limit(n)`; the caller passes only a cursor `lookback::is_cursor` accepts).
pub fn business_discovery_fields(
    username: &str,
    media_limit: u32,
    after: Option<&str>,
    omitted: &Omitted,
) -> String {
    let e = Endpoint::BusinessDiscovery;
    let after = after.map_or_else(String::new, |a| format!(".after({a})"));
    format!(
        "business_discovery.username({username}){{{},media{after}.limit({media_limit}){{{}}}}}",
        omitted.list(e, Kind::Brand),
        omitted.list(e, Kind::Media)
    )
}

/// The `fields=` value of `recent_media`, without the omitted fields.
pub fn recent_media_fields(omitted: &Omitted) -> String {
    omitted.list(Endpoint::RecentMedia, Kind::MediaHashtag)
}

/// The field a code-100 message names as nonexistent, and the node type it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonexisting<'m> {
    pub field: &'m str,
    pub node_type: Option<&'m str>,
}

/// The most characters a field or node type name may have; a longer one is not a name.
const MAX_NAME: usize = 64;

/// Reads `(#100) Tried accessing nonexisting field (media_product_type) on node type (IGMedia)`:
/// the field after "nonexisting field", in parentheses or bare, and the node type after "node
/// type". Case of the words does not matter; a name is ASCII letters, digits and `_` only, at most
/// 64 of them. Anything else (no name, a name with other characters, a message about something
/// else) is `None`: the call then fails as any code-100 call does.
pub fn nonexisting_field(message: &str) -> Option<Nonexisting<'_>> {
    // ASCII lowercasing keeps every byte offset, so positions found in `lower` hold in `message`.
    let lower = message.to_ascii_lowercase();
    let marker = "nonexisting field";
    let at = lower.find(marker)? + marker.len();
    let (field, rest) = name_after(message, at)?;
    let node_type = lower[rest..]
        .find("node type")
        .and_then(|i| name_after(message, rest + i + "node type".len()))
        .map(|(n, _)| n);
    Some(Nonexisting { field, node_type })
}

/// The name that starts at byte `at` of `text` (after spaces, in parentheses or bare) and the
/// offset just past it.
fn name_after(text: &str, at: usize) -> Option<(&str, usize)> {
    let rest = text.get(at..)?;
    let trimmed = rest.trim_start_matches([' ', '\t', ':']);
    let start = at + (rest.len() - trimmed.len());
    let (open, body) = match trimmed.strip_prefix('(') {
        Some(inner) => (1, inner),
        None => (0, trimmed),
    };
    let len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if len == 0 || len > MAX_NAME {
        return None;
    }
    let after = &body[len..];
    if open == 1 && !after.starts_with(')') {
        return None;
    }
    Some((&body[..len], start + open + len + open))
}

/// What a refused request means for its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The API no longer has this field, which the records can do without: ask again without it.
    Droppable(FieldRef),
    /// The API no longer has the records' id: nothing can be written.
    Identity(FieldRef),
}

/// What an error answer to a request of `endpoint` made without `omitted` says about its fields:
/// `Some` only for code 100 naming, as nonexistent, a field that request asked for. When the
/// message names a node type, a field that both levels of the request have (`id`) is taken at
/// the level of that type (`IGMedia`: the media; any other: the profile).
pub fn removed_field(
    endpoint: Endpoint,
    omitted: &Omitted,
    code: Option<i64>,
    message: &str,
) -> Option<Removed> {
    if code != Some(100) {
        return None;
    }
    let said = nonexisting_field(message)?;
    let level = said.node_type.map(|t| {
        if t.to_ascii_lowercase().contains("media") {
            Kind::Media
        } else {
            Kind::Brand
        }
    });
    let asked: Vec<FieldRef> = endpoint
        .fields()
        .filter(|f| f.api == said.field && !omitted.contains(f))
        .collect();
    let field = match (asked.as_slice(), level) {
        ([], _) => return None,
        ([one], _) => *one,
        (many, Some(kind)) => many
            .iter()
            .find(|f| f.kind == kind)
            .or_else(|| many.first())
            .copied()?,
        (many, None) => many.first().copied()?,
    };
    Some(if field.is_identity() {
        Removed::Identity(field)
    } else {
        Removed::Droppable(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bd(kind: Kind, api: &str) -> FieldRef {
        FieldRef::find(Endpoint::BusinessDiscovery, kind, api).expect("in the table")
    }

    fn rm(api: &str) -> FieldRef {
        FieldRef::find(Endpoint::RecentMedia, Kind::MediaHashtag, api).expect("in the table")
    }

    /// One line per message: what the parser reads from it.
    #[test]
    fn the_field_and_node_type_are_read_from_metas_messages_and_nothing_from_others() {
        let check = |message: &str, expected: Option<(&str, Option<&str>)>| {
            let got = nonexisting_field(message).map(|n| (n.field, n.node_type));
            assert_eq!(got, expected, "{message:?}");
        };
        check(
            "(#100) Tried accessing nonexisting field (media_product_type) on node type (IGMedia)",
            Some(("media_product_type", Some("IGMedia"))),
        );
        check(
            "(#100) Tried accessing nonexisting field (like_count)",
            Some(("like_count", None)),
        );
        check(
            "(#100) Tried accessing nonexisting field media_url on node type ShadowIGMedia",
            Some(("media_url", Some("ShadowIGMedia"))),
        );
        check(
            "(#100) TRIED ACCESSING NONEXISTING FIELD (Media_Count) ON NODE TYPE (IGUser)",
            Some(("Media_Count", Some("IGUser"))),
        );
        check("(#100) Tried accessing nonexisting field", None);
        check("(#100) Tried accessing nonexisting field ()", None);
        check("(#100) Tried accessing nonexisting field (caption", None);
        check("(#100) Tried accessing nonexisting field (capti on)", None);
        check("(#100) Tried accessing nonexisting field (légende)", None);
        check(
            "(#100) Tried accessing nonexisting field (😀) on node type (IGMedia)",
            None,
        );
        check(
            "🙈 nonexisting field (caption) 🙉 node type (IGMedia) 🙊",
            Some(("caption", Some("IGMedia"))),
        );
        check("Unsupported get request. Object does not exist", None);
        check("", None);
        let long = format!(
            "(#100) Tried accessing nonexisting field ({})",
            "a".repeat(65)
        );
        check(&long, None);
        let at_limit = "b".repeat(64);
        check(
            &format!("(#100) Tried accessing nonexisting field ({at_limit})"),
            Some((at_limit.as_str(), None)),
        );
        let flood = format!("{}nonexisting field (caption)", "é(".repeat(100_000));
        check(&flood, Some(("caption", None)));
        check(
            "nonexisting field (caption) on node type (",
            Some(("caption", None)),
        );
    }

    /// One line per case: what a refused request means for its fields.
    #[test]
    fn only_a_field_the_request_asked_for_is_dropped_and_an_id_never() {
        let none = Omitted::default();
        let check = |endpoint: Endpoint,
                     omitted: &Omitted,
                     code: Option<i64>,
                     message: &str,
                     expected: Option<Removed>| {
            assert_eq!(
                removed_field(endpoint, omitted, code, message),
                expected,
                "{endpoint:?} {code:?} {message:?}"
            );
        };
        let msg = |f: &str, t: &str| {
            format!("(#100) Tried accessing nonexisting field ({f}) on node type ({t})")
        };
        let bdm = Endpoint::BusinessDiscovery;
        check(
            bdm,
            &none,
            Some(100),
            &msg("media_product_type", "IGMedia"),
            Some(Removed::Droppable(bd(Kind::Media, "media_product_type"))),
        );
        check(
            bdm,
            &none,
            Some(100),
            &msg("followers_count", "IGUser"),
            Some(Removed::Droppable(bd(Kind::Brand, "followers_count"))),
        );
        // `id` is at both levels: the node type says which; either way it is the id.
        check(
            bdm,
            &none,
            Some(100),
            &msg("id", "IGMedia"),
            Some(Removed::Identity(bd(Kind::Media, "id"))),
        );
        check(
            bdm,
            &none,
            Some(100),
            &msg("id", "IGUser"),
            Some(Removed::Identity(bd(Kind::Brand, "id"))),
        );
        check(
            Endpoint::RecentMedia,
            &none,
            Some(100),
            "(#100) Tried accessing nonexisting field (like_count)",
            Some(Removed::Droppable(rm("like_count"))),
        );
        // Not asked for by this endpoint: the call fails as before.
        check(
            Endpoint::RecentMedia,
            &none,
            Some(100),
            &msg("media_product_type", "IGMedia"),
            None,
        );
        check(bdm, &none, Some(100), &msg("biography", "IGUser"), None);
        // Field names are the API's, exactly.
        check(bdm, &none, Some(100), &msg("Caption", "IGMedia"), None);
        // Already left out: the API cannot be refusing it.
        let mut omitted = Omitted::default();
        assert!(omitted.insert(rm("like_count")));
        check(
            Endpoint::RecentMedia,
            &omitted,
            Some(100),
            "(#100) Tried accessing nonexisting field (like_count)",
            None,
        );
        // Another code, or no code, is not about fields.
        check(
            Endpoint::RecentMedia,
            &none,
            Some(110),
            "(#100) Tried accessing nonexisting field (like_count)",
            None,
        );
        check(
            Endpoint::RecentMedia,
            &none,
            None,
            "(#100) Tried accessing nonexisting field (like_count)",
            None,
        );
        check(
            Endpoint::RecentMedia,
            &none,
            Some(100),
            "(#100) Tried accessing nonexisting field",
            None,
        );
    }

    #[test]
    fn the_requests_leave_out_the_omitted_fields_and_never_an_id() {
        let mut omitted = Omitted::default();
        assert_eq!(
            business_discovery_fields("dior", 25, None, &omitted),
            "business_discovery.username(dior){id,username,name,profile_picture_url,followers_count,media_count,media.limit(25){id,timestamp,caption,media_type,media_product_type,media_url,permalink,like_count,comments_count}}"
        );
        assert!(
            !omitted.insert(bd(Kind::Media, "id")),
            "an id is never left out"
        );
        assert!(omitted.insert(bd(Kind::Media, "media_product_type")));
        assert!(omitted.insert(bd(Kind::Brand, "media_count")));
        assert!(!omitted.insert(bd(Kind::Brand, "media_count")));
        assert!(omitted.insert(rm("like_count")));
        assert_eq!(
            business_discovery_fields("dior", 25, None, &omitted),
            "business_discovery.username(dior){id,username,name,profile_picture_url,followers_count,media.limit(25){id,timestamp,caption,media_type,media_url,permalink,like_count,comments_count}}"
        );
        assert_eq!(
            recent_media_fields(&omitted),
            "id,timestamp,caption,media_type,comments_count"
        );
        assert_eq!(omitted.droppable_left(Endpoint::RecentMedia), 4);
        assert_eq!(omitted.droppable_left(Endpoint::BusinessDiscovery), 11);
        assert_eq!(
            FieldRef::parse(Endpoint::BusinessDiscovery, "media.media_product_type"),
            Some(bd(Kind::Media, "media_product_type"))
        );
        assert_eq!(
            FieldRef::parse(Endpoint::BusinessDiscovery, "media_product_type"),
            None
        );
        assert_eq!(bd(Kind::Brand, "media_count").qualified(), "media_count");
    }

    #[test]
    fn a_lookback_page_asks_for_the_media_after_its_cursor_with_the_same_fields() {
        let omitted = Omitted::default();
        assert_eq!(
            business_discovery_fields("dior", 25, Some("QVFIab-_="), &omitted),
            "business_discovery.username(dior){id,username,name,profile_picture_url,followers_count,media_count,media.after(QVFIab-_=).limit(25){id,timestamp,caption,media_type,media_product_type,media_url,permalink,like_count,comments_count}}"
        );
    }
}
