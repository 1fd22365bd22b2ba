//! The fault-injecting S3 proxy itself, with aws-sdk-s3 against moto: that it forwards requests
//! and answers unchanged, and that each scripted fault looks to the SDK like the S3 failure it
//! stands for. Other tests rely on these properties when they script S3 faults.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::support::s3::{client_for, S3Server};
use crate::support::s3proxy::{Op, S3Fault, S3Proxy};

const BUCKET: &str = "proxied";

/// moto with a bucket, and a proxy in front of it.
async fn proxied() -> (S3Server, S3Proxy) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let proxy = S3Proxy::start(&s3.endpoint).await;
    (s3, proxy)
}

async fn put(client: &aws_sdk_s3::Client, key: &str, body: &'static [u8]) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

#[tokio::test]
async fn objects_etags_and_conditional_headers_pass_through_unchanged() {
    let (s3, proxy) = proxied().await;
    let client = client_for(&proxy.endpoint);

    let put = client
        .put_object()
        .bucket(BUCKET)
        .key("raw/a b.json")
        .content_type("application/json")
        .body(ByteStream::from_static(b"{\"a\":1}"))
        .send()
        .await
        .expect("put through the proxy");
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("raw/a b.json")
        .send()
        .await
        .expect("get through the proxy");
    assert_eq!(got.e_tag(), put.e_tag());
    assert!(got.e_tag().is_some_and(|e| !e.is_empty()));
    assert_eq!(got.content_type(), Some("application/json"));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&bytes[..], b"{\"a\":1}");
    assert_eq!(s3.get(BUCKET, "raw/a b.json").await, b"{\"a\":1}");

    let head = client
        .head_object()
        .bucket(BUCKET)
        .key("raw/a b.json")
        .send()
        .await
        .expect("head through the proxy");
    assert_eq!(head.content_length(), Some(7));

    let conditional = client
        .put_object()
        .bucket(BUCKET)
        .key("raw/a b.json")
        .if_none_match("*")
        .body(ByteStream::from_static(b"{\"a\":2}"))
        .send()
        .await
        .expect_err("If-None-Match: * on an existing key");
    assert_eq!(
        conditional.raw_response().map(|r| r.status().as_u16()),
        Some(412),
        "{conditional:?}"
    );
    assert_eq!(s3.get(BUCKET, "raw/a b.json").await, b"{\"a\":1}");

    let seen = proxy.seen();
    let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["PUT", "GET", "HEAD", "PUT"]);
    assert_eq!(seen[1].1, "/proxied/raw/a%20b.json");

    let env = proxy.env(BUCKET);
    assert!(env.contains(&("AWS_ENDPOINT_URL_S3".into(), proxy.endpoint.clone())));
    assert!(env.contains(&("BUCKET".into(), BUCKET.into())));
}

#[tokio::test]
async fn a_delay_slows_only_the_requests_it_matches() {
    let (_s3, proxy) = proxied().await;
    let client = client_for(&proxy.endpoint);

    proxy.fault(
        Op::Put,
        "late",
        S3Fault::Delay(Duration::from_millis(700)),
        1,
    );
    let started = std::time::Instant::now();
    put(&client, "raw/early.json", b"1").await;
    assert!(started.elapsed() < Duration::from_millis(700));
    put(&client, "raw/late.json", b"2").await;
    assert!(started.elapsed() >= Duration::from_millis(700));
    let started = std::time::Instant::now();
    put(&client, "raw/late.json", b"3").await;
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "the rule ran out"
    );
}

#[tokio::test]
async fn a_500_once_is_retried_by_the_sdk_and_a_403_is_not() {
    let (s3, proxy) = proxied().await;
    let client = client_for(&proxy.endpoint);

    proxy.fault(Op::Put, "flaky", S3Fault::Status(500, "InternalError"), 1);
    put(&client, "raw/flaky.json", b"ok").await;
    assert_eq!(s3.get(BUCKET, "raw/flaky.json").await, b"ok");
    assert_eq!(proxy.seen().len(), 2, "one failed attempt, one retry");

    proxy.fault(
        Op::Put,
        "",
        S3Fault::Status(403, "AccessDenied"),
        usize::MAX,
    );
    let denied = client
        .put_object()
        .bucket(BUCKET)
        .key("raw/denied.json")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .expect_err("403 from the proxy");
    assert_eq!(denied.code(), Some("AccessDenied"), "{denied:?}");
    assert_eq!(proxy.seen().len(), 3, "a 403 is not retried");

    proxy.clear();
    put(&client, "raw/denied.json", b"yes").await;
    assert_eq!(s3.keys(BUCKET).await, ["raw/denied.json", "raw/flaky.json"]);
}

#[tokio::test]
async fn a_stalled_get_times_out_while_other_requests_are_answered() {
    let (s3, proxy) = proxied().await;
    let client = client_for(&s3.endpoint);
    put(&client, "raw/stalled.json", b"never").await;
    put(&client, "raw/fine.json", b"fine").await;
    let client = client_for(&proxy.endpoint);

    proxy.fault(Op::Get, "stalled", S3Fault::Stall, usize::MAX);
    let stalled = tokio::time::timeout(
        Duration::from_secs(1),
        client
            .get_object()
            .bucket(BUCKET)
            .key("raw/stalled.json")
            .send(),
    );
    let fine = async {
        let out = client
            .get_object()
            .bucket(BUCKET)
            .key("raw/fine.json")
            .send()
            .await
            .expect("the other key is answered");
        out.body.collect().await.expect("body").into_bytes()
    };
    let (stalled, fine) = tokio::join!(stalled, fine);
    assert!(stalled.is_err(), "the stalled get answered: {stalled:?}");
    assert_eq!(&fine[..], b"fine");

    // A stall with no client timeout ends when the proxy goes away, not with the test.
    let waiting = tokio::spawn(async move {
        client
            .get_object()
            .bucket(BUCKET)
            .key("raw/stalled.json")
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(proxy);
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the stalled request ends once the proxy is dropped")
        .expect("the task");
    assert!(ended.is_err(), "answered after the drop: {ended:?}");
}

#[tokio::test]
async fn a_stalled_body_arrives_with_headers_but_never_completes() {
    let (s3, proxy) = proxied().await;
    let put = client_for(&s3.endpoint)
        .put_object()
        .bucket(BUCKET)
        .key("raw/slow.json")
        .body(ByteStream::from_static(b"0123456789"))
        .send()
        .await
        .expect("put");

    proxy.fault(Op::Get, "slow", S3Fault::StallBody, 1);
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        client_for(&proxy.endpoint)
            .get_object()
            .bucket(BUCKET)
            .key("raw/slow.json")
            .send(),
    )
    .await
    .expect("the headers arrive")
    .expect("a successful answer");
    assert_eq!(got.e_tag(), put.e_tag());
    assert_eq!(got.content_length(), Some(10));
    let body = tokio::time::timeout(Duration::from_secs(1), got.body.collect()).await;
    assert!(body.is_err(), "the body completed: {body:?}");
}
