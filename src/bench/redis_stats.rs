//! Redis as the benchmark sees it: emptied and its counters reset before each gateway phase,
//! and what the gateways sent counted during it.
//!
//! `INFO commandstats` counts every command Redis executed, those a Lua script runs
//! included (`TIME`, `HGETALL`, ... inside one `EVALSHA`), so it cannot say how many
//! commands the gateways sent. A `MONITOR` tap can: it shows each command with its origin,
//! `lua` for those run by a script. Both are reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::BenchError;

/// Sent by the benchmark after a phase; once the tap has seen it, it has seen everything
/// before it.
const MARKER: &str = "close-gateway-bench-end-of-phase";

/// Commands the benchmark itself sends; they are not the gateways'.
const OWN_COMMANDS: &[&str] = &["info", "config", "flushall", "echo", "monitor"];

/// A connection for resetting and reading Redis.
pub struct RedisStats {
    client: redis::Client,
    conn: MultiplexedConnection,
}

impl RedisStats {
    pub async fn connect(url: &str) -> Result<Self, BenchError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(RedisStats { client, conn })
    }

    /// Starts counting the commands clients send, from now on.
    pub async fn tap(&self) -> Result<Tap, BenchError> {
        let monitor = self.client.get_async_monitor().await?;
        let counts: Arc<Mutex<Sent>> = Arc::default();
        let (marker_tx, marker_rx) = watch::channel(false);
        let task = {
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut lines = monitor.into_on_message::<String>();
                while let Some(line) = lines.next().await {
                    if line.contains(MARKER) {
                        let _ = marker_tx.send(true);
                        continue;
                    }
                    let Some((from_script, command)) = parse_monitor_line(&line) else {
                        continue;
                    };
                    let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                    if !from_script && script_op(&line).as_deref() == Some("acquire") {
                        counts.asks += 1;
                    }
                    let map = if from_script {
                        &mut counts.by_scripts
                    } else {
                        &mut counts.by_clients
                    };
                    *map.entry(command).or_insert(0) += 1;
                }
            })
        };
        Ok(Tap {
            counts,
            marker: marker_rx,
            task,
        })
    }

    /// What the tap counted up to now; stops it.
    pub async fn untap(&mut self, mut tap: Tap) -> Result<Sent, BenchError> {
        redis::cmd("ECHO")
            .arg(MARKER)
            .query_async::<String>(&mut self.conn)
            .await?;
        let seen = tokio::time::timeout(Duration::from_secs(5), tap.marker.wait_for(|s| *s)).await;
        tap.task.abort();
        if !matches!(seen, Ok(Ok(_))) {
            return Err(BenchError::Control(
                "redis MONITOR tap fell behind".to_owned(),
            ));
        }
        let counts = tap.counts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(counts.clone())
    }

    /// Forgets every key (learned limits, buckets) and every command counter.
    pub async fn reset(&mut self) -> Result<(), BenchError> {
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut self.conn)
            .await?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Commands executed since the last reset (by clients and by scripts), the benchmark's
    /// own left out.
    pub async fn executed(&mut self) -> Result<BTreeMap<String, u64>, BenchError> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await?;
        let mut stats = parse_commandstats(&text);
        stats.retain(|name, _| !OWN_COMMANDS.contains(&name.as_str()));
        Ok(stats)
    }
}

/// A running `MONITOR` tap.
pub struct Tap {
    counts: Arc<Mutex<Sent>>,
    marker: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

/// What Redis did during a phase, by command name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisCounts {
    /// From `INFO commandstats`: every execution, inside scripts too.
    pub executed: BTreeMap<String, u64>,
    /// From the tap, when there was one.
    pub sent: Option<Sent>,
}

/// Commands seen by a tap, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    /// Sent by clients: each is a request to Redis (pipelined or not).
    pub by_clients: BTreeMap<String, u64>,
    /// Run by Lua scripts.
    pub by_scripts: BTreeMap<String, u64>,
    /// Limiter script calls sent only to get room (`acquire`): every other one reports an
    /// answer of Close, after its call was sent (and may carry an ask).
    pub asks: u64,
}

/// `1700000000.123456 [0 127.0.0.1:5000] "evalsha" "..."` → (run by a script, `evalsha`).
pub fn parse_monitor_line(line: &str) -> Option<(bool, String)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let origin = line[open + 1..close].split_whitespace().nth(1)?;
    let rest = line[close + 1..].trim_start().strip_prefix('"')?;
    let command = &rest[..rest.find('"')?];
    Some((origin == "lua", command.to_ascii_lowercase()))
}

/// The operation of a limiter script call in a `MONITOR` line: the script's first argument,
/// after `EVALSHA sha numkeys key...`; `None` for any other command.
pub fn script_op(line: &str) -> Option<String> {
    let mut args = quoted(line.get(line.find(']')? + 1..)?);
    let command = args.next()?.to_ascii_lowercase();
    if command != "evalsha" && command != "eval" {
        return None;
    }
    let _script = args.next()?;
    let keys: usize = args.next()?.parse().ok()?;
    args.nth(keys)
}

/// The `"..."` arguments of a `MONITOR` line, unescaped only as far as `\"` and `\\`.
fn quoted(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut chars = text.chars();
    std::iter::from_fn(move || {
        chars.by_ref().find(|c| *c == '"')?;
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(arg),
                '\\' => arg.extend(chars.next()),
                _ => arg.push(c),
            }
        }
        None
    })
}

/// `cmdstat_<name>:calls=N,...` lines → name (lower case, `|` for subcommands kept) → N.
pub fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let calls = fields
            .split(',')
            .filter_map(|f| f.split_once('='))
            .find(|(k, _)| *k == "calls")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        if let Some(calls) = calls {
            // `client|setinfo` counts as `client`.
            let base = name.split('|').next().unwrap_or(name).to_ascii_lowercase();
            *out.entry(base).or_insert(0) += calls;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_say_who_sent_what() {
        let line = r#"1795919604.462557 [0 127.0.0.1:48964] "EVALSHA" "abc" "2" "k1""#;
        assert_eq!(
            parse_monitor_line(line),
            Some((false, "evalsha".to_owned()))
        );
        let line = r#"1795919604.462616 [0 lua] "time""#;
        assert_eq!(parse_monitor_line(line), Some((true, "time".to_owned())));
        let line = r#"1795919604.462616 [3 unix:/tmp/redis.sock] "get" "a""#;
        assert_eq!(parse_monitor_line(line), Some((false, "get".to_owned())));
        assert_eq!(parse_monitor_line("OK"), None);
        assert_eq!(parse_monitor_line("1.0 [0 lua]"), None);
    }

    #[test]
    fn limiter_script_calls_name_their_operation() {
        let line = r#"1.5 [0 127.0.0.1:1] "EVALSHA" "abc" "3" "{cgw:v:p:g}:demand" "{cgw:v:p:g}:org" "{cgw:v:p:g}:key" "acquire" "" "0""#;
        assert_eq!(script_op(line).as_deref(), Some("acquire"));
        let line = r#"1.5 [0 127.0.0.1:1] "evalsha" "abc" "1" "k \"x\"" "observe""#;
        assert_eq!(script_op(line).as_deref(), Some("observe"));
        let line = r#"1.5 [0 127.0.0.1:1] "EVALSHA" "abc" "2" "k1""#;
        assert_eq!(script_op(line), None);
        let line = r#"1.5 [0 lua] "hgetall" "k""#;
        assert_eq!(script_op(line), None);
    }

    #[test]
    fn commandstats_are_parsed_per_command() {
        let text = "# Commandstats\r\n\
            cmdstat_evalsha:calls=120,usec=900,usec_per_call=7.50,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_script|load:calls=3,usec=30,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_client|setinfo:calls=6,usec=6,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_client|setname:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_bogus\r\n\
            cmdstat_get:usec=3\r\n";
        let stats = parse_commandstats(text);
        assert_eq!(
            stats,
            [
                ("client".to_owned(), 7),
                ("evalsha".to_owned(), 120),
                ("script".to_owned(), 3)
            ]
            .into()
        );
    }
}
