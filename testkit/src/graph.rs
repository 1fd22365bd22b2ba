//! A fake Instagram Graph API over HTTP on 127.0.0.1 that answers like Meta's: bearer-token
//! auth (code 190 otherwise), `business_discovery` with error 110/2207013 for unknown usernames,
//! `ig_hashtag_search`, `recent_media` with cursor paging, usage headers on every response, and
//! `debug_token`, `oauth/access_token` (a token exchanged for a fresh one with the app's id and
//! secret), scripted faults per target, hostile ones included: bare 429s, redirects, oversized or
//! chunked bodies, and answers that echo the caller's secrets back in every encoding; and fields
//! an API version no longer has ([`FakeGraph::remove_field`]). A [`Recorder`] stands in for
//! wherever a redirect points. Any number of synthetic accounts
//! ([`FakeGraph::add_synthetic_accounts`]) answer like the recorded ones, for runs at scale.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

/// One scripted answer, used instead of the normal one for the next call on a target.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A Graph error body with this HTTP status.
    Error {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        transient: Option<bool>,
    },
    /// Any status and raw body.
    Raw { status: u16, body: String },
    /// Sleep this long before answering normally.
    Hang(Duration),
    /// A throttling error with a regain time (minutes) in `X-Business-Use-Case-Usage`.
    Throttle { code: i64, regain_minutes: u64 },
    /// Answer normally, but report this usage percentage in the headers.
    Usage(u32),
    /// Answer normally, but send this `X-App-Usage` value as is (a fraction, a string, garbage).
    AppUsage(String),
    /// HTTP 429 with a plain-text body (no Graph error object), as a proxy sends it.
    TooManyRequests { retry_after: Option<String> },
    /// A 3xx with this `Location`.
    Redirect { status: u16, location: String },
    /// A body sent in chunks, without `Content-Length`.
    Chunked { status: u16, chunks: Vec<String> },
    /// Echo the caller's bearer token and the `also` strings back, each in every form
    /// [`secret_forms`] lists.
    Echo { place: EchoPlace, also: Vec<String> },
}

/// Where an [`Fault::Echo`] puts the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoPlace {
    /// A Graph error body (code 100): in `message`, `fbtrace_id`, `error_user_title`,
    /// `error_user_msg`.
    ErrorBody,
    /// A 404 HTML page.
    Html,
    /// The normal 200 answer, with the echo in the account's `name` (or a top-level `echo`).
    Field,
}

impl Fault {
    /// Code 190, subcode 463: the token expired. Its credential stops; nothing is retried.
    pub fn expired_token() -> Fault {
        Fault::Error {
            status: 400,
            code: 190,
            subcode: Some(463),
            transient: None,
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    /// The form body of a POST (`debug_token`).
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    /// Tokens accepted as bearer tokens (and reported valid by `debug_token`).
    tokens: Vec<String>,
    /// Hashtag ids whose pages all answer with the same `after` cursor (a paging loop).
    stuck_cursor: std::collections::HashSet<String>,
    brands: HashMap<String, Value>,
    hashtag_ids: HashMap<String, String>,
    /// Pages of posts per hashtag id.
    pages: HashMap<String, Vec<Vec<Value>>>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults for every call, whatever the target.
    every_call: VecDeque<Fault>,
    seen: Vec<Seen>,
    usage_percent: u32,
    /// `expires_at` reported by `debug_token` (0: never expires), as sent.
    token_expires_at: Value,
    /// `expires_at` of the tokens `oauth/access_token` issued, which `debug_token` reports
    /// instead of `token_expires_at`.
    expiry_of: HashMap<String, Value>,
    /// The app id and secret `oauth/access_token` accepts; `None`: it refuses every exchange.
    app: Option<(String, String)>,
    /// The tokens `oauth/access_token` issued, in order.
    issued: Vec<String>,
    /// Simulated response time: (business_discovery, other calls) means, each ± `jitter`.
    latency: Option<Latency>,
    /// How many synthetic accounts answer, and the recorded bodies they are made from.
    synthetic: Option<(usize, Arc<Vec<Value>>)>,
    /// Fields the API (or one version of it) no longer has: (version or any, endpoint, field).
    removed: Vec<(Option<String>, String, String)>,
    /// Requests refused because they named a removed field.
    refused: usize,
    /// Accounts whose media are a generated history (newest first), paged by
    /// `media.after(cursor).limit(n)`.
    histories: HashMap<String, History>,
}

/// An account's generated media: `posts` posts, the newest at `newest`, one every 2 hours
/// back; `stuck`: every page's cursor points half a page on, so the second page repeats half of
/// the first and then points at itself, as a broken API would.
#[derive(Debug, Clone)]
struct History {
    newest: chrono::DateTime<chrono::Utc>,
    posts: usize,
    stuck: bool,
}

/// Post `k` (0: the newest) of an account's generated history: its id, its time (2 hours per
/// post back from `newest`), and counts that say which post it is.
pub fn history_post(username: &str, newest: chrono::DateTime<chrono::Utc>, k: usize) -> Value {
    let at = newest - chrono::Duration::hours(2 * k as i64);
    let tag: u64 = username
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000;
    json!({
        "id": format!("19{tag:06}{k:08}"),
        "timestamp": at.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        "caption": format!("post {k} of {username}"),
        "media_type": "IMAGE",
        "media_product_type": "FEED",
        "media_url": format!("https://cdn.example/{username}/{k}.jpg"),
        "permalink": format!("https://www.instagram.com/p/{username}{k}/"),
        "like_count": 1000 + k,
        "comments_count": k,
    })
}

/// The media cursor and page size a `business_discovery` field expression asks for:
/// `media.after(C).limit(n)` or `media.limit(n)`.
fn media_page_of(fields: &str) -> (Option<String>, usize) {
    let after = fields
        .split_once("media.after(")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(c, _)| c.to_string());
    let limit = fields
        .rsplit_once(".limit(")
        .and_then(|(_, r)| r.split_once(')'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(25);
    (after, limit)
}

/// The media edge of `history` at `cursor` (`p{offset}`), `limit` posts: its paging holds
/// cursors only, as Meta answers an edge read through field expansion (no `next`), and no
/// `after` on the last page.
fn history_page(username: &str, history: &History, cursor: Option<&str>, limit: usize) -> Value {
    let from = cursor
        .and_then(|c| c.strip_prefix('p'))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(history.posts);
    let to = (from + limit.max(1)).min(history.posts);
    let data: Vec<Value> = (from..to)
        .map(|k| history_post(username, history.newest, k))
        .collect();
    let mut cursors = json!({"before": format!("p{from}")});
    if history.stuck {
        cursors["after"] = json!(format!("p{}", limit.max(2) / 2));
    } else if to < history.posts {
        cursors["after"] = json!(format!("p{to}"));
    }
    json!({"data": data, "paging": {"cursors": cursors}})
}

/// The username of synthetic account `i` (0-based): `synthetic_000042`.
pub fn synthetic_username(i: usize) -> String {
    format!("synthetic_{i:06}")
}

/// The Instagram user id of synthetic account `i`.
pub fn synthetic_user_id(i: usize) -> String {
    format!("{}", 17_849_000_000_000_000u64 + i as u64)
}

/// The `business_discovery` answer of synthetic account `i`: recorded body `i mod n` with the
/// account's own id, username and name, and media ids of its own (`18`, the account, the post),
/// so that every record is distinct; captions, counts and URLs stay as recorded (emoji, line
/// breaks and all).
pub fn synthetic_brand(templates: &[Value], i: usize) -> Value {
    let Some(template) = templates.get(i % templates.len().max(1)) else {
        return json!({});
    };
    let mut body = template.clone();
    let username = synthetic_username(i);
    let name = format!("Synthetic account {i}");
    if let Some(bd) = body
        .get_mut("business_discovery")
        .and_then(Value::as_object_mut)
    {
        bd.insert("id".into(), json!(synthetic_user_id(i)));
        bd.insert("username".into(), json!(username));
        bd.insert("name".into(), json!(name));
        if let Some(media) = bd
            .get_mut("media")
            .and_then(|m| m.get_mut("data"))
            .and_then(Value::as_array_mut)
        {
            for (j, m) in media.iter_mut().enumerate() {
                if let Some(m) = m.as_object_mut() {
                    m.insert("id".into(), json!(format!("18{i:09}{j:04}")));
                }
            }
        }
    }
    body
}

/// A latency model: each answer waits `mean` ± `jitter` (uniform), per call kind.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub business_discovery: Duration,
    pub other: Duration,
    /// Relative spread, 0.2 for ±20%.
    pub jitter: f64,
}

#[derive(Clone)]
pub struct FakeGraph {
    inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl FakeGraph {
    /// Starts the server with the brands and hashtags of a replay folder.
    pub async fn start(token: &str, replay: &std::path::Path) -> FakeGraph {
        let mut inner = Inner {
            tokens: vec![token.to_string()],
            usage_percent: 12,
            token_expires_at: json!(chrono::Utc::now().timestamp() + 50 * 86_400),
            ..Inner::default()
        };
        for entry in std::fs::read_dir(replay.join("brands")).expect("brands fixtures") {
            let path = entry.expect("entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_string();
            inner.brands.insert(name, read_json(&path));
        }
        for entry in std::fs::read_dir(replay.join("hashtags")).expect("hashtag fixtures") {
            let path = entry.expect("entry").path();
            let tag = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_string();
            let search =
                crate::read_json(replay.join("hashtag_search").join(format!("{tag}.json")));
            let id = search["data"][0]["id"].as_str().expect("id").to_string();
            let body = read_json(&path);
            let posts = body["data"].as_array().cloned().unwrap_or_default();
            inner.hashtag_ids.insert(tag, id.clone());
            inner.pages.insert(id, vec![posts]);
        }
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/{version}/ig_hashtag_search", get(hashtag_search))
            .route("/{version}/debug_token", axum::routing::post(debug_token))
            .route(
                "/{version}/oauth/access_token",
                axum::routing::post(oauth_access_token),
            )
            .route("/{version}/{node}", get(node))
            .route("/{version}/{node}/recent_media", get(recent_media))
            .with_state(inner.clone());
        let (addr, tx) = crate::serve(app).await;
        FakeGraph {
            inner,
            addr,
            _shutdown: Arc::new(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults for a target: a username, a hashtag name, or `*` for any call.
    pub fn fault(&self, target: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut inner = self.inner.lock().expect("lock");
        if target == "*" {
            inner.every_call.extend(faults);
        } else {
            inner
                .faults
                .entry(target.to_string())
                .or_default()
                .extend(faults);
        }
    }

    /// Makes `n` more accounts answer `business_discovery`: [`synthetic_username`]`(i)` for `i`
    /// in `0..n`, each with [`synthetic_brand`] made from the recorded bodies (the bodies are
    /// generated per request, so a million accounts cost no memory here).
    pub fn add_synthetic_accounts(&self, n: usize) {
        let templates = Arc::new(self.synthetic_templates());
        self.inner.lock().expect("lock").synthetic = Some((n, templates));
    }

    /// The recorded bodies synthetic accounts are made from, in [`synthetic_brand`]'s order.
    pub fn synthetic_templates(&self) -> Vec<Value> {
        let inner = self.inner.lock().expect("lock");
        let mut names: Vec<&String> = inner.brands.keys().collect();
        names.sort();
        names.iter().map(|n| inner.brands[*n].clone()).collect()
    }

    /// Gives an account `posts` posts, the newest at `newest` and one every 2 hours back
    /// ([`history_post`]), answered page by page to `media.after(cursor).limit(n)`; its profile
    /// stays the recorded (or synthetic) one.
    pub fn set_history(&self, username: &str, newest: chrono::DateTime<chrono::Utc>, posts: usize) {
        self.inner.lock().expect("lock").histories.insert(
            username.to_string(),
            History {
                newest,
                posts,
                stuck: false,
            },
        );
    }

    /// Makes every media page of an account (with a history) answer the cursor half a page on:
    /// the second page repeats posts of the first, and paging would go round in a circle.
    pub fn set_stuck_media_cursor(&self, username: &str) {
        if let Some(h) = self.inner.lock().expect("lock").histories.get_mut(username) {
            h.stuck = true;
        }
    }

    /// Replaces the `business_discovery` body of an account.
    pub fn set_brand(&self, username: &str, body: Value) {
        self.inner
            .lock()
            .expect("lock")
            .brands
            .insert(username.to_string(), body);
    }

    /// What `debug_token` reports as `expires_at` (Unix seconds; 0 = never).
    pub fn set_token_expiry(&self, expires_at: i64) {
        self.set_token_expiry_value(json!(expires_at));
    }

    /// What `debug_token` reports as `expires_at` and `data_access_expires_at`, any JSON.
    pub fn set_token_expiry_value(&self, expires_at: Value) {
        self.inner.lock().expect("lock").token_expires_at = expires_at;
    }

    /// Makes `oauth/access_token` accept this app id and app secret.
    pub fn set_app(&self, app_id: &str, app_secret: &str) {
        self.inner.lock().expect("lock").app = Some((app_id.to_string(), app_secret.to_string()));
    }

    /// The tokens `oauth/access_token` issued so far, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.lock().expect("lock").issued.clone()
    }

    /// Accepts another token (a second credential).
    pub fn allow_token(&self, token: &str) {
        self.inner
            .lock()
            .expect("lock")
            .tokens
            .push(token.to_string());
    }

    /// Refuses a token from now on (a revoked or rotated-out token): calls with it get code 190.
    pub fn revoke_token(&self, token: &str) {
        self.inner
            .lock()
            .expect("lock")
            .tokens
            .retain(|t| t != token);
    }

    /// Makes every answer wait according to `latency`.
    pub fn set_latency(&self, latency: Latency) {
        self.inner.lock().expect("lock").latency = Some(latency);
    }

    /// Makes every page of a hashtag answer with the same `after` cursor, as a broken API would.
    pub fn set_stuck_cursor(&self, hashtag: &str) {
        let id = self.hashtag_id(hashtag);
        self.inner.lock().expect("lock").stuck_cursor.insert(id);
    }

    /// Replaces the pages of a hashtag.
    pub fn set_pages(&self, hashtag: &str, pages: Vec<Vec<Value>>) {
        let mut inner = self.inner.lock().expect("lock");
        let id = inner
            .hashtag_ids
            .get(hashtag)
            .cloned()
            .expect("known hashtag");
        inner.pages.insert(id, pages);
    }

    /// Registers a hashtag the fixtures do not have (no posts yet); returns its id.
    pub fn add_hashtag(&self, hashtag: &str) -> String {
        let mut inner = self.inner.lock().expect("lock");
        if let Some(id) = inner.hashtag_ids.get(hashtag) {
            return id.clone();
        }
        let id = format!("179{:014}", inner.hashtag_ids.len() + 1);
        inner.hashtag_ids.insert(hashtag.to_string(), id.clone());
        inner.pages.insert(id.clone(), vec![Vec::new()]);
        id
    }

    pub fn hashtag_id(&self, hashtag: &str) -> String {
        self.inner
            .lock()
            .expect("lock")
            .hashtag_ids
            .get(hashtag)
            .cloned()
            .expect("known hashtag")
    }

    /// Makes the API answer like a version that no longer has `field` on `endpoint`
    /// (`business_discovery` or `recent_media`; a field of the media in `business_discovery` as
    /// `media.like_count`): a request that names it is refused with Meta's code 100
    /// ([`nonexisting_field_body`]), and the answers to the others lack it.
    pub fn remove_field(&self, endpoint: &str, field: &str) {
        self.inner.lock().expect("lock").removed.push((
            None,
            endpoint.to_string(),
            field.to_string(),
        ));
    }

    /// [`FakeGraph::remove_field`] for the requests to API version `version` (`v24.0`) only.
    pub fn remove_field_in(&self, version: &str, endpoint: &str, field: &str) {
        self.inner.lock().expect("lock").removed.push((
            Some(version.to_string()),
            endpoint.to_string(),
            field.to_string(),
        ));
    }

    /// How many requests were refused so far because they named a removed field.
    pub fn refused_for_removed_fields(&self) -> usize {
        self.inner.lock().expect("lock").refused
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().expect("lock").seen.clone()
    }

    /// Requests whose path or query mention `needle`.
    pub fn calls_for(&self, needle: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.contains(needle) || s.query.values().any(|v| v.contains(needle)))
            .count()
    }
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every form in which `secret` is echoed: the JSON string content serde writes, with `\/`
/// for slashes, every non-alphanumeric character as `\u00xx` and as `\u00XX`, and
/// percent-encoded with upper- and lower-case hex. Each is safe inside a JSON string.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("a string");
    let json = json[1..json.len() - 1].to_string();
    let escaped = |upper: bool| -> String {
        secret
            .chars()
            .map(|c| match (c.is_ascii_alphanumeric(), upper) {
                (true, _) => c.to_string(),
                (false, true) => format!("\\u{:04X}", c as u32),
                (false, false) => format!("\\u{:04x}", c as u32),
            })
            .collect()
    };
    let percent = |upper: bool| -> String {
        secret
            .bytes()
            .map(
                |b| match (b.is_ascii_alphanumeric() || b"-._~".contains(&b), upper) {
                    (true, _) => (b as char).to_string(),
                    (false, true) => format!("%{b:02X}"),
                    (false, false) => format!("%{b:02x}"),
                },
            )
            .collect()
    };
    vec![
        json.clone(),
        json.replace('/', "\\/"),
        escaped(false),
        escaped(true),
        percent(true),
        percent(false),
    ]
}

/// The text of an echo: every form of every secret, JSON-string safe.
fn echo_text(secrets: &[String]) -> String {
    secrets
        .iter()
        .flat_map(|s| secret_forms(s))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A JSON body with `"@@ECHO@@"` placeholders replaced by the echo text, escapes intact.
fn with_echo(body: &Value, echo: &str) -> String {
    body.to_string().replace("@@ECHO@@", echo)
}

/// A Graph error body as Meta sends it: `{"error": {message, type, code, error_subcode?,
/// is_transient?, fbtrace_id}}` (also the simulated API's, `sim::api`).
pub fn error_body(
    code: i64,
    subcode: Option<i64>,
    transient: Option<bool>,
    message: &str,
) -> Value {
    let mut e = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    });
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    if let Some(t) = transient {
        e["is_transient"] = json!(t);
    }
    json!({ "error": e })
}

/// Meta's answer to a request naming a field the version no longer has, e.g. `(#100) Tried
/// accessing nonexisting field (media_product_type) on node type (IGMedia)`.
pub fn nonexisting_field_body(field: &str, node_type: &str) -> Value {
    error_body(
        100,
        None,
        None,
        &format!("(#100) Tried accessing nonexisting field ({field}) on node type ({node_type})"),
    )
}

/// The fields a request names, nested ones as `edge.field`: `business_discovery.username(u){a,
/// media.limit(25){b}}` names `a` and `media.b`; `a,b` names `a` and `b`.
pub fn requested_fields(fields: &str) -> Vec<String> {
    let inner = match (fields.find('{'), fields.rfind('}')) {
        (Some(open), Some(close)) if open < close && fields.starts_with("business_discovery") => {
            &fields[open + 1..close]
        }
        _ => fields,
    };
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        match (item.find('{'), item.rfind('}')) {
            (Some(open), Some(close)) if open < close => {
                let edge = item[..open].split(['.', '(']).next().unwrap_or_default();
                for f in item[open + 1..close].split(',').map(str::trim) {
                    if !f.is_empty() {
                        out.push(format!("{edge}.{f}"));
                    }
                }
            }
            _ => out.push(item.to_string()),
        }
    }
    out
}

/// The fields removed from `endpoint` for a request to `version`.
fn removed_for(inner: &Arc<Mutex<Inner>>, version: &str, endpoint: &str) -> Vec<String> {
    inner
        .lock()
        .expect("lock")
        .removed
        .iter()
        .filter(|(v, e, _)| e == endpoint && v.as_deref().is_none_or(|v| v == version))
        .map(|(_, _, f)| f.clone())
        .collect()
}

/// Meta's refusal when the request names a removed field, counted; `None` when it names none.
fn refuse_removed(
    inner: &Arc<Mutex<Inner>>,
    removed: &[String],
    query: &HashMap<String, String>,
    usage: u32,
) -> Option<Response> {
    let asked = requested_fields(query.get("fields").map_or("", String::as_str));
    let field = removed.iter().find(|f| asked.contains(f))?;
    inner.lock().expect("lock").refused += 1;
    let (node_type, name) = match field.split_once('.') {
        Some((_, name)) => ("IGMedia", name),
        None if query
            .get("fields")
            .is_some_and(|f| f.starts_with("business_discovery")) =>
        {
            ("IGUser", field.as_str())
        }
        None => ("IGMedia", field.as_str()),
    };
    Some(respond(
        400,
        nonexisting_field_body(name, node_type),
        usage,
        0,
    ))
}

/// Takes the removed fields out of the objects of an answer: `business_discovery` and its
/// media, or a page's `data`.
fn strip_removed(body: &mut Value, removed: &[String]) {
    let strip = |object: &mut Value, name: &str| {
        if let Some(o) = object.as_object_mut() {
            o.remove(name);
        }
    };
    for field in removed {
        match (body.get_mut("business_discovery"), field.split_once('.')) {
            (Some(bd), Some((edge, name))) => {
                if let Some(list) = bd
                    .get_mut(edge)
                    .and_then(|m| m.get_mut("data"))
                    .and_then(Value::as_array_mut)
                {
                    list.iter_mut().for_each(|m| strip(m, name));
                }
            }
            (Some(bd), None) => strip(bd, field),
            (None, _) => {
                if let Some(list) = body.get_mut("data").and_then(Value::as_array_mut) {
                    list.iter_mut().for_each(|m| strip(m, field));
                }
            }
        }
    }
}

/// The headers of every Graph answer: `X-App-Usage` and `X-Business-Use-Case-Usage` at
/// `usage` percent (with a regain time in minutes), trace ids, the JSON content type.
pub fn headers(usage: u32, regain_minutes: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    let app = json!({"call_count": usage, "total_time": usage / 2, "total_cputime": usage / 3})
        .to_string();
    let buc = json!({"17841400000000000": [{"type": "instagram", "call_count": usage, "total_cputime": 1, "total_time": 1, "estimated_time_to_regain_access": regain_minutes}]}).to_string();
    for (k, v) in [
        ("x-app-usage", app),
        ("x-business-use-case-usage", buc),
        ("x-fb-trace-id", "AbCdEfGhIjK".to_string()),
        ("x-fb-rev", "1008299999".to_string()),
        (
            "content-type",
            "application/json; charset=UTF-8".to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    h
}

fn respond(status: u16, body: Value, usage: u32, regain: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, headers(usage, regain), body.to_string()).into_response()
}

/// What the gate lets through: the usage to report, and an echo to put in the normal answer.
struct Pass {
    usage: u32,
    echo: Option<String>,
    /// An `X-App-Usage` value sent instead of the one `usage` makes.
    app_usage: Option<String>,
}

/// The headers of a normal answer under `pass`.
fn pass_headers(pass: &Pass) -> HeaderMap {
    let mut h = headers(pass.usage, 0);
    if let Some(v) = pass
        .app_usage
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        h.insert("x-app-usage", v);
    }
    h
}

/// A 200 with `body`, carrying the gate's echo in the account's `name` if asked for.
fn answer(mut body: Value, pass: &Pass) -> Response {
    let Some(echo) = &pass.echo else {
        return (StatusCode::OK, pass_headers(pass), body.to_string()).into_response();
    };
    match body.get_mut("business_discovery") {
        Some(bd) => bd["name"] = json!("@@ECHO@@"),
        None => body["echo"] = json!("@@ECHO@@"),
    }
    (StatusCode::OK, pass_headers(pass), with_echo(&body, echo)).into_response()
}

fn i_is_brand(query: &HashMap<String, String>) -> bool {
    query
        .get("fields")
        .is_some_and(|f| f.starts_with("business_discovery"))
}

/// Logs the request, checks the token, and applies a queued fault. `Ok(pass)` means: answer
/// normally with that usage (and echo).
async fn gate(
    inner: &Arc<Mutex<Inner>>,
    path: String,
    query: &HashMap<String, String>,
    hdrs: &HeaderMap,
    target: &str,
    form: Option<&HashMap<String, String>>,
) -> Result<Pass, Response> {
    let authorization = hdrs
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (fault, usage, token_ok, latency) = {
        let mut i = inner.lock().expect("lock");
        i.seen.push(Seen {
            path,
            query: query.clone(),
            authorization: authorization.clone(),
            form: form.cloned().unwrap_or_default(),
        });
        let fault = match i.every_call.pop_front() {
            Some(f) => Some(f),
            None => i.faults.get_mut(target).and_then(VecDeque::pop_front),
        };
        let token_ok = i
            .tokens
            .iter()
            .any(|t| authorization.as_deref() == Some(&format!("Bearer {t}")))
            && !query.contains_key("access_token");
        (fault, i.usage_percent, token_ok, i.latency)
    };
    if let Some(l) = latency {
        let mean = if target.starts_with("search:") || !i_is_brand(query) {
            l.other
        } else {
            l.business_discovery
        };
        let spread = (rand::random::<f64>() * 2.0 - 1.0) * l.jitter;
        tokio::time::sleep(mean.mul_f64((1.0 + spread).max(0.0))).await;
    }
    if !token_ok {
        return Err(respond(
            400,
            error_body(
                190,
                None,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            ),
            usage,
            0,
        ));
    }
    let pass = |usage| Pass {
        usage,
        echo: None,
        app_usage: None,
    };
    match fault {
        None => Ok(pass(usage)),
        Some(Fault::Usage(p)) => Ok(pass(p)),
        Some(Fault::AppUsage(v)) => Ok(Pass {
            app_usage: Some(v),
            ..pass(usage)
        }),
        Some(Fault::Hang(d)) => {
            tokio::time::sleep(d).await;
            Ok(pass(usage))
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let mut h = headers(usage, 0);
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert("retry-after", v);
            }
            Err((StatusCode::TOO_MANY_REQUESTS, h, "Too Many Requests").into_response())
        }
        Some(Fault::Redirect { status, location }) => {
            let status = StatusCode::from_u16(status).expect("a status");
            let mut h = headers(usage, 0);
            h.insert(
                "location",
                HeaderValue::from_str(&location).expect("a location"),
            );
            Err((status, h, "").into_response())
        }
        Some(Fault::Chunked { status, chunks }) => {
            let status = StatusCode::from_u16(status).expect("a status");
            let stream = futures::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
            );
            Err((status, headers(usage, 0), Body::from_stream(stream)).into_response())
        }
        Some(Fault::Echo { place, also }) => {
            let bearer = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string();
            let echo = echo_text(&[vec![bearer], also].concat());
            match place {
                EchoPlace::Field => Ok(Pass {
                    echo: Some(echo),
                    ..pass(usage)
                }),
                EchoPlace::Html => Err((
                    StatusCode::NOT_FOUND,
                    format!("<html><body>Not found for {echo}</body></html>"),
                )
                    .into_response()),
                EchoPlace::ErrorBody => {
                    let mut e = error_body(100, None, None, "Invalid parameter for @@ECHO@@");
                    e["error"]["fbtrace_id"] = json!("@@ECHO@@");
                    e["error"]["error_user_title"] = json!("@@ECHO@@");
                    e["error"]["error_user_msg"] = json!("@@ECHO@@");
                    Err((
                        StatusCode::BAD_REQUEST,
                        headers(usage, 0),
                        with_echo(&e, &echo),
                    )
                        .into_response())
                }
            }
        }
        Some(Fault::Error {
            status,
            code,
            subcode,
            transient,
        }) => Err(respond(
            status,
            error_body(code, subcode, transient, "An error occurred"),
            usage,
            0,
        )),
        Some(Fault::Throttle {
            code,
            regain_minutes,
        }) => Err(respond(
            if code == 4 { 403 } else { 400 },
            error_body(code, None, Some(true), "Application request limit reached"),
            100,
            regain_minutes,
        )),
        Some(Fault::Raw { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err((status, headers(usage, 0), body).into_response())
        }
    }
}

async fn node(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let fields = q.get("fields").cloned().unwrap_or_default();
    let username = fields
        .strip_prefix("business_discovery.username(")
        .and_then(|r| r.split_once(')'))
        .map(|(u, _)| u.to_string())
        .unwrap_or_default();
    let pass = match gate(
        &inner,
        format!("/{version}/{node}"),
        &q,
        &h,
        &username,
        None,
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let usage = pass.usage;
    if username.is_empty() {
        return respond(
            400,
            error_body(100, None, None, "(#100) Tried accessing nonexisting field"),
            usage,
            0,
        );
    }
    let (recorded, synthetic, history) = {
        let i = inner.lock().expect("lock");
        (
            i.brands.get(&username).cloned(),
            i.synthetic.clone(),
            i.histories.get(&username).cloned(),
        )
    };
    // Generated outside the lock: a body is a few tens of KB.
    let body = recorded.or_else(|| {
        let (n, templates) = synthetic?;
        let k = username
            .strip_prefix("synthetic_")
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|k| *k < n)?;
        Some(synthetic_brand(&templates, k))
    });
    let removed = removed_for(&inner, &version, "business_discovery");
    if let Some(refused) = refuse_removed(&inner, &removed, &q, usage) {
        return refused;
    }
    match body {
        Some(mut b) => {
            if let (Some(h), Some(bd)) = (&history, b.get_mut("business_discovery")) {
                let (after, limit) = media_page_of(&fields);
                bd["media"] = history_page(&username, h, after.as_deref(), limit);
            }
            strip_removed(&mut b, &removed);
            answer(b, &pass)
        }
        None => {
            let mut e = error_body(110, Some(2207013), Some(false), "Invalid user id");
            e["error"]["error_user_title"] = json!("Cannot find User");
            e["error"]["error_user_msg"] = json!(format!(
                "The user with username: {username} cannot be found."
            ));
            respond(400, e, usage, 0)
        }
    }
}

async fn hashtag_search(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let tag = q.get("q").cloned().unwrap_or_default();
    let pass = match gate(
        &inner,
        format!("/{version}/ig_hashtag_search"),
        &q,
        &h,
        &format!("search:{tag}"),
        None,
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = inner.lock().expect("lock").hashtag_ids.get(&tag).cloned();
    match id {
        Some(id) => answer(json!({"data": [{"id": id}]}), &pass),
        None => answer(json!({"data": []}), &pass),
    }
}

async fn debug_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let pass = match gate(
        &inner,
        format!("/{version}/debug_token"),
        &q,
        &h,
        "debug_token",
        Some(&form),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let usage = pass.usage;
    let input = form.get("input_token").cloned().unwrap_or_default();
    let (tokens, expires_at) = {
        let i = inner.lock().expect("lock");
        let expires_at = i.expiry_of.get(&input).unwrap_or(&i.token_expires_at);
        (i.tokens.clone(), expires_at.clone())
    };
    if form.get("method").map(String::as_str) != Some("GET") {
        return respond(
            400,
            error_body(100, None, None, "Unsupported post request"),
            usage,
            0,
        );
    }
    let valid = form.get("input_token").is_some_and(|t| tokens.contains(t));
    answer(
        json!({"data": {"app_id": "1234567890", "type": "USER", "application": "ig-collector", "data_access_expires_at": expires_at, "expires_at": expires_at, "is_valid": valid, "scopes": ["instagram_basic", "pages_read_engagement"], "user_id": "10150000000000000"}}),
        &pass,
    )
}

/// How long a token `oauth/access_token` issues lasts, as Meta's example answer says (about 60
/// days).
pub const EXCHANGED_EXPIRES_IN: i64 = 5_183_944;

/// `oauth/access_token` with `grant_type=fb_exchange_token`, as the collector sends it: a form
/// body (`method=GET`). Refuses the app id (code 101) and the app secret (code 1) as Meta does,
/// an invalid token with code 190, and any secret in the URL; else issues a token distinct from
/// every other, valid for every later call, that `debug_token` reports as lasting
/// [`EXCHANGED_EXPIRES_IN`].
async fn oauth_access_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let pass = match gate(
        &inner,
        format!("/{version}/oauth/access_token"),
        &q,
        &h,
        "oauth/access_token",
        Some(&form),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let usage = pass.usage;
    let refuse =
        |code: i64, message: &str| respond(400, error_body(code, None, None, message), usage, 0);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if ["client_secret", "fb_exchange_token"]
        .iter()
        .any(|k| q.contains_key(*k))
    {
        return refuse(100, "a secret was sent in the URL");
    }
    if field("method") != "GET" || field("grant_type") != "fb_exchange_token" {
        return refuse(100, "Invalid grant_type or method");
    }
    let mut i = inner.lock().expect("lock");
    let Some((app_id, app_secret)) = i.app.clone() else {
        return refuse(101, "Error validating application. Invalid application ID.");
    };
    if field("client_id") != app_id {
        return refuse(101, "Error validating application. Invalid application ID.");
    }
    if field("client_secret") != app_secret {
        return refuse(1, "Error validating client secret.");
    }
    if !i.tokens.iter().any(|t| t == field("fb_exchange_token")) {
        return refuse(190, "Error validating access token: Session has expired");
    }
    let token = format!(
        "EAAGfreshTOKEN{:03}x{:016x}{:016x}",
        i.issued.len() + 1,
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    i.tokens.push(token.clone());
    i.issued.push(token.clone());
    i.expiry_of.insert(
        token.clone(),
        json!(chrono::Utc::now().timestamp() + EXCHANGED_EXPIRES_IN),
    );
    drop(i);
    answer(
        json!({"access_token": token, "token_type": "bearer", "expires_in": EXCHANGED_EXPIRES_IN}),
        &pass,
    )
}

async fn recent_media(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let tag = {
        let i = inner.lock().expect("lock");
        i.hashtag_ids
            .iter()
            .find(|(_, id)| **id == node)
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    };
    let pass = match gate(
        &inner,
        format!("/{version}/{node}/recent_media"),
        &q,
        &h,
        &tag,
        None,
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let usage = pass.usage;
    let pages = inner.lock().expect("lock").pages.get(&node).cloned();
    let Some(pages) = pages else {
        return respond(
            400,
            error_body(
                100,
                Some(33),
                None,
                "Unsupported get request. Object does not exist",
            ),
            usage,
            0,
        );
    };
    let removed = removed_for(&inner, &version, "recent_media");
    if let Some(refused) = refuse_removed(&inner, &removed, &q, usage) {
        return refused;
    }
    let index: usize = q
        .get("after")
        .and_then(|a| a.strip_prefix("page"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let posts = pages.get(index).cloned().unwrap_or_default();
    let stuck = inner.lock().expect("lock").stuck_cursor.contains(&node);
    let mut paging = json!({"cursors": {"after": format!("page{}", index + 1)}});
    if stuck {
        paging = json!({"cursors": {"after": "page1"}, "next": format!("http://fake/{version}/{node}/recent_media?after=page1")});
    } else if index + 1 < pages.len() {
        paging["next"] = json!(format!(
            "http://fake/{version}/{node}/recent_media?after=page{}",
            index + 1
        ));
    }
    let mut body = json!({"data": posts, "paging": paging});
    strip_removed(&mut body, &removed);
    answer(body, &pass)
}

/// A server that records every request it receives and answers `{}`: where a redirect points,
/// so a test can tell whether anything followed it.
pub struct Recorder {
    hits: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        let app = Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                seen.lock().expect("lock").push(format!(
                    "{} {} {}",
                    parts.method,
                    parts.uri,
                    String::from_utf8_lossy(&body)
                ));
                "{}"
            }
        });
        let (addr, tx) = crate::serve(app).await;
        Recorder {
            hits,
            addr,
            _shutdown: Arc::new(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received: method, URI and body.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("lock").clone()
    }
}
