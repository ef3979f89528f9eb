//! Counted hops: what a sampling session's kernel counted at each TC hook (`follow --sample
//! N`, `tracer_common::sample`). One packet in N of a busy flow is traced hop by hop and
//! becomes a journey; every followed packet, traced or not, is counted at each TC hook it
//! crosses under the 5-tuple that hook saw. A count is a running total since the session's
//! programs were loaded; the source hands on the totals of the places that changed about
//! once a second ([`HopCounts`], an `Input` of the pipeline and a record of the recording), and
//! `flows::FlowTable` attributes them to the paths whose traced packets crossed the same
//! places ([`HopPlace::of`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::observation::{Hook, IpProto, Observation, Tuple};

/// One TC hook of one interface, and a 5-tuple as that hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopPlace {
    pub netns_cookie: u64,
    pub ifindex: u32,
    /// `Ingress` or `Egress`: only TC hooks count.
    pub hook: Hook,
    pub tuple: Tuple,
}

impl HopPlace {
    /// Where the kernel counted, as its map key says.
    pub fn from_kernel(key: &tracer_common::HopKey) -> Option<Self> {
        let hook = match key.hook {
            tracer_common::kind::TC_INGRESS => Hook::Ingress,
            tracer_common::kind::TC_EGRESS => Hook::Egress,
            _ => return None,
        };
        Some(Self {
            netns_cookie: key.netns_cookie,
            ifindex: key.ifindex,
            hook,
            tuple: Tuple {
                proto: IpProto::from_number(key.ip_proto),
                src: u32::from_be(key.saddr).into(),
                dst: u32::from_be(key.daddr).into(),
                sport: u16::from_be(key.sport),
                dport: u16::from_be(key.dport),
            },
        })
    }

    /// The place a traced packet's observation was counted at: TC hooks only.
    pub fn of(observation: &Observation) -> Option<Self> {
        matches!(observation.hook, Hook::Ingress | Hook::Egress).then_some(Self {
            netns_cookie: observation.netns_cookie,
            ifindex: observation.ifindex,
            hook: observation.hook,
            tuple: observation.tuple,
        })
    }
}

/// Where one traced packet was counted: its connection (the 5-tuple of its first hop) and
/// the places of its TC hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedAt {
    pub connection: Tuple,
    pub places: Vec<HopPlace>,
}

impl CountedAt {
    /// `None` without observations.
    pub fn of(observations: &[Observation]) -> Option<Self> {
        Some(Self {
            connection: observations.first()?.tuple,
            places: observations.iter().filter_map(HopPlace::of).collect(),
        })
    }
}

/// Packets (`sk_buff`s) and their IP bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossed {
    pub packets: u64,
    pub bytes: u64,
}

/// Running totals per place, as read at one time: the places whose totals changed since
/// the source's previous one. Each replaces the totals of the places it names and leaves
/// the others (unchanged, or another source's) as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopCounts {
    /// One in `2^sample_shift` packets was traced by the source that counted these.
    pub sample_shift: u8,
    pub hops: Vec<(HopPlace, Crossed)>,
}

impl HopCounts {
    /// Takes in newer reads, in the order they were made: a place they name gets their
    /// total, in the place it already has; a new place is added. What results replaces the
    /// same totals as all of them applied in turn.
    pub fn absorb<'a>(&mut self, newer: impl IntoIterator<Item = &'a HopCounts>) {
        let mut at: HashMap<HopPlace, usize> = self
            .hops
            .iter()
            .enumerate()
            .map(|(i, (place, _))| (*place, i))
            .collect();
        for counts in newer {
            self.sample_shift = counts.sample_shift;
            for (place, crossed) in &counts.hops {
                match at.get(place) {
                    Some(&i) => self.hops[i].1 = *crossed,
                    None => {
                        at.insert(*place, self.hops.len());
                        self.hops.push((*place, *crossed));
                    }
                }
            }
        }
    }
}

/// A sampling run's totals per place, from the kernel's two tallies: slots that keep their
/// place until it is idle and another takes it (`HOP_SLOTS`; what a place counted in a slot
/// taken since is handed in as retired, exact, by `events::SlotKeeper`), and a map whose
/// entries start again from 0 when it evicts them (`HOP_COUNTS` is least-recently-used): a
/// total there that went down was reset, and what it had reached is carried on. Increments
/// between the last read and an eviction are lost; only idle hops are evicted, so that is
/// little.
#[derive(Debug, Default)]
pub struct KernelTotals {
    seen: HashMap<HopPlace, Seen>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// What earlier lives of the evictable entry had counted.
    base: Crossed,
    /// The evictable entry's value at the last read.
    last: Crossed,
    /// The slots' value at the last read.
    slots: Crossed,
    /// What the place counted in slots other places have taken since.
    retired: Crossed,
    /// The total handed on last.
    reported: Crossed,
}

impl KernelTotals {
    /// Folds one read of both tallies in: every slot held (a place in none has 0 there),
    /// what left the slots since the last read (`retired`), and the map; returns the places
    /// whose totals changed since the last call, with their totals, in a stable order.
    pub fn update(
        &mut self,
        slots: impl IntoIterator<Item = (HopPlace, Crossed)>,
        retired: impl IntoIterator<Item = (HopPlace, Crossed)>,
        evictable: impl IntoIterator<Item = (HopPlace, Crossed)>,
    ) -> Vec<(HopPlace, Crossed)> {
        for seen in self.seen.values_mut() {
            seen.slots = Crossed::default();
        }
        for (place, now) in slots {
            let seen = self.seen.entry(place).or_default();
            seen.slots.packets += now.packets;
            seen.slots.bytes += now.bytes;
        }
        for (place, left) in retired {
            let seen = self.seen.entry(place).or_default();
            seen.retired.packets += left.packets;
            seen.retired.bytes += left.bytes;
        }
        for (place, now) in evictable {
            let seen = self.seen.entry(place).or_default();
            if now.packets < seen.last.packets {
                seen.base.packets += seen.last.packets;
                seen.base.bytes += seen.last.bytes;
            }
            seen.last = now;
        }
        let mut changed = Vec::new();
        for (place, seen) in &mut self.seen {
            let total = Crossed {
                packets: seen.base.packets
                    + seen.last.packets
                    + seen.slots.packets
                    + seen.retired.packets,
                bytes: seen.base.bytes + seen.last.bytes + seen.slots.bytes + seen.retired.bytes,
            };
            if total != seen.reported {
                seen.reported = total;
                changed.push((*place, total));
            }
        }
        // The maps' order is their hash order: sorted, a recording is the same for the same
        // counts.
        changed.sort_by_key(|(place, _)| {
            (
                place.netns_cookie,
                place.ifindex,
                place.hook == Hook::Egress,
                place.tuple.proto,
                place.tuple.src,
                place.tuple.dst,
                place.tuple.sport,
                place.tuple.dport,
            )
        });
        changed
    }

    /// Packets the evictable map counted that no read found: each was counted at an entry
    /// the map evicted after the last read of it (or evicted and made again, and grown past
    /// its old total, between two reads). `counted` is the kernel's running total of what
    /// that map took (`LossCounters::counted_evictable`), read before the map. While
    /// followed traffic flows this is a lower bound (what the map counted between the two
    /// reads hides as much); once the traffic stops it is exact.
    pub fn evicted_unread(&self, counted: u64) -> u64 {
        let read: u64 = self
            .seen
            .values()
            .map(|seen| seen.base.packets + seen.last.packets)
            .sum();
        counted.saturating_sub(read)
    }
}

/// The newest totals of every place counted in a session (all sources).
#[derive(Debug, Default)]
pub struct CountedTotals {
    totals: HashMap<HopPlace, Crossed>,
}

impl CountedTotals {
    pub fn update(&mut self, counts: &HopCounts) {
        for (place, crossed) in &counts.hops {
            self.totals.insert(*place, *crossed);
        }
    }

    pub fn get(&self, place: &HopPlace) -> Option<Crossed> {
        self.totals.get(place).copied()
    }

    /// Every place and its total.
    pub fn iter(&self) -> impl Iterator<Item = (&HopPlace, &Crossed)> {
        self.totals.iter()
    }
}

/// Places and counts for tests across the crate.
#[cfg(test)]
pub(crate) mod fake {
    use std::net::Ipv4Addr;

    use super::*;

    /// A UDP place, told apart by its source port.
    pub fn place(port: u16) -> HopPlace {
        HopPlace {
            netns_cookie: 7,
            ifindex: 2,
            hook: Hook::Egress,
            tuple: Tuple {
                proto: IpProto::Udp,
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2),
                sport: port,
                dport: 53,
            },
        }
    }

    pub fn crossed(packets: u64) -> Crossed {
        Crossed {
            packets,
            bytes: packets * 100,
        }
    }

    /// A read of one place's total.
    pub fn read(port: u16, packets: u64) -> HopCounts {
        HopCounts {
            sample_shift: 6,
            hops: vec![(place(port), crossed(packets))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        fake::{crossed, place},
        *,
    };

    /// Only what changed is handed on; an entry the map evicted and made again starts from
    /// 0 in the kernel, and its total goes on from where it was; slots add to it, and what
    /// a place counted in a slot another took stays in it.
    #[test]
    fn totals_go_on_across_evictions_and_only_changes_are_handed_on() {
        let mut totals = KernelTotals::default();
        let mut update = |slots: &[(HopPlace, Crossed)],
                          retired: &[(HopPlace, Crossed)],
                          evictable: &[(HopPlace, Crossed)]| {
            let mut changed = totals.update(
                slots.iter().copied(),
                retired.iter().copied(),
                evictable.iter().copied(),
            );
            changed.sort_by_key(|(place, _)| place.tuple.sport);
            changed
        };
        let first = update(&[], &[], &[(place(1), crossed(5)), (place(2), crossed(3))]);
        assert_eq!(first, [(place(1), crossed(5)), (place(2), crossed(3))]);
        let unchanged = update(&[], &[], &[(place(1), crossed(5)), (place(2), crossed(4))]);
        assert_eq!(unchanged, [(place(2), crossed(4))]);
        // place(1) evicted, then seen again: the kernel counts from 0.
        let again = update(&[], &[], &[(place(1), crossed(2))]);
        assert_eq!(again, [(place(1), crossed(7))]);
        let more = update(&[], &[], &[(place(1), crossed(4))]);
        assert_eq!(more, [(place(1), crossed(9))]);
        // Another CPU counted place(1) in its slot, place(3) only in slots.
        let slotted = update(&[(place(1), crossed(10)), (place(3), crossed(1))], &[], &[]);
        assert_eq!(slotted, [(place(1), crossed(19)), (place(3), crossed(1))]);
        let quiet = update(&[(place(1), crossed(10)), (place(3), crossed(1))], &[], &[]);
        assert!(quiet.is_empty(), "{quiet:?}");
        // place(3)'s slot went to another place: what it counted there is retired.
        let taken = update(&[(place(1), crossed(10))], &[(place(3), crossed(1))], &[]);
        assert!(taken.is_empty(), "{taken:?}");
        // Back in a slot, it counts from 1 again.
        let back = update(&[(place(1), crossed(10)), (place(3), crossed(2))], &[], &[]);
        assert_eq!(back, [(place(3), crossed(3))]);
    }

    /// What an entry counted after its last read and before its eviction is said, not
    /// silently left out; slots never lose counts and take no part.
    #[test]
    fn counts_an_evicted_entry_took_with_it_are_found() {
        let mut totals = KernelTotals::default();
        // The kernel's map took 8 and the read found all 8.
        totals.update(
            [(place(9), crossed(50))],
            [],
            [(place(1), crossed(5)), (place(2), crossed(3))],
        );
        assert_eq!(totals.evicted_unread(8), 0);
        // place(1) reached 9 and was evicted; made again, it reads 2: 4 went with it.
        totals.update([], [], [(place(1), crossed(2)), (place(2), crossed(3))]);
        assert_eq!(totals.evicted_unread(5 + 4 + 2 + 3), 4);
        // place(2) reached 7 and was evicted, then made again and grown to 6 by the next
        // read: that reads as growth from 3 to 6, and the 7 it had are not in its total.
        totals.update([], [], [(place(1), crossed(2)), (place(2), crossed(6))]);
        assert_eq!(totals.evicted_unread(14 + 4 + 6), 4 + 7);
        // Read before the map, the kernel's total can trail it: never below 0.
        assert_eq!(totals.evicted_unread(0), 0);
    }

    /// Reads taken in together replace what each would have, in turn.
    #[test]
    fn absorbed_reads_replace_totals_as_applying_them_in_turn_would() {
        let two = |a: HopCounts, b: HopCounts| HopCounts {
            sample_shift: 6,
            hops: [a.hops, b.hops].concat(),
        };
        let reads = [
            two(fake::read(1, 1), fake::read(2, 4)),
            two(fake::read(2, 9), fake::read(3, 2)),
            fake::read(1, 3),
        ];
        let mut one = HopCounts::default();
        one.absorb(&reads);
        assert_eq!(one.sample_shift, 6);
        let mut in_turn = CountedTotals::default();
        reads.iter().for_each(|r| in_turn.update(r));
        let mut at_once = CountedTotals::default();
        at_once.update(&one);
        assert_eq!(one.hops.len(), 3);
        for port in 1..=3 {
            assert_eq!(at_once.get(&place(port)), in_turn.get(&place(port)));
        }
        assert_eq!(at_once.get(&place(1)), Some(crossed(3)));
        assert_eq!(at_once.get(&place(2)), Some(crossed(9)));
    }
}
