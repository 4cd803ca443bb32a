use http::Method;
use serde_json::json;

use super::*;
use crate::close::ratelimit::RateLimitInfo;

fn upstream(method: Method, status: u16, body: serde_json::Value) -> Status {
    let error = CloseError::from_status(method, "/lead/", status, &body, RateLimitInfo::default());
    Status::from(Error::Close(error))
}

fn reason(status: &Status) -> String {
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(info.domain, DOMAIN);
    info.reason
}

#[test]
fn close_statuses_map_to_grpc_codes() {
    let cases = [
        (
            Method::GET,
            401,
            Code::Internal,
            "CLOSE_CREDENTIALS_REJECTED",
        ),
        (
            Method::GET,
            402,
            Code::FailedPrecondition,
            "CLOSE_PLAN_LIMIT",
        ),
        (
            Method::GET,
            403,
            Code::PermissionDenied,
            "CLOSE_PERMISSION_DENIED",
        ),
        (Method::GET, 404, Code::NotFound, "NOT_FOUND"),
        (
            Method::POST,
            405,
            Code::Internal,
            "CLOSE_REJECTED_REQUEST_SHAPE",
        ),
        (
            Method::POST,
            415,
            Code::Internal,
            "CLOSE_REJECTED_REQUEST_SHAPE",
        ),
        (Method::GET, 429, Code::ResourceExhausted, "RATE_LIMITED"),
        (Method::GET, 502, Code::Unavailable, "CLOSE_UNAVAILABLE"),
        (Method::PUT, 503, Code::Unavailable, "CLOSE_UNAVAILABLE"),
        (Method::DELETE, 504, Code::Unavailable, "CLOSE_UNAVAILABLE"),
        (Method::POST, 502, Code::Unknown, "OUTCOME_UNKNOWN"),
        (Method::POST, 504, Code::Unknown, "OUTCOME_UNKNOWN"),
    ];
    for (method, http, code, expected) in cases {
        let status = upstream(method.clone(), http, json!(null));
        assert_eq!(status.code(), code, "{method} {http}");
        assert_eq!(reason(&status), expected, "{method} {http}");
    }
}

#[test]
fn field_errors_become_bad_request_violations() {
    let body = json!({"errors": [], "field-errors": {"lead": "Object does not exist."}});
    let status = upstream(Method::POST, 400, body);
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "lead");
    assert_eq!(violations[0].description, "Object does not exist.");
    assert!(status.message().contains("lead: Object does not exist."));
}

#[test]
fn throttling_carries_retry_info() {
    let info = RateLimitInfo {
        reset: Some(Duration::from_millis(870)),
        ..Default::default()
    };
    let error = CloseError::from_status(Method::POST, "/lead/", 429, &json!(null), info);
    let status = Status::from(Error::Close(error));
    let retry = status
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(870)));
}

#[test]
fn transport_failures_distinguish_outcome_unknown() {
    let connect = Status::from(Error::Close(CloseError::Connect("refused".into())));
    assert_eq!(connect.code(), Code::Unavailable);
    let post = CloseError::Transport {
        method: Method::POST,
        path: "/lead/".into(),
        detail: "reset".into(),
        timed_out: false,
    };
    let post = Status::from(Error::Close(post));
    assert_eq!(
        (post.code(), reason(&post).as_str()),
        (Code::Unknown, "OUTCOME_UNKNOWN")
    );
    let get = CloseError::Transport {
        method: Method::GET,
        path: "/lead/".into(),
        detail: "timeout".into(),
        timed_out: true,
    };
    let get = Status::from(Error::Close(get));
    assert_eq!(get.code(), Code::DeadlineExceeded);
}

#[test]
fn error_bodies_of_every_shape_give_a_message() {
    assert_eq!(
        error_message_of(json!({"error": "Empty query: Lead matching query does not exist."})),
        "Empty query: Lead matching query does not exist."
    );
    assert_eq!(
        error_message_of(json!({"errors": ["Source lead does not exist."]})),
        "Source lead does not exist."
    );
    assert_eq!(
        error_message_of(json!({"error": {"message": "API call count exceeded for this period"}})),
        "API call count exceeded for this period"
    );
    assert_eq!(error_message_of(json!(null)), "Gateway Timeout");
}

fn error_message_of(body: serde_json::Value) -> String {
    crate::close::error::error_message(&body, 504)
}

#[test]
fn validation_names_every_field() {
    let error = Error::InvalidArgument(vec![
        FieldViolation::new("id", "is required"),
        FieldViolation::new("lead_id", "must start with \"lead_\""),
    ]);
    let status = Status::from(error);
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<&str> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["id", "lead_id"]);
}
