//! `ig-collector check-api`: does a Graph API version still answer every field the collector
//! asks for? Meant to be run before switching `graph.api_version` (with `--api-version`), and
//! when the `FieldsRemoved` alarm fires.
//!
//! One call per endpoint, each asking for every field, as a run with nothing left out would:
//! `business_discovery` for the first configured account, `ig_hashtag_search` and
//! `recent_media` for the first hashtag, live or from recorded responses. A field the API
//! refuses (code 100) is left out and the call made again, as a run does, so every refused
//! field is found; the answer then says, field by field, whether any object holds it. Nothing
//! is written and nothing is booked: the probe makes a handful of calls, at an operator's hand.

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::graph::{shapes, Endpoint, FieldRef, GraphError, Need, Session, Source};

/// What the probe found, endpoint by endpoint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub api_version: String,
    pub endpoints: Vec<EndpointReport>,
}

/// One endpoint's answer, field by field (fields as the request names them:
/// `media.like_count`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EndpointReport {
    pub endpoint: &'static str,
    /// The account (`business_discovery`) or `#hashtag` probed.
    pub target: String,
    /// Fields at least one object of the answer holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answered: Vec<String>,
    /// Fields that do not answer, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_answered: Vec<NotAnswered>,
    /// Fields nothing can be said of: the call failed, or the answer held no object to look in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// Why the call failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotAnswered {
    pub field: String,
    pub why: String,
}

impl Report {
    /// The fields that do not answer and the calls that failed, one line each; empty when the
    /// version answers everything the collector asks for.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.endpoints {
            if let Some(error) = &e.error {
                out.push(format!("{} ({}): {error}", e.endpoint, e.target));
            }
            for n in &e.not_answered {
                out.push(format!("{} {}: {}", e.endpoint, n.field, n.why));
            }
        }
        out
    }
}

/// Probes `source` at the API version it was built for (`config.graph.api_version`).
pub async fn probe(config: &Config, source: &Source) -> Report {
    let session = source.session(&config.retry, &config.graph, None);
    let mut endpoints = vec![probe_account(config, &session).await];
    endpoints.extend(probe_hashtag(config, &session).await);
    Report {
        api_version: config.graph.api_version.clone(),
        endpoints,
    }
}

/// `business_discovery` of the first configured account.
async fn probe_account(config: &Config, session: &Session<'_>) -> EndpointReport {
    match config.targets.first() {
        Some(t) => {
            let answer = session.business_discovery(0, &t.username).await;
            report(session, Endpoint::BusinessDiscovery, &t.username, answer)
        }
        None => failed("business_discovery", "", "no [[targets]] configured"),
    }
}

/// `ig_hashtag_search` and `recent_media` of the first hashtag the hashtags job tracks.
async fn probe_hashtag(config: &Config, session: &Session<'_>) -> Vec<EndpointReport> {
    let Some(t) = config.targets.iter().find(|t| !t.hashtag.is_empty()) else {
        return vec![failed(
            "recent_media",
            "",
            "no target has a hashtag: nothing to probe",
        )];
    };
    let tag = format!("#{}", t.hashtag);
    let (search, id) = match session.hashtag_search(0, &t.hashtag).await {
        Ok(id) => (
            EndpointReport {
                answered: vec!["id".into()],
                ..blank("ig_hashtag_search", &tag)
            },
            Some(id),
        ),
        // A pinned id still lets `recent_media` be probed.
        Err(e) => (
            failed("ig_hashtag_search", &tag, &e.to_string()),
            t.hashtag_id.clone(),
        ),
    };
    let media = match id {
        Some(id) => {
            let answer = session
                .recent_media(0, &t.hashtag, &id, None, 1, Need::Required)
                .await;
            report(session, Endpoint::RecentMedia, &tag, answer)
        }
        None => failed(
            "recent_media",
            &tag,
            "not called: the hashtag has no id (the search failed and none is pinned)",
        ),
    };
    vec![search, media]
}

fn blank(endpoint: &'static str, target: &str) -> EndpointReport {
    EndpointReport {
        endpoint,
        target: target.to_string(),
        answered: Vec::new(),
        not_answered: Vec::new(),
        unchecked: Vec::new(),
        error: None,
    }
}

fn failed(endpoint: &'static str, target: &str, error: &str) -> EndpointReport {
    EndpointReport {
        error: Some(error.to_string()),
        ..blank(endpoint, target)
    }
}

/// Each field of `endpoint`'s request: refused by the API, held by an object of the answer, in
/// none of them, or unknown (the call failed, or no object of its kind came back).
fn report(
    session: &Session<'_>,
    endpoint: Endpoint,
    target: &str,
    answer: Result<Value, GraphError>,
) -> EndpointReport {
    let refused: Vec<FieldRef> = session
        .refused_this_run()
        .into_iter()
        .filter(|f| f.endpoint() == endpoint)
        .collect();
    let mut out = blank(endpoint.name(), target);
    out.error = answer.as_ref().err().map(GraphError::to_string);
    for field in endpoint.fields() {
        let name = field.qualified();
        if refused.contains(&field) {
            out.not_answered.push(NotAnswered {
                field: name,
                why: "the API says it does not exist (code 100, nonexisting field)".into(),
            });
            continue;
        }
        let Ok(body) = &answer else {
            out.unchecked.push(name);
            continue;
        };
        let objects = shapes::objects(endpoint, field.kind(), body);
        if objects.is_empty() {
            out.unchecked.push(name);
        } else if objects.iter().any(|o| o.contains_key(field.api())) {
            out.answered.push(name);
        } else {
            out.not_answered.push(NotAnswered {
                field: name,
                why: format!(
                    "asked for and not refused, but in none of the {} objects answered: the version may no longer return it",
                    objects.len()
                ),
            });
        }
    }
    out
}
