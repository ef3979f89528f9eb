//! `tp_btf/kfree_skb`: a packet freed with a drop reason. `struct sk_buff` has no stable
//! layout and aya has no CO-RE for Rust programs, so the offsets come from the running
//! kernel's BTF, patched in by userspace as load-time globals (`OFF_*`).

use core::mem::MaybeUninit;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::{flags, kind};

use crate::{
    emit::{global, may_follow, submit, trace_all, wanted, zeroed},
    kernel::{
        OFF_SKB_HEAD, OFF_SKB_LEN, OFF_SKB_MARK, OFF_SKB_NETWORK_HEADER, data_is_shared, device_of,
        kread, netns_cookie_of_socket,
    },
    packet::{PacketBytes, is_vxlan_port, parse_ipv4},
};

/// The packet starting at the skb's network header.
struct KernelBytes(*const u8);

impl PacketBytes for KernelBytes {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        kread(self.0, offset as u32)
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

/// Most freed skbs are not packets we follow: tell from one read of the headers and the
/// addresses' bits in `FOLLOW_BITS`, before the field-by-field parse. False means "parse
/// it" (including anything this does not understand, such as VXLAN or IP options).
#[inline(always)]
fn certainly_unfollowed(l3: *const u8) -> bool {
    let Some(h) = kread::<Ipv4Udp>(l3, 0) else {
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

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: *const u8 = ctx.arg(0);
    let reason: u32 = ctx.arg(2);
    let _ = observe(skb, reason);
    0
}

#[inline(always)]
fn observe(skb: *const u8, reason: u32) -> Option<()> {
    let head: *const u8 = kread(skb, global(&OFF_SKB_HEAD))?;
    let network_header: u16 = kread(skb, global(&OFF_SKB_NETWORK_HEADER))?;
    let l3 = head.wrapping_add(usize::from(network_header));
    if certainly_unfollowed(l3) {
        return None;
    }
    let bytes = KernelBytes(l3);
    let mut slot = MaybeUninit::uninit();
    let event = zeroed(&mut slot);
    // Most freed skbs are not IPv4 at their network header (or not packets we follow);
    // those are not losses, so nothing is counted here.
    parse_ipv4(&bytes, 0, event)?;
    if !wanted(event.saddr, event.daddr) {
        return None;
    }
    event.drop_reason = reason;
    // A copy's death is not the packet's (userspace's `journey::fate`).
    if data_is_shared(skb, head) {
        event.flags |= flags::SHARED_DATA;
    }
    event.skb_len = kread(skb, global(&OFF_SKB_LEN)).unwrap_or(0);
    event.mark = kread(skb, global(&OFF_SKB_MARK)).unwrap_or(0);
    let (ifindex, mut cookie) = device_of(skb);
    if cookie == 0 {
        // No device any more (a socket purging its queue): the socket's namespace.
        cookie = netns_cookie_of_socket(skb);
    }
    event.ifindex = ifindex;
    submit(event, kind::KFREE_SKB, cookie);
    Some(())
}
