//! The server called as a user would, with the `buf` CLI (npm `@bufbuild/buf`, installed by
//! scripts/test) through server reflection only: no proto files on the caller's side.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use close_gateway::proto::google::rpc::BadRequest;
use prost::Message;
use serde_json::{Value, json};
use tokio::process::Command;

/// Bound that only turns a hung buf into a failure.
const BOUND: Duration = Duration::from_secs(120);

fn buf_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/buf");
    assert!(
        path.exists(),
        "{} is missing: the buf CLI is installed by scripts/test (or `npm ci`)",
        path.display()
    );
    path
}

/// `buf curl` over gRPC with HTTP/2 prior knowledge against `http://ADDR/PATH`.
async fn buf_curl(addr: std::net::SocketAddr, path: &str, extra: &[&str]) -> Output {
    let run = Command::new(buf_path())
        .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge"])
        .args(extra)
        .arg(format!("http://{addr}/{path}"))
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(BOUND, run)
        .await
        .expect("buf curl hung")
        .expect("cannot run buf")
}

fn ok_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "buf failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "buf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn get_lead_through_reflection_v1_and_v1alpha() {
    let gw = common::start().await;
    let id = gw.emulator.insert_lead(json!({
        "id": "lead_reflectionTest1",
        "name": "Reflection Ltd",
        "custom": {"cf_reflectSeats": 12},
    }));
    let data = json!({"id": id}).to_string();
    for protocol in ["grpc-v1", "grpc-v1alpha"] {
        let out = buf_curl(
            gw.addr,
            "close.v1.LeadService/GetLead",
            &["--reflect-protocol", protocol, "-d", &data],
        )
        .await;
        let answer = ok_json(&out);
        assert_eq!(answer["lead"]["id"], "lead_reflectionTest1", "{answer}");
        assert_eq!(answer["lead"]["name"], "Reflection Ltd", "{answer}");
        assert_eq!(answer["lead"]["custom"]["cf_reflectSeats"], 12, "{answer}");
    }
    let received = gw.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.method == "GET" && r.path == "/api/v1/lead/lead_reflectionTest1/"),
        "{received:?}"
    );
}

#[tokio::test]
async fn list_methods_shows_every_service() {
    let gw = common::start().await;
    let out = buf_curl(gw.addr, "", &["--list-methods"]).await;
    let methods = lines(&out);
    let expected = [
        "close.v1.LeadService/GetLead",
        "close.v1.LeadService/ListLeads",
        "close.v1.LeadService/CreateLead",
        "close.v1.LeadService/UpdateLead",
        "close.v1.LeadService/DeleteLead",
        "close.v1.LeadService/MergeLeads",
        "close.v1.TaskService/GetTask",
        "close.v1.TaskService/ListTasks",
        "close.v1.TaskService/CreateTask",
        "close.v1.TaskService/UpdateTask",
        "close.v1.TaskService/CompleteTask",
        "close.v1.TaskService/DeleteTask",
        "close.v1.ActivityService/ListActivities",
        "close.v1.ActivityService/GetActivity",
        "close.v1.ActivityService/CreateEmailActivity",
        "close.v1.ActivityService/CreateNoteActivity",
        "close.v1.ActivityService/CreateCallActivity",
        "close.v1.ActivityService/CreateSmsActivity",
        "close.v1.ActivityService/UpdateActivity",
        "close.v1.ActivityService/DeleteActivity",
        "close.v1.SearchService/Search",
        "close.v1.SearchService/SearchAll",
        "close.v1.RawService/Call",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
    ];
    for method in expected {
        assert!(
            methods.iter().any(|m| m == method),
            "{method} missing from {methods:?}"
        );
    }
    assert!(gw.received().is_empty());
}

#[tokio::test]
async fn health_check_through_reflection() {
    let gw = common::start().await;
    let out = buf_curl(gw.addr, "grpc.health.v1.Health/Check", &["-d", "{}"]).await;
    assert_eq!(ok_json(&out), json!({"status": "SERVING"}));
    let data = json!({"service": "close.v1.LeadService"}).to_string();
    let out = buf_curl(gw.addr, "grpc.health.v1.Health/Check", &["-d", &data]).await;
    assert_eq!(ok_json(&out), json!({"status": "SERVING"}));
}

#[tokio::test]
async fn error_details_reach_buf() {
    let gw = common::start().await;
    let data = json!({"id": "cont_notALead"}).to_string();
    let out = buf_curl(gw.addr, "close.v1.LeadService/GetLead", &["-d", &data]).await;
    // buf exits with 8 times the gRPC code: INVALID_ARGUMENT is 3.
    assert_eq!(out.status.code(), Some(24), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Value = serde_json::from_str(&stderr)
        .unwrap_or_else(|e| panic!("error is not JSON ({e}): {stderr}"));
    assert_eq!(error["code"], "invalid_argument", "{error}");
    let details = error["details"].as_array().expect("no details");
    let types: Vec<&str> = details.iter().filter_map(|d| d["type"].as_str()).collect();
    assert_eq!(
        types,
        ["google.rpc.ErrorInfo", "google.rpc.BadRequest"],
        "{error}"
    );

    let encoded = details[1]["value"].as_str().unwrap().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .unwrap();
    let bad_request = BadRequest::decode(bytes.as_slice()).unwrap();
    let fields: Vec<&str> = bad_request
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["id"], "{bad_request:?}");
    assert!(gw.received().is_empty(), "{:?}", gw.received());
}

/// Reflection serves the google.rpc error details and health descriptors too, so tools can
/// decode error details and health calls without proto files.
#[tokio::test]
async fn reflection_serves_error_detail_and_health_descriptors() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let gw = common::start().await;
    let mut client = ServerReflectionClient::new(gw.channel.clone());
    for (symbol, package, message) in [
        ("google.rpc.BadRequest", "google.rpc", "BadRequest"),
        ("google.rpc.RetryInfo", "google.rpc", "RetryInfo"),
        ("google.rpc.ErrorInfo", "google.rpc", "ErrorInfo"),
        (
            "grpc.health.v1.Health",
            "grpc.health.v1",
            "HealthCheckRequest",
        ),
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_owned())),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("{symbol}: {answer:?}");
        };
        let defines = files.file_descriptor_proto.iter().any(|bytes| {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            file.package() == package && file.message_type.iter().any(|m| m.name() == message)
        });
        assert!(defines, "{symbol}: no file defines {package}.{message}");
    }
}
