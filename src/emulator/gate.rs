//! The path of every request: record it, authenticate, rate-limit, inject faults, then
//! dispatch to the API handlers and announce the limit on the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::faults::{self, Fault};
use super::limits::{self, Verdict};
use super::reply::{ApiError, Ctx};
use super::state::{RecordedRequest, Shared, lock};

/// Werkzeug's 401 text, which Close answers for a missing or unknown key.
pub const UNAUTHORIZED_TEXT: &str = "The server could not verify that you are authorized to \
    access the URL requested. You either supplied the wrong credentials (e.g. a bad \
    password), or your browser doesn't understand how to supply the credentials required.";

/// Request bodies above this are refused.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Lets a request drop its own connection: the server task watches `token` and, when it
/// fires, drops the connection; `reset` makes the socket close with RST.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnKill {
    pub token: CancellationToken,
    pub reset: Arc<AtomicBool>,
}

impl ConnKill {
    fn fire(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.token.cancel();
    }
}

enum Outcome {
    Reply(Response<Body>),
    Reset,
}

pub(crate) struct Gate {
    shared: Shared,
    api: TowerToHyperService<Router>,
    control: TowerToHyperService<Router>,
}

impl Gate {
    pub fn new(shared: Shared, api: Router, control: Router) -> Self {
        Gate {
            shared,
            api: TowerToHyperService::new(api),
            control: TowerToHyperService::new(control),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>, kill: &ConnKill) -> Response<Body> {
        let req = req.map(Body::new);
        if req.uri().path().starts_with("/_emulator/") {
            return call(&self.control, req).await;
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let query: Vec<(String, String)> = Query::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let json = parse_json(&bytes);
        let api_key = basic_user(&parts.headers);
        let mut record = RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: query.clone(),
            body: match &json {
                Ok(v) => v.clone(),
                Err(()) => Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            },
            api_key: api_key.clone(),
            status: 0,
        };
        let outcome = self.process(parts, bytes, query, json, api_key).await;
        match outcome {
            Outcome::Reply(response) => {
                record.status = response.status().as_u16();
                lock(&self.shared.recorded).push(record);
                response
            }
            Outcome::Reset => {
                tracing::debug!(path = %record.path, "emulator dropping connection");
                lock(&self.shared.recorded).push(record);
                kill.fire();
                // The server task drops this connection, and this future with it.
                std::future::pending().await
            }
        }
    }

    async fn process(
        &self,
        mut parts: axum::http::request::Parts,
        bytes: Bytes,
        params: Vec<(String, String)>,
        json: Result<Option<Value>, ()>,
        api_key: Option<String>,
    ) -> Outcome {
        let shared = &self.shared;
        let Some(path) = parts.uri.path().strip_prefix("/api/v1") else {
            return Outcome::Reply(ApiError::no_route().into_response());
        };
        let key = api_key.unwrap_or_default();
        let Some(caller) = shared.caller(&key) else {
            let denied = ApiError::Message(StatusCode::UNAUTHORIZED, UNAUTHORIZED_TEXT.into());
            return Outcome::Reply(denied.into_response());
        };
        let era = shared.config.era;
        let verdict = {
            let mut limiter = lock(&shared.limiter);
            let bucket = limiter.bucket_of(parts.method.as_str(), path);
            limiter.check(&bucket, &key, &caller.org, tokio::time::Instant::now())
        };
        let announce = match verdict {
            Verdict::Allow(announce) => announce,
            Verdict::Deny {
                announce,
                limit_type,
                bucket,
            } => {
                let body = shared.config.legacy_body;
                let response = limits::too_many(era, body, &announce, limit_type, &bucket);
                return Outcome::Reply(response);
            }
        };
        let faults = lock(&shared.faults).clone();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let fault = faults::roll(&faults);
        match fault {
            Fault::Reset => return Outcome::Reset,
            // The ingress failed before Close saw the request.
            Fault::Status(status) if status != StatusCode::GATEWAY_TIMEOUT => {
                return Outcome::Reply(faults::failed(status));
            }
            _ => {}
        }
        let Ok(body) = json else {
            let bad = ApiError::Message(StatusCode::BAD_REQUEST, "Invalid JSON body.".into());
            return Outcome::Reply(bad.into_response());
        };
        parts.extensions.insert(Ctx {
            caller,
            params,
            body,
        });
        let mut response = call(&self.api, Request::from_parts(parts, Body::from(bytes))).await;
        if let Fault::Status(status) = fault {
            // A 504: Close did the work, the ingress gave up waiting.
            return Outcome::Reply(faults::failed(status));
        }
        limits::announce(&mut response, era, &announce);
        Outcome::Reply(response)
    }
}

async fn call(router: &TowerToHyperService<Router>, req: Request<Body>) -> Response<Body> {
    match router.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `Ok(None)` for an empty body, `Err` for one that is not JSON.
fn parse_json(bytes: &Bytes) -> Result<Option<Value>, ()> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|_| ())
}

/// The username of a Basic `Authorization` header.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    Some(user.to_owned())
}
