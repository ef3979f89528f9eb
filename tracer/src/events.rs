//! Reading what the kernel programs emit: ring-buffer records decoded into owned
//! [`KernelEvent`]s (a [`PacketEvent`], [`RouteEvent`] or [`NatEvent`] by its header's
//! kind), and the per-CPU loss counters summed.
//!
//! Two ring buffers carry the same records: `FAILURES` the drops and ICMP errors
//! ([`tracer_common::is_failure`]), `EVENTS` every other hop. A flood of hops fills
//! `EVENTS` and loses hops (counted); the failures keep their own room. A drain merges the
//! two into time order (`in_time_order`): the assembler joins each hop to the newest one
//! of its packet (`journey::assemble`), so a drop must not come before the hops that led
//! to it.

mod batch;
mod slots;

pub use slots::SlotKeeper;

use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{Map, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
};
use thiserror::Error;
use tracer_common::{
    ABI_VERSION, HopCount, HopKey, HopSlot, LossCounters, NatEvent, PacketEvent, RouteEvent, kind,
    maps,
};

use crate::ebpf::LoadError;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {got} bytes, expected {expected}")]
    Size { got: usize, expected: usize },
    #[error("record written by ABI revision {0}, this tracer reads {ABI_VERSION}")]
    Abi(u8),
}

/// One ring-buffer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelEvent {
    Packet(PacketEvent),
    Route(RouteEvent),
    Nat(NatEvent),
}

impl KernelEvent {
    /// The packet as the hook saw it (every record begins with one).
    pub fn packet(&self) -> &PacketEvent {
        match self {
            Self::Packet(p) => p,
            Self::Route(r) => &r.packet,
            Self::Nat(n) => &n.packet,
        }
    }
}

/// Decodes one ring-buffer record; checks its length (by its kind) and ABI revision first.
pub fn decode(record: &[u8]) -> Result<KernelEvent, DecodeError> {
    let at = std::mem::offset_of!(tracer_common::EventHeader, kind);
    let header_kind = record
        .get(at..at + 2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]));
    match header_kind {
        Some(kind::FIB_LOOKUP) => {
            read::<RouteEvent>(record, |e| e.packet.header.abi).map(KernelEvent::Route)
        }
        Some(kind::NAT) => read::<NatEvent>(record, |e| e.packet.header.abi).map(KernelEvent::Nat),
        _ => read::<PacketEvent>(record, |e| e.header.abi).map(KernelEvent::Packet),
    }
}

fn read<T: aya::Pod>(record: &[u8], abi: impl Fn(&T) -> u8) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    if record.len() != expected {
        return Err(DecodeError::Size {
            got: record.len(),
            expected,
        });
    }
    // SAFETY: length checked; the ABI's events are plain old data valid for any bytes;
    // read_unaligned because ring-buffer records are only 8-byte aligned by contract.
    let event = unsafe { record.as_ptr().cast::<T>().read_unaligned() };
    if abi(&event) != ABI_VERSION {
        return Err(DecodeError::Abi(abi(&event)));
    }
    Ok(event)
}

/// The userspace end of the `FAILURES` and `EVENTS` ring buffers.
pub struct EventStream {
    /// `FAILURES` first: it is drained first, so its smaller room is freed first.
    rings: [RingBuf<MapData>; 2],
    /// Records that failed to decode (a mismatched build, never expected).
    pub undecodable: u64,
}

fn take_ring(ebpf: &mut Ebpf, name: &'static str) -> Result<RingBuf<MapData>, LoadError> {
    let map = ebpf.take_map(name).ok_or(LoadError::NoMap(name))?;
    RingBuf::try_from(map).map_err(LoadError::map(name))
}

impl EventStream {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        Ok(Self {
            rings: [
                take_ring(ebpf, maps::FAILURES)?,
                take_ring(ebpf, maps::EVENTS)?,
            ],
            undecodable: 0,
        })
    }

    /// Waits up to `timeout` for records to be available; true if there may be some.
    /// Records that arrive during the wait do not end it (the programs never wake us), so
    /// this suits a one-off check; a session drains with [`Self::next_batch`].
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pollfds = self.rings.each_ref().map(|ring| libc::pollfd {
            fd: ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: a valid array of pollfds, its length passed with it.
        match unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, millis) } {
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
            n => Ok(n > 0),
        }
    }

    /// Drains every record available now into `out`, in time order; returns how many were
    /// read. A packet's hops are written before its drop, so they are in `EVENTS` by the
    /// time its drop is drained from `FAILURES`: one drain has them all.
    pub fn drain_into(&mut self, out: &mut Vec<KernelEvent>) -> usize {
        let start = out.len();
        let [failures, hops] = &mut self.rings;
        let read = drain_ring(failures, out, &mut self.undecodable);
        let hops_from = out.len();
        let read = read + drain_ring(hops, out, &mut self.undecodable);
        if hops_from > start && out.len() > hops_from {
            in_time_order(&mut out[start..]);
        }
        read
    }

    /// Drains the ring into `out`, first sleeping when the last drain found it nearly
    /// idle: the programs never wake us (see [`tracer_common::EVENTS_POLL_MS`]), so this
    /// is how a quiet ring is watched without spinning.
    pub fn next_batch(&mut self, last_read: usize, out: &mut Vec<KernelEvent>) -> usize {
        if last_read < tracer_common::EVENTS_BUSY_BATCH {
            std::thread::sleep(Duration::from_millis(tracer_common::EVENTS_POLL_MS));
        }
        self.drain_into(out)
    }
}

/// Decodes every record `ring` holds now into `out`; returns how many were read.
fn drain_ring(
    ring: &mut RingBuf<MapData>,
    out: &mut Vec<KernelEvent>,
    undecodable: &mut u64,
) -> usize {
    let mut read = 0;
    while let Some(record) = ring.next() {
        read += 1;
        match decode(&record) {
            Ok(event) => out.push(event),
            Err(_) => *undecodable += 1,
        }
    }
    read
}

/// Orders a drain's records by their kernel time, keeping the order of records with equal
/// times. A drain is two runs already in (near) time order — each ring's records in the
/// order they were written — so the stable sort merges them in about linear time.
fn in_time_order(records: &mut [KernelEvent]) {
    records.sort_by_key(|r| r.packet().header.ts_ns);
}

/// Sums the per-CPU loss counters.
pub fn loss(ebpf: &Ebpf) -> Result<LossCounters, LoadError> {
    let map = ebpf.map(maps::LOSS).ok_or(LoadError::NoMap(maps::LOSS))?;
    let array =
        PerCpuArray::<_, LossCounters>::try_from(map).map_err(LoadError::map(maps::LOSS))?;
    let per_cpu = array.get(&0, 0).map_err(LoadError::map(maps::LOSS))?;
    Ok(per_cpu
        .iter()
        .fold(LossCounters::default(), |sum, c| LossCounters {
            ringbuf_full: sum.ringbuf_full + c.ringbuf_full,
            parse_failed: sum.parse_failed + c.parse_failed,
            failures_lost: sum.failures_lost + c.failures_lost,
            uncounted: sum.uncounted + c.uncounted,
            counted_evictable: sum.counted_evictable + c.counted_evictable,
        }))
}

/// What a sampling session's TC hooks counted, its CPUs' counts summed per hop: running
/// totals since the programs were loaded.
#[derive(Debug, Default)]
pub struct HopRows {
    /// From `HOP_SLOTS`: every hop a slot holds (on any CPU).
    pub slots: Vec<(HopKey, HopCount)>,
    /// What hops counted in slots other hops took since the last read (`SlotKeeper`).
    pub retired: Vec<(HopKey, HopCount)>,
    /// From `HOP_COUNTS`, whose entries start again from 0 when evicted.
    pub evictable: Vec<(HopKey, HopCount)>,
}

pub fn hop_counts(ebpf: &Ebpf, keeper: &mut SlotKeeper) -> Result<HopRows, LoadError> {
    let slots_map = ebpf
        .map(maps::HOP_SLOTS)
        .ok_or(LoadError::NoMap(maps::HOP_SLOTS))?;
    let counts_map = ebpf
        .map(maps::HOP_COUNTS)
        .ok_or(LoadError::NoMap(maps::HOP_COUNTS))?;
    let mut rows = HopRows::default();
    // Each CPU's slot may hold a different hop. The keeper sees a read only once it is
    // whole, so a batch refused halfway does not count as a read of its own.
    let mut slot_rows: Vec<(u32, Vec<HopSlot>)> = Vec::new();
    let batched = match (aya::util::nr_cpus(), map_fd(slots_map), map_fd(counts_map)) {
        (Ok(cpus), Some(slots_fd), Some(counts_fd)) => {
            batch::for_each_per_cpu(slots_fd, cpus, |index: u32, per_cpu: &[HopSlot]| {
                slot_rows.push((index, per_cpu.to_vec()))
            })
            .and_then(|()| {
                batch::for_each_per_cpu(counts_fd, cpus, |key, per_cpu| {
                    rows.evictable.push((key, sum(per_cpu)))
                })
            })
            .is_ok()
        }
        _ => false,
    };
    let mut slots = HashMap::new();
    if batched {
        for (index, per_cpu) in &slot_rows {
            keeper.observe(*index, per_cpu, &mut slots);
        }
    } else {
        // The kernel refused a batch read (before 5.6 it has none): one call per index and
        // per entry. A slot index that cannot be read fails the whole read: its hops would
        // read as having left their slots.
        rows.evictable.clear();
        let array = PerCpuArray::<_, HopSlot>::try_from(slots_map)
            .map_err(LoadError::map(maps::HOP_SLOTS))?;
        let mut per_index = Vec::with_capacity(array.len() as usize);
        for index in 0..array.len() {
            let per_cpu = array
                .get(&index, 0)
                .map_err(LoadError::map(maps::HOP_SLOTS))?;
            per_index.push(per_cpu);
        }
        for (index, per_cpu) in (0..).zip(&per_index) {
            keeper.observe(index, per_cpu, &mut slots);
        }
        let table = PerCpuHashMap::<_, HopKey, HopCount>::try_from(counts_map)
            .map_err(LoadError::map(maps::HOP_COUNTS))?;
        // An entry may vanish between the key's read and its value's: skip it.
        for (key, per_cpu) in table.iter().flatten() {
            rows.evictable.push((key, sum(&per_cpu)));
        }
    }
    rows.slots = slots.into_iter().collect();
    rows.retired = keeper.take_retired();
    Ok(rows)
}

/// Writes the marks of the slots the last read found idle, or no longer idle
/// (`SlotKeeper`).
pub fn mark_idle_slots(ebpf: &mut Ebpf, keeper: &mut SlotKeeper) -> Result<(), LoadError> {
    let rows = keeper.take_marks();
    if rows.is_empty() {
        return Ok(());
    }
    let Some(map) = ebpf.map_mut(maps::SLOT_IDLE) else {
        rows.iter().for_each(|(index, _)| keeper.unwritten(*index));
        return Err(LoadError::NoMap(maps::SLOT_IDLE));
    };
    let mut marks = match PerCpuArray::<_, u64>::try_from(map) {
        Ok(marks) => marks,
        Err(error) => {
            rows.iter().for_each(|(index, _)| keeper.unwritten(*index));
            return Err(LoadError::map(maps::SLOT_IDLE)(error));
        }
    };
    let mut failed = None;
    for (index, per_cpu) in rows {
        let written = PerCpuValues::try_from(per_cpu)
            .map_err(MapError::from)
            .and_then(|values| marks.set(index, values, 0));
        match written {
            Ok(()) => keeper.written(index),
            Err(error) => {
                keeper.unwritten(index);
                failed.get_or_insert(error);
            }
        }
    }
    failed.map_or(Ok(()), |error| Err(LoadError::map(maps::SLOT_IDLE)(error)))
}

/// The descriptor of a loaded per-CPU map, for the calls aya does not make.
fn map_fd(map: &Map) -> Option<BorrowedFd<'_>> {
    match map {
        Map::PerCpuArray(data) | Map::PerCpuLruHashMap(data) | Map::PerCpuHashMap(data) => {
            Some(data.fd().as_fd())
        }
        _ => None,
    }
}

fn sum(per_cpu: &[HopCount]) -> HopCount {
    let mut sum = HopCount::default();
    per_cpu.iter().for_each(|c| add(&mut sum, c));
    sum
}

fn add(sum: &mut HopCount, count: &HopCount) {
    sum.packets += count.packets;
    sum.bytes += count.bytes;
}

/// Adds addresses to the `FILTER_ADDRS` map, and their bits to `FOLLOW_BITS`: packets
/// from or to them are emitted.
pub fn follow_addresses(ebpf: &mut Ebpf, addrs: &[std::net::Ipv4Addr]) -> Result<(), LoadError> {
    // Network byte order, as the programs read it from the packet.
    let keys: Vec<u32> = addrs
        .iter()
        .map(|a| u32::from_ne_bytes(a.octets()))
        .collect();
    let map = ebpf
        .map_mut(maps::FILTER_ADDRS)
        .ok_or(LoadError::NoMap(maps::FILTER_ADDRS))?;
    let mut filter = aya::maps::HashMap::<_, u32, u8>::try_from(map)
        .map_err(LoadError::map(maps::FILTER_ADDRS))?;
    for &key in &keys {
        filter
            .insert(key, 1, 0)
            .map_err(LoadError::map(maps::FILTER_ADDRS))?;
    }
    // Bits are set after the map entries, so a set bit always has its entry behind it.
    let map = ebpf
        .map_mut(maps::FOLLOW_BITS)
        .ok_or(LoadError::NoMap(maps::FOLLOW_BITS))?;
    let mut bits =
        aya::maps::Array::<_, u64>::try_from(map).map_err(LoadError::map(maps::FOLLOW_BITS))?;
    for &key in &keys {
        let (word, bit) = tracer_common::follow_bits::slot(key);
        let old = bits
            .get(&word, 0)
            .map_err(LoadError::map(maps::FOLLOW_BITS))?;
        bits.set(word, old | bit, 0)
            .map_err(LoadError::map(maps::FOLLOW_BITS))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracer_common::EventHeader;

    use super::*;

    fn bytes_of(event: &PacketEvent) -> Vec<u8> {
        // SAFETY: PacketEvent is plain old data without padding.
        unsafe {
            std::slice::from_raw_parts((&raw const *event).cast::<u8>(), size_of::<PacketEvent>())
                .to_vec()
        }
    }

    #[test]
    fn decodes_a_record_and_checks_length_and_abi() {
        let event = PacketEvent {
            header: EventHeader {
                abi: ABI_VERSION,
                kind: kind::TC_INGRESS,
                ..Default::default()
            },
            saddr: u32::from_ne_bytes([10, 0, 0, 1]),
            ..Default::default()
        };
        let bytes = bytes_of(&event);
        assert_eq!(decode(&bytes), Ok(KernelEvent::Packet(event)));
        assert_eq!(
            decode(&bytes[..10]),
            Err(DecodeError::Size {
                got: 10,
                expected: 96
            })
        );
        let mut other_abi = event;
        other_abi.header.abi = ABI_VERSION + 1;
        assert_eq!(
            decode(&bytes_of(&other_abi)),
            Err(DecodeError::Abi(ABI_VERSION + 1))
        );
    }

    #[test]
    fn a_route_record_is_read_by_its_kind() {
        let route = RouteEvent {
            packet: PacketEvent {
                header: EventHeader {
                    abi: ABI_VERSION,
                    kind: kind::FIB_LOOKUP,
                    ..Default::default()
                },
                ..Default::default()
            },
            table: 254,
            oif: 3,
            ..Default::default()
        };
        // SAFETY: RouteEvent is plain old data without padding.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const route).cast::<u8>(), size_of::<RouteEvent>())
        };
        assert_eq!(decode(bytes), Ok(KernelEvent::Route(route)));
        assert_eq!(
            decode(&bytes[..96]),
            Err(DecodeError::Size {
                got: 96,
                expected: 112
            })
        );
    }

    /// A drain's failures (drained first) and hops, merged into the order they happened;
    /// records of one time keep their drained order.
    #[test]
    fn a_drain_is_merged_into_time_order() {
        let at = |ts_ns: u64, kind: u16, ip_id: u16| {
            KernelEvent::Packet(PacketEvent {
                header: EventHeader {
                    ts_ns,
                    kind,
                    abi: ABI_VERSION,
                    ..Default::default()
                },
                ip_id,
                ..Default::default()
            })
        };
        let mut drained = vec![
            at(40, kind::KFREE_SKB, 1),
            at(90, kind::KFREE_SKB, 2),
            at(10, kind::TC_EGRESS, 1),
            at(20, kind::TC_INGRESS, 1),
            at(30, kind::TC_EGRESS, 1),
            at(90, kind::TC_EGRESS, 3),
        ];
        in_time_order(&mut drained);
        let order: Vec<(u64, u16)> = drained
            .iter()
            .map(|r| (r.packet().header.ts_ns, r.packet().ip_id))
            .collect();
        assert_eq!(
            order,
            [(10, 1), (20, 1), (30, 1), (40, 1), (90, 2), (90, 3)]
        );
    }

    #[test]
    fn follow_bits_spread_pod_addresses() {
        // A /20 of Pod addresses, as a Calico cluster hands them out.
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let addr = u32::from_ne_bytes([10, 244, (i >> 8) as u8 | 0xb0, i as u8]);
            let (word, bit) = tracer_common::follow_bits::slot(addr);
            assert!(word < tracer_common::follow_bits::WORDS);
            assert_eq!(bit.count_ones(), 1);
            seen.insert((word, bit));
        }
        // Near-random placement of 4096 keys in 65536 bits leaves ~97% distinct.
        assert!(seen.len() > 3800, "only {} distinct bits", seen.len());
    }
}
