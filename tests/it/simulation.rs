//! The deterministic simulation (`testkit::sim`): the real jobs against a simulated Graph API
//! and S3 for more than a day of 5-minute steps. Fixed seeds with every fault class
//! ([`Faults::ALL`]) must break no invariant; and each breakage the
//! simulation can put into the environment must be caught, named with its seed.

use testkit::sim::{simulate, Breakage, Faults, Options, Report};

/// Long enough that posts' 24 hours close and the completeness invariant is checked.
const DAYS: f64 = 1.25;

/// Seeds run with every fault class (the example runs any others).
const SEEDS: &[u64] = &[1, 2, 4];

fn lines(report: &Report) -> Vec<String> {
    report.violations.iter().map(|v| v.to_string()).collect()
}

fn run_seed(seed: u64) {
    let report = simulate(&Options::new(seed, DAYS, Faults::ALL));
    assert!(
        report.runs > 300,
        "seed {seed} ran only {} runs",
        report.runs
    );
    assert!(
        report.hashtag_records > 0,
        "seed {seed} wrote no hashtag post"
    );
    assert_eq!(lines(&report), Vec::<String>::new(), "seed {seed}");
}

#[test]
fn fixed_seeds_break_no_invariant_1() {
    run_seed(SEEDS[0]);
}

#[test]
fn fixed_seeds_break_no_invariant_2() {
    run_seed(SEEDS[1]);
}

#[test]
fn fixed_seeds_break_no_invariant_3() {
    run_seed(SEEDS[2]);
}

/// A seed run with `breakage` reports a violation of `invariant`, naming the seed.
fn caught(seed: u64, faults: Faults, breakage: Breakage, invariant: &str) -> Report {
    let mut options = Options::new(seed, DAYS, faults);
    options.breakage = Some(breakage);
    let report = simulate(&options);
    let named = report
        .violations
        .iter()
        .find(|v| v.invariant == invariant)
        .unwrap_or_else(|| panic!("{breakage:?} went unnoticed: {:?}", lines(&report)));
    assert_eq!(named.seed, seed);
    assert!(
        named.to_string().starts_with(&format!("seed {seed} step ")),
        "{named}"
    );
    report
}

/// A seed whose deliveries merge into earlier objects often enough in [`DAYS`] (the merges that
/// change an object are rarer than the deliveries: most redeliveries find nothing new).
const MERGING_SEED: u64 = 10;

/// Redeliveries, late and overlapping deliveries: the runs that merge into earlier objects.
fn merging() -> Faults {
    let mut faults = Faults::NONE;
    faults.redelivery = true;
    faults.late = true;
    faults.concurrent = true;
    faults
}

#[test]
fn a_record_dropped_in_a_merge_is_caught_as_a_removal() {
    caught(
        MERGING_SEED,
        merging(),
        Breakage::StoreDropsARecordInAMerge,
        "kept",
    );
}

#[test]
fn hashtag_writes_acknowledged_but_lost_are_caught_as_missing_posts() {
    caught(
        2,
        Faults::NONE,
        Breakage::StoreLosesHashtagWrites,
        "completeness",
    );
}

#[test]
fn graph_calls_sent_twice_are_caught_over_the_hourly_allowance() {
    let mut faults = Faults::NONE;
    faults.busy = true;
    faults.token_rejection = true;
    // Without the breakage the same seed stays within the allowance, and uses more than half.
    let options = Options {
        calls_per_hour: Some(BUSY_ALLOWANCE),
        ..Options::new(BUSY_SEED, DAYS, faults)
    };
    let clean = simulate(&options);
    assert_eq!(lines(&clean), Vec::<String>::new());
    assert!(
        clean.peak_calls > u64::from(BUSY_ALLOWANCE) / 2,
        "{}",
        clean.peak_calls
    );
    let broken = simulate(&Options {
        breakage: Some(Breakage::GraphSendsTwice),
        ..options
    });
    let named = lines(&broken);
    assert!(
        named
            .iter()
            .any(|l| l.contains(&format!("seed {BUSY_SEED} ")) && l.contains("budget")),
        "{named:?}"
    );
}

/// The hourly allowance of that test: small enough for its busy hashtag to use more than half.
const BUSY_ALLOWANCE: u32 = 100;

/// A seed whose busy hashtag and catch-ups after a rejected token take more than half of the
/// hourly allowance, so twice as many calls pass it.
const BUSY_SEED: u64 = 14;

#[test]
fn a_seed_replays_the_same_violations() {
    let first = caught(
        MERGING_SEED,
        merging(),
        Breakage::StoreDropsARecordInAMerge,
        "kept",
    );
    let again = caught(
        MERGING_SEED,
        merging(),
        Breakage::StoreDropsARecordInAMerge,
        "kept",
    );
    assert_eq!(lines(&first), lines(&again));
    assert_eq!(first.runs, again.runs);
}
