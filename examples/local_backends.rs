//! The two services a Lambda function talks to, on 127.0.0.1, for driving the bootstraps through
//! an emulator (`scripts/emulator.sh`): the S3-protocol server of the tests (moto) with an
//! empty bucket, and the fake Graph API serving the recorded day (`fixtures/replay`).
//!
//! Prints one `KEY=value` line per environment variable a function needs to reach them (an
//! env file), then `ready`. When stdin closes it prints, as one JSON object, every data object
//! written to the bucket with its record count, stops both services and exits.

use std::io::Read;

use serde_json::{json, Value};
use testkit::graph::FakeGraph;
use testkit::s3::S3Server;

const BUCKET: &str = "emulated";

#[tokio::main]
async fn main() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let graph = FakeGraph::start(testkit::TOKEN, &testkit::replay_dir()).await;
    for (key, value) in testkit::function_env(s3.env(BUCKET), &graph.url(), None) {
        println!("{key}={value}");
    }
    println!("ready");
    // Serve until whoever started us closes stdin.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    let mut objects = serde_json::Map::new();
    for key in s3.data_keys(BUCKET).await {
        let body = s3.get(BUCKET, &key).await;
        let records = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len));
        objects.insert(key, json!(records));
    }
    println!(
        "{}",
        json!({"graph_calls": graph.seen().len(), "objects": objects})
    );
}
