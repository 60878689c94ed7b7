//! The in-memory notification store behind the REST routes: per user, at most `max`
//! notifications and `max_bytes` of titles and bodies (`--store-max`, `--store-bytes`); past
//! either, the oldest are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use resock::protocol::Notification;

pub struct Store {
    inner: Mutex<Inner>,
    max: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_user: HashMap<String, UserNotes>,
}

#[derive(Default)]
struct UserNotes {
    list: std::collections::VecDeque<Notification>,
    bytes: usize,
}

fn size(n: &Notification) -> usize {
    n.title.len() + n.body.len()
}

impl Default for Store {
    fn default() -> Self {
        Store::new(1000, 1 << 20)
    }
}

impl Store {
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Store { inner: Mutex::new(Inner::default()), max: max.max(1), max_bytes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new unread notification for `user` and returns it.
    pub fn add(&self, user: &str, title: String, body: String) -> Notification {
        let mut inner = self.lock();
        inner.next_id += 1;
        let n = Notification {
            id: inner.next_id,
            title,
            body,
            created_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            read: false,
        };
        let notes = inner.by_user.entry(user.to_owned()).or_default();
        notes.bytes += size(&n);
        notes.list.push_back(n.clone());
        // The newest is always kept, whatever its size.
        while notes.list.len() > 1 && (notes.list.len() > self.max || notes.bytes > self.max_bytes) {
            if let Some(old) = notes.list.pop_front() {
                notes.bytes -= size(&old);
            }
        }
        n
    }

    /// The user's notifications, oldest first.
    pub fn list(&self, user: &str) -> Vec<Notification> {
        self.lock().by_user.get(user).map(|n| n.list.iter().cloned().collect()).unwrap_or_default()
    }

    /// Marks the user's own notifications among `ids` read; returns the ids it marked
    /// (those that belong to the user, in the order given, without repeats).
    pub fn mark_read(&self, user: &str, ids: &[u64]) -> Vec<u64> {
        let mut inner = self.lock();
        let Some(list) = inner.by_user.get_mut(user).map(|n| &mut n.list) else { return Vec::new() };
        let own: std::collections::HashMap<u64, usize> = list.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut seen = std::collections::HashSet::new();
        let mut marked = Vec::new();
        for id in ids {
            if let Some(n) = own.get(id).and_then(|i| list.get_mut(*i)) {
                if seen.insert(*id) {
                    n.read = true;
                    marked.push(*id);
                }
            }
        }
        marked
    }

    /// Marks all of the user's notifications read; returns how many were unread.
    pub fn mark_all_read(&self, user: &str) -> usize {
        let mut inner = self.lock();
        let Some(list) = inner.by_user.get_mut(user).map(|n| &mut n.list) else { return 0 };
        let unread = list.iter().filter(|n| !n.read).count();
        list.iter_mut().for_each(|n| n.read = true);
        unread
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_own() {
        let s = Store::default();
        let a = s.add("alice", "t".into(), "b".into());
        let b = s.add("bob", "t".into(), "b".into());
        assert_eq!(s.mark_read("alice", &[a.id, b.id, a.id]), vec![a.id]);
        assert!(s.list("alice")[0].read);
        assert!(!s.list("bob")[0].read);
        assert_eq!(s.mark_all_read("bob"), 1);
        assert_eq!(s.mark_all_read("bob"), 0);
    }

    #[test]
    fn bounded_in_count_and_bytes_oldest_dropped() {
        let s = Store::new(3, 100);
        for i in 0..5 {
            s.add("a", format!("t{i}"), "b".into());
        }
        let titles: Vec<String> = s.list("a").into_iter().map(|n| n.title).collect();
        assert_eq!(titles, ["t2", "t3", "t4"]);
        s.add("a", "big".into(), "x".repeat(90));
        let titles: Vec<String> = s.list("a").into_iter().map(|n| n.title).collect();
        assert_eq!(titles, ["t3", "t4", "big"], "3 B + 3 B + 93 B fit in 100 B");
        s.add("a", "more".into(), "x".into());
        let titles: Vec<String> = s.list("a").into_iter().map(|n| n.title).collect();
        assert_eq!(titles, ["big", "more"], "over 100 B: the oldest go first");
        s.add("a", "huge".into(), "x".repeat(500));
        assert_eq!(s.list("a").len(), 1, "the newest is kept whatever its size");
    }
}
