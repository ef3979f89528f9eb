//! TC classifiers for the ingress and egress of an interface (attached as TCX links where
//! the kernel has them). They see Ethernet frames; they always return `TC_ACT_UNSPEC`.

use core::mem::MaybeUninit;

use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use aya_log_ebpf::debug;
use tracer_common::kind;

use crate::{
    emit::{count_hop, count_loss, hop_key, sample_shift, submit, traced, wanted, zero, zeroed},
    kernel::netns_cookie_of_skb,
    linear::{self, Linear},
    packet::{PacketBytes, is_ipv4_frame, parse_ipv4},
    route,
};

struct TcBytes<'a>(&'a TcContext);

impl PacketBytes for TcBytes<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        self.0.load::<T>(offset).ok()
    }
}

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, kind::TC_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    observe(&ctx, kind::TC_EGRESS);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext, hook: u16) {
    if linear::certainly_unfollowed(ctx) {
        return;
    }
    let shift = sample_shift();
    if shift != 0
        && let Some((mut key, ip_len)) = linear::untraced(ctx, shift)
    {
        // Counted, not traced: the key, where, and nothing else.
        // SAFETY: a read of the context the kernel handed us.
        let skb = unsafe { &*ctx.skb.skb };
        key.ifindex = skb.ifindex;
        key.hook = hook;
        key.netns_cookie = netns_cookie_of_skb(ctx.skb.skb as *const u8);
        count_hop(&key, u64::from(u16::from_be(ip_len)), false);
        if hook == kind::TC_INGRESS {
            // Its routing decision must not be taken for an older, traced packet's.
            route::received(core::ptr::null(), 0, 0);
        }
        return;
    }
    let mut slot = MaybeUninit::uninit();
    let event = zeroed(&mut slot);
    match linear::parse(ctx, event) {
        Linear::Skip => return,
        Linear::Parsed => {}
        Linear::Unsure => {
            zero(event);
            let bytes = TcBytes(ctx);
            if !is_ipv4_frame(&bytes, 0) {
                return;
            }
            if parse_ipv4(&bytes, 14, event).is_none() {
                count_loss(|c| c.parse_failed += 1);
                // Off unless `follow --kernel-log`: then the verifier keeps this branch.
                let version_ihl = bytes.read::<u8>(14).unwrap_or(0);
                // SAFETY: a read of the context the kernel handed us.
                let ifindex = unsafe { (*ctx.skb.skb).ifindex };
                debug!(
                    ctx,
                    "ifindex {}: a {}-byte IPv4 frame the parser could not read (version/IHL byte {:x})",
                    ifindex,
                    ctx.len(),
                    version_ihl
                );
                return;
            }
            if !wanted(event.saddr, event.daddr) {
                return;
            }
        }
    }
    // SAFETY: reads of the context the kernel handed us.
    let skb = unsafe { &*ctx.skb.skb };
    event.ifindex = skb.ifindex;
    event.skb_len = skb.len;
    event.mark = skb.mark;
    // The namespace is that of the device the packet is on. `bpf_get_netns_cookie` would
    // name the *socket's* namespace (or none for forwarded packets), so read the device's:
    // at run time a TC program's context is the kernel's `struct sk_buff` itself.
    let cookie = netns_cookie_of_skb(ctx.skb.skb as *const u8);
    if shift != 0 {
        let bytes = u64::from(u16::from_be(event.ip_len));
        count_hop(&hop_key(event, hook, cookie), bytes, true);
        if !traced(event) {
            if hook == kind::TC_INGRESS {
                // Its routing decision must not be taken for an older, traced packet's.
                route::received(core::ptr::null(), 0, 0);
            }
            return;
        }
    }
    submit(event, hook, cookie);
    if hook == kind::TC_INGRESS {
        // Its routing decision comes next on this CPU (`route`).
        route::received(ctx.skb.skb as *const u8, skb.ifindex, cookie);
    }
}
