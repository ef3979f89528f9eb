//! `tp_btf/kfree_skb`: a packet freed with a drop reason. `struct sk_buff` has no stable
//! layout and aya has no CO-RE for Rust programs, so the offsets come from the running
//! kernel's BTF, patched in by userspace as load-time globals (`OFF_*`).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::{PacketEvent, kind};

use crate::{
    emit::{global, submit, wanted},
    kernel::{OFF_SKB_HEAD, OFF_SKB_LEN, OFF_SKB_MARK, OFF_SKB_NETWORK_HEADER, device_of, kread},
    packet::{PacketBytes, parse_ipv4},
};

/// The packet starting at the skb's network header.
struct KernelBytes(*const u8);

impl PacketBytes for KernelBytes {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        kread(self.0, offset as u32)
    }
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
    let bytes = KernelBytes(head.wrapping_add(usize::from(network_header)));
    let mut event = PacketEvent::default();
    // Most freed skbs are not IPv4 at their network header (or not packets we follow);
    // those are not losses, so nothing is counted here.
    parse_ipv4(&bytes, 0, &mut event)?;
    if !wanted(event.saddr, event.daddr) {
        return None;
    }
    event.drop_reason = reason;
    event.skb_len = kread(skb, global(&OFF_SKB_LEN)).unwrap_or(0);
    event.mark = kread(skb, global(&OFF_SKB_MARK)).unwrap_or(0);
    let (ifindex, cookie) = device_of(skb);
    event.ifindex = ifindex;
    submit(&mut event, kind::KFREE_SKB, cookie);
    Some(())
}
