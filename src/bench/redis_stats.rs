//! Redis as the benchmark sees it: emptied and its counters reset before each gateway phase,
//! and `INFO commandstats` read after it to count the commands the gateways sent.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

use super::error::BenchError;

/// Commands the benchmark itself sends; they are not the gateways'.
const OWN_COMMANDS: &[&str] = &["info", "config", "flushall"];

/// A connection for resetting and reading Redis.
pub struct RedisStats {
    conn: MultiplexedConnection,
}

impl RedisStats {
    pub async fn connect(url: &str) -> Result<Self, BenchError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(RedisStats { conn })
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

    /// Calls per command since the last reset, the benchmark's own left out.
    pub async fn commands(&mut self) -> Result<BTreeMap<String, u64>, BenchError> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await?;
        let mut stats = parse_commandstats(&text);
        stats.retain(|name, _| !OWN_COMMANDS.contains(&name.as_str()));
        Ok(stats)
    }
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
