//! The published contract against what a run writes: every record of a replayed run checked
//! against the committed JSON Schemas (python's `jsonschema`), the printed DuckDB views run over
//! the run's output in the default layout and in README's lake layout (gzip, Hive partitions),
//! and the configuration's compression checks.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use ig_collector::config::{Config, Overrides, EMBEDDED};
use ig_collector::records::{self, Kind};

use crate::ops::{duckdb, fenced};
use crate::support::{self, replay_dir, root};

const AT: &str = "2023-09-02T00:00:15Z";

/// README's "Lake layout" section.
fn lake_section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("## Lake layout")
        .expect("README has a Lake layout section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The shipped configuration with README's lake preset pasted into its `[output]` section: each
/// preset line replaces the shipped line of the same key.
fn lake_config(dir: &Path) -> PathBuf {
    let preset = fenced(&lake_section(), "toml");
    assert_eq!(preset.len(), 1, "one TOML block: {preset:?}");
    let mut text = EMBEDDED.to_string();
    for line in preset[0].lines().filter(|l| !l.trim().is_empty()) {
        let key = line.split(" =").next().expect("a key");
        let shipped = EMBEDDED
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("the shipped file sets {key}"));
        text = text.replacen(shipped, line, 1);
    }
    let path = dir.join("lake.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Replays both jobs into `out` (with `config`, or the shipped file).
fn replay(out: &Path, config: Option<&Path>) {
    let mut cmd = support::cli();
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    support::succeed(
        cmd.args(["all", "--replay"])
            .arg(replay_dir())
            .arg("--out")
            .arg(out)
            .args(["--at", AT])
            .env_remove("IG_ACCESS_TOKEN")
            .env_remove("OUTPUT_FORMAT"),
    );
}

/// `ig-collector ddl {engine} --root {root}`.
fn ddl(config: Option<&Path>, engine: &str, root: &str) -> std::process::Output {
    let mut cmd = support::cli();
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["ddl", engine, "--root", root])
        .env_remove("OUTPUT_FORMAT")
        .output()
        .expect("runs")
}

fn ddl_text(config: Option<&Path>, engine: &str, root: &str) -> String {
    let out = ddl(config, engine, root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every data object under `out`, by kind, read back (inflated when `.gz`).
fn written_records(out: &Path) -> Vec<(Kind, PathBuf, Vec<records::Record>)> {
    let mut found = Vec::new();
    let mut stack = vec![out.join("raw")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let kind = [Kind::MediaHashtag, Kind::Media, Kind::Brand]
                .into_iter()
                .find(|k| name.starts_with(&format!("{}_2", k.name())))
                .unwrap_or_else(|| panic!("{name} is no kind's object"));
            let bytes = std::fs::read(&path).expect("read");
            let compression = if name.ends_with(".gz") {
                records::Compression::Gzip
            } else {
                records::Compression::None
            };
            let rows = compression.parse_object(&bytes).expect("records");
            found.push((kind, path, rows));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

/// The schema errors of each record, from python's `jsonschema` (draft 2020-12) with the
/// committed `schemas/{kind}.schema.json`.
fn schema_errors(objects: &[(Kind, PathBuf, Vec<records::Record>)]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys
import jsonschema
req = json.load(sys.stdin)
errors = []
for kind, path, rows in req["objects"]:
    schema = json.load(open(f"{req['schemas']}/{kind}.schema.json"))
    validator = jsonschema.Draft202012Validator(schema)
    for i, row in enumerate(rows):
        for e in validator.iter_errors(row):
            errors.append(f"{path} record {i}: {e.message}")
print(json.dumps(errors))
"#;
    let request = json!({
        "schemas": root().join("schemas"),
        "objects": objects.iter().map(|(k, p, r)| json!([k.name(), p, r])).collect::<Vec<_>>(),
    });
    crate::support::python_json(
        SCRIPT,
        &request,
        "jsonschema failed (pip install jsonschema)",
    )
}

/// The counts of the three views the printed DuckDB DDL defines over `out`, and the distinct
/// primary keys of each.
fn view_counts(config: Option<&Path>, out: &Path) -> Value {
    let views = ddl_text(config, "duckdb", &out.display().to_string());
    let distinct: Vec<String> = Kind::ALL
        .iter()
        .map(|k| {
            format!(
                "SELECT count(*) FROM (SELECT DISTINCT {} FROM {})",
                k.primary_key().join(", "),
                k.name()
            )
        })
        .collect();
    let answer = duckdb(&json!({
        "setup": views.split_terminator(";\n").collect::<Vec<_>>(),
        "counts": ["brand", "media", "media_hashtag"],
        "queries": distinct,
        "globs": [],
    }));
    json!({
        "rows": answer["counts"],
        "keys": answer["queries"].as_array().expect("rows").iter().map(|r| r[0][0].clone()).collect::<Vec<_>>(),
    })
}

#[test]
fn every_record_of_a_replayed_run_fits_its_schema_and_the_printed_views_read_it() {
    let out = tempfile::tempdir().expect("tempdir");
    replay(out.path(), None);
    let objects = written_records(out.path());
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert_eq!(schema_errors(&objects), Vec::<String>::new());
    assert_eq!(
        view_counts(None, out.path()),
        json!({"rows": {"brand": 11, "media": 275, "media_hashtag": 275}, "keys": [11, 275, 275]})
    );
    // A record the schema refuses is reported: the check is not vacuous.
    let mut broken = objects;
    assert_eq!(broken[0].0, Kind::Brand);
    broken[0].2[0].insert("followers_count".into(), json!(-1));
    broken[0].2[0].insert("extra".into(), json!("x"));
    assert_eq!(schema_errors(&broken[..1]).len(), 2);
}

#[test]
fn readmes_lake_layout_writes_gzip_under_hive_partitions_and_its_views_count_each_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = lake_config(dir.path());
    let out = dir.path().join("out");
    replay(&out, Some(&config));
    let objects = written_records(&out);
    let keys: Vec<String> = objects
        .iter()
        .map(|(_, p, _)| {
            p.strip_prefix(&out)
                .expect("under out")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "raw/brand/dt=2023-09-02/hour=00/brand_2023-09-02_000015.json.gz",
            "raw/media/dt=2023-09-02/hour=00/media_2023-09-02_000015.json.gz",
            "raw/media_hashtag/dt=2023-09-02/hour=00/media_hashtag_2023-09-02_000015.json.gz",
        ]
    );
    for (_, path, _) in &objects {
        let bytes = std::fs::read(path).expect("read");
        assert_eq!(&bytes[..2], [0x1f, 0x8b], "{}: gzip", path.display());
        let inflated = ig_collector::graph::gunzip(&bytes).expect("gunzip");
        assert_eq!(inflated.first(), Some(&b'{'), "ndjson: {}", path.display());
    }
    assert_eq!(schema_errors(&objects), Vec::<String>::new());
    let expected =
        json!({"rows": {"brand": 11, "media": 275, "media_hashtag": 275}, "keys": [11, 275, 275]});
    assert_eq!(view_counts(Some(&config), &out), expected);
    // The same scheduled time again: the gzip objects are inflated, merged into and written
    // again, so nothing is counted twice.
    replay(&out, Some(&config));
    assert_eq!(written_records(&out).len(), 3);
    assert_eq!(view_counts(Some(&config), &out), expected);
    // README shows the views this layout prints.
    let printed = ddl_text(Some(&config), "duckdb", "s3://<bucket>");
    assert!(
        fenced(&lake_section(), "sql").contains(&printed),
        "README's lake views are not what `ig-collector ddl duckdb` prints:\n{printed}"
    );
    // Athena: partition projection on both folders, under the kind's own prefix.
    let athena = ddl_text(Some(&config), "athena", "s3://b");
    for needle in [
        "PARTITIONED BY (`dt` date, `hour` string)",
        "LOCATION 's3://b/raw/media_hashtag/'",
        "'projection.hour.digits' = '2'",
        "'storage.location.template' = 's3://b/raw/media/dt=${dt}/hour=${hour}/'",
    ] {
        assert!(athena.contains(needle), "{needle} in:\n{athena}");
    }
}

#[test]
fn athena_needs_ndjson_and_s3() {
    let json = ddl(None, "athena", "s3://b");
    assert_eq!(json.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&json.stderr).contains("output.format = \"ndjson\""));
    let dir = tempfile::tempdir().expect("tempdir");
    let local = ddl(Some(&lake_config(dir.path())), "athena", "./out");
    assert_eq!(local.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&local.stderr).contains("--root s3://"));
}

#[test]
fn compression_and_the_keys_gz_suffix_must_agree() {
    let errors = |text: &str| match Config::parse(text, "my-config.toml", &Overrides::default()) {
        Ok(_) => panic!("refused:\n{text}"),
        Err(e) => e.to_string(),
    };
    let gzip = EMBEDDED.replacen("compression = \"none\"", "compression = \"gzip\"", 1);
    let message = errors(&gzip);
    for key in [
        "output.brand_key",
        "output.media_key",
        "output.media_hashtag_key",
    ] {
        assert!(message.contains(key), "{key}: {message}");
    }
    assert!(message.contains("does not end in `.gz`"), "{message}");
    let gz_key = EMBEDDED.replacen(
        "brand_{%Y-%m-%d_%H%M%S}.json\"",
        "brand_{%Y-%m-%d_%H%M%S}.json.gz\"",
        1,
    );
    let message = errors(&gz_key);
    assert!(
        message.contains("output.brand_key") && message.contains("ends in `.gz`"),
        "{message}"
    );
    assert!(
        errors(&EMBEDDED.replacen("compression = \"none\"", "compression = \"zstd\"", 1))
            .contains("output.compression")
    );
}
