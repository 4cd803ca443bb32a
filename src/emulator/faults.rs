//! Injected failures: which one a request gets, and what the failed answers look like.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

use super::config::Faults;

/// The failure one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Drop the connection without answering.
    Reset,
    /// Answer 502, 503 or 504.
    Status(StatusCode),
}

/// Draws the failure of one request.
pub(crate) fn roll(faults: &Faults) -> Fault {
    if faults.reset_rate > 0.0 && rand::random::<f64>() < faults.reset_rate {
        return Fault::Reset;
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        let status = match rand::random_range(0..3u8) {
            0 => StatusCode::BAD_GATEWAY,
            1 => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::GATEWAY_TIMEOUT,
        };
        return Fault::Status(status);
    }
    Fault::None
}

/// What a load balancer in front of Close answers: an HTML page for 502, JSON for 503, and
/// nothing for 504.
pub(crate) fn failed(status: StatusCode) -> Response<Body> {
    let (content_type, body) = match status {
        StatusCode::BAD_GATEWAY => (
            Some("text/html"),
            "<html><head><title>502 Bad Gateway</title></head><body>\
             <center><h1>502 Bad Gateway</h1></center></body></html>",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            Some("application/json"),
            r#"{"error": "Service temporarily unavailable, please try again later."}"#,
        ),
        _ => (None, ""),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        let value = HeaderValue::from_static(ct);
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
