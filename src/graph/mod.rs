//! The Instagram Graph API: **the only module that knows Graph HTTP and JSON.**
//!
//! A [`Source`] answers the calls the collector makes (`business_discovery`,
//! `ig_hashtag_search`, `recent_media`, `debug_token`, `oauth/access_token`), either live over
//! HTTP or from recorded response files (`--replay`). Both go through [`decode`], so a replayed run exercises the same
//! parsing as a live one. Errors are decoded once, into a [`GraphError`] whose [`ErrorKind`]
//! drives the pure retry decision in [`retry`].
//!
//! This file only names the parts and re-exports them; it holds no logic of its own, and no part
//! imports through it: each names the module it uses, and they depend one way. `token`, `fields`,
//! `repair`, `replay` and `usage` import no other part; `credentials`, `error`, `retry`, `http`,
//! `source`, `shapes` and `debug_token` import only parts named before them; `session` imports
//! those (its own parts, in `session/`, import it and those), and `exchange` the session.
//! - [`token`]: the access token, the app secret, and the [`Scrubber`] that hides both;
//! - [`credentials`]: [`Credentials`], one account and its token;
//! - [`error`]: Graph error bodies, the [`ErrorKind`] of every code ([`classify`]),
//!   [`GraphError`] (with what a rejected token's subcode means), [`decode`];
//! - [`fields`]: the `fields=` of each endpoint, from the record tables, and the fields an API
//!   version no longer has (pure);
//! - [`repair`]: undecodable characters in a body → a marker validation counts (pure);
//! - [`source`]: [`Source`], live over credentials or replayed;
//! - [`session`]: one run's calls (`Source::session`): counters, deadline, stop switch, the one
//!   retrying call path;
//! - [`debug_token`]: what a `debug_token` answer says of a token ([`DebugToken`]);
//! - [`exchange`]: a long-lived token exchanged for a fresh one (`oauth/access_token`);
//! - `http`: the reqwest client (or an in-process [`Wire`]) and sending one request, reading its
//!   body under a size cap;
//! - [`replay`]: capture names, gzip, reading recorded bodies;
//! - [`retry`], [`usage`], [`shapes`]: the retry decision, usage headers, response shapes.

pub mod credentials;
pub mod debug_token;
pub mod error;
pub mod exchange;
pub mod fields;
mod http;
pub mod repair;
pub mod replay;
pub mod retry;
pub mod session;
pub mod shapes;
pub mod source;
pub mod token;
pub mod usage;

pub use credentials::Credentials;
pub use debug_token::{DebugToken, Expiry};
pub use error::{classify, decode, ApiError, ErrorKind, GraphError};
pub use exchange::Exchanged;
pub use fields::{business_discovery_fields, Endpoint, FieldRef, Omitted};
pub use http::{LiveClient, Wire, WireAnswer, WireRequest};
pub use replay::{gunzip, gunzip_capped, gzip, read_recorded, Captured};
pub use retry::{decide, Decision};
pub use session::{GraphStats, Need, Session};
pub use source::Source;
pub use token::{AccessToken, AppSecret, Scrubber};
pub use usage::Usage;
