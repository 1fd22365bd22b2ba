//! A deterministic simulation of weeks of operation: the real library (`App::plan`,
//! `App::shard`, `collect::run_until` with its session, pager, state and persist) runs in one
//! process against a simulated Graph API ([`api::SimGraph`], a `graph::Wire`) and a simulated S3
//! ([`store::DeliveryStore`], a `sink::Store`), schedule step after schedule step, with faults,
//! redeliveries, crashes and configuration changes drawn from one seed. Invariants are checked
//! after every step (and every write as it lands); a violation names the seed, the step, the
//! time and the invariant, and the same seed replays it.
//!
//! Time: the schedule starts at the midnight (UTC) at least `days` before the wall clock (the
//! library refuses scheduled times in the future) and moves 5 minutes a step; the tokio clock is paused, so retry back-offs,
//! request timeouts and stalled calls cost nothing. What the library measures with
//! `std::time::Instant` (its deadlines) sees real time, so deadlines are generous and the
//! "ends before its deadline" invariant is checked in virtual time.

pub mod api;
pub mod rng;
pub mod store;
pub mod world;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::FutureExt;
use ig_collector::collect::{run_until, App, Deadlines, Job, RunError, RunSummary};
use ig_collector::config::{Config, Overrides, Target, EMBEDDED, EMBEDDED_NAME};
use ig_collector::graph::{AccessToken, AppSecret, Credentials, Source};
use ig_collector::records::Kind;
use ig_collector::schedule::Clock;
use ig_collector::sink::Sink;

use api::{SimGraph, Token};
use rng::Rng;
use store::{DeliveryStore, StoreFaults};
use world::World;

/// Which fault classes and operations a simulation draws. Each can be switched on or off alone
/// (`--on`/`--off`), to find which class a failing seed needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Graph 5xx, calls that never answer, bodies cut off.
    pub graph_errors: bool,
    /// Codes 4/17/32/613 with usage headers and regain times.
    pub throttling: bool,
    /// Usage headers near and past 100%.
    pub usage_high: bool,
    /// Code 190 on one credential for up to an hour and a half.
    pub token_rejection: bool,
    /// Repeated pages and cursors that loop.
    pub paging: bool,
    /// Huge, negative, float, text and null counts, duplicate ids in one answer, an account id
    /// other than the configured one.
    pub odd_values: bool,
    /// S3 500/503.
    pub store_errors: bool,
    /// S3 calls that never answer.
    pub store_stall: bool,
    /// A delivery whose writes all fail after its k-th (a crash between two writes).
    pub crashes: bool,
    /// Two deliveries running at once (412 races).
    pub concurrent: bool,
    /// The same scheduled time delivered again.
    pub redelivery: bool,
    /// An older scheduled time delivered late.
    pub late: bool,
    /// Garbage planted at the state key or at a data key about to be written.
    pub garbage: bool,
    /// The state unreadable (403) for a while.
    pub unreadable_state: bool,
    /// Credentials added and removed, so the plan reshards.
    pub reshard: bool,
    /// Accounts with their hashtags added and removed.
    pub targets: bool,
    /// Two accounts tracking one hashtag.
    pub shared_hashtag: bool,
    /// One hashtag ten times as busy as a busy one (about 1000 posts an hour).
    pub busy: bool,
}

impl Faults {
    /// Everything on: what `examples/simulate.rs` runs by default.
    pub const ALL: Faults = Faults {
        graph_errors: true,
        throttling: true,
        usage_high: true,
        token_rejection: true,
        paging: true,
        odd_values: true,
        store_errors: true,
        store_stall: true,
        crashes: true,
        concurrent: true,
        redelivery: true,
        late: true,
        garbage: true,
        unreadable_state: true,
        reshard: true,
        targets: true,
        shared_hashtag: true,
        busy: true,
    };

    pub const NONE: Faults = Faults {
        graph_errors: false,
        throttling: false,
        usage_high: false,
        token_rejection: false,
        paging: false,
        odd_values: false,
        store_errors: false,
        store_stall: false,
        crashes: false,
        concurrent: false,
        redelivery: false,
        late: false,
        garbage: false,
        unreadable_state: false,
        reshard: false,
        targets: false,
        shared_hashtag: false,
        busy: false,
    };

    /// The names of the classes, as `--faults` takes them.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        let field = match name {
            "graph_errors" => &mut self.graph_errors,
            "throttling" => &mut self.throttling,
            "usage_high" => &mut self.usage_high,
            "token_rejection" => &mut self.token_rejection,
            "paging" => &mut self.paging,
            "odd_values" => &mut self.odd_values,
            "store_errors" => &mut self.store_errors,
            "store_stall" => &mut self.store_stall,
            "crashes" => &mut self.crashes,
            "concurrent" => &mut self.concurrent,
            "redelivery" => &mut self.redelivery,
            "late" => &mut self.late,
            "garbage" => &mut self.garbage,
            "unreadable_state" => &mut self.unreadable_state,
            "reshard" => &mut self.reshard,
            "targets" => &mut self.targets,
            "shared_hashtag" => &mut self.shared_hashtag,
            "busy" => &mut self.busy,
            _ => return false,
        };
        *field = on;
        true
    }
}

/// A deliberate fault in the environment that the library cannot notice, for proving that the
/// checker catches what it claims to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// Every Graph request reaches the API twice (a proxy that retries everything): the
    /// credential's calls exceed its allowance.
    GraphSendsTwice,
    /// A conditional replace (`If-Match`, a merge) loses its last record on the way to S3.
    StoreDropsARecordInAMerge,
    /// Some `media_hashtag` writes are acknowledged but never stored.
    StoreLosesHashtagWrites,
}

/// Measures the process's heap (a counting global allocator in `examples/simulate.rs`).
pub trait Gauge: Sync {
    /// Bytes allocated now.
    fn current(&self) -> usize;
    /// Starts a new peak at the current size.
    fn reset_peak(&self);
    /// The highest size since the last reset.
    fn peak(&self) -> usize;
}

pub struct Options {
    pub seed: u64,
    pub days: f64,
    pub faults: Faults,
    pub breakage: Option<Breakage>,
    /// With a gauge, each step's peak heap above its start (less what the bucket grew by) must
    /// stay under `memory_limit`.
    pub gauge: Option<&'static dyn Gauge>,
    pub memory_limit: usize,
    /// Overrides `budget.calls_per_hour_per_credential` (the shipped 200).
    pub calls_per_hour: Option<u32>,
}

impl Options {
    pub fn new(seed: u64, days: f64, faults: Faults) -> Options {
        Options {
            seed,
            days,
            faults,
            breakage: None,
            gauge: None,
            memory_limit: 64 << 20,
            calls_per_hour: None,
        }
    }
}

/// One broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub time: DateTime<Utc>,
    /// `completeness`, `kept`, `budget`, `memory`, `returns`, `deadline`, `panic`, `secret`.
    pub invariant: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} step {} ({}): {}: {}",
            self.seed,
            self.step,
            self.time.format("%Y-%m-%dT%H:%M:%SZ"),
            self.invariant,
            self.detail
        )
    }
}

/// What a simulation did.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub steps: u64,
    pub runs: u64,
    pub failed_runs: u64,
    /// Objects in the bucket at the end, and `media_hashtag` records written.
    pub objects: usize,
    pub hashtag_records: usize,
    /// The most Graph calls one credential made in 60 minutes.
    pub peak_calls: u64,
    /// Failed runs by error kind (`RunError::kind_name`).
    pub failures: BTreeMap<&'static str, u64>,
}

/// Per invariant, at most this many violations of one seed are kept (the first ones).
const KEPT_PER_INVARIANT: usize = 5;

/// A tracked account, while it is configured.
#[derive(Debug, Clone)]
struct Tracked {
    target: Target,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

/// Everything the simulated services and the checks share. One lock: the runtime has one
/// thread, and no lock is held across an await.
pub struct Shared {
    pub seed: u64,
    pub step: u64,
    pub now: DateTime<Utc>,
    pub world: World,
    pub rng: Rng,
    pub faults: Faults,
    pub breakage: Option<Breakage>,
    pub tokens: Vec<Token>,
    pub allowance: u64,
    pub violations: Vec<Violation>,
    /// The bucket: key → (body, version).
    pub objects: BTreeMap<String, (Vec<u8>, u64)>,
    pub etag: u64,
    pub bytes_stored: usize,
    /// Every `media_hashtag` (user_id, media_id) ever written.
    pub written: HashSet<(String, String)>,
    /// The times of posts reported given up (`given_up_from`..=`given_up_to`), per hashtag.
    pub given_up: HashMap<String, Vec<Gap>>,
    /// Per hashtag, the latest scheduled time of a run whose summary reported it: a run that
    /// could have reported a gap given up.
    pub reported: HashMap<String, DateTime<Utc>>,
    /// Posts past their 24 hours, neither written nor reported given up yet, waiting for a run
    /// that could report them (a run that never started reports nothing).
    pub unaccounted: Vec<Unaccounted>,
    pub state_forbidden: bool,
    /// Every secret (tokens and app secrets) ever issued.
    pub secrets: Vec<String>,
    pub peak_calls: u64,
    pub failures: BTreeMap<&'static str, u64>,
}

impl Shared {
    pub fn violate(&mut self, invariant: &'static str, detail: String) {
        let kept = self
            .violations
            .iter()
            .filter(|v| v.invariant == invariant)
            .count();
        if kept < KEPT_PER_INVARIANT {
            self.violations.push(Violation {
                seed: self.seed,
                step: self.step,
                time: self.now,
                invariant,
                detail,
            });
        }
    }

    /// The index of the first secret `text` holds.
    pub fn leaked(&self, text: &[u8]) -> Option<usize> {
        let text = String::from_utf8_lossy(text);
        self.secrets.iter().position(|s| text.contains(s.as_str()))
    }
}

/// Runs one seed.
pub fn simulate(options: &Options) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return Report {
                violations: vec![Violation {
                    seed: options.seed,
                    step: 0,
                    time: Utc::now(),
                    invariant: "setup",
                    detail: format!("no runtime: {e}"),
                }],
                ..Report::default()
            }
        }
    };
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    runtime.block_on(Sim::new(options, logs).run())
}

/// The log lines of the current step, searched for secrets.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

struct Sim<'o> {
    options: &'o Options,
    shared: Arc<Mutex<Shared>>,
    rng: Rng,
    base: Config,
    tracked: Vec<Tracked>,
    /// Configured credentials: indexes into `Shared::tokens`.
    credentials: Vec<usize>,
    logs: Logs,
    forbidden_steps: u32,
    report: Report,
}

const STEP: i64 = 5;

impl<'o> Sim<'o> {
    fn new(options: &'o Options, logs: Logs) -> Sim<'o> {
        let mut rng = Rng::new(options.seed);
        let steps = (options.days * 24.0 * 60.0 / STEP as f64).ceil() as i64;
        // At midnight UTC, so the schedule's phase (the brands job's hours, the daily token
        // check, the day's keys) is the same whatever the wall clock: the seed alone decides.
        let start = (Utc::now() - Duration::minutes(steps * STEP) - Duration::days(1))
            .duration_trunc(Duration::days(1))
            .unwrap_or_else(|_| Utc::now() - Duration::days(30));
        let mut base = Config::parse(EMBEDDED, EMBEDDED_NAME, &Overrides::default())
            .unwrap_or_else(|e| panic!("the shipped configuration is valid: {e}"));
        base.targets.clear();
        // Freshness polls fill spare calls, which hides what happens when a hashtag waits: every
        // third seed (and every seed with `SIM_FRESH_OFF`) polls only when due.
        if options.seed.is_multiple_of(3) || std::env::var_os("SIM_FRESH_OFF").is_some() {
            base.hashtags.fresh_delay = None;
        }
        if let Some(calls) = options.calls_per_hour {
            base.budget.calls_per_hour_per_credential = calls;
        }
        let caption_max = if options.faults.busy { 1000 } else { 200 };
        let world = World::new(rng.fork(), start - Duration::hours(1), caption_max);
        let shared = Shared {
            seed: options.seed,
            step: 0,
            now: start,
            world,
            rng: rng.fork(),
            faults: options.faults,
            breakage: options.breakage,
            tokens: Vec::new(),
            allowance: u64::from(base.budget.calls_per_hour_per_credential),
            violations: Vec::new(),
            objects: BTreeMap::new(),
            etag: 0,
            bytes_stored: 0,
            written: HashSet::new(),
            given_up: HashMap::new(),
            reported: HashMap::new(),
            unaccounted: Vec::new(),
            state_forbidden: false,
            secrets: Vec::new(),
            peak_calls: 0,
            failures: BTreeMap::new(),
        };
        let mut sim = Sim {
            options,
            shared: Arc::new(Mutex::new(shared)),
            rng,
            base,
            tracked: Vec::new(),
            credentials: Vec::new(),
            logs,
            forbidden_steps: 0,
            report: Report::default(),
        };
        let credentials = 1 + sim.rng.below(2) as usize;
        for _ in 0..credentials {
            sim.add_credential();
        }
        let accounts = 2 + sim.rng.below(4) as usize;
        let busy = options.faults.busy && sim.rng.chance(0.5);
        for i in 0..accounts {
            let rate = if busy && i == 0 {
                600.0 + sim.rng.unit() * 400.0
            } else {
                *sim.rng.pick(&[0.5, 3.0, 10.0, 30.0, 60.0, 100.0])
            };
            sim.add_target(rate, start);
        }
        if options.faults.shared_hashtag {
            let tag = sim.tracked[0].target.hashtag.clone();
            let brand = format!("brand{}", sim.rng.word(6).to_lowercase());
            let user_id = sim.with(|s| {
                let b = s.world.add_brand(&brand);
                s.world.brands[b].user_id.clone()
            });
            sim.tracked.push(Tracked {
                target: Target {
                    username: brand,
                    user_id,
                    hashtag: tag,
                    hashtag_id: None,
                    hashtag_priority: 5,
                },
                since: start,
                until: None,
            });
        }
        sim
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        let mut guard = match self.shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard)
    }

    fn add_credential(&mut self) {
        let token = format!("EAAG{}", self.rng.word(48));
        let secret = self.rng.word(32);
        let ig_user_id = format!("1784140{:010}", self.rng.below(10_000_000_000));
        let index = self.with(|s| {
            s.secrets.push(token.clone());
            s.secrets.push(secret);
            s.tokens.push(Token {
                token,
                ig_user_id,
                configured: true,
                rejected_until: None,
                calls: Default::default(),
                reported: None,
            });
            s.tokens.len() - 1
        });
        self.credentials.push(index);
    }

    fn add_target(&mut self, rate: f64, since: DateTime<Utc>) {
        let name = self.rng.word(7).to_lowercase();
        let username = format!("brand{name}");
        let pinned = self.rng.chance(0.5);
        let (user_id, tag_id) = self.with(|s| {
            let b = s.world.add_brand(&username);
            let t = s.world.add_tag(&name, rate);
            (
                s.world.brands[b].user_id.clone(),
                s.world.tags[t].id.clone(),
            )
        });
        self.tracked.push(Tracked {
            target: Target {
                username,
                user_id,
                hashtag: name,
                hashtag_id: pinned.then_some(tag_id),
                hashtag_priority: 1 + self.rng.below(10) as u8,
            },
            since,
            until: None,
        });
    }

    /// The application a delivery (or one attempt of a shard) runs with: the current targets
    /// and credentials, its own view of the bucket.
    fn app(&mut self, store: StoreFaults) -> App {
        let mut config = self.base.clone();
        config.targets = self
            .tracked
            .iter()
            .filter(|t| t.until.is_none())
            .map(|t| t.target.clone())
            .collect();
        let credentials = self.with(|s| {
            self.credentials
                .iter()
                .map(|&i| Credentials {
                    ig_user_id: s.tokens[i].ig_user_id.clone(),
                    token: AccessToken::new(s.tokens[i].token.clone()),
                    app_secret: (i % 2 == 1).then(|| AppSecret::new(s.secrets[2 * i + 1].clone())),
                    app_id: None,
                })
                .collect()
        });
        let wire = Arc::new(SimGraph(self.shared.clone()));
        let source = Source::simulated(&config.graph, credentials, wire);
        let sink = Sink::Sim {
            store: Arc::new(DeliveryStore::new(self.shared.clone(), store)),
            operation_timeout: config.sink.operation_timeout,
        };
        let shared = self.shared.clone();
        let clock = Clock::from_fn(move || match shared.lock() {
            Ok(s) => s.now,
            Err(p) => p.into_inner().now,
        });
        App {
            shard: None,
            config,
            source,
            sink,
            clock,
        }
    }

    fn store_faults(&mut self) -> StoreFaults {
        let f = self.options.faults;
        StoreFaults {
            errors: if f.store_errors { 0.01 } else { 0.0 },
            stall: if f.store_stall { 0.002 } else { 0.0 },
            crash_after: (f.crashes && self.rng.chance(0.03)).then(|| self.rng.below(6) as usize),
        }
    }

    async fn run(mut self) -> Report {
        let steps = (self.options.days * 24.0 * 60.0 / STEP as f64).ceil() as u64;
        let start = self.with(|s| s.now);
        for step in 0..steps {
            let now = start + Duration::minutes(step as i64 * STEP);
            self.with(|s| {
                s.step = step;
                s.now = now;
                s.world.advance(now);
            });
            self.operate(now);
            let baseline = self.options.gauge.map(|g| {
                g.reset_peak();
                (g.current(), self.with(|s| s.bytes_stored))
            });
            self.deliveries(now).await;
            if let (Some(g), Some((before, stored))) = (self.options.gauge, baseline) {
                let grown = self.with(|s| s.bytes_stored).saturating_sub(stored);
                let used = g.peak().saturating_sub(before).saturating_sub(grown);
                if used > self.options.memory_limit {
                    self.with(|s| {
                        s.violate(
                            "memory",
                            format!(
                                "the step's runs held {:.1} MB at their peak, over the bound of {} MB",
                                used as f64 / 1_048_576.0,
                                self.options.memory_limit >> 20
                            ),
                        )
                    });
                }
            }
            self.check_logs();
            self.check_hashtags(now);
            self.report.steps += 1;
        }
        let (violations, objects, records, peak, failures) = self.with(|s| {
            (
                std::mem::take(&mut s.violations),
                s.objects.len(),
                s.written.len(),
                s.peak_calls,
                std::mem::take(&mut s.failures),
            )
        });
        self.report.peak_calls = peak;
        self.report.failures = failures;
        self.report.violations = violations;
        self.report.objects = objects;
        self.report.hashtag_records = records;
        self.report
    }

    /// The operator's and the world's changes of this step.
    fn operate(&mut self, now: DateTime<Utc>) {
        let f = self.options.faults;
        let per_day = 1.0 / 288.0;
        if f.token_rejection && self.rng.chance(2.0 * per_day) {
            let which = *self.rng.pick(&self.credentials.clone());
            let until = now + Duration::minutes(self.rng.between(30, 90));
            self.with(|s| s.tokens[which].rejected_until = Some(until));
        }
        if self.forbidden_steps > 0 {
            self.forbidden_steps -= 1;
        } else if f.unreadable_state && self.rng.chance(per_day) {
            self.forbidden_steps = self.rng.between(1, 6) as u32;
        }
        let forbidden = self.forbidden_steps > 0;
        self.with(|s| s.state_forbidden = forbidden);
        if f.garbage && self.rng.chance(per_day) {
            let garbage = self
                .rng
                .pick(&[
                    &b"{\"not\": \"a state\"}"[..],
                    b"\x00\xffgarbage",
                    b"[1, 2, 3]",
                ])
                .to_vec();
            let key = if self.rng.chance(0.5) {
                self.with(|s| s.objects.keys().find(|k| k.starts_with("state/")).cloned())
            } else {
                Some(
                    self.base
                        .key_template(Kind::MediaHashtag)
                        .render(now + Duration::minutes(STEP)),
                )
            };
            if let Some(key) = key {
                self.with(|s| {
                    s.etag += 1;
                    let tag = s.etag;
                    s.objects.insert(key, (garbage, tag));
                });
            }
        }
        if f.reshard && self.rng.chance(per_day) {
            if self.credentials.len() < 3 && (self.credentials.len() == 1 || self.rng.chance(0.5)) {
                self.add_credential();
            } else {
                let k = self.rng.below(self.credentials.len() as u64) as usize;
                let gone = self.credentials.remove(k);
                self.with(|s| s.tokens[gone].configured = false);
            }
        }
        if f.targets && self.rng.chance(per_day) {
            let live: Vec<usize> = (0..self.tracked.len())
                .filter(|&i| self.tracked[i].until.is_none())
                .collect();
            if live.len() < 8 && (live.len() <= 2 || self.rng.chance(0.5)) {
                let rate = *self.rng.pick(&[1.0, 10.0, 40.0]);
                self.add_target(rate, now);
            } else {
                let k = *self.rng.pick(&live);
                self.tracked[k].until = Some(now);
            }
        }
    }

    async fn deliveries(&mut self, now: DateTime<Utc>) {
        let mut jobs = vec![Job::Hashtags];
        if now.format("%M").to_string() == "00" {
            jobs.push(Job::Brands);
        }
        let f = self.options.faults;
        for job in jobs {
            let every = if job == Job::Brands { 60 } else { STEP };
            if f.concurrent && self.rng.chance(0.03) {
                let other = if self.rng.chance(0.5) {
                    now
                } else {
                    now - Duration::minutes(every)
                };
                let a = self.prepare(job, now);
                let b = self.prepare(job, other);
                let (ra, rb) = futures::join!(a.run(), b.run());
                self.finish(ra);
                self.finish(rb);
            } else {
                self.deliver(job, now).await;
            }
            if f.redelivery && self.rng.chance(0.02) {
                self.deliver(job, now).await;
            }
            if f.late && self.rng.chance(0.02) {
                let back = self.rng.between(1, 12) * every;
                self.deliver(job, now - Duration::minutes(back)).await;
            }
        }
    }

    async fn deliver(&mut self, job: Job, scheduled: DateTime<Utc>) {
        let d = self.prepare(job, scheduled);
        let outcome = d.run().await;
        self.finish(outcome);
    }

    /// One delivery of `job` for `scheduled`, as the state machine runs it: the plan's shards,
    /// each attempted up to three times, each attempt with its own store faults.
    fn prepare(&mut self, job: Job, scheduled: DateTime<Utc>) -> Delivery {
        let shards = self.app(StoreFaults::default()).plan(job).shards.len();
        let attempts = (0..shards)
            .map(|index| {
                (0..3)
                    .map(|_| {
                        let faults = self.store_faults();
                        (index, self.app(faults))
                    })
                    .collect()
            })
            .collect();
        Delivery {
            job,
            scheduled,
            attempts,
            shared: self.shared.clone(),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.report.runs += outcome.runs;
        self.report.failed_runs += outcome.failed;
    }

    fn check_logs(&mut self) {
        let text = match self.logs.0.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return,
        };
        self.with(|s| {
            if let Some(t) = s.leaked(&text) {
                s.violate("secret", format!("the logs hold secret {t}"));
            }
        });
    }

    /// Invariant 1 for hashtags: every post whose 24 hours (and [`REPORT_GRACE`]) ended, listed
    /// while a target tracked its hashtag throughout, was written for that target, or reported
    /// given up by the first run after that which reported its hashtag (runs that could not start,
    /// an unreadable state for one, report nothing: the next one that does must).
    fn check_hashtags(&mut self, now: DateTime<Utc>) {
        let tracked = self.tracked.clone();
        self.with(|s| {
            for tag in &s.world.tags {
                for p in &tag.posts {
                    // A gap is reported given up when the frontier ages out, up to the sweep's
                    // `late_window` after the posts listed late behind it did: checked then.
                    let end = p.ts + Duration::hours(24) + REPORT_GRACE;
                    if !(end > now - Duration::minutes(STEP) && end <= now && p.ever_listed()) {
                        continue;
                    }
                    for t in tracked.iter().filter(|t| t.target.hashtag == tag.name) {
                        let throughout = t.since <= p.ts - Duration::minutes(30)
                            && t.until.is_none_or(|u| u >= end);
                        if throughout {
                            s.unaccounted.push(Unaccounted {
                                tag: tag.name.clone(),
                                user_id: t.target.user_id.clone(),
                                user: t.target.username.clone(),
                                id: p.id.clone(),
                                ts: p.ts,
                                listed: p.listed,
                                end,
                            });
                        }
                    }
                }
            }
            let pending = std::mem::take(&mut s.unaccounted);
            for m in pending {
                let written = s.written.contains(&(m.user_id.clone(), m.id.clone()));
                let excused = s
                    .given_up
                    .get(&m.tag)
                    .is_some_and(|gaps| gaps.iter().any(|(from, to)| *from <= m.ts && m.ts <= *to));
                if written || excused {
                    continue;
                }
                if s.reported.get(&m.tag).is_some_and(|r| *r >= m.end) {
                    s.violate(
                        "completeness",
                        format!(
                            "post {} of #{} (posted {}, listed {}) was never written for {}, and no run reported it given up",
                            m.id,
                            m.tag,
                            m.ts.format("%H:%M:%S"),
                            m.listed.format("%H:%M:%S"),
                            m.user
                        ),
                    );
                } else {
                    s.unaccounted.push(m);
                }
            }
        });
    }
}

/// A post past its 24 hours that was not written, waiting for a run that could report it.
pub struct Unaccounted {
    tag: String,
    user_id: String,
    user: String,
    id: String,
    ts: DateTime<Utc>,
    listed: DateTime<Utc>,
    end: DateTime<Utc>,
}

const REPORT_GRACE: Duration = Duration::minutes(25);

/// Times from, to (both included): a hashtag's posts a run reported given up.
pub type Gap = (DateTime<Utc>, DateTime<Utc>);

/// One delivery, ready to run (it owns what it needs, so two can run at once).
struct Delivery {
    job: Job,
    scheduled: DateTime<Utc>,
    attempts: Vec<Vec<(usize, App)>>,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Outcome {
    runs: u64,
    failed: u64,
}

/// The longest a run may take, in virtual time: a Lambda function's longest timeout.
const RUN_LIMIT: StdDuration = StdDuration::from_secs(15 * 60);

impl Delivery {
    async fn run(mut self) -> Outcome {
        let mut outcome = Outcome::default();
        for shard in std::mem::take(&mut self.attempts) {
            for (index, app) in shard {
                let Some(app) = app.shard(self.job, index) else {
                    break;
                };
                outcome.runs += 1;
                if self.run_shard(&app).await {
                    break;
                }
                outcome.failed += 1;
            }
        }
        outcome
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        let mut guard = match self.shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard)
    }

    /// One invocation; `true` when it succeeded.
    async fn run_shard(&self, app: &App) -> bool {
        let started = tokio::time::Instant::now();
        let writes = Instant::now() + RUN_LIMIT;
        let deadlines = Deadlines {
            calls: Some(writes - app.config.retry.deadline_margin),
            writes: Some(writes),
        };
        let run = AssertUnwindSafe(run_until(app, self.job, self.scheduled, deadlines));
        let what = format!("{} run of {}", self.job.name(), self.scheduled.to_rfc3339());
        let result = match tokio::time::timeout(2 * RUN_LIMIT, run.catch_unwind()).await {
            Err(_) => {
                self.with(|s| s.violate("returns", format!("the {what} did not return")));
                return false;
            }
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.with(|s| s.violate("panic", format!("the {what} panicked: {message}")));
                return false;
            }
            Ok(Ok(result)) => result,
        };
        let elapsed = started.elapsed();
        if elapsed > RUN_LIMIT {
            self.with(|s| {
                s.violate(
                    "deadline",
                    format!(
                        "the {what} took {} s, past its deadline of {} s",
                        elapsed.as_secs(),
                        RUN_LIMIT.as_secs()
                    ),
                )
            });
        }
        let (summary, error): (&RunSummary, Option<&RunError>) = match &result {
            Ok(s) => (s, None),
            Err(e) => (e.summary(), Some(e)),
        };
        // `SIM_TRACE=<hashtag>`: each run's report of that hashtag, to follow one seed's failure.
        if let Ok(tag) = std::env::var("SIM_TRACE") {
            let now = self.with(|s| s.now);
            eprintln!(
                "{now} {what}: {} state={:?} budget={:?} #{tag}: {:?}",
                error.map(|e| e.to_string()).unwrap_or_else(|| "ok".into()),
                summary.state,
                summary.hashtag_budget,
                summary.hashtags.get(&tag)
            );
        }
        let text = format!(
            "{} {}",
            serde_json::to_string(summary).unwrap_or_default(),
            error.map(|e| e.to_string()).unwrap_or_default()
        );
        self.with(|s| {
            if let Some(t) = s.leaked(text.as_bytes()) {
                s.violate(
                    "secret",
                    format!("the {what}'s summary or error holds secret {t}"),
                );
            }
            if let Some(e) = error {
                *s.failures.entry(e.kind_name()).or_default() += 1;
            }
            for (tag, report) in &summary.hashtags {
                let time = |t: &Option<String>| {
                    t.as_deref()
                        .and_then(ig_collector::validate::parse_timestamp)
                        .map(|t| t.with_timezone(&Utc))
                };
                if let (Some(from), Some(to)) =
                    (time(&report.given_up_from), time(&report.given_up_to))
                {
                    s.given_up.entry(tag.clone()).or_default().push((from, to));
                }
                let latest = s.reported.entry(tag.clone()).or_insert(self.scheduled);
                *latest = (*latest).max(self.scheduled);
            }
        });
        if result.is_ok() && self.job == Job::Brands {
            self.check_brands(app, summary);
        }
        result.is_ok()
    }

    /// Invariant 1 for brands: a successful run wrote every post of each account's latest page
    /// (accounts it reported failed aside) under its scheduled time's `media` keys.
    fn check_brands(&self, app: &App, summary: &RunSummary) {
        let template = app.config.key_template(Kind::Media).render(self.scheduled);
        let prefix = template
            .strip_suffix(".json")
            .unwrap_or(&template)
            .to_string();
        let failed: HashSet<&str> = summary
            .failed_targets
            .iter()
            .map(|f| f.target.as_str())
            .collect();
        self.with(|s| {
            let mut present = HashSet::new();
            for (key, (body, _)) in s.objects.range(prefix.clone()..) {
                if !key.starts_with(&prefix) {
                    break;
                }
                for r in ig_collector::records::parse(body).unwrap_or_default() {
                    present.insert(store::identity(&r).1);
                }
            }
            let now = s.now;
            let mut missing = Vec::new();
            for t in app.config.targets.iter().filter(|t| !failed.contains(t.username.as_str())) {
                let Some(b) = s.world.brand_by_name(&t.username) else {
                    continue;
                };
                for p in s.world.brand_page(b, now, app.config.graph.brand_media_limit as usize) {
                    if !present.contains(&p.id) {
                        missing.push(format!("post {} of {}", p.id, t.username));
                    }
                }
            }
            if let Some(first) = missing.first() {
                s.violate(
                    "completeness",
                    format!("the brands run of {} succeeded without writing {first} ({} such posts) under {prefix}*", self.scheduled.to_rfc3339(), missing.len()),
                );
            }
        });
    }
}
