//! Two groups that seem to share one undeclared Close bucket (`sharing.rs`) are served as
//! one: the group named second (the guest) moves to the line and shared state of the other
//! (the host) from the end of its current window, for every replica (`policy/join.rs`). A
//! later collision of counts proves them apart, and the guest is served alone again.
//! Without this, each group keeps room for the other's calls and waits to see the other
//! stop before taking its room: a window lost at every backlog's end (docs/limiter.md).

use std::sync::Arc;

use super::Inner;
use super::sharing::Seen;

/// Moves `guest` into `host`'s state, then makes the host's window that begins then one
/// without history (the others it kept room for were the guest).
pub(crate) async fn join(inner: Arc<Inner>, host: String, guest: String) {
    // With a pool of keys Close counts each key apart; answers of several keys tell
    // nothing of one bucket.
    if inner.config.key_ids.len() > 1 {
        return;
    }
    {
        let Ok(routes) = inner.routes.lock() else {
            return;
        };
        // One level only: a host is nobody's guest, a guest nobody's host.
        let taken = |g: &String| routes.contains_key(g) || routes.values().any(|h| h == g);
        if taken(&host) || taken(&guest) {
            return;
        }
    }
    let Some(from) = inner.backend.join(&inner.bucket(&guest), &host).await else {
        return;
    };
    if from == 0 {
        return;
    }
    inner.backend.adopt(&inner.bucket(&host), from).await;
    // This replica's calls move as every other replica's do: when the guest's state answers
    // that it grants nothing more (`Why::Moved`). Before, the host keeps room for them.
    tracing::info!(host = %host, guest = %guest, from, "serving two groups as one close bucket");
}

/// Serves the guest of `a` and `b`, if one joined the other, in its own state again.
pub(crate) async fn leave(inner: Arc<Inner>, a: String, b: String) {
    let guest = {
        let Ok(mut routes) = inner.routes.lock() else {
            return;
        };
        let guest = if routes.get(&a) == Some(&b) { a } else { b };
        if routes.remove(&guest).is_none() {
            return;
        }
        guest
    };
    inner.backend.leave(&inner.bucket(&guest)).await;
    inner.group(&guest).move_to(None);
    tracing::warn!(group = %guest, "groups counted apart by close after all; serving them apart");
}

impl Inner {
    /// Acts on what `sharing.rs` saw: serves a newly suspected pair as one, and a pair
    /// served as one but seen counted apart in two states again.
    pub(crate) fn act(self: &Arc<Self>, seen: Vec<Seen>) {
        for seen in seen {
            let (Seen::Together(a, b) | Seen::Apart(a, b)) = &seen;
            // For alerts: a suspected pair should be declared in the group file.
            self.sharing.export([a, b]);
            match seen {
                Seen::Together(host, guest) => {
                    tracing::warn!(group_a = %host, group_b = %guest,
                        "groups seem to share one close bucket; declare them as one group in the group file");
                    tokio::spawn(join(self.clone(), host, guest));
                }
                Seen::Apart(a, b) if self.joined(&a, &b) => {
                    tokio::spawn(leave(self.clone(), a, b));
                }
                Seen::Apart(..) => {}
            }
        }
    }

    /// Whether one of `a` and `b` is served in the other's state.
    pub(crate) fn joined(&self, a: &str, b: &str) -> bool {
        self.routes
            .lock()
            .is_ok_and(|r| r.get(a).is_some_and(|h| h == b) || r.get(b).is_some_and(|h| h == a))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::close::ratelimit::RateLimitInfo;
    use crate::limiter::{
        AcquireRequest, Limiter, LimiterConfig, LimiterError, MemoryState, Permit, Priority,
    };

    const HOST: &str = "activity.write";
    const GUEST: &str = "task.write";

    async fn call(limiter: &Limiter, group: &str) -> Permit {
        let req = AcquireRequest {
            group: group.to_owned(),
            priority: Priority::Normal,
            caller: String::new(),
            deadline: None,
        };
        limiter.acquire(req).await.expect("a permit")
    }

    fn counted(count: u64, reset_ms: u64) -> RateLimitInfo {
        RateLimitInfo {
            limit: Some(40),
            remaining: Some(40 - count),
            reset: Some(Duration::from_millis(reset_ms)),
            ..RateLimitInfo::default()
        }
    }

    /// Every replica's calls of the guest move to the host's line once the guest's state
    /// says so; an answer proving the two apart moves them back, for every replica.
    #[tokio::test(start_paused = true)]
    async fn a_guest_is_served_in_its_hosts_line_until_the_groups_are_seen_apart() {
        let state = Arc::new(MemoryState::new());
        let config = |id: &str| LimiterConfig {
            replica_id: id.to_owned(),
            ..LimiterConfig::default()
        };
        let a = Limiter::with_memory(config("a"), state.clone());
        let b = Limiter::with_memory(config("b"), state.clone());
        // Close counted 9 calls of others with the guest's first: it moves at the end of
        // that window.
        tokio::time::advance(Duration::from_millis(1)).await;
        let first = call(&b, GUEST).await;
        b.observe(first, 200, &counted(10, 900)).await;
        super::join(a.inner.clone(), HOST.to_owned(), GUEST.to_owned()).await;
        tokio::time::advance(Duration::from_millis(900)).await;
        let host_call = call(&b, HOST).await;
        b.observe(host_call, 200, &counted(5, 900)).await;
        tokio::time::advance(Duration::from_millis(1)).await;
        let moved = call(&b, GUEST).await;
        assert_eq!((moved.group.as_str(), moved.line.as_str()), (GUEST, HOST));
        assert!(b.inner.joined(GUEST, HOST));
        // Refusals name the call's group, not the line's.
        let late = AcquireRequest {
            group: GUEST.to_owned(),
            priority: Priority::Normal,
            caller: String::new(),
            deadline: Some(tokio::time::Instant::now()),
        };
        let refused = b
            .acquire(late)
            .await
            .expect_err("a deadline already passed");
        assert!(
            matches!(&refused, LimiterError::DeadlineUnreachable { group, .. } if group == GUEST),
            "{refused:?}"
        );
        // Sent after the host's answer, counted before it: two buckets.
        tokio::time::advance(Duration::from_millis(9)).await;
        b.observe(moved, 200, &counted(3, 890)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!b.inner.joined(GUEST, HOST));
        let own = call(&a, GUEST).await;
        assert_eq!((own.group.as_str(), own.line.as_str()), (GUEST, GUEST));
    }
}
