//! One test per validation rule: the default written and the count kept.

use ig_collector::records::{Kind, Record};
use ig_collector::validate::{record, Reason, Rules, Tally, EPOCH};
use serde_json::{json, Value};

fn valid(kind: Kind) -> Value {
    match kind {
        Kind::Brand => json!({
            "id": "17841401694708594", "username": "dior", "name": "Dior Official",
            "profile_picture_url": "https://scontent-sea1-1.xx.fbcdn.net/v/t51.2885-15/1_n.jpg?_nc_cat=1&ccb=1-7",
            "followers_count": 44959894, "media_count": 9973
        }),
        Kind::Media => json!({
            "id": "17901470705838206", "timestamp": "2023-09-01T07:38:34+0000", "caption": "Tutti Twilly\n\r\n#Hermes ✨",
            "media_type": "CAROUSEL_ALBUM", "media_product_type": "FEED",
            "media_url": "https://scontent-sea1-1.cdninstagram.com/v/1_n.jpg?_nc_cat=103", "permalink": "https://www.instagram.com/p/CwpB-2Osxt2/",
            "like_count": 7392, "comments_count": 50
        }),
        Kind::MediaHashtag => json!({
            "id": "18296617132136603", "timestamp": "2023-09-01T23:58:03+0000", "caption": "กระเป๋าแบรนด์เนม #chanel",
            "media_type": "IMAGE", "like_count": 0, "comments_count": 3
        }),
    }
}

/// Sets (or removes, for `None`) one API field of a valid object and flattens it.
fn with(kind: Kind, api_field: &str, value: Option<Value>) -> (Option<Record>, Tally) {
    let mut obj = valid(kind);
    match value {
        Some(v) => obj[api_field] = v,
        None => {
            obj.as_object_mut().expect("object").remove(api_field);
        }
    }
    let mut tally = Tally::default();
    let r = record(
        kind,
        &obj,
        Some("17841400681603877"),
        &Rules::default(),
        &mut tally,
    );
    (r, tally)
}

/// The field gets `default` and exactly one count under (kind, field, reason).
fn check_default(
    kind: Kind,
    api_field: &str,
    value: Option<Value>,
    field: &'static str,
    default: Value,
    reason: Reason,
) {
    let (r, tally) = with(kind, api_field, value.clone());
    let r = r.unwrap_or_else(|| panic!("{kind:?}.{api_field}={value:?} must not drop the record"));
    assert_eq!(r[field], default, "{kind:?}.{field} for {value:?}");
    assert_eq!(
        tally.defaulted.get(&(kind, field, reason)),
        Some(&1),
        "{kind:?}.{field} for {value:?}: {tally:?}"
    );
    assert_eq!(tally.defaulted_total(), 1);
    assert_eq!(tally.dropped_total(), 0);
}

fn check_dropped(kind: Kind, value: Option<Value>, reason: Reason) {
    let (r, tally) = with(kind, "id", value.clone());
    assert!(r.is_none(), "{kind:?} id {value:?} must drop the record");
    assert_eq!(
        tally.dropped.get(&(kind, kind.id_field(), reason)),
        Some(&1),
        "{kind:?} id {value:?}: {tally:?}"
    );
    assert_eq!(tally.dropped_total(), 1);
}

#[test]
fn a_record_without_an_id_is_dropped_and_counted() {
    for kind in Kind::ALL {
        check_dropped(kind, None, Reason::Missing);
        check_dropped(kind, Some(Value::Null), Reason::Missing);
    }
}

#[test]
fn a_record_whose_id_is_not_all_digits_is_dropped_and_counted() {
    for kind in Kind::ALL {
        check_dropped(kind, Some(json!("1784x")), Reason::NotNumeric);
        check_dropped(kind, Some(json!("")), Reason::NotNumeric);
        check_dropped(kind, Some(json!(-5)), Reason::NotNumeric);
        check_dropped(kind, Some(json!({"id": 1})), Reason::WrongType);
    }
}

#[test]
fn an_element_that_is_not_an_object_is_dropped_and_counted() {
    let mut tally = Tally::default();
    assert!(record(
        Kind::Media,
        &json!("17901470705838206"),
        None,
        &Rules::default(),
        &mut tally
    )
    .is_none());
    assert_eq!(
        tally
            .dropped
            .get(&(Kind::Media, "media_id", Reason::NotAnObject)),
        Some(&1)
    );
}

#[test]
fn a_missing_field_gets_its_default_and_is_counted_as_missing() {
    check_default(
        Kind::Brand,
        "name",
        None,
        "name",
        json!(""),
        Reason::Missing,
    );
    check_default(
        Kind::Brand,
        "followers_count",
        None,
        "followers_count",
        json!(0),
        Reason::Missing,
    );
    check_default(
        Kind::Media,
        "caption",
        None,
        "caption",
        json!(""),
        Reason::Missing,
    );
    check_default(
        Kind::Media,
        "media_url",
        None,
        "media_url",
        json!(""),
        Reason::Missing,
    );
    check_default(
        Kind::Media,
        "timestamp",
        None,
        "timestamp",
        json!(EPOCH),
        Reason::Missing,
    );
    check_default(
        Kind::MediaHashtag,
        "like_count",
        Some(Value::Null),
        "like_count",
        json!(0),
        Reason::Missing,
    );
}

#[test]
fn a_value_of_the_wrong_json_type_gets_the_default_and_is_counted() {
    check_default(
        Kind::Brand,
        "username",
        Some(json!(42)),
        "user_name",
        json!(""),
        Reason::WrongType,
    );
    check_default(
        Kind::Brand,
        "media_count",
        Some(json!("9973")),
        "media_count",
        json!(0),
        Reason::WrongType,
    );
    check_default(
        Kind::Media,
        "caption",
        Some(json!(["a"])),
        "caption",
        json!(""),
        Reason::WrongType,
    );
    check_default(
        Kind::Media,
        "timestamp",
        Some(json!(1693612815)),
        "timestamp",
        json!(EPOCH),
        Reason::WrongType,
    );
    check_default(
        Kind::Media,
        "permalink",
        Some(json!(true)),
        "permalink",
        json!(""),
        Reason::WrongType,
    );
    check_default(
        Kind::MediaHashtag,
        "media_type",
        Some(json!(1)),
        "media_type",
        json!(""),
        Reason::WrongType,
    );
}

#[test]
fn a_url_that_is_not_http_becomes_empty_and_is_counted() {
    for bad in [
        "ftp://example.com/a.jpg",
        "www.instagram.com/p/x",
        "javascript:alert(1)",
        "https://",
        "not a url",
    ] {
        check_default(
            Kind::Media,
            "permalink",
            Some(json!(bad)),
            "permalink",
            json!(""),
            Reason::NotHttpUrl,
        );
    }
    check_default(
        Kind::Brand,
        "profile_picture_url",
        Some(json!("data:image/png;base64,AAAA")),
        "profile_picture_url",
        json!(""),
        Reason::NotHttpUrl,
    );
}

#[test]
fn a_malformed_timestamp_becomes_the_epoch_and_is_counted() {
    for bad in [
        "2023-09-02 00:00:15+0000",
        "2023-09-02T00:00:15",
        "2023-13-02T00:00:15+0000",
        "yesterday",
        "",
        // chrono's parser alone accepts each of these; the Graph API never writes them.
        " 2023-09-02T00:00:15+0000",
        "2023-09-02T00:00:15+00:00",
        "2023-9-2T0:0:15+0000",
        "9999-09-02T00:00:15+0000",
        "+10000-09-02T00:00:15+0000",
        "-0001-09-02T00:00:15+0000",
        "2009-12-31T23:59:59+0000",
        "2023-09-02T00:00:15+0000\n",
    ] {
        check_default(
            Kind::MediaHashtag,
            "timestamp",
            Some(json!(bad)),
            "timestamp",
            json!(EPOCH),
            Reason::BadTimestamp,
        );
    }
}

#[test]
fn media_types_outside_the_domain_become_empty_and_are_counted() {
    check_default(
        Kind::Media,
        "media_type",
        Some(json!("REEL")),
        "media_type",
        json!(""),
        Reason::NotInDomain,
    );
    check_default(
        Kind::Media,
        "media_type",
        Some(json!("image")),
        "media_type",
        json!(""),
        Reason::NotInDomain,
    );
    check_default(
        Kind::Media,
        "media_product_type",
        Some(json!("IGTV")),
        "media_product_type",
        json!(""),
        Reason::NotInDomain,
    );
    for ok in ["AD", "FEED", "STORY", "REELS"] {
        let (r, tally) = with(Kind::Media, "media_product_type", Some(json!(ok)));
        assert_eq!(r.expect("kept")["media_product_type"], json!(ok));
        assert_eq!(tally.defaulted_total(), 0);
    }
}

#[test]
fn counts_must_be_non_negative_integers_else_zero_and_counted() {
    check_default(
        Kind::Media,
        "like_count",
        Some(json!(-1)),
        "like_count",
        json!(0),
        Reason::NotACount,
    );
    check_default(
        Kind::Media,
        "comments_count",
        Some(json!(2.5)),
        "comments_count",
        json!(0),
        Reason::NotACount,
    );
    check_default(
        Kind::Brand,
        "followers_count",
        Some(json!(-44959894)),
        "followers_count",
        json!(0),
        Reason::NotACount,
    );
}

#[test]
fn values_that_pass_are_written_verbatim_in_contract_order() {
    let mut tally = Tally::default();
    let obj = valid(Kind::Media);
    let r = record(
        Kind::Media,
        &obj,
        Some("17841400681603877"),
        &Rules::default(),
        &mut tally,
    )
    .expect("kept");
    assert_eq!(tally, Tally::default());
    let keys: Vec<&str> = r.keys().map(String::as_str).collect();
    assert_eq!(keys, Kind::Media.columns());
    assert_eq!(r["user_id"], json!("17841400681603877"));
    assert_eq!(r["timestamp"], obj["timestamp"]);
    assert_eq!(r["caption"], obj["caption"]);
    assert_eq!(r["media_url"], obj["media_url"]);
    assert_eq!(r["like_count"], json!(7392));
}

#[test]
fn timestamps_in_the_graph_form_with_any_offset_pass_verbatim() {
    for good in [
        "2023-09-02T00:00:15+0000",
        "2023-09-02T09:00:15+0900",
        "2010-01-01T00:00:00-0500",
    ] {
        let (r, tally) = with(Kind::MediaHashtag, "timestamp", Some(json!(good)));
        assert_eq!(r.expect("kept")["timestamp"], good);
        assert_eq!(tally.defaulted_total(), 0, "{good}");
    }
}

#[test]
fn an_undecodable_character_becomes_the_replacement_character_and_is_counted() {
    let caption = format!(
        "Tutti {}Twilly #Hermes",
        ig_collector::validate::UNDECODABLE
    );
    let (r, tally) = with(Kind::Media, "caption", Some(json!(caption)));
    let r = r.expect("the record is kept");
    assert_eq!(
        r["caption"], "Tutti \u{FFFD}Twilly #Hermes",
        "the rest of the text is kept"
    );
    assert_eq!(
        tally
            .defaulted
            .get(&(Kind::Media, "caption", Reason::InvalidUnicode)),
        Some(&1)
    );
}

#[test]
fn a_missing_or_broken_media_edge_yields_no_media_and_is_counted() {
    use ig_collector::config::{Config, Overrides, EMBEDDED, EMBEDDED_NAME};
    use ig_collector::graph::shapes;
    let config = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default()).expect("valid");
    let target = &config.targets[2];
    for (media, reason) in [
        (None, Reason::Missing),
        (Some(json!(null)), Reason::Missing),
        (Some(json!({"data": "none"})), Reason::WrongType),
        (Some(json!([1, 2])), Reason::WrongType),
    ] {
        let mut bd = valid(Kind::Brand);
        if let Some(m) = media.clone() {
            bd["media"] = m;
        }
        let mut tally = Tally::default();
        let batch = shapes::brand(
            &json!({"business_discovery": bd}),
            target,
            &Rules::default(),
            &mut tally,
        )
        .expect("the brand is kept");
        assert_eq!(batch.brand.len(), 1);
        assert!(batch.media.is_empty());
        assert_eq!(
            tally.defaulted.get(&(Kind::Brand, "media", reason)),
            Some(&1),
            "{media:?}: {tally:?}"
        );
    }
}
