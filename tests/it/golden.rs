//! Recorded responses rebuilt from the replaced system's outputs flatten to those outputs,
//! record by record, field order included.

use ig_collector::graph::shapes;
use ig_collector::records::{Kind, Record};
use ig_collector::validate::{Reason, Tally};
use serde_json::Value;

use crate::support::{config_for, read_json, replay_dir, root, samples_dir};

fn assert_same_records(kind: Kind, ours: &[Record], sample: &Value) {
    let sample = sample.as_array().expect("a JSON array");
    assert_eq!(ours.len(), sample.len(), "{} record count", kind.name());
    for (i, (a, b)) in ours.iter().zip(sample).enumerate() {
        let b = b.as_object().expect("object");
        let our_keys: Vec<&String> = a.keys().collect();
        let their_keys: Vec<&String> = b.keys().collect();
        assert_eq!(
            our_keys,
            their_keys,
            "{} record {i}: field order",
            kind.name()
        );
        assert_eq!(a, b, "{} record {i}", kind.name());
    }
}

#[test]
fn recorded_brand_responses_flatten_to_the_sample_brand_and_media_records() {
    let config = config_for("https://unused");
    let mut tally = Tally::default();
    let mut brands = Vec::new();
    let mut media = Vec::new();
    for target in &config.targets {
        let body = read_json(
            replay_dir()
                .join("brands")
                .join(format!("{}.json", target.username)),
        );
        let batch = shapes::brand(&body, target, &config.validation, &mut tally)
            .expect("a business_discovery body");
        brands.extend(batch.brand);
        media.extend(batch.media);
    }
    let samples = samples_dir();
    assert_same_records(
        Kind::Brand,
        &brands,
        &read_json(samples.join("brand_2023-09-02/brand_2023-09-02_000015.json")),
    );
    assert_same_records(
        Kind::Media,
        &media,
        &read_json(samples.join("media_2023-09-02/media_2023-09-02_000015.json")),
    );
    // The sample's empty name, captions and media URLs are fields the API left out.
    assert_eq!(tally.dropped_total(), 0);
    assert_eq!(
        tally.defaulted.get(&(Kind::Brand, "name", Reason::Missing)),
        Some(&1)
    );
    assert_eq!(
        tally
            .defaulted
            .get(&(Kind::Media, "caption", Reason::Missing)),
        Some(&2)
    );
    assert_eq!(
        tally
            .defaulted
            .get(&(Kind::Media, "media_url", Reason::Missing)),
        Some(&2)
    );
    assert_eq!(tally.defaulted_total(), 5);
}

#[test]
fn recorded_hashtag_pages_flatten_to_the_sample_media_hashtag_records_of_both_runs() {
    let config = config_for("https://unused");
    for (dir, sample) in [
        (
            replay_dir(),
            "media_hashtag_2023-09-02/media_hashtag_2023-09-02_000047.json",
        ),
        (
            root().join("fixtures/replay-000547"),
            "media_hashtag_2023-09-02/media_hashtag_2023-09-02_000547.json",
        ),
    ] {
        let mut tally = Tally::default();
        let mut records = Vec::new();
        for target in &config.targets {
            let body = read_json(
                dir.join("hashtags")
                    .join(format!("{}.json", target.hashtag)),
            );
            records.extend(
                shapes::hashtag_page(&body, target, &config.validation, &mut tally)
                    .expect("a data array")
                    .records,
            );
        }
        assert_same_records(
            Kind::MediaHashtag,
            &records,
            &read_json(samples_dir().join(sample)),
        );
        assert_eq!(tally.dropped_total(), 0, "{sample}");
    }
}
