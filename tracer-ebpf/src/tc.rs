//! TC classifiers for the ingress and egress of an interface (attached as TCX links where
//! the kernel has them). They see Ethernet frames; they always return `TC_ACT_UNSPEC`.

use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use tracer_common::{PacketEvent, kind};

use crate::{
    emit::{count_loss, submit, wanted},
    kernel::device_of,
    packet::{PacketBytes, is_ipv4_frame, parse_ipv4},
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

/// Most packets on a hooked interface are not followed. Decide that from the linear
/// headers with direct packet access (no helper calls): an IPv4 packet that is not VXLAN
/// and whose addresses are not followed is rejected after two map lookups. Anything this
/// cannot see (short linear data, VXLAN, options) goes to the full parse.
#[inline(always)]
fn not_followed(ctx: &TcContext) -> bool {
    const IP: usize = 14;
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + IP + 20 > end {
        return false;
    }
    let p = data as *const u8;
    // SAFETY: bounds checked against data_end just above (the verifier checks it too).
    let (ethertype, version_ihl, proto, saddr, daddr) = unsafe {
        (
            u16::from_be((p.add(12) as *const u16).read_unaligned()),
            *p.add(IP),
            *p.add(IP + 9),
            (p.add(IP + 12) as *const u32).read_unaligned(),
            (p.add(IP + 16) as *const u32).read_unaligned(),
        )
    };
    if ethertype != 0x0800 || version_ihl != 0x45 {
        return ethertype != 0x0800;
    }
    if proto == 17 {
        if data + IP + 24 > end {
            return false;
        }
        // SAFETY: bounds checked just above.
        let dport = unsafe { u16::from_be((p.add(IP + 22) as *const u16).read_unaligned()) };
        if crate::packet::is_vxlan_port(dport) {
            return false;
        }
    }
    !wanted(saddr, daddr)
}

#[inline(always)]
fn observe(ctx: &TcContext, hook: u16) {
    if not_followed(ctx) {
        return;
    }
    let bytes = TcBytes(ctx);
    if !is_ipv4_frame(&bytes, 0) {
        return;
    }
    let mut event = PacketEvent::default();
    if parse_ipv4(&bytes, 14, &mut event).is_none() {
        count_loss(|c| c.parse_failed += 1);
        return;
    }
    if !wanted(event.saddr, event.daddr) {
        return;
    }
    // SAFETY: reads of the context the kernel handed us.
    let skb = unsafe { &*ctx.skb.skb };
    event.ifindex = skb.ifindex;
    event.skb_len = skb.len;
    event.mark = skb.mark;
    // The namespace is that of the device the packet is on. `bpf_get_netns_cookie` would
    // name the *socket's* namespace (or none for forwarded packets), so read the device's:
    // at run time a TC program's context is the kernel's `struct sk_buff` itself.
    let (_, cookie) = device_of(ctx.skb.skb as *const u8);
    submit(&mut event, hook, cookie);
}
