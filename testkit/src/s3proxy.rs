//! A fault-injecting HTTP proxy in front of the moto S3 server, so tests can script the ways S3
//! fails that moto itself never shows: error statuses, slow answers, connections that never
//! answer, and bodies that never arrive. Clients point at `endpoint` with path-style addressing
//! (the SDK does not check the host and moto does not check SigV4 signatures); every request that
//! no fault rule claims is forwarded unchanged (method, path and query, headers, body) and its
//! answer is returned unchanged (status, headers including ETag, body). Stalls are tokio tasks
//! that end, closing their connection, when the proxy is dropped; dropping also aborts the accept
//! loop rather than waiting on stalled connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// What the proxy does instead of (or before) forwarding a matching request.
#[derive(Debug, Clone)]
pub enum S3Fault {
    /// Never answer (hold the connection open) — a stalled S3.
    Stall,
    /// Answer with this status and an S3-style XML error body
    /// (`<Error><Code>…</Code><Message>…</Message></Error>`), e.g. 500 InternalError,
    /// 503 SlowDown, 403 AccessDenied.
    Status(u16, &'static str),
    /// Wait this long, then forward normally.
    Delay(Duration),
    /// Forward the request, then send the real status and headers but stall forever before
    /// sending the body (a GetObject whose body never arrives).
    StallBody,
}

/// The kind of S3 call a rule applies to, told apart by method and path (path-style addressing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET on an object key (GetObject).
    Get,
    /// PUT on an object key (PutObject, and also UploadPart and CopyObject).
    Put,
    /// Any HEAD (HeadObject; HeadBucket has no key, so only `""` matches it).
    Head,
    /// GET with `list-type=2`, or any GET without a key (ListObjectsV2).
    List,
    /// Every request.
    Any,
}

struct Rule {
    op: Op,
    key_contains: String,
    fault: S3Fault,
    remaining: usize,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Rule>,
    seen: Vec<(String, String)>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    upstream: String,
    client: reqwest::Client,
    /// Closed (its sender dropped) when the proxy is dropped: stalled requests end then.
    stopped: watch::Receiver<()>,
}

/// A running proxy; the server stops, and stalled connections close, when it is dropped.
pub struct S3Proxy {
    /// `http://127.0.0.1:PORT`, for `client_for` or `AWS_ENDPOINT_URL_S3`.
    pub endpoint: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
    _stop: watch::Sender<()>,
}

impl S3Proxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> S3Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("the bound address");
        let (stop, stopped) = watch::channel(());
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared {
            inner: inner.clone(),
            upstream: upstream.trim_end_matches('/').to_string(),
            // No proxy from the environment: the upstream is on loopback, and a test machine's
            // HTTP_PROXY must not see it.
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            stopped,
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        S3Proxy {
            endpoint: format!("http://{addr}"),
            inner,
            server,
            _stop: stop,
        }
    }

    /// Applies `fault` to the next `times` requests that match `op` and whose object key contains
    /// `key_contains` ("" matches every key). Rules are checked in the order added; a rule with
    /// times exhausted no longer applies. `times = usize::MAX` means forever.
    pub fn fault(&self, op: Op, key_contains: &str, fault: S3Fault, times: usize) {
        self.lock().rules.push(Rule {
            op,
            key_contains: key_contains.to_string(),
            fault,
            remaining: times,
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// (method, path) of every request received so far, in order, faulted or not. The path is
    /// as sent (percent-encoded, without the query), e.g. `("GET", "/bucket/raw/a%20b.json")`.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.lock().seen.clone()
    }

    /// Environment for a child process (like `S3Server::env`) that points at the proxy instead
    /// of the server.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        super::s3::env_for(&self.endpoint, bucket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("the proxy state lock")
    }
}

impl Drop for S3Proxy {
    /// Aborts the accept loop (graceful shutdown would wait on stalled connections); dropping
    /// `_stop` right after ends the stalls.
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Records the request, applies the first matching rule, and forwards unless the fault answers.
async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let key = object_key(&path);
    let op = match (method.as_str(), key.is_empty()) {
        ("GET", false) if !query.split('&').any(|p| p == "list-type=2") => Op::Get,
        ("GET", _) => Op::List,
        ("PUT", false) => Op::Put,
        ("HEAD", _) => Op::Head,
        _ => Op::Any,
    };
    let fault = {
        let mut inner = shared.inner.lock().expect("the proxy state lock");
        inner.seen.push((method.to_string(), path.clone()));
        let rule = inner.rules.iter_mut().find(|r| {
            r.remaining > 0
                && (r.op == Op::Any || r.op == op)
                && key.contains(r.key_contains.as_str())
        });
        rule.map(|r| {
            if r.remaining != usize::MAX {
                r.remaining -= 1;
            }
            r.fault.clone()
        })
    };
    match fault {
        Some(S3Fault::Stall) => {
            let mut stopped = shared.stopped.clone();
            let _ = stopped.changed().await;
            Response::new(closed_when_stopped(stopped))
        }
        Some(S3Fault::Status(status, code)) => s3_error(status, code),
        Some(S3Fault::Delay(wait)) => {
            tokio::time::sleep(wait).await;
            forward(&shared, request, false).await
        }
        Some(S3Fault::StallBody) => forward(&shared, request, true).await,
        None => forward(&shared, request, false).await,
    }
}

/// Sends the request upstream and returns its answer; with `stall_body`, only status and headers.
async fn forward(shared: &Shared, request: Request, stall_body: bool) -> Response {
    let (parts, body) = request.into_parts();
    let url = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return s3_error(400, "IncompleteBody");
    };
    let upstream = shared
        .client
        .request(parts.method, url)
        .headers(end_to_end(parts.headers))
        .body(body)
        .send()
        .await;
    let Ok(upstream) = upstream else {
        return s3_error(502, "BadGateway");
    };
    let status = upstream.status();
    let mut headers = end_to_end(upstream.headers().clone());
    // The client sets Host and framing for the upstream; hyper sets framing for our answer,
    // except that a HEAD answer keeps the object's Content-Length.
    if let Some(len) = upstream.headers().get(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, len.clone());
    }
    let body = if stall_body {
        closed_when_stopped(shared.stopped.clone())
    } else {
        match upstream.bytes().await {
            Ok(bytes) => Body::from(bytes),
            Err(_) => return s3_error(502, "BadGateway"),
        }
    };
    (status, headers, body).into_response()
}

/// Headers without the hop-by-hop and framing ones that each connection sets for itself.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::HOST,
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    headers
}

/// A body that yields nothing until the proxy is dropped, then fails, so the connection closes
/// instead of outliving the proxy (at once, if the proxy is already gone).
fn closed_when_stopped(mut stopped: watch::Receiver<()>) -> Body {
    Body::from_stream(futures::stream::once(async move {
        let _ = stopped.changed().await;
        Err::<Bytes, _>(std::io::Error::other("the S3 proxy stopped"))
    }))
}

/// An S3-style XML error answer.
fn s3_error(status: u16, code: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid HTTP status");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>Injected by the test S3 proxy</Message><RequestId>s3proxy</RequestId></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// The object key of a path-style path (`/bucket/key`), percent-decoded; "" for bucket paths.
fn object_key(path: &str) -> String {
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, k)| k);
    let (mut rest, mut out) = (key.as_bytes(), Vec::new());
    while let Some((&byte, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        let (byte, tail) = match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if byte == b'%' => (decoded, &tail[2..]),
            _ => (byte, tail),
        };
        out.push(byte);
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}
