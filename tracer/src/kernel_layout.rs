//! The kernel struct offsets the tracepoint programs need, read from BTF at start-up and
//! handed to the programs as load-time globals (see `tracer_common::globals`).

use std::path::Path;

use aya::EbpfLoader;
use tracer_common::globals;

use crate::btf::{Btf, BtfError};

/// Byte offsets into `struct sk_buff`, `struct net_device`, `struct sock` and `struct net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelOffsets {
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_len: u32,
    /// `sk_buff.tail`: where the linear data ends (an offset from `head` on 64-bit).
    pub skb_tail: u32,
    pub skb_mark: u32,
    pub skb_dev: u32,
    pub dev_ifindex: u32,
    pub dev_nd_net: u32,
    pub net_cookie: u32,
    pub skb_sk: u32,
    pub sk_net: u32,
    /// The byte of `sk_buff` holding the `cloned` bitfield, and that bit's place in it.
    pub skb_cloned_byte: u32,
    pub skb_cloned_bit: u32,
    /// `sk_buff.end` (an offset from `head` on 64-bit kernels) and
    /// `skb_shared_info.dataref`: together, how many `sk_buff`s share the data.
    pub skb_end: u32,
    pub shinfo_dataref: u32,
    /// For the route-lookup tracepoint; `None` where this kernel's BTF lacks them (the
    /// program is then not attached and routes are inferred).
    pub route: Option<RouteOffsets>,
    /// For the NAT hook: where conntrack's BTF is (nf_conntrack built in or loaded) and
    /// its tuple is laid out as the program reads it; `None` otherwise (NAT is then
    /// inferred).
    pub nat: Option<NatOffsets>,
}

/// Where `struct nf_conn` keeps its two tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOffsets {
    /// `tuplehash[0].tuple`: the original direction.
    pub ct_tuple: u32,
    /// `sizeof(struct nf_conntrack_tuple_hash)`: how much further the reply's is.
    pub tuplehash_size: u32,
}

impl NatOffsets {
    /// The IPv4 layout of `struct nf_conntrack_tuple` the NAT program reads whole (a
    /// 16-byte address union, then the port, … ; unchanged since Linux 2.6).
    const TUPLE_LAYOUT: [(&[&str], u32); 5] = [
        (&["src", "u3"], 0),
        (&["src", "u"], 16),
        (&["dst", "u3"], 20),
        (&["dst", "u"], 36),
        (&["dst", "protonum"], 38),
    ];

    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        for (path, expected) in Self::TUPLE_LAYOUT {
            if btf.member_offset("nf_conntrack_tuple", path)? != expected {
                return Err(BtfError::Malformed(
                    "struct nf_conntrack_tuple is not laid out as the NAT hook reads it",
                ));
            }
        }
        Ok(Self {
            ct_tuple: btf.member_offset("nf_conn", &["tuplehash"])?
                + btf.member_offset("nf_conntrack_tuple_hash", &["tuple"])?,
            tuplehash_size: btf.struct_size("nf_conntrack_tuple_hash")?,
        })
    }

    /// From the kernel's own BTF when conntrack is built in, else from the `nf_conntrack`
    /// module's (there only while the module is loaded).
    pub fn find(vmlinux: &Btf) -> Result<Self, BtfError> {
        Self::from_btf(vmlinux).or_else(|_| {
            let module = Btf::from_file(Path::new("/sys/kernel/btf/nf_conntrack"), Some(vmlinux))?;
            Self::from_btf(&module)
        })
    }
}

/// Byte offsets into `struct flowi4` and `struct fib_nh_common`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOffsets {
    pub flowi4_iif: u32,
    pub flowi4_saddr: u32,
    pub flowi4_daddr: u32,
    pub nhc_dev: u32,
    pub nhc_gw_family: u32,
    pub nhc_gw: u32,
}

impl RouteOffsets {
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        Ok(Self {
            flowi4_iif: btf.member_offset("flowi4", &["__fl_common", "flowic_iif"])?,
            flowi4_saddr: btf.member_offset("flowi4", &["saddr"])?,
            flowi4_daddr: btf.member_offset("flowi4", &["daddr"])?,
            nhc_dev: btf.member_offset("fib_nh_common", &["nhc_dev"])?,
            nhc_gw_family: btf.member_offset("fib_nh_common", &["nhc_gw_family"])?,
            nhc_gw: btf.member_offset("fib_nh_common", &["nhc_gw"])?,
        })
    }
}

impl KernelOffsets {
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        Ok(Self {
            skb_head: btf.member_offset("sk_buff", &["head"])?,
            skb_network_header: btf.member_offset("sk_buff", &["network_header"])?,
            skb_len: btf.member_offset("sk_buff", &["len"])?,
            skb_tail: btf.member_offset("sk_buff", &["tail"])?,
            skb_mark: btf.member_offset("sk_buff", &["mark"])?,
            skb_dev: btf.member_offset("sk_buff", &["dev"])?,
            dev_ifindex: btf.member_offset("net_device", &["ifindex"])?,
            // possible_net_t wraps the pointer in a struct; with CONFIG_NET_NS=n it is empty.
            dev_nd_net: btf.member_offset("net_device", &["nd_net", "net"])?,
            net_cookie: btf.member_offset("net", &["net_cookie"])?,
            skb_sk: btf.member_offset("sk_buff", &["sk"])?,
            sk_net: btf.member_offset("sock", &["__sk_common", "skc_net", "net"])?,
            skb_cloned_byte: btf.member_bit_offset("sk_buff", &["cloned"])? / 8,
            skb_cloned_bit: btf.member_bit_offset("sk_buff", &["cloned"])? % 8,
            skb_end: btf.member_offset("sk_buff", &["end"])?,
            shinfo_dataref: btf.member_offset("skb_shared_info", &["dataref"])?,
            route: RouteOffsets::from_btf(btf).ok(),
            nat: NatOffsets::find(btf).ok(),
        })
    }

    /// Patches the offsets into the programs' globals before they are loaded.
    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, value) in [
            (globals::SKB_HEAD, &self.skb_head),
            (globals::SKB_NETWORK_HEADER, &self.skb_network_header),
            (globals::SKB_LEN, &self.skb_len),
            (globals::SKB_TAIL, &self.skb_tail),
            (globals::SKB_MARK, &self.skb_mark),
            (globals::SKB_DEV, &self.skb_dev),
            (globals::DEV_IFINDEX, &self.dev_ifindex),
            (globals::DEV_ND_NET, &self.dev_nd_net),
            (globals::NET_COOKIE, &self.net_cookie),
            (globals::SKB_SK, &self.skb_sk),
            (globals::SK_NET, &self.sk_net),
            (globals::SKB_CLONED_BYTE, &self.skb_cloned_byte),
            (globals::SKB_CLONED_BIT, &self.skb_cloned_bit),
            (globals::SKB_END, &self.skb_end),
            (globals::SHINFO_DATAREF, &self.shinfo_dataref),
        ] {
            loader.override_global(name, value, true);
        }
        if let Some(route) = &self.route {
            for (name, value) in [
                (globals::FLOWI4_IIF, &route.flowi4_iif),
                (globals::FLOWI4_SADDR, &route.flowi4_saddr),
                (globals::FLOWI4_DADDR, &route.flowi4_daddr),
                (globals::NHC_DEV, &route.nhc_dev),
                (globals::NHC_GW_FAMILY, &route.nhc_gw_family),
                (globals::NHC_GW, &route.nhc_gw),
            ] {
                loader.override_global(name, value, true);
            }
        }
        if let Some(nat) = &self.nat {
            loader.override_global(globals::CT_TUPLE, &nat.ct_tuple, true);
            loader.override_global(globals::CT_TUPLEHASH_SIZE, &nat.tuplehash_size, true);
        }
    }
}
