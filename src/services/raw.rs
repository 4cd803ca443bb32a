//! RawService: placeholder until implemented.

use tonic::{Request, Response, Status};

use super::Gateway;
use crate::proto::close::v1::raw_service_server::RawService as Api;
use crate::proto::close::v1::*;

pub struct RawService {
    #[allow(dead_code)]
    gateway: Gateway,
}

impl RawService {
    pub fn new(gateway: Gateway) -> Self {
        RawService { gateway }
    }
}

#[tonic::async_trait]
impl Api for RawService {
    async fn call(&self, _request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        Err(Status::unimplemented("Call"))
    }
}

/// Which paths and methods RawService may reach: a deny list (wins) and an allow list (empty
/// allows everything not denied). Each rule is a path prefix, optionally preceded by a method.
#[derive(Debug, Default, Clone)]
pub struct RawPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    method: Option<http::Method>,
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{setting}: rule \"{rule}\" is malformed: {reason}")]
pub struct PolicyError {
    setting: &'static str,
    rule: String,
    reason: &'static str,
}

impl RawPolicy {
    /// Parses RAW_ALLOW and RAW_DENY: comma-separated `"/prefix/"` or `"METHOD /prefix/"`.
    pub fn parse(allow: &str, deny: &str) -> Result<Self, PolicyError> {
        Ok(RawPolicy {
            allow: parse_rules("RAW_ALLOW", allow)?,
            deny: parse_rules("RAW_DENY", deny)?,
        })
    }

    /// Whether `method` may reach `path` (normalized: leading and trailing `/`).
    pub fn permits(&self, method: &http::Method, path: &str) -> bool {
        let matches = |rule: &Rule| {
            rule.method.as_ref().is_none_or(|m| m == method) && path.starts_with(&rule.prefix)
        };
        if self.deny.iter().any(matches) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(matches)
    }
}

fn parse_rules(setting: &'static str, text: &str) -> Result<Vec<Rule>, PolicyError> {
    let mut rules = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let error = |reason| PolicyError {
            setting,
            rule: item.to_owned(),
            reason,
        };
        let (method, prefix) = match item.split_once(char::is_whitespace) {
            Some((method, prefix)) => {
                let method = method.to_ascii_uppercase();
                if !["GET", "POST", "PUT", "DELETE"].contains(&method.as_str()) {
                    return Err(error("method must be GET, POST, PUT or DELETE"));
                }
                let method =
                    http::Method::from_bytes(method.as_bytes()).map_err(|_| error("bad method"))?;
                (Some(method), prefix.trim())
            }
            None => (None, item),
        };
        if !prefix.starts_with('/') {
            return Err(error("path prefix must start with /"));
        }
        rules.push(Rule {
            method,
            prefix: prefix.to_owned(),
        });
    }
    Ok(rules)
}
