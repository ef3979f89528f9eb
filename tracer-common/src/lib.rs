//! The kernel/user ABI of `tracer`, and nothing else.
//!
//! Every type here crosses the boundary between the eBPF programs (`tracer-ebpf`) and
//! userspace (`tracer`), through a ring buffer, a map or a load-time global. The rules that
//! keep both sides agreeing:
//!
//! - `#[repr(C)]`, `Copy`, integers only (no `bool`, `Option` or data-carrying enums), explicit
//!   `_pad` fields so no byte is implicit padding, and a size assertion per type. The verifier
//!   rejects programs that copy uninitialised padding into a ring buffer, and userspace
//!   must be able to read any byte it is given.
//! - Every ring-buffer record starts with [`EventHeader`]; its `kind` says which struct
//!   follows and its `abi` says which revision of this file wrote it. Userspace checks the
//!   record length against `size_of` of that struct before reading it.
//! - Addresses and ports are kept in network byte order exactly as they were on the wire
//!   (`u32`/`u16` holding big-endian bytes), so the kernel side copies without swapping and
//!   userspace converts once, in one place.
//! - Which packets are emitted is decided in the kernel from `FILTER_ADDRS`, with
//!   `FOLLOW_BITS` (a Bloom filter of the same addresses, see [`follow_bits`]) in front so
//!   that an unfollowed packet costs two inlined array reads, not two hash lookups.
//! - The programs never wake the reader (`BPF_RB_NO_WAKEUP`); userspace drains the ring
//!   buffer on a timer ([`EVENTS_POLL_MS`]). Records that do not fit are counted in `LOSS`,
//!   never dropped silently.
//!
//! # Packet identity
//!
//! The kernel side does not decide which observations belong to the same packet; it
//! copies, at every hop, the fields that userspace needs to decide it: the IPv4 5-tuple,
//! the IP identification and total length, the TCP sequence/acknowledgement numbers and
//! flags, the ICMP id/sequence, a hash of a UDP payload's first bytes ([`payload_hash`]),
//! and — for VXLAN — both the inner and outer headers. The rule that stitches hops
//! together lives in userspace (see `tracer`'s correlator docs).
//! The network namespace of each observation is identified by its *netns cookie*: the
//! `net_cookie` of the namespace of the device the packet is on (`skb->dev->nd_net`, read
//! through BTF offsets at every hook — `bpf_get_netns_cookie` would name the sending
//! socket's namespace, or none for forwarded packets), which userspace maps to nodes and
//! Pods.
#![no_std]

use core::mem::size_of;

/// Revision of this ABI. Bump on any layout change; userspace refuses other revisions.
/// 3: [`flags::REASON_UNKNOWN`] (drops read without a reason); [`RouteEvent`].
/// 4: [`NatEvent`].
/// 5: [`PacketEvent::payload_hash`] in what was padding.
pub const ABI_VERSION: u8 = 5;

/// Where an event was observed, and so which struct the record is. Numeric ranges leave
/// room per family: TC hooks 1.., tracepoints 20.., kernel functions (fentry or kprobe)
/// 40.., probes used only by `tracer doctor` 60...
pub mod kind {
    /// [`super::PacketEvent`].
    pub const TC_INGRESS: u16 = 1;
    /// [`super::PacketEvent`].
    pub const TC_EGRESS: u16 = 2;
    /// [`super::PacketEvent`], with the drop reason (or [`super::flags::REASON_UNKNOWN`]).
    pub const KFREE_SKB: u16 = 20;
    /// [`super::RouteEvent`]: the `fib_table_lookup` tracepoint, for a received packet.
    pub const FIB_LOOKUP: u16 = 21;
    /// [`super::NatEvent`]: netfilter about to rewrite a packet's addresses
    /// (`nf_nat_manip_pkt`, by fentry or kprobe).
    pub const NAT: u16 = 40;
}

/// Whether an event says a packet failed, and so goes to the `FAILURES` ring buffer
/// ([`maps::FAILURES`]): a drop (`kind::KFREE_SKB`), or any hop of an ICMP error —
/// destination unreachable (fragmentation needed, port unreachable), time exceeded,
/// parameter problem. ICMP errors are rate-limited by the kernel that sends them; drops are
/// not, so only a flood of drops can fill that ring.
#[inline(always)]
pub const fn is_failure(kind: u16, ip_proto: u8, icmp_type: u8) -> bool {
    const ICMP: u8 = 1;
    kind == kind::KFREE_SKB || (ip_proto == ICMP && matches!(icmp_type, 3 | 11 | 12))
}

/// Bits of [`PacketEvent::flags`].
pub mod flags {
    /// The packet is VXLAN-encapsulated: the 5-tuple fields describe the inner packet and
    /// the `outer_*` fields and `vni` the outer one.
    pub const ENCAPSULATED: u8 = 1 << 0;
    /// The IPv4 header has the Don't Fragment bit set.
    pub const DONT_FRAGMENT: u8 = 1 << 1;
    /// The packet is an IPv4 fragment other than the first (no L4 header in it).
    pub const LATER_FRAGMENT: u8 = 1 << 2;
    /// `kfree_skb` only: another `sk_buff` still shares the freed one's data (the kernel's
    /// `skb_cloned()`), so a copy of the packet is freed, not necessarily the packet.
    pub const SHARED_DATA: u8 = 1 << 3;
    /// `kfree_skb` only: the program read no drop reason — the kernel's tracepoint has none
    /// (before Linux 5.17), or the reason-less program was chosen (`--drop-hook no-reason`).
    pub const REASON_UNKNOWN: u8 = 1 << 4;
}

/// First bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Cookie of the network namespace the packet was in at this hop.
    pub netns_cookie: u64,
    /// One of [`kind`].
    pub kind: u16,
    /// [`ABI_VERSION`] of the program that wrote the record.
    pub abi: u8,
    pub _pad0: u8,
    /// CPU the program ran on.
    pub cpu: u32,
}
const _: () = assert!(size_of::<EventHeader>() == 24);

/// One packet seen at one hop: the headers userspace needs to name and correlate it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketEvent {
    pub header: EventHeader,
    /// Interface the packet was on at this hop (in `header.netns_cookie`'s namespace).
    pub ifindex: u32,
    /// `skb->len` at this hop.
    pub skb_len: u32,
    /// Kernel drop reason (`enum skb_drop_reason`) for [`kind::KFREE_SKB`], else 0.
    pub drop_reason: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// IPv4 source and destination, network byte order.
    pub saddr: u32,
    pub daddr: u32,
    /// L4 ports, network byte order; 0 for ICMP.
    pub sport: u16,
    pub dport: u16,
    /// IPv4 identification and total length, network byte order.
    pub ip_id: u16,
    pub ip_len: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP).
    pub ip_proto: u8,
    pub ttl: u8,
    /// Bits from [`flags`].
    pub flags: u8,
    pub tcp_flags: u8,
    /// TCP sequence and acknowledgement numbers, network byte order.
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    /// ICMP type, code, and (echo) identifier and sequence, network byte order.
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
    pub icmp_seq: u16,
    pub _pad1: u16,
    /// Outer IPv4 addresses and UDP ports of a VXLAN packet, network byte order.
    pub outer_saddr: u32,
    pub outer_daddr: u32,
    pub outer_sport: u16,
    pub outer_dport: u16,
    /// VXLAN network identifier (host byte order), when [`flags::ENCAPSULATED`].
    pub vni: u32,
    /// UDP only: [`payload_hash`] of the first 8 payload bytes of the (inner) datagram;
    /// 0 when they were not read: other protocols, a later fragment, a payload shorter
    /// than 8 bytes, or (at a hook that reads the `sk_buff`'s memory) a payload outside
    /// its linear data.
    pub payload_hash: u32,
}
const _: () = assert!(size_of::<PacketEvent>() == 96);

/// One FIB table lookup made to route a received packet, as the `fib_table_lookup`
/// tracepoint reports it: the packet (read from the `sk_buff` its TC ingress hook saw just
/// before on this CPU, so it carries the same invariant fields as every other hop; its
/// `ifindex` is the input device), the table, and what the lookup chose. A record of its
/// own: one per routed packet, and the common event must not grow for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteEvent {
    /// `packet.header.kind` is [`kind::FIB_LOOKUP`].
    pub packet: PacketEvent,
    /// The table looked up (254 main, 255 local, …).
    pub table: u32,
    /// The next hop's gateway, network byte order; 0 for a directly connected route or
    /// when nothing matched.
    pub gateway: u32,
    /// The output device's interface index (in the packet's namespace); 0 when none.
    pub oif: u32,
    /// The lookup's result: 0 a route matched, `-EAGAIN` nothing matched, `-EINVAL` a
    /// blackhole, `-EHOSTUNREACH` unreachable, `-EACCES` prohibit.
    pub err: i32,
}
const _: () = assert!(size_of::<RouteEvent>() == 112);

/// One direction of a conntrack entry, as `struct nf_conntrack_tuple` holds it for IPv4:
/// addresses and ports in network byte order; for ICMP `sport` is the echo identifier and
/// `dport` the type and code bytes, as conntrack keeps them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtTuple {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<CtTuple>() == 16);

/// Which addresses a NAT rewrite changes ([`NatEvent::manip`], the kernel's
/// `enum nf_nat_manip_type`).
pub mod manip {
    /// The source: a masquerade, or conntrack undoing a DNAT on a reply.
    pub const SRC: u8 = 0;
    /// The destination: a DNAT (a Service), or conntrack undoing a masquerade on a reply.
    pub const DST: u8 = 1;
}

/// Netfilter about to rewrite a packet's addresses (`nf_nat_manip_pkt(skb, ct, mtype,
/// dir)`): the packet as it is before the rewrite (so it carries the same invariant fields
/// as every other hop; `ifindex` is the device it is on) and the conntrack entry's two
/// tuples, which say what it becomes. A record of its own: one per rewritten packet, and
/// the common event must not grow for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEvent {
    /// `packet.header.kind` is [`kind::NAT`].
    pub packet: PacketEvent,
    /// The connection as its first packet set it up (`IP_CT_DIR_ORIGINAL`) …
    pub original: CtTuple,
    /// … and as its replies are expected (`IP_CT_DIR_REPLY`).
    pub reply: CtTuple,
    /// One of [`manip`].
    pub manip: u8,
    /// The packet's direction in its connection: 0 original, 1 reply.
    pub dir: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(size_of::<NatEvent>() == 136);

/// The kernel side never wakes userspace (`BPF_RB_NO_WAKEUP`: a wakeup per record is an
/// interrupt and a context switch); userspace drains the ring buffers (`FAILURES`, then
/// `EVENTS`) on a timer instead, sleeping at most this long when it finds little. 10 ms at
/// the highest event rate the programs can produce on these machines (~2.5 M/s) is
/// ~2.6 MB, well inside the 4 MiB `EVENTS` ring.
pub const EVENTS_POLL_MS: u64 = 10;
/// A drain that returns fewer records than this means the ring is nearly idle: sleep
/// [`EVENTS_POLL_MS`] before the next.
pub const EVENTS_BUSY_BATCH: usize = 1024;

/// Load-time constants handed to the programs through `EbpfLoader::override_global`.
pub mod globals {
    /// Nonzero: emit every IPv4 packet; zero: only those whose source or destination is a
    /// key of the `FILTER_ADDRS` map.
    pub const TRACE_ALL: &str = "TRACE_ALL";
    /// `u8`: trace one followed packet in `2^SAMPLE_SHIFT` hop by hop and count the rest
    /// ([`super::sample`]); 0 traces every packet and counts nothing.
    pub const SAMPLE_SHIFT: &str = "SAMPLE_SHIFT";
    /// Kernel struct offsets read from the running kernel's BTF (see `tracer::btf`).
    pub const SKB_HEAD: &str = "OFF_SKB_HEAD";
    pub const SKB_NETWORK_HEADER: &str = "OFF_SKB_NETWORK_HEADER";
    pub const SKB_TRANSPORT_HEADER: &str = "OFF_SKB_TRANSPORT_HEADER";
    pub const SKB_LEN: &str = "OFF_SKB_LEN";
    /// `sk_buff.tail` (an offset from `head` on 64-bit kernels): where the linear data
    /// ends. Bytes past it are not the packet's (its rest is in page fragments).
    pub const SKB_TAIL: &str = "OFF_SKB_TAIL";
    pub const SKB_MARK: &str = "OFF_SKB_MARK";
    pub const SKB_DEV: &str = "OFF_SKB_DEV";
    pub const DEV_IFINDEX: &str = "OFF_DEV_IFINDEX";
    pub const DEV_ND_NET: &str = "OFF_DEV_ND_NET";
    pub const NET_COOKIE: &str = "OFF_NET_COOKIE";
    /// `sk_buff.sk` and `sock.__sk_common.skc_net.net`: the namespace of a packet that no
    /// longer has a device (dropped from a socket's queue).
    pub const SKB_SK: &str = "OFF_SKB_SK";
    pub const SK_NET: &str = "OFF_SK_NET";
    /// Where `sk_buff.cloned` is (its byte, and its bit in that byte), `sk_buff.end` and
    /// `skb_shared_info.dataref`: whether a freed packet's data is still shared
    /// ([`super::flags::SHARED_DATA`]).
    pub const SKB_CLONED_BYTE: &str = "OFF_SKB_CLONED_BYTE";
    pub const SKB_CLONED_BIT: &str = "SKB_CLONED_BIT";
    pub const SKB_END: &str = "OFF_SKB_END";
    pub const SHINFO_DATAREF: &str = "OFF_SHINFO_DATAREF";
    /// `struct flowi4` and `struct fib_nh_common`: what a route lookup asked and chose.
    pub const FLOWI4_IIF: &str = "OFF_FLOWI4_IIF";
    pub const FLOWI4_SADDR: &str = "OFF_FLOWI4_SADDR";
    pub const FLOWI4_DADDR: &str = "OFF_FLOWI4_DADDR";
    pub const NHC_DEV: &str = "OFF_NHC_DEV";
    pub const NHC_GW_FAMILY: &str = "OFF_NHC_GW_FAMILY";
    pub const NHC_GW: &str = "OFF_NHC_GW";
    /// `struct nf_conn`: where `tuplehash[0].tuple` is, and how far apart the two
    /// `tuplehash` entries are. The program reads each `struct nf_conntrack_tuple` whole;
    /// userspace checks its layout is the one the program expects before attaching.
    pub const CT_TUPLE: &str = "OFF_CT_TUPLE";
    pub const CT_TUPLEHASH_SIZE: &str = "CT_TUPLEHASH_SIZE";
}

/// Map names, shared so both sides spell them the same.
pub mod maps {
    /// Ring buffer carrying [`super::PacketEvent`]s, [`super::RouteEvent`]s and
    /// [`super::NatEvent`]s (the header's `kind` says which).
    pub const EVENTS: &str = "EVENTS";
    /// Ring buffer of the same records for the events that say a packet failed: every
    /// drop, and every hop of an ICMP error ([`super::is_failure`]). A flood of ordinary
    /// hops fills `EVENTS`, never this one, so a drop is not lost to it.
    pub const FAILURES: &str = "FAILURES";
    /// Per-CPU array of [`super::LossCounters`] at index 0.
    pub const LOSS: &str = "LOSS";
    /// Hash map: IPv4 address (network byte order) → 1, the addresses being followed.
    pub const FILTER_ADDRS: &str = "FILTER_ADDRS";
    /// Array of `u64` words, [`super::follow_bits::WORDS`] long: a one-hash Bloom filter of
    /// `FILTER_ADDRS`. A clear bit proves an address is not followed without a hash lookup
    /// (an array lookup is inlined by the verifier); a set bit is confirmed in the map.
    pub const FOLLOW_BITS: &str = "FOLLOW_BITS";
    /// Per-CPU LRU hash map [`super::HopKey`] → [`super::HopCount`], filled by the TC
    /// hooks when the session samples ([`super::globals::SAMPLE_SHIFT`] not 0); the kernel
    /// inserts (evicting the least recently used hop when full), userspace only reads.
    pub const HOP_COUNTS: &str = "HOP_COUNTS";
    /// Per-CPU array of [`super::HOP_SLOTS_LEN`] [`super::HopSlot`]s, where the TC hooks
    /// count a hop first: a slot found by hashing the key costs no helper call, where a
    /// hash map lookup hashes, walks a bucket and updates LRU state (a hop costs about
    /// half as much). A hop whose slot another hop holds goes to `HOP_COUNTS`.
    pub const HOP_SLOTS: &str = "HOP_SLOTS";
    /// Per-CPU array of [`super::HOP_SLOTS_LEN`] `u64`s, written by userspace only: for a
    /// slot of `HOP_SLOTS` it found unchanged over its last reads, that slot's
    /// [`super::HopSlot::idle_mark`] (0: none). Another hop hashing there may take the
    /// slot while it still reads the same: everything its hop counted was read.
    pub const SLOT_IDLE: &str = "SLOT_IDLE";
}

/// Where an address's bit lives in the `FOLLOW_BITS` map. Both sides must agree, so the
/// function is written once, here.
pub mod follow_bits {
    /// 1024 words of 64 bits: 65,536 bits, so with a few dozen followed addresses an
    /// unfollowed one finds its bit set about once in a thousand.
    pub const WORDS: u32 = 1024;

    /// (word index, bit mask) for an IPv4 address in network byte order.
    #[inline(always)]
    pub const fn slot(addr: u32) -> (u32, u64) {
        // Fibonacci hashing: multiply, keep the top 16 bits.
        let h = addr.wrapping_mul(0x9E37_79B1) >> 16;
        ((h >> 6) % WORDS, 1u64 << (h & 63))
    }
}

/// What tells two UDP datagrams apart when their headers cannot: unconnected UDP with Don't
/// Fragment set goes out with IP ID 0, so two datagrams of one length have identical
/// invariant header fields. Their payloads usually differ (a DNS query ID, an RTP sequence
/// number, a QUIC packet number sit in the first bytes), and no rewrite on the path — NAT,
/// VXLAN — touches a payload. The kernel hashes the first 8 payload bytes at every hook;
/// userspace compares the hashes and can recompute them from the bytes.
///
/// A 32-bit mix (the splitmix64 finalizer, top half kept), not the bytes themselves: the
/// event has 4 bytes to spare, and the sampling decision planned in `docs/aggregation.md`
/// needs a well-mixed value anyway. The lowest bit is always set, so 0 stays free to mean
/// "not read" (a hook may be unable to read bytes another hook reads). Written once here
/// so both sides agree.
#[inline(always)]
pub const fn payload_hash(first_bytes: [u8; 8]) -> u32 {
    let mut x = u64::from_le_bytes(first_bytes);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 32) as u32 | 1
}

/// Program names, as exported by `tracer-ebpf`.
pub mod programs {
    pub const TC_INGRESS: &str = "tc_ingress";
    pub const TC_EGRESS: &str = "tc_egress";
    pub const KFREE_SKB: &str = "kfree_skb";
    /// `kfree_skb` read as kernels before 5.17 offer it: the packet, no reason.
    pub const KFREE_SKB_NO_REASON: &str = "kfree_skb_no_reason";
    /// `tp_btf/fib_table_lookup`: the routing decision for a received packet.
    pub const FIB_TABLE_LOOKUP: &str = "fib_table_lookup";
    /// `nf_nat_manip_pkt`, as fentry (tried first) or kprobe: the NAT rewrite.
    pub const NAT_FENTRY: &str = "nat_fentry";
    pub const NAT_KPROBE: &str = "nat_kprobe";
    /// Do-nothing programs that exist so `tracer doctor` can try loading each type.
    pub const PROBE_RAW_TRACEPOINT: &str = "probe_raw_tracepoint";
    pub const PROBE_KPROBE: &str = "probe_kprobe";
    pub const PROBE_FENTRY: &str = "probe_fentry";
}

/// Which followed packets are traced hop by hop when a session samples (`follow --sample
/// N`), and which are only counted ([`HopKey`], [`HopCount`]). Every hook must make the
/// same choice for a packet, or its journey comes out with holes: the hooks keep no state
/// and cannot carry a decision with the packet, so the choice is made from fields no hook
/// on the path changes — neither NAT (addresses, ports) nor VXLAN (it adds an outer header,
/// and the choice reads the inner one). Written once here so both sides agree, and so
/// userspace can check the kernel's choices. The design and its limits: docs/aggregation.md.
pub mod sample {
    use super::{PacketEvent, flags};

    /// At most one packet in 2^20 of a busy flow is traced.
    pub const MAX_SHIFT: u8 = 20;

    const TCP: u8 = 6;
    const UDP: u8 = 17;
    /// FIN, SYN and RST: a connection's opening, end and reset are always traced.
    const SYN_FIN_RST: u8 = 0x01 | 0x02 | 0x04;

    /// The fields the decision reads, as the hooks read them (network byte order).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Invariant {
        pub ip_proto: u8,
        pub tcp_flags: u8,
        pub ip_id: u16,
        pub ip_len: u16,
        pub tcp_seq: u32,
        pub tcp_ack: u32,
        pub payload_hash: u32,
    }

    /// Whether a packet is traced when one in `2^shift` is (0: every packet).
    ///
    /// Always traced: TCP with SYN, FIN or RST; every ICMP packet (echoes are slow, errors
    /// explain); later fragments (their L4 fields are absent); other protocols; and UDP
    /// whose payload this hook could not hash (`payload_hash` 0). The rest is traced when
    /// the top `shift` bits of a mix of its invariant fields are zero: TCP's sequence and
    /// acknowledgement numbers; UDP's payload hash, IP ID and total length.
    #[inline(always)]
    pub const fn traced(packet: &PacketEvent, shift: u8) -> bool {
        packet.flags & flags::LATER_FRAGMENT != 0
            || Invariant {
                ip_proto: packet.ip_proto,
                tcp_flags: packet.tcp_flags,
                ip_id: packet.ip_id,
                ip_len: packet.ip_len,
                tcp_seq: packet.tcp_seq,
                tcp_ack: packet.tcp_ack,
                payload_hash: packet.payload_hash,
            }
            .traced(shift)
    }

    impl Invariant {
        /// [`traced`] for a packet that is not a later fragment, from only the fields it
        /// reads: the TC hooks' counting fast path decides without filling an event.
        #[inline(always)]
        pub const fn traced(&self, shift: u8) -> bool {
            if shift == 0 {
                return true;
            }
            let key = match self.ip_proto {
                TCP if self.tcp_flags & SYN_FIN_RST == 0 => {
                    self.tcp_seq ^ self.tcp_ack.rotate_left(16)
                }
                UDP if self.payload_hash != 0 => {
                    self.payload_hash ^ ((self.ip_id as u32) << 16 | self.ip_len as u32)
                }
                _ => return true,
            };
            let shift = if shift > MAX_SHIFT { MAX_SHIFT } else { shift };
            mix32(key) >> (32 - shift as u32) == 0
        }
    }

    /// MurmurHash3's 32-bit finalizer: every input bit changes about half the output bits,
    /// so the top bits of consecutive sequence numbers are as good as random.
    #[inline(always)]
    pub const fn mix32(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x85eb_ca6b);
        x ^= x >> 13;
        x = x.wrapping_mul(0xc2b2_ae35);
        x ^= x >> 16;
        x
    }
}

/// Where a packet was counted when a session samples: one TC hook of one interface, and
/// the packet's 5-tuple as that hook saw it (the inner one of a VXLAN packet; after any
/// NAT before the hook). The key of the `HOP_COUNTS` map: every followed packet a TC hook
/// sees is counted under it, traced or not, so a path's count at each of its hops is
/// every packet that crossed it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopKey {
    pub netns_cookie: u64,
    pub ifindex: u32,
    /// [`kind::TC_INGRESS`] or [`kind::TC_EGRESS`].
    pub hook: u16,
    pub ip_proto: u8,
    pub _pad0: u8,
    /// Network byte order, as in [`PacketEvent`].
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub _pad1: u32,
}
const _: () = assert!(size_of::<HopKey>() == 32);

/// What crossed one [`HopKey`]: `sk_buff`s (a GSO super-packet is one) and their IP bytes
/// (the inner header's total length), per CPU; userspace sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HopCount {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<HopCount>() == 16);

/// One slot of the `HOP_SLOTS` per-CPU array: a hop and what crossed it on this CPU. Empty
/// while `count.packets` is 0. A CPU's slot holds the first hop that hashed to it
/// ([`HopKey::slot`]) until userspace marks it idle (`SLOT_IDLE`) and another hop hashing
/// there takes it; meanwhile another hop is counted in `HOP_COUNTS` instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HopSlot {
    pub key: HopKey,
    pub count: HopCount,
}
const _: () = assert!(size_of::<HopSlot>() == 48);

/// Slots in `HOP_SLOTS`: a power of two. Enough for a few hundred connections' hops per
/// CPU before `HOP_COUNTS` takes the rest; userspace reads every slot once a second.
pub const HOP_SLOTS_LEN: u32 = 1024;

impl HopKey {
    /// The key's slot in `HOP_SLOTS`: the low bits of its [`Self::fingerprint`].
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        self.fingerprint() & (HOP_SLOTS_LEN - 1)
    }

    /// The key's words mixed into one.
    #[inline(always)]
    pub const fn fingerprint(&self) -> u32 {
        let cookie = self.netns_cookie as u32 ^ (self.netns_cookie >> 32) as u32;
        let ports = (self.sport as u32) << 16 | self.dport as u32;
        let place = self.ifindex ^ (self.hook as u32) << 24 ^ (self.ip_proto as u32) << 16;
        // Cookies and interface indexes are both small numbers: spread one before they meet.
        let x = sample::mix32(cookie.wrapping_mul(0x9e37_79b1) ^ place) ^ self.saddr;
        sample::mix32(x ^ self.daddr.rotate_left(8) ^ ports)
    }
}

impl HopSlot {
    /// The slot as userspace read it, in one word for `SLOT_IDLE`: the hop's fingerprint
    /// and the low half of its packet count. While the slot still reads the same, nothing
    /// was counted there since that read; once another hop took it, its count would have
    /// to reach the old one's with a fingerprint equal in all bits above the slot's.
    /// 0 never marks a slot.
    #[inline(always)]
    pub const fn idle_mark(&self) -> u64 {
        (self.key.fingerprint() as u64) << 32 | self.count.packets as u32 as u64
    }
}

/// Events the kernel side could not hand over, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossCounters {
    /// `bpf_ringbuf_reserve` failed: the ring buffer was full.
    pub ringbuf_full: u64,
    /// Headers could not be read (truncated or non-linear beyond what we parse).
    pub parse_failed: u64,
    /// Of `ringbuf_full`, the events bound for the `FAILURES` ring buffer (drops and ICMP
    /// errors): only a flood of failures itself can fill it.
    pub failures_lost: u64,
    /// Hook crossings a sampling session could not count: inserting into `HOP_COUNTS`
    /// failed.
    pub uncounted: u64,
    /// Hook crossings a sampling session counted in `HOP_COUNTS` (not a loss): an entry
    /// the map evicts takes what it counted since userspace last read it, and userspace
    /// finds that as this total less what it read.
    pub counted_evictable: u64,
}
const _: () = assert!(size_of::<LossCounters>() == 40);

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain old data: repr(C), integers only, no implicit padding (asserted above).
    unsafe impl aya::Pod for super::PacketEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LossCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RouteEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NatEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HopKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HopCount {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HopSlot {}
}

#[cfg(test)]
mod tests {
    use super::{is_failure, kind, payload_hash};

    #[test]
    fn drops_and_every_hop_of_an_icmp_error_are_failures_and_nothing_else_is() {
        for hook in [
            kind::TC_INGRESS,
            kind::TC_EGRESS,
            kind::FIB_LOOKUP,
            kind::NAT,
        ] {
            for (proto, icmp_type, failure) in [
                (1, 3, true),    // destination unreachable (MTU, port)
                (1, 11, true),   // time exceeded
                (1, 12, true),   // parameter problem
                (1, 8, false),   // echo request
                (1, 0, false),   // echo reply
                (6, 3, false),   // TCP: the field is not a type
                (17, 11, false), // UDP
            ] {
                assert_eq!(
                    is_failure(hook, proto, icmp_type),
                    failure,
                    "{hook} {proto} {icmp_type}"
                );
            }
        }
        assert!(
            is_failure(kind::KFREE_SKB, 17, 0),
            "a drop, whatever the packet"
        );
    }

    /// Every key finds a slot in range, and a session's few dozen hops mostly find their
    /// own (a hop whose slot is taken is counted in the hash map instead).
    #[test]
    fn hop_keys_spread_over_the_slots() {
        use super::{HOP_SLOTS_LEN, HopKey};
        // no_std: a bitmap of the slots taken.
        let mut taken = [0u64; HOP_SLOTS_LEN as usize / 64];
        let mut hops = 0;
        for netns_cookie in [1u64, 2, 3, 0x1_0000_0001] {
            for ifindex in 2..6 {
                for hook in [1u16, 2] {
                    let key = HopKey {
                        netns_cookie,
                        ifindex,
                        hook,
                        ip_proto: 17,
                        saddr: u32::from_ne_bytes([10, 244, 102, 137]),
                        daddr: u32::from_ne_bytes([10, 244, 184, 84]),
                        sport: 48385u16.to_be(),
                        dport: 7007u16.to_be(),
                        ..HopKey::default()
                    };
                    let slot = key.slot();
                    assert!(slot < HOP_SLOTS_LEN);
                    taken[slot as usize / 64] |= 1 << (slot % 64);
                    hops += 1;
                }
            }
        }
        let slots: u32 = taken.iter().map(|w| w.count_ones()).sum();
        assert!(slots >= hops - 3, "{hops} hops in {slots} slots");
    }

    #[test]
    fn sampling_traces_openings_errors_and_about_one_in_two_to_the_shift() {
        use super::{PacketEvent, sample::traced};
        let tcp = |seq: u32, flags: u8| PacketEvent {
            ip_proto: 6,
            tcp_seq: seq,
            tcp_ack: 7,
            tcp_flags: flags,
            ..PacketEvent::default()
        };
        assert!(traced(&tcp(5, 0x10), 0), "shift 0 traces everything");
        assert!(traced(&tcp(5, 0x02), 20), "SYN");
        assert!(traced(&tcp(5, 0x11), 20), "FIN");
        let icmp = PacketEvent {
            ip_proto: 1,
            icmp_type: 8,
            ..PacketEvent::default()
        };
        assert!(traced(&icmp, 20), "ICMP");
        let unhashed = PacketEvent {
            ip_proto: 17,
            ..PacketEvent::default()
        };
        assert!(traced(&unhashed, 20), "UDP whose payload was not read");
        for shift in [1u8, 4, 8] {
            let n = 1u32 << 16;
            let hits = (0..n)
                .filter(|i| traced(&tcp(i * 1448, 0x10), shift))
                .count() as f64;
            let expected = f64::from(n) / f64::from(1u32 << shift);
            assert!(
                (hits - expected).abs() < expected * 0.1,
                "shift {shift}: {hits} of {n}, expected about {expected}"
            );
        }
        let udp = |id: u16| PacketEvent {
            ip_proto: 17,
            ip_id: id,
            ip_len: 92,
            payload_hash: 0x4ec8_fd59,
            ..PacketEvent::default()
        };
        let hits = (0..=u16::MAX).filter(|&id| traced(&udp(id), 6)).count();
        assert!((900..1150).contains(&hits), "UDP one in 64: {hits}");
    }

    /// The kernel and userspace must compute the same value for the same bytes, on any
    /// host: pinned values, so a change of the mix is a visible ABI change.
    #[test]
    fn the_payload_hash_is_pinned_and_mixes_every_byte() {
        assert_eq!(payload_hash([0; 8]), 1, "0 means not read");
        // The splitmix64 finalizer's top half, computed independently (Python), bit 0 set.
        assert_eq!(payload_hash(*b"tracer!!"), 0x4ec8_fd59);
        let base = *b"\x12\x34\x01\x00\x00\x01\x00\x00";
        for byte in 0..8 {
            let mut changed = base;
            changed[byte] ^= 1;
            let flipped = (payload_hash(base) ^ payload_hash(changed)).count_ones();
            // One input bit changes about half of the 31 mixed output bits.
            assert!((6..=25).contains(&flipped), "byte {byte}: {flipped} bits");
        }
    }
}
