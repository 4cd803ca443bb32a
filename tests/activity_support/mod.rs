//! Helpers shared by the ActivityService test files.

#![allow(dead_code)]

use close_gateway::emulator::RecordedRequest;
use prost_types::value::Kind;
use prost_types::{FieldMask, Struct, Value as PbValue};
use serde_json::json;

use crate::common::TestGateway;

pub fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

pub fn boolean(b: bool) -> PbValue {
    PbValue {
        kind: Some(Kind::BoolValue(b)),
    }
}

pub fn extra(pairs: &[(&str, PbValue)]) -> Option<Struct> {
    Some(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    })
}

pub fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

pub fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// (method, path) of every request the emulator received.
pub fn calls(gw: &TestGateway) -> Vec<(String, String)> {
    gw.received()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

pub fn call(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}

/// The type lookup: `GET /activity/?id__in=<id>&_fields=id,_type`.
pub fn assert_lookup(request: &RecordedRequest, id: &str) {
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/api/v1/activity/")
    );
    assert_eq!(
        request.query,
        query(&[("id__in", id), ("_fields", "id,_type")])
    );
}

pub async fn with_lead() -> (TestGateway, String) {
    let gw = crate::common::start().await;
    let lead = gw.emulator.insert_lead(json!({"name": "Acme"}));
    (gw, lead)
}
