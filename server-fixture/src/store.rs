//! The in-memory notification store behind the REST routes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use resock::protocol::Notification;

#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_user: HashMap<String, Vec<Notification>>,
}

impl Store {
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
        inner.by_user.entry(user.to_owned()).or_default().push(n.clone());
        n
    }

    /// The user's notifications, oldest first.
    pub fn list(&self, user: &str) -> Vec<Notification> {
        self.lock().by_user.get(user).cloned().unwrap_or_default()
    }

    /// Marks the user's own notifications among `ids` read; returns the ids it marked
    /// (those that belong to the user, in the order given, without repeats).
    pub fn mark_read(&self, user: &str, ids: &[u64]) -> Vec<u64> {
        let mut inner = self.lock();
        let Some(list) = inner.by_user.get_mut(user) else { return Vec::new() };
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
        let Some(list) = inner.by_user.get_mut(user) else { return 0 };
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
}
