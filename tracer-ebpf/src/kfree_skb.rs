//! `tp_btf/kfree_skb`: a packet freed with a drop reason. `struct sk_buff` has no stable
//! layout and aya has no CO-RE for Rust programs, so the offsets come from the running
//! kernel's BTF, patched in by userspace as load-time globals (`OFF_*`).
//!
//! Two programs for one tracepoint: `kfree_skb` reads the reason (its third argument,
//! Linux 5.17+); `kfree_skb_no_reason` reads only the packet, as kernels before 5.17 offer
//! it, and marks the drop [`flags::REASON_UNKNOWN`]. The verifier refuses the first where
//! the argument does not exist, so userspace tries it first and falls back.

use core::mem::MaybeUninit;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::{PacketEvent, flags, kind};

use crate::{
    emit::{submit, zeroed},
    kernel::{data_is_shared, device_of, netns_cookie_of_socket},
    skb::Skb,
};

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: *const u8 = ctx.arg(0);
    let reason: u32 = ctx.arg(2);
    let _ = observe(skb, Some(reason));
    0
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_no_reason(ctx: BtfTracePointContext) -> i32 {
    let skb: *const u8 = ctx.arg(0);
    let _ = observe(skb, None);
    0
}

#[inline(always)]
fn observe(skb: *const u8, reason: Option<u32>) -> Option<()> {
    let skb = Skb::at(skb)?;
    if skb.certainly_unfollowed() {
        return None;
    }
    let mut slot = MaybeUninit::<PacketEvent>::uninit();
    let event = zeroed(&mut slot);
    // Most freed skbs are not IPv4 at their network header (or not packets we follow);
    // those are not losses, so nothing is counted here.
    skb.parse(event)?;
    match reason {
        Some(reason) => event.drop_reason = reason,
        None => event.flags |= flags::REASON_UNKNOWN,
    }
    // A copy's death is not the packet's (userspace's `journey::fate`).
    if data_is_shared(skb.ptr, skb.head) {
        event.flags |= flags::SHARED_DATA;
    }
    let (ifindex, mut cookie) = device_of(skb.ptr);
    if cookie == 0 {
        // No device any more (a socket purging its queue): the socket's namespace.
        cookie = netns_cookie_of_socket(skb.ptr);
    }
    event.ifindex = ifindex;
    submit(event, kind::KFREE_SKB, cookie);
    Some(())
}
