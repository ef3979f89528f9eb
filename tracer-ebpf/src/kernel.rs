//! Reading kernel structures whose layout is only known at run time: the offsets come from
//! the running kernel's BTF, patched in by userspace as load-time globals (`OFF_*`; aya has
//! no CO-RE for Rust programs). Reads go through `bpf_probe_read_kernel`, which faults
//! safely on a bad address.

use aya_ebpf::helpers::bpf_probe_read_kernel;

use crate::emit::{count_loss, global};

#[unsafe(no_mangle)]
pub static OFF_SKB_HEAD: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_NETWORK_HEADER: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_LEN: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_MARK: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_DEV: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_DEV_IFINDEX: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_DEV_ND_NET: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_NET_COOKIE: u32 = 0;

/// Reads `T` at `base + offset`.
#[inline(always)]
pub fn kread<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel faults safely on a bad address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()).ok() }
}

/// The interface index of `skb->dev` and the cookie of its network namespace
/// (`dev->nd_net.net->net_cookie`): where the packet is. `(0, 0)` when unknown.
#[inline(always)]
pub fn device_of(skb: *const u8) -> (u32, u64) {
    let dev: *const u8 = kread(skb, global(&OFF_SKB_DEV)).unwrap_or(core::ptr::null());
    if dev.is_null() {
        return (0, 0);
    }
    let ifindex = kread(dev, global(&OFF_DEV_IFINDEX)).unwrap_or(0);
    let net: *const u8 = kread(dev, global(&OFF_DEV_ND_NET)).unwrap_or(core::ptr::null());
    if net.is_null() {
        count_loss(|c| c.parse_failed += 1);
        return (ifindex, 0);
    }
    (ifindex, kread(net, global(&OFF_NET_COOKIE)).unwrap_or(0))
}
