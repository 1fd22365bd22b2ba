//! An Instagram Graph API collector for brand monitoring.
//!
//! Two scheduled jobs read the Graph API and write dated JSON records:
//! - **brands** (hourly): `business_discovery` per account → `brand` and `media` records;
//! - **hashtags** (every 5 minutes): `recent_media` per hashtag → `media_hashtag` records.
//!
//! Modules, in the order data flows through them:
//! - [`config`]: `configure.toml` and environment overrides, checked once;
//! - [`job`]: the two jobs, what each asks for and writes;
//! - [`credential`]: which credential a target uses, its hourly allowance per job, and the name
//!   its calls are booked under;
//! - [`graph`]: the Graph API (live HTTP or recorded responses), errors, retries, rate limits;
//! - [`records`]: the record kinds and their fields, the output contract;
//! - [`schema`], [`ddl`]: the contract published from those tables (JSON Schema, table DDL);
//! - [`validate`]: API objects → records, with defaults and counts (pure);
//! - [`sink`]: S3 or a local folder;
//! - [`collect`]: the two jobs, from fetch to write, and the run summary;
//! - [`state`]: what the hashtags job remembers between runs (pure);
//! - [`drift`]: the fields the Graph API reported removed, remembered between runs (pure);
//! - [`lookback`]: how far back the brands job pages an account's media, and its cost (pure);
//! - [`backfill`]: where a newly tracked account's history stands, and what it may spend (pure);
//! - [`pager`]: which hashtag pages a run fetches within the hourly budget (pure);
//! - [`plan`]: how a run too large for one invocation is cut into shards (pure);
//! - [`health`]: the access token's days left, from `debug_token`;
//! - [`probe`]: whether an API version still answers every field asked for (`check-api`);
//! - [`schedule`]: the one rule for a run's time, whoever gives it;
//! - [`reprocess`]: a run's captured responses run again, held to a live run's bounds;
//! - [`setup`], [`lambda`], [`telemetry`]: wiring for the binaries in `src/bin/`;
//! - [`cli`]: the `ig-collector` command line, its grammar and its commands.

pub mod backfill;
pub mod cli;
pub mod collect;
pub mod config;
pub mod credential;
pub mod ddl;
pub mod drift;
pub mod graph;
pub mod health;
pub mod job;
pub mod lambda;
pub mod lookback;
pub mod pager;
pub mod plan;
pub mod probe;
pub mod records;
pub mod reprocess;
pub mod schedule;
pub mod schema;
pub mod setup;
pub mod sink;
pub mod state;
pub mod telemetry;
pub mod validate;
