//! The gateway's errors and the one table that maps them to gRPC statuses.
//!
//! Every status carries a google.rpc `ErrorInfo` (UPPER_SNAKE_CASE reason, domain
//! [`DOMAIN`]); throttling adds `RetryInfo`, validation adds `BadRequest`.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::close::CloseError;

/// The `ErrorInfo.domain` of every error the gateway returns.
pub const DOMAIN: &str = "close-gateway";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was sent to Close.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The gateway's policy forbids the request (RawService allow / deny list).
    #[error("{0}")]
    Forbidden(String),
    /// A search cursor expired in the middle of a walk.
    #[error("search cursor expired{}; restart the search from the first page", after_pages(*.pages))]
    CursorExpired { pages: u64 },
    /// A search reached Close's result cap; the rest cannot be fetched with this query.
    #[error("search reached close's cap of {cap} results; narrow the query")]
    ResultCapReached { cap: u64 },
    #[error(transparent)]
    Close(#[from] CloseError),
}

fn after_pages(pages: u64) -> String {
    match pages {
        0 => String::new(),
        n => format!(" after {n} pages"),
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    parts.join("; ")
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let message = error.to_string();
        let (code, reason, mut details) = classify(&error);
        let metadata: HashMap<String, String> = match &error {
            Error::Close(CloseError::Status { status, .. }) => {
                HashMap::from([("http_status".to_owned(), status.to_string())])
            }
            Error::Close(CloseError::Throttled { group, .. }) => {
                HashMap::from([("group".to_owned(), group.clone())])
            }
            _ => HashMap::new(),
        };
        details.set_error_info(reason, DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

/// The one table: every error to its code, ErrorInfo reason and extra details.
fn classify(error: &Error) -> (Code, &'static str, ErrorDetails) {
    let none = ErrorDetails::new;
    match error {
        Error::InvalidArgument(violations) => (
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            bad_request(violations),
        ),
        Error::Forbidden(_) => (Code::PermissionDenied, "ENDPOINT_DENIED", none()),
        Error::CursorExpired { .. } => (Code::Aborted, "CURSOR_EXPIRED", none()),
        Error::ResultCapReached { .. } => (Code::Aborted, "RESULT_CAP_REACHED", none()),
        Error::Close(close) => classify_close(close),
    }
}

fn classify_close(error: &CloseError) -> (Code, &'static str, ErrorDetails) {
    let none = ErrorDetails::new;
    match error {
        CloseError::Status {
            method,
            status,
            field_errors,
            rate_limit,
            ..
        } => match status {
            400 => {
                let violations: Vec<FieldViolation> = field_errors
                    .iter()
                    .map(|(field, message)| FieldViolation::new(field, message))
                    .collect();
                (
                    Code::InvalidArgument,
                    "CLOSE_REJECTED_REQUEST",
                    bad_request(&violations),
                )
            }
            401 => (Code::Internal, "CLOSE_CREDENTIALS_REJECTED", none()),
            402 => (Code::FailedPrecondition, "CLOSE_PLAN_LIMIT", none()),
            403 => (Code::PermissionDenied, "CLOSE_PERMISSION_DENIED", none()),
            404 => (Code::NotFound, "NOT_FOUND", none()),
            405 | 415 => (Code::Internal, "CLOSE_REJECTED_REQUEST_SHAPE", none()),
            409 => (Code::Aborted, "CLOSE_CONFLICT", none()),
            429 => {
                let wait = rate_limit.wait_hint().unwrap_or(Duration::from_secs(1));
                (Code::ResourceExhausted, "RATE_LIMITED", retry(wait))
            }
            500..=599 if CloseError::outcome_unknown(method) => {
                (Code::Unknown, "OUTCOME_UNKNOWN", none())
            }
            500..=599 => (Code::Unavailable, "CLOSE_UNAVAILABLE", none()),
            _ => (Code::Internal, "CLOSE_UNEXPECTED_STATUS", none()),
        },
        CloseError::Connect(_) => (Code::Unavailable, "CLOSE_UNREACHABLE", none()),
        CloseError::Transport { method, .. } if CloseError::outcome_unknown(method) => {
            (Code::Unknown, "OUTCOME_UNKNOWN", none())
        }
        CloseError::Transport {
            timed_out: true, ..
        } => (Code::DeadlineExceeded, "CLOSE_TIMEOUT", none()),
        CloseError::Transport { .. } => (Code::Unavailable, "CLOSE_UNAVAILABLE", none()),
        CloseError::NoTimeLeft => (Code::DeadlineExceeded, "DEADLINE_TOO_SHORT", none()),
        CloseError::RequestTooLarge { .. } => (
            Code::InvalidArgument,
            "REQUEST_TOO_LARGE",
            bad_request(&[FieldViolation::new("body", error.to_string())]),
        ),
        CloseError::ResponseTooLarge { .. } => {
            (Code::ResourceExhausted, "RESPONSE_TOO_LARGE", none())
        }
        CloseError::BadResponse(_) => (Code::Internal, "CLOSE_BAD_RESPONSE", none()),
        CloseError::LimiterUnavailable(_) => (Code::Unavailable, "LIMITER_UNAVAILABLE", none()),
        CloseError::Throttled { retry_after, .. } => {
            (Code::ResourceExhausted, "RATE_LIMITED", retry(*retry_after))
        }
    }
}

fn bad_request(violations: &[FieldViolation]) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    details
}

fn retry(wait: Duration) -> ErrorDetails {
    ErrorDetails::with_retry_info(Some(wait))
}

/// Shorthand for handlers: one invalid field.
pub fn invalid(field: &str, description: impl Into<String>) -> Error {
    Error::InvalidArgument(vec![FieldViolation::new(field, description)])
}

#[cfg(test)]
mod tests;
