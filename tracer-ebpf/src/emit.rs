//! Maps, load-time globals, and the one way events leave the kernel.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    ABI_VERSION, HOP_SLOTS_LEN, HopCount, HopKey, HopSlot, LossCounters, NatEvent, PacketEvent,
    RouteEvent, follow_bits, is_failure, sample,
};

/// A ring-buffer record: one of the ABI's event structs, each starting with the packet.
pub trait Record: Copy {
    fn packet(&mut self) -> &mut PacketEvent;
}

impl Record for PacketEvent {
    #[inline(always)]
    fn packet(&mut self) -> &mut PacketEvent {
        self
    }
}

impl Record for RouteEvent {
    #[inline(always)]
    fn packet(&mut self) -> &mut PacketEvent {
        &mut self.packet
    }
}

impl Record for NatEvent {
    #[inline(always)]
    fn packet(&mut self) -> &mut PacketEvent {
        &mut self.packet
    }
}

/// 4 MiB: about 43,000 events in flight before userspace must catch up.
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// 512 KiB: about 5,000 drops and ICMP errors between two drains (10 ms), whatever fills
/// `EVENTS` meanwhile.
#[map(name = "FAILURES")]
static FAILURES: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

#[map(name = "LOSS")]
static LOSS: PerCpuArray<LossCounters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "FILTER_ADDRS")]
static FILTER_ADDRS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

#[map(name = "FOLLOW_BITS")]
static FOLLOW_BITS: Array<u64> = Array::with_max_entries(follow_bits::WORDS, 0);

/// 16,384 hops of followed tuples: a couple of thousand connections at once, each crossing
/// 4–10 hooks. Least recently used: when it is full, an idle connection's hop makes room
/// (userspace has read its total, and carries it on if the hop comes back); what it
/// counted after that read is lost, which userspace finds from
/// `LossCounters::counted_evictable`. An insert that fails anyway is counted in
/// `LossCounters::uncounted`. Userspace sizes it to one entry when the session does not
/// sample.
#[map(name = "HOP_COUNTS")]
static HOP_COUNTS: LruPerCpuHashMap<HopKey, HopCount> =
    LruPerCpuHashMap::with_max_entries(16384, 0);

/// Where a hop is counted first (`tracer_common::maps::HOP_SLOTS`); sized to one slot by
/// userspace when the session does not sample.
#[map(name = "HOP_SLOTS")]
static HOP_SLOTS: PerCpuArray<HopSlot> = PerCpuArray::with_max_entries(HOP_SLOTS_LEN, 0);

/// Slots userspace found idle (`tracer_common::maps::SLOT_IDLE`); sized as `HOP_SLOTS`.
#[map(name = "SLOT_IDLE")]
static SLOT_IDLE: PerCpuArray<u64> = PerCpuArray::with_max_entries(HOP_SLOTS_LEN, 0);

#[unsafe(no_mangle)]
static TRACE_ALL: u8 = 0;

#[unsafe(no_mangle)]
static SAMPLE_SHIFT: u8 = 0;

/// Reads a load-time constant; `read_volatile` stops the compiler from folding in the
/// zero it was compiled with, since userspace patches the value before loading.
#[inline(always)]
pub fn global<T: Copy>(value: &T) -> T {
    // SAFETY: `value` points at a static in .rodata.
    unsafe { core::ptr::read_volatile(value) }
}

/// Whether every IPv4 packet is emitted (`TRACE_ALL`), regardless of addresses.
#[inline(always)]
pub fn trace_all() -> bool {
    global(&TRACE_ALL) != 0
}

/// One in `2^shift` followed packets is traced hop by hop (`tracer_common::sample`); 0:
/// every one, and nothing is counted.
#[inline(always)]
pub fn sample_shift() -> u8 {
    global(&SAMPLE_SHIFT)
}

/// Whether every hook traces this packet (the same answer at every hook it crosses).
#[inline(always)]
pub fn traced(packet: &PacketEvent) -> bool {
    sample::traced(packet, sample_shift())
}

/// The [`HopKey`] of a parsed event at a TC hook.
#[inline(always)]
pub fn hop_key(packet: &PacketEvent, hook: u16, netns_cookie: u64) -> HopKey {
    HopKey {
        netns_cookie,
        ifindex: packet.ifindex,
        hook,
        ip_proto: packet.ip_proto,
        _pad0: 0,
        saddr: packet.saddr,
        daddr: packet.daddr,
        sport: packet.sport,
        dport: packet.dport,
        _pad1: 0,
    }
}

/// Counts a packet of `bytes` IP bytes at a TC hook, traced or not. `followed`: its
/// addresses were confirmed in `FILTER_ADDRS`; otherwise only their `FOLLOW_BITS` were
/// seen, and the map is asked before the hop takes a slot or an entry (a slot that holds
/// the very key was confirmed when it was taken).
///
/// First this CPU's slot for the key in `HOP_SLOTS`: an inlined array lookup and a
/// compare. The hop takes the slot if it is empty, or if its hop was marked idle and has
/// counted nothing since (`SLOT_IDLE`: userspace read all of it). Else `HOP_COUNTS`, where an unseen hop is inserted
/// by the first CPU to see it (`BPF_NOEXIST`: a concurrent insert of the same key by
/// another CPU loses nothing, as each CPU's value is its own and the retry below finds
/// the entry).
#[inline(always)]
pub fn count_hop(key: &HopKey, bytes: u64, followed: bool) {
    let index = key.slot();
    if let Some(slot) = HOP_SLOTS.get_ptr_mut(index) {
        // SAFETY: this CPU's slot: no other program writes it concurrently.
        let slot = unsafe { &mut *slot };
        if slot.count.packets != 0 && slot.key == *key {
            slot.count.packets += 1;
            slot.count.bytes += bytes;
            return;
        }
        if !followed && !wanted(key.saddr, key.daddr) {
            return;
        }
        if slot.count.packets == 0 || idle(index, slot) {
            slot.key = *key;
            slot.count = HopCount { packets: 1, bytes };
            return;
        }
    } else if !followed && !wanted(key.saddr, key.daddr) {
        return;
    }
    if let Some(count) = HOP_COUNTS.get_ptr_mut(key) {
        // SAFETY: this CPU's value: no other program writes it concurrently.
        unsafe {
            (*count).packets += 1;
            (*count).bytes += bytes;
        }
        count_loss(|c| c.counted_evictable += 1);
        return;
    }
    let first = HopCount { packets: 1, bytes };
    const BPF_NOEXIST: u64 = 1;
    if HOP_COUNTS.insert(key, &first, BPF_NOEXIST).is_err() {
        // Another CPU inserted it meanwhile (a per-CPU map's entry has a value per CPU),
        // or the map is full.
        match HOP_COUNTS.get_ptr_mut(key) {
            // SAFETY: as above.
            Some(count) => unsafe {
                (*count).packets += 1;
                (*count).bytes += bytes;
            },
            None => {
                count_loss(|c| c.uncounted += 1);
                return;
            }
        }
    }
    count_loss(|c| c.counted_evictable += 1);
}

/// Whether userspace marked this CPU's slot idle as it still reads.
#[inline(always)]
fn idle(index: u32, slot: &HopSlot) -> bool {
    SLOT_IDLE
        .get(index)
        .is_some_and(|&mark| mark != 0 && mark == slot.idle_mark())
}

/// Whether a packet between these addresses is one we follow.
#[inline(always)]
pub fn wanted(saddr: u32, daddr: u32) -> bool {
    if trace_all() {
        return true;
    }
    (may_follow(saddr) || may_follow(daddr))
        // SAFETY: the map values are plain u8 and never borrowed across calls.
        && unsafe { FILTER_ADDRS.get(saddr).is_some() || FILTER_ADDRS.get(daddr).is_some() }
}

/// False when `addr` is certainly not followed: its bit in `FOLLOW_BITS` is clear.
#[inline(always)]
pub fn may_follow(addr: u32) -> bool {
    let (word, bit) = follow_bits::slot(addr);
    FOLLOW_BITS.get(word).is_some_and(|w| w & bit != 0)
}

/// Sets every byte of `event` to zero with 8-byte stores (twelve for a `PacketEvent`).
/// `PacketEvent::default()` compiles to a call of a byte-at-a-time `memset` on this target
/// (about 500 instructions per event); volatile stores keep LLVM from turning these back
/// into that call.
#[inline(always)]
pub fn zero<T: Record>(event: &mut T) {
    let words_in = const {
        assert!(size_of::<T>() % 8 == 0);
        size_of::<T>() / 8
    };
    let words = core::ptr::from_mut(event).cast::<u64>();
    for i in 0..words_in {
        // SAFETY: in bounds (size asserted above); the ABI's events are 8-byte aligned and
        // any bit pattern, zero included, is a valid value of them.
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// A zeroed event in `slot` (on the program's stack), ready to fill.
#[inline(always)]
pub fn zeroed<T: Record>(slot: &mut MaybeUninit<T>) -> &mut T {
    // SAFETY: `zero` writes every byte before the reference is handed out.
    unsafe {
        zero(&mut *slot.as_mut_ptr());
        &mut *slot.as_mut_ptr()
    }
}

/// Stamps the header and hands the event to userspace — a failure (a drop, an ICMP error)
/// through its own ring buffer, so that a flood of ordinary hops cannot crowd it out —
/// counting it if the ring is full.
#[inline(always)]
pub fn submit<T: Record>(event: &mut T, kind: u16, netns_cookie: u64) {
    let packet = event.packet();
    let failure = is_failure(kind, packet.ip_proto, packet.icmp_type);
    let header = &mut packet.header;
    header.kind = kind;
    header.abi = ABI_VERSION;
    header.netns_cookie = netns_cookie;
    // SAFETY: both helpers take no arguments and cannot fail.
    unsafe {
        header.ts_ns = bpf_ktime_get_ns();
        header.cpu = bpf_get_smp_processor_id();
    }
    // Never wake userspace: it drains on a timer (`EVENTS_POLL_MS`). A wakeup is an
    // interrupt and a context switch, dearer than the record itself at high rates.
    let ring = if failure { &FAILURES } else { &EVENTS };
    if ring
        .output::<T>(&*event, u64::from(BPF_RB_NO_WAKEUP))
        .is_err()
    {
        count_loss(|c| {
            c.ringbuf_full += 1;
            c.failures_lost += u64::from(failure);
        });
    }
}

#[inline(always)]
pub fn count_loss(bump: impl FnOnce(&mut LossCounters)) {
    if let Some(counters) = LOSS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, so no other program writes it concurrently.
        bump(unsafe { &mut *counters });
    }
}
