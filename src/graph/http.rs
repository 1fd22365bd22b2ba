//! The HTTP side of one credential: the reqwest client, sending one request, reading its body.
//!
//! This module owns what travels on the wire: the token in the `Authorization` header (never in
//! a URL), `appsecret_proof` beside the parameters, no redirect ever followed (a redirect would
//! carry the token and the `debug_token` form elsewhere), and a body read under
//! `graph.max_body_bytes`. It must not retry, sleep, count, or interpret a body: one request in,
//! one [`Answer`] or transport error out. Its error texts are scrubbed by the session.
//!
//! A [`Wire`] can stand in for reqwest (a simulated Graph API in the same process): the request
//! it gets carries what the HTTP request would, and its answer goes through the same redirect
//! check and body cap, so the session's retries, usage, deadline and scrubbing run unchanged.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::credentials::Credentials;
use super::error::{ErrorKind, GraphError};
use super::token::AccessToken;
use super::usage::Usage;
use crate::config::GraphSettings;

/// The HTTP side of one credential: built once per process, reused across runs (and shared,
/// cloned, by a shard's source: `Source::lane`).
#[derive(Debug, Clone)]
pub struct LiveClient {
    pub(crate) transport: Transport,
    /// `{base_url}/{api_version}`.
    pub(crate) base: String,
    pub(crate) credentials: Credentials,
    /// `appsecret_proof`, when the credential has an app secret.
    pub(crate) proof: Option<String>,
}

/// How a request travels: reqwest over HTTP (always, outside tests), or an in-process [`Wire`].
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Http(reqwest::Client),
    Wire(Arc<dyn Wire>),
}

/// Something that answers Graph requests in the same process: a simulated API. It sees what the
/// HTTP request would carry (the token included, as the `Authorization` header would), and
/// answers what a server would: a status, headers and a body, or nothing (never returning is a
/// stalled call; the request timeout bounds it, as reqwest's does).
pub trait Wire: Send + Sync + Debug {
    fn send(&self, request: WireRequest) -> BoxFuture<'static, WireAnswer>;
}

/// One request as a [`Wire`] receives it.
#[derive(Debug, Clone)]
pub struct WireRequest {
    /// `GET` (query parameters) or `POST` (form parameters).
    pub post: bool,
    /// Relative to `{base_url}/{api_version}`, without a leading slash.
    pub path: String,
    /// The query or form pairs, `appsecret_proof` last when the credential has an app secret.
    pub params: Vec<(String, String)>,
    /// The bearer token the request is sent with (read it with [`WireRequest::bearer_token`]).
    token: AccessToken,
}

impl WireRequest {
    /// What the `Authorization: Bearer` header would carry: the server's way to tell the
    /// credentials apart.
    pub fn bearer_token(&self) -> &str {
        self.token.expose()
    }

    /// The value of parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`Wire`] answers: a response whose headers arrived, and its body or how the body broke.
#[derive(Debug, Clone)]
pub struct WireAnswer {
    pub status: u16,
    /// Read as HTTP headers are (`Usage::from_headers`).
    pub headers: reqwest::header::HeaderMap,
    /// `Err`: the connection broke after this many bytes of body (a cut-off answer).
    pub body: Result<Vec<u8>, usize>,
}

/// One request to the Graph API, relative to the versioned base URL.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// `GET {base}/{path}?{query}`.
    Get {
        path: String,
        query: Vec<(&'static str, String)>,
    },
    /// `POST {base}/{path}` with a form body (`debug_token`: the token goes in the body).
    Form {
        path: String,
        form: Vec<(&'static str, String)>,
    },
    /// `POST {base}/oauth/access_token` with a form body: a token exchanged for a fresh one
    /// (`graph::exchange`). Its answer holds a secret no scrubber knows yet (the fresh token),
    /// so no text of it is ever quoted ([`GraphError::unquoted`]); and its refusal speaks of the
    /// exchange, not of the credential's other calls (a token of another app is refused with
    /// code 190 too), so it stops none of them.
    Exchange { form: Vec<(&'static str, String)> },
}

/// Where [`Request::Exchange`] goes, relative to the versioned base URL.
pub(crate) const EXCHANGE_PATH: &str = "oauth/access_token";

impl Request {
    /// True for [`Request::Exchange`]: its answer is never quoted, its refusal stops no call.
    pub(crate) fn is_exchange(&self) -> bool {
        matches!(self, Request::Exchange { .. })
    }
}

/// A response whose headers arrived.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub usage: Usage,
    /// The body, or why it was not read (too large, a redirect, the connection failed).
    pub body: Result<Vec<u8>, GraphError>,
}

/// The one reqwest client all credentials share.
pub(crate) fn build_client(settings: &GraphSettings) -> Result<reqwest::Client, GraphError> {
    reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("ig-collector/", env!("CARGO_PKG_VERSION")))
        // A redirect would re-send the bearer token (and a POST form holding it) to wherever
        // the Location points; the Graph API never redirects an API call.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            GraphError::local(ErrorKind::Network, format!("HTTP client setup failed: {e}"))
        })
}

impl LiveClient {
    /// Sends `request` once. `Err` only when no response arrived (connect, TLS, timeout).
    pub(crate) async fn send(
        &self,
        request: &Request,
        timeout: Duration,
        max_body_bytes: u64,
    ) -> Result<Answer, GraphError> {
        let http = match &self.transport {
            Transport::Http(http) => http,
            Transport::Wire(wire) => {
                return self
                    .send_wire(wire.as_ref(), request, timeout, max_body_bytes)
                    .await
            }
        };
        let token = self.credentials.token.expose();
        let proof = self.proof.iter().map(|p| ("appsecret_proof", p.clone()));
        let builder = match request {
            Request::Get { path, query } => {
                let query: Vec<_> = query.iter().cloned().chain(proof).collect();
                http.get(format!("{}/{path}", self.base)).query(&query)
            }
            Request::Form { path, form } => {
                let form: Vec<_> = form.iter().cloned().chain(proof).collect();
                http.post(format!("{}/{path}", self.base)).form(&form)
            }
            Request::Exchange { form } => {
                let form: Vec<_> = form.iter().cloned().chain(proof).collect();
                http.post(format!("{}/{EXCHANGE_PATH}", self.base))
                    .form(&form)
            }
        };
        let response = builder
            .bearer_auth(token)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let usage = Usage::from_headers(response.headers());
        let body = if response.status().is_redirection() {
            Err(redirected(status))
        } else {
            read_body(response, max_body_bytes).await
        };
        Ok(Answer {
            status,
            usage,
            body,
        })
    }

    /// [`LiveClient::send`] through a [`Wire`]: the same request, timeout, redirect check and
    /// body cap.
    async fn send_wire(
        &self,
        wire: &dyn Wire,
        request: &Request,
        timeout: Duration,
        max_body_bytes: u64,
    ) -> Result<Answer, GraphError> {
        let (post, path, pairs) = match request {
            Request::Get { path, query } => (false, path.as_str(), query),
            Request::Form { path, form } => (true, path.as_str(), form),
            Request::Exchange { form } => (true, EXCHANGE_PATH, form),
        };
        let params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(
                self.proof
                    .iter()
                    .map(|p| ("appsecret_proof".to_string(), p.clone())),
            )
            .collect();
        let sent = wire.send(WireRequest {
            post,
            path: path.to_string(),
            params,
            token: self.credentials.token.clone(),
        });
        let answer = tokio::time::timeout(timeout, sent).await.map_err(|_| {
            GraphError::local(
                ErrorKind::Timeout,
                format!("no answer within {} ms", timeout.as_millis()),
            )
        })?;
        let status = answer.status;
        let usage = Usage::from_headers(&answer.headers);
        let body = if (300..400).contains(&status) {
            Err(redirected(status))
        } else {
            match answer.body {
                Ok(body) if body.len() as u64 > max_body_bytes => Err(too_large(
                    status,
                    max_body_bytes,
                    format!("passed {} bytes", body.len()),
                )),
                Ok(body) => Ok(body),
                Err(after) => Err(GraphError::local(
                    ErrorKind::Network,
                    format!("the connection closed after {after} bytes of the body"),
                )),
            }
        };
        Ok(Answer {
            status,
            usage,
            body,
        })
    }
}

/// A redirect, never followed.
fn redirected(status: u16) -> GraphError {
    GraphError::answered(
        status,
        ErrorKind::Redirected,
        format!(
            "the API answered HTTP {status}, a redirect; redirects are never followed \
             because they would carry the token elsewhere: check graph.base_url \
             (GRAPH_API_URL) points at the Graph API itself"
        ),
    )
}

/// A body over `graph.max_body_bytes`.
fn too_large(status: u16, cap: u64, what: String) -> GraphError {
    GraphError::answered(
        status,
        ErrorKind::TooLarge,
        format!(
            "the response body {what}, over the cap of {cap} bytes (graph.max_body_bytes); \
             raise graph.max_body_bytes if the API really answers this much"
        ),
    )
}

/// Reads a body in chunks, giving up as soon as it is longer than `cap` (or says it will be).
async fn read_body(mut response: reqwest::Response, cap: u64) -> Result<Vec<u8>, GraphError> {
    let status = response.status().as_u16();
    let too_large = |what: String| too_large(status, cap, what);
    if let Some(length) = response.content_length() {
        if length > cap {
            return Err(too_large(format!("announces {length} bytes")));
        }
    }
    let initial = response.content_length().unwrap_or(64 * 1024).min(cap);
    let mut body = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let length = (body.len() as u64).saturating_add(chunk.len() as u64);
        if length > cap {
            return Err(too_large(format!("passed {length} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request that got no (complete) response. The message is not yet scrubbed: the session
/// scrubs every error before anything else sees it.
fn transport_error(e: reqwest::Error) -> GraphError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    // Without the URL: it carries the appsecret_proof.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    GraphError::local(kind, message)
}
