//! Do-nothing programs that exist only so `tracer doctor` can find out, by loading and
//! attaching them, whether this kernel allows each program type.

use aya_ebpf::{
    macros::{fentry, kprobe, raw_tracepoint},
    programs::{FEntryContext, ProbeContext, RawTracePointContext},
};

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn probe_raw_tracepoint(_ctx: RawTracePointContext) -> i32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[fentry(function = "ip_rcv")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}
