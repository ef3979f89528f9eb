//! The journeys the UI holds: the newest `capacity` of them, numbered in arrival order.
//!
//! Sequence numbers are contiguous and only the oldest entry is ever evicted, so an entry
//! is found by subtraction, and memory stays bounded however long the session runs.

use std::collections::VecDeque;

use crate::journey::model::Journey;

/// Arrival number of a journey within this UI session (not the journey's `id`, which a
/// recording from another run may repeat).
pub type Seq = u64;

#[derive(Debug)]
pub struct Entry {
    pub seq: Seq,
    /// Shown (subject to the filter): live and not paused when it arrived, or passed by
    /// the playback clock.
    pub revealed: bool,
    pub journey: Box<Journey>,
}

#[derive(Debug)]
pub struct Store {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_seq: Seq,
}

impl Store {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
        }
    }

    /// Adds a journey, unrevealed; returns its number and the entry evicted to make room.
    pub fn push(&mut self, journey: Box<Journey>) -> (Seq, Option<Entry>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let evicted = if self.entries.len() >= self.capacity {
            self.entries.pop_front()
        } else {
            None
        };
        self.entries.push_back(Entry {
            seq,
            revealed: false,
            journey,
        });
        (seq, evicted)
    }

    fn index(&self, seq: Seq) -> Option<usize> {
        let first = self.entries.front()?.seq;
        usize::try_from(seq.checked_sub(first)?).ok()
    }

    pub fn get(&self, seq: Seq) -> Option<&Entry> {
        self.entries.get(self.index(seq)?)
    }

    pub fn get_mut(&mut self, seq: Seq) -> Option<&mut Entry> {
        let i = self.index(seq)?;
        self.entries.get_mut(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many journeys arrived in total.
    pub fn arrived(&self) -> u64 {
        self.next_seq
    }

    /// How many old journeys were let go to stay within `capacity`.
    pub fn discarded(&self) -> u64 {
        self.next_seq - self.entries.len() as u64
    }
}
