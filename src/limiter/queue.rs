//! The local waiting line of one group: by priority, then a fair turn between callers
//! (round robin on `x-caller`), then arrival.

use std::collections::{HashMap, VecDeque};

/// One priority level: callers take turns; each caller's calls keep their arrival order.
#[derive(Debug)]
struct Level<T> {
    turns: VecDeque<String>,
    calls: HashMap<String, VecDeque<(u64, T)>>,
    len: usize,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level {
            turns: VecDeque::new(),
            calls: HashMap::new(),
            len: 0,
        }
    }
}

/// A bounded set of waiting calls, each with an id so that a cancelled one can leave.
#[derive(Debug)]
pub struct Queue<T> {
    levels: [Level<T>; 3],
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            levels: [Level::default(), Level::default(), Level::default()],
        }
    }
}

impl<T> Queue<T> {
    pub fn len(&self) -> usize {
        self.levels.iter().map(|l| l.len).sum()
    }

    /// Waiting calls per priority.
    pub fn depths(&self) -> [usize; 3] {
        [self.levels[0].len, self.levels[1].len, self.levels[2].len]
    }

    /// Callers with calls waiting at `prio`.
    pub fn callers(&self, prio: usize) -> usize {
        self.levels[prio].calls.len()
    }

    /// How many calls would be served before one more call of `caller` at `prio`.
    pub fn ahead_of_new(&self, prio: usize, caller: &str) -> usize {
        let higher: usize = self.levels[..prio].iter().map(|l| l.len).sum();
        let level = &self.levels[prio];
        let mine = level.calls.get(caller).map_or(0, VecDeque::len);
        let mut ahead = higher + mine;
        for (other, calls) in &level.calls {
            if other != caller {
                ahead += calls.len().min(mine + 1);
            }
        }
        ahead
    }

    pub fn push(&mut self, prio: usize, caller: &str, id: u64, item: T) {
        let level = &mut self.levels[prio];
        let calls = level.calls.entry(caller.to_owned()).or_default();
        if calls.is_empty() {
            level.turns.push_back(caller.to_owned());
        }
        calls.push_back((id, item));
        level.len += 1;
    }

    /// The next call to serve: most urgent priority, the caller whose turn it is.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        let level = self.levels.iter_mut().find(|l| l.len > 0)?;
        let caller = level.turns.pop_front()?;
        let calls = level.calls.get_mut(&caller)?;
        let item = calls.pop_front();
        if calls.is_empty() {
            level.calls.remove(&caller);
        } else {
            level.turns.push_back(caller);
        }
        if item.is_some() {
            level.len -= 1;
        }
        item
    }

    /// Every waiting call, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.levels
            .iter()
            .flat_map(|l| l.calls.values().flat_map(|c| c.iter().map(|(_, t)| t)))
    }

    /// Removes the call `id` (cancelled or expired); true when it was there.
    pub fn remove(&mut self, prio: usize, caller: &str, id: u64) -> bool {
        let level = &mut self.levels[prio];
        let Some(calls) = level.calls.get_mut(caller) else {
            return false;
        };
        let Some(pos) = calls.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        calls.remove(pos);
        level.len -= 1;
        if calls.is_empty() {
            level.calls.remove(caller);
            level.turns.retain(|c| c != caller);
        }
        true
    }

    /// Removes and returns every call for which `expired` says so.
    pub fn drain_where(&mut self, mut expired: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut out = Vec::new();
        for level in &mut self.levels {
            for calls in level.calls.values_mut() {
                let mut kept = VecDeque::with_capacity(calls.len());
                for (id, item) in calls.drain(..) {
                    if expired(&item) {
                        out.push(item);
                    } else {
                        kept.push_back((id, item));
                    }
                }
                *calls = kept;
            }
            level.calls.retain(|_, calls| !calls.is_empty());
            let calls = &level.calls;
            level.turns.retain(|c| calls.contains_key(c));
            level.len = level.calls.values().map(VecDeque::len).sum();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_caller_turns_then_arrival() {
        let mut q = Queue::default();
        for i in 0..4 {
            q.push(2, "bulk", i, format!("bulk{i}"));
        }
        q.push(2, "small", 10, "small0".to_owned());
        q.push(1, "web", 20, "web0".to_owned());
        q.push(0, "pager", 30, "pager0".to_owned());
        assert_eq!(q.depths(), [1, 1, 5]);
        assert_eq!(q.ahead_of_new(2, "small"), 2 + 1 + 2);
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|(_, s)| s)).collect();
        assert_eq!(
            order,
            [
                "pager0", "web0", "bulk0", "small0", "bulk1", "bulk2", "bulk3"
            ]
        );
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn removed_and_expired_calls_leave_the_line() {
        let mut q = Queue::default();
        q.push(1, "a", 1, 1);
        q.push(1, "b", 2, 2);
        q.push(1, "a", 3, 3);
        assert!(q.remove(1, "b", 2));
        assert!(!q.remove(1, "b", 2));
        assert_eq!(q.drain_where(|v| *v == 1), vec![1]);
        assert_eq!(q.pop(), Some((3, 3)));
        assert_eq!(q.pop(), None);
        assert_eq!(q.len(), 0);
    }
}
