//! The gRPC services, one file per Close resource, and what they share: the call context
//! taken from gRPC metadata.

pub mod activity;
pub mod activity_convert;
pub mod convert;
pub mod lead;
pub mod mask;
pub mod rate_limit;
pub mod raw;
pub mod search;
pub mod task;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::close::{CallContext, CloseClient};
use crate::error::{Error, invalid};
use crate::limiter::Priority;

/// What every service needs: the one Close client and the RawService policy.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub client: CloseClient,
    pub raw_policy: Arc<raw::RawPolicy>,
}

/// Builds the upstream call context from the caller's metadata: deadline (`grpc-timeout`),
/// `x-priority` (high, normal, low; default normal) and `x-caller`.
pub fn context(metadata: &MetadataMap) -> Result<CallContext, Error> {
    let now = Instant::now();
    let deadline = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|timeout| now + timeout);
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().chars().take(64).collect::<String>())
            .unwrap_or_default()
    };
    let priority = match text("x-priority").as_str() {
        "" => Priority::default(),
        value => value
            .parse()
            .map_err(|_| invalid("x-priority", "must be high, normal or low"))?,
    };
    Ok(CallContext {
        deadline,
        priority,
        caller: text("x-caller"),
    })
}

/// `grpc-timeout` is at most 8 digits and a unit: H, M, S, m, u or n.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }
}
