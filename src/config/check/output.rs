//! The `[output]` section: the format and the compression, the key templates, and the keys they
//! render, checked against each other and S3's limits (`keys::check_rendered`).

use super::bad;
use crate::config::file::{FileConfig, OutputSection};
use crate::config::keys::{check_rendered, part_name, KeyTemplate, Rendered, LONGEST_PART};
use crate::config::{OutputSettings, Overrides, Problem};
use crate::records::{Compression, Format};

/// The `[output]` section, with the environment's `OUTPUT_FORMAT`. The keys are rendered and
/// checked only when every template parses and the hashtags' runs per hour are in range.
pub(super) fn output(
    raw: &FileConfig,
    o: &Overrides,
    problems: &mut Vec<Problem>,
) -> OutputSettings {
    let out = &raw.output;
    let (format, compression) = encoding(out, o, problems);
    gz_suffixes(out, compression, problems);
    let mut templates_ok = true;
    let mut template = |key: &str, text: &str| {
        KeyTemplate::parse(text).unwrap_or_else(|m| {
            bad(problems, key, m);
            templates_ok = false;
            KeyTemplate::unchecked(text)
        })
    };
    let brand_key = template("output.brand_key", &out.brand_key);
    let media_key = template("output.media_key", &out.media_key);
    let media_hashtag_key = template("output.media_hashtag_key", &out.media_hashtag_key);
    let raw_capture_key = template("output.raw_capture_key", &out.raw_capture_key);
    if templates_ok && (1..=60).contains(&raw.hashtags.runs_per_hour) {
        let data = [&brand_key, &media_key, &media_hashtag_key];
        rendered_keys(raw, data, &raw_capture_key, problems);
    }
    OutputSettings {
        format,
        compression,
        brand_key,
        media_key,
        media_hashtag_key,
        raw_capture: out.raw_capture,
        raw_capture_key,
    }
}

/// The format (`OUTPUT_FORMAT` over `output.format`) and the compression objects are written in.
fn encoding(
    out: &OutputSection,
    o: &Overrides,
    problems: &mut Vec<Problem>,
) -> (Format, Compression) {
    let (format_key, format_text) = match &o.output_format {
        Some(v) => ("OUTPUT_FORMAT (environment)", v.clone()),
        None => ("output.format", out.format.clone()),
    };
    let format = Format::parse(&format_text).unwrap_or_else(|| {
        bad(
            problems,
            format_key,
            format!("`{format_text}` is not one of \"json\", \"ndjson\""),
        );
        Format::Json
    });
    let compression = Compression::parse(&out.compression).unwrap_or_else(|| {
        bad(
            problems,
            "output.compression",
            format!("`{}` is not one of \"none\", \"gzip\"", out.compression),
        );
        Compression::None
    });
    (format, compression)
}

/// Each data key ends in `.gz` exactly when the objects are compressed.
fn gz_suffixes(out: &OutputSection, compression: Compression, problems: &mut Vec<Problem>) {
    // The key says whether an object is compressed: readers (DuckDB, Spark, Athena) inflate a
    // `.gz` key and only those, so a key that disagrees with the bytes is unreadable downstream.
    for (key, text) in [
        ("output.brand_key", &out.brand_key),
        ("output.media_key", &out.media_key),
        ("output.media_hashtag_key", &out.media_hashtag_key),
    ] {
        match (compression, text.ends_with(".gz")) {
            (Compression::Gzip, false) => bad(
                problems,
                key,
                format!("`{text}` does not end in `.gz`, but output.compression is \"gzip\": readers would not inflate it"),
            ),
            (Compression::None, true) => bad(
                problems,
                key,
                format!("`{text}` ends in `.gz`, but output.compression is \"none\": set it to \"gzip\" or drop the `.gz`"),
            ),
            _ => {}
        }
    }
}

/// Every key the templates render, with the part files beside each object and the raw capture
/// folders, checked by `check_rendered` with the keys that hold no time.
fn rendered_keys(
    raw: &FileConfig,
    [brand_key, media_key, media_hashtag_key]: [&KeyTemplate; 3],
    raw_capture_key: &KeyTemplate,
    problems: &mut Vec<Problem>,
) {
    let hs = &raw.hashtags;
    let brands =
        chrono::Duration::minutes(60 / i64::from(raw.budget.brands_runs_per_hour.clamp(1, 60)));
    let hashtags = chrono::Duration::minutes(60 / i64::from(hs.runs_per_hour));
    // A shard writes part files beside each object (`KeyTemplate::part`): they are checked
    // as the keys of the same setting, so they may not collide with any other setting's,
    // with the longest part number, so they fit S3's key length.
    let parts = [
        brand_key.part(LONGEST_PART),
        media_key.part(LONGEST_PART),
        media_hashtag_key.part(LONGEST_PART),
    ];
    let inside = longest_captures(raw);
    let mut rendered = vec![
        data("output.brand_key", brand_key, "brands", brands),
        data("output.media_key", media_key, "brands", brands),
        data(
            "output.media_hashtag_key",
            media_hashtag_key,
            "hashtags",
            hashtags,
        ),
        data("output.brand_key", &parts[0], "brands", brands),
        data("output.media_key", &parts[1], "brands", brands),
        data("output.media_hashtag_key", &parts[2], "hashtags", hashtags),
    ];
    if raw.output.raw_capture {
        rendered.push(folder(
            "output.raw_capture_key (brands)",
            raw_capture_key,
            "brands",
            brands,
            &inside.brands,
        ));
        rendered.push(folder(
            "output.raw_capture_key (hashtags)",
            raw_capture_key,
            "hashtags",
            hashtags,
            &inside.hashtags,
        ));
    }
    let fixed = [
        ("hashtags.state_key", hs.state_key.as_str()),
        (
            "graph.removed_fields_key",
            raw.graph.removed_fields_key.as_str(),
        ),
    ];
    for (key, message) in check_rendered(&rendered, &fixed) {
        bad(problems, &key, message);
    }
}

/// A data key `job` writes every `interval`.
fn data<'a>(
    config_key: &'a str,
    template: &'a KeyTemplate,
    job: &'a str,
    interval: chrono::Duration,
) -> Rendered<'a> {
    Rendered {
        config_key,
        template,
        job,
        interval,
        folder: false,
        longest_inside: "",
    }
}

/// A folder `job` writes every `interval`, with the longest name written inside it.
fn folder<'a>(
    config_key: &'a str,
    template: &'a KeyTemplate,
    job: &'a str,
    interval: chrono::Duration,
    longest_inside: &'a str,
) -> Rendered<'a> {
    Rendered {
        folder: true,
        longest_inside,
        ..data(config_key, template, job, interval)
    }
}

/// The longest name each job writes inside its raw capture folder, as a shard writes it
/// (`part-9999/hashtags/{hashtag}.{page}.json.gz`), for the key length check.
struct LongestCaptures {
    brands: String,
    hashtags: String,
}

fn longest_captures(raw: &FileConfig) -> LongestCaptures {
    use crate::graph::replay::{
        brand_page_path, brand_path, hashtag_search_path, recent_media_path,
    };
    // A run cannot fetch more pages of one hashtag, or of one account's media, than its
    // credential's hourly calls.
    let pages = raw.budget.calls_per_hour_per_credential.max(2);
    let longest = |names: Vec<String>| {
        let name = names
            .into_iter()
            .max_by_key(String::len)
            .unwrap_or_default();
        // `collect::persist` stores each capture gzip-compressed, as `{name}.gz`.
        format!("{}/{name}.gz", part_name(LONGEST_PART))
    };
    let tags = raw.targets.iter().filter(|t| !t.hashtag.is_empty());
    LongestCaptures {
        brands: longest(
            raw.targets
                .iter()
                .flat_map(|t| [brand_path(&t.username), brand_page_path(&t.username, pages)])
                .collect(),
        ),
        hashtags: longest(
            tags.flat_map(|t| {
                [
                    hashtag_search_path(&t.hashtag),
                    recent_media_path(&t.hashtag, pages),
                ]
            })
            .chain(["state.json".to_string()])
            .collect(),
        ),
    }
}
