//! Table definitions for the configured output, generated from the `records` tables (columns and
//! their types) and the configured key templates (where the objects are, how they are
//! partitioned), so a reader's tables follow the writer's layout instead of being written by
//! hand beside it.
//!
//! - DuckDB: one `CREATE OR REPLACE VIEW {kind} AS SELECT * FROM read_json(…)` per kind, with the
//!   exact columns and types, the format (`array` or `newline_delimited`), the compression, the
//!   file name (the run time, for the latest snapshot per key) and, when the keys carry
//!   `name=value` folders, Hive partitioning.
//! - Athena: one `CREATE EXTERNAL TABLE` per kind, read with the OpenX JSON SerDe, its
//!   partitions (`dt`, `hour`, …, one per time hole of the key's folders) resolved by partition
//!   projection, so no crawler or `MSCK REPAIR` is needed. Athena reads one record per line
//!   only, so it needs `output.format = "ndjson"`.
//!
//! A glob names a hole by the shape it renders (`????-??-??` for `{%Y-%m-%d}`), not `*`: with
//! `*`, `raw/media_*/` would also match `raw/media_hashtag_*/` and count every hashtag post as
//! brand media. A `*` stands before the file's extension so a sharded run's part files
//! (`….part-0003.json`) are read too.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};

use crate::config::Config;
use crate::records::{Compression, Format, Kind, Rule};

/// The engines `ig-collector ddl` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Athena,
    Duckdb,
}

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "athena" => Some(Engine::Athena),
            "duckdb" => Some(Engine::Duckdb),
            _ => None,
        }
    }
}

/// The first day Athena's partition projection lists (`dt`); queries filter on `dt`, so an
/// early start costs nothing.
pub const PROJECTION_START: &str = "2023-01-01";

/// The definitions of all three kinds for `engine`, reading the objects under `root` (a local
/// folder, or `s3://bucket`). Fails with what to change when the layout cannot be read so.
pub fn ddl(config: &Config, engine: Engine, root: &str) -> Result<String, String> {
    let mut out = String::new();
    for kind in Kind::ALL {
        let template = config.key_template(kind).as_str();
        let text = match engine {
            Engine::Duckdb => duckdb(kind, template, config, root),
            Engine::Athena => athena(kind, template, config, root)?,
        };
        out.push_str(&text);
    }
    Ok(out)
}

/// The DuckDB type of a field.
pub fn duckdb_type(rule: Rule) -> &'static str {
    match rule {
        Rule::Count => "BIGINT",
        Rule::Id | Rule::Text | Rule::Url | Rule::Timestamp | Rule::OneOf(_) => "VARCHAR",
    }
}

/// The Athena (Hive) type of a field.
pub fn athena_type(rule: Rule) -> &'static str {
    match rule {
        Rule::Count => "bigint",
        Rule::Id | Rule::Text | Rule::Url | Rule::Timestamp | Rule::OneOf(_) => "string",
    }
}

/// A kind's columns with the rule of each (the parent field is an id).
fn typed_columns(kind: Kind) -> Vec<(&'static str, Rule)> {
    kind.parent_field()
        .map(|p| (p, Rule::Id))
        .into_iter()
        .chain(kind.fields().iter().map(|f| (f.name, f.rule)))
        .collect()
}

fn duckdb(kind: Kind, template: &str, config: &Config, root: &str) -> String {
    let output = &config.output;
    let path = join(root, &glob(template));
    let format = match output.format {
        Format::Json => "array",
        Format::Ndjson => "newline_delimited",
    };
    let compression = match output.compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
    };
    let columns: Vec<String> = typed_columns(kind)
        .into_iter()
        .map(|(name, rule)| format!("'{name}': '{}'", duckdb_type(rule)))
        .collect();
    let hive = !hive_names(template).is_empty();
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_json('{}', format = '{format}', compression = '{compression}', columns = {{{}}}, filename = true, hive_partitioning = {hive});\n",
        kind.name(),
        quote(&path),
        columns.join(", ")
    )
}

fn athena(kind: Kind, template: &str, config: &Config, root: &str) -> Result<String, String> {
    athena_can_read(config, root)?;
    let (folder, _) = template.rsplit_once('/').unwrap_or(("", template));
    let fixed: Vec<&str> = folder.split('/').take_while(|s| !s.contains('{')).collect();
    let location = join(root, &format!("{}/", fixed.join("/")));
    let (partitions, projected) = folder_partitions(template, folder)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{}` (",
        kind.name()
    );
    let columns: Vec<String> = typed_columns(kind)
        .into_iter()
        .map(|(name, rule)| format!("  `{name}` {}", athena_type(rule)))
        .collect();
    let _ = writeln!(out, "{}\n)", columns.join(",\n"));
    if !partitions.is_empty() {
        let names: Vec<String> = partitions
            .iter()
            .map(|(n, p)| format!("`{n}` {}", p.column_type()))
            .collect();
        let _ = writeln!(out, "PARTITIONED BY ({})", names.join(", "));
    }
    out.push_str("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n");
    let _ = writeln!(out, "LOCATION '{}'", quote(&location));
    let properties = projection_properties(&partitions, &projected, root);
    if !properties.is_empty() {
        let lines: Vec<String> = properties
            .iter()
            .map(|(k, v)| format!("  '{k}' = '{}'", quote(v)))
            .collect();
        let _ = write!(out, "TBLPROPERTIES (\n{}\n)", lines.join(",\n"));
    } else {
        out.pop();
    }
    out.push_str(";\n");
    Ok(out)
}

/// Whether Athena can read what this configuration writes under `root`: one record per line,
/// in S3.
fn athena_can_read(config: &Config, root: &str) -> Result<(), String> {
    if config.output.format != Format::Ndjson {
        return Err(
            "Athena reads one record per line: set output.format = \"ndjson\" (or OUTPUT_FORMAT=ndjson) first"
                .into(),
        );
    }
    if !root.starts_with("s3://") {
        return Err(format!(
            "Athena reads S3: give --root s3://<bucket> (or set BUCKET), not `{root}`"
        ));
    }
    Ok(())
}

/// The partition columns of `folder` (the key `template`'s folder), one per hole, each with how
/// Athena lists its values; and the folder with each hole replaced by its column
/// (`${name}`), for the storage location template.
fn folder_partitions(
    template: &str,
    folder: &str,
) -> Result<(Vec<(String, Projection)>, String), String> {
    let mut partitions = Vec::new();
    let mut projected = folder.to_string();
    let mut rest = folder;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let pattern = &rest[open + 1..close];
        let segment_start = rest[..open].rfind('/').map_or(0, |i| i + 1);
        let named = rest[segment_start..open]
            .strip_suffix('=')
            .filter(|n| !n.is_empty() && !n.contains('{'));
        let projection = Projection::of(pattern).ok_or_else(|| {
            format!("the key `{template}` has a folder hole `{{{pattern}}}` Athena's partition projection cannot list: use {{%Y-%m-%d}}, {{%Y}}, {{%m}}, {{%d}} or {{%H}}")
        })?;
        let name = named.unwrap_or(projection.name).to_string();
        if partitions.iter().any(|(n, _)| *n == name) {
            return Err(format!(
                "the key `{template}` has two folder holes named `{name}`"
            ));
        }
        projected = projected.replacen(&format!("{{{pattern}}}"), &format!("${{{name}}}"), 1);
        partitions.push((name, projection));
        rest = &rest[close + 1..];
    }
    Ok((partitions, projected))
}

/// The table properties of partition projection over `partitions` (none without partitions):
/// each column's values, and where the objects of one partition are (`projected` under `root`).
fn projection_properties(
    partitions: &[(String, Projection)],
    projected: &str,
    root: &str,
) -> Vec<(String, String)> {
    let mut properties = Vec::new();
    if !partitions.is_empty() {
        properties.push(("projection.enabled".to_string(), "true".to_string()));
        for (name, p) in partitions {
            for (key, value) in p.properties() {
                properties.push((format!("projection.{name}.{key}"), value));
            }
        }
        properties.push((
            "storage.location.template".to_string(),
            join(root, &format!("{projected}/")),
        ));
    }
    properties
}

/// How Athena lists one folder hole's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Projection {
    /// The column's name when the folder does not name it (`dt=` does).
    name: &'static str,
    kind: ProjectionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProjectionKind {
    /// A day, `yyyy-MM-dd`.
    Date,
    /// An integer in a range, zero-padded to `digits`.
    Integer { min: u32, max: u32, digits: u32 },
}

impl Projection {
    fn of(pattern: &str) -> Option<Projection> {
        let (name, kind) = match pattern {
            "%Y-%m-%d" | "%F" => ("dt", ProjectionKind::Date),
            "%Y" => (
                "year",
                ProjectionKind::Integer {
                    min: 2020,
                    max: 2100,
                    digits: 4,
                },
            ),
            "%m" => (
                "month",
                ProjectionKind::Integer {
                    min: 1,
                    max: 12,
                    digits: 2,
                },
            ),
            "%d" => (
                "day",
                ProjectionKind::Integer {
                    min: 1,
                    max: 31,
                    digits: 2,
                },
            ),
            "%H" => (
                "hour",
                ProjectionKind::Integer {
                    min: 0,
                    max: 23,
                    digits: 2,
                },
            ),
            _ => return None,
        };
        Some(Projection { name, kind })
    }

    /// A day is a `date` (filter with `dt = DATE '2023-09-02'`); a number keeps the folder's
    /// zero-padded text (`hour = '07'`).
    fn column_type(&self) -> &'static str {
        match self.kind {
            ProjectionKind::Date => "date",
            ProjectionKind::Integer { .. } => "string",
        }
    }

    fn properties(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            ProjectionKind::Date => vec![
                ("type", "date".into()),
                ("format", "yyyy-MM-dd".into()),
                ("range", format!("{PROJECTION_START},NOW")),
                ("interval", "1".into()),
                ("interval.unit", "DAYS".into()),
            ],
            ProjectionKind::Integer { min, max, digits } => vec![
                ("type", "integer".into()),
                ("range", format!("{min},{max}")),
                ("digits", digits.to_string()),
            ],
        }
    }
}

/// The `name` of each `name={…}` folder of a template: Hive-style partitions.
pub fn hive_names(template: &str) -> Vec<&str> {
    let folder = template.rsplit_once('/').map_or("", |(f, _)| f);
    folder
        .split('/')
        .filter_map(|segment| {
            let (name, value) = segment.split_once('=')?;
            (!name.is_empty() && !name.contains('{') && value.starts_with('{')).then_some(name)
        })
        .collect()
}

/// The glob of every object a template renders, part files included: each hole becomes the
/// shape it renders (a digit becomes `?`; a hole rendering letters, whose width varies, `*`),
/// and the file's extension gets a `*` before it.
pub fn glob(template: &str) -> String {
    let sample = Utc
        .with_ymd_and_hms(2023, 9, 2, 10, 0, 15)
        .single()
        .unwrap_or_default();
    let with_parts = crate::config::part_key(template, 0);
    let marker = format!(".{}", crate::config::part_name(0));
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = with_parts.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&escape(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        let pattern = &after[..close];
        let rendered = sample.format(pattern).to_string();
        if rendered.chars().any(|c| c.is_alphabetic()) {
            out.push('*');
        } else {
            for c in rendered.chars() {
                out.push_str(&match c {
                    '0'..='9' => "?".to_string(),
                    c => escape(&c.to_string()),
                });
            }
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(&escape(rest));
    // The part marker becomes the `*` that takes both the object and its parts.
    out.replacen(&marker, "*", 1)
}

/// A literal piece of a glob: the glob's special characters each become `?`.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| if "*?[]".contains(c) { '?' } else { c })
        .collect()
}

fn join(root: &str, path: &str) -> String {
    format!("{}/{}", root.trim_end_matches('/'), path)
}

/// A string inside SQL single quotes.
fn quote(text: &str) -> String {
    text.replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_keep_kinds_apart_and_take_part_files() {
        assert_eq!(
            glob("raw/media_{%Y-%m-%d}/media_{%Y-%m-%d_%H%M%S}.json"),
            "raw/media_????-??-??/media_????-??-??_??????*.json"
        );
        assert_eq!(
            glob("raw/brand/dt={%Y-%m-%d}/hour={%H}/brand_{%Y-%m-%d_%H%M%S}.json.gz"),
            "raw/brand/dt=????-??-??/hour=??/brand_????-??-??_??????*.json.gz"
        );
        assert_eq!(glob("x/{%b}/y_{%H}"), "x/*/y_??*");
        assert_eq!(
            hive_names("raw/brand/dt={%Y-%m-%d}/hour={%H}/brand_{%H}.json.gz"),
            ["dt", "hour"]
        );
        assert!(hive_names("raw/brand_{%Y-%m-%d}/b_{%H}.json").is_empty());
    }
}
