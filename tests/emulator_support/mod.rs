//! Shared by the emulator's test files: start an emulator on 127.0.0.1:0 and call it over
//! real HTTP with reqwest.
#![allow(dead_code)]

use close_gateway::emulator::{Emulator, EmulatorConfig};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A running emulator and a client for it.
pub struct Api {
    pub emu: Emulator,
    pub key: String,
    http: reqwest::Client,
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON; `null` when empty.
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).expect("body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Starts an emulator with `config`; requests use its first key.
pub async fn start(config: EmulatorConfig) -> Api {
    let key = config
        .api_keys
        .first()
        .map(|k| k.key.clone())
        .unwrap_or_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener, config).await.unwrap();
    // No idle pool: its timer would let a paused clock jump.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    Api { emu, key, http }
}

impl Api {
    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// A call with the default key; `path` is relative to `/api/v1`.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let key = self.key.clone();
        self.try_call(Some(&key), method, path, body)
            .await
            .expect("emulator answers")
    }

    /// A call with `key` (none: no auth); `Err` when the connection failed.
    pub async fn try_call(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        let url = format!("{}{path}", self.emu.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, url);
        if let Some(key) = key {
            request = request.basic_auth(key, Some(""));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Reply {
            status,
            headers,
            text,
        })
    }

    /// A control call (`/_emulator/...`).
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let base = format!("http://{}", self.emu.addr());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }
}

/// True for Close's timestamp form `2018-09-17T17:40:44.085000+00:00`.
pub fn is_close_timestamp(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let shape: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    shape == "9999-99-99T99:99:99.999999+99:99" && text.ends_with("+00:00")
}

/// The ids of a `{"data": [...]}` page.
pub fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}
