//! An in-memory Close, served over real HTTP, for the gateway's integration tests, its
//! benchmark and `close-gateway --dev`.
//!
//! [`Emulator::start`] serves `http://ADDR/api/v1` (HTTP/1.1 and HTTP/2 prior knowledge) on
//! a listener the caller bound. What it imitates, and how:
//!
//! **Resources.** Leads (`/lead/`, with contacts, addresses, custom fields, merge), tasks
//! (`/task/`), activities (`/activity/`, `/activity/<type>/`), Advanced Filtering
//! (`/data/search/`), `/me/` and `/status/lead/`, with Close's JSON shapes, `{"data": [...],
//! "has_more": bool}` lists, `_skip` / `_limit` / `_fields`, patch-semantics `PUT`, `{}` for
//! deletes, and Close's recorded error bodies. Every path ends with `/`; a path without it
//! answers 404 (Close would redirect) so that a client that forgets it fails loudly. Data
//! belongs to the key's organization; another organization's ids answer 404.
//!
//! **Auth.** HTTP Basic with a configured key as username (the password is ignored). A
//! missing or unknown key answers 401 `{"error": "The server could not verify that you are
//! authorized ..."}` before any rate limiting.
//!
//! **Rate limits.** Each request (path below `/api/v1`) belongs to the first
//! [`EndpointGroup`] with a matching [`RouteRule`]; each group counts against a bucket, and
//! groups may share one (by default lead, task and activity writes share `write`). A bucket
//! has a per-key limit and an organization limit (3 × by default) over fixed windows (1 s
//! by default) that start when the emulator starts and use `tokio::time::Instant`, so
//! paused-clock tests drive them. Allowed requests count against both; the response's
//! headers, in the configured [`HeaderEra`], describe the limit the request is closest to
//! hitting (fewest remaining; the key's on a tie), `reset` being decimal seconds to the
//! window's end. A request over either limit answers 429 with the era's headers
//! (`remaining=0`), `Retry-After` (whole seconds, rounded up, at least 1) and the
//! [`LegacyBody`] (none, nested or flat), whose `rate_endpoint_group` is the bucket name and
//! `rate_limit_type` is `key` or `org`. A [`HiddenLimit`] refuses requests below the
//! announced limit (`remaining` > 0 in the 429's header). A 429 is never processed: it has
//! no side effect and does not count against the window. [`Emulator::set_group_limit`]
//! changes a bucket's key limit while running.
//!
//! **Faults.** Applied to requests the limiter let through (they count as accepted), after
//! the configured latency: a connection reset drops the connection unanswered (RST, see
//! `server.rs`) and the request is not processed, recorded with status 0; a 502 (HTML body)
//! or 503 (JSON body) is answered without processing; a 504 (empty body) is answered
//! *after* processing, like an ingress that gave up waiting, so retrying a POST after a 504
//! duplicates it. Injected failures carry no rate-limit headers.
//!
//! **Search.** See `routes_search.rs` for the supported query tree. A cursor stays valid for
//! `cursor_ttl` (30 s) after the page that issued it. An expired (or never issued) cursor
//! answers 400 `{"errors": [], "field-errors": {"cursor": "The cursor has expired or is
//! invalid. Repeat the search without a cursor."}}` ([`CURSOR_EXPIRED`]). A query pages
//! through at most `search_result_cap` (10,000) results: the page that reaches the cap has
//! `"cursor": null`, so a walk that received exactly `search_result_cap` results with a
//! null cursor has hit the cap (Close simply stops there too).
//!
//! **Inspection.** Every request (including 401s, 429s and resets, not control calls) is
//! recorded with the status answered, in order of completion ([`Emulator::requests`]).
//! [`Emulator::stats`] counts accepted and refused requests per bucket and second. The same
//! is served without auth under `/_emulator/` (see `routes_control.rs`).

mod activity;
mod config;
mod faults;
mod gate;
mod lead;
mod limits;
mod reply;
mod routes_activity;
mod routes_control;
mod routes_lead;
mod routes_misc;
mod routes_search;
mod routes_task;
mod seed;
mod server;
mod state;
mod store;
mod time;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{
    ApiKey, EmulatorConfig, EndpointGroup, Faults, HeaderEra, HiddenLimit, LegacyBody, Limits,
    RouteRule, default_groups,
};
pub use gate::UNAUTHORIZED_TEXT;
pub use limits::{BucketStats, SecondStats, Stats};
pub use routes_search::CURSOR_EXPIRED;
pub use seed::DEV_LEAD_ID;
pub use state::RecordedRequest;

use reply::ApiError;
use state::{Inner, Shared, lock};
use store::Store;
use time::now_iso;

/// A running emulator. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct Emulator {
    shared: Shared,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl Emulator {
    /// Serves `listener` on a new task and returns at once.
    pub async fn start(listener: TcpListener, config: EmulatorConfig) -> io::Result<Emulator> {
        let addr = listener.local_addr()?;
        let limiter = limits::Limiter::new(config.limits.clone(), config.groups.clone());
        let shared = Arc::new(Inner {
            faults: Mutex::new(config.faults.clone()),
            config,
            addr,
            store: Mutex::new(Store::default()),
            limiter: Mutex::new(limiter),
            recorded: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
        });
        if shared.config.seeded {
            seed::load(&shared);
        }
        let api = Router::new()
            .merge(routes_lead::routes())
            .merge(routes_task::routes())
            .merge(routes_activity::routes())
            .merge(routes_search::routes())
            .merge(routes_misc::routes())
            .fallback(|| async { ApiError::no_route() })
            .method_not_allowed_fallback(|| async { ApiError::method() })
            .with_state(shared.clone());
        let control = routes_control::routes().with_state(shared.clone());
        let gate = Arc::new(gate::Gate::new(shared.clone(), api, control));
        server::spawn(listener, gate, shared.shutdown.clone());
        tracing::info!(%addr, "emulator listening");
        Ok(Emulator { shared })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT/api/v1` (a wildcard listen address is shown as 127.0.0.1).
    pub fn base_url(&self) -> String {
        let mut addr = self.shared.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        format!("http://{addr}/api/v1")
    }

    /// Every request received so far, in order of completion.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.recorded).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.recorded).clear();
    }

    /// Accepted and refused requests per bucket.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.limiter).stats()
    }

    /// Sets the per-key limit of a bucket, named by one of its groups or by itself (the
    /// organization limit follows unless configured explicitly). Unknown names are logged
    /// and ignored.
    pub fn set_group_limit(&self, group: &str, limit: u64) {
        if lock(&self.shared.limiter).set_limit(group, limit).is_none() {
            tracing::warn!(group, "emulator has no such group or bucket");
        }
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Stores a lead for a test, as the first key's organization, and returns its id. The
    /// object is completed like a created lead (contacts get ids, custom fields are
    /// flattened) but not validated, an `id` (and contact ids) in it are kept, and no
    /// `Created` activity is logged.
    pub fn insert_lead(&self, lead: Value) -> String {
        let caller = self.shared.default_caller();
        let body = object(lead);
        let (lead, _) = lead::build(&body, &caller, &now_iso(), true);
        let id = store::str_of(&lead, "id").unwrap_or_default().to_owned();
        self.shared.store().leads.insert(&id, lead);
        id
    }

    /// Stores a task for a test (see [`Emulator::insert_lead`]); its lead need not exist.
    pub fn insert_task(&self, task: Value) -> String {
        let caller = self.shared.default_caller();
        let body = object(task);
        let mut store = self.shared.store();
        let Ok(task) = routes_task::build(&store, &body, &caller, &now_iso(), true) else {
            return String::new();
        };
        let id = store::str_of(&task, "id").unwrap_or_default().to_owned();
        store.tasks.insert(&id, task);
        id
    }

    /// Stores an activity for a test and returns its id: Close's common attributes, then
    /// the given ones (`_type` defaults to `Note`, `id` is kept when given).
    pub fn insert_activity(&self, activity: Value) -> String {
        let caller = self.shared.default_caller();
        let body = object(activity);
        let type_name = body.get("_type").and_then(Value::as_str).unwrap_or("Note");
        let lead_id = body.get("lead_id").and_then(Value::as_str).unwrap_or("");
        let mut act = activity::shell(type_name, lead_id, &caller, &now_iso());
        act.extend(body);
        self.shared.store().add_activity(act)
    }

    /// Stops accepting and drops open connections.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
