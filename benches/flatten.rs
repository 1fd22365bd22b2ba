//! Flatten and validate throughput of Graph JSON, next to plain `serde_json` parsing of the same
//! bytes. The inputs are the recorded responses in `fixtures/replay` (11 `business_discovery`
//! bodies, 11 `recent_media` pages), one iteration going over all of them.
//!
//! Per group (`flatten_brands`, `flatten_hashtags`), with `Throughput::Bytes`:
//! - `parse`: `serde_json::from_slice::<Value>`, the baseline;
//! - `parse_flatten_validate`: what a run does with a body: `graph::decode` (parse and error
//!   check), then `graph::shapes::brand` / `graph::shapes::hashtag_page` (records, defaults, tally);
//! - `flatten_validate`: the same from an already parsed `Value`, to show where the time goes.
//!
//! `parse_flatten_validate` / `parse` throughput is the ratio held against the 50 % target; the
//! `figures` bench reads these results back for its summary (see BENCHMARKS.md).
//!
//! Group `validate_parts` times two field rules alone over every such value in the brand bodies,
//! to show what the brand flatten spends its time on: `url_checks` (`validate::is_http_url` on
//! `profile_picture_url`, `media_url`, `permalink`) and `timestamp_checks` (the contract's
//! timestamp format, parsed with chrono as the `Timestamp` rule does).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ig_collector::config::{Config, Overrides, Target, EMBEDDED, EMBEDDED_NAME};
use ig_collector::graph::decode;
use ig_collector::graph::shapes;
use ig_collector::validate::{is_http_url, Rules, Tally, TIMESTAMP_FORMAT};
use serde_json::Value;

struct Input {
    target: Target,
    rules: Rules,
    bytes: Vec<u8>,
    value: Value,
}

#[derive(Clone, Copy)]
enum Kind {
    Brands,
    Hashtags,
}

/// The recorded bodies of every configured target, read once.
fn inputs(kind: Kind) -> Vec<Input> {
    let config = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default())
        .expect("the shipped configuration is valid");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/replay");
    config
        .targets
        .iter()
        .map(|t| {
            let path = match kind {
                Kind::Brands => dir.join("brands").join(format!("{}.json", t.username)),
                Kind::Hashtags => dir.join("hashtags").join(format!("{}.json", t.hashtag)),
            };
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Input {
                target: t.clone(),
                rules: config.validation.clone(),
                bytes,
                value,
            }
        })
        .collect()
}

/// Flattens and validates one body the way the job does; the records are returned so that
/// building (and dropping) them is part of the measurement.
fn flatten(kind: Kind, body: &Value, input: &Input) -> usize {
    let mut tally = Tally::default();
    let (target, rules) = (&input.target, &input.rules);
    match kind {
        Kind::Brands => {
            let batch = shapes::brand(body, target, rules, &mut tally).expect("a brand body");
            black_box(&batch);
        }
        Kind::Hashtags => {
            let records =
                shapes::hashtag_page(body, target, rules, &mut tally).expect("a hashtag page");
            black_box(&records);
        }
    }
    black_box(&tally);
    1
}

fn throughput(c: &mut Criterion) {
    for (group, kind) in [
        ("flatten_brands", Kind::Brands),
        ("flatten_hashtags", Kind::Hashtags),
    ] {
        let inputs = inputs(kind);
        let bytes: u64 = inputs.iter().map(|i| i.bytes.len() as u64).sum();
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function("parse", |b| {
            b.iter(|| {
                for i in &inputs {
                    let v: Value = serde_json::from_slice(black_box(&i.bytes)).expect("JSON");
                    black_box(v);
                }
            })
        });
        g.bench_function("parse_flatten_validate", |b| {
            b.iter(|| {
                let mut n = 0;
                for i in &inputs {
                    let v = decode(200, black_box(&i.bytes), None).expect("a 200 body");
                    n += flatten(kind, &v, i);
                }
                n
            })
        });
        g.bench_function("flatten_validate", |b| {
            b.iter(|| {
                let mut n = 0;
                for i in &inputs {
                    n += flatten(kind, black_box(&i.value), i);
                }
                n
            })
        });
        g.finish();
    }

    // The URL and timestamp values of the brand bodies, checked alone.
    let brands = inputs(Kind::Brands);
    let mut urls = Vec::new();
    let mut timestamps = Vec::new();
    for i in &brands {
        let bd = &i.value["business_discovery"];
        urls.extend(bd["profile_picture_url"].as_str().map(str::to_string));
        for m in bd["media"]["data"].as_array().into_iter().flatten() {
            for f in ["media_url", "permalink"] {
                urls.extend(m[f].as_str().map(str::to_string));
            }
            timestamps.extend(m["timestamp"].as_str().map(str::to_string));
        }
    }
    let mut g = c.benchmark_group("validate_parts");
    g.throughput(Throughput::Elements(urls.len() as u64));
    g.bench_function("url_checks", |b| {
        b.iter(|| urls.iter().filter(|u| is_http_url(black_box(u))).count())
    });
    g.throughput(Throughput::Elements(timestamps.len() as u64));
    g.bench_function("timestamp_checks", |b| {
        b.iter(|| {
            timestamps
                .iter()
                .filter(|t| {
                    chrono::DateTime::parse_from_str(black_box(t), TIMESTAMP_FORMAT).is_ok()
                })
                .count()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = throughput
}
criterion_main!(benches);
