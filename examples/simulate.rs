//! Runs the deterministic simulation (`testkit::sim`) over many seeds: weeks of the brands and
//! hashtags jobs against a simulated Graph API and S3, every invariant checked after every step.
//!
//! ```text
//! cargo run --release --example simulate -- --seeds 200 [--seed S] [--days D]
//!     [--faults all|none] [--on CLASS]... [--off CLASS]... [--verbose] [--memory-mb 64]
//!     [--break graph_sends_twice|store_drops_a_record_in_a_merge|store_loses_hashtag_writes]
//! ```
//!
//! Prints one line per violation (seed, step, time, invariant, detail), then exactly
//! `N seeds, V violations`; exits non-zero on any violation. `--seed S` runs seeds S..S+N.
//! A counting global allocator (per thread: each seed runs on one thread) checks that a step's
//! runs hold at most 64 MB (`--memory-mb`) above what the step started with.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use testkit::sim::{simulate, Breakage, Faults, Gauge, Options};

thread_local! {
    // Signed: a thread can free what another allocated, and its count then goes below zero
    // (it must not wrap into an absurd peak).
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's bytes held and their peak.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrink(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

fn grow(n: usize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get().saturating_add(n as i64);
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrink(n: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(n as i64)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocator's counters of the calling thread.
struct ThreadHeap;

impl Gauge for ThreadHeap {
    fn current(&self) -> usize {
        CURRENT.with(Cell::get).max(0) as usize
    }
    fn reset_peak(&self) {
        let now = CURRENT.with(Cell::get);
        PEAK.with(|p| p.set(now));
    }
    fn peak(&self) -> usize {
        PEAK.with(Cell::get).max(0) as usize
    }
}

static HEAP: ThreadHeap = ThreadHeap;

struct Args {
    seeds: u64,
    first: u64,
    days: f64,
    faults: Faults,
    verbose: bool,
    breakage: Option<Breakage>,
    memory_mb: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seeds: 100,
        first: 1,
        days: 1.5,
        faults: Faults::ALL,
        verbose: false,
        breakage: None,
        memory_mb: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--verbose" => a.verbose = true,
            "--memory-mb" => {
                a.memory_mb = value()?.parse().map_err(|e| format!("--memory-mb: {e}"))?
            }
            "--break" => {
                a.breakage = Some(match value()?.as_str() {
                    "graph_sends_twice" => Breakage::GraphSendsTwice,
                    "store_drops_a_record_in_a_merge" => Breakage::StoreDropsARecordInAMerge,
                    "store_loses_hashtag_writes" => Breakage::StoreLosesHashtagWrites,
                    other => return Err(format!("--break: no breakage {other}")),
                })
            }
            "--seeds" => a.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--seed" => a.first = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--days" => a.days = value()?.parse().map_err(|e| format!("--days: {e}"))?,
            "--faults" => {
                a.faults = match value()?.as_str() {
                    "all" => Faults::ALL,
                    "none" => Faults::NONE,
                    other => return Err(format!("--faults: {other}: use all or none")),
                }
            }
            "--on" | "--off" => {
                let name = value()?;
                if !a.faults.set(&name, flag == "--on") {
                    return Err(format!(
                        "{flag}: no fault class {name} (see testkit::sim::Faults)"
                    ));
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("simulate: {e}");
            std::process::exit(2);
        }
    };
    let next = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(Mutex::new(0usize));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            let violations = violations.clone();
            let (first, seeds, days, faults, verbose, breakage, memory_mb) = (
                a.first,
                a.seeds,
                a.days,
                a.faults,
                a.verbose,
                a.breakage,
                a.memory_mb,
            );
            std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= seeds {
                    break;
                }
                let mut options = Options::new(first + k, days, faults);
                options.gauge = Some(&HEAP);
                options.breakage = breakage;
                options.memory_limit = memory_mb << 20;
                let report = simulate(&options);
                if verbose {
                    eprintln!(
                        "seed {}: {} steps, {} runs ({} failed: {:?}), {} objects, {} hashtag records, at most {} calls an hour",
                        first + k,
                        report.steps,
                        report.runs,
                        report.failed_runs,
                        report.failures,
                        report.objects,
                        report.hashtag_records,
                        report.peak_calls
                    );
                }
                let mut v = violations.lock().unwrap_or_else(|p| p.into_inner());
                for line in &report.violations {
                    println!("{line}");
                }
                *v += report.violations.len();
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let v = *violations.lock().unwrap_or_else(|p| p.into_inner());
    println!("{} seeds, {v} violations", a.seeds);
    if v > 0 {
        std::process::exit(1);
    }
}
