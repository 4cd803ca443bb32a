//! What can go wrong when talking to Close, and what Close's error bodies say.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::ratelimit::RateLimitInfo;

/// An upstream failure. Each variant keeps what the gRPC mapping in `crate::error` needs.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// Close answered with a status the caller must see as an error.
    #[error("close answered {status} to {method} {path}: {message}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        message: String,
        /// `field-errors` of a 400, field name to message.
        field_errors: Vec<(String, String)>,
        rate_limit: Box<RateLimitInfo>,
    },
    /// The connection could not be established: Close never saw the request.
    #[error("cannot connect to close: {0}")]
    Connect(String),
    /// The request was sent (or may have been) and no complete answer came back.
    #[error("no answer from close to {method} {path}: {detail}")]
    Transport {
        method: Method,
        path: String,
        detail: String,
        timed_out: bool,
    },
    /// The caller's deadline left no time to send the request.
    #[error("deadline leaves no time to call close")]
    NoTimeLeft,
    /// The request body exceeds the configured cap; nothing was sent.
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    RequestTooLarge { size: usize, limit: usize },
    /// Close's answer exceeds the configured cap; it was discarded.
    #[error("close's response exceeds the limit of {limit} bytes")]
    ResponseTooLarge { limit: usize },
    /// Close answered 2xx with a body that is not the JSON we expect.
    #[error("unexpected response from close: {0}")]
    BadResponse(String),
    /// The shared limiter's state cannot be reached and no safe local share applies.
    #[error("rate limiter unavailable: {0}")]
    LimiterUnavailable(String),
    /// The rate limiter refused to admit the call in time.
    #[error("rate limited: {message}")]
    Throttled {
        group: String,
        retry_after: Duration,
        message: String,
    },
}

impl CloseError {
    /// Builds the error for a non-success answer from its body, of any of Close's shapes.
    pub fn from_status(
        method: Method,
        path: &str,
        status: u16,
        body: &Value,
        rate_limit: RateLimitInfo,
    ) -> Self {
        CloseError::Status {
            method,
            path: path.to_owned(),
            status,
            message: error_message(body, status),
            field_errors: field_errors(body),
            rate_limit: Box::new(rate_limit),
        }
    }

    /// True when the request may have been processed by Close, so that replaying it could
    /// duplicate a create. Only POST is not idempotent among the methods we send.
    pub fn outcome_unknown(method: &Method) -> bool {
        method == Method::POST
    }
}

/// The human-readable message of an error body: `error` (string or `{message}`), else the
/// joined `errors`, else the HTTP reason.
pub fn error_message(body: &Value, status: u16) -> String {
    match body.get("error") {
        Some(Value::String(message)) => return message.clone(),
        Some(Value::Object(inner)) => {
            if let Some(Value::String(message)) = inner.get("message") {
                return message.clone();
            }
        }
        _ => {}
    }
    if let Some(Value::String(message)) = body.get("message") {
        return message.clone();
    }
    if let Some(Value::Array(errors)) = body.get("errors") {
        let joined: Vec<String> = errors.iter().map(value_text).collect();
        if !joined.is_empty() {
            return joined.join("; ");
        }
    }
    let field_errors = field_errors(body);
    if !field_errors.is_empty() {
        let joined: Vec<String> = field_errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        return joined.join("; ");
    }
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("unexpected status")
        .to_owned()
}

fn field_errors(body: &Value) -> Vec<(String, String)> {
    let Some(Value::Object(fields)) = body.get("field-errors") else {
        return Vec::new();
    };
    fields
        .iter()
        .map(|(field, message)| (field.clone(), value_text(message)))
        .collect()
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
