//! `tp_btf/fib_table_lookup`: the routing decision the kernel makes for a received packet.
//! The tracepoint fires at the end of every FIB table lookup on the machine with the table,
//! the flow looked up (`struct flowi4`), the next hop chosen (`struct fib_nh_common`, or
//! none) and the result — but not the packet.
//!
//! The packet comes from the TC ingress hook: a received packet is classified at ingress
//! and routed (`ip_rcv` → `ip_route_input_noref` → `fib_table_lookup`) in one softirq run
//! on one CPU, so [`received`] keeps, per CPU, the `sk_buff` the ingress hook last saw a
//! followed packet in. A lookup is that packet's when its flow has the packet's input
//! interface and its addresses as they are now (after any DNAT in PREROUTING): the
//! reverse-path check asks with the addresses swapped and the loopback interface, and a
//! locally sent packet's output route with the loopback interface, so neither matches.
//! The packet is read afresh from that `sk_buff`, so the event carries its current headers.
//!
//! A lookup counts only in the namespace where the ingress hook saw the packet: its
//! `sk_buff`'s device must still be in that namespace.
//!
//! Known limit: a packet routed without passing a hooked ingress (early demux skips the
//! lookup; an unhooked device) is matched against the slot's older `sk_buff` only, whose
//! current headers must then show the same addresses on the same input interface.

use core::mem::MaybeUninit;

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use tracer_common::{RouteEvent, kind};

use crate::{
    emit::{global, submit, wanted, zeroed},
    kernel::{
        OFF_DEV_IFINDEX, OFF_FLOWI4_DADDR, OFF_FLOWI4_IIF, OFF_FLOWI4_SADDR, OFF_NHC_DEV,
        OFF_NHC_GW, OFF_NHC_GW_FAMILY, kread, netns_cookie_of_skb,
    },
    skb::Skb,
};

const AF_INET: u8 = 2;

/// The packet this CPU's TC ingress hook last saw, and where.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Received {
    skb: u64,
    netns_cookie: u64,
    ifindex: u32,
    _pad: u32,
}

#[map(name = "RECEIVED")]
static RECEIVED: PerCpuArray<Received> = PerCpuArray::with_max_entries(1, 0);

/// Called by the TC ingress hook for every followed packet it emits.
#[inline(always)]
pub fn received(skb: *const u8, ifindex: u32, netns_cookie: u64) {
    if let Some(slot) = RECEIVED.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot: no other program runs on this CPU meanwhile.
        unsafe {
            *slot = Received {
                skb: skb as u64,
                netns_cookie,
                ifindex,
                _pad: 0,
            };
        }
    }
}

/// `TP_PROTO(u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc,
/// int err)`.
#[btf_tracepoint(function = "fib_table_lookup")]
pub fn fib_table_lookup(ctx: BtfTracePointContext) -> i32 {
    let table: u32 = ctx.arg(0);
    let flp: *const u8 = ctx.arg(1);
    let nhc: *const u8 = ctx.arg(2);
    let err: i32 = ctx.arg(3);
    let _ = observe(table, flp, nhc, err);
    0
}

#[inline(always)]
fn observe(table: u32, flp: *const u8, nhc: *const u8, err: i32) -> Option<()> {
    // SAFETY: a per-CPU slot, read while nothing else on this CPU writes it.
    let slot = unsafe { *RECEIVED.get_ptr(0)? };
    if slot.skb == 0 {
        return None;
    }
    let iif: u32 = kread(flp, global(&OFF_FLOWI4_IIF))?;
    if iif != slot.ifindex {
        return None;
    }
    let saddr: u32 = kread(flp, global(&OFF_FLOWI4_SADDR))?;
    let daddr: u32 = kread(flp, global(&OFF_FLOWI4_DADDR))?;
    if !wanted(saddr, daddr) {
        return None;
    }
    // Interface indexes repeat across namespaces, and one `sk_buff` crosses several of
    // them (a veth pair moves it whole): the slot's packet may since have entered a
    // namespace whose ingress this session does not hook (another node's, for a node's
    // agent on a machine that holds several) and be looked up there, on an interface of
    // the same index. Only a lookup where the slot's hook saw it is the packet's.
    // The ingress hook just cached this device's namespace on this CPU: one read of
    // `skb->dev` and a cache hit, where the packet is the slot's.
    if netns_cookie_of_skb(slot.skb as *const u8) != slot.netns_cookie {
        return None;
    }
    let skb = Skb::at(slot.skb as *const u8)?;
    let mut event_slot = MaybeUninit::<RouteEvent>::uninit();
    let event = zeroed(&mut event_slot);
    skb.parse(&mut event.packet)?;
    if event.packet.saddr != saddr || event.packet.daddr != daddr {
        return None;
    }
    event.packet.ifindex = iif;
    event.table = table;
    event.err = err;
    if !nhc.is_null() {
        let out: *const u8 = kread(nhc, global(&OFF_NHC_DEV)).unwrap_or(core::ptr::null());
        if !out.is_null() {
            event.oif = kread(out, global(&OFF_DEV_IFINDEX)).unwrap_or(0);
        }
        if kread::<u8>(nhc, global(&OFF_NHC_GW_FAMILY)) == Some(AF_INET) {
            event.gateway = kread(nhc, global(&OFF_NHC_GW)).unwrap_or(0);
        }
    }
    submit(event, kind::FIB_LOOKUP, slot.netns_cookie);
    Some(())
}
