//! A packet handed to a kernel function or tracepoint as its `struct sk_buff`: the bytes
//! at its network header, read through `bpf_probe_read_kernel` with the offsets from BTF.
//! Shared by every hook that is not a TC classifier (drops, NAT, routing).

use tracer_common::PacketEvent;

use crate::{
    emit::{global, may_follow, trace_all, wanted},
    kernel::{
        OFF_SKB_HEAD, OFF_SKB_LEN, OFF_SKB_MARK, OFF_SKB_NETWORK_HEADER, OFF_SKB_TAIL, kread,
    },
    packet::{PacketBytes, is_vxlan_port, parse_ipv4},
};

/// The packet starting at the skb's network header, as far as its linear data goes.
struct KernelBytes {
    l3: *const u8,
    /// Bytes from `l3` to the end of the linear data: a read past it would return whatever
    /// the buffer holds there, not the packet (whose rest is in page fragments).
    linear: usize,
}

impl PacketBytes for KernelBytes {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset + size_of::<T>() > self.linear {
            return None;
        }
        kread(self.l3, offset as u32)
    }
}

/// The first 28 bytes at the network header: an option-less IPv4 header and, for UDP, the
/// UDP header.
#[derive(Clone, Copy)]
#[repr(C)]
struct Ipv4Udp {
    version_ihl: u8,
    _tos: u8,
    _len: u16,
    _id: u16,
    _frag: u16,
    _ttl: u8,
    proto: u8,
    _check: u16,
    saddr: u32,
    daddr: u32,
    _sport: u16,
    dport: u16,
    _udp_rest: u32,
}

/// An `sk_buff` and where its data and network header are.
pub struct Skb {
    pub ptr: *const u8,
    pub head: *const u8,
    network_header: u16,
    l3: *const u8,
}

impl Skb {
    #[inline(always)]
    pub fn at(ptr: *const u8) -> Option<Self> {
        let head: *const u8 = kread(ptr, global(&OFF_SKB_HEAD))?;
        let network_header: u16 = kread(ptr, global(&OFF_SKB_NETWORK_HEADER))?;
        Some(Self {
            ptr,
            head,
            network_header,
            l3: head.wrapping_add(usize::from(network_header)),
        })
    }

    /// Most packets are not ones we follow: tell from one read of the headers and the
    /// addresses' bits in `FOLLOW_BITS`, before the field-by-field parse. False means
    /// "parse it" (including anything this does not understand, such as VXLAN or IP
    /// options).
    #[inline(always)]
    pub fn certainly_unfollowed(&self) -> bool {
        let Some(h) = kread::<Ipv4Udp>(self.l3, 0) else {
            // Fewer than 28 readable bytes: let the parser decide.
            return false;
        };
        if h.version_ihl >> 4 != 4 {
            // Not IPv4 at all (ARP, IPv6, an skb without a network header yet).
            return true;
        }
        if trace_all() || h.version_ihl != 0x45 {
            return false;
        }
        if h.proto == 17 && is_vxlan_port(u16::from_be(h.dport)) {
            return false;
        }
        !may_follow(h.saddr) && !may_follow(h.daddr)
    }

    /// Fills `event`'s packet fields (and `skb_len`, `mark`) when this is a followed IPv4
    /// packet; `None` otherwise, which is not a loss (most skbs are not followed packets).
    #[inline(always)]
    pub fn parse(&self, event: &mut PacketEvent) -> Option<()> {
        // Read here, not in `at`: most skbs never get past `certainly_unfollowed`.
        // An offset from `head` on 64-bit kernels (NET_SKBUFF_DATA_USES_OFFSET).
        let tail: u32 = kread(self.ptr, global(&OFF_SKB_TAIL))?;
        let bytes = KernelBytes {
            l3: self.l3,
            linear: (tail as usize).saturating_sub(usize::from(self.network_header)),
        };
        parse_ipv4(&bytes, 0, event)?;
        if !wanted(event.saddr, event.daddr) {
            return None;
        }
        event.skb_len = kread(self.ptr, global(&OFF_SKB_LEN)).unwrap_or(0);
        event.mark = kread(self.ptr, global(&OFF_SKB_MARK)).unwrap_or(0);
        Some(())
    }
}
