//! Shared by the tests that run the real `close-gateway` binary: a gateway process on a free
//! port (found from its `listening on` line), its log lines to wait on, killed when dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tonic::transport::Channel;

pub struct GatewayProcess {
    _child: Child,
    pub addr: SocketAddr,
    pub channel: Channel,
    /// Every line the process wrote to stderr (its logs), as they arrive.
    logs: watch::Receiver<Vec<String>>,
}

/// Starts `close-gateway` on `127.0.0.1:0` with exactly `env` (nothing inherited) and waits
/// until it prints the address it listens on.
pub async fn spawn(env: &[(&str, &str)]) -> GatewayProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_close-gateway"))
        .args(["--listen-addr", "127.0.0.1:0"])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("close-gateway binary");
    let (logs_tx, logs) = watch::channel(Vec::new());
    let stderr = child.stderr.take().expect("stderr");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs_tx.send_modify(|logs| logs.push(line));
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(text) = line.strip_prefix("close-gateway listening on ") {
            addr = Some(text.trim().parse::<SocketAddr>().expect("listen address"));
            break;
        }
    }
    let Some(addr) = addr else {
        let status = child.wait().await;
        panic!(
            "close-gateway exited before listening ({status:?}):\n{}",
            logs.borrow().join("\n")
        );
    };
    // Keep draining so that the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to close-gateway");
    GatewayProcess {
        _child: child,
        addr,
        channel,
        logs,
    }
}

impl GatewayProcess {
    /// Waits for the first log line that `pick` maps to a value (the logs so far included).
    pub async fn wait_log<T>(&self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let mut logs = self.logs.clone();
        let mut seen = 0;
        loop {
            {
                let lines = logs.borrow_and_update();
                for line in &lines[seen..] {
                    if let Some(value) = pick(line) {
                        return value;
                    }
                }
                seen = lines.len();
            }
            if logs.changed().await.is_err() {
                panic!(
                    "close-gateway stopped logging before the expected line:\n{}",
                    logs.borrow().join("\n")
                );
            }
        }
    }

    /// Every log line so far, for failure messages.
    pub fn logs(&self) -> String {
        self.logs.borrow().join("\n")
    }
}

/// Per command, the `calls=` of Redis `INFO commandstats` (one more `info` each time).
pub async fn command_stats(url: &str) -> BTreeMap<String, u64> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info commandstats");
    let mut calls = BTreeMap::new();
    for line in stats.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(name) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let count = rest.split(',').find_map(|kv| kv.strip_prefix("calls="));
        let count = count.and_then(|c| c.parse::<u64>().ok()).expect("calls=");
        calls.insert(name.to_owned(), count);
    }
    calls
}

/// Every key on the Redis at `url` (a Cluster master holds only its own slots) and its
/// contents as text.
pub async fn stored(url: &str) -> BTreeMap<String, String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut names: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        names.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut stored = BTreeMap::new();
    for name in names {
        let kind: String = redis::cmd("TYPE")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .expect("type");
        let read = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&name).clone(),
            "string" => redis::cmd("GET").arg(&name).clone(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&name)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            "list" => redis::cmd("LRANGE").arg(&name).arg(0).arg(-1).clone(),
            "set" => redis::cmd("SMEMBERS").arg(&name).clone(),
            // Expired between SCAN and TYPE.
            "none" => continue,
            other => panic!("{name}: unexpected type {other}"),
        };
        let value: redis::Value = read.query_async(&mut conn).await.expect("read key");
        let mut text = String::new();
        as_text(&value, &mut text);
        stored.insert(name, text);
    }
    stored
}

fn as_text(value: &redis::Value, out: &mut String) {
    match value {
        redis::Value::BulkString(bytes) => out.push_str(&String::from_utf8_lossy(bytes)),
        redis::Value::SimpleString(text) => out.push_str(text),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            for item in items {
                as_text(item, out);
                out.push(' ');
            }
        }
        redis::Value::Map(pairs) => {
            for (k, v) in pairs {
                as_text(k, out);
                out.push(' ');
                as_text(v, out);
                out.push(' ');
            }
        }
        other => out.push_str(&format!("{other:?}")),
    }
}
