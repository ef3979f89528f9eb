//! Replay: a sampling recording's counts, shown on the playback clock.
//!
//! Each read of the kernel's counts (`HOP_COUNTS` records, `journey::counted`) carries the
//! running totals, at its `at_ns`, of the places whose totals changed since the read
//! before. The flow view takes a read once the clock has passed its `at_ns`, as the list
//! shows a journey once the clock has passed its start, so a path's "+N counted" never
//! runs ahead of its traced journeys; and once the replay is over, every read, the last
//! one (after the last journey) too. Reads are taken in the order they were recorded: one
//! not due holds back those after it.
//!
//! A seek back starts the totals again from the reads due then, so the reads are kept.
//! To bound their memory over a long recording, the oldest reads already shown are folded
//! into one when more than [`KEPT_PLACES`] places are kept; a seek to before the newest
//! folded read then shows its totals. The reader stops while as many places wait for the
//! clock (`State::wants_more`); before the first journey, when there is no clock yet, so
//! many are shown at once instead.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use crate::journey::counted::{Crossed, HopCounts, HopPlace};

/// Place totals kept across the reads, at most (about 50 bytes each); and, read ahead of
/// the clock, at most as many again.
pub const KEPT_PLACES: usize = 1_000_000;

#[derive(Debug, Default)]
pub struct CountsOnClock {
    /// The oldest reads taken in together (always shown), newest total per place.
    folded: HashMap<HopPlace, Crossed>,
    folded_shift: u8,
    /// Each read since, with its time, in recorded order.
    reads: VecDeque<(u64, Arc<HopCounts>)>,
    /// `reads[..shown]` are in the flow view.
    shown: usize,
    /// Place totals in `reads[..shown]`, and in `reads[shown..]`.
    shown_places: usize,
    unshown_places: usize,
}

impl CountsOnClock {
    pub fn push(&mut self, at_ns: u64, counts: Arc<HopCounts>) {
        self.unshown_places += counts.hops.len();
        self.reads.push_back((at_ns, counts));
    }

    /// The reads that became due, to show now.
    pub fn take_due(&mut self, is_due: impl Fn(u64) -> bool) -> Vec<Arc<HopCounts>> {
        let start = self.shown;
        while let Some((at_ns, counts)) = self.reads.get(self.shown) {
            if !is_due(*at_ns) {
                break;
            }
            self.shown += 1;
            self.shown_places += counts.hops.len();
            self.unshown_places -= counts.hops.len();
        }
        let due = self.reads.range(start..self.shown).map(|(_, c)| c.clone());
        let due = due.collect();
        self.fold_shown();
        due
    }

    /// After a seek: everything to show from an empty view, the folded reads first.
    pub fn rewind(&mut self, is_due: impl Fn(u64) -> bool) -> Vec<Arc<HopCounts>> {
        self.unshown_places += self.shown_places;
        self.shown_places = 0;
        self.shown = 0;
        let folded = (!self.folded.is_empty()).then(|| {
            Arc::new(HopCounts {
                sample_shift: self.folded_shift,
                hops: self.folded.iter().map(|(p, c)| (*p, *c)).collect(),
            })
        });
        let mut shown = folded.into_iter().collect::<Vec<_>>();
        shown.extend(self.take_due(is_due));
        shown
    }

    /// Place totals in the reads not shown yet.
    pub fn unshown_places(&self) -> usize {
        self.unshown_places
    }

    /// Keeps the shown reads within [`KEPT_PLACES`]: the oldest go into `folded`.
    fn fold_shown(&mut self) {
        while self.shown > 0 && self.folded.len() + self.shown_places > KEPT_PLACES {
            let Some((_, counts)) = self.reads.pop_front() else {
                break;
            };
            self.shown -= 1;
            self.shown_places -= counts.hops.len();
            self.folded_shift = counts.sample_shift;
            self.folded.extend(counts.hops.iter().copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::counted::{
        CountedTotals, Crossed,
        fake::{self, place},
    };

    fn read(port: u16, packets: u64) -> Arc<HopCounts> {
        Arc::new(fake::read(port, packets))
    }

    fn totals(reads: &[Arc<HopCounts>]) -> CountedTotals {
        let mut totals = CountedTotals::default();
        reads.iter().for_each(|r| totals.update(r));
        totals
    }

    #[test]
    fn reads_are_shown_in_order_once_due_and_again_from_the_start_after_a_seek() {
        let mut clock = CountsOnClock::default();
        clock.push(100, read(1, 5));
        clock.push(300, read(1, 9));
        clock.push(200, read(2, 4));
        let due_at = |position: u64| move |at_ns: u64| at_ns <= position;

        assert!(clock.take_due(due_at(50)).is_empty());
        assert_eq!(
            clock.take_due(due_at(250)).len(),
            1,
            "the read at 300 holds back 200"
        );
        assert_eq!(clock.unshown_places(), 2);
        assert_eq!(clock.take_due(due_at(300)).len(), 2);
        assert_eq!(clock.unshown_places(), 0);

        // Back before the second read: only the first one's totals.
        let shown = totals(&clock.rewind(due_at(150)));
        assert_eq!(shown.get(&place(1)).map(|c| c.packets), Some(5));
        assert_eq!(shown.get(&place(2)), None);
        assert_eq!(clock.unshown_places(), 2);
    }

    #[test]
    fn shown_reads_beyond_the_bound_are_folded_into_the_same_totals() {
        let mut clock = CountsOnClock::default();
        let many = Arc::new(HopCounts {
            sample_shift: 6,
            hops: (0..=KEPT_PLACES as u64)
                .map(|i| {
                    let mut p = place(1);
                    p.netns_cookie = 1000 + i;
                    (p, Crossed::default())
                })
                .collect(),
        });
        clock.push(10, many);
        clock.push(20, read(1, 3));
        clock.push(30, read(1, 7));
        assert_eq!(clock.take_due(|at| at <= 20).len(), 2);
        assert_eq!(clock.reads.len(), 1, "the shown reads are folded");
        assert!(!clock.folded.is_empty());

        let shown = totals(&clock.rewind(|at| at <= 20));
        assert_eq!(shown.get(&place(1)).map(|c| c.packets), Some(3));
        assert_eq!(shown.iter().count(), KEPT_PLACES + 2);
        let shown = totals(&clock.rewind(|_| true));
        assert_eq!(shown.get(&place(1)).map(|c| c.packets), Some(7));
    }
}
