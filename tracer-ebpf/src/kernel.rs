//! Reading kernel structures whose layout is only known at run time: the offsets come from
//! the running kernel's BTF, patched in by userspace as load-time globals (`OFF_*`; aya has
//! no CO-RE for Rust programs). Reads go through `bpf_probe_read_kernel`, which faults
//! safely on a bad address.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};

use crate::emit::{count_loss, global};

#[unsafe(no_mangle)]
pub static OFF_SKB_HEAD: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_NETWORK_HEADER: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_LEN: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_TAIL: u32 = 0;
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
#[unsafe(no_mangle)]
pub static OFF_SKB_SK: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SK_NET: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_CLONED_BYTE: u32 = 0;
#[unsafe(no_mangle)]
pub static SKB_CLONED_BIT: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SKB_END: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_SHINFO_DATAREF: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_FLOWI4_IIF: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_FLOWI4_SADDR: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_FLOWI4_DADDR: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_NHC_DEV: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_NHC_GW_FAMILY: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_NHC_GW: u32 = 0;
#[unsafe(no_mangle)]
pub static OFF_CT_TUPLE: u32 = 0;
#[unsafe(no_mangle)]
pub static CT_TUPLEHASH_SIZE: u32 = 0;

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
    (ifindex, netns_cookie_of_dev(dev))
}

/// One remembered device: its address and its namespace's cookie.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct DeviceNetns {
    dev: u64,
    cookie: u64,
}

const DEVICE_CACHE_SLOTS: u32 = 256;

/// Per-CPU, direct-mapped by the device's address: the namespace of a device we have seen,
/// so most hops cost one kernel read (`skb->dev`) instead of three. Indexed by the
/// address, not the interface index: indexes repeat across namespaces (every Pod's `eth0`
/// and often the node's uplink are 2), and devices sharing a slot would evict each other
/// on every hop of a packet that crosses them in turn. An entry is trusted only for the
/// very device it was filled from (same address), and the TC programs run only on devices
/// attached at start, which stay alive while attached.
#[map(name = "DEVICE_NETNS")]
static DEVICE_NETNS: PerCpuArray<DeviceNetns> =
    PerCpuArray::with_max_entries(DEVICE_CACHE_SLOTS, 0);

/// The cookie of the network namespace of `skb->dev`, for TC hooks and the route hook. 0
/// when unknown.
#[inline(always)]
pub fn netns_cookie_of_skb(skb: *const u8) -> u64 {
    let dev: *const u8 = kread(skb, global(&OFF_SKB_DEV)).unwrap_or(core::ptr::null());
    if dev.is_null() {
        return 0;
    }
    // `struct net_device` is cache-line aligned: its low bits say nothing.
    let address = dev as u64 >> 6;
    let slot = tracer_common::sample::mix32(address as u32 ^ (address >> 32) as u32);
    let Some(slot) = DEVICE_NETNS.get_ptr_mut(slot % DEVICE_CACHE_SLOTS) else {
        return netns_cookie_of_dev(dev);
    };
    // SAFETY: a per-CPU slot: no other program touches it while this one runs.
    let slot = unsafe { &mut *slot };
    if slot.dev == dev as u64 && slot.cookie != 0 {
        return slot.cookie;
    }
    let cookie = netns_cookie_of_dev(dev);
    *slot = DeviceNetns {
        dev: dev as u64,
        cookie,
    };
    cookie
}

/// The cookie of the namespace of the packet's socket (`skb->sk->__sk_common.skc_net`), for
/// a packet freed without a device, e.g. purged from a socket's queue. 0 when unknown.
#[inline(always)]
pub fn netns_cookie_of_socket(skb: *const u8) -> u64 {
    let sk: *const u8 = kread(skb, global(&OFF_SKB_SK)).unwrap_or(core::ptr::null());
    if sk.is_null() {
        return 0;
    }
    let net: *const u8 = kread(sk, global(&OFF_SK_NET)).unwrap_or(core::ptr::null());
    if net.is_null() {
        return 0;
    }
    kread(net, global(&OFF_NET_COOKIE)).unwrap_or(0)
}

/// Whether another `sk_buff` still shares this one's data: the kernel's `skb_cloned()`,
/// `skb->cloned && (atomic_read(&skb_shinfo(skb)->dataref) & SKB_DATAREF_MASK) != 1`.
#[inline(always)]
pub fn data_is_shared(skb: *const u8, head: *const u8) -> bool {
    let Some(flags) = kread::<u8>(skb, global(&OFF_SKB_CLONED_BYTE)) else {
        return false;
    };
    if (flags >> (global(&SKB_CLONED_BIT) & 7)) & 1 == 0 {
        return false;
    }
    // `end` is an offset from `head` on 64-bit kernels (NET_SKBUFF_DATA_USES_OFFSET).
    let Some(end) = kread::<u32>(skb, global(&OFF_SKB_END)) else {
        return false;
    };
    let shinfo = head.wrapping_add(end as usize);
    kread::<u32>(shinfo, global(&OFF_SHINFO_DATAREF)).is_some_and(|refs| refs & 0xffff != 1)
}

/// The cookie of `dev`'s network namespace; 0 (counted as a parse failure) when unknown.
#[inline(always)]
pub fn netns_cookie_of_dev(dev: *const u8) -> u64 {
    let net: *const u8 = kread(dev, global(&OFF_DEV_ND_NET)).unwrap_or(core::ptr::null());
    if net.is_null() {
        count_loss(|c| c.parse_failed += 1);
        return 0;
    }
    kread(net, global(&OFF_NET_COOKIE)).unwrap_or(0)
}
