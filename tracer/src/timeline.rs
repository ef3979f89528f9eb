//! Versions of something that changes during a session (the cluster model, the traced
//! namespaces), each with the CLOCK_MONOTONIC time from which it holds, so that a packet is
//! named by the version of its own time. Only the newest few are kept.

use std::{collections::VecDeque, sync::Arc};

pub struct Timeline<T> {
    /// (holds from, serial number, value), oldest first.
    entries: VecDeque<(u64, usize, Arc<T>)>,
    pushed: usize,
    kept: usize,
}

/// Versions kept by default: more than a session sees change in the seconds a packet takes
/// to be correlated.
pub const KEPT: usize = 16;

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Self::new(KEPT)
    }
}

impl<T> std::fmt::Debug for Timeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("versions", &self.entries.len())
            .finish()
    }
}

impl<T> Timeline<T> {
    /// A timeline that keeps the newest `kept` versions (at least one).
    pub fn new(kept: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            pushed: 0,
            kept: kept.max(1),
        }
    }

    /// Adds the version that holds from `since`. A version pushed with the same `since` as
    /// the newest replaces it (a version completed in several steps), with a new serial.
    pub fn push(&mut self, since: u64, value: Arc<T>) {
        self.pushed += 1;
        if self.entries.back().is_some_and(|(s, _, _)| *s == since) {
            self.entries.pop_back();
        }
        self.entries.push_back((since, self.pushed, value));
        if self.entries.len() > self.kept {
            self.entries.pop_front();
        }
    }

    /// Drops versions superseded before `ts` (the newest is always kept).
    pub fn forget_superseded_before(&mut self, ts: u64) {
        while self.entries.len() > 1 && self.entries[1].0 < ts {
            self.entries.pop_front();
        }
    }

    /// The version that held at `ts` — the oldest kept if `ts` predates them all — with
    /// its serial number: a stamp that never repeats, unlike an address. `None` when empty.
    pub fn at(&self, ts: u64) -> Option<(usize, Arc<T>)> {
        self.entries
            .iter()
            .rev()
            .find(|(since, _, _)| *since <= ts)
            .or_else(|| self.entries.front())
            .map(|(_, serial, value)| (*serial, Arc::clone(value)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Timeline;

    #[test]
    fn answers_with_the_version_of_the_time() {
        let mut t = Timeline::new(4);
        assert!(t.at(5).is_none());
        t.push(100, Arc::new("first"));
        t.push(200, Arc::new("second"));
        assert_eq!(*t.at(50).unwrap().1, "first", "older than all: the oldest");
        assert_eq!(*t.at(150).unwrap().1, "first");
        assert_eq!(*t.at(200).unwrap().1, "second");
        assert_ne!(t.at(150).unwrap().0, t.at(250).unwrap().0);
        t.push(300, Arc::new("third"));
        t.forget_superseded_before(250);
        assert_eq!(t.len(), 2, "first was superseded at 200");
        t.forget_superseded_before(10_000);
        assert_eq!(t.len(), 1, "the newest is always kept");

        let mut names: Timeline<String> = Timeline::default();
        for i in 0..40 {
            names.push(300 + i, Arc::new(format!("v{i}")));
        }
        assert_eq!(names.len(), 16, "bounded");

        let mut completed = Timeline::new(4);
        completed.push(100, Arc::new("part"));
        let (first, _) = completed.at(100).unwrap();
        completed.push(100, Arc::new("whole"));
        assert_eq!(completed.len(), 1, "the same start replaces");
        let (second, value) = completed.at(100).unwrap();
        assert_eq!(*value, "whole");
        assert_ne!(first, second, "with a new serial");
        assert_eq!(
            *names.at(0).unwrap().1,
            "v24",
            "older than all kept: the oldest kept"
        );
    }
}
