//! Object keys: [`KeyTemplate`] (literal text with `{strftime}` holes filled from the scheduled
//! time) and the checks on the keys the templates *render*, not only on their text.
//!
//! A template can look harmless and render badly: `{.}{.}` renders `..`, `{/}` an absolute
//! path, `{%n}` a control character, `{%#z}` fails to render at all; a date-only hashtags key
//! makes every run of the day replace the previous one; `{%F}` in one key can render the same
//! key as `{%Y-%m-%d}` in another. So every template is rendered at sample times and the keys
//! themselves are checked. Pure: no IO.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// An object key pattern: literal text with `{strftime}` holes filled from the scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
}

impl KeyTemplate {
    /// Checks the pattern's text: balanced braces, valid strftime items, at least one hole, and
    /// that it renders. The rendered keys are checked by [`check_rendered`].
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let shown = source;
        let source = source.replace("{job}", "job");
        if source.is_empty() {
            return Err("is empty".into());
        }
        let mut rest = source.as_str();
        let mut holes = 0;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes().get(open) == Some(&b'}') {
                return Err(format!("`{shown}` has a `}}` without `{{`"));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{shown}` has a `{{` without `}}`"))?;
            let pattern = &after[..close];
            if pattern.is_empty() || pattern.contains('{') {
                return Err(format!("`{shown}` has an empty or nested `{{}}`"));
            }
            if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                return Err(format!("`{{{pattern}}}` is not a valid strftime pattern"));
            }
            holes += 1;
            rest = &after[close + 1..];
        }
        if holes == 0 {
            return Err(format!(
                "`{shown}` has no `{{%...}}` time hole: every run would overwrite the same key"
            ));
        }
        let template = KeyTemplate {
            source: shown.to_string(),
        };
        template
            .try_render("job", sample_times()[0])
            .map_err(|hole| {
                format!(
                    "`{{{hole}}}` in `{shown}` cannot be rendered (a parse-only strftime item?)"
                )
            })?;
        Ok(template)
    }

    /// The key for a job's run: `{job}` becomes the job name, then the time holes are filled.
    pub fn render_for(&self, job: &str, at: DateTime<Utc>) -> String {
        self.try_render(job, at)
            .unwrap_or_else(|_| self.source.clone())
    }

    /// The key for a run scheduled at `at`. Pure: the same time always gives the same key, which
    /// is what lets a redelivered event find (and merge with) its own objects.
    pub fn render(&self, at: DateTime<Utc>) -> String {
        self.render_for("job", at)
    }

    /// Renders, or names the hole that cannot be rendered. `parse` refuses such templates, so a
    /// checked template always renders.
    fn try_render(&self, job: &str, at: DateTime<Utc>) -> Result<String, String> {
        let source = self.source.replace("{job}", job);
        let mut out = String::with_capacity(source.len() + 16);
        let mut rest = source.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            let pattern = &after[..close];
            write!(out, "{}", at.format(pattern)).map_err(|_| pattern.to_string())?;
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The template of shard `index`'s part file: `.part-0003` before the extension of the last
    /// segment (`brand_{…}.json` → `brand_{…}.part-0003.json`), so the part stays in the same
    /// folder with the same extension, and the readers' globs (`raw/brand_*/*.json`) take it.
    pub fn part(&self, index: usize) -> KeyTemplate {
        KeyTemplate {
            source: part_key(&self.source, index),
        }
    }

    /// The template of a folder inside this one (a shard's raw capture: `…/part-0003`).
    pub fn folder(&self, name: &str) -> KeyTemplate {
        KeyTemplate {
            source: format!("{}/{name}", self.source),
        }
    }

    /// A template kept only to finish building a configuration that is already refused.
    pub(super) fn unchecked(text: &str) -> KeyTemplate {
        KeyTemplate {
            source: text.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// The name of shard `index`'s part: `part-0003`.
pub fn part_name(index: usize) -> String {
    format!("part-{index:04}")
}

/// `key` with `.part-0003` before the extension of its last segment (a `.` inside a `{…}` hole
/// does not count), or at its end when that segment has none: `state/hashtags.json` →
/// `state/hashtags.part-0003.json`. A `.gz` counts with the extension before it
/// (`brand.json.gz` → `brand.part-0003.json.gz`), so a part matches the same `*.json.gz` glob. The inserted text is letters, digits and `.-`, so a key that
/// passes [`bad_key`] still passes it.
pub fn part_key(key: &str, index: usize) -> String {
    let part = part_name(index);
    let last = key.rfind('/').map_or(0, |i| i + 1);
    let mut depth = 0i32;
    let mut dots = Vec::new();
    for (i, c) in key[last..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '.' if depth == 0 && i > 0 => dots.push(last + i),
            _ => {}
        }
    }
    let dot = match dots.as_slice() {
        [.., before, gz] if &key[*gz..] == ".gz" => Some(*before),
        [.., only] => Some(*only),
        [] => None,
    };
    match dot {
        Some(at) => format!("{}.{part}{}", &key[..at], &key[at..]),
        None => format!("{key}.{part}"),
    }
}

/// Times the templates are rendered at for the checks: a plain time, one a second before a day,
/// month and year change, and a leap day, so date holes that would collide show up; and a
/// Wednesday in September, the longest day and month names (`%A`, `%B`), for the length check.
pub fn sample_times() -> Vec<DateTime<Utc>> {
    [
        (2023, 9, 2, 0, 5, 0),
        (2023, 12, 31, 23, 59, 59),
        (2024, 2, 29, 13, 35, 0),
        (2023, 9, 2, 17, 0, 15),
        (2023, 9, 27, 10, 10, 10),
    ]
    .iter()
    .filter_map(|&(y, mo, d, h, mi, s)| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single())
    .collect()
}

/// S3's longest object key, in bytes of UTF-8: a longer one is refused at the first write.
pub const MAX_KEY_BYTES: usize = 1024;

/// The shard index the length check renders part keys with (`part-9999`): a fan-out goes up to
/// thousands of shards, and a longer key is what a run would fail to write.
pub const LONGEST_PART: usize = 9999;

/// Why a key of `bytes` bytes is too long for S3, if it is.
/// The keys counted are the longest ones written: with the part number [`LONGEST_PART`] and,
/// under a folder, the longest name it holds.
fn too_long(bytes: usize) -> Option<String> {
    (bytes > MAX_KEY_BYTES).then(|| {
        format!("renders keys of up to {bytes} bytes (UTF-8), over S3's limit of {MAX_KEY_BYTES}: shorten it")
    })
}

/// Why one rendered key is unusable, if it is.
pub fn bad_key(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("renders an empty key".into());
    }
    if key.starts_with('/') {
        return Some(format!("renders `{key}`, an absolute path"));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Some(format!("renders a control character ({:?})", c));
    }
    if key.contains('\\') {
        return Some(format!("renders `{key}`, with a backslash"));
    }
    if key
        .split('/')
        .any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Some(format!(
            "renders `{key}`, with an empty, `.` or `..` segment"
        ));
    }
    None
}

/// One key a job writes, with the config key it comes from.
pub struct Rendered<'a> {
    pub config_key: &'a str,
    pub template: &'a KeyTemplate,
    /// The job name `{job}` stands for, and the job's run interval.
    pub job: &'a str,
    pub interval: Duration,
    /// True for a folder prefix (the raw capture), under which other keys go.
    pub folder: bool,
    /// For a folder: the longest name written inside it (`part-9999/hashtags/….json.gz`), which
    /// the length check adds to the folder's key.
    pub longest_inside: &'a str,
}

/// Checks the keys a configuration renders; each problem is (config key, message). `fixed` are
/// the keys that hold no time, each with its setting (`("hashtags.state_key", "state/…")`).
///
/// - every rendered key is relative, without `.`/`..`/empty segments or control characters,
///   and within S3's [`MAX_KEY_BYTES`] (a folder with the longest name it holds, a fixed key
///   with its longest part);
/// - two consecutive runs of a job render different keys (else each run replaces the last);
/// - no two of the data keys, the capture folders and the fixed keys are the same, and none
///   lies inside a capture folder (at any sample time, across jobs and run times).
pub fn check_rendered(keys: &[Rendered<'_>], fixed: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut problems = fixed_problems(fixed);
    let times = sample_times();
    // A part entry repeats its setting's key; a key too long is said once per setting.
    let mut long = std::collections::HashSet::new();
    for k in keys {
        problems.extend(render_problem(k, &times, &mut long));
    }
    problems.extend(collisions(keys, fixed, &times));
    problems
}

/// The keys that hold no time: each usable, and within S3's length with its longest part.
fn fixed_problems(fixed: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (setting, key) in fixed {
        if let Some(m) =
            bad_key(key).or_else(|| too_long(part_key(key, LONGEST_PART).len().max(key.len())))
        {
            problems.push((setting.to_string(), m));
        }
    }
    problems
}

/// The first problem of one key at the sample `times`, if any: it is unusable, too long (said
/// once per setting: `long` holds the settings already said), or the same for two consecutive
/// runs.
fn render_problem<'a>(
    k: &Rendered<'a>,
    times: &[DateTime<Utc>],
    long: &mut std::collections::HashSet<&'a str>,
) -> Option<(String, String)> {
    for &t in times {
        let key = k.template.render_for(k.job, t);
        let bytes = if k.folder {
            key.len() + 1 + k.longest_inside.len()
        } else {
            key.len()
        };
        if let Some(m) = bad_key(&key) {
            return Some((k.config_key.to_string(), m));
        }
        if let Some(m) = too_long(bytes) {
            if !long.insert(k.config_key) {
                return None;
            }
            let m = if k.folder {
                format!(
                    "{m} (or shorten the names it holds; the longest: `{}`)",
                    k.longest_inside
                )
            } else {
                m
            };
            return Some((k.config_key.to_string(), m));
        }
        let next = t + k.interval;
        if k.template.render_for(k.job, next) == key {
            return Some((
                k.config_key.to_string(),
                format!(
                    "renders `{key}` for two consecutive {} runs ({} minutes apart): each run would replace the last one's object; add the time (e.g. {{%H%M%S}})",
                    k.job,
                    k.interval.num_minutes()
                ),
            ));
        }
    }
    None
}

/// Two settings' keys that are the same, or one inside the other's folder, at any sample time
/// or the run after it; each pair of settings said once.
fn collisions(
    keys: &[Rendered<'_>],
    fixed: &[(&str, &str)],
    times: &[DateTime<Utc>],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    // Every key rendered at every sample time and the run after it, with its owner.
    let mut all: Vec<(String, &str, bool)> = fixed
        .iter()
        .map(|(setting, key)| (key.to_string(), *setting, false))
        .collect();
    for k in keys {
        for &t in times {
            for at in [t, t + k.interval] {
                all.push((k.template.render_for(k.job, at), k.config_key, k.folder));
            }
        }
    }
    let mut reported = std::collections::HashSet::new();
    for (i, (a, owner_a, folder_a)) in all.iter().enumerate() {
        for (b, owner_b, folder_b) in &all[i + 1..] {
            if owner_a == owner_b {
                continue;
            }
            let inside = |outer: &str, folder: bool, inner: &str| {
                folder && inner.starts_with(outer) && inner[outer.len()..].starts_with('/')
            };
            let clash = a == b || inside(a, *folder_a, b) || inside(b, *folder_b, a);
            if clash && reported.insert((*owner_a, *owner_b)) {
                problems.push((
                    owner_b.to_string(),
                    format!("renders `{b}`, which collides with `{a}` of {owner_a}: one would overwrite the other"),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_render_the_contract_layout() {
        let t =
            KeyTemplate::parse("raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json").expect("valid");
        let at = Utc
            .with_ymd_and_hms(2023, 9, 2, 0, 0, 15)
            .single()
            .expect("time");
        assert_eq!(
            t.render(at),
            "raw/brand_2023-09-02/brand_2023-09-02_000015.json"
        );
    }

    #[test]
    fn part_keys_keep_the_folder_and_the_extension() {
        assert_eq!(
            part_key("raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.json", 3),
            "raw/brand_{%Y-%m-%d}/brand_{%Y-%m-%d_%H%M%S}.part-0003.json"
        );
        assert_eq!(
            part_key("state/hashtags.json", 12),
            "state/hashtags.part-0012.json"
        );
        assert_eq!(part_key("a.b/{%H.%M}", 1), "a.b/{%H.%M}.part-0001");
        assert_eq!(part_key(".hidden", 0), ".hidden.part-0000");
        assert_eq!(
            part_key("raw/brand/dt={%Y-%m-%d}/brand_{%H%M%S}.json.gz", 2),
            "raw/brand/dt={%Y-%m-%d}/brand_{%H%M%S}.part-0002.json.gz"
        );
        assert_eq!(part_key("a/b.gz", 1), "a/b.part-0001.gz");
    }

    #[test]
    fn templates_that_do_not_parse_or_render_are_refused() {
        for bad in [
            "raw/brand.json",
            "raw/{%Q}.json",
            "raw/{%Y.json",
            "raw/%Y}.json",
            "raw/{%#z}.json",
            "",
        ] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    fn rendered<'a>(
        config_key: &'a str,
        t: &'a KeyTemplate,
        job: &'a str,
        mins: i64,
    ) -> Rendered<'a> {
        Rendered {
            config_key,
            template: t,
            job,
            interval: Duration::minutes(mins),
            folder: false,
            longest_inside: "",
        }
    }

    #[test]
    fn rendered_keys_that_escape_repeat_or_collide_are_refused() {
        let check = |text: &str, job: &str, mins: i64| {
            let t = KeyTemplate::parse(text).expect("parses as text");
            check_rendered(
                &[rendered("output.x", &t, job, mins)],
                &[("hashtags.state_key", "state/hashtags.json")],
            )
        };
        assert!(check("raw/{.}{.}/{%H%M%S}", "hashtags", 5)[0]
            .1
            .contains("`..`"));
        assert!(check("{/}raw/{%H%M%S}", "hashtags", 5)[0]
            .1
            .contains("absolute"));
        assert!(check("raw/{%n}{%H%M%S}", "hashtags", 5)[0]
            .1
            .contains("control"));
        assert!(check("raw/{%Y-%m-%d}.json", "hashtags", 5)[0]
            .1
            .contains("consecutive"));
        assert!(check("raw/{%Y-%m-%d_%H}.json", "brands", 60).is_empty());
        assert!(check("raw/{%Y-%m-%d_%H}.json", "hashtags", 5)[0]
            .1
            .contains("consecutive"));

        let brand = KeyTemplate::parse("raw/x_{%Y-%m-%d}/{%H%M%S}.json").expect("valid");
        let media = KeyTemplate::parse("raw/x_{%F}/{%H%M%S}.json").expect("valid");
        let problems = check_rendered(
            &[
                rendered("output.brand_key", &brand, "brands", 60),
                rendered("output.media_key", &media, "brands", 60),
            ],
            &[("hashtags.state_key", "state/hashtags.json")],
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "output.media_key");

        let data = KeyTemplate::parse("state/{%H%M%S}.json").expect("valid");
        let problems = check_rendered(
            &[rendered("output.brand_key", &data, "brands", 60)],
            &[("hashtags.state_key", "state/000500.json")],
        );
        assert!(
            problems.iter().any(|(_, m)| m.contains("collides")),
            "{problems:?}"
        );

        let capture = KeyTemplate::parse("raw/{%Y-%m-%d}").expect("valid");
        let data = KeyTemplate::parse("raw/{%Y-%m-%d}/m_{%H%M%S}.json").expect("valid");
        let mut folder = rendered("output.raw_capture_key", &capture, "hashtags", 60 * 24);
        folder.folder = true;
        let problems = check_rendered(
            &[folder, rendered("output.media_key", &data, "brands", 60)],
            &[("hashtags.state_key", "s.json")],
        );
        assert!(
            problems
                .iter()
                .any(|(k, m)| k == "output.media_key" && m.contains("collides")),
            "{problems:?}"
        );
    }
}
