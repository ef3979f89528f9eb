//! tracer's kernel programs: TC classifiers, the drop tracepoint, the route-lookup
//! tracepoint and the NAT rewrite (fentry or kprobe). They parse, filter
//! and emit; they never change a packet's fate (every TC program returns `TC_ACT_UNSPEC`,
//! "continue as if we were not here") and they count in `LOSS` whatever they could not
//! hand over. Correlation, naming and presentation all live in userspace.
#![no_std]
#![no_main]

mod emit;
mod kernel;
mod kfree_skb;
mod linear;
mod nat;
mod packet;
mod probes;
mod route;
mod skb;
mod tc;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach this, so it is never
    // executed; the handler exists only to satisfy `no_std`.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
