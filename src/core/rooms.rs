//! The rooms the application wants to be in. They are joined again after every reconnect,
//! in the order they were first wanted.

use alloc::string::String;
use alloc::vec::Vec;

#[derive(Debug, Default, Clone)]
pub struct Rooms {
    wanted: Vec<String>,
}

impl Rooms {
    /// Adds a room; false when it was already wanted.
    pub fn want(&mut self, room: &str) -> bool {
        if self.contains(room) {
            return false;
        }
        self.wanted.push(room.into());
        true
    }

    /// Removes a room; false when it was not wanted.
    pub fn unwant(&mut self, room: &str) -> bool {
        // No repeats (`want`): the first match is the only one.
        match self.wanted.iter().position(|r| r == room) {
            Some(i) => {
                self.wanted.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, room: &str) -> bool {
        self.wanted.iter().any(|r| r == room)
    }

    /// The `i`th room wanted, in order.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.wanted.get(i).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.wanted.iter().map(String::as_str)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.wanted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_without_repeats() {
        let mut r = Rooms::default();
        assert!(r.want("b"));
        assert!(r.want("a"));
        assert!(!r.want("b"));
        assert_eq!(r.iter().collect::<Vec<_>>(), ["b", "a"]);
        assert!(r.unwant("b"));
        assert!(!r.unwant("b"));
        assert_eq!(r.len(), 1);
    }
}
