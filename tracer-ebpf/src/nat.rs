//! `nf_nat_manip_pkt(skb, ct, mtype, dir)`: netfilter about to rewrite a packet's addresses
//! for a NAT rule (kube-proxy's Service DNAT, a masquerade) or for conntrack undoing one on
//! a reply. The function is called only when a rewrite happens, so each event is one. The
//! packet is read as it is before the rewrite — it carries the invariant fields every other
//! hook sees — and the conntrack entry's two tuples say what it becomes.
//!
//! fentry where the kernel allows it, kprobe otherwise (the function is in the `nf_nat`
//! module on most distributions); both programs run the same code. Userspace tries fentry
//! first.

use core::mem::MaybeUninit;

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use tracer_common::{CtTuple, NatEvent, kind};

use crate::{
    emit::{global, sample_shift, submit, traced, zeroed},
    kernel::{CT_TUPLEHASH_SIZE, OFF_CT_TUPLE, device_of, kread},
    skb::Skb,
};

#[fentry(function = "nf_nat_manip_pkt")]
pub fn nat_fentry(ctx: FEntryContext) -> u32 {
    let _ = observe(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

#[kprobe]
pub fn nat_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(skb), Some(ct), Some(manip), Some(dir)) = (
        ctx.arg::<*const u8>(0),
        ctx.arg::<*const u8>(1),
        ctx.arg::<u32>(2),
        ctx.arg::<u32>(3),
    ) {
        let _ = observe(skb, ct, manip, dir);
    }
    0
}

/// `struct nf_conntrack_tuple` for IPv4, as the kernel lays it out (userspace checks the
/// running kernel's BTF agrees before attaching).
#[derive(Clone, Copy)]
#[repr(C)]
struct KernelTuple {
    src_ip: u32,
    _src_ip_rest: [u32; 3],
    src_port: u16,
    _l3num: u16,
    dst_ip: u32,
    _dst_ip_rest: [u32; 3],
    dst_port: u16,
    protonum: u8,
    _dir: u8,
}

#[inline(always)]
fn observe(skb: *const u8, ct: *const u8, manip: u32, dir: u32) -> Option<()> {
    let skb = Skb::at(skb)?;
    if skb.certainly_unfollowed() {
        return None;
    }
    let mut slot = MaybeUninit::<NatEvent>::uninit();
    let event = zeroed(&mut slot);
    skb.parse(&mut event.packet)?;
    if !traced(&event.packet) {
        // Counted, not traced, at its TC hooks: its rewrite is not told either.
        return None;
    }
    // A UDP payload this hook could not read (in page fragments: it reads only the linear
    // data) hashes as 0, which the sample always traces, though the TC hooks may have read
    // it and counted the datagram. When sampling, such a rewrite is left to be inferred
    // rather than told for a packet that may have no journey.
    const UDP: u8 = 17;
    if sample_shift() != 0 && event.packet.ip_proto == UDP && event.packet.payload_hash == 0 {
        return None;
    }
    let original = ct.wrapping_add(global(&OFF_CT_TUPLE) as usize);
    event.original = tuple(original);
    event.reply = tuple(original.wrapping_add(global(&CT_TUPLEHASH_SIZE) as usize));
    event.manip = manip as u8;
    event.dir = dir as u8;
    let (ifindex, cookie) = device_of(skb.ptr);
    event.packet.ifindex = ifindex;
    submit(event, kind::NAT, cookie);
    Some(())
}

/// The tuple at `at`; all zero when it cannot be read.
#[inline(always)]
fn tuple(at: *const u8) -> CtTuple {
    kread::<KernelTuple>(at, 0).map_or(CtTuple::default(), |t| CtTuple {
        saddr: t.src_ip,
        daddr: t.dst_ip,
        sport: t.src_port,
        dport: t.dst_port,
        proto: t.protonum,
        _pad: [0; 3],
    })
}
