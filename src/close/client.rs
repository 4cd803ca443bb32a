//! The only HTTP client to Close. Every upstream request passes through [`CloseClient::call`],
//! the choke point where the shared rate limiter admits requests and learns from answers.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, Method};
use serde_json::Value;
use tokio::time::Instant;

use super::error::CloseError;
use super::ratelimit::RateLimitInfo;
use crate::limiter::{AcquireRequest, Limiter, LimiterConfig, LimiterError, Priority};

/// Time kept back from the caller's deadline so that our answer still reaches the caller.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// 429s retried for one call before giving up. Each retry first waits for the group to reopen,
/// so this only bounds a Close that keeps refusing without saying why.
const MAX_THROTTLE_RETRIES: u32 = 8;

/// A Close API key. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How the client reaches Close.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `https://api.close.com/api/v1`, no trailing slash needed.
    pub base_url: String,
    /// One key, or a pool of keys of one organization (the limiter spreads calls over them).
    pub api_keys: Vec<ApiKey>,
    /// Upper bound of one upstream request; the caller's deadline may shorten it.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
}

/// One request to Close. `path` is relative to the base URL and ends with `/`.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl CloseRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        CloseRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).body(body)
    }

    pub fn put(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PUT, path).body(body)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }
}

/// Who is calling and until when: taken from the gRPC request.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub deadline: Option<Instant>,
    pub priority: Priority,
    pub caller: String,
}

/// Close's answer: any status that is not an error at the transport level.
#[derive(Debug, Clone)]
pub struct CloseResponse {
    pub status: u16,
    /// The JSON body; `Null` when the body was empty.
    pub body: Value,
    pub rate_limit: RateLimitInfo,
}

#[derive(Clone)]
pub struct CloseClient {
    http: reqwest::Client,
    config: ClientConfig,
    limiter: Limiter,
}

impl fmt::Debug for CloseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloseClient {
    /// A client with an in-process limiter: right for tests and a single replica.
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        let keys: Vec<&str> = config.api_keys.iter().map(ApiKey::expose).collect();
        let limiter = Limiter::in_process(LimiterConfig::default().with_api_keys(&keys));
        Self::with_limiter(config, limiter)
    }

    /// A client whose every request is admitted by `limiter` (shared through Redis in
    /// production).
    pub fn with_limiter(config: ClientConfig, limiter: Limiter) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("close-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(CloseClient {
            http,
            config,
            limiter,
        })
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Sends a request and returns Close's answer unless it is one no caller can use as data:
    /// 401, 429 and 5xx answers and transport failures are errors. Other 4xx answers are
    /// returned so that `RawService` can pass them through; typed RPCs use [`Self::json`].
    ///
    /// This is the choke point: the limiter admits the request into its endpoint group first,
    /// learns from the answer after, and a 429 (which Close did not process, so it is safe to
    /// replay for every method) is retried once the group reopens, while the deadline allows.
    pub async fn call(
        &self,
        request: &CloseRequest,
        ctx: &CallContext,
    ) -> Result<CloseResponse, CloseError> {
        let group = self
            .limiter
            .groups()
            .group_for(&request.method, &request.path)
            .to_owned();
        let mut throttled = 0;
        loop {
            // A call that cannot even be sent is the caller's deadline, not our throttling.
            self.timeout_for(ctx)?;
            let acquire = AcquireRequest {
                group: group.clone(),
                priority: ctx.priority,
                caller: ctx.caller.clone(),
                deadline: ctx.deadline,
            };
            let permit = self
                .limiter
                .acquire(acquire)
                .await
                .map_err(|e| limiter_error(&group, e))?;
            let waited = permit.waited;
            let key = self.key(permit.key_index)?;
            let response = match self.send_once(request, ctx, key).await {
                Ok(response) => response,
                Err(error) => {
                    // No answer, nothing learned; observing frees the permit's slot.
                    self.limiter
                        .observe(permit, 0, &RateLimitInfo::default())
                        .await;
                    record(&group, "error");
                    return Err(error);
                }
            };
            let status = response.status;
            record(&group, status_class(status));
            tracing::debug!(
                group = %group,
                method = %request.method,
                path = %request.path,
                status,
                waited_ms = waited.as_millis() as u64,
                remaining = response.rate_limit.remaining,
                "close call"
            );
            self.limiter
                .observe(permit, status, &response.rate_limit)
                .await;
            if status == 429 {
                throttled += 1;
                tracing::warn!(
                    group = %group,
                    path = %request.path,
                    reset = ?response.rate_limit.wait_hint(),
                    attempt = throttled,
                    "close answered 429"
                );
                if throttled <= MAX_THROTTLE_RETRIES {
                    continue;
                }
            }
            if status == 401 || status == 429 || status >= 500 {
                return Err(CloseError::from_status(
                    request.method.clone(),
                    &request.path,
                    status,
                    &response.body,
                    response.rate_limit,
                ));
            }
            return Ok(response);
        }
    }

    /// The pool's key for a permit; configuration guarantees at least one key.
    fn key(&self, index: usize) -> Result<&ApiKey, CloseError> {
        let keys = &self.config.api_keys;
        keys.get(index)
            .or(keys.first())
            .ok_or_else(|| CloseError::Connect("no API key configured".to_owned()))
    }

    /// Sends a request and returns the body of a 2xx answer; any other status is an error.
    pub async fn json(
        &self,
        request: &CloseRequest,
        ctx: &CallContext,
    ) -> Result<Value, CloseError> {
        let response = self.call(request, ctx).await?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        Err(CloseError::from_status(
            request.method.clone(),
            &request.path,
            response.status,
            &response.body,
            response.rate_limit,
        ))
    }

    async fn send_once(
        &self,
        request: &CloseRequest,
        ctx: &CallContext,
        key: &ApiKey,
    ) -> Result<CloseResponse, CloseError> {
        let timeout = self.timeout_for(ctx)?;
        let url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            request.path
        );
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .basic_auth(key.expose(), Some(""))
            .header(http::header::ACCEPT, "application/json")
            .timeout(timeout);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            let bytes =
                serde_json::to_vec(body).map_err(|e| CloseError::BadResponse(e.to_string()))?;
            if bytes.len() > self.config.max_request_bytes {
                return Err(CloseError::RequestTooLarge {
                    size: bytes.len(),
                    limit: self.config.max_request_bytes,
                });
            }
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let started = Instant::now();
        let mut response = builder
            .send()
            .await
            .map_err(|e| transport_error(request, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self.read_body(request, &mut response).await?;
        let mut rate_limit = RateLimitInfo::from_headers(&headers);
        if status == 429 {
            rate_limit.merge_legacy_body(&body);
        }
        metrics::histogram!("close_gateway_upstream_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(CloseResponse {
            status,
            body,
            rate_limit,
        })
    }

    /// The smaller of the configured timeout and what the caller's deadline leaves.
    fn timeout_for(&self, ctx: &CallContext) -> Result<Duration, CloseError> {
        let Some(deadline) = ctx.deadline else {
            return Ok(self.config.timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let left = left.saturating_sub(DEADLINE_MARGIN);
        if left.is_zero() {
            return Err(CloseError::NoTimeLeft);
        }
        Ok(left.min(self.config.timeout))
    }

    async fn read_body(
        &self,
        request: &CloseRequest,
        response: &mut reqwest::Response,
    ) -> Result<Value, CloseError> {
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len as usize > limit)
        {
            return Err(CloseError::ResponseTooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(request, e))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(CloseError::ResponseTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(parse_body(&bytes, response.headers()))
    }
}

/// Empty bodies are `Null`; bodies that are not JSON (an ingress error page) are kept as a
/// string so that error messages can still show them.
fn parse_body(bytes: &[u8], _headers: &HeaderMap) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => {
            Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned())
        }
    }
}

fn transport_error(request: &CloseRequest, error: reqwest::Error) -> CloseError {
    if error.is_connect() {
        return CloseError::Connect(error_chain(&error));
    }
    CloseError::Transport {
        method: request.method.clone(),
        path: request.path.clone(),
        detail: error_chain(&error),
        timed_out: error.is_timeout(),
    }
}

/// reqwest's top-level message hides the cause ("error sending request"): show the chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A refusal of the limiter as the caller will see it.
fn limiter_error(group: &str, error: LimiterError) -> CloseError {
    let message = error.to_string();
    match error {
        LimiterError::DeadlineUnreachable { retry_after, .. }
        | LimiterError::Paused { retry_after, .. } => CloseError::Throttled {
            group: group.to_owned(),
            retry_after,
            message,
        },
        // Overflow: the queue is a backlog of about a window or more; try again a bit later.
        LimiterError::QueueFull { .. } => CloseError::Throttled {
            group: group.to_owned(),
            retry_after: Duration::from_secs(1),
            message,
        },
        LimiterError::Backend(detail) => CloseError::LimiterUnavailable(detail),
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn record(group: &str, status: &'static str) {
    metrics::counter!(
        "close_gateway_upstream_requests_total",
        "group" => group.to_owned(),
        "status" => status
    )
    .increment(1);
}
