//! The TC fast path: parse straight from the skb's linear data with direct packet access
//! when every IPv4 header has no options, which is nearly always. Offsets are then
//! constants, each layer costs one bounds check against `data_end` and no helper call, and
//! a packet that is not followed is dropped from consideration after reading only its
//! addresses (the inner ones for VXLAN).
//!
//! Anything else — IP options, a later fragment, headers beyond the linear data — is
//! [`Linear::Unsure`] and goes to the general parser in `packet.rs`, which reads through
//! `bpf_skb_load_bytes`. Both fill a [`PacketEvent`] the same way.

use aya_ebpf::programs::TcContext;
use tracer_common::{PacketEvent, flags};

use crate::{
    emit::{may_follow, trace_all, wanted},
    packet::is_vxlan_port,
};

pub enum Linear {
    /// Not IPv4, or not a packet we follow.
    Skip,
    /// Followed, and `event` holds its headers.
    Parsed,
    /// The fast path cannot tell; use the general parser.
    Unsure,
}

const ETH_P_IP_BE: u16 = 0x0800u16.to_be();
/// IPv4 version 4, header length 5 words: no options.
const PLAIN_IPV4: u8 = 0x45;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

const IP: usize = 14;
const L4: usize = IP + 20;
/// Layout of a VXLAN packet: outer Ethernet, IPv4, UDP, VXLAN, inner Ethernet, IPv4.
const VXLAN: usize = L4 + 8;
const INNER_ETH: usize = VXLAN + 8;
const INNER_IP: usize = INNER_ETH + 14;
const INNER_L4: usize = INNER_IP + 20;

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
    if !frame.has(L4 + 8) {
        return false;
    }
    let data = frame.data;
    // SAFETY: L4 + 8 bytes checked above.
    let (ethertype, version_ihl, proto, dport) = unsafe {
        (
            get::<u16>(data, 12),
            get::<u8>(data, IP),
            get::<u8>(data, IP + 9),
            u16::from_be(get::<u16>(data, L4 + 2)),
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
            if get::<u16>(data, INNER_ETH + 12) != ETH_P_IP_BE {
                return true;
            }
            (
                get::<u32>(data, INNER_IP + 12),
                get::<u32>(data, INNER_IP + 16),
            )
        }
    } else {
        // SAFETY: L4 + 8 bytes checked above.
        unsafe { (get::<u32>(data, IP + 12), get::<u32>(data, IP + 16)) }
    };
    !trace_all() && !may_follow(saddr) && !may_follow(daddr)
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
            get::<u16>(data, 12),
            get::<u8>(data, IP),
            u16::from_be(get::<u16>(data, IP + 6)),
            get::<u8>(data, IP + 9),
        )
    };
    if ethertype != ETH_P_IP_BE {
        return Linear::Skip;
    }
    if version_ihl != PLAIN_IPV4 || frag & 0x1fff != 0 {
        return Linear::Unsure;
    }
    if proto == IPPROTO_UDP {
        if !frame.has(L4 + 8) {
            return Linear::Unsure;
        }
        // SAFETY: L4 + 8 bytes checked above.
        if is_vxlan_port(u16::from_be(unsafe { get::<u16>(data, L4 + 2) })) {
            return vxlan(frame, event);
        }
    }
    // SAFETY: L4 bytes checked above.
    let (saddr, daddr) = unsafe { (get::<u32>(data, IP + 12), get::<u32>(data, IP + 16)) };
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
            get::<u16>(data, INNER_ETH + 12),
            get::<u8>(data, INNER_IP),
            u16::from_be(get::<u16>(data, INNER_IP + 6)),
            get::<u32>(data, INNER_IP + 12),
            get::<u32>(data, INNER_IP + 16),
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
        event.outer_saddr = get(data, IP + 12);
        event.outer_daddr = get(data, IP + 16);
        event.outer_sport = get(data, L4);
        event.outer_dport = get(data, L4 + 2);
        event.vni = u32::from_be(get::<u32>(data, VXLAN + 4)) >> 8;
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
        let frag = u16::from_be(get::<u16>(data, ip + 6));
        if frag & 0x4000 != 0 {
            event.flags |= flags::DONT_FRAGMENT;
        }
        if frag & 0x1fff != 0 {
            event.flags |= flags::LATER_FRAGMENT;
        }
        event.ip_len = get(data, ip + 2);
        event.ip_id = get(data, ip + 4);
        event.ttl = get(data, ip + 8);
        event.ip_proto = get(data, ip + 9);
        event.saddr = get(data, ip + 12);
        event.daddr = get(data, ip + 16);
    }
}

/// Fills the TCP, UDP or ICMP fields from the header at the constant offset `AT`. Each
/// arm checks its own constant length, so no bounds check depends on a variable.
#[inline(always)]
fn transport<const AT: usize>(frame: Frame, event: &mut PacketEvent) -> Linear {
    let data = frame.data;
    match event.ip_proto {
        IPPROTO_TCP => {
            if !frame.has(AT + 20) {
                return Linear::Unsure;
            }
            // SAFETY: 20 bytes of TCP header checked above.
            unsafe {
                event.sport = get(data, AT);
                event.dport = get(data, AT + 2);
                event.tcp_seq = get(data, AT + 4);
                event.tcp_ack = get(data, AT + 8);
                event.tcp_flags = get(data, AT + 13);
            }
        }
        IPPROTO_UDP => {
            if !frame.has(AT + 8) {
                return Linear::Unsure;
            }
            // SAFETY: 8 bytes of UDP header checked above.
            unsafe {
                event.sport = get(data, AT);
                event.dport = get(data, AT + 2);
            }
        }
        IPPROTO_ICMP => {
            if !frame.has(AT + 8) {
                return Linear::Unsure;
            }
            // SAFETY: 8 bytes of ICMP header checked above.
            unsafe {
                event.icmp_type = get(data, AT);
                event.icmp_code = get(data, AT + 1);
                event.icmp_id = get(data, AT + 4);
                event.icmp_seq = get(data, AT + 6);
            }
        }
        _ => {}
    }
    Linear::Parsed
}
