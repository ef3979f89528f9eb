//! Header parsing shared by every hook: IPv4, TCP/UDP/ICMP, and one level of VXLAN.
//! Each hook supplies its own way of reading packet bytes ([`PacketBytes`]); the
//! parsing itself is written once.
//!
//! The headers are network-types' `#[repr(C)]` layouts, read whole: one read (one
//! `bpf_skb_load_bytes` or `bpf_probe_read_kernel` call) per header rather than one per
//! field.

use network_types::{
    eth::{EthHdr, EtherType},
    icmp::Icmpv4Hdr,
    ip::{IpProto, Ipv4Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
    vxlan::VxlanHdr,
};
use tracer_common::{PacketEvent, flags, payload_hash};

pub const IPPROTO_ICMP: u8 = IpProto::Icmp as u8;
pub const IPPROTO_TCP: u8 = IpProto::Tcp as u8;
pub const IPPROTO_UDP: u8 = IpProto::Udp as u8;
/// The Ethernet type of IPv4 as it is on the wire (network-types keeps it big-endian).
pub const ETH_P_IP_BE: u16 = EtherType::Ipv4 as u16;
/// The byte of TCP flags (CWR … FIN): after the data offset, inside network-types'
/// bitfield.
pub const TCP_FLAGS: usize = core::mem::offset_of!(TcpHdr, window) - 1;
/// How many bytes of a UDP payload [`payload_hash`] covers.
pub const PAYLOAD_HASHED: usize = 8;
/// UDP ports VXLAN arrives on: IANA's 4789 (Calico, Cilium) and Linux's historical 8472
/// (flannel's default).
const VXLAN_PORTS: [u16; 2] = [4789, 8472];

/// Whether a UDP datagram's first [`PAYLOAD_HASHED`] payload bytes are both in the
/// datagram (`udp_len`, from its header) and in this packet (`ip_payload`: the IP total
/// length less the IP header; a first fragment's UDP length is the whole datagram's). Past
/// either end a kernel read finds whatever the buffer holds, which differs from hook to hook.
#[inline(always)]
pub fn payload_is_hashable(udp_len: u16, ip_payload: usize) -> bool {
    let needed = UdpHdr::LEN + PAYLOAD_HASHED;
    usize::from(udp_len) >= needed && ip_payload >= needed
}

/// A UDP header and the payload bytes [`payload_hash`] covers.
#[derive(Clone, Copy)]
#[repr(C)]
struct UdpAndPayload {
    udp: UdpHdr,
    first: [u8; PAYLOAD_HASHED],
}

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
    matches!(bytes.read::<EthHdr>(offset), Some(eth) if eth.ether_type == ETH_P_IP_BE)
}

/// Parses the IPv4 packet at `l3` into `event`. A VXLAN packet (UDP to 4789) is parsed
/// through: the inner packet fills the main fields and the outer one the `outer_*` fields.
/// Returns `None` if the bytes are not a well-formed IPv4 packet.
#[inline(always)]
pub fn parse_ipv4(bytes: &impl PacketBytes, l3: usize, event: &mut PacketEvent) -> Option<()> {
    let l4 = parse_ip_header(bytes, l3, event)?;
    if event.ip_proto == IPPROTO_UDP && event.flags & flags::LATER_FRAGMENT == 0 {
        let udp: UdpHdr = bytes.read(l4)?;
        if is_vxlan_port(udp.dst_port()) {
            let vxlan = l4 + UdpHdr::LEN;
            let header: VxlanHdr = bytes.read(vxlan)?;
            event.outer_saddr = event.saddr;
            event.outer_daddr = event.daddr;
            event.outer_sport = u16::from_ne_bytes(udp.src);
            event.outer_dport = u16::from_ne_bytes(udp.dst);
            event.vni = header.vni();
            let inner_eth = vxlan + VxlanHdr::LEN;
            if !is_ipv4_frame(bytes, inner_eth) {
                return None;
            }
            event.flags = flags::ENCAPSULATED;
            let inner_l3 = inner_eth + EthHdr::LEN;
            let inner_l4 = parse_ip_header(bytes, inner_l3, event)?;
            return parse_l4(bytes, inner_l3, inner_l4, event);
        }
    }
    parse_l4(bytes, l3, l4, event)
}

/// Fills the IP fields and returns the offset of the L4 header. The event keeps addresses,
/// length and ID in network byte order, as on the wire.
#[inline(always)]
fn parse_ip_header(bytes: &impl PacketBytes, l3: usize, event: &mut PacketEvent) -> Option<usize> {
    let ip: Ipv4Hdr = bytes.read(l3)?;
    if ip.version() != 4 {
        return None;
    }
    let ihl = usize::from(ip.ihl());
    if ihl < Ipv4Hdr::LEN {
        return None;
    }
    event.ip_len = u16::from_ne_bytes(ip.tot_len);
    event.ip_id = u16::from_ne_bytes(ip.id);
    let frag = u16::from_be_bytes(ip.frags);
    if frag & 0x4000 != 0 {
        event.flags |= flags::DONT_FRAGMENT;
    }
    if frag & 0x1fff != 0 {
        event.flags |= flags::LATER_FRAGMENT;
    }
    event.ttl = ip.ttl;
    event.ip_proto = ip.proto;
    event.saddr = u32::from_ne_bytes(ip.src_addr);
    event.daddr = u32::from_ne_bytes(ip.dst_addr);
    Some(l3 + ihl)
}

#[inline(always)]
fn parse_l4(bytes: &impl PacketBytes, l3: usize, l4: usize, event: &mut PacketEvent) -> Option<()> {
    if event.flags & flags::LATER_FRAGMENT != 0 {
        return Some(());
    }
    match event.ip_proto {
        IPPROTO_TCP => {
            let tcp: TcpHdr = bytes.read(l4)?;
            event.sport = u16::from_ne_bytes(tcp.source);
            event.dport = u16::from_ne_bytes(tcp.dest);
            event.tcp_seq = u32::from_ne_bytes(tcp.seq);
            event.tcp_ack = u32::from_ne_bytes(tcp.ack_seq);
            // SAFETY: `TcpHdr` is `repr(C)` bytes only (no padding), so every bit pattern
            // is a valid array of its size.
            let raw: [u8; TcpHdr::LEN] = unsafe { core::mem::transmute(tcp) };
            event.tcp_flags = raw[TCP_FLAGS];
        }
        IPPROTO_UDP => {
            // The header and the payload's first bytes in one read; the header alone when
            // the packet ends sooner.
            let (udp, first) = match bytes.read::<UdpAndPayload>(l4) {
                Some(both) => (both.udp, Some(both.first)),
                None => (bytes.read::<UdpHdr>(l4)?, None),
            };
            event.sport = u16::from_ne_bytes(udp.src);
            event.dport = u16::from_ne_bytes(udp.dst);
            let ip_payload = usize::from(u16::from_be(event.ip_len)).saturating_sub(l4 - l3);
            if payload_is_hashable(udp.len(), ip_payload)
                && let Some(first) = first
            {
                event.payload_hash = payload_hash(first);
            }
        }
        IPPROTO_ICMP => {
            let icmp: Icmpv4Hdr = bytes.read(l4)?;
            event.icmp_type = icmp.type_;
            event.icmp_code = icmp.code;
            // An echo's identifier and sequence number; for other types the same bytes,
            // which identity does not use.
            let [id0, id1, seq0, seq1] = icmp.data;
            event.icmp_id = u16::from_ne_bytes([id0, id1]);
            event.icmp_seq = u16::from_ne_bytes([seq0, seq1]);
        }
        _ => {}
    }
    Some(())
}
