//! SearchService end to end: one page, every page, cancellation, cursor expiry and the
//! result cap, checked both at the gRPC client and at the emulator.

mod common;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::close::CloseClient;
use close_gateway::emulator::{EmulatorConfig, Faults, RecordedRequest};
use close_gateway::proto::close::v1::search_service_client::SearchServiceClient;
use close_gateway::proto::close::v1::search_service_server::SearchServiceServer;
use close_gateway::proto::close::v1::*;
use close_gateway::services::Gateway;
use close_gateway::services::convert::{from_struct, to_struct};
use close_gateway::services::raw::RawPolicy;
use close_gateway::services::search::SearchService;
use prost_types::Struct;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

fn pb(value: Value) -> Struct {
    match value {
        Value::Object(map) => to_struct(map),
        other => panic!("not an object: {other}"),
    }
}

fn leads_query() -> Struct {
    pb(json!({"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]}))
}

fn by_name() -> Struct {
    pb(json!({
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "name"},
        "direction": "asc",
    }))
}

fn id_and_name() -> Struct {
    pb(json!({"lead": ["id", "name"]}))
}

/// Inserts leads named `Lead 00`, `Lead 01`, ... and returns their ids in name order.
fn insert_leads(gw: &common::TestGateway, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            gw.emulator
                .insert_lead(json!({"name": format!("Lead {i:02}")}))
        })
        .collect()
}

fn names(data: &[Struct]) -> Vec<String> {
    data.iter()
        .map(|s| {
            from_struct(s)["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn expected_names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("Lead {i:02}")).collect()
}

fn searches(gw: &common::TestGateway) -> Vec<RecordedRequest> {
    gw.received()
        .into_iter()
        .filter(|r| r.path == "/api/v1/data/search/")
        .collect()
}

fn walk_request(page_size: i32) -> SearchAllRequest {
    SearchAllRequest {
        query: Some(leads_query()),
        fields: Some(id_and_name()),
        sort: vec![by_name()],
        page_size,
    }
}

/// Reads a stream to its end: the pages, then the error that ended it, if any.
async fn drain(
    mut stream: tonic::Streaming<SearchAllResponse>,
) -> (Vec<Vec<String>>, Option<tonic::Status>) {
    let mut pages = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(page)) => pages.push(names(&page.data)),
            Ok(None) => return (pages, None),
            Err(status) => return (pages, Some(status)),
        }
    }
}

#[tokio::test]
async fn search_returns_one_page_and_a_token_for_the_next() {
    let gw = common::start().await;
    let ids = insert_leads(&gw, 3);
    let request = SearchRequest {
        query: Some(leads_query()),
        fields: Some(id_and_name()),
        sort: vec![by_name()],
        page_size: 2,
        page_token: String::new(),
    };
    let first = gw
        .search()
        .search(request.clone())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(names(&first.data), expected_names(0..2));
    assert_eq!(from_struct(&first.data[0])["id"], ids[0].as_str());
    assert!(!first.next_page_token.is_empty());
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/data/search/")
    );
    assert_eq!(
        sent.body.unwrap(),
        json!({
            "query": {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]},
            "_fields": {"lead": ["id", "name"]},
            "sort": [{
                "field": {"type": "regular_field", "object_type": "lead", "field_name": "name"},
                "direction": "asc",
            }],
            "_limit": 2,
        })
    );

    let second = gw
        .search()
        .search(SearchRequest {
            page_token: first.next_page_token.clone(),
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&second.data), expected_names(2..3));
    assert_eq!(second.next_page_token, "");
    let body = gw.last().body.unwrap();
    assert_eq!(body["cursor"], first.next_page_token.as_str());
    assert_eq!(body["_limit"], 2);
}

#[tokio::test]
async fn search_without_options_sends_only_the_query() {
    let gw = common::start().await;
    let id = insert_leads(&gw, 1).remove(0);
    let answer = gw
        .search()
        .search(SearchRequest {
            query: Some(leads_query()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.data.len(), 1);
    assert_eq!(from_struct(&answer.data[0])["id"], id.as_str());
    assert_eq!(answer.next_page_token, "");
    assert_eq!(
        gw.last().body.unwrap(),
        json!({"query": {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]}})
    );
}

#[tokio::test]
async fn invalid_searches_are_refused_before_close() {
    let gw = common::start().await;
    let valid = SearchRequest {
        query: Some(leads_query()),
        ..Default::default()
    };
    let cases = [
        (
            SearchRequest {
                query: None,
                ..valid.clone()
            },
            "query",
        ),
        (
            SearchRequest {
                query: Some(Struct::default()),
                ..valid.clone()
            },
            "query",
        ),
        (
            SearchRequest {
                page_size: 201,
                ..valid.clone()
            },
            "page_size",
        ),
        (
            SearchRequest {
                page_size: -1,
                ..valid.clone()
            },
            "page_size",
        ),
        (
            SearchRequest {
                page_token: "x".repeat(5000),
                ..valid.clone()
            },
            "page_token",
        ),
        (
            SearchRequest {
                page_token: "a b".into(),
                ..valid.clone()
            },
            "page_token",
        ),
    ];
    for (request, field) in cases {
        let status = gw.search().search(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(common::violated_fields(&status), [field]);
    }
    for (request, field) in [
        (
            SearchAllRequest {
                query: None,
                ..walk_request(10)
            },
            "query",
        ),
        (walk_request(500), "page_size"),
    ] {
        let status = gw.search().search_all(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(common::violated_fields(&status), [field]);
    }
    assert!(gw.received().is_empty());
}

#[tokio::test]
async fn close_rejecting_the_query_is_invalid_argument_not_an_expired_cursor() {
    let gw = common::start().await;
    let status = gw
        .search()
        .search(SearchRequest {
            query: Some(pb(json!({"type": "no_such_node"}))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::reason(&status), "CLOSE_REJECTED_REQUEST");
    assert_eq!(common::violated_fields(&status), ["query"]);
    assert_eq!(gw.last().status, 400);
}

#[tokio::test]
async fn search_with_an_unknown_token_is_cursor_expired() {
    let gw = common::start().await;
    let status = gw
        .search()
        .search(SearchRequest {
            query: Some(leads_query()),
            page_token: "nosuchcursor".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(common::reason(&status), "CURSOR_EXPIRED");
    let sent = gw.last();
    assert_eq!(sent.status, 400);
    assert_eq!(sent.body.unwrap()["cursor"], "nosuchcursor");
}

#[tokio::test]
async fn search_all_streams_every_page_in_order() {
    let gw = common::start().await;
    insert_leads(&gw, 7);
    let stream = gw
        .search()
        .search_all(walk_request(3))
        .await
        .unwrap()
        .into_inner();
    let (pages, error) = drain(stream).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        pages,
        [
            expected_names(0..3),
            expected_names(3..6),
            expected_names(6..7)
        ]
    );
    let sent = searches(&gw);
    assert_eq!(sent.len(), 3);
    let bodies: Vec<Value> = sent.into_iter().map(|r| r.body.unwrap()).collect();
    assert_eq!(bodies[0].get("cursor"), None);
    assert_eq!(bodies[0]["_limit"], 3);
    for body in &bodies[1..] {
        assert!(
            body["cursor"].as_str().is_some_and(|c| !c.is_empty()),
            "{body}"
        );
        assert_eq!(body["query"], bodies[0]["query"]);
        assert_eq!(body["sort"], bodies[0]["sort"]);
    }
    assert_ne!(bodies[1]["cursor"], bodies[2]["cursor"]);
}

#[tokio::test]
async fn search_all_defaults_to_pages_of_100_and_ends_cleanly_when_empty() {
    let gw = common::start().await;
    let stream = gw
        .search()
        .search_all(walk_request(0))
        .await
        .unwrap()
        .into_inner();
    let (pages, error) = drain(stream).await;
    assert!(error.is_none(), "{error:?}");
    assert!(pages.is_empty());
    let sent = searches(&gw);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body.as_ref().unwrap()["_limit"], 100);
}

/// With one second of latency per request and a paused clock, a walk that kept going after
/// the cancel would reach every page long before a minute of virtual time has passed.
#[tokio::test(start_paused = true)]
async fn cancelling_search_all_stops_fetching_at_once() {
    let gw = common::start().await;
    insert_leads(&gw, 20);
    gw.emulator.set_faults(Faults {
        latency: Duration::from_secs(1),
        ..Faults::default()
    });
    let mut stream = gw
        .search()
        .search_all(walk_request(1))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(names(&first.data), expected_names(0..1));
    drop(stream);

    tokio::time::sleep(Duration::from_secs(60)).await;
    let sent = searches(&gw);
    // Only page 1: the request for page 2, in flight (in the emulator's latency) when the
    // caller left, was dropped with its connection, so the emulator never answered it.
    assert_eq!(sent.len(), 1, "searches after cancel: {sent:?}");
    assert_eq!(sent[0].body.as_ref().unwrap().get("cursor"), None);
}

#[tokio::test(start_paused = true)]
async fn cursor_expiring_mid_walk_aborts_the_stream() {
    let config = EmulatorConfig {
        cursor_ttl: Duration::from_secs(5),
        faults: Faults {
            // Each page is answered 6 s after it was asked for, so the cursor of page 1 is
            // past its 5 s when the request for page 2 is processed.
            latency: Duration::from_secs(6),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let gw = common::start_with(config).await;
    insert_leads(&gw, 5);
    let stream = gw
        .search()
        .search_all(walk_request(2))
        .await
        .unwrap()
        .into_inner();
    let (pages, error) = drain(stream).await;

    assert_eq!(pages, [expected_names(0..2)]);
    let status = error.expect("the stream ended without an error");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(common::reason(&status), "CURSOR_EXPIRED");
    let sent = searches(&gw);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].status, 400);
    assert!(sent[1].body.as_ref().unwrap()["cursor"].is_string());
}

/// A gateway whose SearchService assumes `cap` results per query, like an emulator
/// configured with `search_result_cap: cap`.
async fn search_client_with_cap(
    gw: &common::TestGateway,
    cap: u64,
) -> SearchServiceClient<Channel> {
    let client = CloseClient::new(common::client_config(
        &gw.emulator.base_url(),
        common::TEST_KEY,
    ))
    .unwrap();
    let gateway = Gateway {
        client,
        raw_policy: Arc::new(RawPolicy::default()),
    };
    let service = SearchServiceServer::new(SearchService::with_result_cap(gateway, cap));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SearchServiceClient::new(channel)
}

fn capped(cap: usize) -> EmulatorConfig {
    EmulatorConfig {
        search_result_cap: cap,
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn reaching_the_result_cap_aborts_after_the_last_page() {
    let gw = common::start_with(capped(5)).await;
    insert_leads(&gw, 8);
    let mut search = search_client_with_cap(&gw, 5).await;
    let stream = search
        .search_all(walk_request(2))
        .await
        .unwrap()
        .into_inner();
    let (pages, error) = drain(stream).await;

    assert_eq!(
        pages,
        [
            expected_names(0..2),
            expected_names(2..4),
            expected_names(4..5)
        ]
    );
    let status = error.expect("the stream ended without an error");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(common::reason(&status), "RESULT_CAP_REACHED");
    assert_eq!(searches(&gw).len(), 3);
}

#[tokio::test]
async fn a_walk_under_the_cap_ends_cleanly() {
    let gw = common::start_with(capped(5)).await;
    insert_leads(&gw, 4);
    let mut search = search_client_with_cap(&gw, 5).await;
    let stream = search
        .search_all(walk_request(2))
        .await
        .unwrap()
        .into_inner();
    let (pages, error) = drain(stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(pages, [expected_names(0..2), expected_names(2..4)]);
}

/// Close's real cap, through the production wiring.
#[tokio::test]
async fn close_cap_of_10000_is_reported() {
    let gw = common::start().await;
    for i in 0..10_050 {
        gw.emulator
            .insert_lead(json!({"name": format!("Lead {i:05}")}));
    }
    let request = SearchAllRequest {
        query: Some(leads_query()),
        fields: Some(pb(json!({"lead": ["id"]}))),
        sort: vec![],
        page_size: 200,
    };
    let mut stream = gw.search().search_all(request).await.unwrap().into_inner();
    let mut results = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(page)) => results += page.data.len(),
            Ok(None) => panic!("the walk ended cleanly after {results} results"),
            Err(status) => break status,
        }
    };
    assert_eq!(results, 10_000);
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(common::reason(&status), "RESULT_CAP_REACHED");
    assert_eq!(searches(&gw).len(), 50);
}
