//! `/_emulator/...`: control endpoints without auth, for tests and benchmarks running out of
//! process. They are neither recorded nor rate-limited.
//!
//! - `GET /_emulator/stats`: [`Stats`](super::Stats) as JSON.
//! - `GET /_emulator/requests`, `DELETE /_emulator/requests`: the recorded requests.
//! - `PUT /_emulator/limits/{group}` `{"limit": n}`: a bucket's per-key limit, by group or
//!   bucket name; 404 for an unknown name.
//! - `GET`/`PUT /_emulator/faults` `{"latency_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::Faults;
use super::state::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/requests", get(requests).delete(clear))
        .route("/_emulator/limits/{group}", put(set_limit))
        .route("/_emulator/faults", get(faults).put(set_faults))
}

async fn stats(State(s): State<Shared>) -> Response {
    Json(lock(&s.limiter).stats()).into_response()
}

async fn requests(State(s): State<Shared>) -> Response {
    Json(lock(&s.recorded).clone()).into_response()
}

async fn clear(State(s): State<Shared>) -> StatusCode {
    lock(&s.recorded).clear();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct LimitBody {
    limit: u64,
}

async fn set_limit(
    State(s): State<Shared>,
    Path(group): Path<String>,
    Json(body): Json<LimitBody>,
) -> Response {
    match lock(&s.limiter).set_limit(&group, body.limit) {
        Some(bucket) => {
            Json(json!({"group": group, "bucket": bucket, "limit": body.limit})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown group"})),
        )
            .into_response(),
    }
}

/// [`Faults`] as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct FaultsBody {
    latency_ms: u64,
    error_rate: f64,
    reset_rate: f64,
}

async fn faults(State(s): State<Shared>) -> Json<FaultsBody> {
    let f = lock(&s.faults).clone();
    Json(FaultsBody {
        latency_ms: u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX),
        error_rate: f.error_rate,
        reset_rate: f.reset_rate,
    })
}

async fn set_faults(State(s): State<Shared>, Json(body): Json<FaultsBody>) -> Json<FaultsBody> {
    *lock(&s.faults) = Faults {
        latency: Duration::from_millis(body.latency_ms),
        error_rate: body.error_rate,
        reset_rate: body.reset_rate,
    };
    Json(body)
}
