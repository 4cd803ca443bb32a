//! RawService end to end: the guard refuses bad methods, dangerous paths and denied endpoints
//! before anything reaches the emulator; allowed calls pass through with status and body.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use close_gateway::close::CloseClient;
use close_gateway::emulator::EmulatorConfig;
use close_gateway::proto::close::v1::raw_service_client::RawServiceClient;
use close_gateway::proto::close::v1::*;
use close_gateway::server::{self, ServerOptions};
use close_gateway::services::Gateway;
use close_gateway::services::convert::{from_pb_value, to_pb_value};
use close_gateway::services::raw::RawPolicy;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

fn call(method: &str, path: &str) -> CallRequest {
    CallRequest {
        method: method.into(),
        path: path.into(),
        query: HashMap::new(),
        body: None,
    }
}

/// The error of a call that must be refused, after checking nothing reached Close.
async fn refused(gw: &common::TestGateway, request: CallRequest) -> tonic::Status {
    let what = format!("{} {:?}", request.method, request.path);
    let status = gw
        .raw()
        .call(request)
        .await
        .expect_err(&format!("{what} was accepted"));
    assert!(gw.received().is_empty(), "{what} reached the emulator");
    status
}

#[tokio::test]
async fn traversal_and_smuggling_paths_are_invalid_and_never_sent() {
    let gw = common::start().await;
    for path in [
        "../api_key/",
        "/lead/../api_key/",
        "/lead/./",
        "%2e%2e/",
        "/lead%2Fapi_key/",
        "/lead/%5c/",
        "/lead/%00/",
        "http://evil/",
        "//evil/",
        "lead/\u{0}",
        "lead /x",
        "lead/\r\nHost: evil/",
        "/lead/?_limit=1",
        "/lead/#frag",
        "\\evil\\",
        "user@evil/",
        "/lead//x/",
        "",
        "/",
        "/api/v1/lead/",
    ] {
        let status = refused(&gw, call("GET", path)).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{path:?}");
        assert_eq!(common::violated_fields(&status), ["path"], "{path:?}");
        assert_eq!(common::reason(&status), "INVALID_ARGUMENT", "{path:?}");
    }
}

#[tokio::test]
async fn percent_is_refused_with_the_reason() {
    let gw = common::start().await;
    let status = refused(&gw, call("GET", "/lead/%2F/")).await;
    let details = common::details(&status);
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "path");
    assert!(
        violation.description.contains("percent-encoding"),
        "{}",
        violation.description
    );
}

#[tokio::test]
async fn only_get_post_put_delete_are_allowed() {
    let gw = common::start().await;
    for method in ["PATCH", "HEAD", "TRACE", "OPTIONS", "CONNECT", "", "G ET"] {
        let status = refused(&gw, call(method, "/lead/")).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{method:?}");
        assert_eq!(common::violated_fields(&status), ["method"], "{method:?}");
    }
}

#[tokio::test]
async fn every_bad_field_is_named_at_once() {
    let gw = common::start().await;
    let mut request = call("PATCH", "../x/");
    request.query.insert("a\u{1}".into(), "x".into());
    let status = refused(&gw, request).await;
    assert_eq!(
        common::violated_fields(&status),
        ["method", "path", "query[a\u{1}]"]
    );
}

#[tokio::test]
async fn query_values_with_control_characters_are_invalid() {
    let gw = common::start().await;
    let mut request = call("GET", "/lead/");
    request.query.insert("query".into(), "x\r\ny".into());
    let status = refused(&gw, request).await;
    assert_eq!(common::violated_fields(&status), ["query[query]"]);
}

#[tokio::test]
async fn default_deny_list_is_permission_denied_and_never_sent() {
    let gw = common::start().await;
    for (method, path) in [
        ("GET", "/api_key/"),
        ("POST", "api_key"),
        ("GET", "/Api_Key/key_1/"),
        ("POST", "/webhook/"),
        ("DELETE", "/webhook/whsub_1/"),
        ("PUT", "/organization/orga_test/"),
        ("GET", "/membership/"),
        ("POST", "/role/"),
        ("POST", "/bulk_action/delete/"),
        ("GET", "/bulk_action/edit/bulk_1/"),
        ("get", "/me/api_key/"),
    ] {
        let status = refused(&gw, call(method, path)).await;
        assert_eq!(status.code(), Code::PermissionDenied, "{method} {path}");
        assert_eq!(
            common::reason(&status),
            "ENDPOINT_DENIED",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn configured_allow_list_limits_methods_and_prefixes() {
    let policy = RawPolicy::parse("GET /me/, GET /lead/", "").unwrap();
    let gw = common::start_custom(EmulatorConfig::default(), policy).await;
    for (method, path) in [("POST", "/lead/"), ("GET", "/task/"), ("DELETE", "/me/")] {
        let status = refused(&gw, call(method, path)).await;
        assert_eq!(status.code(), Code::PermissionDenied, "{method} {path}");
    }
    let answer = gw.raw().call(call("GET", "me")).await.unwrap().into_inner();
    assert_eq!(answer.http_status, 200);
    assert_eq!(gw.last().path, "/api/v1/me/");
}

#[tokio::test]
async fn post_with_query_and_body_reaches_close_as_given() {
    let gw = common::start().await;
    let mut request = call("post", "lead");
    request.query.insert("_fields".into(), "id,name".into());
    request.body = Some(to_pb_value(json!({
        "name": "Initech",
        "contacts": [{"name": "Bill", "emails": [{"email": "bill@initech.example"}]}],
        "employees": 40,
    })));
    let answer = gw.raw().call(request).await.unwrap().into_inner();

    assert_eq!(answer.http_status, 200);
    let body = from_pb_value(answer.body.as_ref().unwrap());
    assert_eq!(body["name"], "Initech");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("lead_"), "{id}");

    let sent = gw.last();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/api/v1/lead/");
    assert_eq!(sent.query, [("_fields".to_owned(), "id,name".to_owned())]);
    assert_eq!(
        sent.body.unwrap(),
        json!({
            "name": "Initech",
            "contacts": [{"name": "Bill", "emails": [{"email": "bill@initech.example"}]}],
            "employees": 40,
        })
    );
    assert_eq!(sent.api_key.as_deref(), Some(common::TEST_KEY));
}

#[tokio::test]
async fn get_put_delete_pass_through() {
    let gw = common::start().await;
    let id = gw.emulator.insert_lead(json!({"name": "Globex"}));

    let mut get = call("GET", &format!("/lead/{id}"));
    get.query.insert("_fields".into(), "id,name".into());
    let answer = gw.raw().call(get).await.unwrap().into_inner();
    assert_eq!(answer.http_status, 200);
    assert_eq!(
        from_pb_value(answer.body.as_ref().unwrap()),
        json!({"id": id, "name": "Globex"})
    );
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", format!("/api/v1/lead/{id}/").as_str())
    );
    assert_eq!(sent.body, None);

    let mut put = call("Put", &format!("/lead/{id}/"));
    put.body = Some(to_pb_value(json!({"description": "nuclear"})));
    let answer = gw.raw().call(put).await.unwrap().into_inner();
    assert_eq!(answer.http_status, 200);
    assert_eq!(
        from_pb_value(answer.body.as_ref().unwrap())["description"],
        "nuclear"
    );
    let sent = gw.last();
    assert_eq!(sent.method, "PUT");
    assert_eq!(sent.body, Some(json!({"description": "nuclear"})));

    let answer = gw
        .raw()
        .call(call("delete", &format!("/lead/{id}/")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.http_status, 200);
    assert_eq!(from_pb_value(answer.body.as_ref().unwrap()), json!({}));
    assert_eq!(gw.last().method, "DELETE");
    assert_eq!(gw.received().len(), 3);
}

#[tokio::test]
async fn not_found_passes_through_as_data() {
    let gw = common::start().await;
    let answer = gw
        .raw()
        .call(call("GET", "/lead/lead_doesnotexist/"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.http_status, 404);
    let body = from_pb_value(answer.body.as_ref().unwrap());
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("does not exist"), "{body}");
    assert_eq!(gw.last().status, 404);
}

#[tokio::test]
async fn bad_request_passes_through_as_data() {
    let gw = common::start().await;
    let mut request = call("POST", "/data/search/");
    request.body = Some(to_pb_value(json!({"query": {"type": "nonsense"}})));
    let answer = gw.raw().call(request).await.unwrap().into_inner();
    assert_eq!(answer.http_status, 400);
    let body = from_pb_value(answer.body.as_ref().unwrap());
    assert!(body["field-errors"]["query"].is_string(), "{body}");
}

/// A second gateway, in front of the same emulator, whose key the emulator does not know.
async fn gateway_with_key(gw: &common::TestGateway, key: &str) -> RawServiceClient<Channel> {
    let client = CloseClient::new(common::client_config(&gw.emulator.base_url(), key)).unwrap();
    let gateway = Gateway {
        client,
        raw_policy: Arc::new(RawPolicy::default()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::run(
        listener,
        gateway,
        ServerOptions::default(),
        std::future::pending(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    RawServiceClient::new(channel)
}

#[tokio::test]
async fn close_refusing_the_gateway_key_is_an_error_not_data() {
    let gw = common::start().await;
    let mut raw = gateway_with_key(&gw, "wrong-key").await;
    let status = raw.call(call("GET", "/me/")).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(common::reason(&status), "CLOSE_CREDENTIALS_REJECTED");
    let sent = gw.last();
    assert_eq!(sent.status, 401);
    assert_eq!(sent.api_key.as_deref(), Some("wrong-key"));
}

#[tokio::test]
async fn null_body_is_sent_as_no_body() {
    let gw = common::start().await;
    let mut request = call("GET", "/me/");
    request.body = Some(to_pb_value(Value::Null));
    let answer = gw.raw().call(request).await.unwrap().into_inner();
    assert_eq!(answer.http_status, 200);
    assert_eq!(gw.last().body, None);
}
