//! JSON Schemas (draft 2020-12) of the record kinds, generated from the `records` tables, so the
//! published contract cannot say something the writer does not do.
//!
//! Each schema closes the record (`additionalProperties: false`, every field `required`), says
//! what each field holds (type, pattern, closed list, integer range), what its default means
//! (`x-default`: the value written when the API's was missing or broke the rule), the field
//! order (`x-field-order`) and the primary key (`x-primary-key`). The committed copies under
//! `schemas/` are compared with these by a test.

use serde_json::{json, Map, Value};

use crate::records::{Domain, Field, Kind, Rule};
use crate::validate::{Rules, EPOCH};

/// The shape of every timestamp written: the Graph form, `2023-09-02T00:00:15+0000`.
pub const TIMESTAMP_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$";
/// An id: ASCII digits.
pub const ID_PATTERN: &str = "^[0-9]+$";
/// An http(s) URL, or `""` (the default).
pub const URL_PATTERN: &str = "^([hH][tT][tT][pP][sS]?://.+)?$";

/// The folder the committed schemas live in, relative to the crate root.
pub const DIR: &str = "schemas";

/// The committed file name of a kind's schema.
pub fn file_name(kind: Kind) -> String {
    format!("{}.schema.json", kind.name())
}

/// The schema of one kind; `rules` gives the closed lists (`[validation]`).
pub fn schema(kind: Kind, rules: &Rules) -> Value {
    let mut properties = Map::new();
    if let Some(parent) = kind.parent_field() {
        properties.insert(parent.to_string(), parent_property(kind));
    }
    for f in kind.fields() {
        properties.insert(f.name.to_string(), property(kind, f, rules));
    }
    let columns = kind.columns();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{DIR}/{}", file_name(kind)),
        "title": kind.name(),
        "description": description(kind),
        "type": "object",
        "properties": properties,
        "required": columns,
        "additionalProperties": false,
        "x-field-order": columns,
        "x-primary-key": kind.primary_key(),
    })
}

/// Every kind's schema, keyed by kind name.
pub fn all(rules: &Rules) -> Value {
    Value::Object(
        Kind::ALL
            .into_iter()
            .map(|k| (k.name().to_string(), schema(k, rules)))
            .collect(),
    )
}

/// The schema as committed: pretty JSON with a final newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

fn description(kind: Kind) -> &'static str {
    match kind {
        Kind::Brand => "A tracked account's profile, one record per account per brands run.",
        Kind::Media => "A post of a tracked account, one record per post per brands run.",
        Kind::MediaHashtag => {
            "A post found by a tracked account's hashtag, one record per (brand, post) per \
             hashtags run: a post found by several brands' hashtags is one record per brand."
        }
    }
}

fn parent_property(kind: Kind) -> Value {
    let what = match kind {
        Kind::MediaHashtag => "The user id of the tracked account whose hashtag found the post (not who posted it: the API does not say).",
        _ => "The user id of the tracked account the post belongs to.",
    };
    json!({
        "type": "string",
        "pattern": ID_PATTERN,
        "description": format!("{what} Always present."),
    })
}

fn property(kind: Kind, f: &Field, rules: &Rules) -> Value {
    let from = format!("From the API field `{}`.", f.api);
    let default = f.rule.default_value();
    let mut p = match f.rule {
        Rule::Id => json!({
            "type": "string",
            "pattern": ID_PATTERN,
            "description": format!("{from} Always present: a record without a valid id is dropped."),
        }),
        Rule::Text => json!({
            "type": "string",
            "description": format!("{from} `\"\"` when the API gave none."),
        }),
        Rule::Url => json!({
            "type": "string",
            "pattern": URL_PATTERN,
            "description": format!("{from} An http(s) URL; `\"\"` when the API gave none or not a URL."),
        }),
        Rule::Timestamp => json!({
            "type": "string",
            "pattern": TIMESTAMP_PATTERN,
            "x-format": "%Y-%m-%dT%H:%M:%S%z",
            "description": format!("{from} `{EPOCH}` when the API gave none or not a timestamp."),
        }),
        Rule::Count => json!({
            "type": "integer",
            "minimum": 0,
            "maximum": i64::MAX,
            "description": format!("{from} `0` when the API gave none or not a count in 0..=i64::MAX (the API hides some counts)."),
        }),
        Rule::OneOf(domain) => {
            let mut allowed: Vec<Value> = domain_values(domain, rules)
                .iter()
                .map(|v| Value::from(v.as_str()))
                .collect();
            allowed.push(default.clone());
            json!({
                "type": "string",
                "enum": allowed,
                "description": format!("{from} One of the `[validation]` list; `\"\"` when the API gave none or a value not listed."),
            })
        }
    };
    if f.name != kind.id_field() {
        p["x-default"] = default;
    }
    p
}

fn domain_values(domain: Domain, rules: &Rules) -> &[String] {
    match domain {
        Domain::MediaType => &rules.media_types,
        Domain::MediaProductType => &rules.media_product_types,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schemas are the generated ones: a change to a `records` table must be
    /// published with it.
    #[test]
    fn committed_schemas_match_the_records_tables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        for kind in Kind::ALL {
            let path = root.join(file_name(kind));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            let generated = render(&schema(kind, &Rules::default()));
            assert!(
                committed == generated,
                "{} is not what the records tables give: regenerate it with \
                 `cargo run --release --bin ig-collector -- schema {} > {}/{}`",
                path.display(),
                kind.name(),
                DIR,
                file_name(kind)
            );
        }
    }

    #[test]
    fn a_schema_closes_the_record_in_table_order_with_its_key() {
        let s = schema(Kind::MediaHashtag, &Rules::default());
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["x-primary-key"], json!(["user_id", "media_id"]));
        assert_eq!(s["x-field-order"], json!(Kind::MediaHashtag.columns()));
        assert_eq!(s["required"], s["x-field-order"]);
        let keys: Vec<&String> = s["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, Kind::MediaHashtag.columns());
        assert_eq!(
            s["properties"]["media_type"]["enum"],
            json!(["IMAGE", "VIDEO", "CAROUSEL_ALBUM", ""])
        );
        assert_eq!(s["properties"]["like_count"]["maximum"], json!(i64::MAX));
        assert_eq!(s["properties"]["timestamp"]["x-default"], json!(EPOCH));
        assert_eq!(
            s["properties"]["timestamp"]["pattern"],
            json!(TIMESTAMP_PATTERN)
        );
    }
}
