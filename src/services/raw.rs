//! RawService: one guarded pass-through to any Close endpoint without a typed RPC.
//!
//! The guard runs before anything is sent: the method must be GET, POST, PUT or DELETE; the
//! path must be a plain relative path (no traversal, no URL, no encoding tricks); then the
//! allow / deny policy decides. Close's 4xx answers (other than 401 and 429) come back as data.

use http::Method;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::convert::{from_pb_value, to_pb_value};
use super::validate::{MAX_SHORT_LEN, Violations};
use super::{Gateway, context};
use crate::close::CloseRequest;
use crate::error::Error;
use crate::proto::close::v1::raw_service_server::RawService as Api;
use crate::proto::close::v1::*;

/// Longest path we forward; Close's longest are well under 200 bytes.
const MAX_PATH_LEN: usize = 1024;
/// Most query parameters in one call.
const MAX_QUERY_PARAMS: usize = 64;
/// Longest query parameter name.
const MAX_QUERY_KEY_LEN: usize = 128;

pub struct RawService {
    gateway: Gateway,
}

impl RawService {
    pub fn new(gateway: Gateway) -> Self {
        RawService { gateway }
    }
}

#[tonic::async_trait]
impl Api for RawService {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let method = match parse_method(&req.method) {
            Ok(method) => Some(method),
            Err(problem) => {
                v.add("method", problem);
                None
            }
        };
        let path = match normalize_path(&req.path) {
            Ok(path) => Some(path),
            Err(problem) => {
                v.add("path", problem);
                None
            }
        };
        let query = check_query(&mut v, &req.query);
        v.finish()?;
        let (Some(method), Some(path)) = (method, path) else {
            return Err(Status::internal(
                "validation passed without method and path",
            ));
        };
        if !self.gateway.raw_policy.permits(&method, &path) {
            tracing::info!(%method, %path, caller = %ctx.caller, "raw call denied by policy");
            let message = format!("{method} {path} is not allowed through RawService");
            return Err(Error::Forbidden(message).into());
        }
        let mut upstream = CloseRequest::new(method.clone(), path.clone());
        upstream.query = query;
        upstream.body = match req.body.as_ref().map(from_pb_value) {
            None | Some(Value::Null) => None,
            Some(body) => Some(body),
        };
        let response = self
            .gateway
            .client
            .call(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        tracing::info!(%method, %path, status = response.status, caller = %ctx.caller, "raw call");
        Ok(Response::new(CallResponse {
            http_status: i32::from(response.status),
            body: Some(to_pb_value(response.body)),
        }))
    }
}

fn parse_method(text: &str) -> Result<Method, &'static str> {
    match text.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "DELETE" => Ok(Method::DELETE),
        "" => Err("is required: GET, POST, PUT or DELETE"),
        _ => Err("must be GET, POST, PUT or DELETE"),
    }
}

/// A caller's path to the form Close and the policy see: `/seg/seg/`. Anything that could
/// leave `/api/v1`, reach another host or be decoded differently by a proxy is refused.
pub fn normalize_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("is required, e.g. \"/opportunity/\"".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("is longer than {MAX_PATH_LEN} bytes"));
    }
    if path.contains("://") || path.starts_with("//") {
        return Err("must be a path relative to /api/v1, not a URL or host".into());
    }
    for c in path.chars() {
        let problem = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '~' | '/' => continue,
            '%' => {
                "must not hold '%': percent-encoding is refused so that no encoded separator \
                 (%2F, %2E, %5C, %00) can change the path after the check"
            }
            '?' | '#' => "must not hold '?' or '#': put query parameters in `query`",
            '\\' => "must not hold '\\'",
            '@' | ':' => "must not name a user, host or scheme",
            c if c.is_control() => "must not hold control characters",
            c if c.is_whitespace() => "must not hold whitespace",
            _ => "may hold only letters, digits, '-', '_', '.', '~' and '/'",
        };
        return Err(problem.into());
    }
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return Err("must name an endpoint, e.g. \"/opportunity/\"".into());
    }
    let segments: Vec<&str> = inner.split('/').collect();
    for segment in &segments {
        match *segment {
            "" => return Err("must not hold empty segments (\"//\")".into()),
            "." | ".." => return Err("must not hold \".\" or \"..\" segments".into()),
            _ => {}
        }
    }
    if segments.first() == Some(&"api") {
        return Err("is relative to /api/v1: leave that prefix out".into());
    }
    Ok(format!("/{}/", segments.join("/")))
}

/// Query parameters, sorted by name so that requests are reproducible.
fn check_query(
    v: &mut Violations,
    query: &std::collections::HashMap<String, String>,
) -> Vec<(String, String)> {
    if query.len() > MAX_QUERY_PARAMS {
        v.add(
            "query",
            format!("has more than {MAX_QUERY_PARAMS} parameters"),
        );
    }
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    pairs.sort();
    for (key, value) in &pairs {
        let field = format!("query[{key}]");
        if key.is_empty() || key.len() > MAX_QUERY_KEY_LEN {
            v.add(
                &field,
                format!("name must be 1 to {MAX_QUERY_KEY_LEN} bytes"),
            );
        }
        if key.chars().any(char::is_control) || value.chars().any(char::is_control) {
            v.add(&field, "must not hold control characters");
        }
        v.max_len(&field, value, MAX_SHORT_LEN);
    }
    pairs
}

/// Which paths and methods RawService may reach: a deny list (wins) and an allow list (empty
/// allows everything not denied). Each rule is a path prefix, optionally preceded by a method.
/// Prefixes match whole segments and ignore case: `/api_key` covers `/API_KEY/x/` but not
/// `/api_keys/`.
#[derive(Debug, Clone)]
pub struct RawPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

/// The default is the production default: deny [`crate::config::DEFAULT_RAW_DENY`].
impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            allow: Vec::new(),
            deny: parse_rules("RAW_DENY", crate::config::DEFAULT_RAW_DENY).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    method: Option<Method>,
    /// Lower case, starting and ending with `/`.
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

    /// Whether `method` may reach `path` (normalized by [`normalize_path`]).
    pub fn permits(&self, method: &Method, path: &str) -> bool {
        let path = path.to_ascii_lowercase();
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
                let method = parse_method(method)
                    .map_err(|_| error("method must be GET, POST, PUT or DELETE"))?;
                (Some(method), prefix.trim())
            }
            None => (None, item),
        };
        if !prefix.starts_with('/') {
            return Err(error("path prefix must start with /"));
        }
        let mut prefix = prefix.to_ascii_lowercase();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        rules.push(Rule { method, prefix });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path("opportunity").unwrap(), "/opportunity/");
        assert_eq!(normalize_path("/user/me").unwrap(), "/user/me/");
        assert_eq!(
            normalize_path("/lead/lead_abc/").unwrap(),
            "/lead/lead_abc/"
        );
        assert_eq!(normalize_path("a.b/c~d").unwrap(), "/a.b/c~d/");
    }

    #[test]
    fn dangerous_paths_are_refused() {
        for bad in [
            "",
            "/",
            "//",
            "../api_key/",
            "/lead/../api_key/",
            "/lead/./x/",
            "..",
            "%2e%2e/",
            "/lead%2F..%2Fapi_key/",
            "/lead/%5c/",
            "/lead/%00/",
            "http://evil/",
            "https://evil.example/api/v1/lead/",
            "//evil/",
            "lead/\u{0}",
            "lead/\n",
            "lead /x",
            "lead\t/",
            "/lead/?x=1",
            "/lead/#x",
            "\\\\evil\\share",
            "/lead\\..\\api_key/",
            "user@evil/",
            "evil:80/",
            "/lead//x/",
            "/lead/é/",
            "/api/v1/lead/",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a/".repeat(MAX_PATH_LEN);
        assert!(normalize_path(&long).is_err());
    }

    #[test]
    fn percent_is_refused_with_a_reason() {
        let problem = normalize_path("%2F").unwrap_err();
        assert!(problem.contains("percent-encoding"), "{problem}");
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method("get").unwrap(), Method::GET);
        assert_eq!(parse_method("Delete").unwrap(), Method::DELETE);
        for bad in ["", "PATCH", "HEAD", "TRACE", "OPTIONS", "CONNECT", "GET "] {
            assert!(parse_method(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn default_policy_denies_dangerous_endpoints() {
        let policy = RawPolicy::default();
        for path in [
            "/api_key/",
            "/API_KEY/abc/",
            "/webhook/",
            "/webhook/whsub_1/",
            "/organization/orga_1/",
            "/membership/",
            "/role/",
            "/bulk_action/delete/",
            "/me/api_key/",
        ] {
            assert!(!policy.permits(&Method::GET, path), "{path} permitted");
            assert!(!policy.permits(&Method::DELETE, path), "{path} permitted");
        }
        for path in [
            "/opportunity/",
            "/me/",
            "/user/",
            "/roles_like/",
            "/webhooks/",
        ] {
            assert!(policy.permits(&Method::GET, path), "{path} denied");
        }
    }

    #[test]
    fn parsed_default_equals_default() {
        let parsed = RawPolicy::parse("", crate::config::DEFAULT_RAW_DENY).unwrap();
        assert_eq!(parsed.deny, RawPolicy::default().deny);
        assert!(!parsed.deny.is_empty());
    }

    #[test]
    fn allow_and_method_rules() {
        let policy = RawPolicy::parse("GET /opportunity, /user/", "DELETE /user/").unwrap();
        assert!(policy.permits(&Method::GET, "/opportunity/oppo_1/"));
        assert!(!policy.permits(&Method::POST, "/opportunity/"));
        assert!(!policy.permits(&Method::GET, "/opportunity_x/"));
        assert!(policy.permits(&Method::PUT, "/user/user_1/"));
        assert!(!policy.permits(&Method::DELETE, "/user/user_1/"));
        assert!(!policy.permits(&Method::GET, "/lead/"));
    }

    #[test]
    fn malformed_rules_are_named() {
        let error = RawPolicy::parse("PATCH /lead/", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "RAW_ALLOW: rule \"PATCH /lead/\" is malformed: method must be GET, POST, PUT or DELETE"
        );
        let error = RawPolicy::parse("", "lead/").unwrap_err();
        assert!(error.to_string().starts_with("RAW_DENY: "), "{error}");
    }
}
