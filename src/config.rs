//! Configuration from flags and environment variables; `close-gateway --help` documents each.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::close::{ApiKey, ClientConfig};
use crate::limiter::{GroupTable, LimiterConfig};

pub const DEFAULT_BASE_URL: &str = "https://api.close.com/api/v1";

/// Paths RawService refuses unless explicitly allowed: keys, webhooks, organization, members,
/// roles and bulk actions can hurt the whole organization and have no business in a pass-through.
pub const DEFAULT_RAW_DENY: &str = "/api_key/,/webhook/,/organization/,/membership/,/role/,\
/bulk_action/,/export/,/me/api_key/,/oauth2/,/integration_link/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// close-gateway: the one gRPC door to the Close CRM API.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Config {
    /// Start an in-process Close emulator loaded with sample data and use it instead of Close.
    /// No credentials needed. For trying the gateway locally; never in production.
    #[arg(long, env = "CLOSE_GATEWAY_DEV")]
    pub dev: bool,

    /// Address the gRPC server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,

    /// Close API key (HTTP Basic username); several keys of one organization, comma-separated,
    /// form a pool. Prefer CLOSE_API_KEY_FILE in production.
    #[arg(long, env = "CLOSE_API_KEY", hide_env_values = true)]
    pub close_api_key: Option<Secret>,

    /// File holding the Close API key (e.g. a mounted Kubernetes secret); one key per line for
    /// a pool. Surrounding whitespace is ignored.
    #[arg(long, env = "CLOSE_API_KEY_FILE", conflicts_with = "close_api_key")]
    pub close_api_key_file: Option<PathBuf>,

    /// Base URL of Close's API.
    #[arg(long, env = "CLOSE_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub close_base_url: String,

    /// Upper bound of one request to Close; a shorter caller deadline shortens it.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Upper bound of establishing a connection to Close.
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Largest JSON body sent to Close, in bytes.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 1 << 20)]
    pub max_request_bytes: usize,

    /// Largest body accepted from Close, in bytes.
    #[arg(long, env = "MAX_RESPONSE_BYTES", default_value_t = 16 << 20)]
    pub max_response_bytes: usize,

    /// Largest gRPC message accepted from or sent to callers, in bytes.
    #[arg(long, env = "MAX_GRPC_MESSAGE_BYTES", default_value_t = 16 << 20)]
    pub max_grpc_message_bytes: usize,

    /// How long in-flight calls may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// RawService: comma-separated path prefixes (optionally "METHOD /prefix/") allowed.
    /// Empty allows every path not denied.
    #[arg(long, env = "RAW_ALLOW", default_value = "")]
    pub raw_allow: String,

    /// RawService: comma-separated path prefixes (optionally "METHOD /prefix/") denied. Deny
    /// wins over allow.
    #[arg(long, env = "RAW_DENY", default_value = DEFAULT_RAW_DENY)]
    pub raw_deny: String,

    /// Address of the Prometheus endpoint (`GET /metrics`). Unset: no metrics endpoint.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Redis shared by every replica for the rate limiter, e.g. `redis://redis:6379/0`.
    /// Unset (and no REDIS_CLUSTER_NODES): an in-process limiter, right for one replica only.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Redis Cluster seed nodes, comma-separated (`redis://a:6379,redis://b:6379`). Takes the
    /// place of REDIS_URL.
    #[arg(
        long,
        env = "REDIS_CLUSTER_NODES",
        hide_env_values = true,
        conflicts_with = "redis_url"
    )]
    pub redis_cluster_nodes: Option<Secret>,

    /// JSON file of endpoint groups (method + path pattern → group, default limits); see
    /// docs/limiter.md. Unset: the built-in table.
    #[arg(long, env = "LIMITER_GROUPS_FILE")]
    pub limiter_groups_file: Option<PathBuf>,

    /// Fraction of each learned limit left unused, 0 to 0.5.
    #[arg(long, env = "LIMITER_SAFETY_MARGIN", default_value_t = 0.02)]
    pub limiter_safety_margin: f64,

    /// Most calls waiting per group on this replica; more are rejected at once.
    #[arg(long, env = "LIMITER_QUEUE_BOUND", default_value_t = 10_000)]
    pub limiter_queue_bound: usize,

    /// Organization-wide limit per group when several keys are pooled. Unset: 3 × the
    /// smallest learned key limit.
    #[arg(long, env = "CLOSE_ORG_LIMIT")]
    pub close_org_limit: Option<u64>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in tracing-subscriber's EnvFilter syntax (e.g. "info,close_gateway=debug").
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// A setting that must not be printed (an API key, a Redis URL with a password): `Debug`
/// shows a placeholder, so `{:?}` of the whole configuration is safe to log.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("CLOSE_API_KEY or CLOSE_API_KEY_FILE is required (or --dev to use the emulator)")]
    MissingApiKey,
    #[error("CLOSE_API_KEY_FILE {path}: {source}")]
    ApiKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("LIMITER_GROUPS_FILE: {0}")]
    GroupsFile(String),
    #[error("{setting} is malformed: {reason}")]
    Malformed {
        setting: &'static str,
        reason: String,
    },
}

impl Config {
    /// The Close client's settings; `base_url` and `api_key` may be overridden by `--dev`.
    pub fn client_config(&self) -> Result<ClientConfig, ConfigError> {
        let api_keys = self.api_keys()?;
        check_base_url(&self.close_base_url)?;
        Ok(ClientConfig {
            base_url: self.close_base_url.clone(),
            api_keys,
            timeout: self.upstream_timeout,
            connect_timeout: self.connect_timeout,
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes,
        })
    }

    /// The limiter's settings for the given key pool.
    pub fn limiter_config(&self, keys: &[ApiKey]) -> Result<LimiterConfig, ConfigError> {
        if !(0.0..=0.5).contains(&self.limiter_safety_margin) {
            return Err(ConfigError::Malformed {
                setting: "LIMITER_SAFETY_MARGIN",
                reason: "must be between 0 and 0.5".to_owned(),
            });
        }
        let groups = match &self.limiter_groups_file {
            Some(path) => {
                GroupTable::from_file(path).map_err(|e| ConfigError::GroupsFile(e.to_string()))?
            }
            None => GroupTable::default(),
        };
        let keys: Vec<&str> = keys.iter().map(ApiKey::expose).collect();
        Ok(LimiterConfig {
            groups,
            safety_margin: self.limiter_safety_margin,
            queue_bound: self.limiter_queue_bound,
            org_limit: self.close_org_limit,
            ..LimiterConfig::default()
        }
        .with_api_keys(&keys))
    }

    /// One key, or a pool of keys of one organization: comma-separated in CLOSE_API_KEY, one
    /// per line in CLOSE_API_KEY_FILE.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, ConfigError> {
        let text = match (&self.close_api_key, &self.close_api_key_file) {
            (Some(key), _) => key.expose().replace(',', "\n"),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::ApiKeyFile {
                    path: path.clone(),
                    source,
                })?
            }
            (None, None) => return Err(ConfigError::MissingApiKey),
        };
        let mut keys = Vec::new();
        for (index, key) in text
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
        {
            // Never echo a key: say which one is wrong and why.
            if key
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == ':')
            {
                return Err(ConfigError::Malformed {
                    setting: "CLOSE_API_KEY",
                    reason: format!(
                        "key {} contains whitespace, a control character or ':'",
                        index + 1
                    ),
                });
            }
            if keys.iter().any(|k: &ApiKey| k.expose() == key) {
                return Err(ConfigError::Malformed {
                    setting: "CLOSE_API_KEY",
                    reason: format!("key {} is listed twice", index + 1),
                });
            }
            keys.push(ApiKey::new(key));
        }
        if keys.is_empty() {
            return Err(ConfigError::MissingApiKey);
        }
        Ok(keys)
    }
}

fn check_base_url(url: &str) -> Result<(), ConfigError> {
    let malformed = |reason: &str| ConfigError::Malformed {
        setting: "CLOSE_BASE_URL",
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| malformed(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(malformed("scheme must be http or https"));
    }
    if parsed.host_str().is_none() {
        return Err(malformed("no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(malformed("must not have a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("close-gateway").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = parse(&[
            "--close-api-key",
            "k-secret-1",
            "--redis-url",
            "redis://:pw-secret@r:6379",
        ]);
        let shown = format!("{config:?} {:?}", config.client_config().unwrap());
        assert!(!shown.contains("k-secret-1"), "{shown}");
        assert!(!shown.contains("pw-secret"), "{shown}");
    }

    #[test]
    fn key_pools_and_bad_keys() {
        let keys = parse(&["--close-api-key", "a1, b2"]).api_keys().unwrap();
        let keys: Vec<&str> = keys.iter().map(ApiKey::expose).collect();
        assert_eq!(keys, ["a1", "b2"]);
        let error = parse(&["--close-api-key", "a1,a1"]).api_keys().unwrap_err();
        assert_eq!(
            error.to_string(),
            "CLOSE_API_KEY is malformed: key 2 is listed twice"
        );
        let error = parse(&[]).client_config().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("CLOSE_API_KEY or CLOSE_API_KEY_FILE is required")
        );
    }

    #[test]
    fn malformed_settings_name_themselves() {
        let error = parse(&["--close-api-key", "k", "--close-base-url", "ftp://x"])
            .client_config()
            .unwrap_err();
        assert!(
            error.to_string().starts_with("CLOSE_BASE_URL is malformed"),
            "{error}"
        );
        let error = parse(&["--limiter-safety-margin", "0.9"])
            .limiter_config(&[])
            .unwrap_err();
        assert!(
            error.to_string().starts_with("LIMITER_SAFETY_MARGIN"),
            "{error}"
        );
        let error =
            Config::try_parse_from(["close-gateway", "--upstream-timeout", "soon"]).unwrap_err();
        assert!(error.to_string().contains("--upstream-timeout"), "{error}");
    }
}
