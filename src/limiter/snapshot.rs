//! What one replica knows of a group, for `RateLimitService.GetRateLimits`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::dispatch::Group;
use super::{GroupSnapshot, Inner, LimitSource};

/// The snapshot of one group; `group` is `None` when this replica has not used it yet.
pub(crate) fn snapshot(inner: &Inner, name: &str, group: Option<&Group>) -> GroupSnapshot {
    let (limit, window) = inner.config.groups.group(name).map_or(
        (inner.config.default_limit, inner.config.default_window),
        |g| (g.limit, g.window),
    );
    let mut snap = GroupSnapshot {
        group: name.to_owned(),
        limit,
        window,
        source: LimitSource::Default,
        estimated_remaining: limit,
        paused_until: None,
        queue_local: [0; 3],
        queue_all: None,
        throttled: 0,
        last_header: None,
        suspected_shared_with: inner.sharing.partners(name),
        served_in: inner.routes.lock().ok().and_then(|r| r.get(name).cloned()),
    };
    let Some(group) = group else {
        return snap;
    };
    let now = Instant::now();
    let local = group.lock();
    snap.queue_local = local.queue.depths().map(|d| d as u32);
    snap.last_header = local.last_header.clone();
    snap.throttled = local.throttled;
    snap.paused_until = local
        .paused_until
        .filter(|p| *p > now)
        .map(|p| SystemTime::now() + (p - now));
    let Some((view, _, wall)) = &local.view else {
        return snap;
    };
    if view.lim > 0 {
        snap.limit = view.lim as u64;
        snap.window = Duration::from_micros(view.win.max(0) as u64);
        snap.estimated_remaining = view.remaining.max(0) as u64;
    }
    if view.lsrc == 2 {
        let age = Duration::from_micros((view.now - view.lat).max(0) as u64);
        snap.source = LimitSource::Learned { at: *wall - age };
    }
    snap.queue_all = Some(view.demand.map(|d| d.clamp(0, u32::MAX as i64) as u32));
    snap.throttled = snap.throttled.max(view.n429.max(0) as u64);
    snap
}
