//! Bad configuration is refused with every problem, each naming the file and the key.

use ig_collector::config::{Config, Overrides, EMBEDDED};

fn errors_of(text: &str) -> String {
    match Config::parse(text, "my-config.toml", &Overrides::default()) {
        Ok(_) => panic!("the config must be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_keys_are_all_reported_with_the_file_name() {
    let text = EMBEDDED
        .replace("concurrency = 16", "concurrency = 16\nconcurency = 8")
        .replace("[retry]", "[retry]\nmax_attempt = 3");
    let msg = errors_of(&text);
    assert!(
        msg.starts_with("invalid configuration in my-config.toml"),
        "{msg}"
    );
    assert!(msg.contains("graph.concurency: unknown key"), "{msg}");
    assert!(msg.contains("retry.max_attempt: unknown key"), "{msg}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = EMBEDDED
        .replace("api_version = \"v24.0\"", "api_version = \"v17.0\"")
        .replace("concurrency = 16", "concurrency = 0")
        .replace("user_id = \"17841401694708594\"", "user_id = \"dior\"")
        .replace("hashtag = \"gucci\"", "hashtag = \"#gucci\"")
        .replace(
            "brand_key = \"raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json\"",
            "brand_key = \"raw/brand.json\"",
        );
    let msg = errors_of(&text);
    for key in [
        "graph.api_version",
        "graph.concurrency",
        "targets[2].user_id",
        "targets[4].hashtag",
        "output.brand_key",
    ] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
    assert!(msg.contains("v17.0 expired"), "{msg}");
}

#[test]
fn a_wrong_type_names_the_line() {
    let msg = errors_of(&EMBEDDED.replace("concurrency = 16", "concurrency = \"four\""));
    assert!(msg.contains("my-config.toml"), "{msg}");
    assert!(
        msg.contains("line 11") || msg.contains("concurrency"),
        "{msg}"
    );
}

#[test]
fn environment_overrides_are_checked_and_named() {
    let overrides = Overrides {
        graph_api_version: Some("latest".into()),
        output_format: Some("csv".into()),
        ..Overrides::default()
    };
    let msg = Config::parse(EMBEDDED, "configure.toml", &overrides)
        .expect_err("refused")
        .to_string();
    assert!(msg.contains("GRAPH_API_VERSION (environment)"), "{msg}");
    assert!(msg.contains("OUTPUT_FORMAT (environment)"), "{msg}");
}

#[test]
fn a_missing_file_names_the_path() {
    let msg = Config::load_file(
        std::path::Path::new("/nonexistent/conf.toml"),
        &Overrides::default(),
    )
    .expect_err("refused")
    .to_string();
    assert!(msg.contains("/nonexistent/conf.toml"), "{msg}");
}
