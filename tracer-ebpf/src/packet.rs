//! Header parsing shared by every hook: IPv4, TCP/UDP/ICMP, and one level of VXLAN.
//! Each hook supplies its own way of reading packet bytes ([`PacketBytes`]); the
//! parsing itself is written once.

use tracer_common::{PacketEvent, flags};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// UDP ports VXLAN arrives on: IANA's 4789 (Calico, Cilium) and Linux's historical 8472
/// (flannel's default).
const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;

/// Reads `T` at a byte offset into the packet (offset 0 = where the hook's view starts).
pub trait PacketBytes {
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

#[inline(always)]
pub fn is_vxlan_port(port: u16) -> bool {
    port == VXLAN_PORTS[0] || port == VXLAN_PORTS[1]
}

/// Whether the Ethernet frame at `offset` carries IPv4.
#[inline(always)]
pub fn is_ipv4_frame(bytes: &impl PacketBytes, offset: usize) -> bool {
    matches!(bytes.read::<u16>(offset + 12), Some(t) if u16::from_be(t) == ETH_P_IP)
}

/// Parses the IPv4 packet at `l3` into `event`. A VXLAN packet (UDP to 4789) is parsed
/// through: the inner packet fills the main fields and the outer one the `outer_*` fields.
/// Returns `None` if the bytes are not a well-formed IPv4 packet.
#[inline(always)]
pub fn parse_ipv4(bytes: &impl PacketBytes, l3: usize, event: &mut PacketEvent) -> Option<()> {
    let l4 = parse_ip_header(bytes, l3, event)?;
    if event.ip_proto == IPPROTO_UDP
        && event.flags & flags::LATER_FRAGMENT == 0
        && is_vxlan_port(u16::from_be(bytes.read::<u16>(l4 + 2)?))
    {
        let vxlan = l4 + 8;
        let vni_be: u32 = bytes.read(vxlan + 4)?;
        event.outer_saddr = event.saddr;
        event.outer_daddr = event.daddr;
        event.outer_sport = bytes.read(l4)?;
        event.outer_dport = bytes.read(l4 + 2)?;
        event.vni = u32::from_be(vni_be) >> 8;
        let inner_eth = vxlan + 8;
        if !is_ipv4_frame(bytes, inner_eth) {
            return None;
        }
        event.flags = flags::ENCAPSULATED;
        let inner_l4 = parse_ip_header(bytes, inner_eth + ETH_HLEN, event)?;
        return parse_l4(bytes, inner_l4, event);
    }
    parse_l4(bytes, l4, event)
}

/// Fills the IP fields and returns the offset of the L4 header.
#[inline(always)]
fn parse_ip_header(bytes: &impl PacketBytes, l3: usize, event: &mut PacketEvent) -> Option<usize> {
    let version_ihl: u8 = bytes.read(l3)?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    event.ip_len = bytes.read(l3 + 2)?;
    event.ip_id = bytes.read(l3 + 4)?;
    let frag = u16::from_be(bytes.read(l3 + 6)?);
    if frag & 0x4000 != 0 {
        event.flags |= flags::DONT_FRAGMENT;
    }
    if frag & 0x1fff != 0 {
        event.flags |= flags::LATER_FRAGMENT;
    }
    event.ttl = bytes.read(l3 + 8)?;
    event.ip_proto = bytes.read(l3 + 9)?;
    event.saddr = bytes.read(l3 + 12)?;
    event.daddr = bytes.read(l3 + 16)?;
    Some(l3 + ihl)
}

#[inline(always)]
fn parse_l4(bytes: &impl PacketBytes, l4: usize, event: &mut PacketEvent) -> Option<()> {
    if event.flags & flags::LATER_FRAGMENT != 0 {
        return Some(());
    }
    match event.ip_proto {
        IPPROTO_TCP => {
            event.sport = bytes.read(l4)?;
            event.dport = bytes.read(l4 + 2)?;
            event.tcp_seq = bytes.read(l4 + 4)?;
            event.tcp_ack = bytes.read(l4 + 8)?;
            event.tcp_flags = bytes.read(l4 + 13)?;
        }
        IPPROTO_UDP => {
            event.sport = bytes.read(l4)?;
            event.dport = bytes.read(l4 + 2)?;
        }
        IPPROTO_ICMP => {
            event.icmp_type = bytes.read(l4)?;
            event.icmp_code = bytes.read(l4 + 1)?;
            event.icmp_id = bytes.read(l4 + 4)?;
            event.icmp_seq = bytes.read(l4 + 6)?;
        }
        _ => {}
    }
    Some(())
}
