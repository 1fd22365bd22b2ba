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
fn a_token_refresh_threshold_out_of_range_names_its_key_and_zero_turns_it_off() {
    let msg = errors_of(&EMBEDDED.replace("refresh_days_left = 14", "refresh_days_left = 61"));
    assert!(
        msg.contains("health.refresh_days_left: 61 is not in 0..=50 (0 turns the refresh off"),
        "{msg}"
    );
    let off = Config::parse(
        &EMBEDDED.replace("refresh_days_left = 14", "refresh_days_left = 0"),
        "off.toml",
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(off.health.refresh_days_left, None);
    let shipped = Config::parse(EMBEDDED, "shipped", &Overrides::default()).expect("valid");
    assert_eq!(shipped.health.refresh_days_left.map(|d| d.get()), Some(14));
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

/// The message for one changed line of the shipped file.
fn errors_with(from: &str, to: &str) -> String {
    assert!(EMBEDDED.contains(from), "{from}");
    errors_of(&EMBEDDED.replacen(from, to, 1))
}

#[test]
fn key_templates_are_checked_as_the_keys_they_render() {
    let media_hashtag =
        "media_hashtag_key = \"raw/media_hashtag_{%Y-%m-%d}/media_hashtag_{%Y-%m-%d_%H%M%S}.json\"";
    let brand = "brand_key = \"raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json\"";
    for (from, to, key, needle) in [
        (
            brand,
            "brand_key = \"raw/{%#z}/{%H%M%S}.json\"",
            "output.brand_key",
            "cannot be rendered",
        ),
        (
            brand,
            "brand_key = \"raw/{.}{.}/{%H%M%S}.json\"",
            "output.brand_key",
            "`..`",
        ),
        (
            brand,
            "brand_key = \"{/}raw/{%H%M%S}.json\"",
            "output.brand_key",
            "absolute",
        ),
        (
            brand,
            "brand_key = \"raw/{%n}{%H%M%S}.json\"",
            "output.brand_key",
            "control",
        ),
        (
            media_hashtag,
            "media_hashtag_key = \"raw/mh_{%Y-%m-%d}.json\"",
            "output.media_hashtag_key",
            "consecutive",
        ),
        (
            "media_key = \"raw/media_{%Y-%m-%d}/media_{%Y-%m-%d_%H%M%S}.json\"",
            "media_key = \"raw/brand_{%F}/brand_{%F_%H%M%S}.json\"",
            "output.media_key",
            "collides",
        ),
        (
            "state_key = \"state/hashtags.json\"",
            "state_key = \"raw/media_hashtag_2023-09-02/media_hashtag_2023-09-02_000500.json\"",
            "output.media_hashtag_key",
            "collides",
        ),
        (
            "state_key = \"state/hashtags.json\"",
            "state_key = \"../state.json\"",
            "hashtags.state_key",
            "`..`",
        ),
        (
            "raw_capture_key = \"raw_api/{job}/{%Y-%m-%d}/{%Y-%m-%d_%H%M%S}\"",
            "raw_capture_key = \"raw_api/{%Y-%m-%d}/{%Y-%m-%d_%H%M%S}\"",
            "output.raw_capture_key (hashtags)",
            "collides",
        ),
    ] {
        let msg = errors_with(from, to);
        assert!(
            msg.contains(&format!("{key}: ")) && msg.contains(needle),
            "{to}: `{key}` / `{needle}` not in: {msg}"
        );
    }
}

#[test]
fn numbers_out_of_range_are_refused_by_name() {
    for (from, to, key) in [
        (
            "known_window_mins = 180",
            "known_window_mins = 200000000000",
            "hashtags.known_window_mins",
        ),
        (
            "max_delay_mins = 30",
            "max_delay_mins = 4000000",
            "hashtags.max_delay_mins",
        ),
        (
            "late_window_mins = 20",
            "late_window_mins = 100000",
            "hashtags.late_window_mins",
        ),
        (
            "overlap_secs = 120",
            "overlap_secs = 7200",
            "hashtags.overlap_secs",
        ),
        (
            "calls_per_hour_per_credential = 200",
            "calls_per_hour_per_credential = 0",
            "budget.calls_per_hour_per_credential",
        ),
        (
            "max_body_bytes = 8388608",
            "max_body_bytes = 10",
            "graph.max_body_bytes",
        ),
        (
            "operation_timeout_secs = 10",
            "operation_timeout_secs = 0",
            "sink.operation_timeout_secs",
        ),
        (
            "deadline_margin_secs = 8",
            "deadline_margin_secs = 100000",
            "retry.deadline_margin_secs",
        ),
        (
            "invocation_timeout_secs = 60",
            "invocation_timeout_secs = 1000",
            "fanout.invocation_timeout_secs",
        ),
        (
            "invocation_timeout_secs = 60",
            "invocation_timeout_secs = 8",
            "fanout.invocation_timeout_secs",
        ),
        (
            "call_time_ms = 4000",
            "call_time_ms = 0",
            "fanout.call_time_ms",
        ),
    ] {
        let msg = errors_with(from, to);
        assert!(msg.contains(&format!("{key}: ")), "{key} not in: {msg}");
    }
}

/// The ranges and names declared on the file's shapes reach the operator keyed as the file spells
/// them, with the value, the bounds and why; targets by their index, past 9 too.
#[test]
fn declared_checks_name_the_key_the_value_the_bounds_and_why() {
    let msg = errors_with("hashtag_media_limit = 50", "hashtag_media_limit = 51");
    assert!(
        msg.contains("graph.hashtag_media_limit: 51 is not in 1..=50 (the API's page limit)"),
        "{msg}"
    );
    let msg = errors_with("connect_timeout_secs = 3", "connect_timeout_secs = 61");
    assert!(
        msg.contains("sink.connect_timeout_secs: 61 is not in 1..=60"),
        "{msg}"
    );
    let mut text = EMBEDDED
        .replacen("username = \"hermes\"", "username = \"Hermes Paris\"", 1)
        .replacen("hashtag_id = \"\"", "hashtag_id = \"abc\"", 1)
        .replacen("user_id = \"17841401694708594\"", "user_id = \"dior\"", 1)
        .replacen("hashtag_media_limit = 50", "hashtag_media_limit = 0", 1)
        .replacen("connect_timeout_secs = 3", "connect_timeout_secs = 0", 1)
        .replacen("max_attempts = 4", "max_attempts = 0", 1);
    text.push_str(
        "\n[[targets]]\nusername = \"extra\"\nuser_id = \"12x\"\nhashtag = \"extra\"\nhashtag_priority = 11\n",
    );
    let msg = errors_of(&text);
    for needle in [
        "targets[0].username: `Hermes Paris` is not an Instagram username",
        "targets[0].hashtag_id: `abc` is not numeric",
        "targets[2].user_id: `dior` is not a numeric Instagram user id",
        "targets[11].user_id: `12x` is not a numeric Instagram user id",
        "targets[11].hashtag_priority: 11 is not in 1..=10",
    ] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    // One stable order: sections by name, then targets by index (targets[11] after targets[2],
    // which a plain text sort would put first).
    let at = |needle: &str| {
        msg.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {msg}"))
    };
    let order = [
        at("graph.hashtag_media_limit: "),
        at("retry.max_attempts: "),
        at("sink.connect_timeout_secs: "),
        at("targets[0]."),
        at("targets[2]."),
        at("targets[11]."),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?} in: {msg}");
}

#[test]
fn the_shipped_file_sets_what_the_code_defaults_to() {
    // Every value the shipped file sets equals the code's default for it: the file documents
    // the defaults, and a config without the line behaves the same.
    let text: toml::Table = toml::from_str(EMBEDDED).expect("toml");
    let full = Config::parse(EMBEDDED, "shipped", &Overrides::default()).expect("valid");
    for (section, table) in text.iter().filter(|(k, _)| k.as_str() != "targets") {
        let toml::Value::Table(table) = table else {
            continue;
        };
        for key in table.keys() {
            if section == "graph" && key == "api_version" {
                continue; // required, no default
            }
            let without: String = EMBEDDED
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{key} =")))
                .collect::<Vec<_>>()
                .join("\n");
            let bare = Config::parse(&without, "bare", &Overrides::default())
                .unwrap_or_else(|e| panic!("{section}.{key} without its line: {e}"));
            assert_eq!(
                format!(
                    "{:?}",
                    (
                        &bare.graph,
                        &bare.retry,
                        &bare.output,
                        &bare.hashtags,
                        &bare.budget,
                        &bare.sink,
                        &bare.validation,
                        &bare.fanout,
                        &bare.health,
                        &bare.brands
                    )
                ),
                format!(
                    "{:?}",
                    (
                        &full.graph,
                        &full.retry,
                        &full.output,
                        &full.hashtags,
                        &full.budget,
                        &full.sink,
                        &full.validation,
                        &full.fanout,
                        &full.health,
                        &full.brands
                    )
                ),
                "{section}.{key}: the shipped value differs from the code default"
            );
        }
    }
}

#[test]
fn a_base_url_that_is_not_https_is_refused_except_on_a_loopback_host() {
    let base = "base_url = \"https://graph.facebook.com\"";
    for (url, ok) in [
        ("https://graph.facebook.com", true),
        ("HTTPS://graph.facebook.com/", true),
        ("http://127.0.0.1:8080", true),
        ("http://127.0.0.2", true),
        ("http://[::1]:9", true),
        ("http://localhost:3000", true),
        ("http://LocalHost", true),
        ("http://graph.facebook.com", false),
        ("HTTP://graph.facebook.com", false),
        ("http://10.0.0.1:8080", false),
        ("http://127.0.0.1.example.com", false),
        ("http://localhost.example.com", false),
        ("http://[::2]", false),
    ] {
        let file = EMBEDDED.replacen(base, &format!("base_url = \"{url}\""), 1);
        let env = Overrides {
            graph_api_url: Some(url.to_string()),
            ..Overrides::default()
        };
        for (text, overrides, key) in [
            (file.as_str(), Overrides::default(), "graph.base_url"),
            (EMBEDDED, env, "GRAPH_API_URL (environment)"),
        ] {
            match Config::parse(text, "my-config.toml", &overrides) {
                Ok(_) => assert!(ok, "{url} via {key} must be refused"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!ok, "{url} via {key} must pass: {msg}");
                    assert!(
                        msg.contains(&format!("{key}: `{url}` is plain http"))
                            && msg.contains("in clear")
                            && msg.contains("loopback"),
                        "{msg}"
                    );
                }
            }
        }
    }
    for not_http in ["ftp://graph.facebook.com", "graph.facebook.com"] {
        let msg = errors_with(base, &format!("base_url = \"{not_http}\""));
        assert!(
            msg.contains(&format!(
                "graph.base_url: `{not_http}` is not an http(s) URL"
            )),
            "{msg}"
        );
    }
}

/// S3 refuses a key over 1,024 bytes of UTF-8; `check` measures the longest key a setting can
/// render (its part with the largest part number, a capture folder with the longest name it
/// holds) and refuses one byte over, naming the setting and the length.
#[test]
fn keys_longer_than_s3_allows_are_refused_one_byte_over_the_limit() {
    use ig_collector::config::{part_key, part_name};
    use ig_collector::graph::replay::{hashtag_search_path, recent_media_path};
    let brand = "brand_key = \"raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json\"";
    // The longest key the setting renders: a shard's part of the object, at a sample time.
    let longest = |to: &str, at: chrono::DateTime<chrono::Utc>| {
        let config = Config::parse(
            &EMBEDDED.replacen(brand, to, 1),
            "my-config.toml",
            &Overrides::default(),
        )
        .expect("valid");
        part_key(config.output.brand_key.render(at).as_str(), 9999).len()
    };
    let at = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2023, 9, 2, 0, 5, 0)
        .single()
        .expect("time");
    // Multi-byte characters: the limit is in bytes, not characters.
    let template = |pad: &str| format!("brand_key = \"raw/{{%Y%m%d_%H%M%S}}_{pad}.json\"");
    let room = 1024 - "raw/20230902_000500_.json".len() - ".part-9999".len();
    let pad = format!("{}{}", "é".repeat(room / 2), "a".repeat(room % 2));
    let fits = template(&pad);
    assert_eq!(longest(&fits, at), 1024);
    let over = template(&format!("{pad}x"));
    let msg = errors_with(brand, &over);
    assert!(
        msg.contains("output.brand_key: renders keys of up to 1025 bytes") && msg.contains("1024"),
        "{msg}"
    );
    assert_eq!(msg.matches("output.brand_key").count(), 1, "{msg}");

    // The state key, with its part number.
    let state = "state_key = \"state/hashtags.json\"";
    let state_of = |n: usize| format!("state_key = \"state/{}.json\"", "s".repeat(n));
    let n = 1024 - part_key(&format!("state/{}.json", ""), 9999).len();
    assert!(Config::parse(
        &EMBEDDED.replacen(state, &state_of(n), 1),
        "f",
        &Overrides::default()
    )
    .is_ok());
    let msg = errors_with(state, &state_of(n + 1));
    assert!(
        msg.contains("hashtags.state_key: renders keys of up to 1025 bytes"),
        "{msg}"
    );

    // The capture folder with the longest name a hashtags run writes in it: a long hashtag's
    // last page of the hour.
    let capture = "raw_capture_key = \"raw_api/{job}/{%Y-%m-%d}/{%Y-%m-%d_%H%M%S}\"";
    let tag = "t".repeat(300);
    let with_tag = EMBEDDED.replacen("hashtag = \"dior\"", &format!("hashtag = \"{tag}\""), 1);
    let pages = 200;
    assert!(EMBEDDED.contains(&format!("calls_per_hour_per_credential = {pages}")));
    let longest_name = [hashtag_search_path(&tag), recent_media_path(&tag, pages)]
        .iter()
        .map(|name| format!("{}/{name}.gz", part_name(9999)))
        .max_by_key(String::len)
        .expect("names");
    let inside = longest_name.len();
    // `raw_api/hashtags/20230902_000500_` + pad, then `/` + the name inside.
    let folder_of = |pad: usize| {
        format!(
            "raw_capture_key = \"raw_api/{{job}}/{{%Y%m%d_%H%M%S}}_{}\"",
            "c".repeat(pad)
        )
    };
    let pad = 1024 - inside - 1 - "raw_api/hashtags/20230902_000500_".len();
    let parse = |pad: usize| {
        Config::parse(
            &with_tag.replacen(capture, &folder_of(pad), 1),
            "my-config.toml",
            &Overrides::default(),
        )
    };
    assert!(parse(pad).is_ok(), "{:?}", parse(pad).err());
    let msg = parse(pad + 1).expect_err("refused").to_string();
    assert!(
        msg.contains("output.raw_capture_key (hashtags): renders keys of up to 1025 bytes")
            && msg.contains(&longest_name),
        "{msg}"
    );
    assert!(!msg.contains("raw_capture_key (brands)"), "{msg}");
}
