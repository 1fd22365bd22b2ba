//! The HTTP side of one credential: the reqwest client, sending one request, reading its body.
//!
//! This module owns what travels on the wire: the token in the `Authorization` header (never in
//! a URL), `appsecret_proof` beside the parameters, no redirect ever followed (a redirect would
//! carry the token and the `debug_token` form elsewhere), and a body read under
//! `graph.max_body_bytes`. It must not retry, sleep, count, or interpret a body: one request in,
//! one [`Answer`] or transport error out. Its error texts are scrubbed by the session.

use std::time::Duration;

use super::error::GraphError;
use super::retry::ErrorKind;
use super::source::Credentials;
use super::usage::Usage;
use crate::config::GraphSettings;

/// The HTTP side of one credential: built once per process, reused across runs (and shared,
/// cloned, by a shard's source: `Source::lane`).
#[derive(Debug, Clone)]
pub struct LiveClient {
    pub(crate) http: reqwest::Client,
    /// `{base_url}/{api_version}`.
    pub(crate) base: String,
    pub(crate) credentials: Credentials,
    /// `appsecret_proof`, when the credential has an app secret.
    pub(crate) proof: Option<String>,
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
        let token = self.credentials.token.expose();
        let proof = self.proof.iter().map(|p| ("appsecret_proof", p.clone()));
        let builder = match request {
            Request::Get { path, query } => {
                let query: Vec<_> = query.iter().cloned().chain(proof).collect();
                self.http.get(format!("{}/{path}", self.base)).query(&query)
            }
            Request::Form { path, form } => {
                let form: Vec<_> = form.iter().cloned().chain(proof).collect();
                self.http.post(format!("{}/{path}", self.base)).form(&form)
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
            Err(GraphError::answered(
                status,
                ErrorKind::Redirected,
                format!(
                    "the API answered HTTP {status}, a redirect; redirects are never followed \
                     because they would carry the token elsewhere: check graph.base_url \
                     (GRAPH_API_URL) points at the Graph API itself"
                ),
            ))
        } else {
            read_body(response, max_body_bytes).await
        };
        Ok(Answer {
            status,
            usage,
            body,
        })
    }
}

/// Reads a body in chunks, giving up as soon as it is longer than `cap` (or says it will be).
async fn read_body(mut response: reqwest::Response, cap: u64) -> Result<Vec<u8>, GraphError> {
    let status = response.status().as_u16();
    let too_large = |what: String| {
        GraphError::answered(
            status,
            ErrorKind::TooLarge,
            format!(
                "the response body {what}, over the cap of {cap} bytes (graph.max_body_bytes); \
                 raise graph.max_body_bytes if the API really answers this much"
            ),
        )
    };
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
