//! The state one emulator's server tasks and handle share.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::config::{EmulatorConfig, Faults};
use super::limits::Limiter;
use super::store::{Caller, Store};

/// One request the emulator received, as tests inspect it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full path, e.g. `/api/v1/lead/lead_x/`.
    pub path: String,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
    /// The JSON body; a body that is not JSON is kept as a string.
    pub body: Option<Value>,
    /// The Basic-auth username, whether or not it is a known key.
    pub api_key: Option<String>,
    /// The status answered; 0 when the connection was dropped instead (fault injection).
    pub status: u16,
}

pub(crate) struct Inner {
    pub config: EmulatorConfig,
    pub addr: SocketAddr,
    pub store: Mutex<Store>,
    pub limiter: Mutex<Limiter>,
    pub faults: Mutex<Faults>,
    pub recorded: Mutex<Vec<RecordedRequest>>,
    pub shutdown: CancellationToken,
}

pub(crate) type Shared = Arc<Inner>;

/// Locks, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// The caller a key stands for, if the key is known.
    pub fn caller(&self, key: &str) -> Option<Caller> {
        let found = self.config.api_keys.iter().find(|k| k.key == key)?;
        Some(Caller {
            org: found.organization_id.clone(),
            user: found.user_id.clone(),
        })
    }

    /// The caller test fixtures and seed data act as: the first configured key's.
    pub fn default_caller(&self) -> Caller {
        match self.config.api_keys.first() {
            Some(k) => Caller {
                org: k.organization_id.clone(),
                user: k.user_id.clone(),
            },
            None => Caller {
                org: "orga_test".to_owned(),
                user: "user_testkey".to_owned(),
            },
        }
    }
}
