//! A fake Lambda Runtime API on 127.0.0.1 and a runner that drives a real Lambda binary through
//! it: `GET /2018-06-01/runtime/invocation/next` hands out the queued events with
//! `Lambda-Runtime-Aws-Request-Id` and `Lambda-Runtime-Deadline-Ms`; the binary answers with
//! `POST …/{id}/response` or `…/{id}/error`.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

/// What the function answered for one invocation.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub request_id: String,
    /// When the answer arrived.
    pub at: Instant,
    /// `Ok(response body)` or `Err((error type header, error body))`.
    pub result: Result<Value, (String, Value)>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<(String, Value)>,
    outcomes: Vec<Outcome>,
    next_calls: usize,
    /// When the function first asked for an event: the end of its cold start.
    first_next: Option<Instant>,
    /// How long each invocation is given (`Lambda-Runtime-Deadline-Ms`); 60 s by default.
    time_limit: Option<Duration>,
    /// A fixed `Lambda-Runtime-Deadline-Ms` sent instead, whatever the time (as some emulators do).
    fixed_deadline_ms: Option<u64>,
}

pub struct RuntimeApi {
    inner: Arc<Mutex<Inner>>,
    pub addr: std::net::SocketAddr,
    notify: Arc<tokio::sync::Notify>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

type St = (Arc<Mutex<Inner>>, Arc<tokio::sync::Notify>);

impl RuntimeApi {
    pub async fn start(events: Vec<Value>) -> RuntimeApi {
        RuntimeApi::start_with_limit(events, Duration::from_secs(60)).await
    }

    /// Like [`RuntimeApi::start`], giving each invocation `limit` (its function timeout).
    pub async fn start_with_limit(events: Vec<Value>, limit: Duration) -> RuntimeApi {
        let inner = Arc::new(Mutex::new(Inner {
            time_limit: Some(limit),
            queue: events
                .into_iter()
                .enumerate()
                .map(|(i, e)| (format!("req-{i}"), e))
                .collect(),
            ..Inner::default()
        }));
        let notify = Arc::new(tokio::sync::Notify::new());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((inner.clone(), notify.clone()));
        let (addr, tx) = crate::serve(app).await;
        RuntimeApi {
            inner,
            addr,
            notify,
            _shutdown: tx,
        }
    }

    /// Like [`RuntimeApi::start`], sending `deadline_ms` as every invocation's
    /// `Lambda-Runtime-Deadline-Ms` (epoch ms), as an emulator that sends a constant does.
    pub async fn start_with_fixed_deadline(events: Vec<Value>, deadline_ms: u64) -> RuntimeApi {
        let api = RuntimeApi::start(events).await;
        api.inner.lock().expect("lock").fixed_deadline_ms = Some(deadline_ms);
        api
    }

    /// Queues another event, handed out at the function's next `next` (which waits for it).
    pub fn push(&self, event: Value) {
        let mut i = self.inner.lock().expect("lock");
        let id = format!("req-pushed-{}", i.outcomes.len() + i.queue.len());
        i.queue.push_back((id, event));
    }

    /// When the function first called `next`.
    pub fn first_next(&self) -> Option<Instant> {
        self.inner.lock().expect("lock").first_next
    }

    /// Waits until `n` invocations are answered (or 120 s pass), and returns the answers.
    pub async fn outcomes(&self, n: usize) -> Vec<Outcome> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if self.inner.lock().expect("lock").outcomes.len() >= n {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(120), wait).await;
        self.inner.lock().expect("lock").outcomes.clone()
    }
}

async fn next(State((inner, _)): State<St>) -> Response {
    loop {
        let item = {
            let mut i = inner.lock().expect("lock");
            i.next_calls += 1;
            i.first_next.get_or_insert_with(Instant::now);
            i.queue.pop_front()
        };
        if let Some((id, event)) = item {
            let (limit, fixed) = {
                let i = inner.lock().expect("lock");
                (
                    i.time_limit.unwrap_or(Duration::from_secs(60)),
                    i.fixed_deadline_ms,
                )
            };
            let deadline = fixed.map(u128::from).unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
                    + limit.as_millis()
            });
            let mut h = HeaderMap::new();
            for (k, v) in [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:test".to_string(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                        .to_string(),
                ),
                ("content-type", "application/json".to_string()),
            ] {
                if let Ok(v) = v.parse() {
                    h.insert(k, v);
                }
            }
            return (StatusCode::OK, h, event.to_string()).into_response();
        }
        // Long poll, as the real API does, until the test ends the process.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn record(st: &St, request_id: String, result: Result<Value, (String, Value)>) -> StatusCode {
    st.0.lock().expect("lock").outcomes.push(Outcome {
        request_id,
        at: Instant::now(),
        result,
    });
    st.1.notify_waiters();
    StatusCode::ACCEPTED
}

/// The error type header and the error body the function posted.
fn error_of(headers: &HeaderMap, body: &Bytes) -> (String, Value) {
    let kind = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (kind, serde_json::from_slice(body).unwrap_or(Value::Null))
}

async fn response(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(
        &st,
        id,
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null)),
    )
}

async fn error(
    State(st): State<St>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&st, id, Err(error_of(&headers, &body)))
}

async fn init_error(State(st): State<St>, headers: HeaderMap, body: Bytes) -> StatusCode {
    record(&st, "init".into(), Err(error_of(&headers, &body)))
}

/// A Lambda binary running against a [`RuntimeApi`]; killed on drop. Its stdout and stderr are
/// captured for leak checks.
pub struct Function {
    child: Option<Child>,
}

impl Function {
    pub fn spawn(binary: &str, api: &RuntimeApi, env: &[(String, String)]) -> Function {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "ig-collector-test")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ig-collector-test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2023/09/02/[$LATEST]test")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Function {
            child: Some(cmd.spawn().expect("the Lambda binary starts")),
        }
    }

    /// The process id, while it runs (the benchmarks read its peak memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the function and returns everything it printed.
    pub fn stop(mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let _ = child.kill();
        match child.wait_with_output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
