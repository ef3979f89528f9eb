//! Giving `HOP_SLOTS` slots back to new hops.
//!
//! A CPU's slot keeps the first hop that hashed to it. Over a long session of short
//! connections every slot would come to hold a hop long ended, and each new hop would be
//! counted in the costlier `HOP_COUNTS` map. So each read of the slots (once a second)
//! also finds the slots that read the same [`IDLE_AFTER`] reads in a row and marks them in
//! `SLOT_IDLE` with their [`HopSlot::idle_mark`]: another hop hashing there may take such a
//! slot while it still reads as marked (`tracer-ebpf`'s `count_hop`). Then the slot's hop
//! counted exactly what the last read found, and nothing is lost: when a read finds
//! another hop in a slot than the read before, the earlier hop's count is carried on in
//! its total ([`SlotKeeper::retire`]), as if the slot were still its own.
//!
//! Marks are written only when they change (a hop going idle, or busy again, or its slot
//! taken), one row of per-CPU marks per slot index.

use std::collections::HashMap;

use tracer_common::{HopCount, HopKey, HopSlot};

/// Reads a slot must be found unchanged by before it is marked idle: with a read a second,
/// its hop counted nothing for about two seconds.
const IDLE_AFTER: u8 = 2;

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    slot: HopSlot,
    /// Reads in a row that found it as the one before.
    unchanged: u8,
    /// What `SLOT_IDLE` should hold for it.
    mark: u64,
}

/// What the slots held at the last read, per index and CPU, and what hops no longer in a
/// slot counted there.
#[derive(Debug, Default)]
pub struct SlotKeeper {
    cpus: usize,
    /// `index * cpus + cpu`.
    seen: Vec<Seen>,
    /// Indexes whose marks changed since [`Self::take_marks`].
    dirty: Vec<bool>,
    /// What hops counted in slots other hops have since taken.
    retired: HashMap<HopKey, HopCount>,
    taken: u64,
}

impl SlotKeeper {
    /// One read of a slot index on every CPU: each slot's count is added to its hop's in
    /// `totals`.
    pub fn observe(
        &mut self,
        index: u32,
        per_cpu: &[HopSlot],
        totals: &mut HashMap<HopKey, HopCount>,
    ) {
        let index = index as usize;
        if self.cpus == 0 {
            self.cpus = per_cpu.len();
        }
        if per_cpu.len() != self.cpus {
            return;
        }
        let end = (index + 1) * self.cpus;
        if self.seen.len() < end {
            self.seen.resize(end, Seen::default());
            self.dirty.resize(index + 1, false);
        }
        for (cpu, now) in per_cpu.iter().enumerate() {
            let seen = &mut self.seen[index * self.cpus + cpu];
            let before = seen.slot;
            if before.count.packets != 0
                && (now.key != before.key || now.count.packets < before.count.packets)
            {
                Self::retire(&mut self.retired, &before);
                self.taken += 1;
            }
            seen.unchanged = if now.count.packets != 0 && *now == before {
                seen.unchanged.saturating_add(1)
            } else {
                0
            };
            let mark = if seen.unchanged >= IDLE_AFTER {
                now.idle_mark()
            } else {
                0
            };
            if mark != seen.mark {
                seen.mark = mark;
                self.dirty[index] = true;
            }
            seen.slot = *now;
            if now.count.packets != 0 {
                add(totals.entry(now.key).or_default(), &now.count);
            }
        }
    }

    /// A hop's slot was taken while marked idle: it counted there what the last read found.
    fn retire(retired: &mut HashMap<HopKey, HopCount>, before: &HopSlot) {
        add(retired.entry(before.key).or_default(), &before.count);
    }

    /// Ends a read: what hops counted in slots since taken joins their totals.
    pub fn add_retired(&self, totals: &mut HashMap<HopKey, HopCount>) {
        for (key, count) in &self.retired {
            add(totals.entry(*key).or_default(), count);
        }
    }

    /// The rows of `SLOT_IDLE` to write: each index whose marks changed, one mark per CPU.
    pub fn take_marks(&mut self) -> Vec<(u32, Vec<u64>)> {
        let mut rows = Vec::new();
        for (index, dirty) in self.dirty.iter_mut().enumerate() {
            if std::mem::take(dirty) {
                let marks = self.seen[index * self.cpus..(index + 1) * self.cpus]
                    .iter()
                    .map(|s| s.mark)
                    .collect();
                rows.push((index as u32, marks));
            }
        }
        rows
    }

    /// Slots other hops took from idle ones so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

fn add(sum: &mut HopCount, count: &HopCount) {
    sum.packets += count.packets;
    sum.bytes += count.bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(port: u16, packets: u64) -> HopSlot {
        HopSlot {
            key: HopKey {
                netns_cookie: 5,
                ifindex: 2,
                hook: tracer_common::kind::TC_EGRESS,
                ip_proto: 17,
                sport: port,
                dport: 53,
                ..HopKey::default()
            },
            count: HopCount {
                packets,
                bytes: packets * 60,
            },
        }
    }

    fn read(keeper: &mut SlotKeeper, per_cpu: &[HopSlot]) -> HashMap<u16, u64> {
        let mut totals = HashMap::new();
        keeper.observe(7, per_cpu, &mut totals);
        keeper.add_retired(&mut totals);
        totals
            .into_iter()
            .map(|(key, count)| (key.sport, count.packets))
            .collect()
    }

    /// A slot is marked once it read the same twice more; a hop that took it from the
    /// marked one starts from 1, and the earlier hop keeps its total.
    #[test]
    fn an_idle_slot_is_marked_and_its_hop_keeps_its_total_when_another_takes_it() {
        let mut keeper = SlotKeeper::default();
        let empty = HopSlot::default();
        read(&mut keeper, &[slot(1, 4), empty]);
        assert_eq!(keeper.take_marks(), vec![], "busy or empty: no mark");
        read(&mut keeper, &[slot(1, 9), empty]);
        read(&mut keeper, &[slot(1, 9), empty]);
        assert_eq!(keeper.take_marks(), vec![], "unchanged once");
        read(&mut keeper, &[slot(1, 9), empty]);
        let mark = slot(1, 9).idle_mark();
        assert_eq!(keeper.take_marks(), vec![(7, vec![mark, 0])]);
        assert_eq!(keeper.take_marks(), vec![], "written once");

        // Another hop took it on CPU 0 and counted 2; hop 1 came back on CPU 1.
        let totals = read(&mut keeper, &[slot(2, 2), slot(1, 1)]);
        assert_eq!(totals[&1], 9 + 1);
        assert_eq!(totals[&2], 2);
        assert_eq!(keeper.taken(), 1);
        assert_eq!(
            keeper.take_marks(),
            vec![(7, vec![0, 0])],
            "the mark is cleared"
        );
    }

    /// A marked hop that counts again is unmarked and keeps its slot.
    #[test]
    fn a_hop_busy_again_is_unmarked() {
        let mut keeper = SlotKeeper::default();
        for _ in 0..3 {
            read(&mut keeper, &[slot(1, 3)]);
        }
        assert_eq!(keeper.take_marks().len(), 1);
        let totals = read(&mut keeper, &[slot(1, 5)]);
        assert_eq!(totals[&1], 5);
        assert_eq!(keeper.take_marks(), vec![(7, vec![0])]);
        assert_eq!(keeper.taken(), 0);
    }
}
