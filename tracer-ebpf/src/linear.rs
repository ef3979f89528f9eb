//! The TC fast path: parse straight from the skb's linear data with direct packet access
//! when every IPv4 header has no options, which is nearly always. Offsets are then
//! constants, each layer costs one bounds check against `data_end` and no helper call, and
//! a packet that is not followed is dropped from consideration after reading only its
//! addresses (the inner ones for VXLAN).
//!
//! Anything else — IP options, a later fragment, headers beyond the linear data — is
//! [`Linear::Unsure`] and goes to the general parser in `packet.rs`, which reads through
//! `bpf_skb_load_bytes`. Both fill a [`PacketEvent`] the same way.

use core::mem::offset_of;

use aya_ebpf::programs::TcContext;
use network_types::{
    eth::EthHdr,
    icmp::{IcmpIdSequence, Icmpv4Hdr},
    ip::Ipv4Hdr,
    tcp::TcpHdr,
    udp::UdpHdr,
    vxlan::VxlanHdr,
};
use tracer_common::{HopKey, PacketEvent, flags, payload_hash, sample::Invariant};

use crate::{
    emit::{may_follow, trace_all, wanted},
    packet::{
        ETH_P_IP_BE, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PAYLOAD_HASHED, TCP_FLAGS,
        is_vxlan_port, payload_is_hashable,
    },
};

pub enum Linear {
    /// Not IPv4, or not a packet we follow.
    Skip,
    /// Followed, and `event` holds its headers.
    Parsed,
    /// The fast path cannot tell; use the general parser.
    Unsure,
}

/// IPv4 version 4, header length 5 words: no options.
const PLAIN_IPV4: u8 = 0x45;

/// Where each header starts when no IPv4 header has options.
const IP: usize = EthHdr::LEN;
const L4: usize = IP + Ipv4Hdr::LEN;
/// Layout of a VXLAN packet: outer Ethernet, IPv4, UDP, VXLAN, inner Ethernet, IPv4.
const VXLAN: usize = L4 + UdpHdr::LEN;
const INNER_ETH: usize = VXLAN + VxlanHdr::LEN;
const INNER_IP: usize = INNER_ETH + EthHdr::LEN;
const INNER_L4: usize = INNER_IP + Ipv4Hdr::LEN;

/// Field offsets inside the headers, from network-types' layouts: each read below loads
/// only the field it needs, at a constant offset the verifier can follow.
const ETHER_TYPE: usize = offset_of!(EthHdr, ether_type);
const IP_VIHL: usize = offset_of!(Ipv4Hdr, vihl);
const IP_TOT_LEN: usize = offset_of!(Ipv4Hdr, tot_len);
const IP_ID: usize = offset_of!(Ipv4Hdr, id);
const IP_FRAGS: usize = offset_of!(Ipv4Hdr, frags);
const IP_TTL: usize = offset_of!(Ipv4Hdr, ttl);
const IP_PROTO: usize = offset_of!(Ipv4Hdr, proto);
const IP_SRC: usize = offset_of!(Ipv4Hdr, src_addr);
const IP_DST: usize = offset_of!(Ipv4Hdr, dst_addr);
const UDP_SRC: usize = offset_of!(UdpHdr, src);
const UDP_DST: usize = offset_of!(UdpHdr, dst);
const UDP_LEN: usize = offset_of!(UdpHdr, len);
const TCP_SRC: usize = offset_of!(TcpHdr, source);
const TCP_DST: usize = offset_of!(TcpHdr, dest);
const TCP_SEQ: usize = offset_of!(TcpHdr, seq);
const TCP_ACK: usize = offset_of!(TcpHdr, ack_seq);
const ICMP_TYPE: usize = offset_of!(Icmpv4Hdr, type_);
const ICMP_CODE: usize = offset_of!(Icmpv4Hdr, code);
const ICMP_ID: usize = offset_of!(Icmpv4Hdr, data) + offset_of!(IcmpIdSequence, id);
const ICMP_SEQ: usize = offset_of!(Icmpv4Hdr, data) + offset_of!(IcmpIdSequence, sequence);
/// The VNI's 3 bytes and the reserved byte after them, read as one big-endian word: the
/// VNI is its top 24 bits.
const VXLAN_VNI_WORD: usize = offset_of!(VxlanHdr, vni);

/// Reads a `T` at `offset` bytes into the packet.
///
/// # Safety
/// The caller has checked `data + offset + size_of::<T>() <= data_end`.
#[inline(always)]
unsafe fn get<T: Copy>(data: usize, offset: usize) -> T {
    // SAFETY: the caller's bounds check; the verifier re-checks it.
    unsafe { ((data + offset) as *const T).read_unaligned() }
}

/// The linear data, read from the context once: the verifier only trusts reads through
/// the same packet pointer that was compared against `end`.
#[derive(Clone, Copy)]
struct Frame {
    data: usize,
    end: usize,
}

impl Frame {
    /// Whether `len` bytes from the start of the packet are in the linear data. `len` must
    /// be a constant at every call site for the verifier to follow.
    #[inline(always)]
    fn has(self, len: usize) -> bool {
        self.data + len <= self.end
    }
}

/// True when the packet is certainly not followed, decided from its addresses' bits in
/// `FOLLOW_BITS` alone: the cheapest possible answer for the common case, given before any
/// event is even zeroed. False means "parse it".
#[inline(always)]
pub fn certainly_unfollowed(ctx: &TcContext) -> bool {
    let frame = Frame {
        data: ctx.data(),
        end: ctx.data_end(),
    };
    if !frame.has(L4 + UdpHdr::LEN) {
        return false;
    }
    let data = frame.data;
    // SAFETY: L4 + UdpHdr::LEN bytes checked above.
    let (ethertype, version_ihl, proto, dport) = unsafe {
        (
            get::<u16>(data, ETHER_TYPE),
            get::<u8>(data, IP + IP_VIHL),
            get::<u8>(data, IP + IP_PROTO),
            u16::from_be(get::<u16>(data, L4 + UDP_DST)),
        )
    };
    if ethertype != ETH_P_IP_BE {
        return true;
    }
    if version_ihl != PLAIN_IPV4 {
        return false;
    }
    // Constant offsets on each branch: a variable one would need the longer bounds check.
    let (saddr, daddr) = if proto == IPPROTO_UDP && is_vxlan_port(dport) {
        if !frame.has(INNER_L4) {
            return false;
        }
        // SAFETY: INNER_L4 bytes checked above.
        unsafe {
            if get::<u16>(data, INNER_ETH + ETHER_TYPE) != ETH_P_IP_BE {
                return true;
            }
            (
                get::<u32>(data, INNER_IP + IP_SRC),
                get::<u32>(data, INNER_IP + IP_DST),
            )
        }
    } else {
        // SAFETY: L4 + UdpHdr::LEN bytes checked above.
        unsafe { (get::<u32>(data, IP + IP_SRC), get::<u32>(data, IP + IP_DST)) }
    };
    !trace_all() && !may_follow(saddr) && !may_follow(daddr)
}

/// The counting fast path of a sampling session: for a packet with option-less IPv4
/// headers whose every field the decision needs is in the linear data, and which is not
/// traced, its hop's key (the tuple only: the caller adds where) and IP total length. No
/// event is filled. `None` sends the packet down the full path: traced, or unsure.
///
/// Its addresses have passed `FOLLOW_BITS` (`certainly_unfollowed`), not yet
/// `FILTER_ADDRS`: `emit::count_hop` asks the map when the hop takes a slot.
#[inline(always)]
pub fn untraced(ctx: &TcContext, shift: u8) -> Option<(HopKey, u16)> {
    let frame = Frame {
        data: ctx.data(),
        end: ctx.data_end(),
    };
    if !frame.has(L4 + UdpHdr::LEN) {
        return None;
    }
    // SAFETY: L4 + UdpHdr::LEN bytes checked above.
    let (proto, dport) = unsafe {
        (
            get::<u8>(frame.data, IP + IP_PROTO),
            u16::from_be(get::<u16>(frame.data, L4 + UDP_DST)),
        )
    };
    // `certainly_unfollowed` has seen an IPv4 Ethernet frame.
    if proto == IPPROTO_UDP && is_vxlan_port(dport) {
        if !frame.has(INNER_IP) {
            return None;
        }
        // SAFETY: INNER_IP bytes checked above.
        if unsafe { get::<u16>(frame.data, INNER_ETH + ETHER_TYPE) } != ETH_P_IP_BE {
            return None;
        }
        untraced_at::<IP, INNER_IP, INNER_L4>(frame, shift)
    } else {
        untraced_at::<IP, IP, L4>(frame, shift)
    }
}

/// [`untraced`] for the IPv4 header at `AT` (the inner one of a VXLAN packet) and its
/// transport header at `L4_AT`; `OUTER`: the outer IPv4 header, which must have no
/// options either.
#[inline(always)]
fn untraced_at<const OUTER: usize, const AT: usize, const L4_AT: usize>(
    frame: Frame,
    shift: u8,
) -> Option<(HopKey, u16)> {
    if !frame.has(L4_AT) {
        return None;
    }
    let data = frame.data;
    // SAFETY: L4_AT bytes checked above.
    let (outer_vihl, vihl, frag, proto, ip_id, ip_len, saddr, daddr) = unsafe {
        (
            get::<u8>(data, OUTER + IP_VIHL),
            get::<u8>(data, AT + IP_VIHL),
            u16::from_be(get::<u16>(data, AT + IP_FRAGS)),
            get::<u8>(data, AT + IP_PROTO),
            get::<u16>(data, AT + IP_ID),
            get::<u16>(data, AT + IP_TOT_LEN),
            get::<u32>(data, AT + IP_SRC),
            get::<u32>(data, AT + IP_DST),
        )
    };
    if outer_vihl != PLAIN_IPV4 || vihl != PLAIN_IPV4 || frag & 0x1fff != 0 {
        return None;
    }
    let mut invariant = Invariant {
        ip_proto: proto,
        ip_id,
        ip_len,
        ..Invariant::default()
    };
    let (sport, dport) = match proto {
        IPPROTO_TCP => {
            if !frame.has(L4_AT + TcpHdr::LEN) {
                return None;
            }
            // SAFETY: the TCP header checked above.
            unsafe {
                invariant.tcp_flags = get(data, L4_AT + TCP_FLAGS);
                invariant.tcp_seq = get(data, L4_AT + TCP_SEQ);
                invariant.tcp_ack = get(data, L4_AT + TCP_ACK);
                (get(data, L4_AT + TCP_SRC), get(data, L4_AT + TCP_DST))
            }
        }
        IPPROTO_UDP => {
            if !frame.has(L4_AT + UdpHdr::LEN + PAYLOAD_HASHED) {
                return None;
            }
            // SAFETY: the UDP header and the payload's first bytes checked above.
            unsafe {
                let udp_len = u16::from_be(get::<u16>(data, L4_AT + UDP_LEN));
                let ip_payload = usize::from(u16::from_be(ip_len)).saturating_sub(Ipv4Hdr::LEN);
                if payload_is_hashable(udp_len, ip_payload) {
                    let first = get::<[u8; PAYLOAD_HASHED]>(data, L4_AT + UdpHdr::LEN);
                    invariant.payload_hash = payload_hash(first);
                }
                (get(data, L4_AT + UDP_SRC), get(data, L4_AT + UDP_DST))
            }
        }
        // ICMP and the rest are always traced.
        _ => return None,
    };
    if invariant.traced(shift) {
        return None;
    }
    let key = HopKey {
        ip_proto: proto,
        saddr,
        daddr,
        sport,
        dport,
        ..HopKey::default()
    };
    Some((key, ip_len))
}

#[inline(always)]
pub fn parse(ctx: &TcContext, event: &mut PacketEvent) -> Linear {
    let frame = Frame {
        data: ctx.data(),
        end: ctx.data_end(),
    };
    if !frame.has(L4) {
        return Linear::Unsure;
    }
    let data = frame.data;
    // SAFETY: L4 bytes checked above.
    let (ethertype, version_ihl, frag, proto) = unsafe {
        (
            get::<u16>(data, ETHER_TYPE),
            get::<u8>(data, IP + IP_VIHL),
            u16::from_be(get::<u16>(data, IP + IP_FRAGS)),
            get::<u8>(data, IP + IP_PROTO),
        )
    };
    if ethertype != ETH_P_IP_BE {
        return Linear::Skip;
    }
    if version_ihl != PLAIN_IPV4 || frag & 0x1fff != 0 {
        return Linear::Unsure;
    }
    if proto == IPPROTO_UDP {
        if !frame.has(L4 + UdpHdr::LEN) {
            return Linear::Unsure;
        }
        // SAFETY: L4 + UdpHdr::LEN bytes checked above.
        if is_vxlan_port(u16::from_be(unsafe { get::<u16>(data, L4 + UDP_DST) })) {
            return vxlan(frame, event);
        }
    }
    // SAFETY: L4 bytes checked above.
    let (saddr, daddr) = unsafe { (get::<u32>(data, IP + IP_SRC), get::<u32>(data, IP + IP_DST)) };
    if !wanted(saddr, daddr) {
        return Linear::Skip;
    }
    // SAFETY: L4 bytes checked above.
    unsafe { ip_header(data, IP, event) };
    transport::<L4>(frame, event)
}

#[inline(always)]
fn vxlan(frame: Frame, event: &mut PacketEvent) -> Linear {
    if !frame.has(INNER_L4) {
        return Linear::Unsure;
    }
    let data = frame.data;
    // SAFETY: INNER_L4 bytes checked above.
    let (inner_ethertype, inner_version_ihl, inner_frag, saddr, daddr) = unsafe {
        (
            get::<u16>(data, INNER_ETH + ETHER_TYPE),
            get::<u8>(data, INNER_IP + IP_VIHL),
            u16::from_be(get::<u16>(data, INNER_IP + IP_FRAGS)),
            get::<u32>(data, INNER_IP + IP_SRC),
            get::<u32>(data, INNER_IP + IP_DST),
        )
    };
    if inner_ethertype != ETH_P_IP_BE {
        return Linear::Skip;
    }
    if inner_version_ihl != PLAIN_IPV4 {
        return Linear::Unsure;
    }
    if !wanted(saddr, daddr) {
        return Linear::Skip;
    }
    // SAFETY: INNER_L4 bytes checked above.
    unsafe {
        event.outer_saddr = get(data, IP + IP_SRC);
        event.outer_daddr = get(data, IP + IP_DST);
        event.outer_sport = get(data, L4 + UDP_SRC);
        event.outer_dport = get(data, L4 + UDP_DST);
        event.vni = u32::from_be(get::<u32>(data, VXLAN + VXLAN_VNI_WORD)) >> 8;
        event.flags = flags::ENCAPSULATED;
        ip_header(data, INNER_IP, event);
    }
    if inner_frag & 0x1fff != 0 {
        // A later fragment has no transport header.
        return Linear::Parsed;
    }
    transport::<INNER_L4>(frame, event)
}

/// Fills the IPv4 fields from the (option-less) header at `ip`.
///
/// # Safety
/// The caller has checked that `ip + 20` bytes are in the linear data.
#[inline(always)]
unsafe fn ip_header(data: usize, ip: usize, event: &mut PacketEvent) {
    // SAFETY: the caller's bounds check.
    unsafe {
        let frag = u16::from_be(get::<u16>(data, ip + IP_FRAGS));
        if frag & 0x4000 != 0 {
            event.flags |= flags::DONT_FRAGMENT;
        }
        if frag & 0x1fff != 0 {
            event.flags |= flags::LATER_FRAGMENT;
        }
        event.ip_len = get(data, ip + IP_TOT_LEN);
        event.ip_id = get(data, ip + IP_ID);
        event.ttl = get(data, ip + IP_TTL);
        event.ip_proto = get(data, ip + IP_PROTO);
        event.saddr = get(data, ip + IP_SRC);
        event.daddr = get(data, ip + IP_DST);
    }
}

/// Fills the TCP, UDP or ICMP fields from the header at the constant offset `AT`. Each
/// arm checks its own constant length, so no bounds check depends on a variable.
#[inline(always)]
fn transport<const AT: usize>(frame: Frame, event: &mut PacketEvent) -> Linear {
    let data = frame.data;
    match event.ip_proto {
        IPPROTO_TCP => {
            if !frame.has(AT + TcpHdr::LEN) {
                return Linear::Unsure;
            }
            // SAFETY: the TCP header checked above.
            unsafe {
                event.sport = get(data, AT + TCP_SRC);
                event.dport = get(data, AT + TCP_DST);
                event.tcp_seq = get(data, AT + TCP_SEQ);
                event.tcp_ack = get(data, AT + TCP_ACK);
                event.tcp_flags = get(data, AT + TCP_FLAGS);
            }
        }
        IPPROTO_UDP => {
            if !frame.has(AT + UdpHdr::LEN) {
                return Linear::Unsure;
            }
            // SAFETY: the UDP header checked above.
            let udp_len = unsafe {
                event.sport = get(data, AT + UDP_SRC);
                event.dport = get(data, AT + UDP_DST);
                u16::from_be(get::<u16>(data, AT + UDP_LEN))
            };
            let ip_payload = usize::from(u16::from_be(event.ip_len)).saturating_sub(Ipv4Hdr::LEN);
            if payload_is_hashable(udp_len, ip_payload) {
                if !frame.has(AT + UdpHdr::LEN + PAYLOAD_HASHED) {
                    return Linear::Unsure;
                }
                // SAFETY: the payload's first bytes checked above.
                let first = unsafe { get::<[u8; PAYLOAD_HASHED]>(data, AT + UdpHdr::LEN) };
                event.payload_hash = payload_hash(first);
            }
        }
        IPPROTO_ICMP => {
            if !frame.has(AT + Icmpv4Hdr::LEN) {
                return Linear::Unsure;
            }
            // SAFETY: the ICMP header checked above.
            unsafe {
                event.icmp_type = get(data, AT + ICMP_TYPE);
                event.icmp_code = get(data, AT + ICMP_CODE);
                event.icmp_id = get(data, AT + ICMP_ID);
                event.icmp_seq = get(data, AT + ICMP_SEQ);
            }
        }
        _ => {}
    }
    Linear::Parsed
}
