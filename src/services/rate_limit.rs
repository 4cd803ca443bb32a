//! RateLimitService: what the shared limiter knows about each endpoint group.

use std::time::SystemTime;

use prost_types::Timestamp;
use tonic::{Request, Response, Status};

use super::Gateway;
use crate::limiter::{GroupSnapshot, LimitSource as Source};
use crate::proto::close::v1::rate_limit_service_server::RateLimitService as RateLimitApi;
use crate::proto::close::v1::*;

pub struct RateLimitService {
    gateway: Gateway,
}

impl RateLimitService {
    pub fn new(gateway: Gateway) -> Self {
        RateLimitService { gateway }
    }
}

#[tonic::async_trait]
impl RateLimitApi for RateLimitService {
    async fn get_rate_limits(
        &self,
        _request: Request<GetRateLimitsRequest>,
    ) -> Result<Response<GetRateLimitsResponse>, Status> {
        let groups = self
            .gateway
            .client
            .limiter()
            .snapshot()
            .into_iter()
            .map(group_message)
            .collect();
        Ok(Response::new(GetRateLimitsResponse { groups }))
    }
}

fn group_message(snapshot: GroupSnapshot) -> GroupRateLimit {
    let (source, learned_at) = match snapshot.source {
        Source::Default => (LimitSource::Default, None),
        Source::Learned { at } => (LimitSource::Learned, Some(timestamp(at))),
    };
    GroupRateLimit {
        group: snapshot.group,
        limit: snapshot.limit,
        window_seconds: snapshot.window.as_secs_f64(),
        source: source as i32,
        learned_at,
        estimated_remaining: snapshot.estimated_remaining,
        paused_until: snapshot.paused_until.map(timestamp),
        queue_depth_local: snapshot.queue_local.to_vec(),
        queue_depth_all: snapshot.queue_all.map(|q| q.to_vec()).unwrap_or_default(),
        throttled_total: snapshot.throttled,
        last_header: snapshot.last_header.unwrap_or_default(),
        suspected_shared_with: snapshot.suspected_shared_with,
        served_in: snapshot.served_in.unwrap_or_default(),
    }
}

fn timestamp(at: SystemTime) -> Timestamp {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}
