//! Giving `HOP_SLOTS` slots back to new hops.
//!
//! A CPU's slot keeps the first hop that hashed to it. Over a long session of short
//! connections every slot would come to hold a hop long ended, and each new hop would be
//! counted in the costlier `HOP_COUNTS` map. So each read of the slots (once a second)
//! also finds the slots that read the same [`IDLE_AFTER`] reads in a row and marks them in
//! `SLOT_IDLE` with their [`HopSlot::idle_mark`]: another hop hashing there may take such a
//! slot while it still reads as marked (`tracer-ebpf`'s `count_hop`). Then the slot's hop
//! counted exactly what the last read found, and nothing is lost: when a read finds
//! another hop in a slot the kernel held marked, the earlier hop's count as last read is
//! handed on as retired ([`SlotKeeper::take_retired`]), to stay in its total
//! (`journey::counted::KernelTotals`) as if the slot were still its own.
//!
//! Only a slot whose mark the kernel holds can change hands, so only such a change
//! retires: a read torn by the kernel's write of a slot (its key new, its count old) shows
//! a wrong count for one read, but retires nothing twice. Marks are written only when they
//! change (a hop going idle, or busy again, or its slot taken), one row of per-CPU marks
//! per slot index; a row whose write failed is written again after the next read.

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
    /// What `SLOT_IDLE` was last written with for it.
    written: u64,
}

/// What the slots held at the last read, per index and CPU.
#[derive(Debug, Default)]
pub struct SlotKeeper {
    cpus: usize,
    /// `index * cpus + cpu`.
    seen: Vec<Seen>,
    /// Indexes whose marks changed since [`Self::take_marks`].
    dirty: Vec<bool>,
    /// What hops counted in slots other hops took since the last [`Self::take_retired`].
    retired: Vec<(HopKey, HopCount)>,
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
            // Not a read this keeper can follow: counted all the same, marking nothing.
            for now in per_cpu.iter().filter(|s| s.count.packets != 0) {
                add(totals.entry(now.key).or_default(), &now.count);
            }
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
            let held_marked = seen.written != 0 && seen.written == before.idle_mark();
            if held_marked && (now.key != before.key || now.count.packets < before.count.packets) {
                // Taken while it read as marked: its hop counted exactly `before` here.
                self.retired.push((before.key, before.count));
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

    /// What hops counted in slots other hops took, found since the last call.
    pub fn take_retired(&mut self) -> Vec<(HopKey, HopCount)> {
        std::mem::take(&mut self.retired)
    }

    /// The rows of `SLOT_IDLE` to write: each index whose marks changed, one mark per CPU.
    /// Say how each write went: [`Self::written`], [`Self::unwritten`].
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

    /// The kernel holds the row's marks.
    pub fn written(&mut self, index: u32) {
        let row = index as usize * self.cpus..(index as usize + 1) * self.cpus;
        for seen in &mut self.seen[row] {
            seen.written = seen.mark;
        }
    }

    /// The row could not be written: again after the next read.
    pub fn unwritten(&mut self, index: u32) {
        self.dirty[index as usize] = true;
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

    /// Packets by source port.
    type ByPort = Vec<(u16, u64)>;

    /// One read of slot index 7: what the slots hold by port, and what was retired.
    fn read(keeper: &mut SlotKeeper, per_cpu: &[HopSlot]) -> (ByPort, ByPort) {
        let mut totals = HashMap::new();
        keeper.observe(7, per_cpu, &mut totals);
        let by_port = |rows: Vec<(HopKey, HopCount)>| {
            let mut rows: Vec<_> = rows
                .into_iter()
                .map(|(k, c)| (k.sport, c.packets))
                .collect();
            rows.sort_unstable();
            rows
        };
        let held = by_port(totals.into_iter().collect());
        (held, by_port(keeper.take_retired()))
    }

    /// Takes the marks to write, as written.
    fn write(keeper: &mut SlotKeeper) -> Vec<(u32, Vec<u64>)> {
        let rows = keeper.take_marks();
        for (index, _) in &rows {
            keeper.written(*index);
        }
        rows
    }

    /// A slot is marked once it read the same twice more; a hop that took it from the
    /// marked one starts from 1, and the earlier hop's count is retired, once.
    #[test]
    fn an_idle_slot_is_marked_and_its_hop_retired_once_another_takes_it() {
        let mut keeper = SlotKeeper::default();
        let empty = HopSlot::default();
        read(&mut keeper, &[slot(1, 4), empty]);
        assert_eq!(write(&mut keeper), vec![], "busy or empty: no mark");
        read(&mut keeper, &[slot(1, 9), empty]);
        read(&mut keeper, &[slot(1, 9), empty]);
        assert_eq!(write(&mut keeper), vec![], "unchanged once");
        read(&mut keeper, &[slot(1, 9), empty]);
        let mark = slot(1, 9).idle_mark();
        assert_eq!(write(&mut keeper), vec![(7, vec![mark, 0])]);
        assert_eq!(write(&mut keeper), vec![], "written once");

        // Another hop took it on CPU 0 and counted 2; hop 1 came back on CPU 1.
        let (held, retired) = read(&mut keeper, &[slot(2, 2), slot(1, 1)]);
        assert_eq!(held, vec![(1, 1), (2, 2)]);
        assert_eq!(retired, vec![(1, 9)]);
        assert_eq!(keeper.taken(), 1);
        assert_eq!(
            write(&mut keeper),
            vec![(7, vec![0, 0])],
            "the mark is cleared"
        );
        let (_, retired) = read(&mut keeper, &[slot(2, 2), slot(1, 1)]);
        assert_eq!(retired, vec![], "retired once");
    }

    /// A marked hop that counts again is unmarked and keeps its slot.
    #[test]
    fn a_hop_busy_again_is_unmarked() {
        let mut keeper = SlotKeeper::default();
        for _ in 0..3 {
            read(&mut keeper, &[slot(1, 3)]);
        }
        assert_eq!(write(&mut keeper).len(), 1);
        let (held, _) = read(&mut keeper, &[slot(1, 5)]);
        assert_eq!(held, vec![(1, 5)]);
        assert_eq!(write(&mut keeper), vec![(7, vec![0])]);
        assert_eq!(keeper.taken(), 0);
    }

    /// Only a slot the kernel holds marked changes hands: a read torn by the kernel's write
    /// (the new hop's key, the old one's count) retires the old hop once, and nothing more
    /// when the next read shows the new hop's own count.
    #[test]
    fn a_torn_read_retires_nothing_twice() {
        let mut keeper = SlotKeeper::default();
        for _ in 0..3 {
            read(&mut keeper, &[slot(1, 9)]);
        }
        write(&mut keeper);
        let (_, retired) = read(&mut keeper, &[slot(2, 9)]);
        assert_eq!(retired, vec![(1, 9)]);
        write(&mut keeper);
        let (held, retired) = read(&mut keeper, &[slot(2, 1)]);
        assert_eq!((held, retired), (vec![(2, 1)], vec![]));
        // Nor does a change of a slot whose mark was never written.
        let mut keeper = SlotKeeper::default();
        for _ in 0..3 {
            read(&mut keeper, &[slot(1, 9)]);
        }
        let rows = keeper.take_marks();
        keeper.unwritten(rows[0].0);
        let (_, retired) = read(&mut keeper, &[slot(2, 1)]);
        assert_eq!(retired, vec![]);
    }
}
